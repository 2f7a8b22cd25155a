"""The resume journal holds data, not code: a tampered journal runs nothing and loses nothing."""

from __future__ import annotations


def _journal_corpus(tmp_path, speech):
    from hostile import ljspeech

    return ljspeech(tmp_path / "src", [(f"j{i}", f"Journal sentence {i}.") for i in range(3)], speech)


def test_prepare_resume_never_unpickles_a_crafted_journal(tmp_path, short_speech):
    import pickle
    import sqlite3

    import soundfile as sf

    from hostile import no_traceback, voxmill

    src = _journal_corpus(tmp_path, short_speech)
    out = tmp_path / "out"
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            import os

            return os.system, (f"touch {marker}",)

    (out / ".voxmill").mkdir(parents=True)
    db = sqlite3.connect(out / ".voxmill" / "journal.db")
    db.execute(
        "CREATE TABLE items (id TEXT PRIMARY KEY, status TEXT NOT NULL, value BLOB, reason TEXT, seconds REAL, "
        "audio_seconds REAL, updated REAL)"
    )
    for i in range(3):
        db.execute("INSERT INTO items VALUES (?, 'ok', ?, NULL, 0, 0, 0)", (f"j{i}", pickle.dumps(Payload())))
    db.commit()
    db.close()
    done = voxmill("prepare", str(src), "-o", str(out), "--workers", "1", "--resume")
    assert not marker.exists(), "the journal ran a shell command"
    no_traceback(done)
    assert done.returncode == 0, done.stderr
    assert all(sf.info(out / "wavs" / f"j{i}.wav").frames > 0 for i in range(3))


