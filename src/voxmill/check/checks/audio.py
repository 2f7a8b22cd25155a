"""Audio, per clip: decoding, format agreement, durations, clipping, silence, loudness spread, SNR."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from voxmill.audio.analysis import SILENCE_DB
from voxmill.check.data import CheckData
from voxmill.check.findings import Finding, Severity, finding, problems
from voxmill.check.stats import ClipStats
from voxmill.corpus import piper_min_seconds
from voxmill.errors import Reason

__all__ = ["LIMITS", "run"]

# Thresholds; each names what it protects against.
LIMITS = {
    "long_seconds": 20.0,  # VITS batches pad to the longest clip: a few very long clips blow GPU memory
    "clipping": 0.001,  # more than 0.1% of samples at full scale is audible distortion the voice learns
    "silence_ratio": 0.5,  # a clip that is mostly silence teaches the model to pause
    "edge_silence": 1.0,  # seconds of silence at either end: untrimmed recordings
    "loudness_iqr": 6.0,  # LU between the 25th and 75th percentile: inconsistent gain across sessions
    "snr_db": 15.0,  # below this the voice learns the noise floor
}


def run(data: CheckData) -> list[Finding]:
    clips = data.clips
    if not clips:
        return [finding("audio.decode", Severity.SKIP, "no clips with audio to check")]
    good = data.good
    failed = [c for c in clips if c.error is not None]
    out = [
        problems(
            "audio.decode",
            # A clip with no file at all is metadata.missing_audio's finding, not a decode failure.
            [f"{c.id}: {c.error}" for c in failed if c.code is not Reason.NON_FINITE and c.path],
            "clips do not decode",
            "re-export or drop them",
        ),
        problems(
            "audio.non_finite",
            [f"{c.id}: {c.error}" for c in failed if c.code is Reason.NON_FINITE],
            "clips contain NaN or inf samples",
            "re-export them; NaN poisons every gradient it touches",
        ),
    ]
    if not good:
        return out
    out.append(_sample_rate(data))
    multi = [f"{c.id}: {c.channels} channels" for c in good if c.channels > 1]
    out.append(problems("audio.channels", multi, "clips are not mono", "prepare downmixes to mono", Severity.WARN))
    subtypes = Counter(c.subtype for c in good)
    odd = [f"{c.id}: {c.subtype}" for c in good if c.subtype not in ("PCM_16", "")]
    out.append(
        problems(
            "audio.bit_depth",
            odd,
            f"clips are not 16-bit PCM ({', '.join(f'{k} {v}' for k, v in subtypes.most_common())})",
            "Piper reads any depth, but 16-bit is its format; voxmill prepare writes PCM_16",
            Severity.INFO,
        )
    )
    out.append(_durations(good))
    rate = _config_rate(data) or Counter(c.sample_rate for c in good).most_common(1)[0][0]
    minimum = piper_min_seconds(rate)
    short = [f"{c.id}: {c.duration:.2f}s" for c in good if c.duration < minimum]
    out.append(
        problems(
            "audio.too_short",
            short,
            f"clips are shorter than one Piper training window (8192 samples = {minimum:.2f}s at {rate} Hz)",
            "drop them (voxmill prepare does): VITS slices 8192-sample windows and crashes on shorter clips",
        )
    )
    # A clip with no speech at all is its own finding; the measures below are about clips with speech.
    mute = [f"{c.id}: {c.duration:.1f}s, no frame above {SILENCE_DB:g} dBFS" for c in good if _no_speech(c)]
    out.append(
        problems(
            "audio.no_speech",
            mute,
            "clips are silent throughout",
            "re-record or drop them: the voice would learn silence for their text",
        )
    )
    speaking = [c for c in good if not _no_speech(c)]
    thin = [
        f"{c.id}: {c.speech_seconds:.2f}s of {c.duration:.2f}s"
        for c in speaking
        if c.duration >= minimum and c.speech_seconds + 0.5 < minimum
    ]
    out.append(
        problems(
            "audio.too_short_after_trim",
            thin,
            "clips fall under one training window once their silence is trimmed",
            "re-record or drop them; trimming (voxmill prepare) would make them too short",
            Severity.WARN,
        )
    )
    long = [f"{c.id}: {c.duration:.1f}s" for c in good if c.duration > LIMITS["long_seconds"]]
    out.append(
        problems(
            "audio.too_long",
            long,
            f"clips are longer than {LIMITS['long_seconds']:g}s",
            "split them (voxmill convert/prepare --max-duration): batches pad to the longest clip",
            Severity.WARN,
        )
    )
    clipped = [f"{c.id}: {c.clipping:.2%}" for c in good if c.clipping > LIMITS["clipping"]]
    out.append(problems("audio.clipping", clipped, "clips are clipped", "re-record or drop them", Severity.WARN))
    silent = [f"{c.id}: {c.silence_ratio:.0%} silence" for c in speaking if c.silence_ratio > LIMITS["silence_ratio"]]
    out.append(problems("audio.silence", silent, "clips are mostly silence", "trim them or drop them", Severity.WARN))
    edges = [
        f"{c.id}: {c.leading_silence:.1f}s + {c.trailing_silence:.1f}s"
        for c in speaking
        if max(c.leading_silence, c.trailing_silence) > LIMITS["edge_silence"]
    ]
    out.append(
        problems(
            "audio.edge_silence",
            edges,
            f"clips have more than {LIMITS['edge_silence']:g}s of silence at an end",
            "trim them (voxmill prepare trims with Silero VAD)",
            Severity.WARN,
        )
    )
    out.append(_loudness(good))
    noisy = [f"{c.id}: {c.snr_db:.0f} dB" for c in good if math.isfinite(c.snr_db) and c.snr_db < LIMITS["snr_db"]]
    out.append(
        problems(
            "audio.snr",
            noisy,
            f"clips have an SNR below {LIMITS['snr_db']:g} dB",
            "denoise or drop them",
            Severity.WARN,
        )
    )
    return out


def _no_speech(clip: ClipStats) -> bool:
    return clip.duration > 0 and clip.silence_ratio >= 1.0


def _config_rate(data: CheckData) -> int | None:
    audio = (data.config or {}).get("audio")
    rate = audio.get("sample_rate") if isinstance(audio, dict) else None
    return rate if isinstance(rate, int) else None


def _sample_rate(data: CheckData) -> Finding:
    rates = Counter(c.sample_rate for c in data.good)
    expected = _config_rate(data)
    if expected is not None:
        wrong = [f"{c.id}: {c.sample_rate} Hz" for c in data.good if c.sample_rate != expected]
        if wrong:
            return finding(
                "audio.sample_rate",
                Severity.FAIL,
                f"{len(wrong)} clips are not at the config's {expected} Hz",
                wrong,
                "resample them (voxmill prepare --sample-rate) or fix audio.sample_rate in config.json",
            )
        return finding("audio.sample_rate", Severity.PASS, f"all clips at {expected} Hz, as the config says")
    if len(rates) > 1:
        main = rates.most_common(1)[0][0]
        odd = [f"{c.id}: {c.sample_rate} Hz" for c in data.good if c.sample_rate != main]
        return finding(
            "audio.sample_rate",
            Severity.FAIL,
            f"sample rates differ: {', '.join(f'{r} Hz x{n}' for r, n in rates.most_common())}",
            odd,
            "resample every clip to one rate (voxmill prepare --sample-rate)",
        )
    return finding("audio.sample_rate", Severity.PASS, f"all clips at {next(iter(rates))} Hz")


def _durations(good: list[ClipStats]) -> Finding:
    durations = np.array([c.duration for c in good])
    return finding(
        "audio.duration",
        Severity.INFO,
        f"{durations.sum() / 3600:.2f} h in {len(good)} clips; min {durations.min():.2f}s, "
        f"median {float(np.median(durations)):.2f}s, max {durations.max():.2f}s",
    )


def _loudness(good: list[ClipStats]) -> Finding:
    values = np.array([c.lufs for c in good if math.isfinite(c.lufs)])
    if values.size < 4:
        return finding("audio.loudness", Severity.SKIP, "fewer than 4 clips with a measurable loudness")
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    message = f"loudness median {median:.1f} LUFS, middle half {q1:.1f} to {q3:.1f} LUFS"
    if q3 - q1 > LIMITS["loudness_iqr"]:
        far = [f"{c.id}: {c.lufs:.1f} LUFS" for c in good if math.isfinite(c.lufs) and abs(c.lufs - median) > 6]
        return finding(
            "audio.loudness",
            Severity.WARN,
            message + f": spread over {LIMITS['loudness_iqr']:g} LU",
            far,
            "normalize loudness (voxmill prepare --loudness -23)",
        )
    return finding("audio.loudness", Severity.PASS, message)
