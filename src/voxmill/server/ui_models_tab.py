"""The web UI's Models tab: the table of known and loaded models, Load / Unload / Pin / Unpin with device
and keep-alive, profile preload and release, a live memory chart, the alert log, auto-cleanup settings.

What it shows is what ``/api/ps``, ``/api/memory``, ``/api/alerts`` and ``/api/settings`` show, so it is
shown to the same clients: with an admin token configured, only once the token is typed in; without
one, only to loopback clients. The data and the actions themselves are in ``ui_models``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import gradio as gr

from voxmill.server.state import ServerState
from voxmill.server.ui_access import Refused, attempt, check_admin
from voxmill.server.ui_models import (
    ALERT_COLUMNS,
    CHART_COLUMNS,
    DEVICES,
    KEEP_ALIVE_CHOICES,
    TABLE_COLUMNS,
    ModelsView,
)

__all__ = ["models_tab"]

pd: Any = importlib.import_module("pandas")  # comes with Gradio; voxmill does not type-check against it
CHART_MINUTES = ("5", "15", "30")
CLEANUP_FIELDS = (
    ("ram_cleanup", "Free idle models at RAM % used"),
    ("gpu_cleanup", "Free idle models at GPU % used"),
    ("ram_alert", "Alert at RAM % used"),
    ("gpu_alert", "Alert at GPU % used"),
)
Action = Callable[[str | None, str | None, str | None], str]


def models_tab(blocks: gr.Blocks, state: ServerState, token: gr.Textbox) -> None:
    """Build the tab's components inside the current ``gr.Tab`` and wire them."""
    view = ModelsView(state)
    device_default = state.manager.device if state.manager.device in DEVICES else "auto"
    with gr.Row():
        model = gr.Dropdown(view.names(), value=None, label="Model", elem_id="models-model", scale=3)
        device = gr.Radio(list(DEVICES), value=device_default, label="Device", elem_id="models-device")
        keep = gr.Dropdown(list(KEEP_ALIVE_CHOICES), value="default", allow_custom_value=True, label="Keep alive",
                           info="how long it stays loaded once idle", elem_id="models-keep")  # fmt: skip
    with gr.Row():
        buttons = {name: gr.Button(name, variant="primary" if name == "Load" else "secondary",
                                   elem_id=f"models-{name.lower()}")
                   for name in ("Load", "Unload", "Pin", "Unpin")}  # fmt: skip
    status = gr.Markdown(elem_id="models-status")
    access = gr.Markdown(elem_id="models-access")
    table = gr.Dataframe(None, headers=list(TABLE_COLUMNS), label="Models", interactive=False, elem_id="models-table")
    with gr.Row():
        profile = gr.Dropdown(view.profiles(), value=None, label="Profile", elem_id="models-profile",
                              info="profiles: in voxmill.yaml")  # fmt: skip
        preload = gr.Button("Preload profile", elem_id="models-preload")
        release = gr.Button("Release profile", elem_id="models-release")
    minutes = gr.Radio(list(CHART_MINUTES), value="5", label="Memory, last minutes", elem_id="models-minutes")
    # No initial value: Gradio's chart draws no lines ever if its first data has no rows.
    chart = gr.LinePlot(None, x="time", y="GiB", color="series", title="Memory", height=280,
                        x_axis_format="%H:%M:%S", elem_id="models-chart")  # fmt: skip
    alerts = gr.Dataframe(None, headers=list(ALERT_COLUMNS), label="Alerts", interactive=False, elem_id="models-alerts")
    with gr.Accordion("Auto-cleanup", open=False):
        with gr.Row():
            idle = gr.Textbox(label="Idle timeout", info="seconds, or 30s, 5m, 1h", elem_id="cleanup-idle")
            percents = [gr.Number(None, label=label, minimum=1, maximum=100, elem_id=f"cleanup-{field}")
                        for field, label in CLEANUP_FIELDS]  # fmt: skip
        apply = gr.Button("Apply", elem_id="cleanup-apply")
        cleanup_status = gr.Markdown(elem_id="cleanup-status")

    def act(action: Action) -> Callable[..., Any]:
        def handler(
            name: str | None, device: str | None, keep: str | None, given: str, request: gr.Request
        ) -> tuple[Any, str]:
            allowed, message = _admin(state, request, given, lambda: action(name, device, keep))
            return (_table(view) if allowed else gr.skip()), message

        return handler

    actions: dict[gr.Button, Action] = {
        buttons["Load"]: view.load,
        buttons["Unload"]: lambda name, _device, _keep: view.unload(name),
        buttons["Pin"]: lambda name, device, _keep: view.pin(name, device),
        buttons["Unpin"]: lambda name, _device, _keep: view.unpin(name),
        preload: lambda name, _device, _keep: view.preload(name),
        release: lambda name, _device, _keep: view.release(name),
    }
    for button, action in actions.items():
        chosen = profile if button in (preload, release) else model
        button.click(act(action), [chosen, device, keep, token], [table, status], api_visibility="private")

    def refresh(span: str, given: str, request: gr.Request) -> tuple[Any, Any, Any, str]:
        def run() -> tuple[Any, Any, Any]:
            check_admin(state, request, given)
            return _table(view), _chart(view, float(span)), _alerts(view)

        shown, refused = attempt(run)
        if shown is None:  # not for this client (yet): show nothing, say why once, no toast every tick
            return _empty(TABLE_COLUMNS), gr.skip(), _empty(ALERT_COLUMNS), f"*{refused}*"
        return (*shown, "")

    timer = gr.Timer(min(10.0, max(2.0, state.server.monitor_interval)))
    gr.on([blocks.load, timer.tick, minutes.change, token.change], refresh, [minutes, token],
          [table, chart, alerts, access], show_progress="hidden", concurrency_limit=None,
          trigger_mode="always_last", api_visibility="private")  # fmt: skip

    def current(given: str, request: gr.Request) -> list[Any]:
        # Read when the page loads (or the token is typed): POST /api/settings may have changed them.
        try:
            check_admin(state, request, given)
        except Refused:
            return [gr.skip()] * (1 + len(CLEANUP_FIELDS))
        now = view.cleanup()
        return [f"{now.idle_timeout:g}", *(round(float(getattr(now, field)), 1) for field, _ in CLEANUP_FIELDS)]

    gr.on([blocks.load, token.change], current, [token], [idle, *percents], show_progress="hidden",
          trigger_mode="always_last", api_visibility="private")  # fmt: skip

    def apply_cleanup(
        idle: str, ram_cleanup: float, gpu_cleanup: float, ram_alert: float, gpu_alert: float, given: str,
        request: gr.Request,
    ) -> str:  # fmt: skip
        return _admin(state, request, given,
                      lambda: view.apply(idle, ram_cleanup, gpu_cleanup, ram_alert, gpu_alert))[1]  # fmt: skip

    apply.click(apply_cleanup, [idle, *percents, token], [cleanup_status], api_visibility="private")


def _admin(state: ServerState, request: gr.Request, given: str, action: Callable[[], str]) -> tuple[bool, str]:
    """Run an admin ``action`` for this client: (whether it may administer, the status line or why the
    action was not done, also shown as a toast)."""
    allowed = False

    def run() -> str:
        nonlocal allowed
        check_admin(state, request, given)
        allowed = True
        return action()

    message, error = attempt(run, gr.Warning)
    return allowed, message or f"**not done:** {error}"


def _table(view: ModelsView) -> Any:
    return pd.DataFrame(view.table(), columns=list(TABLE_COLUMNS))


def _chart(view: ModelsView, minutes: float) -> Any:
    # Typed columns: the chart picks a time axis from the column's dtype.
    frame = pd.DataFrame(view.memory(minutes), columns=list(CHART_COLUMNS))
    return frame.astype({"time": "datetime64[ms]", "series": "string", "GiB": "float64"})


def _alerts(view: ModelsView) -> Any:
    return pd.DataFrame(view.alerts(), columns=list(ALERT_COLUMNS))


def _empty(columns: tuple[str, ...]) -> Any:
    return pd.DataFrame(columns=list(columns))
