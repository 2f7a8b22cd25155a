"""The web UI at /ui in a real headless Chromium against a real server: load the bundled voice from the
Models tab (and /api/ps agrees), speak, transcribe the speech back, and the admin token guarding model
actions."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("gradio")
pytest.importorskip("playwright.sync_api")

import httpx
import soundfile as sf
from make_demo_audio import SENTENCES
from playwright.sync_api import sync_playwright
from starlette.requests import Request
from starlette.testclient import TestClient
from tests.serving import make_settings, served

from voxmill.audio import Audio, save
from voxmill.server import build_manager, create_app
from voxmill.server.ui_access import Refused, check_admin, check_api

CHROMIUM = shutil.which("chromium-headless-shell") or shutil.which("chromium")
VOICE = "piper:en_US-joe-medium"
TOKEN = "ui-test-token"
WAIT_MS = 60_000  # a model load on a busy 2-core machine

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="no headless Chromium"),
    pytest.mark.filterwarnings("ignore:::gradio"),  # Gradio's own use of pandas APIs pandas 3 deprecates
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    assert CHROMIUM is not None, "make test installs chromium-headless-shell"
    with sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Any]]:
    with served(make_settings(), ui=True) as (url, app):
        yield url, app


def open_tab(browser: Any, url: str, tab: str, elsewhere: list[str] | None = None) -> Any:
    """A new page on ``tab`` of the UI; ``elsewhere`` collects the URLs it asks of other hosts."""
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    page.set_default_timeout(WAIT_MS)
    if elsewhere is not None:
        page.on("request", lambda request: None if request.url.startswith(url) else elsewhere.append(request.url))
    page.goto(f"{url}/ui/")
    page.get_by_role("tab", name=tab).click()
    return page


def choose(page: Any, elem_id: str, value: str) -> None:
    """Pick ``value`` in a Gradio dropdown, as a user does: type to filter, click the option."""
    box = page.locator(f"#{elem_id} input")
    box.click()
    box.fill(value.split(":")[-1])
    page.get_by_role("option", name=value, exact=True).click()


def wait_text(page: Any, elem_id: str, text: str) -> str:
    page.wait_for_function(
        "([id, text]) => (document.getElementById(id)?.innerText || '').includes(text)", arg=[elem_id, text]
    )
    return str(page.inner_text(f"#{elem_id}"))


# Gradio's table is a virtual grid: its rows are ARIA rows of grid cells, not <tbody> rows.
ROWS_JS = """id => [...document.querySelectorAll(`#${id} [role=row]`)]
    .map(row => [...row.querySelectorAll('[role=gridcell]')].map(cell => cell.innerText.trim()))
    .filter(cells => cells.length)"""


def table_rows(page: Any, elem_id: str) -> list[list[str]]:
    return list(page.evaluate(ROWS_JS, elem_id))


def table_row(page: Any, name: str) -> list[str]:
    """The Models table's row for ``name``, cell by cell."""
    return next(row for row in table_rows(page, "models-table") if row[0] == name)


def test_models_tab_loads_the_bundled_voice(server: tuple[str, Any], browser: Any, tmp_path: Path) -> None:
    url, app = server
    app.state.voxmill.manager.unload_all()  # whichever test ran before
    elsewhere: list[str] = []
    page = open_tab(browser, url, "Models", elsewhere)
    page.locator("#models-table [role=gridcell]").first.wait_for()
    assert table_row(page, VOICE)[3] == "no"
    choose(page, "models-model", VOICE)
    page.locator("#models-load").click()
    assert VOICE in wait_text(page, "models-status", "loaded")
    page.wait_for_function(f"id => ({ROWS_JS})(id).some(row => row[0] === '{VOICE}' && row[3] === 'yes')",
                           arg="models-table")  # fmt: skip
    row = table_row(page, VOICE)
    assert row[:4] == [VOICE, "piper", row[2], "yes"] and row[2].endswith("MiB"), row
    assert row[4].startswith("cpu") and row[5].endswith("MiB") and row[7].startswith("in "), row
    # The chart has drawn lines of the monitor's samples (a chart first given no rows draws none).
    page.wait_for_function("() => document.querySelector('#models-chart')?.innerText.includes('server RSS')")
    shot = tmp_path / "models.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    assert elsewhere == []  # the UI works offline: no web fonts, CDN or telemetry
    page.close()

    ps = httpx.get(f"{url}/api/ps", timeout=10).json()
    loaded = {row["name"]: row for row in ps["models"]}
    assert loaded[VOICE]["device"] == "cpu" and loaded[VOICE]["pinned"] is False and loaded[VOICE]["refs"] == 0
    assert [s.name for s in app.state.voxmill.manager.status()] == [VOICE]


