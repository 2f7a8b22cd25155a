"""``voxmill prepare`` on real synthesized speech: every source kind, every output, a broken corpus."""

from __future__ import annotations

import glob
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from voxmill.audio import Audio, save
from voxmill.engine import RunOptions
from voxmill.prepare import ClipOptions, PrepareOptions, parse_source, run


def voxmill(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voxmill", "--quiet", *args], capture_output=True, text=True, timeout=600
    )


def _report(out: Path) -> dict[str, dict[str, str]]:
    return {row["id"]: row for row in map(json.loads, (out / "report.jsonl").read_text().splitlines())}


def test_ljspeech_to_piper_hf_and_nemo(tmp_path: Path, corpus: Path) -> None:
    from piper.config import PiperConfig

    out = tmp_path / "out"
    result = run(
        PrepareOptions(
            [parse_source(f"{corpus}::dialect=central")], out, formats=["piper", "hf", "nemo"],
            clip=ClipOptions(espeak_voice="en-us"), val_fraction=0.2, run=RunOptions(workers=2, progress=False),
        )
    )  # fmt: skip
    assert result.counts == {"ok": 12} and result.exit_code == 0
    assert "id|speaker|text" in result.layouts[0]
    assert result.plan is not None and result.plan.describe().startswith("2 process workers")
    assert result.stats.train_clips == 10 and result.stats.validation_clips == 2 and result.stats.reasons == []
    assert json.loads((out / "stats.json").read_text()) == result.stats.to_dict()
    config = PiperConfig.from_dict(json.loads((out / "config.json").read_text()))
    assert config.sample_rate == 22050 and config.num_speakers == 2 and set(config.speaker_id_map) == {"alto", "tenor"}
    train = (out / "metadata.csv").read_text().splitlines()
    val = (out / "metadata_val.csv").read_text().splitlines()
    assert len(train) + len(val) == 12 and len(val) == 2
    assert {line.split("|")[1] for line in val} == {"alto", "tenor"}  # speaker-aware
    for line in train:
        data, sr = sf.read(out / "wavs" / f"{line.split('|')[0]}.wav")
        assert sr == 22050 and sf.info(out / "wavs" / f"{line.split('|')[0]}.wav").subtype == "PCM_16"
        assert len(data) / sr < 3.6  # the half second of padding each side was trimmed to 0.25 s
    nemo = [json.loads(x) for x in (out / "manifest_train.jsonl").read_text().splitlines()]
    assert len(nemo) == 10 and all(Path(r["audio_filepath"]).is_file() and r["dialect"] == "central" for r in nemo)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["speakers"] == 2 and stats["hours_per_label"]["dialect=central"] > 0

    datasets = pytest.importorskip("datasets")
    files = {
        "train": sorted(glob.glob(str(out / "hf" / "train-*.parquet"))),
        "validation": sorted(glob.glob(str(out / "hf" / "validation-*.parquet"))),
    }
    ds = datasets.load_dataset("parquet", data_files=files)
    assert isinstance(ds["train"].features["audio"], datasets.Audio)
    ds = ds.cast_column("audio", datasets.Audio(decode=False))
    assert ds["train"].num_rows == 10 and ds["validation"].num_rows == 2
    row = ds["train"][0]
    samples, sr = sf.read(io.BytesIO(row["audio"]["bytes"]))
    assert sr == 22050 and len(samples) > 8192 and row["dialect"] == "central"


def _copy_clips(corpus: Path, dest: Path, count: int = 4) -> list[tuple[Path, str, str]]:
    """(wav path, speaker, text) for the first clips, copied under ``dest``."""
    rows = []
    for line in (corpus / "metadata.csv").read_text().splitlines()[:count]:
        clip_id, speaker, text = line.split("|")
        target = dest / f"{clip_id}.wav"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(corpus / "wavs" / f"{clip_id}.wav", target)
        rows.append((target, speaker, text))
    return rows


def _commonvoice(corpus: Path, cv: Path) -> Path:
    """Common Voice layout: a tsv + clips/; client_id is the speaker, accents become labels."""
    rows = _copy_clips(corpus, cv / "clips")
    (cv / "validated.tsv").write_text(
        "client_id\tpath\tsentence\taccents\n" + "".join(f"{s}\t{p.name}\t{t}\tscottish\n" for p, s, t in rows)
    )
    return cv


def _folder(corpus: Path, folder: Path, scratch: Path) -> Path:
    """Audio with sidecar transcripts (.lab for one speaker, .txt for the other) in per-speaker folders."""
    for path, speaker, text in _copy_clips(corpus, scratch):
        target = folder / speaker / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(path, target)
        target.with_suffix(".lab" if speaker == "alto" else ".txt").write_text(text)
    return folder


