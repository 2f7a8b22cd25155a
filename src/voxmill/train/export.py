"""A training checkpoint as a Piper voice: ``NAME.onnx`` + ``NAME.onnx.json``, exported in a child process.

Why a child: torch, Lightning and a ~900 MB checkpoint (generator, discriminator, Adam states) would
otherwise stay in the caller's memory for the rest of a training run or a server's life; a process
that exits gives all of it back. ``python -m piper.train.export_onnx`` cannot be used: with torch 2.13
it takes the dynamo exporter, which fails on VITS's data-dependent lengths. The legacy TorchScript
exporter (``dynamo=False``, opset 15, what Piper's own voices were made with) works.

The voice is what Piper's runtimes expect: inputs ``input`` (int64 [batch, phonemes]),
``input_lengths`` (int64 [batch]), ``scales`` (float32 [noise, length, noise_w]) and, for a
multi-speaker model only, ``sid`` (int64 [batch]); one output ``output`` (float32 [batch, 1, 1, time]).
Its ``.onnx.json`` is the trainer's own ``config.json`` (phonemes, symbols, speakers, espeak voice,
rate, inference scales) plus what a published voice carries: quality, dataset, language code.

Atomic: the model is exported under a temporary name that does not end in ``.onnx`` (the registry
lists every ``*.onnx`` as a voice), then the ``.onnx.json`` is written, then the model is renamed into
place. The registry never sees a model without its config, and a process killed half-way leaves no
half voice under the final name.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from voxmill import errors
from voxmill.audio.io import atomic_path
from voxmill.models.voice_config import VoiceConfig, config_path_for

__all__ = ["EXPORT_TIMEOUT_S", "OPSET_VERSION", "export_voice", "language_code", "main", "voice_config"]

OPSET_VERSION = 15
# Loading a medium checkpoint and exporting it takes ~25 s on a laptop CPU; an hour means it hangs.
EXPORT_TIMEOUT_S = 3600.0
# The dummy sentence traced through the model (any length: the phoneme axis is dynamic).
_DUMMY_PHONEMES = 50
_PART = ".part"


def language_code(espeak_voice: str) -> str:
    """Piper's ``language.code`` from an espeak voice: "en-us" -> "en_US", "pt-br" -> "pt_BR", "ru" -> "ru"."""
    parts = espeak_voice.split("-")
    family = parts[0]
    region = parts[1] if len(parts) > 1 and len(parts[1]) == 2 and parts[1].isalpha() else ""
    return f"{family}_{region.upper()}" if region else family


