"""--resume after the input or the options changed: nothing stale is kept."""

from __future__ import annotations


def _prepare_corpus(root, speech, count=4):
    from hostile import ljspeech

    rows = [(f"r{i}", f"Sentence number {i} of the corpus.") for i in range(count)]
    return ljspeech(root, rows, speech)


def _interrupted_prepare(src, out, extra=()):
    """A prepare run stopped early (--fail-fast on a last row whose audio is garbage): its journal and
    staged clips stay, as after a kill."""
    from hostile import voxmill

    (src / "wavs" / "zbad.wav").write_bytes(b"RIFF garbage, not audio" * 50)
    with (src / "metadata.csv").open("a", encoding="utf-8") as fh:
        fh.write("zbad|A broken last row.\n")
    done = voxmill("prepare", str(src), "-o", str(out), "--workers", "1", "--fail-fast", *extra)
    assert done.returncode == 1, done.stderr
    assert list((out / ".voxmill" / "clips").rglob("*.wav")), "the interrupted run keeps its staging"
    lines = (src / "metadata.csv").read_text(encoding="utf-8").splitlines()
    (src / "metadata.csv").write_text("".join(f"{x}\n" for x in lines if not x.startswith("zbad|")), encoding="utf-8")


def test_prepare_resume_reruns_a_corrected_transcript_and_a_new_sample_rate(tmp_path, short_speech):
    import json

    import soundfile as sf

    from hostile import no_traceback, voxmill

    for interrupted in (False, True):
        src = _prepare_corpus(tmp_path / f"src{interrupted}", short_speech)
        out = tmp_path / f"out{interrupted}"
        if interrupted:
            _interrupted_prepare(src, out)
        else:
            assert voxmill("prepare", str(src), "-o", str(out), "--workers", "1").returncode == 0
        meta = src / "metadata.csv"
        meta.write_text(meta.read_text().replace("Sentence number 1 ", "Corrected sentence 1 "), encoding="utf-8")
        done = voxmill("prepare", str(src), "-o", str(out), "--workers", "1", "--resume")
        no_traceback(done)
        assert done.returncode == 0, done.stderr
        texts = dict(line.split("|", 1) for line in (out / "metadata.csv").read_text().splitlines())
        assert texts["r1"] == "Corrected sentence 1 of the corpus.", interrupted

        done = voxmill("prepare", str(src), "-o", str(out), "--workers", "1", "--resume", "--sample-rate", "16000")
        assert done.returncode == 0, done.stderr
        assert json.loads((out / "config.json").read_text())["audio"]["sample_rate"] == 16000
        rates = {wav.name: sf.info(wav).samplerate for wav in (out / "wavs").glob("*.wav")}
        assert rates == {f"r{i}.wav": 16000 for i in range(4)}, (interrupted, rates)  # config and wavs agree


def test_prepare_resume_reruns_a_staged_clip_that_is_missing_or_damaged(tmp_path, speech):
    import hashlib
    import os
    import signal
    import subprocess
    import sys
    import time

    from hostile import ljspeech, no_traceback, voxmill

    src = ljspeech(tmp_path / "src", [(f"d{i:02d}", f"Damaged staging {i}.") for i in range(12)], speech)
    out = tmp_path / "out"
    args = [sys.executable, "-m", "voxmill", "--quiet", "prepare", str(src), "-o", str(out), "--workers", "1"]
    run = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    stage = out / ".voxmill" / "clips"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(stage.rglob("*.wav"))) < 3:
        time.sleep(0.02)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    staged = sorted(stage.rglob("*.wav"))
    assert 3 <= len(staged) < 12, "the kill should land mid-run"
    for number, wav in enumerate(staged):  # every staged clip missing, cut short or garbage
        if number % 3 == 0:
            wav.unlink()
        else:
            wav.write_bytes(wav.read_bytes()[:2000] if number % 3 == 1 else b"\0" * 3000)
    done = voxmill("prepare", str(src), "-o", str(out), "--workers", "1", "--resume")
    no_traceback(done)
    assert done.returncode == 0, done.stderr

    clean = tmp_path / "clean"
    assert voxmill("prepare", str(src), "-o", str(clean), "--workers", "1").returncode == 0

    def digest(folder):
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (folder / "wavs").glob("*.wav")}

    assert digest(out) == digest(clean) and len(digest(out)) == 12


def test_attack_prepare_resume_reruns_audio_rewritten_in_place_with_size_and_mtime_kept(tmp_path, short_speech):
    import os

    import numpy as np
    import soundfile as sf

    from hostile import ljspeech, no_traceback, voxmill

    src = ljspeech(tmp_path / "src", [("r0", "Sentence number zero."), ("r1", "Sentence number one.")], short_speech)
    out = tmp_path / "out"
    _interrupted_prepare(src, out)
    before = (out / "wavs" / "r1.wav").read_bytes()
    # The same size, inode and mtime, other samples: only the ctime tells the file was rewritten.
    wav = src / "wavs" / "r1.wav"
    st = os.stat(wav)
    samples, _ = sf.read(wav, dtype="int16")
    with wav.open("r+b") as fh:
        fh.seek(st.st_size - samples.nbytes)
        fh.write((samples // 2).tobytes())
    os.utime(wav, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(wav).st_size == st.st_size and os.stat(wav).st_mtime_ns == st.st_mtime_ns
    done = voxmill("prepare", str(src), "-o", str(out), "--workers", "1", "--resume")
    no_traceback(done)
    assert done.returncode == 0, done.stderr
    fresh = tmp_path / "fresh"
    assert voxmill("prepare", str(src), "-o", str(fresh), "--workers", "1").returncode == 0
    assert (out / "wavs" / "r1.wav").read_bytes() == (fresh / "wavs" / "r1.wav").read_bytes() != before
    assert np.any(sf.read(out / "wavs" / "r0.wav")[0])
