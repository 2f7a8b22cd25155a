"""Hostile-user regressions around the server's admin side (issue 19): the web UI reading server files,
absurd server settings, the admin token file and header, a stop with a request trickling in, and a lease
cancelled while its model loads."""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.serving import make_settings, served

from voxmill import errors
from voxmill.config import ServerSettings
from voxmill.models import MemoryMonitor
from voxmill.server import build_manager, create_app
from voxmill.server.auth import TOKEN_ENV, read_token

VOICE = "piper:en_US-joe-medium"


# ---- the web UI: a client names a server file as its "upload" ---------------------------------------


def _gradio_call(base: str, api_name: str, data: list[Any]) -> dict[str, Any]:
    """Call one of the UI's events the way its page does (queue/join, then the event stream)."""
    config = httpx.get(f"{base}/ui/config", timeout=120).json()
    fn = next(i for i, dep in enumerate(config["dependencies"]) if dep.get("api_name") == api_name)
    session = uuid.uuid4().hex
    joined = httpx.post(f"{base}/ui/gradio_api/queue/join", timeout=60,
                        json={"data": data, "fn_index": fn, "session_hash": session, "event_data": None})  # fmt: skip
    assert joined.status_code == 200, joined.text
    with httpx.stream("GET", f"{base}/ui/gradio_api/queue/data?session_hash={session}", timeout=60) as events:
        for line in events.iter_lines():
            if line.startswith("data:"):
                message = json.loads(line[5:])
                if message.get("msg") == "process_completed":
                    return dict(message)
    raise AssertionError("the event never completed")


@pytest.mark.filterwarnings("ignore:::gradio")  # Gradio's own use of pandas APIs pandas 3 deprecates
def test_ui_transcribe_never_reads_a_server_file_a_client_names(tmp_path: Path) -> None:
    # Gradio checks that an input file was uploaded only once its Blocks "has launched", which a mounted
    # app never was: the Transcribe event copied any server file (here a secret) into Gradio's cache,
    # where /ui/gradio_api/file= served it back, and decoded it.
    pytest.importorskip("gradio")
    name = f"secret-{uuid.uuid4().hex}.txt"
    secret = tmp_path / name
    secret.write_text("the admin password is hunter2\n")
    with served(make_settings(), ui=True) as (url, _app):
        assert httpx.get(f"{url}/ui/", timeout=120).status_code == 200
        file = {"path": str(secret), "meta": {"_type": "gradio.FileData"}, "orig_name": "x.wav"}
        done = _gradio_call(url, "transcribe", [file, "whisper:tiny.en", "", ""])
        assert not done.get("success"), done
        from gradio.utils import get_upload_folder

        assert not list(Path(get_upload_folder()).rglob(name)), "the server file was copied into Gradio's cache"


def test_ui_transcribe_reads_only_gradio_uploads(tmp_path: Path) -> None:
    pytest.importorskip("gradio")
    from gradio.utils import get_upload_folder

    from voxmill.server.ui_blocks import _uploaded

    with pytest.raises(errors.ConfigError, match="only files sent from this page"):
        _uploaded(str(tmp_path / "x.wav"))
    with pytest.raises(errors.ConfigError):
        _uploaded(f"{get_upload_folder()}/../../etc/passwd")
    inside = Path(get_upload_folder()) / "abc" / "x.wav"
    assert _uploaded(str(inside)) == inside.resolve()


# ---- settings ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, "0s", math.nan, math.inf, 1e-9, 10**9])
def test_absurd_monitor_intervals_are_refused(value: Any) -> None:
    # 0 divided by zero in the monitor, NaN crashed it, 1e-9 sampled in a busy loop into a ring of 1.8e12.
    with pytest.raises(errors.ConfigError, match="monitor_interval"):
        ServerSettings().updated({"monitor_interval": value})
    if not isinstance(value, str) and not 0 < value < 1:  # the library's monitor refuses what cannot work
        with pytest.raises(ValueError, match="monitor interval"):
            MemoryMonitor(interval=float(value))


