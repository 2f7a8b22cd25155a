"""Speakers and the Piper config: required fields, sane inference settings, agreement with the data."""

from __future__ import annotations

from collections import Counter
from typing import Any

from voxmill.check.data import CheckData
from voxmill.check.findings import Finding, Severity, finding
from voxmill.corpus.piper import PIPER_NUM_SYMBOLS
from voxmill.models.voice_config import DEFAULT_LENGTH_SCALE, DEFAULT_NOISE_SCALE, DEFAULT_NOISE_W

__all__ = ["run"]

REQUIRED = ("audio.sample_rate", "espeak.voice", "num_symbols", "num_speakers", "phoneme_id_map")
PHONEME_TYPES = ("espeak", "text", "pinyin")
# (low, high) for inference settings; outside these a voice mumbles, drones or rushes.
RANGES = {"noise_scale": (0.0, 1.5), "length_scale": (0.5, 2.0), "noise_w": (0.0, 1.5)}
MIN_CLIPS_PER_SPEAKER = 20


def _get(config: dict[str, Any], dotted: str) -> Any:
    value: Any = config
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def run(data: CheckData) -> list[Finding]:
    return _speakers(data) + _config(data)


def _speakers(data: CheckData) -> list[Finding]:
    rows = [r for r in data.rows if r.error is None]
    counts = Counter(r.speaker for r in rows if r.speaker)
    out = []
    if counts and len(counts) * 2 > len(rows) >= 10:
        out.append(
            finding(
                "speakers.count",
                Severity.FAIL,
                f"{len(counts)} speakers for {len(rows)} clips: the speaker column is probably text",
                hint="read the file as id|text|normalized (--source-format, or fix the columns)",
            )
        )
    else:
        out.append(finding("speakers.count", Severity.INFO, f"{len(counts) or 1} speaker(s)"))
    few = [f"{s}: {n} clips" for s, n in counts.items() if n < MIN_CLIPS_PER_SPEAKER]
    if counts:
        spread = f"clips per speaker: min {min(counts.values())}, max {max(counts.values())}"
        out.append(
            finding(
                "speakers.clips",
                Severity.WARN if few else Severity.INFO,
                spread + (f"; {len(few)} speakers under {MIN_CLIPS_PER_SPEAKER}" if few else ""),
                few,
                "speakers with few clips are learned poorly; merge or drop them" if few else "",
            )
        )
    config = data.config
    if config is None:
        return out
    speakers = sorted(counts)
    declared = config.get("num_speakers")
    actual = max(1, len(speakers))
    if isinstance(declared, int) and declared != actual:
        out.append(
            finding(
                "speakers.num_speakers",
                Severity.FAIL,
                f"config num_speakers is {declared}, the metadata has {actual}",
                hint=f"set num_speakers to {actual} (and speaker_id_map to match)",
            )
        )
    elif isinstance(declared, int):
        out.append(finding("speakers.num_speakers", Severity.PASS, f"num_speakers {declared} matches the metadata"))
    id_map = config.get("speaker_id_map") or {}
    if speakers and isinstance(id_map, dict):
        missing = [s for s in speakers if s not in id_map]
        if missing:
            out.append(
                finding(
                    "speakers.id_map",
                    Severity.FAIL,
                    f"{len(missing)} speakers are not in the config's speaker_id_map",
                    missing,
                    "regenerate config.json from the metadata (voxmill prepare writes both)",
                )
            )
        else:
            out.append(finding("speakers.id_map", Severity.PASS, "every speaker has an id"))
    return out


def _config(data: CheckData) -> list[Finding]:
    if data.config_error:
        return [finding("config.read", Severity.FAIL, data.config_error, hint="fix or regenerate config.json")]
    config = data.config
    if config is None:
        return [
            finding(
                "config.read",
                Severity.SKIP,
                "no config.json beside the metadata (and no --config): config checks not run",
            )
        ]
    out = [finding("config.read", Severity.PASS, f"read {data.config_path}")]
    missing = [key for key in REQUIRED if _get(config, key) is None]
    out.append(
        finding("config.fields", Severity.FAIL, f"{len(missing)} required fields missing", missing, "add them")
        if missing
        else finding("config.fields", Severity.PASS, "all required Piper fields present")
    )
    phoneme_type = config.get("phoneme_type", "espeak")
    if phoneme_type not in PHONEME_TYPES:
        out.append(
            finding(
                "config.phoneme_type",
                Severity.FAIL,
                f"phoneme_type {phoneme_type!r} is not one of {', '.join(PHONEME_TYPES)}",
                hint="use espeak",
            )
        )
    else:
        out.append(finding("config.phoneme_type", Severity.PASS, f"phoneme_type {phoneme_type}"))
    out.append(_num_symbols(config))
    inference = config.get("inference") or {}
    odd = []
    for key, (low, high) in RANGES.items():
        value = inference.get(key) if isinstance(inference, dict) else None
        if value is not None and (not isinstance(value, int | float) or not low <= value <= high):
            odd.append(f"{key} = {value} (expected {low:g}..{high:g})")
    if odd:
        hint = (
            f"Piper's defaults: noise_scale {DEFAULT_NOISE_SCALE:g}, length_scale {DEFAULT_LENGTH_SCALE:g}, "
            f"noise_w {DEFAULT_NOISE_W:g}"
        )
        out.append(finding("config.inference", Severity.WARN, f"{len(odd)} inference settings out of range", odd, hint))
    else:
        out.append(finding("config.inference", Severity.PASS, "inference settings in range"))
    return out


def _num_symbols(config: dict[str, Any]) -> Finding:
    """num_symbols is the phoneme embedding's size: every id of the phoneme map needs a row in it."""
    declared = config.get("num_symbols")
    if not isinstance(declared, int) or isinstance(declared, bool):
        return finding("config.num_symbols", Severity.SKIP, "no integer num_symbols in the config")
    mapping = config.get("phoneme_id_map")
    if not isinstance(mapping, dict) or not mapping:
        from piper.phoneme_ids import DEFAULT_PHONEME_ID_MAP

        mapping = DEFAULT_PHONEME_ID_MAP  # what the trainer phonemizes with when the config has no map
    ids = [i for value in mapping.values() for i in (value if isinstance(value, list) else [value])]
    highest = max((i for i in ids if isinstance(i, int) and not isinstance(i, bool)), default=-1)
    if highest >= declared:
        return finding(
            "config.num_symbols",
            Severity.FAIL,
            f"num_symbols {declared}, but the phoneme_id_map reaches id {highest}: the embedding has no row for it",
            hint=f"set num_symbols to {max(PIPER_NUM_SYMBOLS, highest + 1)} (piper's trainer uses {PIPER_NUM_SYMBOLS})",
        )
    if declared < PIPER_NUM_SYMBOLS:
        return finding(
            "config.num_symbols",
            Severity.WARN,
            f"num_symbols {declared}: piper's trainer and every published Piper checkpoint use {PIPER_NUM_SYMBOLS}, "
            "so a checkpoint trained on this dataset, or one to fine-tune from, will not match it",
            hint=f"set num_symbols to {PIPER_NUM_SYMBOLS} (voxmill prepare writes {PIPER_NUM_SYMBOLS})",
        )
    return finding("config.num_symbols", Severity.PASS, f"num_symbols {declared}; highest phoneme id {highest}")