def voice_config(trainer_config: dict[str, Any], *, quality: str, dataset: str, voice_name: str = "",
                 provenance: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """The ``.onnx.json`` of a voice trained with ``trainer_config`` (the trainer's ``config.json``).

    ValueError saying what is wrong when the result is not a config voxmill and Piper can both use.
    """
    config = json.loads(json.dumps(trainer_config))  # a deep copy that is plain JSON
    if not isinstance(config, dict):
        raise ValueError("the trainer's config is not a JSON object")
    audio = config.setdefault("audio", {})
    if not isinstance(audio, dict):
        raise ValueError("audio must be a JSON object")
    audio["quality"] = quality.replace("-", "_")  # published Piper voices spell it x_low
    espeak_voice = str(_section(config, "espeak").get("voice") or "")
    language = _section(config, "language")
    code = language.get("code") or (language_code(espeak_voice) if espeak_voice else "")
    if code:  # a text-phoneme voice without either says nothing of its language: no guess
        config["language"] = {**language, "code": code, "family": language.get("family") or code.split("_")[0]}
    config["dataset"] = dataset
    # The trainer writes the Piper version its format needs ("1.5.0"); otherwise the one that trained it.
    config.setdefault("piper_version", _piper_version())
    config["voxmill"] = {"voice_name": voice_name, **(provenance or {})}
    parsed = VoiceConfig.from_dict(config)  # voxmill's own parser: what the registry will read
    try:
        parsed.piper_config()  # and Piper's: num_symbols, phoneme_id_map, ... present
    except errors.ModelLoadError as exc:
        raise ValueError(str(exc)) from None
    return config


def _section(config: dict[str, Any], key: str) -> dict[str, Any]:
    value = config.get(key)
    return value if isinstance(value, dict) else {}


def _piper_version() -> str:
    try:
        return importlib.metadata.version("piper-tts")
    except importlib.metadata.PackageNotFoundError:
        return "1.0.0"


def _read_trainer_config(path: Path) -> dict[str, Any]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        why = exc.strerror or exc
        raise _error(f"{path}: cannot read the trainer's config: {why}", errors.Reason.MISSING) from None
    except ValueError as exc:
        raise _error(f"{path}: the trainer's config is not valid JSON: {exc}", errors.Reason.CONFIG) from None
    if not isinstance(raw, dict):
        raise _error(f"{path}: the trainer's config is not a JSON object", errors.Reason.CONFIG)
    return raw


def _error(message: str, code: errors.Reason = errors.Reason.PROCESSING) -> errors.ProcessingError:
    error = errors.ProcessingError(" ".join(message.split()))
    error.code = code
    return error


def _part_path(onnx: Path) -> Path:
    return onnx.with_name(f".{onnx.name}.{os.getpid()}-{os.urandom(4).hex()}{_PART}")


def _remove_stale_parts(onnx: Path) -> None:
    """Temporaries of ``onnx`` left by an export whose process is gone (killed, or a crashed machine)."""
    for part in onnx.parent.glob(f".{onnx.name}.*{_PART}"):
        pid = part.name[len(onnx.name) + 2 :].split("-", 1)[0]
        try:
            os.kill(int(pid), 0)  # signal 0: only asks whether the process exists
        except ProcessLookupError:
            part.unlink(missing_ok=True)
        except (OSError, ValueError):
            continue  # alive under another user, or not a name this module makes: not ours to remove


def export_voice(checkpoint: Path, trainer_config: Path, out_onnx: Path, *, voice_name: str, quality: str,
                 dataset: str, timeout_s: float = EXPORT_TIMEOUT_S, step: int | None = None) -> Path:  # fmt: skip
    """Export ``checkpoint`` to ``out_onnx`` + ``out_onnx.json`` (in a child process); returns ``out_onnx``.

    ``step``: the training step the weights hold, recorded in the config (``voxmill.step``) in the same
    write as the rest, so a voice on disk always says which weights it is (a rerun does not export them twice).
    ProcessingError (one line, ending with the child's own last error line) when it fails; its code
    says ``timeout`` when it ran past ``timeout_s``.
    """
    checkpoint, trainer_config, out_onnx = Path(checkpoint), Path(trainer_config), Path(out_onnx)
    if not checkpoint.is_file():
        raise _error(f"{checkpoint}: no such checkpoint", errors.Reason.MISSING)
    if out_onnx.suffix != ".onnx":
        raise _error(f"{out_onnx}: a voice's file name must end in .onnx", errors.Reason.CONFIG)
    try:
        # Checked here, before minutes of loading in the child: a config neither voxmill nor Piper can use.
        voice_config(_read_trainer_config(trainer_config), quality=quality, dataset=dataset)
    except ValueError as exc:
        raise _error(f"{trainer_config}: {exc}", errors.Reason.CONFIG) from None
    out_onnx.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_parts(out_onnx)
    part = _part_path(out_onnx)
    command = [sys.executable, "-m", "voxmill.train.export", str(checkpoint), str(trainer_config), str(out_onnx),
               "--part", str(part), "--voice-name", voice_name, "--quality", quality, "--dataset", dataset,
               "--parent", str(os.getpid())]  # fmt: skip
    if step is not None:
        command += ["--step", str(int(step))]
    try:
        done = subprocess.run(command, capture_output=True, text=True, errors="replace", timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise _error(f"export of {checkpoint.name} ran past {timeout_s:.0f} s", errors.Reason.TIMEOUT) from None
    finally:
        part.unlink(missing_ok=True)
    if done.returncode != 0:
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        why = lines[-1] if lines else f"exit status {done.returncode}"
        raise _error(f"export of {checkpoint} to {out_onnx.name} failed: {why[:500]}")
    return out_onnx


# ---- the child ----------------------------------------------------------------------------------


@contextlib.contextmanager
def _no_stdout() -> Iterator[None]:
    """Lightning and torch print progress to stdout, which carries only the child's one JSON result line."""
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        yield


def _load_generator(checkpoint: Path) -> tuple[Any, dict[str, Any]]:
    """The checkpoint's generator, ready for inference, and its epoch and global step."""
    import torch
    from piper.train.vits.lightning import VitsModel

    # weights_only: a checkpoint is a pickle, and unpickling can run code; Lightning's checkpoints (weights,
    # hyper-parameters, loop and callback state) are plain data that the safe loader reads.
    model = VitsModel.load_from_checkpoint(checkpoint, map_location="cpu", weights_only=True, mos_metric=None)
    generator = model.model_g
    generator.eval()
    with torch.no_grad():
        generator.dec.remove_weight_norm()  # folded into the weights: the ONNX graph has no norm ops
    meta = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)
    return generator, {"epoch": meta.get("epoch"), "global_step": meta.get("global_step")}


def _inference_module(generator: Any) -> Any:
    """``generator.infer`` behind the forward Piper's voices have: (input, input_lengths, scales[, sid])."""
    import torch

    class PiperInference(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            # infer() is called directly, never generator(): the exporter names nodes by the modules
            # called, so the decoder's stay "/dec/..." as in Piper's voices (voxmill's loader splits there).
            self.generator = generator

        def forward(self, phonemes: Any, lengths: Any, scales: Any, sid: Any = None) -> Any:
            audio = self.generator.infer(phonemes, lengths, sid=sid, noise_scale=scales[0], length_scale=scales[1],
                                         noise_scale_w=scales[2])[0]  # fmt: skip
            return audio.unsqueeze(1)  # [batch, 1, 1, time], the shape of Piper's voices

    return PiperInference().eval()


def _export_onnx(generator: Any, part: Path) -> None:
    import torch

    torch.manual_seed(1234)  # the traced dummy sentence (and its noise) is the same on every export
    speakers = int(generator.n_speakers)
    phonemes = torch.randint(low=0, high=int(generator.n_vocab), size=(1, _DUMMY_PHONEMES), dtype=torch.long)
    lengths = torch.tensor([_DUMMY_PHONEMES], dtype=torch.long)
    scales = torch.tensor([0.667, 1.0, 0.8], dtype=torch.float32)
    names = ["input", "input_lengths", "scales"]
    args: tuple[Any, ...] = (phonemes, lengths, scales)
    axes = {"input": {0: "batch_size", 1: "phonemes"}, "input_lengths": {0: "batch_size"},
            "output": {0: "batch_size", 3: "time"}}  # fmt: skip
    if speakers > 1:
        names.append("sid")
        args = (*args, torch.tensor([0], dtype=torch.long))
        axes["sid"] = {0: "batch_size"}
    with torch.no_grad():
        torch.onnx.export(_inference_module(generator), args, str(part), input_names=names, output_names=["output"],
                          dynamic_axes=axes, opset_version=OPSET_VERSION, dynamo=False)  # fmt: skip


def _check_agrees(generator: Any, config: dict[str, Any]) -> None:
    """A config that disagrees with the weights makes a voice that fails at its first sentence."""
    symbols, speakers = int(generator.n_vocab), int(generator.n_speakers)
    if config.get("num_symbols") != symbols:
        raise ValueError(f"the checkpoint has {symbols} symbols, the config says {config.get('num_symbols')}")
    if int(config.get("num_speakers") or 1) != speakers:
        raise ValueError(f"the checkpoint has {speakers} speakers, the config says {config.get('num_speakers')}")


def _run_child(args: argparse.Namespace) -> dict[str, Any]:
    checkpoint, onnx, part = Path(args.checkpoint), Path(args.onnx), Path(args.part)
    trainer_config = _read_trainer_config(Path(args.config))
    started = time.perf_counter()
    with _no_stdout():
        generator, meta = _load_generator(checkpoint)
        _check_agrees(generator, trainer_config)
        _export_onnx(generator, part)
    provenance = {"checkpoint": checkpoint.name, **meta, "exported": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if args.step is not None:
        provenance["step"] = args.step
    config = voice_config(trainer_config, quality=args.quality, dataset=args.dataset, voice_name=args.voice_name,
                          provenance=provenance)  # fmt: skip
    with atomic_path(config_path_for(onnx)) as tmp:
        tmp.write_text(json.dumps(config, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(part, onnx)
    return {"onnx": str(onnx), **meta, "seconds": round(time.perf_counter() - started, 2)}


def _watch_parent(parent: int, part: Path) -> None:
    """A killed ``voxmill train`` must not leave an export running with nobody to record it: the
    checkpoint stays where it is and the next run exports it."""
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            part.unlink(missing_ok=True)
            os._exit(3)


def main(argv: list[str] | None = None) -> int:
    """The child: ``python -m voxmill.train.export CKPT CONFIG OUT.onnx --part TMP ...``; prints one JSON line."""
    parser = argparse.ArgumentParser(prog="python -m voxmill.train.export", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("config", help="the trainer's config.json")
    parser.add_argument("onnx", help="the voice to write (NAME.onnx; NAME.onnx.json beside it)")
    parser.add_argument("--part", help="temporary file for the model (default: beside it)")
    parser.add_argument("--voice-name", default="")
    parser.add_argument("--quality", default="medium")
    parser.add_argument("--dataset", default="")
    parser.add_argument("--step", type=int, default=None, help="the training step the weights hold")
    parser.add_argument("--parent", type=int, default=None, help="stop when this process is gone")
    args = parser.parse_args(argv)
    args.part = args.part or str(_part_path(Path(args.onnx)))
    if args.parent is not None:
        threading.Thread(target=_watch_parent, args=(args.parent, Path(args.part)), daemon=True).start()
    try:
        result = _run_child(args)
    except Exception as exc:  # torch and Lightning raise every kind: one line for the parent to show
        Path(args.part).unlink(missing_ok=True)
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"export failed: {type(exc).__name__}: {message}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
