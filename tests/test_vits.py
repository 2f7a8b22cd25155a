"""The Piper voice split into encoder + windowed decoder (models/loaders/vits.py), against the plain graph."""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import subprocess
from pathlib import Path

import numpy as np
import pytest

from voxmill.models import Registry
from voxmill.models.devices import session_options
from voxmill.models.loaders.onnx import providers_for
from voxmill.models.loaders.piper import load_piper
from voxmill.models.loaders.vits import WindowedVits, conv1d_as_conv2d, load_vits, split_folder, split_note
from voxmill.models.loaders.vits_cache import REWRITE_VERSION, laid_out_folder

# Long enough for several 128-frame windows (~1.5 s each) in one sentence.
LONG = (
    "The miller walked along the river every morning before dawn, listening to the water turn the great "
    "wheel, counting the sacks of grain that the farmers had left at the door, and wondering whether the "
    "winter would be kind to the village this year."
)


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry(voices_dir="/nonexistent-voxmill-voices")


@pytest.fixture(scope="module")
def voices(registry: Registry) -> tuple[object, object]:
    from piper import PiperVoice

    spec = registry.get("piper:en_US-joe-medium")
    return PiperVoice.load(spec.path), load_piper(spec, "cpu", 1)


def _speak(voice: object, text: str) -> np.ndarray:
    from piper import SynthesisConfig

    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0, normalize_audio=False)
    return np.concatenate([c.audio_float_array for c in voice.synthesize(text, config)])  # type: ignore[attr-defined]


@pytest.mark.parametrize("text", [LONG, "Yes.", "Wait, what?"])
def test_windowed_voice_speaks_the_same_samples_as_one_pass(voices: tuple[object, object], text: str) -> None:
    plain, windowed = voices
    session = windowed.session  # type: ignore[attr-defined]
    assert isinstance(session, WindowedVits)
    assert session.hop == 256
    assert session.context >= 11  # the decoder's receptive field here: ~11 latent frames each side
    expected, got = _speak(plain, text), _speak(windowed, text)
    assert got.shape == expected.shape
    # Only float rounding differs (2-D vs 1-D convolution kernels): far below audibility (-80 dBFS).
    assert float(np.abs(got - expected).max()) < 1e-4


@pytest.mark.parametrize("window", [5, 33, 128, 100_000])
def test_two_stage_decoder_speaks_the_same_samples_at_any_window(voices: tuple[object, object], window: int) -> None:
    # The decoder is cut after its first upsampling block (vits_stages.py): the low-rate part runs in
    # blocks of 8 windows, the high-rate part in windows, each with its own context. Tiny windows cross
    # many block and window boundaries in one sentence; 100,000 frames is one pass of each part.
    plain, windowed = voices
    session = windowed.session  # type: ignore[attr-defined]
    assert session.stages is not None
    assert session.stages.high_context < session.stages.low_context  # the reason for the cut
    before = session.window
    try:
        session.window = window
        got = _speak(windowed, LONG)
    finally:
        session.window = before
    expected = _speak(plain, LONG)
    assert got.shape == expected.shape
    assert float(np.abs(got - expected).max()) < 1e-4


def _no_probe(*args: object) -> tuple[int, int]:
    raise AssertionError("the parts were probed again")