def test_prepare_tampered_journal_records_run_again(tmp_path, short_speech):
    import json
    import sqlite3

    import soundfile as sf

    from hostile import no_traceback, voxmill

    src = _journal_corpus(tmp_path, short_speech)
    (src / "wavs" / "zbad.wav").write_bytes(b"not audio" * 100)
    meta = src / "metadata.csv"
    meta.write_text(meta.read_text() + "zbad|A broken last row.\n")
    out = tmp_path / "out"
    assert voxmill("prepare", str(src), "-o", str(out), "--workers", "1", "--fail-fast").returncode == 1
    meta.write_text("".join(f"{x}\n" for x in meta.read_text().splitlines() if not x.startswith("zbad")))
    secret = tmp_path / "secret.wav"  # a file outside the staging a tampered record points at
    secret.write_bytes((src / "wavs" / "j0.wav").read_bytes())

    db = sqlite3.connect(out / ".voxmill" / "journal.db")
    rows = dict(db.execute("SELECT id, value FROM records WHERE status = 'ok'").fetchall())
    assert len(rows) == 3
    (k0, v0), (k1, v1), (k2, _) = sorted(rows.items(), key=lambda kv: json.loads(kv[1])["id"])
    outside = {**json.loads(v0), "worker_dir": "../../.."}  # a path outside the stage
    wrong_types = {**json.loads(v1), "seconds_out": "3.0", "labels": ["x"]}
    for key, value in ((k0, json.dumps(outside)), (k1, json.dumps(wrong_types)), (k2, "{not json")):
        db.execute("UPDATE records SET value = ? WHERE id = ?", (value, key))
    db.commit()
    db.close()
    done = voxmill("prepare", str(src), "-o", str(out), "--workers", "1", "--resume")
    no_traceback(done)
    assert done.returncode == 0, done.stderr
    report = [json.loads(line) for line in (out / "report.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in report if r["status"] == "ok") == ["j0", "j1", "j2"]
    for i in range(3):
        assert sf.info(out / "wavs" / f"j{i}.wav").samplerate == 22050
    assert secret.exists()


def test_journal_stores_json_and_skips_records_that_do_not_decode(tmp_path):
    import sqlite3

    from voxmill.engine import Journal, Ok, Outcome

    with Journal(tmp_path / "j.db") as journal:
        for i in range(3):
            journal.record(Outcome(i, f"k{i}", None, Ok({"n": i})))
    db = sqlite3.connect(tmp_path / "j.db")
    stored = dict(db.execute("SELECT id, value FROM records").fetchall())
    assert stored == {"k0": '{"n": 0}', "k1": '{"n": 1}', "k2": '{"n": 2}'}  # text, not a pickle
    db.execute("UPDATE records SET value = '{broken' WHERE id = 'k1'")
    db.execute("UPDATE records SET seconds = 'soon' WHERE id = 'k2'")
    db.commit()
    db.close()

    def decode(key, data):
        if not isinstance(data, dict) or not isinstance(data.get("n"), int):
            raise TypeError("not a record")
        return data["n"]

    with Journal(tmp_path / "j.db", decode=decode) as journal:
        assert journal.lookup("k0") is not None and journal.lookup("k0")[0] == Ok(0)
        assert journal.lookup("k1") is None and journal.lookup("k2") is None
        assert not journal.finished("k1")  # runs again


def test_attack_prepare_resume_with_a_journal_that_is_not_one(tmp_path, short_speech):
    import os
    import sqlite3

    from hostile import ljspeech, no_traceback, voxmill

    other = tmp_path / "other.db"  # somebody's database a planted symlink points at
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE items (a)")
    secret = tmp_path / "secret.txt"
    secret.write_text("keep")
    plants = {
        "garbage": lambda j: j.write_bytes(os.urandom(4096)),
        "folder": lambda j: j.mkdir(),
        "fifo": lambda j: os.mkfifo(j),
        "symlink to a database": lambda j: j.symlink_to(other),
        "symlink to a file": lambda j: j.symlink_to(secret),
    }
    for name, plant in plants.items():
        src = ljspeech(tmp_path / "src", [("j0", "First words."), ("j1", "Second words.")], short_speech)
        (src / "wavs" / "zbad.wav").write_bytes(b"RIFF garbage" * 50)
        with (src / "metadata.csv").open("a") as fh:
            fh.write("zbad|Broken.\n")
        out = tmp_path / name.replace(" ", "_")
        assert voxmill("prepare", str(src), "-o", str(out), "--workers", "1", "--fail-fast").returncode == 1
        journal = out / ".voxmill" / "journal.db"
        for leftover in (journal, journal.with_name("journal.db-wal"), journal.with_name("journal.db-shm")):
            leftover.unlink(missing_ok=True)
        plant(journal)
        (src / "metadata.csv").write_text("j0|First words.\nj1|Second words.\n")
        done = voxmill("prepare", str(src), "-o", str(out), "--workers", "1", "--resume", timeout=60)
        no_traceback(done)
        assert done.returncode == 0, (name, done.stderr)
        assert sorted(p.name for p in (out / "wavs").iterdir()) == ["j0.wav", "j1.wav"], name
    assert secret.read_text() == "keep"
    with sqlite3.connect(other) as db:
        assert db.execute("SELECT name FROM sqlite_master").fetchall() == [("items",)]  # not written


def test_attack_journal_skips_a_record_of_absurd_size(tmp_path):
    import sqlite3

    from voxmill.engine import Journal, Ok, Outcome
    from voxmill.engine.journal import MAX_RECORD_BYTES

    with Journal(tmp_path / "j.db") as journal:
        journal.record(Outcome(0, "k0", None, Ok("small")))
        journal.record(Outcome(1, "k1", None, Ok("small")))
    with sqlite3.connect(tmp_path / "j.db") as db:
        db.execute("UPDATE records SET value = ? WHERE id = 'k1'", ('"' + "a" * MAX_RECORD_BYTES + '"',))
    with Journal(tmp_path / "j.db") as journal:
        assert journal.lookup("k0") is not None
        assert journal.lookup("k1") is None and not journal.finished("k1")  # not read: runs again