@pytest.mark.parametrize("value", ["", " ", "\x00", "127.0.0.1 ", 5])
def test_empty_or_odd_hosts_are_refused(value: Any) -> None:
    # An empty host made uvicorn listen on every interface (0.0.0.0 and ::) while printing "http://:8000".
    with pytest.raises(errors.ConfigError, match="host"):
        ServerSettings().updated({"host": value})
    assert ServerSettings().updated({"host": "::"}).host == "::"


def test_token_file_is_read_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    started = time.monotonic()
    with pytest.raises(errors.ConfigError, match="not a regular file"):
        read_token(Path("/dev/zero"))  # was read whole: the server never started, memory grew
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(errors.ConfigError, match="not a regular file"):
        read_token(fifo)  # would block the start for ever
    assert time.monotonic() - started < 5
    long = tmp_path / "long"
    long.write_text("x" * 100_000)
    with pytest.raises(errors.ConfigError, match="over 4096 bytes"):
        read_token(long)
    good = tmp_path / "token"
    good.write_text("  s3cret \nsecond line\n")
    assert read_token(good) == "s3cret"


def test_a_utf8_token_matches_the_header_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    # Headers reach the app latin-1 decoded: a token with non-ASCII letters could never be given.
    token = "tökén-ü"
    monkeypatch.setenv(TOKEN_ENV, token)
    with served(make_settings()) as (url, _app):
        right = httpx.get(f"{url}/api/ps", headers={"Authorization": f"Bearer {token}".encode()})
        wrong = httpx.get(f"{url}/api/ps", headers={"Authorization": "Bearer tökén-x".encode()})
        latin = httpx.get(f"{url}/api/ps", headers={"Authorization": f"Bearer {token}".encode("latin-1")})
    assert right.status_code == 200, right.text
    assert wrong.status_code == 401 and latin.status_code == 401


# ---- stopping with a request in flight ----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_sigterm_with_a_trickling_upload_stops_within_the_grace(tmp_path: Path) -> None:
    # uvicorn waited for every connection to end: a client sending an upload a byte a second held a
    # SIGTERM off for as long as it liked. Now it waits server.shutdown_timeout, then answers 503.
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOXMILL_")}
    env.update(VOXMILL_SERVER_SHUTDOWN_TIMEOUT="1", XDG_CONFIG_HOME=str(tmp_path))
    command = [sys.executable, "-m", "voxmill", "--quiet", "serve", "--port", str(port), "--no-ui"]
    server = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, server.communicate()[1][-2000:]
            time.sleep(0.2)
        with socket.create_connection(("127.0.0.1", port), timeout=20) as client:
            client.sendall(b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
                           b"boundary=b\r\nContent-Length: 100000\r\n\r\n--b\r\n")  # fmt: skip
            client.sendall(b"x")
            time.sleep(0.5)
            stopped = time.monotonic()
            server.send_signal(signal.SIGTERM)
            answer = b""
            while b"\r\n\r\n" not in answer:
                client.sendall(b"x")  # still trickling
                chunk = client.recv(4096)
                if not chunk:
                    break
                answer += chunk
        server.wait(timeout=20)
        assert time.monotonic() - stopped < 10
        head = answer.decode("latin-1").lower()
        assert head.startswith("http/1.1 503") and "retry-after" in head, head
        assert "Traceback" not in server.communicate()[1]
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


# ---- a lease cancelled while its model loads ---------------------------------------------------------------


def test_a_lease_cancelled_while_loading_is_given_back() -> None:
    # uvicorn cancels the tasks still running when the shutdown grace ends; a lease whose load was under
    # way must not stay held (a model "in use" for ever is never evicted nor unloaded).
    settings = make_settings()
    manager = build_manager(settings)
    state = create_app(settings, manager, ui=False).state.voxmill
    spec = state.resolve(VOICE, "piper")

    async def use() -> None:
        async with state.leased(spec):
            await asyncio.sleep(10)

    async def main() -> None:
        task = asyncio.create_task(use())
        await asyncio.sleep(0.05)  # the voice is loading on a thread now
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    try:
        asyncio.run(main())
        deadline = time.monotonic() + 30
        while any(row.loading for row in manager.status()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [row.refs for row in manager.status()] in ([], [0])
    finally:
        manager.close()
