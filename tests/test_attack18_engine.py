"""Issue 18's engine, models and settings attacked as a hostile library user: each test failed before its fix."""

from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path

import pytest

from engine_tasks import cube
from voxmill.config import load_settings
from voxmill.engine import Pool, RunOptions, Task, WorkerContext
from voxmill.engine.outcome import Failed
from voxmill.errors import ConfigError, ModelError, ModelLoadError, ModelNotFound, Reason
from voxmill.models import Registry
from voxmill.models.voice_config import VoiceConfig


def _raise_keyboard_interrupt(item: int) -> int:
    if item == 1:
        raise KeyboardInterrupt
    return item


def _exit(item: int) -> int:
    if item == 1:
        raise SystemExit(3)
    return item


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise ValueError("str() of this exception fails")


def _raise_unprintable(item: int) -> int:
    raise _Unprintable


class _ExitInSetup(Task):
    def setup(self, ctx: WorkerContext) -> None:
        raise SystemExit(4)

    def __call__(self, item: int) -> int:
        return item


def _results(backend: str, task: object, items: int = 3) -> list[object]:
    return [o.result for o in Pool(workers=2, backend=backend, progress=False).map(task, range(items))]  # type: ignore[arg-type]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("task", [_raise_keyboard_interrupt, _exit])
def test_an_item_raising_keyboardinterrupt_or_systemexit_fails_on_thread_workers(task: object) -> None:
    """Used to kill the worker thread with its item unanswered: the run hung forever."""
    results = _results("thread", task)
    assert [r.value for r in (results[0], results[2])] == [0, 2]  # type: ignore[union-attr]
    assert isinstance(results[1], Failed) and results[1].code == Reason.ERROR


def test_an_item_raising_systemexit_fails_as_itself_in_a_worker_process() -> None:
    """Used to kill the process: retried as a crash, then Failed worker_died, with a traceback on stderr."""
    (result,) = [r for r in _results("process", _exit) if isinstance(r, Failed)]
    assert result.error == "SystemExit" and result.code == Reason.ERROR


def test_serial_keeps_keyboardinterrupt_but_fails_systemexit() -> None:
    with pytest.raises(KeyboardInterrupt):  # in the caller's thread it may be the user's Ctrl-C
        _results("serial", _raise_keyboard_interrupt)
    assert isinstance(_results("serial", _exit)[1], Failed)


@pytest.mark.timeout(30)
def test_an_exception_whose_str_raises_still_fails_its_item() -> None:
    for result in _results("thread", _raise_unprintable):
        assert isinstance(result, Failed) and result.error == "_Unprintable" and "cannot be shown" in result.message


@pytest.mark.timeout(30)
def test_a_setup_raising_systemexit_fails_every_item_of_a_thread_worker() -> None:
    results = _results("thread", _ExitInSetup())
    assert all(isinstance(r, Failed) and "task setup failed" in r.message for r in results)


def test_a_task_that_cannot_pickle_is_one_config_error_on_the_process_backend() -> None:
    with pytest.raises(ConfigError, match=r"cannot be sent to worker processes.*backend='thread'"):
        Pool(workers=2, backend="process", progress=False).map(lambda x: x, range(3))


@pytest.mark.parametrize("field,value", [("window", 0), ("prefetch", 0), ("prefetch", 1.5), ("prefetch", "2"),
                                         ("prefetch", None), ("prefetch", True)])  # fmt: skip
