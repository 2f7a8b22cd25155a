"""The options of one engine run, and the one place they are checked.

:class:`RunOptions` (workers, backend, threads per worker, cluster address, timeout, model budget,
device, progress) is nested in every application's options as ``opts.run`` and built in one place
from Settings and the CLI's flags (:meth:`RunOptions.from_settings`). Every application validates it
before doing any work (before an output folder exists), and the :class:`~voxmill.engine.Pool` checks
the same way, so a bad value is one :class:`~voxmill.errors.ConfigError` naming the option (exit 2 in
the CLI), never a ``ValueError`` traceback from deep inside a run.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from voxmill.config import BACKENDS, DEVICES, Settings, parse_whole_or_auto
from voxmill.errors import ConfigError

__all__ = [
    "BACKENDS",
    "DEVICES",
    "LOCAL_BACKENDS",
    "RunOptions",
    "check_number",
    "parse_count",
    "parse_timeout",
    "parse_workers",
]

# Backends whose workers run on this machine, so its cores bound how many make sense (Ray's are the cluster's).
LOCAL_BACKENDS = ("serial", "thread", "process")


def parse_count(value: Any, option: str) -> int | str:
    """A positive whole number or ``"auto"``, from an int or its CLI string form (``"3"``, ``" auto "``).

    Anything else (``0``, ``-1``, ``"abc"``, ``"1.5"``, ``""``, ``True``, ``2.0``) raises ConfigError
    naming ``option``.
    """
    try:
        return parse_whole_or_auto(value)
    except ValueError:
        raise ConfigError(f"{option} {value!r}: expected a positive whole number or 'auto'") from None


def parse_workers(value: Any) -> int | str:
    """``--workers``: a positive whole number or ``"auto"`` (usable cores; Ray: the cluster's CPUs)."""
    return parse_count(value, "--workers")


def check_number(
    option: str, value: Any, low: float, high: float, *, integer: bool = False, low_open: bool = False
) -> None:
    """ConfigError naming ``option`` unless ``value`` is a number (a whole one with ``integer``) in
    ``[low, high]`` (``(low, high]`` with ``low_open``). NaN fails every comparison, so it is refused too.
    The one range check of every application's options."""
    kind = "a whole number" if integer else "a number"
    number = isinstance(value, int if integer else (int, float)) and not isinstance(value, bool)
    if number and (low < value if low_open else low <= value) and value <= high:
        return
    bounds = f"above {low:g}" if low_open else f"at least {low:g}"
    if high != math.inf:
        bounds += f" and at most {high:g}"
    raise ConfigError(f"{option} {value!r}: must be {kind} {bounds}")


# A year: longer is no limit at all, and 1e308 s overflows the OS's wait calls (an OverflowError).
MAX_TIMEOUT = 365 * 24 * 3600.0


def parse_timeout(value: Any) -> float | None:
    """``--timeout``: None (no limit) or a positive, finite number of seconds (at most a year)."""
    if value is None:
        return None
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if number and math.isfinite(value) and 0 < value <= MAX_TIMEOUT:
        return float(value)
    raise ConfigError(f"--timeout {value!r}: expected a positive number of seconds (at most {MAX_TIMEOUT:g})")


def check_backend(backend: Any, choices: Collection[str] = BACKENDS) -> str:
    if not isinstance(backend, str) or backend not in choices:
        raise ConfigError(f"--backend {backend!r}: expected one of {', '.join(choices)}")
    return backend


def check_address(address: Any) -> str | None:
    """A Ray cluster address (``auto``, ``HOST:PORT``, ``ray://HOST:PORT``) or None. The other backends
    ignore it: an application may run serially (one item, ``--no-parallel``) whatever the address."""
    if address is None:
        return None
    # Ray itself answers a malformed address ("foo", "host:99999999") with a ValueError traceback or a
    # minute of connection retries: the form is checked here, before any work.
    text = address if isinstance(address, str) else ""
    match = re.fullmatch(r"(?:ray://)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):([0-9]{1,5})", text, re.ASCII)
    if text in ("auto", "local") or (match and 0 < int(match.group(2)) < 65536):
        return text
    raise ConfigError(f"--ray-address {address!r}: expected 'auto' or HOST:PORT")


def check_device(device: Any) -> str:
    if not isinstance(device, str) or not (device in DEVICES or re.fullmatch(r"cuda:[0-9]+", device, re.ASCII)):
        raise ConfigError(f"--device {device!r}: expected one of {', '.join(DEVICES)} (or cuda:N)")
    return device


def check_budget(budget: Any, option: str = "budget") -> int | None:
    if budget is None or (isinstance(budget, int) and not isinstance(budget, bool) and budget > 0):
        return budget
    raise ConfigError(f"{option} {budget!r}: expected a positive number of bytes, or None (auto)")


@dataclass
class RunOptions:
    """How one run is spread over workers; the engine's part of every application's options (``opts.run``).

    ``workers``: a count or ``"auto"`` (usable cores; with Ray, the cluster's CPUs / threads per worker).
    On this machine (serial, thread, process) the engine never starts more than the items it is given,
    nor more than a few workers per usable core, whatever is asked. ``backend``: auto, serial, thread,
    process or ray; ``auto`` lets the application choose (:meth:`backend_or`). ``address``: the Ray
    cluster (``auto``, ``HOST:PORT``); None starts a local Ray; the other backends ignore it.
    ``threads_per_worker``: native threads per worker, ``"auto"`` = max(1, cores // workers).
    ``timeout``: seconds after which one item fails (None: no limit). ``budget``: bytes of models all
    workers together may hold (None: the manager's automatic budget). ``device``: where models run
    (auto, cpu, cuda, cuda:N). ``gpu_budget``: bytes of GPU memory per device the workers' models may
    hold (None: the device's free memory). ``progress``: a bar on stderr; None shows it when stderr is a terminal.
    """

    workers: int | str = "auto"
    backend: str = "auto"
    address: str | None = None
    threads_per_worker: int | str = "auto"
    timeout: float | None = None
    progress: bool | None = None
    budget: int | None = None
    device: str = "auto"
    gpu_budget: int | None = None

    def validate(self, backends: Collection[str] = BACKENDS) -> RunOptions:
        """Raise ConfigError naming the first bad option; ``backends``: the ones this application runs
        on (an application may accept fewer). The CLI's string forms are normalised in place
        (``workers="3"`` becomes 3, ``timeout="30"`` 30.0): what passes is what every reader of these
        fields sees, never a string where a number is expected. Returns self, for chaining."""
        self.workers = parse_workers(self.workers)
        check_backend(self.backend, backends)
        check_address(self.address)
        self.threads_per_worker = parse_count(self.threads_per_worker, "--threads-per-worker")
        self.timeout = parse_timeout(self.timeout)
        check_budget(self.budget)
        check_budget(self.gpu_budget, "gpu_budget")
        check_device(self.device)
        if self.progress is not None and not isinstance(self.progress, bool):
            raise ConfigError(f"progress {self.progress!r}: expected true, false or None")
        return self

    def backend_or(self, default: str) -> str:
        """The backend to use: the one asked for, or the application's ``default`` for ``auto``;
        a cluster address means Ray."""
        if self.backend == "auto":
            return "ray" if self.address else default
        return self.backend

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        workers: Any = None,
        backend: str | None = None,
        address: str | None = None,
        threads_per_worker: Any = None,
        timeout: Any = None,
        progress: bool | None = None,
    ) -> RunOptions:
        """Settings (defaults < voxmill.yaml < VOXMILL_*) updated with the flags that were given
        (None: not given), validated. The one place a command's run options are built."""
        chosen_workers = settings.workers if workers is None else parse_workers(workers)
        if chosen_workers == "auto":
            chosen_workers = settings.workers
        return cls(
            workers=chosen_workers,
            backend=settings.backend if backend is None else backend,
            address=address,
            threads_per_worker="auto"
            if threads_per_worker is None
            else parse_count(threads_per_worker, "--threads-per-worker"),
            timeout=parse_timeout(timeout),
            progress=False if settings.quiet else progress,
            budget=settings.budget,
            gpu_budget=settings.gpu_budget,
            device=settings.device,
        ).validate()

    @classmethod
    def parse(
        cls,
        workers: Any = "auto",
        backend: str = "auto",
        address: str | None = None,
        threads_per_worker: Any = "auto",
        timeout: Any = None,
        progress: bool | None = None,
        backends: Collection[str] = BACKENDS,
    ) -> RunOptions:
        """From the CLI's string forms (``--workers 4``, ``--timeout 30``), validated."""
        return cls(
            parse_workers(workers),
            backend,
            address,
            parse_count(threads_per_worker, "--threads-per-worker"),
            parse_timeout(timeout),
            progress,
        ).validate(backends)
