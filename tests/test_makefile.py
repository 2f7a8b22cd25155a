"""`make demo` runs on a fresh machine without root: it installs no system package (no browser)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_demo_needs_no_root_and_no_browser() -> None:
    # -n prints the recipe without running it; -B as if nothing were built yet (a fresh machine).
    plan = subprocess.run(["make", "-n", "-B", "demo"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "voxmill prepare" in plan
    for word in ("apt-get", "sudo", "chromium", "playwright install"):
        assert word not in plan


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_tests_get_their_browser() -> None:
    plan = subprocess.run(["make", "-n", "-B", "test"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "chromium" in plan
