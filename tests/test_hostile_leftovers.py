"""Nothing left behind: temp files of killed runs, staging after success, an earlier run's outputs."""

from __future__ import annotations


def _convert_slowly(source, out):  # type: ignore[no-untyped-def]
    """A convert that takes many seconds (WORLD pitch, one chunk at a time), started in the background."""
    import os
    import subprocess
    import sys

    args = ["convert", str(source), str(out), "-p", "pitch", "--semitones", "3", "--no-parallel"]
    args += ["--chunk-seconds", "4"]
    return subprocess.Popen([sys.executable, "-m", "voxmill", "--quiet", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ))  # fmt: skip


def _wait_for(condition, proc, seconds=60.0):  # type: ignore[no-untyped-def]
    import time

    deadline = time.monotonic() + seconds
    while not condition():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_convert_killed_mid_write_leaves_nothing_after_the_next_run(tmp_path, speech) -> None:  # type: ignore[no-untyped-def]
    import signal

    import numpy as np

    from hostile import no_traceback, voxmill
    from voxmill.audio import Audio, save

    source = save(tmp_path / "long.wav", Audio(np.tile(speech.samples, 3), speech.sample_rate))
    folder = tmp_path / "out"
    out = folder / "changed.wav"
    proc = _convert_slowly(source, out)
    temps = lambda: [p for p in folder.glob(".changed.*.tmp.wav") if p.stat().st_size > 10_000]  # noqa: E731
    try:
        _wait_for(lambda: folder.is_dir() and bool(temps()), proc)  # some chunks written, more to come
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    assert temps() and not out.exists()  # what a SIGKILL leaves: a half-written temp file
    done = voxmill("convert", str(source), str(out), "-p", "loudness")
    no_traceback(done)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["changed.wav"]  # no temp file, no lock file


def test_prepare_leaves_no_staged_audio_and_no_earlier_run_files(tmp_path, short_speech):
    import pyarrow.parquet as pq

    from hostile import ljspeech, no_traceback, voxmill

    rows = [(f"s{i}", f"Leftover sentence {i}.") for i in range(4)]
    src = ljspeech(tmp_path / "src", rows, short_speech)
    out = tmp_path / "out"
    done = voxmill("prepare", str(src), "-o", str(out), "-f", "hf", "-f", "piper", "--workers", "1")
    assert done.returncode == 0, done.stderr
    state_audio = [p for p in (out / ".voxmill").rglob("*") if p.suffix in (".wav", ".flac")]
    assert state_audio == [], state_audio  # the staged FLAC/WAV copies are gone after success
    assert pq.read_table(out / "hf" / "train-00000-of-00001.parquet").num_rows == 4
    (out / "notes.txt").write_text("the user's own file")

    # The same folder again: refused without a word on what to do with the earlier run.
    again = voxmill("prepare", str(src), "-o", str(out), "--workers", "1")
    no_traceback(again)
    assert again.returncode == 2 and "--resume" in again.stderr and "--overwrite" in again.stderr

    # Two rows fewer (one gone from the metadata, one too long now): their wavs must not stay.
    (src / "metadata.csv").write_text("".join(f"{i}|{t}\n" for i, t in rows[:3]))
    ok_seconds = 1.0  # every clip is longer, so --max-duration drops them all but through --resume
    for flag in ("--overwrite", "--resume"):
        done = voxmill("prepare", str(src), "-o", str(out), "--workers", "1", flag)
        assert done.returncode == 0, (flag, done.stderr)
        assert sorted(p.name for p in (out / "wavs").glob("*")) == ["s0.wav", "s1.wav", "s2.wav"], flag
        assert not (out / "hf").exists(), flag  # this run wrote no parquet
        assert (out / "notes.txt").read_text() == "the user's own file", flag
    done = voxmill("prepare", str(src), "-o", str(out), "--workers", "1", "--resume", "--max-duration", str(ok_seconds))
    assert done.returncode == 0, done.stderr
    assert not (out / "wavs").exists() or not list((out / "wavs").glob("*.wav"))  # now dropped: no old wavs
    assert (out / "notes.txt").exists()


def test_attack_prepare_overwrite_with_a_tampered_manifest_removes_nothing_outside(tmp_path, short_speech):
    import json

    from hostile import ljspeech, no_traceback, voxmill

    src = ljspeech(tmp_path / "ljs", [("a1", "First words.")], short_speech)
    out, victim = tmp_path / "out", tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("keep")
    (tmp_path / "x").write_text("keep")
    assert voxmill("prepare", str(src), "-o", str(out), "--workers", "1").returncode == 0
    (out / "sub").symlink_to(victim)
    manifest = out / ".voxmill" / "owned.json"
    owned = json.loads(manifest.read_text())
    owned["files"] += ["../x", str(victim / "keep.txt"), "sub/keep.txt", "sub/../../x", "wavs/../../x", "\0",
                       "a" * 5000, "a/" * 3000, "", "..", 5, None]  # fmt: skip
    manifest.write_text(json.dumps(owned))
    done = voxmill("prepare", str(src), "-o", str(out), "--overwrite", "--workers", "1")
    no_traceback(done)
    assert done.returncode == 0, done.stderr
    assert (victim / "keep.txt").read_text() == "keep" and (tmp_path / "x").read_text() == "keep"
    assert (out / "wavs" / "a1.wav").is_file()


