"""What each key does to the view: a table from ``Action`` to a small handler that takes
the view options (and the state, to see what there is to move to) and gives the next.

Quit, pause and export are not here: they act on the loop, not on what it shows (see
:mod:`trainmon.app.live`). The handlers change nothing in the state but the run it
shows (:meth:`RunState.choose`, by the r key; ``--run`` is kept by
:meth:`RunState.settle`), so the run shown stays shown as others arrive.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Final

from trainmon.keys import Action
from trainmon.state import Run, RunState, Worker
from trainmon.view import ViewOptions, main_metric, shown_run, shown_worker
from trainmon.view.compare import elapsed_state

__all__ = ["HANDLERS", "SMOOTHING_STEPS", "next_options", "next_smoothing"]

Handler = Callable[[ViewOptions, RunState], ViewOptions]
RunHandler = Callable[[ViewOptions, RunState, Run], ViewOptions]

SMOOTHING_STEPS = (0.0, 0.6, 0.8, 0.9, 0.95, 0.99)
_WORKERS_MODES = ("one", "band", "lines")
_MAX_ZOOM = 16


def next_options(opts: ViewOptions, action: Action, state: RunState) -> ViewOptions:
    """The view after a key's ``action`` (all but quit, pause and export)."""
    handler = HANDLERS.get(action)
    return opts if handler is None else handler(opts, state)


def next_smoothing(weight: float) -> float:
    """The next smoothing weight in the cycle off, 0.6, 0.8, 0.9, 0.95, 0.99."""
    later = [w for w in SMOOTHING_STEPS if w > weight + 1e-9]
    return later[0] if later else SMOOTHING_STEPS[0]


# -- what is shown: help, chart, grid, scales ----------------------------------------------


def _help(opts: ViewOptions, state: RunState) -> ViewOptions:
    return replace(opts, help=not opts.help)


def _close(opts: ViewOptions, state: RunState) -> ViewOptions:
    return replace(opts, help=False, runs_list=False)


def _chart(opts: ViewOptions, state: RunState) -> ViewOptions:
    if opts.grid:
        return replace(opts, notice="the grid always shows charts; g leaves it")
    return replace(opts, chart=not opts.chart, help=False)


def _smoothing(opts: ViewOptions, state: RunState) -> ViewOptions:
    """The next weight; a notice when the screen shows no curve it smooths."""
    weight = next_smoothing(opts.smoothing)
    what = f"smoothing {weight:.2f}" if weight else "smoothing off"
    run = shown_run(state, opts)
    if not opts.chart or opts.grid:
        return replace(opts, smoothing=weight, notice=f"{what}: drawn on the chart (c)")
    if opts.workers_mode != "one" and run is not None and len(run.workers) > 1:
        return replace(opts, smoothing=weight, notice=f"{what}: drawn for one worker's curve (b)")
    return replace(opts, smoothing=weight)


def _grid(opts: ViewOptions, state: RunState) -> ViewOptions:
    return replace(opts, grid=not opts.grid, help=False, runs_list=False)


def _next_page(opts: ViewOptions, state: RunState) -> ViewOptions:
    return replace(opts, grid=True, page=opts.page + 1)


def _prev_page(opts: ViewOptions, state: RunState) -> ViewOptions:
    return replace(opts, grid=True, page=max(opts.page - 1, 0))


def _log_scale(opts: ViewOptions, state: RunState) -> ViewOptions:
    return replace(opts, chart=True, log_y=not opts.log_y)


def _robust(opts: ViewOptions, state: RunState) -> ViewOptions:
    return replace(opts, chart=True, robust=not opts.robust)


def _workers_mode(opts: ViewOptions, state: RunState) -> ViewOptions:
    following = (_WORKERS_MODES.index(opts.workers_mode) + 1) % len(_WORKERS_MODES)
    return replace(opts, chart=True, workers_mode=_WORKERS_MODES[following])


# -- the steps shown: zoom and pan ---------------------------------------------------------


def _moving(action: Action) -> Handler:
    """The handler of a zoom or pan key."""
    return lambda opts, state: _move(opts, action, state)


def _move(opts: ViewOptions, action: Action, state: RunState) -> ViewOptions:
    """Zoom and pan the steps shown. Panned, the window is fixed in steps, so what was
    panned to stays put while the run goes on; panning back near the live end, or f,
    follows it again."""
    opts = replace(opts, chart=True)
    run = shown_run(state, opts)
    twin = elapsed_state(state) if opts.seconds and run is not None else None
    if twin is not None and run is not None:  # the chart's x is seconds: so is the window
        run = twin.runs.get(run.name, run)
    extent = _extent(run, opts) if run is not None else None
    if action is Action.FOLLOW or extent is None:
        zoom = opts.zoom + (action is Action.ZOOM_IN) - (action is Action.ZOOM_OUT)
        return replace(opts, window=None, zoom=min(max(zoom, 0), _MAX_ZOOM))
    low, high = extent
    if opts.window is not None:
        left, right = opts.window
    else:
        span = (high - low) / 2**opts.zoom
        left, right = max(high - span, low), high
    span, zoom = right - left, opts.zoom
    if action is Action.ZOOM_IN:
        zoom = min(zoom + 1, _MAX_ZOOM)
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


