"""Text: character set, speaking-rate outliers per speaker, phonemes against the config's map."""

from __future__ import annotations

import unicodedata
from collections import Counter, defaultdict

import numpy as np

from voxmill.check.data import CheckData
from voxmill.check.findings import Finding, Severity, finding
from voxmill.corpus import Row

__all__ = ["run"]

# Letters, marks, digits, punctuation and spaces are what speech text is made of; symbols, controls,
# private-use and format characters (emoji, ©, zero-width joiners) have no pronunciation.
_SPOKEN = ("L", "M", "N", "P", "Zs")
IQR_FENCE = 3.0  # chars/sec beyond Q1 - 3 IQR or Q3 + 3 IQR of the speaker's clips: a misaligned transcript


def run(data: CheckData) -> list[Finding]:
    rows = [r for r in data.rows if r.error is None and r.text.strip()]
    out = [_charset(rows), _speaking_rate(data)]
    out += _phonemes(data)
    return out


def _script(ch: str) -> str:
    name = unicodedata.name(ch, "")
    return name.split(" ")[0] if name else "?"


def _charset(rows: list[Row]) -> Finding:
    chars: Counter[str] = Counter()
    for r in rows:
        chars.update(r.text)
    letters = [ch for ch in chars if unicodedata.category(ch).startswith("L")]
    scripts = Counter(_script(ch) for ch in letters for _ in range(chars[ch]))
    main_script = scripts.most_common(1)[0][0] if scripts else ""
    odd: dict[str, str] = {}
    for ch in chars:
        category = unicodedata.category(ch)
        if not category.startswith(_SPOKEN) and ch not in "\t":
            odd[ch] = f"{category} {unicodedata.name(ch, 'unnamed')}"
        elif category.startswith("L") and _script(ch) != main_script:
            odd[ch] = f"{_script(ch)} letter in {main_script} text"
    inventory = "".join(sorted(ch for ch in chars if ch not in odd and not ch.isspace()))
    if not odd:
        return finding("text.charset", Severity.PASS, f"{len(chars)} distinct characters: {inventory}")
    items = [f"{r.id}: {ch!r} ({odd[ch]})" for r in rows for ch in dict.fromkeys(r.text) if ch in odd]
    return finding(
        "text.charset",
        Severity.WARN,
        f"{len(odd)} characters with no pronunciation or from another script: " + " ".join(f"{ch!r}" for ch in odd),
        items,
        "spell them out or remove them; espeak reads them unpredictably or not at all",
    )


def _speaking_rate(data: CheckData) -> Finding:
    by_speaker: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for clip in data.good:
        if clip.duration > 0 and clip.text.strip():
            speech = clip.speech_seconds if clip.speech_seconds > 0.3 else clip.duration
            by_speaker[clip.speaker or ""].append((clip.id, len(clip.text.strip()) / speech))
    outliers = []
    for speaker, rates in by_speaker.items():
        if len(rates) < 8:
            continue  # too few clips to know the speaker's normal pace
        values = np.array([rate for _, rate in rates])
        q1, q3 = np.percentile(values, [25, 75])
        spread = max(q3 - q1, 0.1 * float(np.median(values)))
        low, high = q1 - IQR_FENCE * spread, q3 + IQR_FENCE * spread
        who = f" ({speaker})" if speaker else ""
        outliers += [f"{cid}{who}: {rate:.1f} chars/s" for cid, rate in rates if not low <= rate <= high]
    if not by_speaker:
        return finding("text.speaking_rate", Severity.SKIP, "no decoded clips with text")
    if not outliers:
        return finding("text.speaking_rate", Severity.PASS, "characters per second within each speaker's range")
    return finding(
        "text.speaking_rate",
        Severity.WARN,
        f"{len(outliers)} clips speak implausibly fast or slow for their speaker",
        outliers,
        "listen to them: the transcript probably belongs to another clip or is cut",
    )


def _phoneme_map(data: CheckData) -> dict[str, list[int]] | None:
    mapping = (data.config or {}).get("phoneme_id_map")
    if isinstance(mapping, dict) and mapping:
        return mapping
    return None


def _phonemes(data: CheckData) -> list[Finding]:
    if not data.espeak_voice:
        return [finding("text.phonemes", Severity.SKIP, "no espeak voice (config espeak.voice or --espeak-voice)")]
    voice_error = next((c.phoneme_error for c in data.clips if c.phoneme_error), None)
    if voice_error:
        hint = "set espeak.voice (or --espeak-voice) to a voice `espeak-ng --voices` lists, e.g. en-us"
        return [finding("text.phonemes", Severity.FAIL, voice_error, hint=hint)]
    mapping = _phoneme_map(data)
    source = "the config's phoneme_id_map"
    if mapping is None:
        from piper.phoneme_ids import DEFAULT_PHONEME_ID_MAP

        mapping, source = DEFAULT_PHONEME_ID_MAP, "piper's default phoneme map"
    used: Counter[str] = Counter()
    unknown: dict[str, list[str]] = defaultdict(list)
    for clip in data.clips:
        used.update(clip.phonemes)
        for p in dict.fromkeys(clip.phonemes):
            if p not in mapping:
                unknown[p].append(clip.id)
    out = []
    if unknown:
        out.append(
            finding(
                "text.phonemes",
                Severity.WARN,
                f"{len(unknown)} phonemes from espeak '{data.espeak_voice}' are missing from {source}: "
                + " ".join(unknown),
                [f"{p!r}: {', '.join(ids[:5])}" for p, ids in unknown.items()],
                "training drops unknown phonemes; add them to phoneme_id_map (and raise num_symbols)",
            )
        )
    else:
        out.append(finding("text.phonemes", Severity.PASS, f"every phoneme is in {source}"))
    covered = sum(1 for p in mapping if p in used)
    out.append(
        finding(
            "text.phoneme_coverage",
            Severity.INFO,
            f"{covered} of {len(mapping)} phonemes in the map occur in the texts",
        )
    )
    return out
