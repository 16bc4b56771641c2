"""The monitor's loop: the only place with a clock, a screen and a keyboard."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from rich.console import Console
from rich.layout import Layout
from rich.live import Live

from trainmon.ingest import RecordSource
from trainmon.keys import Action, quit_on_signals, terminal_keys
from trainmon.state import RunState
from trainmon.view import ViewOptions, footer, header, render, status_line, summary

__all__ = ["AppSettings", "DoneWatch", "final_summary", "is_done", "run_dashboard", "run_plain"]

_DRAIN_SLICE_S = 0.02


@dataclass(frozen=True, slots=True)
class AppSettings:
    """How the loop runs, as opposed to what it shows."""

    refresh_s: float = 0.1
    interactive: bool = True
    exit_when_done: bool = False
    done_grace_s: float = 2.0
    plain_interval_s: float = 5.0
    max_duration_s: float | None = None  # stop after this long whatever happens


class DoneWatch:
    """Knows when every worker seen has said bye, and for how long that has held."""

    def __init__(self) -> None:
        self.since: float | None = None

    def check(self, state: RunState, now: float, grace_s: float) -> bool:
        if not is_done(state):
            self.since = None
            return False
        if self.since is None:
            self.since = now
        return now - self.since >= grace_s


def is_done(state: RunState) -> bool:
    """Every worker of every run has said bye."""
    return bool(state.runs) and all(run.finished for run in state.runs.values())


def run_dashboard(
    source: RecordSource,
    state: RunState,
    opts: ViewOptions,
    settings: AppSettings,
    console: Console,
    clock: Callable[[], float] = time.time,
) -> ViewOptions:
    """Show the live dashboard until quit; returns the last view options."""
    done = DoneWatch()
    started = clock()
    frozen: Layout | None = None
    paused_at = 0
    with (
        quit_on_signals() as stop,
        terminal_keys(settings.interactive) as keys,
        Live(
            console=console,
            screen=True,
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=False,
        ) as live,
    ):
        next_frame = 0.0
        while not stop:
            source.drain(state, budget_s=_DRAIN_SLICE_S)
            for action in keys.read():
                if action is Action.QUIT:
                    return opts
                if action is Action.TOGGLE_PAUSE:
                    opts = replace(opts, paused=not opts.paused, paused_records=0)
                    frozen, paused_at = None, state.records
                    next_frame = 0.0
            now = clock()
            if settings.exit_when_done and done.check(state, now, settings.done_grace_s):
                break
            if settings.max_duration_s is not None and now - started >= settings.max_duration_s:
                break
            if now >= next_frame:
                if opts.paused:
                    opts = replace(opts, paused_records=state.records - paused_at)
                    frozen = frozen or _frame(state, opts, now)
                    _repaint_bars(frozen, state, opts, now)
                    live.update(frozen, refresh=True)
                else:
                    live.update(render(state, opts, now), refresh=True)
                next_frame = now + settings.refresh_s
    return opts


def _frame(state: RunState, opts: ViewOptions, now: float) -> Layout:
    frame = render(state, opts, now)
    assert isinstance(frame, Layout)
    return frame


def _repaint_bars(frame: Layout, state: RunState, opts: ViewOptions, now: float) -> None:
    """Refresh the header and footer of a frozen frame (PAUSED and its count)."""
    children = frame.children
    run = state.current(opts.run)
    children[0].update(header(state, run, opts, now))
    children[-1].update(footer(opts))


def run_plain(
    source: RecordSource,
    state: RunState,
    opts: ViewOptions,
    settings: AppSettings,
    emit: Callable[[str], None],
    clock: Callable[[], float] = time.time,
) -> None:
    """No terminal to draw on: a status line every few seconds until stopped or done."""
    done = DoneWatch()
    started = clock()
    next_line = clock()
    with quit_on_signals() as stop:
        while not stop:
            source.drain(state, budget_s=_DRAIN_SLICE_S * 5)
            now = clock()
            if settings.exit_when_done and done.check(state, now, settings.done_grace_s):
                break
            if settings.max_duration_s is not None and now - started >= settings.max_duration_s:
                break
            if now >= next_line:
                emit(status_line(state, opts, now))
                next_line = now + settings.plain_interval_s


def final_summary(
    state: RunState, opts: ViewOptions, clock: Callable[[], float] = time.time
) -> str:
    """What to print once the monitor stops."""
    return summary(state, opts, clock())