def test_the_split_is_cached_once_per_model_file(registry: Registry, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("VOXMILL_CACHE", str(tmp_path))
    spec = registry.get("piper:en_US-joe-medium")
    folder = split_folder(spec.path)
    assert folder.is_relative_to(tmp_path)
    # What an older voxmill (an earlier rewrite version) made of this file goes when the new split is
    # made: a symlink among them is removed, not followed; another voice's folder stays.
    older = split_folder(spec.path, REWRITE_VERSION - 1)
    older.mkdir(parents=True)
    (older / "encoder.onnx").write_bytes(b"old")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    split_folder(spec.path, 1).symlink_to(outside, target_is_directory=True)
    other = folder.with_name("en_US-joe-medium-0123456789abcdef")
    other.mkdir()
    load_vits(spec.path, session_options(1), providers_for("cpu"))
    assert not os.path.lexists(older) and not os.path.lexists(split_folder(spec.path, 1))
    assert (outside / "keep.txt").read_text() == "mine" and other.is_dir()
    # The decoder is cut in two stages (see vits_stages.py): its high-rate part is decoder_high.onnx.
    # encoder-KEY: the encoder as onnxruntime lays it out for this CPU (test below).
    laid = laid_out_folder(folder)
    assert laid is not None
    parts = ["decoder.onnx", "decoder_high.onnx", "encoder.data", "encoder.onnx", laid.name, "split.json"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(parts)
    stamp = (folder / "split.json").stat().st_mtime_ns
    # The decoder parts' probe is stored with the split: a later load sizes its windows without probing.
    measured = json.loads((folder / "split.json").read_text())["reach"]
    monkeypatch.setattr("voxmill.models.loaders.vits_stages.reach", _no_probe)
    again = load_vits(spec.path, session_options(1), providers_for("cpu"))
    assert (folder / "split.json").stat().st_mtime_ns == stamp
    assert list(again.stages.measured) == measured and again.hop == 256
    assert not [p for p in tmp_path.rglob(".*") if p.is_dir()]  # no temporary folder left behind


def _encode(session: WindowedVits) -> np.ndarray:
    ids = np.random.default_rng(1).integers(1, 60, size=(1, 90)).astype(np.int64)
    feeds = {"input": ids, "input_lengths": np.array([90], np.int64), "scales": np.array([0, 1, 0], np.float32)}
    return np.asarray(session.encoder.run(None, feeds)[0])


def _finished_pid() -> int:
    """The pid of a process that has ended (reaped): no process has it now."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_the_encoder_is_laid_out_for_this_cpu_once(registry: Registry, tmp_path: Path, monkeypatch) -> None:
    import onnx

    monkeypatch.setenv("VOXMILL_CACHE", str(tmp_path / "cache"))
    spec = registry.get("piper:en_US-joe-medium")
    first = load_vits(spec.path, session_options(1), providers_for("cpu"))  # splits, lays out the encoder
    laid = laid_out_folder(split_folder(spec.path))
    assert laid is not None and sorted(p.name for p in laid.iterdir()) == ["encoder.data", "encoder.onnx"]
    # Laid out: convolutions in the CPU's blocked layout, its weights beside the graph (mapped, not copied).
    graph = onnx.load(str(laid / "encoder.onnx"), load_external_data=False)
    assert any(n.domain == "com.microsoft.nchwc" for n in graph.graph.node)
    stamp = (laid / "encoder.onnx").stat().st_mtime_ns
    again = load_vits(spec.path, session_options(1), providers_for("cpu"))  # loads the layout as it is
    assert (laid / "encoder.onnx").stat().st_mtime_ns == stamp
    expected = _encode(first)
    assert np.array_equal(_encode(again), expected)  # the same graph, the same kernels: the same values
    assert stat.S_IMODE(laid.stat().st_mode) == 0o700  # private, as the split's folder
    # Damaged (cut short by a full disk): laid out again, never failing the voice. What a run killed while
    # laying it out left goes then; a run still at it keeps its folder.
    data = laid / "encoder.data"
    data.write_bytes(data.read_bytes()[:1000])
    dead = laid.with_name(f".{laid.name}.{_finished_pid()}-0a1b2c3d")
    live = laid.with_name(f".{laid.name}.{os.getpid()}-0a1b2c3d")
    for unfinished in (dead, live):
        unfinished.mkdir()
        (unfinished / "encoder.data").write_bytes(b"half")
    mended = load_vits(spec.path, session_options(1), providers_for("cpu"))
    assert np.array_equal(_encode(mended), expected) and data.stat().st_size > 1000
    assert not dead.exists() and live.is_dir()
    shutil.rmtree(live)
    # A symlink planted in its place is removed, never followed.
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "encoder.onnx").write_text("mine")
    (outside / "encoder.data").write_text("mine")
    shutil.rmtree(laid)
    laid.symlink_to(outside, target_is_directory=True)
    planted = load_vits(spec.path, session_options(1), providers_for("cpu"))
    assert np.array_equal(_encode(planted), expected)
    assert (outside / "encoder.onnx").read_text() == "mine" and not laid.is_symlink()
    assert not [p for p in tmp_path.rglob(".*") if p.is_dir()]  # no temporary folder left behind


def test_a_model_that_is_not_vits_runs_as_one_session(registry: Registry, tmp_path: Path, monkeypatch) -> None:
    import onnxruntime

    monkeypatch.setenv("VOXMILL_CACHE", str(tmp_path))
    vad = registry.get("silero-vad").path
    session = load_vits(vad, session_options(1), providers_for("cpu"))
    assert isinstance(session, onnxruntime.InferenceSession)


def test_an_unwritable_cache_falls_back_to_one_session(
    registry: Registry, tmp_path: Path, monkeypatch, caplog: pytest.LogCaptureFixture
) -> None:
    import onnxruntime

    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("VOXMILL_CACHE", str(blocker))
    spec = registry.get("piper:en_US-joe-medium")
    with caplog.at_level(logging.WARNING):
        session = load_vits(spec.path, session_options(1), providers_for("cpu"))
    assert isinstance(session, onnxruntime.InferenceSession)
    assert "cannot split the voice" in caplog.text


def _strip_value_info(source: Path, target: Path) -> Path:
    """``source`` as torch's exporter writes voices today: no value_info (the trained one kept them)."""
    import onnx

    model = onnx.load(str(source))
    del model.graph.value_info[:]
    onnx.save(model, str(target))
    return target


def test_a_fresh_piper_train_export_splits_too(
    registry: Registry, voices: tuple[object, object], tmp_path: Path, monkeypatch
) -> None:
    """Without value_info the split used to fall back ("names not found in value_infos: /Mul_7_output_0")."""
    from piper import PiperVoice

    monkeypatch.setenv("VOXMILL_CACHE", str(tmp_path / "cache"))
    spec = registry.get("piper:en_US-joe-medium")
    fresh = _strip_value_info(spec.path, tmp_path / "fresh.onnx")
    session = load_vits(fresh, session_options(1), providers_for("cpu"))
    assert isinstance(session, WindowedVits)
    assert split_note(fresh) is None
    plain, _ = voices
    windowed = PiperVoice(session=session, config=spec.voice.piper_config())  # type: ignore[union-attr]
    expected, got = _speak(plain, LONG), _speak(windowed, LONG)
    assert got.shape == expected.shape and float(np.abs(got - expected).max()) < 1e-4


def test_weights_shared_through_identity_are_rewritten_everywhere() -> None:
    """torch's exporter stores equal weights once, behind Identity nodes (an untrained voice's zero layers)."""
    import onnx
    import onnxruntime
    from onnx import TensorProto, helper, numpy_helper

    weight = np.random.default_rng(1).standard_normal((4, 4, 3)).astype(np.float32)
    nodes = [
        helper.make_node("Identity", ["w"], ["w_copy"]),
        helper.make_node("Conv", ["x", "w"], ["y"], name="/a/Conv", pads=[1, 1]),
        helper.make_node("Conv", ["y", "w_copy"], ["z"], name="/b/Conv", pads=[1, 1]),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, None])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4, None])], [numpy_helper.from_array(weight, "w")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    x = np.random.default_rng(2).standard_normal((1, 4, 50)).astype(np.float32)
    expected = onnxruntime.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    rewritten = conv1d_as_conv2d(onnx.ModelProto.FromString(model.SerializeToString()))
    assert sum(n.op_type == "Unsqueeze" for n in rewritten.graph.node) == 2  # both convolutions
    got = onnxruntime.InferenceSession(rewritten.SerializeToString()).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_a_decoder_part_kept_2d_speaks_the_same_samples() -> None:
    """stay_2d on a small decoder-shaped graph (LeakyRelu, ConvTranspose, a residual sum, a one-channel
    conv_post, Tanh): one Unsqueeze at the input instead of one per convolution, the same output."""
    import onnx
    import onnxruntime
    from onnx import TensorProto, helper, numpy_helper

    from voxmill.models.loaders.vits_graph import stay_2d

    rng = np.random.default_rng(3)
    weights = {"up": rng.standard_normal((8, 4, 4)), "res": rng.standard_normal((4, 4, 3)),
               "post": rng.standard_normal((1, 4, 7)), "bias": rng.standard_normal(4)}  # fmt: skip
    nodes = [
        helper.make_node("LeakyRelu", ["x"], ["a"], name="/dec/LeakyRelu", alpha=0.1),
        helper.make_node(
            "ConvTranspose", ["a", "up"], ["u"], name="/dec/ups.0/ConvTranspose", strides=[2], pads=[1, 1]
        ),
        helper.make_node("LeakyRelu", ["u"], ["b"], name="/dec/res/LeakyRelu", alpha=0.1),
        helper.make_node("Conv", ["b", "res", "bias"], ["c"], name="/dec/res/Conv", pads=[1, 1]),
        helper.make_node("Add", ["c", "u"], ["d"], name="/dec/res/Add"),
        helper.make_node("Div", ["d", "three"], ["e"], name="/dec/Div"),
        helper.make_node("LeakyRelu", ["e"], ["f"], name="/dec/LeakyRelu_1", alpha=0.01),
        helper.make_node("Conv", ["f", "post"], ["g"], name="/dec/conv_post/Conv", pads=[3, 3]),
        helper.make_node("Tanh", ["g"], ["y"], name="/dec/Tanh"),
    ]
    initializers = [numpy_helper.from_array(w.astype(np.float32), name) for name, w in weights.items()]
    initializers.append(numpy_helper.from_array(np.array(3.0, np.float32), "three"))
    graph = helper.make_graph(
        nodes, "dec", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, None])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, None])], initializers,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    x = rng.standard_normal((1, 8, 37)).astype(np.float32)
    expected = onnxruntime.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    rewritten = stay_2d(conv1d_as_conv2d(onnx.ModelProto.FromString(model.SerializeToString())))
    kinds = [n.op_type for n in rewritten.graph.node]
    assert kinds.count("Unsqueeze") == 1 and kinds.count("Squeeze") == 1  # at the input and the output
    assert kinds.count("ReduceSum") == 1  # the one-channel conv: each tap, shifted, summed
    # res + conv_post's two + a depthwise conv by 1 after the ConvTranspose and before each LeakyRelu
    # between convolutions (2; the one on the input runs before the part turns 2-D, as it was)
    assert kinds.count("Conv") == 6 and kinds.count("LeakyRelu") == 3
    assert "Div" not in kinds  # / 3 before a LeakyRelu: the depthwise conv before it multiplies by 1/3
    got = onnxruntime.InferenceSession(rewritten.SerializeToString(), session_options(1)).run(None, {"x": x})[0]
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize(
    ("taps", "stride", "pad", "group", "phased"),
    [(16, 8, 4, 1, True), (8, 4, 2, 1, True), (4, 2, 1, 1, True), (3, 3, 0, 1, True),  # K - 2p = s
     (5, 2, 1, 1, False), (4, 2, 1, 2, False), (16, 8, 3, 1, False)],  # not that shape, or grouped: kept
)  # fmt: skip
def test_upsampling_by_phases_speaks_the_same_samples(
    taps: int, stride: int, pad: int, group: int, phased: bool
) -> None:
    """polyphase: a HiFi-GAN-shaped ConvTranspose (kernel - 2 pads = stride) becomes plain convolutions
    per group of output phases, interleaved; any other is kept. The output is the same either way."""
    import onnx
    import onnxruntime
    from onnx import TensorProto, helper, numpy_helper

    from voxmill.models.loaders.vits_graph import polyphase

    rng = np.random.default_rng(taps * 10 + stride)
    weight = numpy_helper.from_array(rng.standard_normal((6, 4 // group, 1, taps)).astype(np.float32), "up")
    bias = numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "bias")
    up = helper.make_node("ConvTranspose", ["x", "up", "bias"], ["u"], name="/dec/ups.0/ConvTranspose",
                          strides=[1, stride], pads=[0, pad, 0, pad], group=group)  # fmt: skip
    graph = helper.make_graph(
        [up, helper.make_node("Tanh", ["u"], ["y"], name="/dec/Tanh")], "dec",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6, 1, None])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 1, None])], [weight, bias],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    rewritten = polyphase(onnx.ModelProto.FromString(model.SerializeToString()))
    assert ("ConvTranspose" not in [n.op_type for n in rewritten.graph.node]) == phased
    for frames in (1, 2, 37):
        x = rng.standard_normal((1, 6, 1, frames)).astype(np.float32)
        expected = onnxruntime.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
        got = onnxruntime.InferenceSession(rewritten.SerializeToString(), session_options(1)).run(None, {"x": x})[0]
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=1e-5)


