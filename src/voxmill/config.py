"""Settings: defaults < voxmill.yaml < VOXMILL_* environment variables < CLI flags.

The YAML file is ``--config PATH`` when given, else ``./voxmill.yaml``, else
``$XDG_CONFIG_HOME/voxmill/voxmill.yaml`` (``~/.config/voxmill/voxmill.yaml``). Every key and value is
checked: a bad one raises :class:`~voxmill.errors.ConfigError` naming where it came from, the key and why.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

# errors is the one exception tree every layer raises from; imported via the package root.
from voxmill import errors

ConfigError = errors.ConfigError

__all__ = [
    "BACKENDS",
    "DEVICES",
    "ServerSettings",
    "Settings",
    "parse_whole_or_auto",
    "config_search_path",
    "default_voices_dir",
    "load_settings",
    "parse_duration",
    "parse_size",
]

ENV_PREFIX = "VOXMILL_"
# `voxmill serve` hands its resolved Settings (JSON) to the app uvicorn builds in another module layer.
SERVE_SETTINGS_ENV = "VOXMILL_SERVE_SETTINGS"
# Where a run's items go. "auto" lets the application choose (process for most; convert picks
# threads for ONNX processors). The one list: the engine's RunOptions and the CLI use it.
BACKENDS = ("auto", "serial", "thread", "process", "ray")
DEVICES = ("auto", "cpu", "cuda")

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_DURATION_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "ms": 0.001}


def parse_size(value: Any) -> int:
    """Parse a byte size: an int, or a string like ``4GB``, ``512MiB``, ``1.5g``."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size like 4GB, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(value))
    if not match or match.group(2).lower() not in _SIZE_UNITS:
        raise ValueError(f"expected a size like 4GB or 512MiB, got {value!r}")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


def parse_duration(value: Any) -> float:
    """Parse seconds: a number, or a string like ``30s``, ``5m``, ``1h``, ``250ms``."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 5m, got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(value))
        if not match or match.group(2).lower() not in _DURATION_UNITS:
            raise ValueError(f"expected a duration like 30s, 5m or 1h, got {value!r}")
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]
    if not math.isfinite(seconds):  # YAML's .nan / .inf: a NaN keep-alive would never expire anything
        raise ValueError(f"expected a finite duration, got {value!r}")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def _parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def parse_whole_or_auto(value: Any) -> int | str:
    """A positive whole number (an int or its digits) or ``"auto"``; not 0, 1.5, true or "".
    The one rule for worker and thread counts: Settings and the engine's RunOptions both use it."""
    if isinstance(value, str):
        text = value.strip()
        if text.lower() == "auto":
            return "auto"
        if re.fullmatch(r"[0-9]+", text, re.ASCII) and int(text) >= 1:
            return int(text)
    elif isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise ValueError(f"expected a positive whole number or 'auto', got {value!r}")


def _choice(*choices: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = str(value).strip().lower()
        if text not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {value!r}")
        return text

    return parse


def _parse_device(value: Any) -> str:
    """auto, cpu, cuda or cuda:N: what the engine's RunOptions and ``--device`` accept, from any source."""
    text = str(value).strip().lower()
    if text in DEVICES or re.fullmatch(r"cuda:[0-9]+", text, re.ASCII):
        return text
    raise ValueError(f"expected one of {', '.join(DEVICES)} (or cuda:N), got {value!r}")


def _positive_size(value: Any) -> int:
    """A budget: a size above 0 (0 is refused here, naming the key, not later by the run's check)."""
    size = parse_size(value)
    if size <= 0:
        raise ValueError(f"expected a size above 0 like 4GB (or auto), got {value!r}")
    return size


def _optional(parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def wrapped(value: Any) -> Any:
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "auto", "none")):
            return None
        return parse(value)

    return wrapped


