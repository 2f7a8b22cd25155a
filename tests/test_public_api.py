"""The public surface is declared once in voxmill.__all__ and stays importable."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest

import voxmill
import voxmill.audio
import voxmill.engine
import voxmill.errors


def test_all_matches_the_public_names() -> None:
    # Subpackages appear as attributes once anything imports them; they are not API names.
    helpers = {"annotations", "TYPE_CHECKING", "Any"}
    public = {
        name
        for name in dir(voxmill)
        if not name.startswith("_") and name not in helpers and not isinstance(getattr(voxmill, name), types.ModuleType)
    }
    assert set(voxmill.__all__) - {"__version__"} == public
    assert len(voxmill.__all__) == len(set(voxmill.__all__))
    assert set(voxmill.__all__) - {"__version__"} == set(voxmill._WHERE) | set(voxmill._ENTRY_POINTS)
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = voxmill.no_such_name  # type: ignore[attr-defined]


def test_importing_the_engine_does_not_load_the_audio_stack() -> None:
    code = "import sys, voxmill.engine; print('soundfile' in sys.modules, 'voxmill.audio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_every_exported_name_exists() -> None:
    for module in (voxmill, voxmill.audio, voxmill.engine, voxmill.errors):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"


def test_one_exception_tree() -> None:
    # Reason is the code every error carries, not an error.
    for name in set(voxmill.errors.__all__) - {"Reason"}:
        error = getattr(voxmill.errors, name)
        assert issubclass(error, voxmill.errors.VoxmillError)
        assert isinstance(error.code, voxmill.Reason)
    assert issubclass(voxmill.AudioDecodeError, voxmill.AudioError)
    assert issubclass(voxmill.ModelTooLarge, voxmill.ModelError)


def test_each_application_has_one_entry_point_options_in_result_out() -> None:
    import dataclasses
    import inspect
    import typing

    import voxmill.check
    import voxmill.convert
    import voxmill.prepare
    import voxmill.segment
    import voxmill.synth
    import voxmill.train

    cases = {
        voxmill.prepare_dataset: (voxmill.prepare.run, voxmill.PrepareOptions, voxmill.PrepareResult),
        voxmill.check_dataset: (voxmill.check.run, voxmill.CheckOptions, voxmill.Report),
        voxmill.convert_audio: (voxmill.convert.run, voxmill.ConvertOptions, voxmill.ConvertResult),
        voxmill.synthesize: (voxmill.synth.run, voxmill.SynthOptions, voxmill.SynthResult),
        voxmill.train_voice: (voxmill.train.run, voxmill.TrainOptions, voxmill.TrainResult),
        voxmill.segment_recordings: (voxmill.segment.run, voxmill.SegmentOptions, voxmill.SegmentResult),
    }
    for entry, (run, options, result) in cases.items():
        for function in (entry, run):
            hints = typing.get_type_hints(function)
            parameters = list(inspect.signature(function).parameters)
            assert len(parameters) == 1, function
            assert hints[parameters[0]] is options, function
            assert hints["return"] is result, function
        # Every application's options nest the engine's run options, and results are typed dataclasses.
        fields = {f.name: f for f in dataclasses.fields(options)}
        assert "run" in fields, options
        assert not {"workers", "backend", "ray_address", "progress"} & set(fields), options
        assert dataclasses.is_dataclass(result), result
