"""Output versus input: an output that is an input, inside one, or holding one is refused before any work."""

from __future__ import annotations


def test_convert_onto_its_input_is_refused(tmp_path, short_speech) -> None:  # type: ignore[no-untyped-def]
    from hostile import no_traceback, voxmill
    from voxmill.audio import save

    source = save(tmp_path / "take.wav", short_speech)
    before = source.read_bytes()
    # The input itself, and the input's own folder (where the output would be named like the input).
    for output in (source, tmp_path):
        done = voxmill("convert", str(source), str(output), "-p", "loudness")
        no_traceback(done)
        assert done.returncode == 2, done.stderr
        assert "is the input" in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert source.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["take.wav"]  # no temp or lock file left


def test_convert_two_inputs_named_alike_into_one_folder_are_refused(tmp_path, short_speech) -> None:  # type: ignore[no-untyped-def]
    from hostile import no_traceback, voxmill
    from voxmill.audio import save

    first, second = save(tmp_path / "a" / "take.wav", short_speech), save(tmp_path / "b" / "take.wav", short_speech)
    out = tmp_path / "out"
    done = voxmill("convert", str(first), str(second), str(out), "-p", "loudness")
    no_traceback(done)
    assert done.returncode == 2, done.stderr
    assert str(first) in done.stderr and str(second) in done.stderr, done.stderr
    assert not out.exists() or not any(out.iterdir())  # refused before anything was written


def test_prepare_output_that_is_the_source_or_inside_it_is_refused(tmp_path, short_speech):
    import hashlib

    from hostile import folder_corpus, ljspeech, no_traceback, voxmill

    def snapshot(folder):
        return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}

    src = ljspeech(tmp_path / "ljs", [("a1", "First words."), ("a2", "Second words.")], short_speech)
    folder = folder_corpus(tmp_path / "folder", [("b1", "Third words."), ("b2", "Fourth words.")], short_speech)
    before = {**snapshot(src), **snapshot(folder)}
    attempts = [
        ([str(src)], src, "the output is the input"),
        ([str(src / "metadata.csv")], src, "the output is the input"),  # a metadata file's root is its folder
        ([str(src / "metadata.csv")], src / "out", "inside the input folder"),
        ([str(folder)], folder / "prepared", "inside the input folder"),
        ([str(folder)], tmp_path, "holds the input"),
    ]
    for sources, out, message in attempts:
        done = voxmill("prepare", *sources, "-o", str(out), "--workers", "1")
        no_traceback(done)
        assert done.returncode == 2 and message in done.stderr, (sources, out, done.stderr)
    assert {**snapshot(src), **snapshot(folder)} == before  # not a byte changed, nothing added


def test_attack_prepare_overwrite_never_replaces_the_users_own_files(tmp_path, short_speech):
    from hostile import ljspeech, no_traceback, voxmill

    src = ljspeech(tmp_path / "ljs", [("a1", "First words."), ("a2", "Second words.")], short_speech)
    out = tmp_path / "out"
    (out / "wavs").mkdir(parents=True)
    mine = {out / "notes.txt": "mine", out / "metadata.csv": "MY OWN METADATA"}
    for path, text in mine.items():
        path.write_text(text)
    done = voxmill("prepare", str(src), "-o", str(out), "--overwrite", "--workers", "1")
    no_traceback(done)
    assert done.returncode == 2 and "metadata.csv exists and was not written by voxmill" in done.stderr, done.stderr
    # A clip's name, known only after the rows ran: refused too, and the work kept for --resume.
    (out / "metadata.csv").unlink()
    del mine[out / "metadata.csv"]
    mine[out / "wavs" / "a2.wav"] = "my own take"
    (out / "wavs" / "a2.wav").write_text("my own take")
    done = voxmill("prepare", str(src), "-o", str(out), "--overwrite", "--workers", "1")
    assert done.returncode == 2 and "wavs/a2.wav exists" in done.stderr, done.stderr
    assert all(path.read_text() == text for path, text in mine.items())
    (out / "wavs" / "a2.wav").unlink()
    done = voxmill("prepare", str(src), "-o", str(out), "--resume", "--workers", "1")
    assert done.returncode == 0, done.stderr
    assert (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in (out / "wavs").iterdir()) == ["a1.wav", "a2.wav"]


def test_synth_output_onto_its_input_text_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from hostile import no_traceback, voxmill

    # A text file with an audio name (a download, a rename gone wrong), given as both input and output:
    # once, it was replaced by its own speech.
    text = tmp_path / "story.wav"
    text.write_text("The wheel turned slowly. Water ran over the stones.", encoding="utf-8")
    before = text.read_bytes()
    (tmp_path / "link.wav").symlink_to(text)
    for output in (text, tmp_path / "link.wav"):
        done = voxmill("synth", "-i", str(text), "-o", str(output))
        no_traceback(done)
        assert done.returncode == 2, done.stderr
        assert "is the input" in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert text.read_bytes() == before
    # A chapters folder that holds the text is refused too.
    done = voxmill("synth", "-i", str(text), "-o", str(tmp_path), "--chapters")
    assert done.returncode == 2 and "holds the input" in done.stderr, done.stderr
    assert text.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.wav", "story.wav"]  # no parts, lock or temp
