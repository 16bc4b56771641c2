"""The live dashboard: records in, keys in, and a frame drawn as often as the machine
allows, until a key, a signal or the settings stop it."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field, replace

from rich.console import Console
from rich.layout import Layout
from rich.live import Live

from trainmon.app.pacing import DRAIN_SLICE_S, BusyShare, Collector, collector, frame_interval
from trainmon.app.screen import export_notice
from trainmon.app.settings import AppSettings, Deadline
from trainmon.controls.reducer import next_options
from trainmon.controls.terminal import KeyReader, quit_on_signals, terminal_keys
from trainmon.keys import Action
from trainmon.sources import RecordSource
from trainmon.state import AlertWatch, RunState
from trainmon.view import ViewOptions, footer, header, render, shown_run

__all__ = ["run_dashboard"]

_NOTICE_S = 6.0  # a notice stays this long
_REDRAWN = "paused view redrawn with the latest records"


def run_dashboard(
    source: RecordSource,
    state: RunState,
    opts: ViewOptions,
    settings: AppSettings,
    console: Console,
) -> ViewOptions:
    """Show the live dashboard until quit; returns the last view options."""
    deadline = Deadline(settings)
    with (
        quit_on_signals(suspendable=True) as stop,
        terminal_keys(settings.interactive) as keys,
        Live(
            console=console,
            screen=True,
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=False,
        ) as live,
        collector() as gc_policy,
    ):
        loop = _Loop(source, state, opts, settings, console, live, BusyShare(source), gc_policy)
        while not stop:
            if stop.suspend:  # Ctrl-Z: give the terminal back, stop; on fg, take it again
                stop.suspend = False
                loop.suspend(keys)
            source.drain(state, budget_s=DRAIN_SLICE_S)
            state.settle(loop.opts.run)
            now = source.clock()
            if not loop.take_keys(keys.read(), now) or deadline.reached(state, now):
                break
            loop.age_notice()
            if time.monotonic() >= loop.next_frame:
                loop.draw(now)
    return loop.opts


@dataclass(slots=True)
class _Loop:
    """What the live loop carries from one turn to the next, and its steps: the only
    writer of the view options while the dashboard runs."""

    source: RecordSource
    state: RunState
    opts: ViewOptions
    settings: AppSettings
    console: Console
    live: Live
    busy: BusyShare
    gc_policy: Collector
    alerts: AlertWatch = field(default_factory=AlertWatch)
    frozen: Layout | None = None  # the frame shown while paused
    paused_at: int = 0  # the records taken in when the paused view was drawn
    notice_until: float = 0.0  # when the notice shown goes (0: when another replaces it)
    next_frame: float = 0.0  # when to draw again (0: at once)

    def suspend(self, keys: KeyReader) -> None:
        """Give the terminal back and stop the process; on ``fg``, take it again."""
        self.live.stop()
        keys.release()
        os.kill(os.getpid(), signal.SIGSTOP)
        keys.grab()
        self.live.start()
        self.next_frame = 0.0

    def take_keys(self, actions: list[Action], now: float) -> bool:
        """Act on the keys pressed, each redrawing at once; False on quit."""
        for action in actions:
            if action is Action.QUIT:
                return False
            if action is Action.TOGGLE_PAUSE:
                self.toggle_pause()
            elif action is Action.EXPORT:
                self.export(now)
            else:
                self.change_view(action)
            self.next_frame = 0.0
        return True

    def toggle_pause(self) -> None:
        """Freeze the view (the source holds records back) or let it go on."""
        self.opts = replace(self.opts, paused=not self.opts.paused, paused_records=0)
        self.source.set_paused(self.opts.paused)
        self.frozen, self.paused_at = None, self.state.records

    def export(self, now: float) -> None:
        """Save the frame shown (the frozen one while paused) as a picture."""
        frame = self.frozen if self.frozen is not None else render(self.state, self.opts, now)
        self.tell(export_notice(frame, self.state, self.opts, self.console, self.settings))

    def change_view(self, action: Action) -> None:
        """A key that changes what is shown; paused, the view is redrawn (and says so)."""
        said = self.opts.notice
        self.opts = next_options(self.opts, action, self.state)
        self.frozen = None
        if self.opts.notice != said:  # the key explains why it did nothing
            self.notice_until = time.monotonic() + _NOTICE_S
        if self.opts.paused:  # redrawn as asked, with what has arrived; still paused
            self.paused_at = self.state.records
            self.tell(_REDRAWN)

    def tell(self, notice: str) -> None:
        """Show ``notice`` in the footer for a while."""
        self.opts = replace(self.opts, notice=notice)
        self.notice_until = time.monotonic() + _NOTICE_S

    def age_notice(self) -> None:
        """Take a notice away once its time is up; say when the source has finished."""
        if self.opts.notice and self.notice_until and time.monotonic() > self.notice_until:
            self.opts, self.notice_until = replace(self.opts, notice=""), 0.0
        finished = self.settings.finished_notice
        if finished and self.source.finished and not self.opts.notice:
            self.opts = replace(self.opts, notice=finished)

    def draw(self, now: float) -> None:
        """Draw a frame (paused: the frozen one, its bars brought up to date), and set
        when to draw the next."""
        drawing = time.monotonic()
        if self.opts.paused:
            self.opts = replace(self.opts, paused_records=self.state.records - self.paused_at)
            self.frozen = self.frozen or _frame(self.state, self.opts, now)
            _repaint_bars(self.frozen, self.state, self.opts, now)
            self.live.update(self.frozen, refresh=True)
        else:
            self.ring_alerts(now)
            self.live.update(render(self.state, self.opts, now), refresh=True)
        self.busy.frame()
        self.gc_policy.frame()
        drawn = time.monotonic()
        interval = frame_interval(
            self.settings.refresh_s, self.source.backlog, self.busy.share, drawn - drawing
        )
        self.next_frame = drawn + interval

    def ring_alerts(self, now: float) -> None:
        """Raise new alerts; with the bell on, ring it for them (at most three times)."""
        new_alerts = self.alerts.check(self.state, now, self.opts.stall_after_s)
        if new_alerts and self.settings.bell:
            self.console.file.write("\a" * min(len(new_alerts), 3))
            self.console.file.flush()


def _frame(state: RunState, opts: ViewOptions, now: float) -> Layout:
    frame = render(state, opts, now)
    assert isinstance(frame, Layout)
    return frame


def _repaint_bars(frame: Layout, state: RunState, opts: ViewOptions, now: float) -> None:
    """Refresh the header and footer of a frozen frame (PAUSED and its count)."""
    children = frame.children
    children[0].update(header(state, shown_run(state, opts), opts, now))
    children[-1].update(footer(opts))