def test_speak_tab_plays_and_offers_the_speech(server: tuple[str, Any], browser: Any) -> None:
    url, _ = server
    page = open_tab(browser, url, "Speak")
    page.locator("#speak-button").click()  # no text: a one-line reason, never a traceback
    status = wait_text(page, "speak-status", "type some text")
    assert "Traceback" not in page.content() and "Error" not in status
    page.locator("#speak-text textarea").fill(SENTENCES[0])
    page.locator("#speak-button").click()
    assert "s of speech from" in wait_text(page, "speak-status", "s of speech")
    link = page.locator("#speak-audio [data-testid=download-link]")
    assert link.get_attribute("download") == "audio.wav"
    wav = httpx.get(str(link.get_attribute("href")), timeout=10)
    samples, rate = sf.read(io.BytesIO(wav.content))
    assert rate == 22050 and 2.0 < len(samples) / rate < 8.0
    page.close()


def test_transcribe_tab_gives_text_and_timestamps(
    server: tuple[str, Any], browser: Any, synth: Callable[[str], Audio], tmp_path: Path
) -> None:
    pytest.importorskip("faster_whisper")
    url, _ = server
    clip = tmp_path / "fox.wav"
    save(clip, synth(SENTENCES[2]))
    page = open_tab(browser, url, "Transcribe")
    page.locator("#asr-audio input[type=file]").set_input_files(str(clip))
    page.locator("#asr-button").click()
    wait_text(page, "asr-status", "segment(s)")
    text = page.locator("#asr-text textarea").input_value().lower()
    assert "quick brown fox" in text, text
    segments = table_rows(page, "asr-segments")
    starts = [float(row[0]) for row in segments]
    assert segments and starts == sorted(starts) and all(float(row[1]) > float(row[0]) for row in segments)
    page.close()


def test_model_actions_need_the_admin_token(browser: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOXMILL_ADMIN_TOKEN", TOKEN)
    with served(make_settings(), ui=True) as (url, app):
        page = open_tab(browser, url, "Models")
        # Nothing of the tab's data (what /api/ps shows) before the token, and no action.
        assert "needs the admin token" in wait_text(page, "models-access", "admin token")
        assert table_rows(page, "models-table") == []
        choose(page, "models-model", VOICE)
        page.locator("#models-load").click()
        assert "needs the admin token" in wait_text(page, "models-status", "not done")
        assert app.state.voxmill.manager.status() == []
        page.locator("#admin-token input").fill(TOKEN)
        page.locator("#models-table [role=gridcell]").first.wait_for()
        assert page.inner_text("#models-access").strip() == ""
        page.locator("#models-pin").click()
        assert "pinned" in wait_text(page, "models-status", "kept until unpinned")
        assert [(s.name, s.pinned) for s in app.state.voxmill.manager.status()] == [(VOICE, True)]
        page.close()


def test_without_a_token_only_loopback_clients_administer() -> None:
    def client(host: str) -> Request:
        return Request({"type": "http", "client": (host, 50000), "headers": []})

    for auth in ("admin", "all"):
        settings = make_settings(auth=auth)
        manager = build_manager(settings)
        state = create_app(settings, manager, ui=False).state.voxmill
        for host in ("127.0.0.1", "::1"):
            check_admin(state, client(host), "")
            check_api(state, client(host), "")
        for host in ("10.1.2.3", "", "example.org"):
            with pytest.raises(Refused, match="loopback clients only"):
                check_admin(state, client(host), "")
            if auth == "all":  # with auth: all, speaking and transcribing follow the same rule
                with pytest.raises(Refused, match="loopback clients only"):
                    check_api(state, client(host), "")
            else:
                check_api(state, client(host), "")
        manager.close()


LAZY = """
import sys, httpx
from tests.serving import make_settings, served
with served(make_settings(), ui=True) as (url, app):
    before = "gradio" in sys.modules
    health = httpx.get(url + "/healthz", timeout=10).status_code
    page = httpx.get(url + "/ui", timeout=120, follow_redirects=True)
    html = page.headers["content-type"].startswith("text/html")
    print(before, health, page.status_code, "gradio" in sys.modules, html)
"""


def test_the_ui_is_built_on_its_first_request() -> None:
    """A server whose UI nobody opens never imports Gradio (seconds of start-up and ~110 MiB)."""
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", LAZY], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["False", "200", "200", "True", "True"], done.stderr[-2000:]


def test_the_ui_outside_a_running_server_says_why() -> None:
    settings = make_settings()
    manager = build_manager(settings)
    client = TestClient(create_app(settings, manager, ui=True))  # no `with`: the lifespan never ran
    answer = client.get("/ui/")
    assert answer.status_code == 503 and answer.json()["error"]["code"] == "ui_unavailable"
    manager.close()