def test_bad_window_and_prefetch_are_config_errors(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        Pool(**{field: value})  # type: ignore[arg-type]


def test_from_options_takes_an_option_given_again() -> None:
    pool = Pool.from_options(RunOptions(workers=1, backend="serial"), progress=False)  # was a TypeError
    assert pool.progress is False and [o.value for o in pool.map(cube, [2])] == [8]


def test_validate_normalises_the_cli_string_forms() -> None:
    options = RunOptions(workers="3", timeout="30", threads_per_worker=" 2 ").validate()
    assert (options.workers, options.timeout, options.threads_per_worker) == (3, 30.0, 2)


def test_a_timeout_too_long_for_the_os_is_a_config_error() -> None:
    """1e308 s passed the check and then raised OverflowError from select() in the process backend."""
    with pytest.raises(ConfigError, match="--timeout"):
        RunOptions(timeout=1e308).validate()


def test_settings_device_budget_and_voices_dir_from_the_environment() -> None:
    assert load_settings(env={"VOXMILL_DEVICE": "cuda:1"}).device == "cuda:1"  # as --device accepts
    for var, value in [("VOXMILL_BUDGET", "0"), ("VOXMILL_GPU_BUDGET", "0"), ("VOXMILL_VOICES_DIR", "a\0b")]:
        with pytest.raises(ConfigError, match=var):
            load_settings(env={var: value})


# ---- models -------------------------------------------------------------------------------------------


def test_a_model_path_that_is_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    """A FIFO would block the load forever; /dev/zero behind a symlink would fill memory."""
    os.mkfifo(tmp_path / "fifo.onnx")
    (tmp_path / "zero.onnx").symlink_to("/dev/zero")
    registry = Registry(voices_dir=tmp_path / "none")
    for name in ("fifo.onnx", "zero.onnx"):
        with pytest.raises(ModelNotFound, match="not a regular file"):
            registry.resolve(str(tmp_path / name))
    with pytest.raises(ModelNotFound):
        registry.resolve("a\0b.onnx")  # was a ValueError (embedded null byte)


def test_a_voice_file_name_with_a_newline_is_broken_and_never_splits_a_message(tmp_path: Path) -> None:
    source = Registry(voices_dir=tmp_path / "none").get("piper:en_US-joe-medium")
    assert source.config_path is not None
    (tmp_path / "a\nb.onnx").symlink_to(source.path)
    shutil.copy(source.config_path, tmp_path / "a\nb.onnx.json")
    registry = Registry(voices_dir=tmp_path)
    (broken,) = registry.broken()
    assert "\n" not in broken.name and "control characters" in broken.reason
    with pytest.raises(ModelNotFound) as caught:
        registry.resolve("piper:" + "x" * 100_000)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 1000


@pytest.fixture(scope="module")
def joe() -> dict[str, object]:
    spec = Registry(voices_dir="/nonexistent-voxmill-voices").get("piper:en_US-joe-medium")
    assert spec.voice is not None
    return spec.voice.raw


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda d: d.__setitem__("phoneme_id_map", [1, 2]), "phoneme_id_map"),
        (lambda d: d.__setitem__("phoneme_id_map", {"a": "x"}), "phoneme_id_map"),
        (lambda d: d.__setitem__("speaker_id_map", {"a": -5}), "speaker_id_map"),
        (lambda d: d.__setitem__("speaker_id_map", {"a": 10**30}), "speaker_id_map"),
        (lambda d: d.update(num_speakers=2, speaker_id_map={"a": 0, "b": 7}), "beyond num_speakers"),
        (lambda d: d.__setitem__("num_speakers", 10**18), "num_speakers"),
        (lambda d: d["inference"].__setitem__("length_scale", 0), "length_scale"),
    ],
)
def test_voice_configs_piper_would_fail_on_at_every_sentence_are_refused_at_read(
    joe: dict[str, object], tmp_path: Path, change: object, message: str
) -> None:
    raw = copy.deepcopy(joe)
    change(raw)  # type: ignore[operator]
    path = tmp_path / "v.onnx.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(ModelLoadError, match=message):
        VoiceConfig.read(path)


def test_voice_config_nested_too_deeply_or_with_a_bom(joe: dict[str, object], tmp_path: Path) -> None:
    path = tmp_path / "v.onnx.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ModelLoadError, match="nested too deeply"):  # was a RecursionError
        VoiceConfig.read(path)
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(joe).encode())
    assert VoiceConfig.read(path).sample_rate == 22050


