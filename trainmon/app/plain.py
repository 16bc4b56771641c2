"""The plain loop: status lines and alert lines, for when there is no terminal to draw on."""

from __future__ import annotations

import time
from collections.abc import Callable

from trainmon.app.pacing import DRAIN_SLICE_S, collector
from trainmon.app.settings import AppSettings, Deadline
from trainmon.controls.terminal import quit_on_signals
from trainmon.report import status_line
from trainmon.sources import RecordSource
from trainmon.state import AlertWatch, RunState
from trainmon.view import ViewOptions

__all__ = ["run_plain"]


def run_plain(
    source: RecordSource,
    state: RunState,
    opts: ViewOptions,
    settings: AppSettings,
    emit: Callable[[str], None],
) -> None:
    """No terminal to draw on: a status line every few seconds, and a line for each
    alert as it is raised, until stopped or done."""
    deadline = Deadline(settings)
    next_line = time.monotonic()
    alerts = AlertWatch()
    with quit_on_signals() as stop, collector() as gc_policy:
        while not stop:
            source.drain(state, budget_s=DRAIN_SLICE_S * 5)
            state.settle(opts.run)
            gc_policy.frame()
            if deadline.reached(state, source.clock()):
                break
            for alert in alerts.check(state, source.clock(), opts.stall_after_s):
                emit(f"trainmon: alert: run {alert.run}: {alert.text}")
            if time.monotonic() >= next_line:
                emit(status_line(state, opts, source.clock()))
                next_line = time.monotonic() + settings.plain_interval_s
