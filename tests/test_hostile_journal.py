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
