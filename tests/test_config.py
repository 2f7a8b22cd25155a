from __future__ import annotations

from pathlib import Path

import pytest

from voxmill.config import Settings, load_settings, parse_duration, parse_size
from voxmill.errors import ConfigError


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No user config or VOXMILL_* variables of the machine leak into these tests."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    for name in list(__import__("os").environ):
        if name.startswith("VOXMILL_"):
            monkeypatch.delenv(name)


def test_defaults() -> None:
    settings = load_settings(env={})
    assert settings == Settings()
    assert settings.workers == "auto" and settings.backend == "auto" and settings.keep_alive == 300.0


def test_precedence_defaults_yaml_env_flags(tmp_path: Path) -> None:
    (tmp_path / "voxmill.yaml").write_text("workers: 3\nbackend: thread\nkeep_alive: 10m\nbudget: 2GB\n")
    from_yaml = load_settings(env={})
    assert (from_yaml.workers, from_yaml.backend, from_yaml.keep_alive, from_yaml.budget) == (
        3,
        "thread",
        600.0,
        2 * 10**9,
    )

    env = {"VOXMILL_WORKERS": "5", "VOXMILL_BUDGET": "512MiB"}
    from_env = load_settings(env=env)
    assert (from_env.workers, from_env.backend, from_env.budget) == (5, "thread", 512 * 2**20)

    from_flags = load_settings(env=env, overrides={"workers": 7, "backend": None})
    assert (from_flags.workers, from_flags.backend, from_flags.budget) == (7, "thread", 512 * 2**20)


def test_user_config_is_used_when_no_local_file(tmp_path: Path) -> None:
    user = tmp_path / "xdg" / "voxmill"
    user.mkdir(parents=True)
    (user / "voxmill.yaml").write_text("device: cpu\n")
    assert load_settings(env={}).device == "cpu"
    (tmp_path / "voxmill.yaml").write_text("device: cuda\n")
    assert load_settings(env={}).device == "cuda"  # ./voxmill.yaml comes first


def test_explicit_config_file(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere.yaml"
    path.write_text("quiet: true\nprofiles:\n  tts: [piper:en_US-joe-medium]\n")
    settings = load_settings(path, env={})
    assert settings.quiet and settings.profiles == {"tts": ["piper:en_US-joe-medium"]}
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "missing.yaml", env={})
    with pytest.raises(ConfigError, match="is a folder; give the settings file"):
        load_settings(tmp_path, env={})  # a folder is not "not found": say what it is


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("wokers: 2\n", "unknown key 'wokers'"),
        ("workers: 0\n", "workers: expected a positive whole number"),
        ("workers: 1.5\n", "workers: expected a positive whole number"),
        ("workers: true\n", "workers: expected a positive whole number"),
        ("backend: gpu\n", "backend: expected one of auto, serial, thread, process, ray"),
        ("budget: lots\n", "budget: expected a size"),
        ("keep_alive: -5\n", "keep_alive: a duration cannot be negative"),
        ("profiles: [a, b]\n", "profiles: expected a mapping"),
        ("- just\n- a list\n", "expected a mapping of settings"),
        ("workers: [\n", "not valid YAML"),
    ],
)
def test_bad_yaml_names_file_key_and_reason(tmp_path: Path, yaml_text: str, message: str) -> None:
    (tmp_path / "voxmill.yaml").write_text(yaml_text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")) as caught:
        load_settings(env={})
    assert str(caught.value).startswith(str(tmp_path / "voxmill.yaml"))
    assert "\n" not in str(caught.value)


def test_bad_env_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"^VOXMILL_DEBUG: debug: expected true or false"):
        load_settings(env={"VOXMILL_DEBUG": "maybe"})


def test_parsers() -> None:
    assert parse_size("1.5g") == 1_500_000_000
    assert parse_size(1024) == 1024
    assert parse_size("4 GiB") == 4 * 2**30
    assert parse_duration("250ms") == 0.25
    assert parse_duration("2h") == 7200
    assert Settings.from_dict({"keep-alive": "30s"}).keep_alive == 30.0
    assert Settings().to_dict()["voices_dir"].endswith("voxmill/voices")
