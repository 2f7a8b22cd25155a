"""Metadata: parse and encoding errors, layout, empty text, duplicate ids and texts, missing and orphan audio."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

from voxmill.check.data import CheckData
from voxmill.check.findings import Finding, Severity, finding, problems
from voxmill.corpus import AUDIO_SUFFIXES
from voxmill.corpus.rows import Problem

__all__ = ["run"]


def run(data: CheckData) -> list[Finding]:
    out = [finding("metadata.layout", Severity.INFO, f"{data.layout}; {len(data.rows)} rows")]
    by_problem: dict[Problem | None, list[str]] = defaultdict(list)
    for r in data.rows:
        if r.error:
            by_problem[r.problem].append(f"{r.source}: {r.error}")
    groups = [
        ("metadata.encoding", Problem.ENCODING, "lines are not valid UTF-8", "re-save the file as UTF-8"),
        ("metadata.missing_audio", Problem.MISSING_AUDIO, "rows name audio that does not exist",
         "add the files or drop the rows"),
        ("metadata.outside_root", Problem.OUTSIDE_ROOT, "rows name audio outside the dataset folder",
         "move the audio into the dataset, or pass --allow-outside if you trust the metadata"),
    ]  # fmt: skip
    for check_id, problem, message, hint in groups:
        out.append(problems(check_id, by_problem.pop(problem, []), message, hint))
    parse = [line for lines in by_problem.values() for line in lines]
    out.append(
        problems("metadata.parse", parse, "rows cannot be read", "fix the delimiter/column count on those lines")
    )
    # Rows whose only problem is their audio still count for the text checks below.
    rows = [r for r in data.rows if not r.error or r.problem in (Problem.MISSING_AUDIO, Problem.OUTSIDE_ROOT)]
    empty = [r.id for r in rows if not r.text.strip()]
    out.append(problems("metadata.empty_text", empty, "rows have empty text", "transcribe them or drop them"))

    ids = Counter(r.id for r in rows)
    dup_ids = [f"{i} ({n}x)" for i, n in ids.items() if n > 1]
    out.append(
        problems("metadata.duplicate_id", dup_ids, "ids appear more than once", "make ids unique; one clip per id")
    )
    by_text: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        if r.text.strip():
            by_text[" ".join(r.text.lower().split())].append(r.id)
    dup_texts = [", ".join(group) for group in by_text.values() if len(group) > 1]
    out.append(
        problems(
            "metadata.duplicate_text",
            dup_texts,
            "texts are used by more than one clip",
            "fine for multi-speaker data; otherwise a copy-paste error",
            Severity.WARN,
        )
    )
    out.append(_orphans(data))
    return out


def _orphans(data: CheckData) -> Finding:
    wavs = data.folder / "wavs"
    if not wavs.is_dir():
        return finding("metadata.orphan_audio", Severity.SKIP, "no wavs/ folder: orphan audio not looked for")
    used = {str(Path(r.audio_path).resolve()) for r in data.rows if r.audio_path}
    orphans = sorted(
        str(p.relative_to(data.folder))
        for p in wavs.rglob("*")
        if p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith(".") and str(p.resolve()) not in used
    )
    return problems(
        "metadata.orphan_audio",
        orphans,
        "audio files no row refers to",
        "add their transcripts or remove them",
        Severity.WARN,
    )