def test_a_damaged_split_cache_is_made_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A split.json that is not JSON was a JSONDecodeError at every load of the voice, a FIFO hung it,
    swapped parts failed at every sentence: each is discarded and split again."""
    from voxmill.models.devices import session_options
    from voxmill.models.loaders.vits import WindowedVits, load_vits, split_folder, split_note

    monkeypatch.setenv("VOXMILL_CACHE", str(tmp_path / "cache"))
    model = Registry(voices_dir=tmp_path / "none").get("piper:en_US-joe-medium").path
    load_vits(model, session_options(1), ["CPUExecutionProvider"])
    folder = split_folder(model)
    good = tmp_path / "good"
    shutil.copytree(folder, good)

    def swap(f: Path) -> None:
        (f / "encoder.onnx").rename(f / "x")
        (f / "decoder.onnx").rename(f / "encoder.onnx")
        (f / "x").rename(f / "decoder.onnx")

    def fifo(f: Path) -> None:
        (f / "split.json").unlink()
        os.mkfifo(f / "split.json")

    for damage in (lambda f: (f / "split.json").write_text("{}"), fifo, swap):
        shutil.rmtree(folder)
        shutil.copytree(good, folder)
        damage(folder)
        assert split_note(model) is None  # and does not block on the FIFO
        assert isinstance(load_vits(model, session_options(1), ["CPUExecutionProvider"]), WindowedVits)
        assert json.loads((folder / "split.json").read_text())["vits"] is True


def test_two_model_files_of_one_name_are_not_confused(tmp_path: Path) -> None:
    """Leasing c/m.onnx (Silero) then d/m.onnx (a Piper graph): both 'onnx:m', and the second lease
    used to hand back the first file's session."""
    from voxmill.models import ModelManager
    from voxmill.models.registry import spec_from_path

    registry = Registry(voices_dir=tmp_path / "none")
    for folder, source in (("c", "silero-vad"), ("d", "piper:en_US-joe-medium")):
        (tmp_path / folder).mkdir()
        shutil.copy(registry.get(source).path, tmp_path / folder / "m.onnx")
    first, second = spec_from_path(tmp_path / "c" / "m.onnx"), spec_from_path(tmp_path / "d" / "m.onnx")
    assert first.name == second.name
    manager = ModelManager(budget_bytes=2**30, registry=registry)
    with manager.lease(first) as session:
        assert "state" in {i.name for i in session.get_inputs()}
        # In use: not swapped under its holder.
        with pytest.raises(ModelError, match="another model of that name"), manager.lease(second):
            pass
    with manager.lease(second) as session:
        assert "scales" in {i.name for i in session.get_inputs()}


def test_a_model_file_that_became_a_fifo_is_not_loaded(tmp_path: Path) -> None:
    from voxmill.models import ModelManager
    from voxmill.models.registry import spec_from_path

    registry = Registry(voices_dir=tmp_path / "none")
    shutil.copy(registry.get("silero-vad").path, tmp_path / "m.onnx")
    spec = spec_from_path(tmp_path / "m.onnx")
    (tmp_path / "m.onnx").unlink()
    os.mkfifo(tmp_path / "m.onnx")
    manager = ModelManager(budget_bytes=2**30, registry=registry)
    with pytest.raises(ModelLoadError, match="not a regular file"), manager.lease(spec):  # was: blocked forever
        pass


@pytest.mark.parametrize("total", ["5", -1, 2.5, True])
def test_a_bad_total_is_a_config_error(total: object) -> None:
    with pytest.raises(ConfigError, match="total"):  # "5" was a TypeError from the progress bar
        Pool(workers=1, backend="serial", progress=False).map(cube, iter(range(3)), total=total)


@pytest.mark.parametrize("key", [lambda item: None, lambda item: 5, lambda item: ""])
def test_a_journal_key_that_is_not_text_is_a_config_error(tmp_path: Path, key: object) -> None:
    """None was recorded but never found again: a resumed run silently ran every item again."""
    from voxmill.engine.journal import Journal

    with Journal(tmp_path / "journal") as journal, pytest.raises(ConfigError, match="key"):
        Pool(workers=1, backend="serial", progress=False).map(cube, range(3), journal=journal, key=key)
