"""What every route of one server shares: settings, the model manager, the scheduler, the monitor.

Routes reach it as ``request.app.state.voxmill``. Model names from requests are resolved here, and
only here: a name is looked up among the models the registry discovered and is never turned into a
path, so no request can make the server open a file outside the known model folders.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio

from voxmill import errors
from voxmill.config import ServerSettings, Settings, parse_duration
from voxmill.models import MemoryMonitor, ModelManager, ModelSpec
from voxmill.models.registry import is_path, shown
from voxmill.server.scheduler import Scheduler

__all__ = ["OPENAI_ASR_MODELS", "OPENAI_TTS_MODELS", "OPENAI_VOICES", "ServerState", "parse_keep_alive"]

# OpenAI's names, accepted so that clients written for OpenAI work unchanged; each maps to the
# configured default (server.default_voice / default_asr) unless server.aliases maps it elsewhere.
OPENAI_TTS_MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")
OPENAI_VOICES = ("alloy", "ash", "ballad", "cedar", "coral", "echo", "fable", "marin", "nova", "onyx", "sage",
                 "shimmer", "verse")  # fmt: skip
OPENAI_ASR_MODELS = ("whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe")
ALERTS_KEPT = 200
KEEP_FOREVER = math.inf  # the manager clamps it to the top of its keep-alive range


def parse_keep_alive(value: Any) -> float | None:
    """Ollama's ``keep_alive``: a duration (``"5m"``, ``"30s"``) or seconds; 0 unloads the model after the
    request, a negative value keeps it loaded; None: the server's default. ConfigError (400) otherwise."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
        return KEEP_FOREVER  # -1e-07 as text would not parse as a duration
    text = str(value).strip()
    try:
        if text.startswith("-"):
            parse_duration(text[1:])
            return KEEP_FOREVER
        seconds = parse_duration(value)
    except (ValueError, OverflowError) as exc:
        raise errors.ConfigError(f"keep_alive: {exc}") from None
    if not math.isfinite(seconds):
        raise errors.ConfigError(f"keep_alive: expected a finite duration, got {value!r}")
    return seconds


@dataclass
class ServerState:
    settings: Settings
    manager: ModelManager
    scheduler: Scheduler
    monitor: MemoryMonitor
    token: str | None
    preload: tuple[str, ...] = ()
    ready: threading.Event = field(default_factory=threading.Event)
    preload_error: str | None = None
    settings_lock: threading.Lock = field(default_factory=threading.Lock)
    """Why the preload failed (``/readyz`` says so until a restart), or None."""
    alerts: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=ALERTS_KEPT))
    started: float = field(default_factory=time.time)
    metrics: Any = None
    """The app's :class:`~voxmill.server.metrics.Metrics` (set by ``install_metrics``)."""
    wyoming_address: str | None = None
    """Where the Wyoming listener listens (``tcp://127.0.0.1:PORT``), once started; None: not serving it."""

    @property
    def server(self) -> ServerSettings:
        return self.settings.server

    def alias(self, name: str, kind: str) -> str | None:
        """The model an OpenAI (or configured) name stands for, or None if ``name`` is no alias."""
        server = self.server
        if name in server.aliases:
            return server.aliases[name]
        if kind == "piper" and (name in OPENAI_TTS_MODELS or name in OPENAI_VOICES):
            return server.default_voice
        if kind == "whisper" and name in OPENAI_ASR_MODELS:
            return server.default_asr
        return None

    def resolve(self, name: str, kind: str) -> ModelSpec:
        """The model of ``kind`` that ``name`` names (an alias, ``kind:NAME`` or ``NAME``).

        ModelNotFound (404, with close matches) for anything else, paths included.
        """
        target = self.alias(name, kind) or name
        if not target or is_path(target) or len(target) > 300:
            raise errors.ModelNotFound(f"unknown model {shown(repr(name))}: give a model name, not a path")
        return self.manager.registry.resolve(target, kind=kind)

    @contextlib.asynccontextmanager
    async def leased(self, spec: ModelSpec, keep_alive: float | None = None) -> AsyncIterator[Any]:
        """Hold ``spec`` loaded for the block (loading it on a thread, not the event loop); yields the
        model. ``keep_alive`` 0 unloads it when the block ends, unless another request holds it."""
        lease = self.manager.lease(spec, keep_alive=keep_alive)
        model = await anyio.to_thread.run_sync(lease.__enter__)  # not abandoned if cancelled: no lease leaks
        try:
            yield model
        finally:
            # On a thread: a release may unload the model (keep_alive 0), which collects garbage and trims
            # the heap (tens of ms); shielded, so a cancelled request still gives its lease back.
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(lease.__exit__, None, None, None)

    def record_audio(self, model: str, seconds: float) -> None:
        """Count ``seconds`` of audio produced (speech) or consumed (transcription) by ``model``."""
        if self.metrics is not None:
            self.metrics.audio_seconds(model, seconds)

    def alert(self, message: str, **info: Any) -> None:
        self.alerts.append({"time": time.time(), "message": message, **info})
