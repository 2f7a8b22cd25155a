"""Which Piper voice speaks: resolved once, in the parent, through the model registry.

The registry parses the voice's ``.onnx.json`` (``ModelSpec.voice``, a
:class:`~voxmill.models.VoiceConfig`: sample rate, language, speakers, the voice's default scales);
the workers get the resolved spec and lease it, so they never look the name up again.
"""

from __future__ import annotations

from pathlib import Path

from voxmill import errors
from voxmill.models import ModelSpec, Registry, VoiceConfig
from voxmill.models.registry import shown

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
    config = voice_config(spec)
    text = str(speaker) if not isinstance(speaker, int) else ""
    if isinstance(speaker, int) or (text.isascii() and text.isdigit()):  # "²" is a digit, not a number
        # An id the voice does not have would fail every piece at the end of the book: refuse it now.
        # (A digit string is compared by length first: int() of 5,000 digits raises ValueError.)
        count = max(1, config.num_speakers)
        if len(text.lstrip("0")) > len(str(count)) or not 0 <= int(speaker) < count:
            raise errors.ConfigError(f"--speaker {shown(str(speaker))}: {spec.name} has speaker ids 0..{count - 1}")
        return int(speaker)
    speakers = config.speaker_id_map
    if speaker in speakers:
        return int(speakers[str(speaker)])
    known = shown(", ".join(sorted(speakers)), 2000) or "none (single-speaker voice)"
    raise errors.ConfigError(f"--speaker {shown(repr(speaker))}: not a speaker of {spec.name}; speakers: {known}")


def fingerprint(spec: ModelSpec) -> str:
    """Changes when the voice's model or config changes: part of every chapter's resume hash.

    The model's identity (:meth:`~voxmill.models.ModelSpec.identity`), not its content. A retrained
    voice exported over the old one has the same size (same architecture), and its mtime in whole
    seconds, or restored with ``cp -p``/``os.utime``, can be the old one; its ctime cannot."""
    return spec.identity()
