"""What a synth run tells its user besides the audio: warnings, each with a code, and the loudness reached."""

from __future__ import annotations

import enum
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from voxmill import errors
from voxmill.text.scripts import language_scripts, letter_scripts, script_name

__all__ = ["Loudness", "NoteCode", "SynthNote", "foreign_script_note", "loudness_note"]


class NoteCode(str, enum.Enum):
    FOREIGN_SCRIPT = "foreign_script"
    """Letters of a script the voice's language does not read: it names or spells them instead."""
    LOUDNESS_LIMITED = "loudness_limited"
    """The peak ceiling kept the output quieter than the loudness target."""


@dataclass(frozen=True)
class SynthNote:
    code: NoteCode
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code.value, "message": self.message}


@dataclass(frozen=True)
class Loudness:
    """The level of the output: ``lufs`` reached (None: silent, or unknown for chapters kept from an earlier
    run), ``gain_db`` applied, ``peak_db`` after the gain, ``limited`` when the peak ceiling held the gain
    below what ``target_lufs`` needed."""

    target_lufs: float | None
    lufs: float | None
    gain_db: float
    peak_db: float | None
    limited: bool
    peak_ceiling_db: float

    def to_dict(self) -> dict[str, Any]:
        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 2)

        return {"target_lufs": self.target_lufs, "lufs": rounded(self.lufs), "gain_db": round(self.gain_db, 3),
                "peak_db": rounded(self.peak_db), "limited": self.limited}  # fmt: skip

    def to_record(self) -> dict[str, Any]:
        """Unrounded, for the journal: chapters written after a resume get exactly the gain of those before."""
        return {"lufs": self.lufs, "gain_db": self.gain_db, "peak_db": self.peak_db, "limited": self.limited}

    @classmethod
    def from_record(cls, data: Any, target_lufs: float | None, peak_ceiling_db: float) -> Loudness:
        """A :meth:`to_record` back; ValueError/TypeError/KeyError for anything else.

        The gain is applied to every chapter written after a resume, so a record must be one
        :func:`~voxmill.synth.output.level_for` can make (the journal is in the output folder, and
        JSON reads ``NaN`` and ``Infinity``): finite numbers, no gain without a target, a gain of at
        most ``MAX_GAIN_DB`` either way, the peak after it at most the ceiling and the level reached at
        most the target. A record of 300 dB would write the next chapters as clipped noise; one of
        1e308 or NaN would stop the run with a traceback after writing them."""
        lufs, gain, peak, limited = data["lufs"], data["gain_db"], data["peak_db"], data["limited"]
        numbers = (lufs, gain, peak)
        if not isinstance(limited, bool) or not all(v is None or _finite(v) for v in numbers) or gain is None:
            raise TypeError("not a loudness record")
        slack = 0.01  # dB: rounding of the measurement
        if target_lufs is None:
            plausible = gain == 0 and lufs is None and peak is None and not limited
        else:
            plausible = (
                abs(gain) <= MAX_GAIN_DB
                and (peak is None or peak <= peak_ceiling_db + slack)
                and (lufs is None or lufs <= target_lufs + slack)
            )
        if not plausible:
            raise ValueError("not a level a synth run makes")
        return cls(target_lufs, lufs, float(gain), peak, limited, peak_ceiling_db)


# Speech at any level a voice makes is brought to any target with far less: more is a forged record.
MAX_GAIN_DB = 100.0


def _finite(value: Any) -> bool:
    return isinstance(value, float | int) and not isinstance(value, bool) and math.isfinite(value)


def loudness_note(level: Loudness) -> SynthNote | None:
    if not level.limited or level.target_lufs is None:
        return None
    reached = "" if level.lufs is None else f"{level.lufs:.1f} LUFS, "
    return SynthNote(
        NoteCode.LOUDNESS_LIMITED,
        f"loudness {reached}not the {level.target_lufs:g} LUFS target: more gain would push the peak over the "
        f"{level.peak_ceiling_db:g} dBFS ceiling (--peak-ceiling-db)",
    )


def foreign_script_note(texts: Iterable[str], voice: str, language: str) -> SynthNote | None:
    """A note when some of ``texts`` (the pieces to speak) hold letters of a script the voice's language
    does not read; ConfigError when no letter of them is in one it reads (the audio would be nothing but
    letter names). None for a language not known to :mod:`voxmill.text.scripts`."""
    scripts = language_scripts(language)
    if scripts is None:
        return None
    foreign: Counter[str] = Counter()
    pieces = flagged = speakable = 0
    example = ""
    for text in texts:
        pieces += 1
        counts = letter_scripts(text)
        outside = {script: n for script, n in counts.items() if script not in scripts}
        speakable += sum(counts.values()) - sum(outside.values())
        if outside:
            flagged += 1
            foreign.update(outside)
            example = example or text
    if not flagged:
        return None
    names = " and ".join(script_name(script) for script, _ in foreign.most_common(3))
    if speakable == 0:
        raise errors.ConfigError(
            f"the text is in {names}, which the voice {voice} ({language}) cannot speak (it would read out letter "
            "names); choose a voice for that language (voxmill voices)"
        )
    return SynthNote(
        NoteCode.FOREIGN_SCRIPT,
        f"{flagged} of {pieces} piece(s) have {names} letters, which the voice {voice} ({language}) cannot speak: "
        f"it reads out letter names there (first: {example[:40]!r})",
    )
