"""Exported ONNX voices: load, inputs/outputs as Piper expects, the .onnx.json beside them, a smoke synthesis.

Each ``--model`` is resolved by the model registry (which parses its ``.onnx.json``, the one parser
of it) and leased from one model manager, built from the run's budget and device: the voice is
loaded exactly as ``voxmill synth`` would load it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from voxmill import errors
from voxmill.check.findings import Finding, Severity, finding
from voxmill.models.voice_config import config_path_for

if TYPE_CHECKING:
    from voxmill.engine import RunOptions
    from voxmill.models import ModelManager, ModelSpec, Registry, VoiceConfig

__all__ = ["SMOKE_TEXT", "run"]

SMOKE_TEXT = "The quick brown fox jumps over the lazy dog."
_INPUTS = {"input", "input_lengths", "scales"}


def run(models: list[Path], options: RunOptions | None = None) -> list[Finding]:
    """Findings for each voice in ``models``; ``options``: the run's model budget and device."""
    if not models:
        return [finding("voice.load", Severity.SKIP, "no --model given")]
    from voxmill.engine import RunOptions
    from voxmill.models import ModelManager, Registry

    options = options or RunOptions()
    registry = Registry()
    manager = ModelManager(
        budget_bytes=options.budget, gpu_budget_bytes=options.gpu_budget, device=options.device, registry=registry
    )
    try:
        out: list[Finding] = []
        for model in models:
            out += _voice(model, registry, manager)
        return out
    finally:
        manager.close()


def _resolve(model: Path, registry: Registry) -> ModelSpec | Finding:
    """The voice's spec, or the finding that says why it is not a usable voice."""
    try:
        return registry.resolve(model, kind="piper")
    except errors.ModelNotFound as exc:  # no such file, a folder, not an .onnx
        return finding("voice.load", Severity.FAIL, str(exc))
    except errors.ModelLoadError as exc:  # the .onnx.json is missing or not a voice config
        config = config_path_for(model)
        missing = not config.exists()
        hint = f"copy the training config.json there as {config.name}" if missing else "export the voice again"
        return finding("voice.config", Severity.FAIL, str(exc), hint=hint)


def _voice(model: Path, registry: Registry, manager: ModelManager) -> list[Finding]:
    name = model.name
    spec = _resolve(model, registry)
    if isinstance(spec, Finding):
        return [spec]
    voice = spec.voice
    if voice is None:  # the registry parses every Piper voice's config; a spec without one is a bug
        raise RuntimeError(f"{spec.name}: resolved without its voice config")
    # Checked before loading, so a config Piper cannot use is voice.config's finding, not voice.load's.
    problems = [] if voice.raw.get("phoneme_id_map") else ["phoneme_id_map missing"]
    if not problems:
        try:
            voice.piper_config()
        except errors.ModelLoadError as exc:
            problems.append(str(exc))
    if problems:
        return [finding("voice.config", Severity.FAIL, f"{name}: config is not one Piper can use", problems,
                        "copy the training config.json there as <voice>.onnx.json")]  # fmt: skip
    try:
        with manager.lease(spec) as piper_voice:
            return _loaded(name, voice, piper_voice)
    except errors.ModelTooLarge as exc:
        return [finding("voice.load", Severity.FAIL, str(exc), hint="raise the model budget (VOXMILL_BUDGET)")]
    except errors.ModelError as exc:
        return [finding("voice.load", Severity.FAIL, f"{model}: onnxruntime cannot load it ({exc})",
                        hint="the file is truncated or not an ONNX model; export it again")]  # fmt: skip


def _loaded(name: str, voice: VoiceConfig, piper_voice: Any) -> list[Finding]:
    out = [finding("voice.load", Severity.PASS, f"{name}: loads in onnxruntime")]
    inputs = {i.name for i in piper_voice.session.get_inputs()}
    outputs = [o.name for o in piper_voice.session.get_outputs()]
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
    if (voice.num_speakers > 1) != ("sid" in inputs):
        has = "has" if "sid" in inputs else "lacks"
        problem = f"num_speakers {voice.num_speakers} but the model {has} a sid input"
        out.append(finding("voice.config", Severity.FAIL, f"{name}: config disagrees with the model", [problem]))
        return out
    out.append(finding("voice.config", Severity.PASS, f"{name}.json agrees with the model"))
    out.append(_smoke(piper_voice, voice, name))
    return out


def _smoke(piper_voice: Any, voice: VoiceConfig, name: str) -> Finding:
    from piper.config import SynthesisConfig

    settings = SynthesisConfig(
        speaker_id=0 if voice.num_speakers > 1 else None,
        noise_scale=voice.noise_scale,
        length_scale=voice.length_scale,
        noise_w_scale=voice.noise_w,
    )
    try:
        start = time.perf_counter()
        chunks = list(piper_voice.synthesize(SMOKE_TEXT, syn_config=settings))
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
