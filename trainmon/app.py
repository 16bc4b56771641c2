"""The monitor's loop: the only place with a clock, a screen and a keyboard."""

from __future__ import annotations

import contextlib
import gc
import math
import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from rich.console import Console, RenderableType
from rich.layout import Layout
from rich.live import Live
from rich.theme import Theme

from trainmon.escape import escaped
from trainmon.export import dashboard_picture
from trainmon.ingest import RecordSource
from trainmon.keys import Action, quit_on_signals, terminal_keys
from trainmon.state import AlertWatch, Run, RunState, Worker, worker_label
from trainmon.view import (
    ViewOptions,
    footer,
    header,
    main_metric,
    render,
    shown_run,
    shown_worker,
    status_line,
)

__all__ = [
    "AppSettings",
    "DoneWatch",
    "frame_interval",
    "is_done",
    "lost_workers",
    "next_options",
    "next_smoothing",
    "run_dashboard",
    "run_plain",
    "save_screen",
]

_DRAIN_SLICE_S = 0.02
_BUSY_REFRESH_S = 0.25  # frame interval while records are waiting or ingest is heavy
_BUSY_SHARE = 0.5  # ingest is heavy when the loop is busy more than this share of the time
_BUSY_FRAME_SHARE = 0.1  # and then drawing takes at most this share of the time
_NOTICE_S = 6.0
_FULL_COLLECTION_S = 600.0  # see _Collector


@dataclass(frozen=True, slots=True)
class AppSettings:
    """How the loop runs, as opposed to what it shows."""

    refresh_s: float = 0.1
    interactive: bool = True
    exit_when_done: bool = False
    done_grace_s: float = 2.0
    plain_interval_s: float = 5.0
    max_duration_s: float | None = None  # stop after this long whatever happens
    export_dir: str = "."
    finished_notice: str = ""  # shown once the source has nothing more to give
    theme: Theme | None = None  # the dark theme unless given
    bell: bool = False  # ring the terminal bell for each new alert


def is_done(state: RunState, now: float) -> bool:
    """Every worker of every run has ended: said bye (finished), or been silent for
    ``LOST_AFTER_S`` (lost: killed, crashed, or cut off); ``now`` on the clock the
    state was given (the source's)."""
    workers = [w for run in state.runs.values() for w in run.workers.values()]
    return bool(workers) and all(w.status(now, math.inf) in ("finished", "lost") for w in workers)


def lost_workers(state: RunState, now: float) -> list[str]:
    """``run: worker`` for each worker lost (see :func:`is_done`), for a last word."""
    return [
        f"{run.name}: {worker_label(w)}"
        for run in state.runs.values()
        for w in run.workers.values()
        if w.status(now, math.inf) == "lost"
    ]


class DoneWatch:
    """Knows when every worker seen has ended (:func:`is_done`), and for how long that
    has held: a worker heard again within the grace starts it over."""

    def __init__(self) -> None:
        self.since: float | None = None

    def check(self, state: RunState, now: float, grace_s: float) -> bool:
        if not is_done(state, now):
            self.since = None
            return False
        if self.since is None:
            self.since = now
        return now - self.since >= grace_s


class _Deadline:
    """``exit_when_done`` (on the source's clock, as the state is) and
    ``max_duration_s`` (on the wall clock)."""

    def __init__(self, settings: AppSettings) -> None:
        self.settings = settings
        self.done = DoneWatch()
        self.started = time.monotonic()

    def reached(self, state: RunState, now: float) -> bool:
        settings = self.settings
        if settings.exit_when_done and self.done.check(state, now, settings.done_grace_s):
            return True
        return (
            settings.max_duration_s is not None
            and time.monotonic() - self.started >= settings.max_duration_s
        )


class _Collector:
    """Keeps Python's cyclic garbage collector off the state.

    The state holds millions of references (every point of every window, every
    bucket). A full pass of the collector over them took 0.3 to 0.5 s, and objects that
    live through a frame, promoted to the oldest generation, set one off every few
    seconds: the screen and the intake froze each time (64 workers x 20 metrics). Neither
    the state nor a frame makes reference cycles (tested; see ``view.Frame``), so after
    each frame everything alive is frozen out of the collector's passes (``gc.freeze``,
    which costs nothing); what dies later is freed by reference counting as ever. Every
    ``_FULL_COLLECTION_S`` all is unfrozen and collected in one pass, so a cycle made
    elsewhere (a library, an exception) is still freed in the end.
    """

    def __init__(self) -> None:
        self.next_full = time.monotonic() + _FULL_COLLECTION_S

    def frame(self) -> None:
        if time.monotonic() >= self.next_full:
            gc.unfreeze()
            gc.collect()
            self.next_full = time.monotonic() + _FULL_COLLECTION_S
        gc.freeze()