_SYNTH_BOOK = "\n\n".join(
    f"Chapter {n}\n\n" + "The wheel turned slowly and the water ran over the old stones of the mill. " * 3
    for n in (1, 2)
)


def _synth_in_background(*args):  # type: ignore[no-untyped-def]
    import os
    import subprocess
    import sys

    command = [sys.executable, "-m", "voxmill", "--quiet", "synth", *args, "--workers", "1"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))


def test_synth_interrupted_single_file_leaves_no_parts_folder(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import signal

    book = tmp_path / "book.txt"
    book.write_text(_SYNTH_BOOK, encoding="utf-8")
    out = tmp_path / "book.wav"
    run = _synth_in_background("-i", str(book), "-o", str(out))
    parts = tmp_path / ".book.wav.parts"
    _wait_for(lambda: parts.is_dir() and any(parts.iterdir()), run)  # speaking the first chapter
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=120)
    assert run.returncode == 130, err
    # Nothing finished, so nothing a --resume could use: no parts folder, no lock, no temp file.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["book.txt"]


def test_synth_resume_after_a_kill_leaves_only_the_chapters(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import signal
    import subprocess
    import sys

    from hostile import no_traceback, voxmill

    book = tmp_path / "book.txt"
    book.write_text(_SYNTH_BOOK, encoding="utf-8")
    out = tmp_path / "out"
    run = _synth_in_background("-i", str(book), "-o", str(out), "--chapters")
    _wait_for(lambda: any(".tmp." in p.name for p in out.rglob("*")), run)  # a part is being written
    run.send_signal(signal.SIGKILL)
    run.communicate()
    # A run killed while it copied a part into its chapter file leaves that file's temp name (the copy
    # is too quick to hit reliably, so its leftover is made here, named as that run would have).
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True).stdout)  # fmt: skip
    (out / f".01-chapter-1.{dead}-0badf00d.tmp.wav").write_bytes(b"RIFF")
    done = voxmill("synth", "-i", str(book), "-o", str(out), "--chapters", "--resume")
    no_traceback(done)
    assert done.returncode == 0, done.stderr
    visible = sorted(p.name for p in out.iterdir() if p.name != ".voxmill")
    assert visible == ["01-chapter-1.wav", "02-chapter-2.wav", "chapters.json"]
    assert not [p for p in out.rglob("*") if ".tmp." in p.name or p.parent.name == "parts"]  # nor parts


def test_synth_reused_folder_keeps_no_chapter_the_new_text_lacks(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from hostile import no_traceback, voxmill

    out = tmp_path / "out"
    first = "# Spring\n\nThe river rose.\n\n# Summer\n\nThe wheel turned.\n\n# Autumn\n\nThe leaves fell.\n"
    second = "# Winter\n\nThe snow came.\n\n# Spring\n\nThe river rose again.\n"
    for name, text in (("first.md", first), ("second.md", second)):
        (tmp_path / name).write_text(text, encoding="utf-8")
    assert voxmill("synth", "-i", str(tmp_path / "first.md"), "-o", str(out)).returncode == 0
    expected = ["01-winter.wav", "02-spring.wav", "chapters.json"]
    # --resume continues the folder with the new text: the first run's third chapter goes.
    done = voxmill("synth", "-i", str(tmp_path / "second.md"), "-o", str(out), "--resume")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir() if p.name != ".voxmill") == expected
    index = json.loads((out / "chapters.json").read_text(encoding="utf-8"))
    assert [c["file"] for c in index["chapters"]] == expected[:2]
    # Neither --resume nor --overwrite: refused in one line, nothing touched.
    refused = voxmill("synth", "-i", str(tmp_path / "first.md"), "-o", str(out))
    no_traceback(refused)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert sorted(p.name for p in out.iterdir() if p.name != ".voxmill") == expected
    # --overwrite replaces: the second run's files go, the first text's three come back.
    done = voxmill("synth", "-i", str(tmp_path / "first.md"), "-o", str(out), "--overwrite")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir() if p.name != ".voxmill") == [
        "01-spring.wav", "02-summer.wav", "03-autumn.wav", "chapters.json"]  # fmt: skip