def _parse_path(value: Any) -> Path:
    # A NUL makes every later os call on the path raise ValueError, far from the setting that caused it.
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip() or "\0" in str(value):
        raise ValueError(f"expected a path, got {value!r}")
    return Path(os.path.expandvars(str(value))).expanduser()


def _parse_profiles(value: Any) -> dict[str, list[str]]:
    if not isinstance(value, Mapping):
        raise ValueError("expected a mapping of profile name -> list of model names")
    profiles: dict[str, list[str]] = {}
    for name, models in value.items():
        if isinstance(models, str) or not isinstance(models, list):
            raise ValueError(f"profile {name!r}: expected a list of model names")
        profiles[str(name)] = [str(m) for m in models]
    return profiles


def _fraction(value: Any) -> float:
    """A share of memory in use, 0..1 (``0.85``) or a percentage (``85``, ``"85%"``)."""
    text = str(value).strip()
    percent = text.endswith("%")
    try:
        number = float(text.rstrip("%"))
    except ValueError:
        raise ValueError(f"expected a fraction like 0.85 or a percentage like 85%, got {value!r}") from None
    if percent or number > 1:
        number /= 100
    if not 0 < number <= 1:
        raise ValueError(f"expected a fraction above 0 and at most 1 (or 1-100%), got {value!r}")
    return number


def _bounded_int(low: int, high: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool) or not re.fullmatch(r"\s*[0-9]+\s*", str(value), re.ASCII):
            raise ValueError(f"expected a whole number from {low} to {high}, got {value!r}")
        number = int(str(value))
        if not low <= number <= high:
            raise ValueError(f"expected a whole number from {low} to {high}, got {value!r}")
        return number

    return parse


