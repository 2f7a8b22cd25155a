"""Exported ONNX voices: load, inputs/outputs as Piper expects, the .onnx.json beside them, a smoke synthesis."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from voxmill.check.findings import Finding, Severity, finding

__all__ = ["SMOKE_TEXT", "run"]

SMOKE_TEXT = "The quick brown fox jumps over the lazy dog."
_INPUTS = {"input", "input_lengths", "scales"}


def run(models: list[Path]) -> list[Finding]:
    if not models:
        return [finding("voice.load", Severity.SKIP, "no --model given")]
    out: list[Finding] = []
    for model in models:
        out += _voice(model)
    return out


def _voice(model: Path) -> list[Finding]:
    import onnxruntime

    name = model.name
    if not model.is_file():
        return [finding("voice.load", Severity.FAIL, f"{model}: no such file")]
    try:
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        session = onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf/... kinds
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        return [
            finding(
                "voice.load",
                Severity.FAIL,
                f"{model}: onnxruntime cannot load it ({reason})",
                hint="the file is truncated or not an ONNX model; export it again",
            )
        ]
    out = [finding("voice.load", Severity.PASS, f"{name}: loads in onnxruntime")]
    inputs = {i.name for i in session.get_inputs()}
    outputs = [o.name for o in session.get_outputs()]
    if not inputs >= _INPUTS or not outputs:
        out.append(
            finding(
                "voice.io",
                Severity.FAIL,
                f"{name}: inputs {sorted(inputs)}, outputs {outputs}; Piper needs input, input_lengths, scales "
                "(+ sid when multi-speaker) and one audio output",
                hint="export with piper.train.export_onnx",
            )
        )
        return out
    out.append(finding("voice.io", Severity.PASS, f"{name}: inputs {', '.join(sorted(inputs))}"))
    config_path = model.with_name(model.name + ".json")
    try:
        config: dict[str, Any] = json.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        out.append(finding("voice.config", Severity.FAIL, f"{name}: no {config_path.name} beside it",
                           hint="copy the training config.json there as <voice>.onnx.json"))  # fmt: skip
        return out
    except (OSError, ValueError) as exc:
        out.append(finding("voice.config", Severity.FAIL, f"{config_path}: unreadable JSON ({exc})"))
        return out
    problems = []
    speakers = int(config.get("num_speakers", 1) or 1)
    if (speakers > 1) != ("sid" in inputs):
        problems.append(f"num_speakers {speakers} but the model {'has' if 'sid' in inputs else 'lacks'} a sid input")
    if not isinstance((config.get("audio") or {}).get("sample_rate"), int):
        problems.append("audio.sample_rate missing")
    if not config.get("phoneme_id_map"):
        problems.append("phoneme_id_map missing")
    if problems:
        out.append(finding("voice.config", Severity.FAIL, f"{name}: config disagrees with the model", problems))
        return out
    out.append(finding("voice.config", Severity.PASS, f"{config_path.name} agrees with the model"))
    out.append(_smoke(session, config, name))
    return out


def _smoke(session: Any, config: dict[str, Any], name: str) -> Finding:
    from piper import PiperVoice
    from piper.config import PiperConfig, SynthesisConfig

    inference = config.get("inference") or {}
    settings = SynthesisConfig(
        speaker_id=0 if int(config.get("num_speakers", 1) or 1) > 1 else None,
        noise_scale=float(inference.get("noise_scale", 0.667)),
        length_scale=float(inference.get("length_scale", 1.0)),
        noise_w_scale=float(inference.get("noise_w", 0.8)),
    )
    try:
        voice = PiperVoice(session=session, config=PiperConfig.from_dict(config))
        start = time.perf_counter()
        chunks = list(voice.synthesize(SMOKE_TEXT, syn_config=settings))
        seconds = time.perf_counter() - start
    except Exception as exc:  # a broken graph fails inside onnxruntime with its own error kinds
        return finding("voice.smoke", Severity.FAIL, f"{name}: synthesis failed ({type(exc).__name__}: {exc})")
    if not chunks:
        return finding("voice.smoke", Severity.FAIL, f"{name}: synthesis gave no audio")
    audio = np.concatenate([c.audio_float_array for c in chunks])
    rate = chunks[0].sample_rate
    duration = audio.shape[0] / rate
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    # ~44 characters of English take 2-4 s to say; allow a wide margin for slow or fast voices.
    if peak < 0.01 or not 1.0 <= duration <= 10.0:
        return finding(
            "voice.smoke",
            Severity.FAIL,
            f"{name}: {duration:.2f}s of audio, peak {peak:.3f}, for a {len(SMOKE_TEXT)}-character sentence",
            hint="silent or implausibly long/short speech: check the export and the inference settings",
        )
    return finding(
        "voice.smoke",
        Severity.PASS,
        f"{name}: {duration:.2f}s of speech in {seconds:.2f}s (real-time factor {seconds / duration:.3f})",
    )
