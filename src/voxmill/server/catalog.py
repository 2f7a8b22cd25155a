"""``GET /v1/models`` and ``GET /v1/models/{id}``: every Piper voice and Whisper model the registry knows,
loaded or not, in OpenAI's list shape, plus the OpenAI names (``tts-1``, ``whisper-1``, ...) and the
configured aliases, each marked with the model it stands for.

Silero VAD and plain ONNX models are not listed: no route takes them as a ``model``.
"""

from __future__ import annotations

import difflib
from typing import Any

from fastapi import APIRouter, Depends, Request

from voxmill import errors
from voxmill.models import ModelSpec
from voxmill.models.registry import shown
from voxmill.server.auth import require_api
from voxmill.server.state import OPENAI_ASR_MODELS, OPENAI_TTS_MODELS, ServerState

__all__ = ["SERVED_KINDS", "catalog", "router"]

SERVED_KINDS = ("piper", "whisper")

router = APIRouter(tags=["models"], dependencies=[Depends(require_api)])


def _created(spec: ModelSpec, fallback: float) -> int:
    try:
        return int(spec.path.stat().st_mtime)
    except OSError:
        return int(fallback)


def _entry(spec: ModelSpec, loaded: set[str], started: float) -> dict[str, Any]:
    return {
        "id": spec.name,
        "object": "model",
        "created": _created(spec, started),
        "owned_by": "voxmill",
        "kind": spec.kind,
        "loaded": spec.name in loaded,
        "size_bytes": spec.size_bytes,
        "language": spec.language,
        "speakers": spec.speakers,
        "sample_rate": spec.sample_rate,
        "quality": spec.quality,
        "alias_of": None,
    }


def _aliases(state: ServerState) -> list[tuple[str, tuple[str, ...]]]:
    """(alias, kinds it may name) for OpenAI's model names and the configured aliases. A configured
    alias is tried as a voice, then as an ASR model: its target need not carry a ``kind:`` prefix."""
    names: list[tuple[str, tuple[str, ...]]] = [(n, ("piper",)) for n in OPENAI_TTS_MODELS]
    names += [(n, ("whisper",)) for n in OPENAI_ASR_MODELS]
    known = {name for name, _ in names}
    names += [(name, SERVED_KINDS) for name in state.server.aliases if name not in known]
    return names


def catalog(state: ServerState) -> list[dict[str, Any]]:
    """The model list ``/v1/models`` answers (the web UI shows it too). Each id appears once: an alias
    that spells a model's own name stands for what requests naming it get, its target."""
    loaded = {row.name for row in state.manager.status()}
    specs = [s for s in state.manager.registry.all() if s.kind in SERVED_KINDS]
    by_name = {s.name: s for s in specs}
    aliases: dict[str, dict[str, Any]] = {}
    for alias, kinds in _aliases(state):
        for kind in kinds:
            try:
                target = state.resolve(alias, kind)
            except errors.VoxmillError:
                continue  # an alias of a model that is not installed (or of another kind) names nothing
            if target.name in by_name and alias not in aliases:
                aliases[alias] = {**_entry(target, loaded, state.started), "id": alias, "created": int(state.started),
                                  "alias_of": target.name}  # fmt: skip
    data = [_entry(spec, loaded, state.started) for spec in specs if spec.name not in aliases]
    return data + list(aliases.values())


@router.get("/v1/models")
def list_models(request: Request) -> dict[str, Any]:
    return {"object": "list", "data": catalog(request.app.state.voxmill)}


@router.get("/v1/models/{model_id}")
def get_model(model_id: str, request: Request) -> dict[str, Any]:
    data = catalog(request.app.state.voxmill)
    for entry in data:
        if entry["id"] == model_id:
            return entry
    ids = [str(e["id"]) for e in data]
    close = difflib.get_close_matches(model_id, ids, n=3, cutoff=0.4) if len(model_id) <= 200 else []
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise errors.ModelNotFound(f"unknown model {shown(repr(model_id))}{hint}")
