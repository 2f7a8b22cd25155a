"""Audio paths from metadata stay inside the dataset root unless --allow-outside."""

from __future__ import annotations


def _confinement_corpus(tmp_path, audio):
    """An LJSpeech folder whose metadata names audio outside it four ways, plus one good row.

    Each outside file holds real speech, so a reader that follows the path would pack it.
    """
    import os

    from hostile import ljspeech
    from voxmill.audio import save

    private = tmp_path / "home" / "private"
    for name in ("relative", "absolute", "absolute_wav", "linked"):
        save(private / f"{name}.wav", audio)
    root = tmp_path / "data" / "set"
    ljspeech(root, [("good", "Inside the root.")], audio)
    os.symlink(private / "linked.wav", root / "wavs" / "link.wav")
    rows = [
        "good|Inside the root.",
        "../../../home/private/relative|A relative escape.",
        f"{private / 'absolute'}|An absolute id.",
        f"{private / 'absolute_wav.wav'}|An absolute path with its suffix.",
        "link|A symlink pointing outside.",
    ]
    (root / "metadata.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


def test_confinement_prepare_fails_rows_outside_the_root(tmp_path, short_speech):
    import json

    import pyarrow.parquet as pq

    from hostile import no_traceback, voxmill
    from voxmill.corpus import Problem

    root = _confinement_corpus(tmp_path, short_speech)
    out = tmp_path / "out"
    proc = voxmill("prepare", str(root), "-o", str(out), "-f", "piper", "-f", "hf", "--workers", "1")
    no_traceback(proc)
    assert proc.returncode == 1  # failed rows, reported, never silently dropped
    report = [json.loads(x) for x in (out / "report.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(report) == 5
    outside = [e for e in report if e["status"] == "failed"]
    assert len(outside) == 4 and all(e["code"] == Problem.OUTSIDE_ROOT for e in outside)
    assert all("--allow-outside" in e["reason"] for e in outside)
    assert [p.name for p in (out / "wavs").iterdir()] == ["good.wav"]
    assert (out / "metadata.csv").read_text(encoding="utf-8") == "good|Inside the root.\n"
    packed = pq.read_table(next((out / "hf").glob("train-*.parquet"))).column("id").to_pylist()
    assert packed == ["good"]


def test_confinement_allow_outside_reads_them(tmp_path, short_speech):
    from hostile import voxmill

    root = _confinement_corpus(tmp_path, short_speech)
    out = tmp_path / "out"
    proc = voxmill("prepare", str(root), "-o", str(out), "--allow-outside", "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    assert len((out / "metadata.csv").read_text(encoding="utf-8").splitlines()) == 5
    assert len(list((out / "wavs").iterdir())) == 5


def test_confinement_check_does_not_read_outside(tmp_path, short_speech):
    from hostile import no_traceback, voxmill

    root = _confinement_corpus(tmp_path, short_speech)
    # JSON, not the table: a table wraps long messages wherever its column widths fall.
    proc = voxmill("check", str(root), "--workers", "1", "--json")
    no_traceback(proc)
    assert proc.returncode == 1 and "outside the dataset root" in proc.stdout
    allowed = voxmill("check", str(root), "--workers", "1", "--allow-outside", "--json")
    assert "outside the dataset root" not in allowed.stdout, allowed.stdout


def test_confinement_every_reader(tmp_path, short_speech):
    """Coqui audio_file, Common Voice path and a folder's symlinked audio or transcript: all confined."""
    import os
    from pathlib import Path

    from voxmill.audio import save
    from voxmill.corpus import Problem, Source, read_rows

    secret = tmp_path / "secret.wav"
    save(secret, short_speech)
    (tmp_path / "secret.txt").write_text("a private note", encoding="utf-8")
    coqui = tmp_path / "coqui"
    save(coqui / "wavs" / "in.wav", short_speech)
    (coqui / "metadata.csv").write_text(
        f"audio_file|text|speaker_name\nwavs/in.wav|In.|a\n../secret.wav|Out.|a\n{secret}|Abs.|a\n", encoding="utf-8"
    )
    cv = tmp_path / "cv"
    save(cv / "clips" / "in.mp3.wav", short_speech)
    (cv / "validated.tsv").write_text(
        "client_id\tpath\tsentence\nc\tin.mp3.wav\tIn.\nc\t../../secret.wav\tOut.\n", encoding="utf-8"
    )
    folder = tmp_path / "folder"
    save(folder / "in.wav", short_speech)
    (folder / "in.txt").write_text("In.", encoding="utf-8")
    os.symlink(secret, folder / "out.wav")
    (folder / "out.txt").write_text("Out.", encoding="utf-8")
    save(folder / "note.wav", short_speech)
    os.symlink(tmp_path / "secret.txt", folder / "note.txt")
    for src, outside in ((coqui, 2), (cv, 1), (folder, 2)):
        rows = list(read_rows(Source(src))[0])
        assert [r.problem for r in rows].count(Problem.OUTSIDE_ROOT) == outside, rows
        paths = [Path(r.audio_path).resolve() for r in rows if r.audio_path]
        assert all(path.is_relative_to(src.resolve()) for path in paths)
        assert sum(r.error is None for r in rows) == 1
        assert "private" not in " ".join(r.text for r in rows)
        allowed = list(read_rows(Source(src), allow_outside=True)[0])
        assert all(r.error is None for r in allowed), [r.error for r in allowed]


def test_attack_prepare_symlinks_planted_in_the_output_never_reach_outside(tmp_path, short_speech):
    import json

    from hostile import ljspeech, no_traceback, voxmill

    victim = tmp_path / "victim"

    def fresh_victim():
        import shutil

        shutil.rmtree(victim, ignore_errors=True)
        victim.mkdir()
        (victim / "keep.txt").write_text("keep")
        return victim / "keep.txt"

    def interrupted(out):
        src = ljspeech(tmp_path / "src", [("s0", "First words."), ("s1", "Second words.")], short_speech)
        (src / "wavs" / "zbad.wav").write_bytes(b"RIFF garbage" * 50)
        (src / "metadata.csv").write_text("s0|First words.\ns1|Second words.\nzbad|Broken.\n")
        assert voxmill("prepare", str(src), "-o", str(out), "--workers", "1", "--fail-fast").returncode == 1
        (src / "metadata.csv").write_text("s0|First words.\ns1|Second words.\n")
        return src

    # OUT/.voxmill -> elsewhere: its state (and the cleaning of it) would land there.
    keep = fresh_victim()
    out = tmp_path / "state_link"
    out.mkdir()
    (out / ".voxmill").symlink_to(victim)
    src = ljspeech(tmp_path / "src", [("s0", "First words.")], short_speech)
    done = voxmill("prepare", str(src), "-o", str(out), "--workers", "1")
    no_traceback(done)
    assert done.returncode == 2 and ".voxmill is a symlink" in done.stderr, done.stderr
    assert sorted(p.name for p in victim.iterdir()) == ["keep.txt"] and keep.read_text() == "keep"

    # In a resumed folder: the lock, the staging folder, OUT/wavs each a symlink to elsewhere.
    for plant in ("lock", "clips", "wavs"):
        keep = fresh_victim()
        out = tmp_path / f"out_{plant}"
        src = interrupted(out)
        state = out / ".voxmill"
        if plant == "lock":
            (state / "lock").unlink(missing_ok=True)
            (state / "lock").symlink_to(keep)
        elif plant == "clips":
            (state / "clips").rename(victim / "clips")
            (state / "clips").symlink_to(victim / "clips")
        else:
            import shutil

            shutil.rmtree(out / "wavs")
            (out / "wavs").symlink_to(victim)
            owned = json.loads((state / "owned.json").read_text())
            owned["files"] += ["wavs/s0.wav", "wavs/s1.wav"]
            (state / "owned.json").write_text(json.dumps(owned))
        listing = sorted(p.relative_to(victim) for p in victim.rglob("*"))
        done = voxmill("prepare", str(src), "-o", str(out), "--workers", "1", "--resume")
        no_traceback(done)
        assert done.returncode == (2 if plant == "wavs" else 0), (plant, done.stderr)
        assert keep.read_text() == "keep", plant
        assert sorted(p.relative_to(victim) for p in victim.rglob("*")) == listing, plant  # nothing added or removed