# -- what of the run is shown: metric, worker, run, overlay --------------------------------


def _of_run(handler: RunHandler) -> Handler:
    """A handler for a key that moves within the run shown: nothing while there is none."""

    def handle(opts: ViewOptions, state: RunState) -> ViewOptions:
        run = shown_run(state, opts)
        return opts if run is None else handler(opts, state, run)

    return handle


def _metric(step: int) -> RunHandler:
    """The handler of the next (``step`` 1) or previous (-1) main metric key."""

    def handle(opts: ViewOptions, state: RunState, run: Run) -> ViewOptions:
        names = run.metric_names
        if not names:
            return opts
        current = main_metric(run, opts)
        index = names.index(current) if current in names else 0
        return replace(opts, metric=names[(index + step) % len(names)], page=0)

    return handle


def _next_worker(opts: ViewOptions, state: RunState, run: Run) -> ViewOptions:
    if len(run.workers) < 2:
        return replace(opts, notice="only one worker in this run")
    workers = [w.id for w in sorted(run.workers.values(), key=Worker.sort_key)]
    if opts.worker not in workers:
        lead = run.lead
        index = workers.index(lead.id) if lead is not None else -1
    else:
        index = workers.index(opts.worker)
    return replace(opts, worker=workers[(index + 1) % len(workers)], workers_mode="one")


_ONE_RUN = "only one run so far: nothing to switch to or overlay"


def _run_names(state: RunState) -> list[str]:
    """The runs' names, oldest first."""
    return [r.name for r in sorted(state.runs.values(), key=lambda r: r.created)]


def _next_run(opts: ViewOptions, state: RunState, run: Run) -> ViewOptions:
    if len(state.runs) < 2:
        return replace(opts, notice=_ONE_RUN)
    names = _run_names(state)
    chosen = names[(names.index(run.name) + 1) % len(names)]
    state.choose(chosen)  # shown from now on (see RunState.current)
    # another run has other steps: follow its live tail rather than keep a window
    return replace(opts, run=chosen, worker=None, window=None)


def _runs_list(opts: ViewOptions, state: RunState, run: Run) -> ViewOptions:
    return replace(opts, runs_list=not opts.runs_list, help=False)


def _overlay(opts: ViewOptions, state: RunState, run: Run) -> ViewOptions:
    """The newest other run overlaid, then each older one, then none."""
    if len(state.runs) < 2:
        return replace(opts, notice=_ONE_RUN)
    others = [name for name in _run_names(state) if name != run.name]
    if not others:
        return replace(opts, overlay=None)
    if opts.overlay not in others:
        return replace(opts, chart=True, overlay=others[-1])
    index = others.index(opts.overlay)
    following = others[index - 1] if index > 0 else None  # newest first, then off
    return replace(opts, chart=True, overlay=following)


def _time_axis(opts: ViewOptions, state: RunState) -> ViewOptions:
    """Steps or seconds on the chart's x axis, where the state has a seconds twin (kept
    by trainmon compare); the window panned to was in the other unit: follow again."""
    if elapsed_state(state) is None:
        return replace(opts, notice="seconds on the x axis: in trainmon compare")
    return replace(opts, chart=True, seconds=not opts.seconds, window=None)


HANDLERS: Final[dict[Action, Handler]] = {
    Action.HELP: _help,
    Action.CLOSE: _close,
    Action.TOGGLE_CHART: _chart,
    Action.CYCLE_SMOOTHING: _smoothing,
    Action.GRID: _grid,
    Action.NEXT_PAGE: _next_page,
    Action.PREV_PAGE: _prev_page,
    Action.ZOOM_IN: _moving(Action.ZOOM_IN),
    Action.ZOOM_OUT: _moving(Action.ZOOM_OUT),
    Action.PAN_LEFT: _moving(Action.PAN_LEFT),
    Action.PAN_RIGHT: _moving(Action.PAN_RIGHT),
    Action.FOLLOW: _moving(Action.FOLLOW),
    Action.TOGGLE_LOG: _log_scale,
    Action.TOGGLE_ROBUST: _robust,
    Action.WORKERS_MODE: _workers_mode,
    Action.NEXT_METRIC: _of_run(_metric(1)),
    Action.PREV_METRIC: _of_run(_metric(-1)),
    Action.NEXT_WORKER: _of_run(_next_worker),
    Action.NEXT_RUN: _of_run(_next_run),
    Action.RUNS_LIST: _of_run(_runs_list),
    Action.OVERLAY: _of_run(_overlay),
    Action.TIME_AXIS: _time_axis,
}
