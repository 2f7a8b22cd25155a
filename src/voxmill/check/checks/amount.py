"""The dataset as a whole: is there anything to train on, is it speech, and is there enough of it."""

from __future__ import annotations

from voxmill.check.data import CheckData
from voxmill.check.findings import Finding, Severity, finding

__all__ = ["LIMITS", "run"]

LIMITS = {
    # Minutes of speech (clips with their edge silence trimmed) under which a voice is not worth
    # training. Fine-tuning a Piper checkpoint, the usual way to a new voice, wants at least ~30 min
    # (several hundred clips); below that it learns the recordings' few sentences, not the voice.
    # Training from scratch wants hours (Piper's own voices use 10+ h).
    "speech_minutes": 30.0,
    # Share of all audio that is silence above which the dataset is mostly silence, not speech: trimmed
    # clips of read speech hold 10-40% (pauses, breaths), a dataset over 80% cannot train a voice.
    "silence_share": 0.8,
}


def run(data: CheckData) -> list[Finding]:
    good = data.good
    if not good:
        what = "no rows" if not data.rows else f"none of the {len(data.rows)} rows has audio that decodes"
        return [
            finding(
                "dataset.size",
                Severity.FAIL,
                f"0 clips: {what}; there is nothing to train on",
                hint="point check at a folder with metadata.csv and wavs/ (or another layout prepare reads)",
            )
        ]
    total = sum(c.duration for c in good)
    speech = sum(c.speech_seconds for c in good)
    silence = sum(c.duration * c.silence_ratio for c in good)
    out = []
    share = silence / total if total > 0 else 1.0
    if share > LIMITS["silence_share"]:
        out.append(
            finding(
                "dataset.silence",
                Severity.FAIL,
                f"{share:.0%} of the audio ({silence / 60:.1f} of {total / 60:.1f} min) is silence: "
                "the dataset is not speech",
                hint="check the recordings (muted input, wrong channel) and the metadata's file names",
            )
        )
    else:
        out.append(finding("dataset.silence", Severity.PASS, f"{share:.0%} of the audio is silence"))
    minimum = LIMITS["speech_minutes"]
    if speech / 60 < minimum:
        out.append(
            finding(
                "dataset.size",
                Severity.WARN,
                f"{speech / 60:.1f} min of speech in {len(good)} clips: too little to train a voice "
                f"(fine-tuning a Piper checkpoint wants at least {minimum:g} min, training from scratch hours)",
                hint="record or collect more speech from the same speaker(s)",
            )
        )
    else:
        out.append(finding("dataset.size", Severity.PASS, f"{speech / 60:.1f} min of speech in {len(good)} clips"))
    return out
