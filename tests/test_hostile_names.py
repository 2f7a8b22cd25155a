"""Output names: injective, letters of every script kept, a collision refused, never silently merged."""

from __future__ import annotations


def _names_report(out):
    import json

    return {e["id"]: e for e in map(json.loads, (out / "report.jsonl").read_text(encoding="utf-8").splitlines())}


def _names_metadata(out):
    """metadata.csv rows as Piper's trainer reads them (csv.reader, delimiter '|')."""
    import csv

    with open(out / "metadata.csv", encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh, delimiter="|"))


def test_names_russian_folder_corpus_keeps_every_clip(tmp_path, short_speech):
    from hostile import folder_corpus, no_traceback, voxmill

    names = {"голос_001": "Первый голос.", "голос_002": "Второй голос.", "Речь-3": "Третья речь.", "ёж": "Ёж."}
    src = folder_corpus(tmp_path / "ru", names.items(), short_speech)
    out = tmp_path / "out"
    proc = voxmill("prepare", str(src), "-o", str(out), "--workers", "1")
    no_traceback(proc)
    assert proc.returncode == 0, proc.stderr
    rows = _names_metadata(out)
    assert len(rows) == 4
    wavs = sorted(p.name for p in (out / "wavs").iterdir())
    assert wavs == sorted(f"{name}.wav" for name in names)  # Cyrillic letters kept, one file per clip
    assert {row[0]: row[1] for row in rows} == names  # each row names its own clip's file
    assert all((out / "wavs" / f"{row[0]}.wav").is_file() for row in rows)


