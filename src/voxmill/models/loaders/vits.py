"""A VITS voice (Piper's export) run as two onnxruntime sessions: text -> latent, then latent -> audio in
windows.

Why split a model that runs fine as one graph:

- **Memory.** The decoder (HiFi-GAN) upsamples 256x; at full rate its activations are ~64 channels x
  samples x 4 bytes, ~110 MB per tensor for a 20-second sentence, several alive at once. Decoding the
  latent in windows of ``window`` frames bounds that whatever the sentence length. Measured with
  two workers on the 1,075-word test book: 561 -> 300 MiB peak.
- **Exactness.** The decoder is convolutional with a finite receptive field (measured at load, see
  ``receptive_frames``); windows decoded with that much context on each side and trimmed give the same
  samples as one pass (max difference ~3e-7, float rounding).
- **Speed.** onnxruntime runs 1-D convolutions through im2col + GEMM, but 2-D ones through its
  blocked NCHWc kernels (AVX2/AVX-512). Each 1-D Conv/ConvTranspose becomes the identical 2-D one on
  a height-1 image: the whole voice 13.3x -> 15.9x realtime on one thread here from the decoder's,
  and the encoder's (text encoder, flows: 29% of the time) 5.45 -> 4.88 s on the test book.
- **Upsampling by phases.** Each ConvTranspose becomes plain convolutions that give its output's phases
  (:func:`~.vits_graph.polyphase`): onnxruntime has no blocked ConvTranspose.
- **Two stages.** The decoder itself is cut after its first upsampling block (:mod:`.vits_stages`): the
  windows' context is nearly all the low-rate stage's, the work nearly all the high-rate stages'.

Anything that does not look like a VITS export (no ``/dec/`` nodes, several outputs) is loaded as one
session. The graph surgery is :mod:`.vits_graph`, the two-stage runner :mod:`.vits_stages`, the cache
:mod:`.vits_cache`; this module splits, checks, loads and runs in windows.
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from voxmill.models.loaders.vits_cache import (
    ENCODER_DATA,
    HIGH_PART,
    LAID_DATA,
    LAID_GRAPH,
    cache_root,
    discard,
    laid_out_complete,
    laid_out_folder,
    prune_older,
    read_split,
    split_folder,
)
from voxmill.models.loaders.vits_graph import (
    DECODER_PREFIX,
    VitsParts,
    conv1d_as_conv2d,
    cut_decoder,
    polyphase,
    split_vits,
    stay_2d,
)
from voxmill.models.loaders.vits_stages import TwoStages

__all__ = ["VitsParts", "WindowedVits", "cache_root", "conv1d_as_conv2d", "load_vits", "split_folder", "split_vits"]

log = logging.getLogger(__name__)

# Latent frames per decoder call: 96 frames are ~1.1 s of audio at Piper's hop of 256 samples.
# Measured with two workers, the decoder in one part: 96 frames 28.3x realtime / 266 MiB, 128 28.6x /
# 300 MiB, 256 29.7x / 374 MiB, whole sentences 30.1x / 561 MiB. In two stages (vits_stages.py) a window
# recomputes ~1 frame of context on each side instead of 13, so 96 costs ~0.5% more than 128 (2% of the
# high-rate part against 1.6%) and its working set is 27 instead of 38 MiB per worker.
DEFAULT_WINDOW = 96
# Extra frames of context beyond the measured receptive field, against rounding in the probe.
CONTEXT_MARGIN = 2


class WindowedVits:
    """Quacks like the ``InferenceSession`` Piper calls: ``run(None, feeds) -> [audio]``."""

    def __init__(
        self,
        encoder: Any,
        decoder: Any,
        latent: str,
        channels: int,
        window: int = DEFAULT_WINDOW,
        high: Any = None,
        measured: Sequence[int] | None = None,
    ) -> None:
        """``high``: the decoder's high-rate part when the split cut it in two (``decoder`` is then its
        low-rate part): see :mod:`.vits_stages`; ``measured``: its parts' reach, probed before."""
        self.encoder = encoder
        self.decoder = decoder
        self.latent = latent
        self.channels = channels
        self.boundary = [o.name for o in encoder.get_outputs()]
        self.stages = TwoStages(decoder, high, latent, channels, window, measured) if high is not None else None
        self.window = window
        self.hop, self.context = (self.stages.hop, self.stages.context) if self.stages else self._probe()
        self._outputs = (high or decoder).get_outputs()

    @property
    def window(self) -> int:
        return self._window

    @window.setter
    def window(self, frames: int) -> None:
        self._window = frames
        if self.stages is not None:
            self.stages.window = frames

    def _decode(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray(self.decoder.run(None, feeds)[0]).reshape(-1)

    def _probe(self) -> tuple[int, int]:
        """Samples per latent frame, and the frames of context a window needs on each side: decode a
        random latent, nudge its middle frame, see how far the audio changes."""
        frames = 64
        feeds = {i.name: _zeros_like(i) for i in self.decoder.get_inputs() if i.name != self.latent}
        latent = np.random.default_rng(0).standard_normal((1, self.channels, frames)).astype(np.float32)
        out = np.asarray(self.decoder.run(None, {**feeds, self.latent: latent})[0])
        if out.size != out.shape[-1]:  # several channels: a decoder's first stage alone, not audio
            raise ValueError(f"the decoder gives {out.shape}, not one channel of audio")
        base = out.reshape(-1)
        hop = base.size // frames
        latent[:, :, frames // 2] += 1.0
        changed = np.flatnonzero(self._decode({**feeds, self.latent: latent}) != base)
        if changed.size == 0:
            return hop, frames
        middle = frames // 2 * hop
        reach = max(middle - changed[0], changed[-1] - middle - hop) / hop
        return hop, math.ceil(reach) + CONTEXT_MARGIN

    def get_inputs(self) -> Any:
        return self.encoder.get_inputs()

    def get_outputs(self) -> Any:
        return self._outputs

    def get_providers(self) -> Any:
        return self.encoder.get_providers()

    def run(self, output_names: Any, feeds: dict[str, Any], run_options: Any = None) -> list[np.ndarray]:
        found = dict(zip(self.boundary, self.encoder.run(None, feeds, run_options), strict=True))
        latent = found.pop(self.latent)
        if self.stages is not None:
            return [self.stages.decode(found, latent).reshape(1, 1, -1)]
        frames = latent.shape[-1]
        parts = []
        for start in range(0, frames, self.window):
            end = min(start + self.window, frames)
            low, high = max(0, start - self.context), min(frames, end + self.context)
            audio = self._decode({**found, self.latent: np.ascontiguousarray(latent[..., low:high])})
            offset = (start - low) * self.hop
            parts.append(audio[offset : offset + (end - start) * self.hop])
        audio = np.concatenate(parts) if parts else np.zeros(0, np.float32)
        return [audio.reshape(1, 1, -1)]


def _zeros_like(arg: Any) -> np.ndarray:
    shape = [d if isinstance(d, int) else 1 for d in arg.shape]
    return np.zeros(shape, np.float32)


def write_split(path: Path, folder: Path) -> None:
    """Split ``path`` into ``folder`` (``split.json`` + encoder.onnx + decoder.onnx), atomically: a
    temporary folder renamed into place, so a reader sees all of it or nothing.

    A split is kept only if it speaks the samples of the plain graph (``_verify``). A model the rewrite
    does not understand is recorded as ``{"vits": false, "reason": ...}``: it then runs as one session,
    the reason is logged once and shown by ``voxmill models status`` and ``voxmill doctor``, and the
    split is not tried again for that file. Only an unwritable cache fails (and is retried next time).
    """
    import onnx

    folder.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        try:
            meta = _split_into(onnx.load(str(path)), path, temporary)
        except (OSError, MemoryError):
            raise
        except Exception as exc:  # onnx and onnxruntime raise their own types for a graph they reject
            for part in ("encoder.onnx", "encoder.optimized.onnx", ENCODER_DATA, "decoder.onnx", HIGH_PART):
                (temporary / part).unlink(missing_ok=True)
            meta = {"vits": False, "reason": _one_line(exc)}
        (temporary / "split.json").write_text(json.dumps(meta), encoding="utf-8")
        try:
            temporary.rename(folder)
        except OSError:  # another process got there first: theirs is the same
            if not (folder / "split.json").exists():
                raise
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def _split_into(model: Any, path: Path, folder: Path) -> dict[str, Any]:
    import onnx

    parts = split_vits(model)
    if parts is None:
        return {"vits": False}
    del model  # ~60 MB of protobuf: the parts are copies
    onnx.save(conv1d_as_conv2d(parts.encoder), str(folder / "encoder.onnx"))
    _optimize(folder / "encoder.onnx")
    decoder = conv1d_as_conv2d(parts.decoder)
    meta: dict[str, Any] = {"vits": True, "latent": parts.latent, "channels": parts.channels}
    stages = cut_decoder(decoder, DECODER_PREFIX)
    if stages is not None:
        decoder, high, meta["cut"] = stages
        onnx.save(polyphase(stay_2d(high)), str(folder / HIGH_PART))
    onnx.save(polyphase(stay_2d(decoder)), str(folder / "decoder.onnx"))
    _verify(path, folder, meta)
    return meta


def _optimize(path: Path) -> None:
    """Replace the graph at ``path`` by onnxruntime's own optimization of it (up to its extended level:
    fusions that hold on any CPU, not the layout ones that depend on this CPU's vector width).

    Why: onnxruntime optimizes a graph at every load; for the encoder's 2,458 nodes that was 0.3 of the
    0.5 s it took to load, single-threaded at the start of every run and every model load of a server.
    Loaded again, the optimized graph gives the same samples (the same optimizations, done once); the
    cache key carries onnxruntime's version, since the fused operators are its own.

    Its weights go beside it (``ENCODER_DATA``): onnxruntime maps such a file instead of copying the
    weights out of the parsed graph, which took the load's peak RSS from 194 to 132 MiB for the encoder."""
    import onnx
    import onnxruntime

    from voxmill.models.devices import session_options

    options = session_options(1)
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    optimized = path.with_name(f"{path.stem}.optimized.onnx")
    options.optimized_model_filepath = str(optimized)
    onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    model = onnx.load(str(optimized))
    optimized.unlink()
    onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location=ENCODER_DATA,
              size_threshold=1024)  # fmt: skip
    (path.parent / ENCODER_DATA).touch()  # a graph without a weight that large: an empty file, as a marker


# Phoneme ids for the check: any Piper voice has at least this many symbols.
VERIFY_PHONEMES = 160
VERIFY_TOLERANCE = 1e-4  # float rounding of 2-D vs 1-D kernels is ~3e-7


def _verify(path: Path, folder: Path, meta: dict[str, Any]) -> None:
    """Speak one deterministic utterance through the plain graph and through the split; ValueError if
    they differ. Skipped for a model without Piper's inputs (the probe in WindowedVits still runs)."""
    import onnxruntime

    from voxmill.models.devices import session_options

    providers = ["CPUExecutionProvider"]
    plain = onnxruntime.InferenceSession(str(path), session_options(1), providers=providers)
    names = {i.name for i in plain.get_inputs()}
    if not {"input", "input_lengths", "scales"} <= names <= {"input", "input_lengths", "scales", "sid"}:
        return
    ids = np.random.default_rng(0).integers(1, 40, size=(1, VERIFY_PHONEMES)).astype(np.int64)
    feeds = {"input": ids, "input_lengths": np.array([ids.shape[1]], np.int64),
             "scales": np.array([0.0, 1.0, 0.0], np.float32)}  # fmt: skip
    if "sid" in names:
        feeds["sid"] = np.array([0], np.int64)
    expected = np.asarray(plain.run(None, feeds)[0]).reshape(-1)
    del plain

    def part(name: str) -> Any:
        return onnxruntime.InferenceSession(str(folder / name), session_options(1), providers=providers)

    # Short windows, so the check crosses several window (and low-rate block) boundaries.
    high = part(HIGH_PART) if meta.get("cut") else None
    split = WindowedVits(part("encoder.onnx"), part("decoder.onnx"), meta["latent"], int(meta["channels"]), 32, high)
    got = split.run(None, feeds)[0].reshape(-1)
    if got.shape != expected.shape:
        raise ValueError(f"the split speaks {got.size} samples where the voice speaks {expected.size}")
    worst = float(np.abs(got - expected).max()) if got.size else 0.0
    if not worst <= VERIFY_TOLERANCE:
        raise ValueError(f"the split's samples differ from the voice's by up to {worst:.2g}")
    if split.stages is not None:  # what the parts were probed for, so a load need not probe again
        meta["reach"] = list(split.stages.measured)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def split_note(path: Path) -> str | None:
    """Why ``path`` runs as one session instead of split, if its split was tried and failed; else None."""
    try:
        meta = read_split(split_folder(path))
    except OSError:  # the model itself is gone
        return None
    reason = meta.get("reason") if meta else None
    return f"runs as one session: {reason}" if reason else None


# Each voice's fallback is logged once per process, not once per worker thread or per reload.
_logged: set[str] = set()


def _log_once(path: Path, level: int, message: str, *args: Any) -> None:
    key = f"{path}|{message}"
    if key not in _logged:
        _logged.add(key)
        log.log(level, message, *args)


def load_vits(path: Path, options: Any, providers: list[Any], window: int = DEFAULT_WINDOW) -> Any:
    """A ``WindowedVits`` for a VITS export; one plain session for any other model.

    The split is made once per model file, in a child process, and cached: done in the worker it would
    leave ~180 MB of protobuf copies in its heap (measured: 328 vs 147 MiB after loading). A cached
    split that cannot be used (damaged or edited: see :mod:`.vits_cache`) is made again, once.
    """
    import onnxruntime

    folder = split_folder(path)
    for attempt in range(2):
        meta = read_split(folder)
        if meta is None:
            discard(folder)  # none, or not one we made
            reason = _make_split(path, folder)
            meta = read_split(folder)
            if meta is not None:  # made now: what older voxmills made of this file is not read again
                prune_older(path)
            if meta is None:
                reason = reason or "the split it made cannot be read back"
                _log_once(path, logging.WARNING, "%s: cannot split the voice (%s); it runs as one session",
                          path.name, reason)  # fmt: skip
                return onnxruntime.InferenceSession(str(path), options, providers=providers)
        if not meta["vits"]:
            if meta.get("reason"):
                _log_once(path, logging.WARNING, "%s: cannot split the voice (%s); it runs as one session",
                          path.name, meta["reason"])  # fmt: skip
            else:
                _log_once(path, logging.INFO, "%s: not a VITS export, runs as one session", path.name)
            return onnxruntime.InferenceSession(str(path), options, providers=providers)
        try:
            return _open_split(folder, meta, options, providers, window)
        except Exception as exc:  # a part truncated or swapped behind our back: split again, once
            if attempt:
                _log_once(path, logging.WARNING, "%s: the cached split cannot be loaded (%s); it runs as one "
                          "session", path.name, _one_line(exc))  # fmt: skip
            discard(folder)
    return onnxruntime.InferenceSession(str(path), options, providers=providers)


def _make_split(path: Path, folder: Path) -> str | None:
    """Split ``path`` into ``folder`` in a child process; the reason when that failed, else None."""
    done = subprocess.run(
        [sys.executable, "-m", "voxmill.models.loaders.vits", str(path), str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode == 0:
        return None
    return (done.stderr.strip().splitlines() or ["no output"])[-1]


def _encoder_session(folder: Path, options: Any, providers: list[Any]) -> Any:
    """The split's encoder, from its layout for this CPU when one was saved (:func:`.vits_cache.laid_out_folder`),
    else from its graph (saving that layout beside it, for the next load).

    Why: the graph is cached at onnxruntime's extended level (:func:`_optimize`: what holds on any CPU);
    the layout level left to do at each load (convolutions in blocks of the CPU's vector width) took 0.13
    of the encoder's 0.2-s load, at the start of every run while the workers wait. Loaded as saved, the
    session runs the same graph with the same kernels: the same samples (tested), and the load's peak
    is no higher (its weights are in a file beside it, mapped as the plain encoder's are)."""
    import onnxruntime

    plain = folder / "encoder.onnx"
    levels = onnxruntime.GraphOptimizationLevel
    laid = laid_out_folder(folder)
    every_level = options.graph_optimization_level == levels.ORT_ENABLE_ALL
    if laid is None or providers != ["CPUExecutionProvider"] or not every_level:
        return onnxruntime.InferenceSession(str(plain), options, providers=providers)
    if laid_out_complete(laid):
        options.graph_optimization_level = levels.ORT_DISABLE_ALL  # done: loaded as it was laid out
        try:
            return onnxruntime.InferenceSession(str(laid / LAID_GRAPH), options, providers=providers)
        except Exception:  # damaged (a full disk, an edit): laid out again below
            discard(laid)
        finally:
            options.graph_optimization_level = levels.ORT_ENABLE_ALL
    elif os.path.lexists(laid):  # not one we made (a file, a symlink: removed, never followed)
        discard(laid)
    _sweep_unfinished(folder, laid.name)
    # Saved into a folder of its own, renamed into place whole: a graph never meets another run's weights.
    making = folder / f".{laid.name}.{os.getpid()}-{os.urandom(4).hex()}"
    try:
        making.mkdir(mode=0o700)  # private, as the split's own folder
        options.optimized_model_filepath = str(making / LAID_GRAPH)
        options.add_session_config_entry("session.optimized_model_external_initializers_file_name", LAID_DATA)
        options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
    except OSError:  # a read-only cache: no layout saved, the session as ever
        return onnxruntime.InferenceSession(str(plain), options, providers=providers)
    # onnxruntime warns that a layout saved at this level fits only this kind of CPU: the folder's key.
    severity, options.log_severity_level = options.log_severity_level, 3
    try:
        session = onnxruntime.InferenceSession(str(plain), options, providers=providers)
        with contextlib.suppress(OSError):  # another run laid it out first: its folder stays
            making.rename(laid)
        return session
    finally:
        options.optimized_model_filepath = ""
        options.log_severity_level = severity
        shutil.rmtree(making, ignore_errors=True)


def _sweep_unfinished(folder: Path, name: str) -> None:
    """The layouts that runs killed while saving them left (``.NAME.PID-TOKEN``, up to 56 MB each): those
    whose process is gone. A symlink among them is removed, not followed."""
    import psutil

    for entry in folder.glob(f".{glob.escape(name)}.*-*"):
        pid = entry.name[len(name) + 2 :].partition("-")[0]
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            discard(entry)


def _open_split(folder: Path, meta: dict[str, Any], options: Any, providers: list[Any], window: int) -> WindowedVits:
    import onnxruntime

    latent = meta["latent"]
    # onnxruntime's memory patterns (one block per input shape, planned at the first run of each shape)
    # cost the same time here and more memory: with them, speaking the short lines of a dialogue grew a
    # worker by ~40 MiB, and the voice's load peaked 43 MiB higher (measured: 265 vs 222 MiB at load,
    # 272 vs 246 after two threads spoke; CPU per second of speech unchanged).
    pattern, options.enable_mem_pattern = options.enable_mem_pattern, False
    try:
        decoder = onnxruntime.InferenceSession(str(folder / "decoder.onnx"), options, providers=providers)
        # onnxruntime's memory planner takes 0.85 of the encoder's 1.15 s load (2,458 nodes); without it
        # the encoder loads in 0.28 s. Its tensors are at frame rate (kilobytes), so planning saves nothing.
        # (The decoder's session, made above, keeps its planner; so does a plain session made after this.)
        reuse, options.enable_mem_reuse = options.enable_mem_reuse, False
        try:
            encoder = _encoder_session(folder, options, providers)
        finally:
            options.enable_mem_reuse = reuse
        high = (
            onnxruntime.InferenceSession(str(folder / HIGH_PART), options, providers=providers)
            if "cut" in meta
            else None
        )
    finally:
        options.enable_mem_pattern = pattern
    produced = {o.name for o in encoder.get_outputs()}
    needed = {i.name for i in decoder.get_inputs()}
    # Parts that do not fit together (swapped, from another voice) would fail at every sentence.
    if latent not in needed or not needed <= produced or len(decoder.get_outputs()) != 1:
        raise ValueError("its encoder and decoder do not fit together")
    cut = [meta.get("cut")]
    if high is not None and not [i.name for i in high.get_inputs()] == [decoder.get_outputs()[0].name] == cut:
        raise ValueError("its decoder's two parts do not fit together")
    return WindowedVits(encoder, decoder, latent, int(meta["channels"]), window, high, meta.get("reach"))


if __name__ == "__main__":  # the child process load_vits starts: python -m ... MODEL FOLDER
    write_split(Path(sys.argv[1]), Path(sys.argv[2]))
