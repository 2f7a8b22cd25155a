"""The web UI's Gradio Blocks: tabs Speak, Transcribe and Models over one server's state.

Imported when the UI is first requested (``ui.py``: Gradio is slow to import and heavy). Handlers run on Gradio's
worker threads; each checks who may act (``ui_access``) and turns any failure into a one-line status
and a toast, so no page ever shows a traceback.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from voxmill import errors
from voxmill.server.speaking import speak_to_array
from voxmill.server.state import ServerState
from voxmill.server.transcription import transcribe_file
from voxmill.server.ui_access import attempt, check_api
from voxmill.server.ui_models_tab import models_tab

__all__ = ["build_blocks"]

# pandas comes with Gradio (its tables and charts take DataFrames); voxmill does not depend on it, nor
# type-check against it.
pd: Any = importlib.import_module("pandas")

SEGMENT_COLUMNS = ("start", "end", "text")
# Local fonts only: the default theme asks Google Fonts, which a server without internet cannot reach.
FONTS = ("ui-sans-serif", "system-ui", "sans-serif")
MONO_FONTS = ("ui-monospace", "monospace")


def theme() -> Any:
    return gr.themes.Default(font=list(FONTS), font_mono=list(MONO_FONTS))


def build_blocks(state: ServerState) -> gr.Blocks:
    with gr.Blocks(title="voxmill", analytics_enabled=False, delete_cache=(3600, 3600)) as blocks:
        gr.Markdown("## voxmill")
        needed = "model actions" + (", speaking and transcribing" if state.server.auth == "all" else "")
        token = gr.Textbox(label="Admin token", type="password", visible=state.token is not None,
                           info=f"needed for {needed}", elem_id="admin-token")  # fmt: skip
        with gr.Tabs():
            with gr.Tab("Speak", id="speak"):
                _speak_tab(state, token)
            with gr.Tab("Transcribe", id="transcribe"):
                _transcribe_tab(state, token)
            with gr.Tab("Models", id="models"):
                models_tab(blocks, state, token)
    blocks.queue(default_concurrency_limit=4)
    return blocks


# ---- Speak -------------------------------------------------------------------------------------------


def _speak_tab(state: ServerState, token: gr.Textbox) -> None:
    voices = [spec.name for spec in state.manager.registry.all("piper")]
    default = state.server.default_voice if state.server.default_voice in voices else next(iter(voices), None)
    text = gr.Textbox(label="Text", lines=5, max_length=state.server.max_input_chars, elem_id="speak-text")
    with gr.Row():
        voice = gr.Dropdown(voices, value=default, label="Voice", elem_id="speak-voice")
        speed = gr.Slider(0.25, 4.0, value=1.0, step=0.05, label="Speed", elem_id="speak-speed")
    button = gr.Button("Speak", variant="primary", elem_id="speak-button")
    audio = gr.Audio(label="Speech", type="numpy", format="wav", interactive=False, buttons=["download"],
                     elem_id="speak-audio")  # fmt: skip
    status = gr.Markdown(elem_id="speak-status")

    def speak(text: str, voice: str, speed: float, given: str, request: gr.Request) -> tuple[Any, str]:
        def run() -> tuple[int, np.ndarray]:
            check_api(state, request, given)
            if not (text or "").strip():
                raise errors.ConfigError("type some text to speak")
            return speak_to_array(state, voice, text, float(speed))

        result, message = attempt(run, gr.Warning)
        if result is None:
            return None, message or ""
        rate, samples = result
        return (rate, _pcm16(samples)), f"{len(samples) / rate:.1f} s of speech from {voice}"

    button.click(speak, [text, voice, speed, token], [audio, status], api_visibility="private")


def _pcm16(samples: np.ndarray) -> np.ndarray:
    """16-bit PCM for the player: Gradio would convert float audio itself, with a warning per call."""
    if samples.dtype == np.int16:
        return samples
    return (np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0) * 32767).astype(np.int16)


# ---- Transcribe --------------------------------------------------------------------------------------


def _transcribe_tab(state: ServerState, token: gr.Textbox) -> None:
    models = [spec.name for spec in state.manager.registry.all("whisper")]
    default = state.server.default_asr if state.server.default_asr in models else next(iter(models), None)
    source = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Audio", elem_id="asr-audio")
    with gr.Row():
        model = gr.Dropdown(models, value=default, label="Model", elem_id="asr-model")
        language = gr.Textbox(label="Language", placeholder="auto (e.g. en, de)", max_length=16,
                              elem_id="asr-language")  # fmt: skip
    button = gr.Button("Transcribe", variant="primary", elem_id="asr-button")
    text = gr.Textbox(label="Text", lines=5, interactive=False, elem_id="asr-text")
    segments = gr.Dataframe(pd.DataFrame(columns=list(SEGMENT_COLUMNS)), label="Segments", interactive=False,
                            elem_id="asr-segments")  # fmt: skip
    status = gr.Markdown(elem_id="asr-status")

    def transcribe(
        path: str | None, model: str, language: str, given: str, request: gr.Request
    ) -> tuple[str, Any, str]:
        def run() -> Any:
            check_api(state, request, given)
            if not path:
                raise errors.ConfigError("upload or record some audio first")
            return transcribe_file(state, _uploaded(path), model, (language or "").strip() or None, words=True)

        result, message = attempt(run, gr.Warning)
        if result is None:
            return "", pd.DataFrame(columns=list(SEGMENT_COLUMNS)), message or ""
        rows = [(f"{s.start:.2f}", f"{s.end:.2f}", str(s.text).strip()) for s in result.segments]
        return result.text.strip(), pd.DataFrame(rows, columns=list(SEGMENT_COLUMNS)), f"{len(rows)} segment(s)"

    button.click(transcribe, [source, model, language, token], [text, segments, status], api_visibility="private")


def _uploaded(path: str) -> Path:
    """``path`` if it is a file Gradio received from this client (in its upload folder), else ConfigError.

    Gradio is meant to refuse any other path before the handler runs (``ui.build_gradio`` makes sure it
    checks); this second check keeps a path a client names from ever reaching the decoder."""
    from gradio.utils import get_upload_folder

    folder = Path(get_upload_folder()).resolve()
    real = Path(path).resolve()
    if real == folder or not real.is_relative_to(folder):
        raise errors.ConfigError("upload or record some audio first (only files sent from this page are read)")
    return real