@contextlib.contextmanager
def _collector() -> Iterator[_Collector]:
    try:
        yield _Collector()
    finally:
        gc.unfreeze()  # the caller's process as it was


def run_dashboard(
    source: RecordSource,
    state: RunState,
    opts: ViewOptions,
    settings: AppSettings,
    console: Console,
) -> ViewOptions:
    """Show the live dashboard until quit; returns the last view options."""
    deadline = _Deadline(settings)
    frozen: Layout | None = None
    paused_at = 0
    notice_until = 0.0
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
        _collector() as collector,
    ):
        next_frame = 0.0
        alerts = AlertWatch()
        busy = _BusyShare(source)
        while not stop:
            if stop.suspend:  # Ctrl-Z: give the terminal back, stop; on fg, take it again
                stop.suspend = False
                live.stop()
                keys.release()
                os.kill(os.getpid(), signal.SIGSTOP)
                keys.grab()
                live.start()
                next_frame = 0.0
            source.drain(state, budget_s=_DRAIN_SLICE_S)
            now = source.clock()
            for action in keys.read():
                if action is Action.QUIT:
                    return opts
                if action is Action.TOGGLE_PAUSE:
                    opts = replace(opts, paused=not opts.paused, paused_records=0)
                    source.set_paused(opts.paused)
                    frozen, paused_at = None, state.records
                elif action is Action.EXPORT:
                    frame = frozen if frozen is not None else render(state, opts, now)
                    opts = replace(
                        opts,
                        notice=_export_notice(frame, state, opts, console, settings),
                    )
                    notice_until = time.monotonic() + _NOTICE_S
                else:
                    said = opts.notice
                    opts = next_options(opts, action, state)
                    frozen = None
                    if opts.notice != said:  # the key explains why it did nothing
                        notice_until = time.monotonic() + _NOTICE_S
                    if opts.paused:  # redrawn as asked, with what has arrived; still paused
                        paused_at = state.records
                        opts = replace(opts, notice="paused view redrawn with the latest records")
                        notice_until = time.monotonic() + _NOTICE_S
                next_frame = 0.0
            if deadline.reached(state, now):
                break
            if opts.notice and notice_until and time.monotonic() > notice_until:
                opts, notice_until = replace(opts, notice=""), 0.0
            if settings.finished_notice and source.finished and not opts.notice:
                opts = replace(opts, notice=settings.finished_notice)
            if time.monotonic() >= next_frame:
                drawing = time.monotonic()
                if not opts.paused:
                    new_alerts = alerts.check(state, now, opts.stall_after_s)
                    if new_alerts and settings.bell:
                        console.file.write("\a" * min(len(new_alerts), 3))
                        console.file.flush()
                if opts.paused:
                    opts = replace(opts, paused_records=state.records - paused_at)
                    frozen = frozen or _frame(state, opts, now)
                    _repaint_bars(frozen, state, opts, now)
                    live.update(frozen, refresh=True)
                else:
                    live.update(render(state, opts, now), refresh=True)
                busy.frame()
                collector.frame()
                drawn = time.monotonic()
                interval = frame_interval(
                    settings.refresh_s, source.backlog, busy.share, drawn - drawing
                )
                next_frame = drawn + interval
    return opts


def frame_interval(
    refresh_s: float, backlog: bool, busy_share: float, frame_s: float = 0.0
) -> float:
    """Seconds to the next frame. Under a flood (records left waiting, or the loop busy
    most of the time) taking every record in comes before drawing often: frames come
    at most every 0.25 s, and drawing takes at most a tenth of the time (a frame that
    took 60 ms on a machine whose cores are taken: 0.6 s), up to a second apart. A
    key always redraws at once."""
    if backlog or busy_share > _BUSY_SHARE:
        return max(refresh_s, min(max(_BUSY_REFRESH_S, frame_s / _BUSY_FRAME_SHARE), 1.0))
    return refresh_s


class _BusyShare:
    """The share of the wall time between frames the loop was not waiting for records.

    Not the CPU time: on a machine whose cores are taken (publishers flat out beside
    the monitor) the loop may get a third of a core and still never wait for a record.
    """

    def __init__(self, source: RecordSource) -> None:
        self.source = source
        self.share = 0.0
        self._idle, self._wall = source.idle_s, time.monotonic()

    def frame(self) -> None:
        idle, wall = self.source.idle_s, time.monotonic()
        if wall > self._wall:
            self.share = 1.0 - (idle - self._idle) / (wall - self._wall)
        self._idle, self._wall = idle, wall