def _not_local_vits(path: Path) -> Path:
    """A graph shaped like a Piper voice whose "decoder" looks at the whole utterance (a mean over time):
    it splits, but windows cannot give its samples, so the check after splitting must refuse it."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    axis = numpy_helper.from_array(np.array([1], np.int64), "axis1")
    nodes = [
        helper.make_node("Cast", ["input"], ["/enc/cast"], name="/enc/Cast", to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["/enc/cast", "axis1"], ["/enc/latent"], name="/enc/Unsqueeze"),
        helper.make_node("Conv", ["/enc/latent", "w"], ["/dec/conv"], name="/dec/Conv", pads=[1, 1]),
        helper.make_node("ReduceMean", ["/dec/conv"], ["/dec/mean"], name="/dec/ReduceMean", axes=[2]),
        helper.make_node("Add", ["/dec/conv", "/dec/mean"], ["output"], name="/dec/Add"),
    ]
    graph = helper.make_graph(
        nodes, "not-vits",
        [helper.make_tensor_value_info("input", TensorProto.INT64, [1, None]),
         helper.make_tensor_value_info("input_lengths", TensorProto.INT64, [1]),
         helper.make_tensor_value_info("scales", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 1, None])],
        [numpy_helper.from_array(np.ones((1, 1, 3), np.float32), "w"), axis],
    )  # fmt: skip
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)]), str(path))
    return path


def test_a_voice_that_cannot_be_split_says_why_once(tmp_path: Path, monkeypatch, caplog) -> None:
    import onnxruntime

    monkeypatch.setenv("VOXMILL_CACHE", str(tmp_path / "cache"))
    model = _not_local_vits(tmp_path / "odd.onnx")
    with caplog.at_level(logging.WARNING):
        session = load_vits(model, session_options(1), providers_for("cpu"))
        stamp = (split_folder(model) / "split.json").stat().st_mtime_ns
        again = load_vits(model, session_options(1), providers_for("cpu"))
    assert isinstance(session, onnxruntime.InferenceSession) and isinstance(again, onnxruntime.InferenceSession)
    note = split_note(model)
    assert note is not None and note.startswith("runs as one session: ValueError: the split's samples differ")
    warnings = [r.getMessage() for r in caplog.records if "cannot split the voice" in r.getMessage()]
    assert len(warnings) == 1 and "differ" in warnings[0]  # logged once, with the reason
    assert (split_folder(model) / "split.json").stat().st_mtime_ns == stamp  # not tried again
    assert sorted(p.name for p in split_folder(model).iterdir()) == ["split.json"]
