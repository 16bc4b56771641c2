"""One frame of the dashboard: the panels laid out for the state and the view options."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.layout import Layout

from trainmon.state import RunState
from trainmon.view.grid import ChartGrid
from trainmon.view.header import alert_line, header
from trainmon.view.help import footer, help_panel
from trainmon.view.main_panel import main_panel
from trainmon.view.options import ViewOptions
from trainmon.view.progress import epoch_bar
from trainmon.view.runs import runs_panel
from trainmon.view.shown import shown_run
from trainmon.view.stats import stats_panel
from trainmon.view.waiting import waiting_panel
from trainmon.view.workers import workers_panel

__all__ = ["Frame", "render"]

_SMALL_WORKERS_PANEL = 12  # rows up to which the workers panel is as tall as its rows


class Frame(Layout):
    """A Rich ``Layout`` that leaves no reference cycle behind.

    Rich's own points back at itself twice: a layout made without a renderable holds a
    placeholder that holds the layout, and the root keeps its last render map, keyed by
    the layouts, holding every line drawn. So each frame became cyclic garbage that only
    the collector frees; with a large state the collector's full passes then took 0.3 to
    0.5 s every few seconds (measured in a loop of ingest and frames, 64 workers x 20
    metrics), freezing the screen and the intake. Without the cycles a frame is freed
    the moment the next one replaces it.
    """

    def __init__(self, renderable: RenderableType | None = None, **kwargs: Any) -> None:
        # (Rich puts the placeholder in for anything false, an empty Text too)
        super().__init__(renderable or Group(renderable or ""), **kwargs)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield from super().__rich_console__(console, options)
        self._render_map = {}  # keyed by this layout: kept, it closes a cycle


def render(state: RunState, opts: ViewOptions, now: float) -> RenderableType:
    """The whole dashboard for one frame."""
    run = shown_run(state, opts)
    layout = Frame(name="root")
    if run is None:
        layout.split_column(
            Frame(header(state, None, opts, now), size=1),
            Frame(help_panel() if opts.help else waiting_panel(state, opts)),
            Frame(footer(opts), size=1),
        )
        return layout
    parts = [Frame(header(state, run, opts, now), size=1)]
    alerts = [a for a in state.alerts if a.run == run.name]
    if alerts:
        parts.append(Frame(alert_line(alerts, now, not (opts.ended or run.ended)), size=1))
    parts.append(Frame(epoch_bar(run, now, opts.stall_after_s), size=3))
    if opts.help:
        parts.append(Frame(help_panel()))
    elif opts.runs_list:
        parts.append(Frame(runs_panel(state, run, opts, now)))
    elif opts.grid:
        parts.append(Frame(main_panel(state, run, replace(opts, chart=True)), ratio=2))
        parts.append(Frame(ChartGrid(run, opts), name="grid", ratio=3, minimum_size=7))
    else:
        middle = Frame(name="middle", ratio=3, minimum_size=8)
        middle.split_row(
            Frame(main_panel(state, run, opts), ratio=3),
            Frame(stats_panel(state, run, opts, now), ratio=2, minimum_size=30),
        )
        parts.append(middle)
        rows = len(run.workers) + 3 + (1 if run.untracked_workers else 0)  # borders, header
        if rows <= _SMALL_WORKERS_PANEL:  # a few workers: no empty rows under them
            parts.append(Frame(workers_panel(run, opts, now), size=max(rows, 5)))
        else:
            parts.append(Frame(workers_panel(run, opts, now), ratio=2, minimum_size=5))
    parts.append(Frame(footer(opts), size=1))
    layout.split_column(*parts)
    return layout
