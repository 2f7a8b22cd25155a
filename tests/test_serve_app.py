"""The server's frame: health, JSON errors for unknown routes and bad bodies, the body limit, the CLI."""

from __future__ import annotations

import httpx
import pytest
from tests.serving import make_settings, served


def test_health_and_json_errors() -> None:
    with served(make_settings(max_body_bytes=1000)) as (url, _):
        assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
        assert httpx.get(f"{url}/readyz").status_code == 200
        missing = httpx.get(f"{url}/no/such/route")
        assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"
        big = httpx.post(f"{url}/v1/audio/speech", content=b"x" * 5000, headers={"content-type": "application/json"})
        assert big.status_code == 413 and "1000 bytes" in big.json()["error"]["message"]

        def chunks():  # no Content-Length: the limit counts what streams in
            for _ in range(10):
                yield b"y" * 500

        streamed = httpx.post(f"{url}/v1/audio/speech", content=chunks(), headers={"content-type": "application/json"})
        assert streamed.status_code == 413


def test_serve_help_and_bad_flags(tmp_path) -> None:
    from voxmill.cli.main import main

    assert main(["serve", "--help"]) == 0
    assert main(["serve", "--workers", "abc"]) == 2
    assert main(["serve", "--preload", "nope"]) == 2
    assert main(["serve", "--auth", "everyone"]) == 2
    assert main(["serve", "--port", "70000"]) == 2


@pytest.mark.parametrize("value", ["abc", "-1", "1.5"])
def test_server_settings_refuse_bad_values(value: str) -> None:
    from voxmill.config import load_settings
    from voxmill.errors import ConfigError

    with pytest.raises(ConfigError, match="VOXMILL_SERVER_MAX_QUEUE"):
        load_settings(env={"VOXMILL_SERVER_MAX_QUEUE": value})