def test_other_source_kinds(tmp_path: Path, corpus: Path) -> None:
    # Coqui: header, relative audio paths.
    coqui = tmp_path / "coqui"
    rows = _copy_clips(corpus, coqui / "audio")
    (coqui / "meta.csv").write_text(
        "audio_file|text|speaker_name\n" + "".join(f"audio/{p.name}|{t}|{s}\n" for p, s, t in rows)
    )
    cv = _commonvoice(corpus, tmp_path / "cv")
    folder = _folder(corpus, tmp_path / "folder", tmp_path / "tmpcopy")
    # Parquet with audio struct<bytes, path>.
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = _copy_clips(corpus, tmp_path / "pq-src")
    table = pa.table(
        {
            "audio": [{"bytes": p.read_bytes(), "path": p.name} for p, _, _ in rows],
            "sentence": [t for _, _, t in rows],
            "speaker_id": [s for _, s, _ in rows],
        }
    )
    (tmp_path / "pq").mkdir()
    pq.write_table(table, tmp_path / "pq" / "part-0.parquet")

    out = tmp_path / "out"
    result = voxmill(
        "prepare", str(coqui / "meta.csv"), f"{cv}::dialect=north", str(folder), str(tmp_path / "pq"),
        "--speaker-from-dir", "-o", str(out), "-f", "nemo", "--workers", "2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for kind in ("coqui csv", "common voice tsv", "folder with sidecar transcripts", "parquet"):
        assert kind in result.stderr
    report = _report(out)
    assert len(report) == 16 and all(r["status"] == "ok" for r in report.values())
    manifest = [json.loads(x) for x in (out / "manifest_train.jsonl").read_text().splitlines()]
    assert len(manifest) == 16
    assert {r["speaker"] for r in manifest} == {"alto", "tenor"}  # from speaker_name, client_id, folder, column
    assert sum(r.get("dialect") == "north" for r in manifest) == 4  # the label only on the cv source
    assert sum(r.get("accents") == "scottish" for r in manifest) == 4


def test_each_source_kind_alone(tmp_path: Path, corpus: Path) -> None:
    cv = _commonvoice(corpus, tmp_path / "cv")
    folder = _folder(corpus, tmp_path / "folder", tmp_path / "tmpcopy")
    for src, extra in ((cv, []), (folder, ["--speaker-from-dir"])):
        out = tmp_path / f"out-{src.name}"
        result = voxmill("prepare", str(src), "-o", str(out), "-f", "nemo", "--workers", "1", *extra)
        assert result.returncode == 0, result.stderr
        manifest = [json.loads(x) for x in (out / "manifest_train.jsonl").read_text().splitlines()]
        assert len(manifest) == 4 and {r["speaker"] for r in manifest} == {"alto", "tenor"}
        if src is cv:
            assert all(r["accents"] == "scottish" for r in manifest)


def _broken_corpus(corpus: Path, root: Path) -> tuple[Path, set[str], dict[str, str]]:
    """A metadata.csv with good clips and one of each kind of bad row. Returns (root, good ids, bad id -> reason)."""
    wavs = root / "wavs"
    wavs.mkdir(parents=True)
    good = [line.split("|") for line in (corpus / "metadata.csv").read_text().splitlines()[:4]]
    for clip_id, _, _ in good:
        shutil.copy(corpus / "wavs" / f"{clip_id}.wav", wavs / f"{clip_id}.wav")
    sample, sr = sf.read(corpus / "wavs" / "clip0000.wav", dtype="float32")
    stereo48 = np.stack([sample, sample], axis=1)
    from voxmill.audio import resample

    save(wavs / "stereo48k.wav", Audio(resample(stereo48, sr, 48000), 48000))
    data = (wavs / "clip0000.wav").read_bytes()
    (wavs / "truncated.wav").write_bytes(data[: len(data) // 3])
    (wavs / "empty.wav").write_bytes(b"")
    (wavs / "garbage.wav").write_bytes(os.urandom(4000))
    (wavs / "textfile.wav").write_text("this is not audio\n" * 30)
    nan = sample.copy()
    nan[500] = np.nan
    sf.write(wavs / "nan.wav", nan, sr, subtype="FLOAT")
    save(wavs / "short.wav", Audio(sample[int(0.6 * sr) : int(0.8 * sr)], sr))
    save(wavs / "clipped.wav", Audio(np.clip(sample * 20, -1, 1), sr))
    save(wavs / "silent.wav", Audio(np.zeros(sr * 2, np.float32), sr))
    shutil.copy(corpus / "wavs" / "clip0001.wav", wavs / "emptytext.wav")
    lines = [f"{i}|{s}|{t}" for i, s, t in good] + [
        "stereo48k|alto|A stereo recording at forty eight kilohertz.",
        "truncated|alto|Cut off in the middle.",
        "empty|alto|An empty file.",
        "garbage|alto|Random bytes.",
        "textfile|alto|Text pretending to be audio.",
        "nan|alto|Not a number inside.",
        "short|alto|Too short.",
        "clipped|alto|Far too loud.",
        "silent|alto|Nothing at all.",
        "missing|alto|The file is not there.",
        "emptytext|alto|   ",
        "no delimiter on this line",
        f"{good[0][0]}|alto|A duplicate id.",
    ]
    meta = "\n".join(lines).encode() + b"\nbadutf8|alto|caf\xe9 au lait\n"
    (root / "metadata.csv").write_bytes(meta)
    bad = {
        "truncated": "truncated", "empty": "empty file", "garbage": "not a recognised audio format",
        "textfile": "text", "nan": "non-finite", "short": "too short|no speech", "clipped": "clipping",
        "silent": "silent", "missing": "not found", "emptytext": "empty text", "metadata.csv:16": "delimiter",
        f"{good[0][0]}@{root / 'metadata.csv'}:17": "duplicate id", "metadata.csv:18": "invalid UTF-8",
    }  # fmt: skip
    return root, {g[0] for g in good} | {"stereo48k"}, bad


def test_broken_corpus_keeps_every_good_clip_and_reports_every_bad_row(tmp_path: Path, corpus: Path) -> None:
    root, good, bad = _broken_corpus(corpus, tmp_path / "broken")
    out = tmp_path / "out"
    result = voxmill("prepare", str(root), "-o", str(out), "--workers", "2")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    report = _report(out)
    assert len(report) == len(good) + len(bad)  # exactly one line per input row
    assert {i for i, r in report.items() if r["status"] == "ok"} == good
    for row_id, reason in bad.items():
        assert row_id in report, row_id
        assert report[row_id]["status"] in ("dropped", "failed")
        # "a|b": either reason is right (a 0.2 s clip is too short, or too short for VAD to call it speech)
        assert any(r in report[row_id]["reason"] for r in reason.split("|")), (row_id, report[row_id])
    kept = {line.split("|")[0] for line in (out / "metadata.csv").read_text().splitlines()}
    assert kept == good
    data, sr = sf.read(out / "wavs" / "stereo48k.wav")
    assert sr == 22050 and data.ndim == 1


def test_same_output_for_any_worker_count(tmp_path: Path, corpus: Path) -> None:
    def digest(folder: Path) -> dict[str, str]:
        return {
            str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*"))
            if p.is_file() and ".voxmill" not in p.parts and p.name != "manifest_train.jsonl"
        }

    outs = []
    out = tmp_path / "dataset"  # same input, same options (OUT included): only the worker count changes
    for workers in (1, 2):
        shutil.rmtree(out, ignore_errors=True)
        opts = PrepareOptions([parse_source(str(corpus))], out, formats=["piper", "hf"], max_per_speaker=5,
                              val_size=2, seed=7, run=RunOptions(workers=workers, progress=False))  # fmt: skip
        run(opts)
        outs.append(digest(out))
    assert outs[0] == outs[1]
    assert any(name.startswith("hf/") for name in outs[0])


def test_sigkill_then_resume_processes_nothing_twice(tmp_path: Path, corpus: Path) -> None:
    import signal
    import time

    from voxmill.engine import Journal

    # 48 clips: the 12 of the corpus under four names each, so the run lasts long enough to be killed.
    src = tmp_path / "big"
    (src / "wavs").mkdir(parents=True)
    lines = []
    for copy in range(4):
        for line in (corpus / "metadata.csv").read_text().splitlines():
            clip_id, speaker, text = line.split("|")
            shutil.copy(corpus / "wavs" / f"{clip_id}.wav", src / "wavs" / f"{clip_id}-{copy}.wav")
            lines.append(f"{clip_id}-{copy}|{speaker}|{text}\n")
    (src / "metadata.csv").write_text("".join(lines))
    out = tmp_path / "out"
    args = [sys.executable, "-m", "voxmill", "--quiet", "prepare", str(src), "-o", str(out), "-f", "piper", "-f", "hf"]
    proc = subprocess.Popen(
        [*args, "--workers", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    stage = out / ".voxmill" / "clips"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(stage.glob("w*/*.wav"))) < 12:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    with Journal(out / ".voxmill" / "journal.db") as journal:
        finished = {key.split(" ", 1)[1] for key in journal.ids()}  # journal ids are "FINGERPRINT ID"
    assert 0 < len(finished) < 48, "the kill should land mid-run"
    # Each worker stages in its own folder, as ID.FINGERPRINT.wav.
    staged = {wav.name.split(".")[0]: wav for wav in stage.glob("w*/*.wav")}
    before = {name: staged[name].stat().st_mtime_ns for name in finished}

    resumed = subprocess.run([*args, "--workers", "2", "--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    for name, mtime in before.items():  # moved, not rewritten: a rename keeps the mtime
        assert (out / "wavs" / f"{name}.wav").stat().st_mtime_ns == mtime, name

    clean = tmp_path / "clean"
    clean_args = [sys.executable, "-m", "voxmill", "--quiet", "prepare", str(src), "-o", str(clean)]
    subprocess.run([*clean_args, "-f", "piper", "-f", "hf", "--workers", "1"], check=True, capture_output=True)

    def digest(folder: Path) -> dict[str, str]:
        return {
            str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*"))
            if p.is_file() and ".voxmill" not in p.parts and p.name != "config.json"
        }

    assert digest(out) == digest(clean)


def test_unknown_espeak_voice_is_a_usage_error_before_any_work(tmp_path: Path, corpus: Path) -> None:
    done = voxmill("prepare", str(corpus), "--out", str(tmp_path / "out"), "--espeak-voice", "zz-nonexistent")
    assert done.returncode == 2, done.stderr
    assert "zz-nonexistent" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out" / "metadata.csv").exists()