def _parse_aliases(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
        raise ValueError("expected a mapping of name -> model name")
    return {str(k): str(v) for k, v in value.items()}


def _bounded_seconds(low: float, high: float) -> Callable[[Any], float]:
    def parse(value: Any) -> float:
        seconds = parse_duration(value)
        if not low <= seconds <= high:  # NaN and inf fail here too
            raise ValueError(f"expected {low:g} to {high:g} seconds (or 2s, 1m), got {value!r}")
        return seconds

    return parse


def _parse_host(value: Any) -> str:
    # An empty host binds every interface (asyncio reads "" as "all"), the opposite of what it looks like.
    text = value if isinstance(value, str) else ""
    if not text or len(text) > 253 or any(c.isspace() or not c.isprintable() for c in text):
        raise ValueError(f"expected an address like 127.0.0.1, 0.0.0.0 or ::, got {value!r}")
    return text


def _parse_wyoming_uri(value: Any) -> str:
    """``tcp://HOST:PORT`` or ``unix:///PATH`` (stdio is not served: the server has other clients)."""
    from urllib.parse import urlparse

    text = value.strip() if isinstance(value, str) else ""
    hint = f"expected tcp://HOST:PORT (e.g. tcp://0.0.0.0:10200) or unix:///PATH, got {value!r}"
    if not text or len(text) > 1000 or any(c.isspace() or not c.isprintable() for c in text):
        raise ValueError(hint)
    parsed = urlparse(text)
    if parsed.scheme == "tcp":
        try:
            port = parsed.port
        except ValueError:
            raise ValueError(hint) from None
        if not parsed.hostname or port is None or parsed.path not in ("", "/"):
            raise ValueError(hint)
        return text
    if parsed.scheme == "unix" and parsed.path and not parsed.netloc:
        return text
    raise ValueError(hint)


def _setting(default: Any, parse: Callable[[Any], Any], doc: str, env: bool = True) -> Any:
    meta = {"parse": parse, "doc": doc, "env": env}
    if callable(default):
        return field(default_factory=default, metadata=meta)
    return field(default=default, metadata=meta)


_Config = TypeVar("_Config", "Settings", "ServerSettings")


@dataclass
class ServerSettings:
    """``voxmill serve``: the ``server:`` block of voxmill.yaml, ``VOXMILL_SERVER_<KEY>``, then flags."""

    host: str = _setting("127.0.0.1", _parse_host, "address to listen on")
    port: int = _setting(8000, _bounded_int(0, 65535), "port to listen on (0: any free port)")
    max_queue: int = _setting(16, _bounded_int(1, 100_000), "requests per model kind waiting or running; more get 503")
    default_voice: str = _setting("piper:en_US-joe-medium", str, "voice for OpenAI's voice and model names")
    default_asr: str = _setting("whisper:tiny.en", str, "ASR model for OpenAI's transcription model names")
    aliases: dict[str, str] = _setting(dict, _parse_aliases, "extra name -> model name (e.g. alloy: piper:NAME)")
    max_input_chars: int = _setting(20_000, _bounded_int(1, 10_000_000), "longest speech input, characters")
    max_body_bytes: int = _setting(25 * 1000**2, _positive_size, "largest request body (an upload), bytes")
    monitor_interval: float = _setting(
        2.0, _bounded_seconds(0.1, 3600.0), "seconds between memory samples (0.1 to 3600)"
    )
    ram_cleanup: float = _setting(0.85, _fraction, "share of system RAM in use at which idle models are freed")
    gpu_cleanup: float = _setting(0.90, _fraction, "share of a GPU's memory in use at which idle models are freed")
    ram_alert: float = _setting(0.90, _fraction, "share of system RAM in use that raises an alert")
    gpu_alert: float = _setting(0.95, _fraction, "share of a GPU's memory in use that raises an alert")
    admin_token_file: Path | None = _setting(None, _optional(_parse_path), "file holding the admin bearer token")
    auth: str = _setting("admin", _choice("admin", "all"), "which routes need the token: admin, or all")
    ui: bool = _setting(True, _parse_bool, "serve the web UI at /ui")
    shutdown_timeout: float = _setting(
        30.0, _bounded_seconds(0.0, 3600.0), "seconds a stop waits for requests in flight, then ends them"
    )
    wyoming: str | None = _setting(
        None, _optional(_parse_wyoming_uri), "also serve the Wyoming protocol at tcp://HOST:PORT or unix:///PATH"
    )
    http: bool = _setting(True, _parse_bool, "serve HTTP (API, /metrics, web UI); false: the Wyoming protocol alone")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], origin: str = "server") -> ServerSettings:
        """Defaults updated with ``values``; unknown keys and bad values raise ConfigError."""
        return _apply(cls(), values, origin)

    def updated(self, values: Mapping[str, Any], origin: str = "command line") -> ServerSettings:
        """A copy with ``values`` applied (None values skipped: a flag the user did not give), checked."""
        return _apply(self, {k: v for k, v in values.items() if v is not None}, origin)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["admin_token_file"] = None if self.admin_token_file is None else str(self.admin_token_file)
        return out


def _parse_server(value: Any) -> ServerSettings:
    if isinstance(value, ServerSettings):
        return value
    if not isinstance(value, Mapping):
        raise ValueError("expected a mapping of server settings (host, port, max_queue, ...)")
    try:
        return ServerSettings.from_dict(value)
    except ConfigError as exc:
        raise ValueError(str(exc).removeprefix("server: ")) from None


def default_voices_dir() -> Path:
    """``$XDG_DATA_HOME/voxmill/voices`` (``~/.local/share/voxmill/voices``)."""
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "voxmill" / "voices"


