"""report.html: one self-contained page (PNG plots embedded as data URIs) and report.md/report.json beside it."""

from __future__ import annotations

import base64
import html
import io
import os
from collections import Counter
from pathlib import Path
from typing import Any

from voxmill import errors
from voxmill.audio.io import atomic_path
from voxmill.check.findings import Severity
from voxmill.check.report import Report, split_of
from voxmill.check.stats import ClipStats

__all__ = ["plot_data", "report_folder_usable", "write_report"]

_COLOURS = {
    Severity.FAIL: "#c62828",
    Severity.WARN: "#ef6c00",
    Severity.INFO: "#1565c0",
    Severity.SKIP: "#757575",
    Severity.PASS: "#2e7d32",
}


def plot_data(clips: list[ClipStats]) -> dict[str, Any]:
    good = [c for c in clips if c.error is None]
    return {
        "durations": [c.duration for c in good],
        "chars_per_second": [
            (c.duration, len(c.text.strip()) / c.duration) for c in good if c.duration > 0 and c.text.strip()
        ],
        "lufs": [c.lufs for c in good if c.lufs > -200],
        "speakers": dict(Counter(c.speaker or "(one speaker)" for c in good).most_common()),
    }


def _png(draw: Any) -> str:
    import matplotlib

    matplotlib.use("Agg")  # no display; must precede pyplot
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    draw(ax)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _plots(data: dict[str, Any]) -> list[tuple[str, str]]:
    def durations(ax: Any) -> None:
        ax.hist(data["durations"], bins=30, color="#1565c0")
        ax.set_xlabel("seconds")
        ax.set_ylabel("clips")

    def pace(ax: Any) -> None:
        xs, ys = zip(*data["chars_per_second"], strict=True)
        ax.scatter(xs, ys, s=8, color="#6a1b9a")
        ax.set_xlabel("seconds")
        ax.set_ylabel("characters / s")

    def loudness(ax: Any) -> None:
        ax.hist(data["lufs"], bins=30, color="#2e7d32")
        ax.set_xlabel("LUFS")
        ax.set_ylabel("clips")

    def speakers(ax: Any) -> None:
        names = list(data["speakers"])[:40]
        ax.bar(range(len(names)), [data["speakers"][n] for n in names], color="#ef6c00")
        ax.set_xticks(range(len(names)), names, rotation=60, fontsize=7)
        ax.set_ylabel("clips")

    wanted = [
        ("Clip durations", "durations", durations),
        ("Characters per second vs duration", "chars_per_second", pace),
        ("Loudness", "lufs", loudness),
        ("Clips per speaker", "speakers", speakers),
    ]
    return [(title, _png(draw)) for title, key, draw in wanted if data[key]]


def render_html(report: Report) -> str:
    e = html.escape
    s = report.summary
    rows = []
    for f in sorted(report.findings, key=lambda f: f.severity.rank):
        items = ""
        if f.items:
            more = f" (first {len(f.items)} of {f.count})" if f.count > len(f.items) else ""
            items = (
                f"<details><summary>{f.count} items{e(more)}</summary><ul>"
                + "".join(f"<li>{e(i)}</li>" for i in f.items)
                + "</ul></details>"
            )
        colour = _COLOURS[f.severity]
        rows.append(
            f'<tr><td><code>{e(f.id)}</code></td><td><span class="sev" style="background:{colour}">'
            f"{f.severity.value}</span></td><td>{e(f.message)}{items}</td><td>{e(f.hint)}</td></tr>"
        )
    figures = "".join(
        f'<figure><img alt="{e(title)}" src="{uri}"><figcaption>{e(title)}</figcaption></figure>'
        for title, uri in _plots(report.plots)
    )
    verdict_colour = "#2e7d32" if report.ready else "#c62828"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>voxmill check: {e(report.verdict)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #212121; }}
h1 span {{ color: {verdict_colour}; }}
table {{ border-collapse: collapse; width: 100%; }}
td, th {{ border-bottom: 1px solid #ddd; padding: 6px 8px; text-align: left; vertical-align: top; }}
.sev {{ color: white; padding: 2px 6px; border-radius: 4px; font-size: 0.85em; }}
.plots {{ display: flex; flex-wrap: wrap; gap: 1em; }}
figure {{ margin: 0; flex: 1 1 480px; max-width: 620px; }}
figure img {{ width: 100%; height: auto; }}
</style></head><body>
<h1>voxmill check: <span>{e(report.verdict)}</span></h1>
<p>{e(str(s.get("dataset")))}: {s.get("clips", 0)} clips ({e(split_of(s))}), {s.get("hours", 0):.2f} h,
{s.get("speakers", 0)} speaker(s); {s.get("steps_per_epoch")} steps (batches of training clips) per epoch at batch size
{s.get("batch_size")}.</p>
<table><thead><tr><th>check</th><th>severity</th><th>message</th><th>fix</th></tr></thead>
<tbody>{"".join(rows)}</tbody></table>
<h2>Plots</h2>
<div class="plots">{figures}</div>
<script>
// Marks how many plots decoded, so a headless browser (and the tests) can tell the page rendered.
window.addEventListener("load", () => {{
  const shown = [...document.images].filter((img) => img.complete && img.naturalWidth > 0).length;
  document.body.dataset.plotsShown = String(shown);
}});
</script>
</body></html>
"""


def report_folder_usable(folder: Path) -> None:
    """OutputError unless ``folder`` is, or can be made, a writable folder. Checked before the clips
    are analysed, so a bad ``--report`` costs nothing; nothing is created here."""
    path = Path(os.path.abspath(folder))
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        where = "is a file" if existing == path else f"is under {existing}, a file"
        raise errors.OutputError(f"--report {folder}: {where}, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise errors.OutputError(f"--report {folder}: {existing} is not writable")


def write_report(report: Report, folder: Path) -> list[Path]:
    """Write report.md, report.html and report.json into ``folder``, each atomically."""
    written = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in (
            ("report.json", report.to_json()),
            ("report.md", report.to_markdown()),
            ("report.html", render_html(report)),
        ):
            path = folder / name
            with atomic_path(path) as tmp:
                tmp.write_text(text, encoding="utf-8")
            written.append(path)
    except OSError as exc:  # a read-only file system, a full disk, a folder that became a file
        raise errors.OutputError(f"--report {folder}: cannot write the report: {exc.strerror or exc}") from None
    return written
