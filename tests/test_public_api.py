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
    assert set(voxmill.__all__) - {"__version__"} == set(voxmill._WHERE)
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
    for name in voxmill.errors.__all__:
        assert issubclass(getattr(voxmill.errors, name), voxmill.errors.VoxmillError)
    assert issubclass(voxmill.AudioDecodeError, voxmill.AudioError)
    assert issubclass(voxmill.ModelTooLarge, voxmill.ModelError)