def test_names_path_separator_and_underscore_stay_apart(tmp_path, short_speech):
    from hostile import folder_corpus, voxmill

    src = folder_corpus(tmp_path / "src", [("a_b", "The underscore one.")], short_speech)
    (src / "a").mkdir()
    folder_corpus(src / "a", [("b", "The nested one.")], short_speech)
    out = tmp_path / "out"
    proc = voxmill("prepare", str(src), "-o", str(out), "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    rows = _names_metadata(out)
    assert sorted(row[1] for row in rows) == ["The nested one.", "The underscore one."]
    assert len({row[0] for row in rows}) == 2 and len(list((out / "wavs").iterdir())) == 2
    assert all((out / "wavs" / f"{row[0]}.wav").is_file() for row in rows)


def test_names_chinese_and_catalan_ids_to_every_format(tmp_path, short_speech):
    import json
    from pathlib import Path

    import pyarrow.parquet as pq

    from hostile import ljspeech, voxmill
    from voxmill.corpus import file_name

    ids = {"你好_01": "Ni hao.", "l·lengua_02": "La llengua.", "çà_03": "Aquí."}
    src = ljspeech(tmp_path / "src", ids.items(), short_speech)
    out = tmp_path / "out"
    proc = voxmill("prepare", str(src), "-o", str(out), "-f", "piper", "-f", "nemo", "-f", "hf", "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    assert {row[0]: row[1] for row in _names_metadata(out)} == {file_name(i): t for i, t in ids.items()}
    assert "你好_01.wav" in {p.name for p in (out / "wavs").iterdir()}
    manifest = [json.loads(x) for x in (out / "manifest_train.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len({r["audio_filepath"] for r in manifest}) == 3
    assert all(Path(r["audio_filepath"]).is_file() for r in manifest)
    table = pq.read_table(next((out / "hf").glob("train-*.parquet"))).to_pylist()
    assert sorted(r["id"] for r in table) == sorted(ids)
    assert len({r["audio"]["path"] for r in table}) == 3


def test_names_case_collision_is_refused_not_merged(tmp_path, short_speech):
    import soundfile as sf

    from hostile import ljspeech, no_traceback, voxmill
    from voxmill.corpus import Problem

    src = ljspeech(tmp_path / "src", [("Anna", "Anna speaks."), ("anna", "Another anna.")], short_speech)
    out = tmp_path / "out"
    proc = voxmill("prepare", str(src), "-o", str(out), "--workers", "1")
    no_traceback(proc)
    assert proc.returncode == 1  # a failed row
    report = _names_report(out)
    failed = [e for e in report.values() if e["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["code"] == Problem.NAME_COLLISION
    assert _names_metadata(out) == [["Anna", "Anna speaks."]]
    assert [p.name for p in (out / "wavs").iterdir()] == ["Anna.wav"]
    assert sf.info(out / "wavs" / "Anna.wav").frames > 0


def test_names_piper_trainer_reads_every_clip(tmp_path, short_speech):
    """piper.train's own data module on the output: every row's audio found, every text as written."""
    pytest = __import__("pytest")
    pytest.importorskip("piper.train.vits.dataset")
    from piper.train.vits.dataset import VitsDataModule

    from hostile import folder_corpus, voxmill

    texts = {"голос_1": "Привет.", "a_b": '"Quoted," she said.', "речь": 'Left | right, "so" to say.'}
    src = folder_corpus(tmp_path / "src", texts.items(), short_speech)
    (src / "a").mkdir()
    folder_corpus(src / "a", [("b", "Nested.")], short_speech)
    out = tmp_path / "out"
    assert voxmill("prepare", str(src), "-o", str(out), "--workers", "1").returncode == 0
    cache = tmp_path / "cache"
    module = VitsDataModule(
        csv_path=out / "metadata.csv", cache_dir=cache, espeak_voice="en-us", config_path=cache / "config.json",
        voice_name="t", audio_dir=out / "wavs", batch_size=1, validation_split=0, num_test_examples=0,
    )  # fmt: skip
    module.prepare_data()
    assert len(list(cache.glob("*.audio.pt"))) == 4  # no "Missing audio file": every id names its wav
    cached = {p.read_text(encoding="utf-8") for p in cache.glob("*.txt") if not p.name.endswith(".phonemes.txt")}
    assert cached == {*texts.values(), "Nested."}  # the '|' and the quotes survive, nothing is cut


def test_convert_inputs_with_one_base_name_never_share_an_output(tmp_path, short_speech) -> None:  # type: ignore[no-untyped-def]
    from hostile import no_traceback, voxmill
    from voxmill.audio import save

    save(tmp_path / "one" / "Take.wav", short_speech)
    save(tmp_path / "two" / "take.wav", short_speech)
    save(tmp_path / "three" / "other.wav", short_speech)
    out = tmp_path / "out"
    # The same file twice, and names a case-folding file system (macOS, Windows) makes one file.
    for pair in (["three/other.wav", "three/other.wav"], ["one/Take.wav", "two/take.wav"]):
        done = voxmill("convert", *[str(tmp_path / p) for p in pair], str(out), "-p", "loudness")
        no_traceback(done)
        assert done.returncode == 2, done.stdout + done.stderr
        assert "would both be written to" in done.stderr and done.stdout == "", done.stderr
        assert not out.exists() or not any(out.iterdir())
    # Inputs with distinct names are each written once, each reported once.
    done = voxmill("convert", str(tmp_path / "one" / "Take.wav"), str(tmp_path / "three" / "other.wav"), str(out),
                   "-p", "loudness")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["Take.wav", "other.wav"]
    assert len(done.stdout.strip().splitlines()) == 2


def test_synth_chapter_files_keep_titles_in_every_script(tmp_path):  # type: ignore[no-untyped-def]
    import json

    from hostile import no_traceback, voxmill

    text = tmp_path / "book.md"
    text.write_text(
        "# Глава 1: Буря\n\nThe wind blew.\n\n# 第一章 开始\n\nThe weather was fine.\n\n"
        "# Глава 2\n\nIt rained.\n\n# Çà et là\n\nThe end.\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    done = voxmill("synth", "-i", str(text), "-o", str(out))
    no_traceback(done)
    assert done.returncode == 0, done.stderr
    expected = ["01-глава-1-буря.wav", "02-第一章-开始.wav", "03-глава-2.wav", "04-çà-et-là.wav"]
    assert sorted(p.name for p in out.glob("*.wav")) == expected  # numbered: a listing plays in order
    index = json.loads((out / "chapters.json").read_text(encoding="utf-8"))
    assert [c["file"] for c in index["chapters"]] == expected
    assert [c["title"] for c in index["chapters"]] == ["Глава 1: Буря", "第一章 开始", "Глава 2", "Çà et là"]
    # The English voice cannot read the Cyrillic and Chinese titles: it says so.
    assert "warning:" in done.stderr and "Cyrillic" in done.stderr and "Han" in done.stderr