SMOOTHING_STEPS = (0.0, 0.6, 0.8, 0.9, 0.95, 0.99)


def next_options(opts: ViewOptions, action: Action, state: RunState) -> ViewOptions:
    """The view after a key's ``action`` (all but quit, pause and export)."""
    run = shown_run(state, opts)
    if action is Action.HELP:
        return replace(opts, help=not opts.help)
    if action is Action.CLOSE:
        return replace(opts, help=False, runs_list=False)
    if action is Action.TOGGLE_CHART:
        if opts.grid:
            return replace(opts, notice="the grid always shows charts; g leaves it")
        return replace(opts, chart=not opts.chart, help=False)
    if action is Action.CYCLE_SMOOTHING:
        weight = next_smoothing(opts.smoothing)
        what = f"smoothing {weight:.2f}" if weight else "smoothing off"
        if not opts.chart or opts.grid:
            return replace(opts, smoothing=weight, notice=f"{what}: drawn on the chart (c)")
        if opts.workers_mode != "one" and run is not None and len(run.workers) > 1:
            return replace(
                opts, smoothing=weight, notice=f"{what}: drawn for one worker's curve (b)"
            )
        return replace(opts, smoothing=weight)
    if action is Action.GRID:
        return replace(opts, grid=not opts.grid, help=False, runs_list=False)
    if action is Action.NEXT_PAGE:
        return replace(opts, grid=True, page=opts.page + 1)
    if action is Action.PREV_PAGE:
        return replace(opts, grid=True, page=max(opts.page - 1, 0))
    if action in _MOVES:
        return _move(opts, action, state)
    if action is Action.TOGGLE_LOG:
        return replace(opts, chart=True, log_y=not opts.log_y)
    if action is Action.TOGGLE_ROBUST:
        return replace(opts, chart=True, robust=not opts.robust)
    if action is Action.WORKERS_MODE:
        modes = ("one", "band", "lines")
        return replace(
            opts, chart=True, workers_mode=modes[(modes.index(opts.workers_mode) + 1) % 3]
        )
    if run is None:
        return opts
    if action in (Action.NEXT_METRIC, Action.PREV_METRIC) and run.metric_names:
        names = run.metric_names
        current = main_metric(run, opts)
        index = names.index(current) if current in names else 0
        step = 1 if action is Action.NEXT_METRIC else -1
        return replace(opts, metric=names[(index + step) % len(names)], page=0)
    if action in (Action.NEXT_RUN, Action.OVERLAY) and len(state.runs) < 2:
        return replace(opts, notice="only one run so far: nothing to switch to or overlay")
    if action is Action.NEXT_WORKER and len(run.workers) < 2:
        return replace(opts, notice="only one worker in this run")
    if action is Action.NEXT_WORKER:
        workers = [w.id for w in sorted(run.workers.values(), key=Worker.sort_key)]
        if opts.worker not in workers:
            lead = run.lead
            index = workers.index(lead.id) if lead is not None else -1
        else:
            index = workers.index(opts.worker)
        return replace(opts, worker=workers[(index + 1) % len(workers)], workers_mode="one")
    if action is Action.NEXT_RUN:
        names = [r.name for r in sorted(state.runs.values(), key=lambda r: r.created)]
        index = names.index(run.name)
        chosen = names[(index + 1) % len(names)]
        state.choose(chosen)  # shown from now on (see RunState.current)
        # another run has other steps: follow its live tail rather than keep a window
        return replace(opts, run=chosen, worker=None, window=None)
    if action is Action.RUNS_LIST:
        return replace(opts, runs_list=not opts.runs_list, help=False)
    if action is Action.OVERLAY:
        others = [
            r.name
            for r in sorted(state.runs.values(), key=lambda r: r.created)
            if r.name != run.name
        ]
        if not others:
            return replace(opts, overlay=None)
        if opts.overlay not in others:
            return replace(opts, chart=True, overlay=others[-1])
        index = others.index(opts.overlay)
        following = others[index - 1] if index > 0 else None  # newest first, then off
        return replace(opts, chart=True, overlay=following)
    return opts


_MOVES = (Action.ZOOM_IN, Action.ZOOM_OUT, Action.PAN_LEFT, Action.PAN_RIGHT, Action.FOLLOW)