@dataclass
class Settings:
    """Run-wide settings shared by every command. See the module docstring for precedence."""

    workers: int | str = _setting("auto", parse_whole_or_auto, "worker processes, or 'auto' (usable cores)")
    backend: str = _setting("auto", _choice(*BACKENDS), "engine backend: auto, serial, thread, process, ray")
    device: str = _setting("auto", _parse_device, "where models run: auto, cpu, cuda or cuda:N")
    budget: int | None = _setting(None, _optional(_positive_size), "RAM budget for models in bytes (None: auto)")
    gpu_budget: int | None = _setting(None, _optional(_positive_size), "GPU memory budget per device in bytes")
    keep_alive: float = _setting(300.0, parse_duration, "seconds an idle model stays loaded")
    voices_dir: Path = _setting(default_voices_dir, _parse_path, "folder searched for Piper voices")
    debug: bool = _setting(False, _parse_bool, "show tracebacks and debug logs")
    quiet: bool = _setting(False, _parse_bool, "no progress bars")
    profiles: dict[str, list[str]] = _setting(
        dict, _parse_profiles, "model profiles: name -> list of model names", env=False
    )
    server: ServerSettings = _setting(ServerSettings, _parse_server, "voxmill serve (a mapping)", env=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (paths as strings), e.g. for ``--json`` output or a YAML file."""
        out = dataclasses.asdict(self)
        out["voices_dir"] = str(self.voices_dir)
        out["server"] = self.server.to_dict()
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], origin: str = "settings") -> Settings:
        """Defaults updated with ``values``; unknown keys and bad values raise ConfigError."""
        return _apply(cls(), values, origin)


def _apply(settings: _Config, values: Mapping[str, Any], origin: str) -> _Config:
    """``settings`` (Settings or ServerSettings) with ``values`` parsed by each field's parser; ConfigError
    naming ``origin``, the key and why for an unknown key or a bad value."""
    fields = {f.name: f for f in dataclasses.fields(settings)}
    changes: dict[str, Any] = {}
    for raw_key, value in values.items():
        key = str(raw_key).replace("-", "_")
        if key not in fields:
            close = [name for name in fields if name.startswith(key[:3])]
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{origin}: unknown key {raw_key!r}{hint}")
        try:
            changes[key] = fields[key].metadata["parse"](value)
        except ValueError as exc:
            raise ConfigError(f"{origin}: {raw_key}: {exc}") from None
    return dataclasses.replace(settings, **changes)


def config_search_path(config: str | Path | None = None) -> list[Path]:
    """The files consulted for settings, in order; the first that exists wins."""
    if config is not None:
        return [Path(config).expanduser()]
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return [Path.cwd() / "voxmill.yaml", Path(config_home) / "voxmill" / "voxmill.yaml"]


def _read_yaml(path: Path) -> Mapping[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    except yaml.YAMLError as exc:
        reason = " ".join(str(exc).split())
        raise ConfigError(f"{path}: not valid YAML: {reason}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    return data


def load_settings(
    config: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build Settings from defaults, the YAML file, ``VOXMILL_*`` variables and CLI ``overrides``.

    ``overrides`` entries whose value is None (a flag the user did not give) are ignored.
    """
    settings = Settings()
    paths = config_search_path(config)
    if config is not None and paths[0].is_dir():
        raise ConfigError(
            f"--config {paths[0]}: is a folder; give the settings file (e.g. {paths[0] / 'voxmill.yaml'})"
        )
    if config is not None and not paths[0].is_file():
        raise ConfigError(f"--config {paths[0]}: config file not found")
    for path in paths:
        if path.is_file():
            settings = _apply(settings, _read_yaml(path), str(path))
            break

    env = os.environ if env is None else env
    env_names = {ENV_PREFIX + f.name.upper(): f.name for f in dataclasses.fields(Settings) if f.metadata["env"]}
    for var, key in env_names.items():
        if var in env:
            settings = _apply(settings, {key: env[var]}, var)
    for server_field in dataclasses.fields(ServerSettings):
        var = f"{ENV_PREFIX}SERVER_{server_field.name.upper()}"
        if var in env and server_field.name != "aliases":
            server = _apply(settings.server, {server_field.name: env[var]}, var)
            settings = dataclasses.replace(settings, server=server)

    if overrides:
        given = {k: v for k, v in overrides.items() if v is not None}
        settings = _apply(settings, given, "command line")
    return settings
