"""The main metric's panel: a sparkline of its last values, or a chart of the whole run
(key c) with the lines the view options choose."""

from __future__ import annotations

import math
from dataclasses import replace

from rich.console import Console, ConsoleOptions, RenderResult
from rich.panel import Panel
from rich.text import Text

from trainmon.state import Run, RunState, Series, worker_label
from trainmon.view.chart import LineChart
from trainmon.view.compare import TICKS_PER_S, elapsed_state
from trainmon.view.format import format_value
from trainmon.view.lines import chart_lines, step_window
from trainmon.view.options import ViewOptions
from trainmon.view.shown import main_metric, metric_source, shown_worker
from trainmon.view.sparkline import Sparkline

__all__ = ["main_panel", "panel_title"]


def main_panel(state: RunState, run: Run, opts: ViewOptions) -> Panel:
    """The main metric: a sparkline of the last values, or a chart of the whole run."""
    name = main_metric(run, opts)
    opts = _worker_logging(run, name, opts)
    worker = shown_worker(run, opts)
    series = worker.series.get(name) if worker is not None and name is not None else None
    if name is None or series is None or not series.vals:
        return Panel(Text("no metrics yet", style="tm.dim"), title="Loss", title_align="left")
    values = series.values(opts.history)
    if opts.chart:
        return _chart_panel(state, run, name, series, values[-1], opts)
    whose = worker or run.lead
    who = f" · {worker_label(whose)}" if whose is not None and len(run.workers) > 1 else ""
    return Panel(
        _FillHeight(values, _sparkline_caption(values)),
        title=panel_title(f"{name}{who} · last {len(values)}"),
        title_align="left",
    )


def _worker_logging(run: Run, name: str | None, opts: ViewOptions) -> ViewOptions:
    """``opts`` with a worker that logs ``name``: when the shown worker does not log it,
    the lead's, else a worker's that does (a pool's parent logs the loss, not its
    children)."""
    worker = shown_worker(run, opts)
    if worker is not None and name is not None and name not in worker.series:
        source = metric_source(run, name)
        return replace(opts, worker=None if source is None else source[1].id)
    return opts


def _sparkline_caption(values: list[float]) -> Text:
    """Min, max and last of the values shown, and how many are not finite."""
    finite = [v for v in values if math.isfinite(v)]
    caption = Text(style="tm.dim")
    if finite:
        caption.append(f"min {format_value(min(finite))}  max {format_value(max(finite))}  ")
    caption.append(f"last {format_value(values[-1])}")
    bad = len(values) - len(finite)
    if bad:
        caption.append(f"  {bad} non-finite", style="tm.bad")
    return caption


def _chart_panel(
    state: RunState, run: Run, name: str, series: Series, last: float, opts: ViewOptions
) -> Panel:
    """The main metric as a chart of the whole run, titled with what it shows."""
    caption = Text(f"last {format_value(last)}", style="tm.dim")
    if series.best_step is not None:
        caption.append(f"  lowest {format_value(series.best)} at step {series.best_step:,}")
    if series.nonfinite:
        caption.append(f"  {series.nonfinite:,} non-finite", style="tm.bad")
    twin = elapsed_state(state) if opts.seconds else None
    timed = twin.runs.get(run.name) if twin is not None else None
    if twin is not None and timed is not None:  # the same records, x in tenths of seconds
        lines, what = chart_lines(twin, timed, name, opts)
        span, per_s = "x in seconds since each run's start", TICKS_PER_S
    else:
        lines, what = chart_lines(state, run, name, opts)
        span, per_s = _span(series), 0
    x_range, where = step_window(lines, opts.zoom, opts.window)
    flags = (where, "log y" if opts.log_y else "", "5–95% y" if opts.robust else "", what)
    title = f"{name} · {span}" + "".join(f" · {f}" for f in flags if f)
    chart = LineChart(lines, x_range=x_range, log=opts.log_y, robust=opts.robust, x_per_s=per_s)
    return Panel(_FillHeight(chart, caption), title=panel_title(title), title_align="left")


def _span(series: Series) -> str:
    """What a chart of ``series`` covers, truly: "300 steps" when every step is there,
    else how many points over which steps ("10 points over steps 29–299")."""
    first = series.steps[0]
    older = series.older.in_order()  # (points just held back folded in)
    if older:
        first = min(first, older[0].first_step)
    last, count = series.steps[-1], series.count
    if count == 1:
        return f"1 point at step {last:,}"
    if count == last - first + 1:
        return f"{count:,} steps"
    return f"{count:,} points over steps {first:,}–{last:,}"


class _FillHeight:
    """A sparkline (or a chart) as tall as its panel allows, with a caption line under it."""

    def __init__(self, values: list[float] | LineChart, caption: Text) -> None:
        self.values = values
        self.caption = caption

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        height = max((options.height or 4) - 1, 1)
        if isinstance(self.values, LineChart):
            self.values.height = height
            yield self.values
        else:
            yield Sparkline(self.values, height=height)
        yield self.caption


def panel_title(text: str) -> Text:
    """A panel title from names that came over the wire: plain text (a Rich markup
    string would take a metric named ``x[/]`` for a tag and fail, or ``[red]x`` for a
    style), cut with an ellipsis where the panel is narrower."""
    return Text(text, overflow="ellipsis")
