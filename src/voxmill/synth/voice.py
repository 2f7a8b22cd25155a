"""Which Piper voice speaks: resolved once, in the parent, through the model registry.

The registry parses the voice's ``.onnx.json`` (``ModelSpec.voice``, a
:class:`~voxmill.models.VoiceConfig`: sample rate, language, speakers, the voice's default scales);
the workers get the resolved spec and lease it, so they never look the name up again.
"""

from __future__ import annotations

from pathlib import Path

from voxmill import errors
from voxmill.models import ModelSpec, Registry, VoiceConfig

__all__ = ["fingerprint", "resolve_voice", "speaker_id", "voice_config"]


def resolve_voice(voice: str | Path, voices_dir: Path | None = None) -> ModelSpec:
    """``piper:NAME``, ``NAME`` (installed, or in ``voices_dir``) or a path to ``X.onnx``.

    ConfigError (a usage error: exit 2) naming the available voices for an unknown one, and saying so
    for a voice whose ``.onnx.json`` is missing or unreadable.
    """
    try:
        spec = Registry(voices_dir).resolve(str(voice), kind="piper")
    except errors.ModelError as exc:
        raise errors.ConfigError(f"voice {str(voice)!r}: {exc}") from None
    if spec.voice is None:
        raise errors.ConfigError(f"voice {str(voice)!r} is not a Piper voice ({spec.kind} model {spec.path})")
    return spec


def voice_config(spec: ModelSpec) -> VoiceConfig:
    """The parsed config of a spec :func:`resolve_voice` returned."""
    if spec.voice is None:  # resolve_voice never returns one
        raise errors.ConfigError(f"{spec.name} is not a Piper voice")
    return spec.voice


def speaker_id(spec: ModelSpec, speaker: int | str | None) -> int | None:
    """The id of ``speaker`` (an id or a name of the voice's speaker map); None: the voice's default."""
    if speaker is None:
        return None
    if isinstance(speaker, int) or str(speaker).isdigit():
        return int(speaker)
    speakers = voice_config(spec).speaker_id_map
    if speaker in speakers:
        return int(speakers[str(speaker)])
    known = ", ".join(sorted(speakers)) or "none (single-speaker voice)"
    raise errors.ConfigError(f"--speaker {speaker!r}: not a speaker of {spec.name}; speakers: {known}")


def fingerprint(spec: ModelSpec) -> str:
    """Changes when the voice's model or config changes: part of every chapter's resume hash.

    The model's identity, not its content (hashing 60 MB per run would cost more than a chapter): size,
    mtime and ctime in nanoseconds, inode. A retrained voice exported over the old one has the same
    size (same architecture), and its mtime in whole seconds, or restored with ``cp -p``/``os.utime``,
    can be the old one; its ctime cannot."""
    stat = spec.path.stat()
    return f"{voice_config(spec).digest}:{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ctime_ns}:{stat.st_ino}"