def _move(opts: ViewOptions, action: Action, state: RunState) -> ViewOptions:
    """Zoom and pan the steps shown. Panned, the window is fixed in steps, so what was
    panned to stays put while the run goes on; panning back near the live end, or f,
    follows it again."""
    opts = replace(opts, chart=True)
    run = shown_run(state, opts)
    extent = _extent(run, opts) if run is not None else None
    if action is Action.FOLLOW or extent is None:
        zoom = opts.zoom + (action is Action.ZOOM_IN) - (action is Action.ZOOM_OUT)
        return replace(opts, window=None, zoom=min(max(zoom, 0), 16))
    low, high = extent
    if opts.window is not None:
        left, right = opts.window
    else:
        span = (high - low) / 2**opts.zoom
        left, right = max(high - span, low), high
    span, zoom = right - left, opts.zoom
    if action is Action.ZOOM_IN:
        zoom = min(zoom + 1, 16)
        if opts.window is None:
            return replace(opts, zoom=zoom)
        left, right = left + span / 4, right - span / 4
    elif action is Action.ZOOM_OUT:
        zoom = max(zoom - 1, 0)
        if opts.window is None or zoom == 0:
            return replace(opts, zoom=zoom, window=None)
        left, right = left - span / 2, right + span / 2
    elif action is Action.PAN_LEFT:
        if zoom == 0:
            return opts  # the whole run is shown: nothing to pan to
        left, right = left - span / 2, right - span / 2
    elif action is Action.PAN_RIGHT:
        if opts.window is None:
            return opts
        left, right = left + span / 2, right + span / 2
    if left < low:
        left, right = low, low + (right - left)
    if right >= high - (right - left) / 4:
        return replace(opts, zoom=zoom, window=None)  # at the live end: follow it
    return replace(opts, zoom=zoom, window=(left, right))


def _extent(run: Run, opts: ViewOptions) -> tuple[float, float] | None:
    """The first and last step of the main metric of the worker shown."""
    name = main_metric(run, opts)
    worker = shown_worker(run, opts)
    series = worker.series.get(name) if worker is not None and name is not None else None
    if series is None or not series.steps:
        return None
    older = series.older.columns().steps
    return float(older[0] if older else series.steps[0]), float(series.steps[-1])


def next_smoothing(weight: float) -> float:
    """The next smoothing weight in the cycle off, 0.6, 0.8, 0.9, 0.95, 0.99."""
    later = [w for w in SMOOTHING_STEPS if w > weight + 1e-9]
    return later[0] if later else SMOOTHING_STEPS[0]


def _frame(state: RunState, opts: ViewOptions, now: float) -> Layout:
    frame = render(state, opts, now)
    assert isinstance(frame, Layout)
    return frame


def _repaint_bars(frame: Layout, state: RunState, opts: ViewOptions, now: float) -> None:
    """Refresh the header and footer of a frozen frame (PAUSED and its count)."""
    children = frame.children
    children[0].update(header(state, shown_run(state, opts), opts, now))
    children[-1].update(footer(opts))


def _export_notice(
    frame: RenderableType,
    state: RunState,
    opts: ViewOptions,
    console: Console,
    settings: AppSettings,
) -> str:
    try:
        width, height = console.size
        path = save_screen(frame, state, opts, width, height, settings.export_dir, settings.theme)
    except OSError as exc:
        return f"could not save the screen: {exc.strerror or exc}"
    return f"screen saved to {escaped(path)}"


def save_screen(
    frame: RenderableType,
    state: RunState,
    opts: ViewOptions,
    width: int,
    height: int,
    directory: str = ".",
    theme: Theme | None = None,
) -> str:
    """Write ``frame`` as an SVG picture in ``directory``; the file's path."""
    run = shown_run(state, opts)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", run.name if run else "waiting")[:60]
    path = os.path.join(directory, f"trainmon-{name}-{time.strftime('%Y%m%d-%H%M%S')}.svg")
    svg = dashboard_picture(
        frame,
        "svg",
        width=width,
        height=height,
        title=f"trainmon · {run.name if run else 'waiting'}",
        theme=theme,
    )
    with open(path, "w", encoding="utf-8") as file:
        file.write(svg)
    return path


def run_plain(
    source: RecordSource,
    state: RunState,
    opts: ViewOptions,
    settings: AppSettings,
    emit: Callable[[str], None],
) -> None:
    """No terminal to draw on: a status line every few seconds, and a line for each
    alert as it is raised, until stopped or done."""
    deadline = _Deadline(settings)
    next_line = time.monotonic()
    alerts = AlertWatch()
    with quit_on_signals() as stop, _collector() as collector:
        while not stop:
            source.drain(state, budget_s=_DRAIN_SLICE_S * 5)
            collector.frame()
            if deadline.reached(state, source.clock()):
                break
            for alert in alerts.check(state, source.clock(), opts.stall_after_s):
                emit(f"trainmon: alert: run {alert.run}: {alert.text}")
            if time.monotonic() >= next_line:
                emit(status_line(state, opts, source.clock()))
                next_line = time.monotonic() + settings.plain_interval_s
