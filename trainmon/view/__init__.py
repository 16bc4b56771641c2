"""The dashboard as pure functions of ``RunState`` and ``ViewOptions``.

No widget keeps data of its own: every frame is rebuilt from state, so what a person
sees can be tested by rendering to a ``Console`` writing into a ``StringIO``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from typing import Any

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.layout import Layout
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from trainmon.keys import FOOTER, HELP, PAUSED_FOOTER
from trainmon.names import (
    ACCURACY_NAMES,
    GRAD_NAMES,
    HELD_OUT_LOSS_NAMES,
    HELD_OUT_NAMES,
    LOSS_NAMES,
    LR_NAMES,
    TRAIN_ACCURACY_NAMES,
    is_accuracy,
    is_loss,
)
from trainmon.state import (
    Alert,
    Run,
    RunState,
    Series,
    Worker,
    worker_label,
)
from trainmon.view.chart import Line, LineChart, _fold_line, ema_extend
from trainmon.view.sparkline import Sparkline
from trainmon_client.endpoints import is_private_default

__all__ = [
    "ViewOptions",
    "format_duration",
    "format_value",
    "render",
    "status_line",
    "summary",
]

STATUS_STYLE = {
    "running": "tm.running",
    "stalled": "tm.stalled",
    "lost": "tm.lost",
    "finished": "tm.finished",
    "waiting": "tm.waiting",
}
_SUMMARY_METRICS = 20
_SUMMARY_ALERTS = 5
_SUMMARY_CONFIG_CHARS = 200
_MAX_WORKER_LINES = 8
_SMALL_WORKERS_PANEL = 12
_MIN_BAR = 10  # columns the progress bar keeps before figures beside it give way


@dataclass(frozen=True, slots=True)
class ViewOptions:
    """How to show the state; changed by keys, never by records."""

    history: int = 100  # values in the loss sparkline
    run: str | None = None  # show this run, else the most recently active
    paused: bool = False
    paused_records: int = 0  # records received since the view was paused
    stall_after_s: float = 60.0
    address: str = ""  # where the monitor listens or connects, for the waiting screen
    connecting: bool = False  # it connects (--connect): training listens at the address
    warnings: tuple[str, ...] = ()  # said at start (listening unencrypted beyond this host)
    interactive: bool = True
    notice: str = ""  # a passing message in the footer, e.g. where a screenshot went
    chart: bool = False  # the main metric as a line chart of the whole run (key c)
    smoothing: float = 0.6  # EMA weight of the chart's smoothed line (key s cycles)
    help: bool = False  # the keys overlay (key ?)
    grid: bool = False  # every metric's chart, a page at a time (key g)
    page: int = 0  # the grid's page (keys ] and [)
    metric: str | None = None  # the main metric; None: loss, else the first logged
    zoom: int = 0  # each level halves the steps shown (keys + and -)
    window: tuple[float, float] | None = None  # steps panned to; None follows (arrows, f)
    log_y: bool = False  # logarithmic y axis (key y)
    robust: bool = False  # y range from the 5th-95th percentile (key i)
    worker: str | None = None  # the worker whose curves are shown; None: the lead (key w)
    workers_mode: str = "one"  # one, band (min/mean/max over workers) or lines (key b)
    overlay: str | None = None  # a run whose main metric is drawn over this one's (key o)
    runs_list: bool = False  # the list of runs (key R)


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
        parts.append(Frame(alert_line(alerts, now), size=1))
    parts.append(Frame(epoch_bar(run, now, opts.stall_after_s), size=3))
    if opts.help:
        parts.append(Frame(help_panel()))
    elif opts.runs_list:
        parts.append(Frame(runs_panel(state, run, opts, now)))
    elif opts.grid:
        parts.append(Frame(main_panel(state, run, replace(opts, chart=True)), ratio=2))
        parts.append(Frame(_ChartGrid(run, opts), name="grid", ratio=3, minimum_size=7))
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


def alert_line(alerts: list[Alert], now: float) -> Text:
    """The newest alert, how long ago, and how many there are."""
    latest = alerts[-1]
    text = Text()
    text.append(f" ⚠ {len(alerts)} alert{'s' if len(alerts) != 1 else ''} ", style="tm.alert")
    text.append(f" {latest.text}", style="tm.bad")
    text.append(f"  ({format_duration(max(now - latest.time, 0.0))} ago)", style="tm.dim")
    if len(alerts) > 1:
        text.append(f"  · before: {alerts[-2].text}", style="tm.dim")
    text.truncate(1000, overflow="ellipsis")
    return text


def header(state: RunState, run: Run | None, opts: ViewOptions, now: float) -> Text:
    """Title, run, status, elapsed time and the number of workers, on one line."""
    text = Text()
    text.append(" trainmon ", style="tm.title")
    if run is None:
        text.append("  waiting for records", style="tm.dim")
        return text
    status = run.status(now, opts.stall_after_s)
    text.append(f"  run {run.name}", style="tm.heading")
    text.append("  ● ", style=STATUS_STYLE[status])
    text.append(status, style=STATUS_STYLE[status])
    if run.started is not None:
        end = now
        if run.finished:
            end = max((w.last_seen for w in run.workers.values()), default=now)
        text.append(f"  elapsed {format_duration(max(end - _local_start(run, now), 0.0))}")
    count = len(run.workers)
    text.append(f"  {count} worker{'s' if count != 1 else ''}")
    world = max((w.world or 0 for w in run.workers.values()), default=0)
    ranks = {w.rank for w in run.workers.values() if w.rank is not None}
    if len(ranks) < world:  # ranks the launcher started that never spoke
        text.append(f" (ranks seen {len(ranks)} of {world})", style="tm.warn")
    others = len(state.runs) - 1
    if others > 0:  # kept on this one (see RunState.current): say the others are there
        text.append(f"  +{others} other run{'s' if others > 1 else ''} (r)", style="tm.dim")
    if opts.paused:
        text.append("  PAUSED", style="tm.paused")
    return text


def _local_start(run: Run, now: float) -> float:
    """When the run started, on the monitor's clock."""
    first_seen = min(w.first_seen for w in run.workers.values())
    return first_seen if run.started is None else min(run.started, first_seen, now)


def _ended(run: Run, fraction: float | None) -> str:
    """How a finished run ended: done, or ended short of its total (stopped early)."""
    if not run.finished:
        return ""
    return "done" if fraction is None or fraction >= 1.0 else "ended early"


def epoch_bar(run: Run, now: float | None = None, stall_after_s: float = 60.0) -> Panel:
    """Epoch gauge with percent, ETA and steps per second (not while the lead is idle).

    With only the total epochs, progress comes from the steps per epoch seen (see
    ``Run.progress``): in the first epoch there is no bar, only the epoch and the step,
    rather than a 0% that is not true."""
    lead = run.lead
    total = run.epochs_total
    epoch = run.epoch_label()
    label = f"Epoch {epoch or '–'}"
    fraction = run.progress()
    bar: RenderableType
    if fraction is None:
        if run.past_total():
            said = "past the total epochs: do its epochs count from 1?"
        elif total and not run.total_steps:
            known = lead is not None and lead.epoch is not None
            said = "progress known once an epoch ends" if known else "no epoch logged yet"
        else:
            said = "progress unknown: pass total_epochs or total_steps"
        bar = Text(said, style="tm.dim")
        percent = ""
    else:
        bar = ProgressBar(
            total=1.0,
            completed=fraction,
            style="tm.barback",
            complete_style="tm.bar",
            finished_style="tm.bar",
        )
        percent = f"{math.floor(fraction * 100):3d}%"  # 100% only when done
    eta = run.eta_s()
    rate = lead.steps_per_s if lead is not None else None
    if lead is not None and now is not None and lead.status(now, stall_after_s) != "running":
        eta = rate = None  # a rate from before a worker went quiet would mislead
    step = "" if lead is None or lead.step is None else f"step {lead.step:,}"
    if run.total_steps and step:
        # Done: the run's steps, not its last step number ("step 599/600" when counted
        # from 0 reads as one short).
        done = run.finished and fraction == 1.0
        step = f"{run.total_steps:,} steps" if done else f"{step}/{run.total_steps:,}"
    going = rate is not None and not run.finished
    rates = run.throughput(now, stall_after_s) if now is not None and going else {}
    parts = [  # (text, rank): the lowest ranks are left out first when space is short
        (percent, 9),
        (f"ETA {format_duration(eta)}" if eta is not None else _ended(run, fraction), 4),
        (f"{rate:,.1f} steps/s" if going else "", 3),
        *(
            (f"{format_rate(value)} {unit}/s", 2 if unit == "samples" else 1)
            for unit, value in rates.items()
            if unit != "steps"
        ),
        (step, 8),
    ]
    grid = _ProgressLine(Text(label, style="tm.heading"), bar, [p for p in parts if p[0]])
    return Panel(grid, title="Progress", title_align="left", height=3)


class _ProgressLine:
    """The epoch label, the bar, and as many of the figures beside it as leave the bar
    room (at 80 columns samples/s and tokens/s give way before the step count)."""

    def __init__(self, label: Text, bar: RenderableType, parts: list[tuple[str, int]]) -> None:
        self.label, self.bar, self.parts = label, bar, parts

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        parts = list(self.parts)
        room = options.max_width - self.label.cell_len - 4 - _MIN_BAR  # (the gaps)
        while parts and len("  ".join(text for text, _ in parts)) > room:
            parts.remove(min(parts, key=lambda part: part[1]))
        grid = Table.grid(padding=(0, 1), expand=True)
        grid.add_column(no_wrap=True)
        grid.add_column(ratio=1)
        grid.add_column(no_wrap=True, justify="right")
        grid.add_row(self.label, self.bar, "  ".join(text for text, _ in parts))
        yield grid


def shown_run(state: RunState, opts: ViewOptions) -> Run | None:
    """The run on screen: the one chosen (``--run`` or the r key) when it is chosen,
    then as ``RunState.current`` keeps it (the run being looked at stays unless it
    ends while another is live; a chosen run can be forgotten past the run limit)."""
    if opts.run is not None and opts.run != state.chosen and opts.run in state.runs:
        state.choose(opts.run)
    return state.current()


def main_metric(run: Run, opts: ViewOptions) -> str | None:
    """The metric shown large: the chosen one, else the training loss, else a held-out
    loss (a run may log only ``val_loss``), else the first logged."""
    if opts.metric is not None and opts.metric in run.metric_names:
        return opts.metric
    return (
        run.find_metric(LOSS_NAMES)
        or run.find_metric(HELD_OUT_LOSS_NAMES)
        or (run.metric_names[0] if run.metric_names else None)
    )


def shown_worker(run: Run, opts: ViewOptions) -> Worker | None:
    """The worker whose curves are drawn: the chosen one, else the lead."""
    if opts.worker is not None and opts.worker in run.workers:
        return run.workers[opts.worker]
    return run.lead


def series_line(series: Series, style: str = "tm.line", band: bool = True, label: str = "") -> Line:
    """A series as a chart line: downsampled buckets as points, then the raw window."""
    return Line(
        (),
        style,
        band,
        steps=series.steps,
        values=series.vals,
        label=label,
        buckets=series.older.columns(),
        finite=not series.nonfinite,
    )


def step_window(
    lines: list[Line], zoom: int, window: tuple[float, float] | None
) -> tuple[tuple[float, float] | None, str]:
    """The steps to show, and words for the title: the last ``1/2**zoom`` of the run
    while following the live tail, else the fixed ``window`` panned to."""
    firsts = [x for line in lines if (x := line.first_x) is not None]
    lasts = [x for line in lines if (x := line.last_x) is not None]
    if not firsts or (zoom == 0 and window is None):
        return None, ""
    low, high = min(firsts), max(lasts)
    words = f"zoom ×{2**zoom}" if zoom else ""
    if window is None:
        span = (high - low) / 2**zoom
        left = max(high - span, low)
        right = left + span
        where = "following"
    else:
        left, right = window
        where = f"← {max(high - right, 0):,.0f} steps back"
    return (left, right), words + (" · " if words else "") + where


class _DrawCache:
    """What the view keeps between frames, beside the state and never in it: an entry
    per series or run it was drawn from, found by identity (the object is held, so its
    id cannot be reused while the entry lives) and checked by the user against the
    series' count and revision. Cleared whole past ``limit`` entries."""

    def __init__(self, limit: int = 4096) -> None:
        self.limit = limit
        self.entries: dict[int, tuple[object, Any]] = {}

    def get(self, owner: object) -> Any:
        entry = self.entries.get(id(owner))
        return entry[1] if entry is not None and entry[0] is owner else None

    def put(self, owner: object, value: Any) -> None:
        if len(self.entries) >= self.limit:
            self.entries.clear()
        self.entries[id(owner)] = (owner, value)


_SMOOTHED = _DrawCache()  # series -> _Smoothed
_RUN_CACHES = _DrawCache(256)  # run -> {"band": ..., "grid": ...}


def _cache_of(run: Run, what: str) -> dict[Any, Any]:
    """The view's cache of ``what`` ("band", "grid") for ``run``."""
    caches = _RUN_CACHES.get(run)
    if caches is None:
        caches = {}
        _RUN_CACHES.put(run, caches)
    return caches.setdefault(what, {})  # type: ignore[no-any-return]


@dataclass(slots=True)
class _Smoothed:
    """A series' smoothed line, kept between frames and extended by the new points."""

    weight: float
    revision: int
    count: int
    steps: list[int]
    values: list[float]
    last: float
    taken: int


def _smoothed(series: Series, weight: float) -> Line:
    """The EMA of the whole series (bucket values, then the window), computed once and
    then only for points that arrived since, until points leave the window."""
    cache = _SMOOTHED.get(series)
    new = series.count - cache.count if isinstance(cache, _Smoothed) else -1
    if (
        not isinstance(cache, _Smoothed)
        or cache.weight != weight
        or cache.revision != series.revision
        or not 0 <= new <= len(series.vals)
    ):
        older = series.older.columns()
        values, last, taken = ema_extend(older.lasts + series.vals, weight, 0.0, 0)
        cache = _Smoothed(
            weight, series.revision, series.count, older.steps + series.steps, values, last, taken
        )
        _SMOOTHED.put(series, cache)
    elif new:
        values, cache.last, cache.taken = ema_extend(
            series.vals[-new:], weight, cache.last, cache.taken
        )
        cache.values += values
        cache.steps += series.steps[-new:]
        cache.count = series.count
    return Line(
        (), "tm.smooth", band=False, steps=cache.steps, values=cache.values, label="smoothed"
    )


_BAND_BINS = 200
_BAND_EVERY = 5  # frames between recomputing a band whose data changed


def _band_line(run: Run, name: str, opts: ViewOptions) -> Line | None:
    """Min, mean and max across workers of metric ``name``, in 200 step bins.

    Folding every worker's series costs a few milliseconds each (64 workers: ~80 ms),
    so a band is kept and recomputed at most every fifth frame while data arrives."""
    cache = _cache_of(run, "band")
    calls = cache["calls"] = cache.get("calls", 0) + 1
    version = sum(w.series[name].count for w in run.workers.values() if name in w.series)
    key = (name, opts.zoom, opts.window)  # another window is another band, at once
    kept = cache.get(key)
    if kept is not None and (kept[1] == version or calls - kept[2] < _BAND_EVERY):
        return kept[0]  # type: ignore[no-any-return]
    band = _fold_band(run, name, opts)
    if len(cache) > 16:
        cache.clear()
        cache["calls"] = calls
    cache[key] = (band, version, calls)
    return band


def _fold_band(run: Run, name: str, opts: ViewOptions) -> Line | None:
    lines = [series_line(w.series[name]) for w in run.workers.values() if name in w.series]
    firsts = [x for line in lines if (x := line.first_x) is not None]
    if len(lines) < 2 or not firsts:
        return None
    window, _ = step_window(lines, opts.zoom, opts.window)  # bins over what is shown
    x0, x1 = window or (min(firsts), max(x for line in lines if (x := line.last_x) is not None))
    bins: dict[int, list[float]] = {}
    for line in lines:
        for px, (y, low, high, _mark) in _fold_line(line, x0, x1, _BAND_BINS):
            cell = bins.get(px)
            if cell is None:
                bins[px] = [low, high, y, 1.0]
            else:
                cell[0], cell[1] = min(cell[0], low), max(cell[1], high)
                cell[2] += y
                cell[3] += 1
    scale = (x1 - x0) / (_BAND_BINS - 1) if x1 > x0 else 0.0
    points = [
        (x0 + px * scale, cell[2] / cell[3], cell[0], cell[1]) for px, cell in sorted(bins.items())
    ]
    return Line(points, "tm.line", band=True, label=f"mean of {len(lines)} workers, min–max band")


def chart_lines(state: RunState, run: Run, name: str, opts: ViewOptions) -> tuple[list[Line], str]:
    """The lines of the main chart and what they show, for the title."""
    lines: list[Line] = []
    parts: list[str] = []
    worker = shown_worker(run, opts)
    if opts.workers_mode == "band" and (band := _band_line(run, name, opts)) is not None:
        lines.append(band)
        parts.append(band.label)
    elif opts.workers_mode == "lines" and len(run.workers) > 1:
        ranked = sorted(run.workers.values(), key=Worker.sort_key)[:_MAX_WORKER_LINES]
        for index, each in enumerate(ranked):
            if name in each.series:
                lines.append(series_line(each.series[name], f"tm.worker{index + 1}", band=False))
        parts.append(f"{len(lines)} workers" + (" (first 8)" if len(run.workers) > 8 else ""))
    elif worker is not None and name in worker.series:
        series = worker.series[name]
        lines.append(series_line(series))
        if opts.smoothing:
            lines.append(_smoothed(series, opts.smoothing))
            parts.append(f"smoothed {opts.smoothing:.2f}")
        if len(run.workers) > 1:
            parts.insert(0, worker_label(worker))
    if opts.overlay is not None and opts.overlay != run.name:
        other = state.runs.get(opts.overlay)
        lead = other.lead if other is not None else None
        if lead is not None and name in lead.series:
            lines.append(series_line(lead.series[name], "tm.overlay", band=False))
            parts.append(f"vs {opts.overlay} (magenta)")
    return lines, " · ".join(parts)


def main_panel(state: RunState, run: Run, opts: ViewOptions) -> Panel:
    """The main metric: a sparkline of the last values, or a chart of the whole run."""
    name = main_metric(run, opts)
    worker = shown_worker(run, opts)
    if worker is not None and name is not None and name not in worker.series:
        # that worker does not log it: the lead's, else a worker's that does (a pool's
        # parent logs the loss, not its children)
        source = metric_source(run, name)
        opts = replace(opts, worker=None if source is None else source[1].id)
        worker = shown_worker(run, opts)
    series = worker.series.get(name) if worker is not None and name is not None else None
    if name is None or series is None or not series.vals:
        return Panel(Text("no metrics yet", style="tm.dim"), title="Loss", title_align="left")
    values = series.values(opts.history)
    finite = [v for v in values if math.isfinite(v)]
    caption = Text(style="tm.dim")
    if finite:
        caption.append(f"min {format_value(min(finite))}  max {format_value(max(finite))}  ")
    caption.append(f"last {format_value(values[-1])}")
    bad = len(values) - len(finite)
    if bad:
        caption.append(f"  {bad} non-finite", style="tm.bad")
    if opts.chart:
        caption = Text(f"last {format_value(values[-1])}", style="tm.dim")
        if series.best_step is not None:
            caption.append(f"  lowest {format_value(series.best)} at step {series.best_step:,}")
        if series.nonfinite:
            caption.append(f"  {series.nonfinite:,} non-finite", style="tm.bad")
        lines, what = chart_lines(state, run, name, opts)
        x_range, where = step_window(lines, opts.zoom, opts.window)
        flags = (where, "log y" if opts.log_y else "", "5–95% y" if opts.robust else "", what)
        title = f"{name} · {_span(series)}" + "".join(f" · {f}" for f in flags if f)
        chart = LineChart(lines, x_range=x_range, log=opts.log_y, robust=opts.robust)
        return Panel(_FillHeight(chart, caption), title=_panel_title(title), title_align="left")
    whose = worker or run.lead
    who = f" · {worker_label(whose)}" if whose is not None and len(run.workers) > 1 else ""
    return Panel(
        _FillHeight(values, caption),
        title=_panel_title(f"{name}{who} · last {len(values)}"),
        title_align="left",
    )


def _span(series: Series) -> str:
    """What a chart of ``series`` covers, truly: "300 steps" when every step is there,
    else how many points over which steps ("10 points over steps 29–299")."""
    older = series.older
    older.fold()  # (a no-op but for points just held back)
    first = series.steps[0]
    if older.buckets:
        first = min(first, older.buckets[min(older.buckets)].first_step)
    last, count = series.steps[-1], series.count
    if count == 1:
        return f"1 point at step {last:,}"
    if count == last - first + 1:
        return f"{count:,} steps"
    return f"{count:,} points over steps {first:,}–{last:,}"


class _ChartGrid:
    """A chart for every metric but the main one, as many as fit, a page at a time."""

    MIN_WIDTH = 40
    MIN_HEIGHT = 8
    MAX_COLUMNS = 4
    REDRAWS_PER_FRAME = 2

    def __init__(self, run: Run, opts: ViewOptions) -> None:
        self.run = run
        self.opts = opts
        main = main_metric(run, opts)
        self.names = [n for n in run.metric_names if n != main]

    def pages(self, width: int, height: int) -> tuple[int, int, int]:
        """Columns, rows and pages for a grid ``width`` x ``height`` cells."""
        cols = max(1, min(len(self.names) or 1, width // self.MIN_WIDTH, self.MAX_COLUMNS))
        rows = max(1, (height - 1) // self.MIN_HEIGHT)
        per_page = cols * rows
        return cols, rows, max(1, -(-len(self.names) // per_page))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width, height = options.max_width, options.height or 20
        if not self.names:
            yield Text(" no other metrics", style="tm.dim")
            return
        cols, rows, pages = self.pages(width, height)
        page = self.opts.page % pages
        per_page = cols * rows
        shown = self.names[page * per_page : (page + 1) * per_page]
        heading = Text(
            f" metrics {page * per_page + 1}–{page * per_page + len(shown)} of {len(self.names)}",
            style="tm.heading",
        )
        if pages > 1:
            heading.append(f" · page {page + 1}/{pages} · ] next · [ previous", style="tm.dim")
        yield heading
        # Rows of cells rendered to lines and laid side by side: far cheaper than a Layout.
        room = max(height - 1, 1)
        row_count = -(-len(shown) // cols)
        cell_width = width // cols
        heights = [room // row_count + (1 if i < room % row_count else 0) for i in range(row_count)]
        drawn = self._draw_cells(console, options, shown, cols, cell_width, heights)
        for row_index, cell_height in enumerate(heights):
            cells = drawn[row_index * cols : (row_index + 1) * cols]
            blank = [Segment(" " * (width - cell_width * len(cells)))]
            for line in range(cell_height):
                for cell in cells:
                    yield from cell[line]
                yield from blank
                yield Segment.line()

    def _draw_cells(
        self,
        console: Console,
        options: ConsoleOptions,
        names: list[str],
        cols: int,
        cell_width: int,
        heights: list[int],
    ) -> list[list[list[Segment]]]:
        """Each cell's lines: drawn afresh if its series changed, but at most
        ``REDRAWS_PER_FRAME`` of them a frame (the longest-waiting first), the others
        as last drawn. Small charts then follow a live run a few times a second while
        the frame stays cheap; the main chart is drawn every frame."""
        cache = _cache_of(self.run, "grid")
        frame = cache["frame"] = cache.get("frame", 0) + 1
        worker = shown_worker(self.run, self.opts)
        opts = self.opts
        keys, stale = [], []
        for index, name in enumerate(names):
            series = worker.series.get(name) if worker is not None else None
            version = (series.count, series.revision) if series is not None else None
            key = (
                worker.id if worker else "",
                name,
                cell_width,
                heights[index // cols],
                opts.zoom,
                opts.window,
                opts.log_y,
                opts.robust,
            )
            keys.append(key)
            entry = cache.get(key)
            if entry is None:
                stale.append((-1, index))  # never drawn: now, whatever it costs
            elif entry[1] != version:
                stale.append((entry[2], index))
        stale.sort()
        redraw = [index for drawn_at, index in stale if drawn_at < 0]
        redraw += [index for drawn_at, index in stale if drawn_at >= 0][: self.REDRAWS_PER_FRAME]
        for index in redraw:
            name = names[index]
            series = worker.series.get(name) if worker is not None else None
            version = (series.count, series.revision) if series is not None else None
            lines = console.render_lines(
                self._cell(name),
                options.update(width=cell_width, height=heights[index // cols]),
                pad=True,
            )
            cache[keys[index]] = (lines, version, frame)
        if len(cache) > 4 * len(names) + 8:  # forget cells of other pages and sizes
            shown = set(keys)
            for key in [
                k for k, v in cache.items() if k != "frame" and k not in shown and v[2] < frame - 50
            ]:
                del cache[key]
        return [cache[key][0] for key in keys]

    def _cell(self, name: str) -> Panel:
        worker = shown_worker(self.run, self.opts)
        series = worker.series.get(name) if worker is not None else None
        if series is None or not series.vals:
            return Panel(Text("–", style="tm.dim"), title=_panel_title(name), title_align="left")
        line = series_line(series)
        x_range, _ = step_window([line], self.opts.zoom, self.opts.window)
        chart = LineChart([line], x_range=x_range, log=self.opts.log_y, robust=self.opts.robust)
        title = _panel_title(f"{name[:24]} {_format_metric(name, series.last)}")
        return Panel(chart, title=title, title_align="left", padding=(0, 0))


def _panel_title(text: str) -> Text:
    """A panel title from names that came over the wire: plain text (a Rich markup
    string would take a metric named ``x[/]`` for a tag and fail, or ``[red]x`` for a
    style), cut with an ellipsis where the panel is narrower."""
    return Text(text, overflow="ellipsis")


def help_panel() -> Panel:
    """Every key and what it does."""
    return Panel(_HelpLines(), title="Keys · ? or Esc closes", title_align="left")


class _HelpLines:
    """The keys a line each; in two columns when one does not fit the height (80x24),
    descriptions cut with an ellipsis if need be, so no key is left out."""

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        key_width = max(len(keys) for keys, _ in HELP) + 2
        rows = [
            Text(keys.ljust(key_width), style="tm.key", no_wrap=True).append(what, style="")
            for keys, what in HELP
        ]
        height = options.height or len(rows)
        if len(rows) <= height or width < 2 * (key_width + 12):
            for row in rows[:height]:
                row.truncate(width, overflow="ellipsis")
                yield row
            return
        # as many as fit down the left, the rest beside them, the left as wide as it
        # needs while the right keeps a third of the width
        half = max(height, (len(rows) + 1) // 2)
        left_rows, right_rows = rows[:half], rows[half:]
        column = min(max(row.cell_len for row in left_rows), width - 2 - width // 3)
        for index, left in enumerate(left_rows):
            left.truncate(column, overflow="ellipsis", pad=True)
            right = right_rows[index] if index < len(right_rows) else Text("")
            right.truncate(width - column - 2, overflow="ellipsis")
            yield Text.assemble(left, "  ", right)


def runs_panel(state: RunState, shown: Run, opts: ViewOptions, now: float) -> Panel:
    """Every run: status, workers, step and main metric; r switches, o overlays."""
    columns = (
        ("", "left"),
        ("run", "left"),
        ("status", "left"),
        ("workers", "right"),
        ("step", "right"),
        ("main metric", "right"),
    )
    rows: list[tuple[str | Text, ...]] = []
    for run in sorted(state.runs.values(), key=lambda r: r.created):
        status = run.status(now, opts.stall_after_s)
        name = main_metric(run, opts)
        series = run.series(name) if name else None
        lead = run.lead
        marker = "▶" if run is shown else ("◆" if run.name == opts.overlay else "")
        rows.append(
            (
                marker,
                run.name,
                Text(status, style=STATUS_STYLE[status]),
                str(len(run.workers)),
                "–" if lead is None or lead.step is None else f"{lead.step:,}",
                (
                    f"{name} {_format_metric(name, series.last)}"
                    if series is not None and name
                    else "–"
                ),
            )
        )
    sender, config = shown.config_from, shown.config
    heading = Text("", no_wrap=True, overflow="ellipsis")
    if sender is not None:
        heading.append(f"config of {shown.name} (from {worker_label(sender)})", style="tm.heading")
    return Panel(
        _RunsAndConfig(columns, rows, heading, config, shown.config_more),
        title=f"Runs ({len(state.runs)}) · ▶ shown · ◆ overlaid · r next · o overlay · R closes",
        title_align="left",
    )


class _RunsAndConfig:
    """The runs, then the shown run's config as ``key  value`` lines; when the height is
    short the runs keep what they need and the config is cut with a count."""

    def __init__(
        self,
        columns: tuple[tuple[str, str], ...],
        rows: list[tuple[str | Text, ...]],
        heading: Text,
        config: dict[str, str],
        more: int,
    ) -> None:
        self.columns, self.rows = columns, rows
        self.heading, self.config, self.more = heading, config, more

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        runs = grid_lines(self.columns, self.rows, width)
        items = list(self.config.items())
        room = options.height or len(runs) + 2 + len(items)
        if not items:
            yield from runs[:room]
            return
        runs = runs[: max(room - 3, 1)]  # leave the config a heading and a line
        yield from runs
        room -= len(runs) + 2
        if room < 1:
            return
        yield Text("")
        heading = self.heading.copy()
        heading.truncate(width, overflow="ellipsis")
        yield heading
        if len(items) > room or (self.more and len(items) == room):
            items = items[: room - 1]  # and a line that says how many more
        key_width = min(max(len(key) for key, _ in items), max(24, width // 3)) if items else 0
        for key, value in items:
            if len(key) > key_width:
                key = key[: key_width - 1] + "…"
            line = Text(f" {key:<{key_width}}  ", style="tm.dim", no_wrap=True)
            line.append(value)
            line.truncate(width, overflow="ellipsis")
            yield line
        hidden = len(self.config) - len(items) + self.more
        if hidden:
            yield Text(f" … {hidden:,} more", style="tm.dim")


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


def stats_panel(
    state: RunState, run: Run, opts: ViewOptions | None = None, now: float | None = None
) -> Panel:
    """Current loss, accuracy, grad norm, best loss, held-out metrics, learning rate,
    throughput, what was received, then every other metric of any worker."""
    grid = _Pairs()
    loss_name = run.find_metric(LOSS_NAMES)
    acc_name = run.find_metric(TRAIN_ACCURACY_NAMES)
    grad_name = run.find_metric(GRAD_NAMES)
    grid.add_metric("loss", _metric_text(run, loss_name) if loss_name else "–")
    for label, name in (("accuracy", acc_name), ("grad norm", grad_name)):
        if name is not None:  # a row only for what is logged: room for what is
            grid.add_metric(label, _metric_text(run, name))
    source = metric_source(run, loss_name) if loss_name else None
    if source is not None and source[0].best_step is not None:
        loss = source[0]
        grid.add_metric("best loss", f"{format_value(loss.best)} @ {loss.best_step:,}")
    else:
        grid.add_metric("best loss", "–")
    known = _metrics_among(run, HELD_OUT_NAMES) + _metrics_among(run, LR_NAMES)
    for name in known:
        grid.add_metric(name, _metric_text(run, name))
    if opts is not None and now is not None:
        rates = run.throughput(now, opts.stall_after_s)
        for unit in ("samples", "tokens"):
            if unit in rates:
                grid.add_row(f"{unit}/s", format_rate(rates[unit]))
        straggler = run.straggler(now, opts.stall_after_s)
        if straggler is not None:
            grid.add_row(
                "straggler",
                Text(f"{worker_label(straggler)} at step {straggler.step:,}", style="tm.straggler"),
            )
    grid.add_row("records", f"{run.records:,}")
    missed, dropped = run.missed, run.client_dropped
    grid.add_row("missed", Text(f"{missed:,}", style="tm.warn" if missed else ""))
    if dropped:
        grid.add_row("dropped", Text(f"{dropped:,} by the client", style="tm.warn"))
    if run.client_unrecorded:
        grid.add_row(
            "unrecorded",
            Text(f"{run.client_unrecorded:,} not in record_to", style="tm.warn"),
        )
    if run.not_resent:
        grid.add_row("before", Text(f"{run.not_resent:,} older than history", style="tm.dim"))
    outages, longest = run.outages
    if outages:
        grid.add_row("outages", Text(f"{outages:,} (longest {longest:.1f} s)", style="tm.stalled"))
    if limits_text(state, run):
        grid.add_row("limits", Text("reached: see the summary", style="tm.warn"))
    grid.add_row("rejected", _rejected_text(state))
    if state.skipped:
        grid.add_row("skipped", Text(skipped_text(state), style="tm.warn"))
    if state.refused:
        grid.add_row("refused", Text(f"{state.refused:,} handshakes", style="tm.bad"))
    if state.link_short:
        grid.add_row("link", Text(state.link_short, style="tm.bad"))
    if state.recording_note:
        grid.add_row("recording", Text(state.recording_note, style="tm.bad"))
    shown = {loss_name, acc_name, grad_name, *known}
    for name in run.metric_names:
        if name not in shown:
            grid.add_metric(name, _metric_text(run, name))
    return Panel(grid, title="Stats", title_align="left")


def metric_source(run: Run, name: str) -> tuple[Series, Worker] | None:
    """Metric ``name`` of ``run`` and the worker it is read from: the lead, else the
    first worker that logs it (rank 1's data loading time; a pool's parent, whose
    children log no loss), so no worker's metric is left out."""
    lead = run.lead
    if lead is not None:
        series = lead.series.get(name)
        if series is not None:
            return series, lead
    holders = [w for w in run.workers.values() if name in w.series]
    if not holders:
        return None
    worker = min(holders, key=lambda w: (w.sort_key()[:2], w.first_seen))
    return worker.series[name], worker


def _metric_text(run: Run, name: str) -> str | Text:
    """A metric's last value as the stats show it, with the worker it comes from when
    that is not the lead."""
    source = metric_source(run, name)
    if source is None:
        return "–"
    series, worker = source
    if worker is run.lead:
        return _format_metric(name, series.last)
    text = Text(_format_metric(name, series.last))
    text.append(f" {worker_label(worker)}", style="tm.dim")
    return text


def _width(value: str | Text) -> int:
    """Terminal cells ``value`` takes."""
    return value.cell_len if isinstance(value, Text) else cell_len(value)


def _metrics_among(run: Run, names: tuple[str, ...]) -> list[str]:
    """The run's metrics that are among ``names``, in the order of ``names``."""
    order = _order(names)
    found = [name for name in run.metric_names if name.lower() in order]
    return sorted(found, key=lambda name: order[name.lower()])


@functools.cache
def _order(names: tuple[str, ...]) -> dict[str, int]:
    return {name: index for index, name in enumerate(names)}


_MIN_LABEL = 10  # the stats' labels are at least this wide, so short ones line up as ever


class _Pairs:
    """Label and value lines: as many as fit, then how many more there are.

    Labels are as wide as the longest (in terminal cells, so wide characters and emoji
    keep the values aligned), and cut with an ellipsis only where the panel leaves no
    more room beside the widest metric value.
    """

    def __init__(self) -> None:
        self.rows: list[tuple[str, str | Text, bool]] = []  # label, value, value kept whole

    def add_row(self, label: str, value: str | Text) -> None:
        self.rows.append((label, value, False))

    def add_metric(self, label: str, value: str | Text) -> None:
        """A row whose value is kept whole: labels give way first."""
        self.rows.append((label, value, True))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        rows = self.rows
        room = options.height or len(rows)
        if len(rows) > room:
            rows = rows[: max(room - 1, 0)]
        width = options.max_width
        longest = max((cell_len(label) for label, _, _ in rows), default=0)
        kept = max((_width(value) for _, value, keep in rows if keep), default=0)
        label_width = max(_MIN_LABEL, min(longest, width - 1 - kept))
        for label, value, _ in rows:
            cells = cell_len(label)
            if cells <= label_width:  # (most labels: no truncation to work out)
                line = Text(label + " " * (label_width - cells + 1), "tm.heading", no_wrap=True)
            else:
                line = Text(label, style="tm.heading", no_wrap=True)
                line.truncate(label_width, overflow="ellipsis", pad=True)
                line.append(" ")
            line.append_text(value if isinstance(value, Text) else Text(value))
            line.truncate(width, overflow="ellipsis")
            yield line
        if len(rows) < len(self.rows):
            yield Text(f"… {len(self.rows) - len(rows)} more", style="tm.dim")


def _rejected_text(state: RunState) -> Text:
    """The reject count, with the peer that sent most of them."""
    if not state.rejected:
        return Text("0")
    text = Text(f"{state.rejected:,}", style="tm.bad")
    if state.rejected_by_peer:
        peer, count = max(state.rejected_by_peer.items(), key=lambda item: item[1])
        text.append(f" ({count:,} from {peer})", style="tm.bad")
    return text


def skipped_text(state: RunState) -> str:
    """Records of kinds this monitor does not know, by kind: '3 of kind "x" (newer client)'."""
    kinds = sorted(state.skipped.items(), key=lambda item: -item[1])
    return ", ".join(f"{count:,} {kind!r}" for kind, count in kinds) + " (newer client?)"


def limits_text(state: RunState, run: Run) -> str:
    """What was left untracked because a limit was reached, or ''."""
    parts = []
    if state.untracked_runs:
        parts.append(
            f"{state.untracked_runs:,} records of runs past the limit of {state.limits.runs}"
        )
    limits = state.limits
    if run.untracked_workers:
        parts.append(
            f"{run.untracked_workers:,} records of workers past the limit of {limits.workers} "
            f"per run or {limits.all_workers:,} in all"
        )
    untracked_metrics = sum(w.untracked_metrics for w in run.workers.values())
    if untracked_metrics:
        parts.append(
            f"{untracked_metrics:,} values of metrics past the limit of {limits.metrics} "
            f"per worker or {limits.series:,} series in all"
        )
    return "; ".join(parts)


def workers_panel(run: Run, opts: ViewOptions, now: float) -> Panel:
    """One row per worker, as many as fit, and how many more there are."""
    return Panel(_WorkersTable(run, opts, now), title="Workers", title_align="left")


class _WorkersTable:
    """The workers' rows, taken now (so a frozen frame stays frozen), cut to fit later."""

    COLUMNS = (
        ("rank", "right"),
        ("host", "left"),
        ("pid", "right"),
        ("step", "right"),
        ("last seen", "right"),
        ("steps/s", "right"),
        ("step ms", "right"),
        ("missed", "right"),
        ("status", "left"),
    )

    def __init__(self, run: Run, opts: ViewOptions, now: float) -> None:
        straggler = run.straggler(now, opts.stall_after_s)
        self.rows = [
            _worker_row(worker, opts, now, worker is straggler)
            for worker in sorted(run.workers.values(), key=Worker.sort_key)
        ]
        self.untracked = run.untracked_workers

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        rows = self.rows
        room = max((options.height or len(rows) + 2) - 1, 1)
        hidden = 0
        notes = 1 if self.untracked else 0
        if len(rows) + notes > room:
            keep = max(room - 1 - notes, 0)
            hidden = len(rows) - keep
            rows = rows[:keep]
        yield from grid_lines(self.COLUMNS, rows, options.max_width)
        if hidden:
            yield Text(f"  … {hidden:,} more workers not shown", style="tm.dim")
        if self.untracked:
            yield Text(
                f"  worker limit reached: {self.untracked:,} records of further "
                "workers not tracked",
                style="tm.warn",
            )


def grid_lines(
    columns: tuple[tuple[str, str], ...], rows: list[tuple[str | Text, ...]], width: int
) -> list[Text]:
    """A header and rows as aligned lines: a plain table, far cheaper than Rich's Table.

    Columns are as wide as their widest cell; spare width goes to the first
    left-aligned column, and that column is cut with an ellipsis when space is short.
    """
    cells = [[c if isinstance(c, Text) else Text(c) for c in row] for row in rows]
    widths = [len(name) for name, _ in columns]
    for row in cells:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], cell.cell_len)
    # spare width goes to the last left-aligned column (status), keeping hosts compact
    flexible = max((i for i, (_, justify) in enumerate(columns) if justify == "left"), default=0)
    spare = width - 1 - sum(widths) - 2 * (len(columns) - 1)
    widths[flexible] = max(widths[flexible] + spare, 4)
    lines = []
    header = Text(" ", style="tm.heading")
    for index, (name, justify) in enumerate(columns):
        header.append(_fit(Text(name), widths[index], justify))
        header.append("  " if index < len(columns) - 1 else "")
    lines.append(header)
    for row in cells:
        line = Text(" ")
        for index, cell in enumerate(row):
            line.append_text(_fit(cell, widths[index], columns[index][1]))
            if index < len(columns) - 1:
                line.append("  ")
        lines.append(line)
    return lines


def _fit(text: Text, width: int, justify: str) -> Text:
    text = text.copy()
    if text.cell_len > width:
        text.truncate(width, overflow="ellipsis")
    pad = " " * (width - text.cell_len)
    if justify == "right":
        text = Text(pad) + text
    else:
        text.append(pad)
    return text


def _worker_row(
    worker: Worker, opts: ViewOptions, now: float, straggler: bool = False
) -> tuple[str | Text, ...]:
    status = worker.status(now, opts.stall_after_s)
    rate = worker.steps_per_s
    shown_rate = rate is not None and not worker.finished and status == "running"
    # A straggler is running, but behind the others: say that alone (fits at 80 columns).
    status_text = (
        Text("straggler", style="tm.straggler")
        if straggler
        else Text(status, style=STATUS_STYLE[status])
    )
    missed = f"{worker.missed:,}"
    if worker.client_dropped:
        missed += f"+{worker.client_dropped:,}"
    return (
        "–" if worker.rank is None else str(worker.rank),
        worker.host or worker.id,
        "–" if worker.pid is None else str(worker.pid),
        "–" if worker.step is None else f"{worker.step:,}",
        f"{max(now - worker.last_seen, 0):.1f}s ago",
        f"{rate:,.1f}" if shown_rate and rate is not None else "–",
        f"{1000 / rate:,.1f}" if shown_rate and rate else "–",
        Text(missed, style="tm.stalled" if missed != "0" else ""),
        status_text,
    )


def waiting_panel(state: RunState, opts: ViewOptions) -> Panel:
    """What to do while nothing has arrived yet."""
    text = Text()
    if opts.connecting:
        text.append(f"Connecting to {opts.address}\n", style="tm.heading")
        if state.link_note:
            text.append(f"{state.link_note}\n", style="tm.bad")
        else:
            text.append("connected; waiting for records\n", style="tm.dim")
        listen = _listen_address(opts.address)
        text.append(
            f"\nSomething must listen there: a relay (trainmon relay --pub-bind {listen}), "
            "or the training script, with:\n\n",
            style="tm.dim",
        )
        monitor = f"Monitor({listen!r}, bind=True)"
    else:
        text.append(
            f"Waiting for records on {opts.address or 'the configured endpoints'}\n\n",
            style="tm.heading",
        )
        if state.link_note:  # an older client knocking on the old default, say
            text.append(f"{state.link_note}\n\n", style="tm.bad")
        text.append("In the training script:\n\n", style="tm.dim")
        default = not opts.address or is_private_default(opts.address)
        monitor = "Monitor()" if default else f"Monitor({opts.address!r})"
    text.append("    from trainmon_client import Monitor\n")
    text.append(f"    mon = {monitor}\n")
    text.append("    mon.log(loss=loss, accuracy=acc)\n")
    for warning in opts.warnings:
        text.append(f"\n{warning}", style="tm.warn")
    if state.rejected:
        text.append(f"\n{state.rejected:,} messages rejected: {state.last_reject}", style="tm.bad")
    if state.recording_note:
        text.append(f"\n{state.recording_note}", style="tm.bad")
    if state.refused:
        text.append(
            f"\n{state.refused:,} handshakes refused; last: {state.last_refusal}", style="tm.bad"
        )
    return Panel(text, title="No data yet", title_align="left")


def _listen_address(address: str) -> str:
    """Where training would listen for a monitor that connects to ``address`` (the
    first of several): any interface (IPv6 too, for an IPv6 address), the same port; an
    ipc path as it is."""
    first = address.split(", ")[0]
    if first.startswith("tcp://"):
        anywhere = "[::]" if "[" in first else "0.0.0.0"
        return f"tcp://{anywhere}:" + first.rsplit(":", 1)[1]
    return first


def footer(opts: ViewOptions) -> Text:
    """The keys, or the pause notice, and any passing notice."""
    text = Text()
    if opts.notice:
        text.append(f" {opts.notice} ", style="tm.notice")
        text.append(" ")
    if opts.paused:
        text.append(" PAUSED ", style="tm.paused")
        text.append(f" view frozen · {opts.paused_records:,} records arrived since · ")
        _keys(text, *PAUSED_FOOTER)
    elif opts.interactive:
        text.append(" ")
        _keys(text, *FOOTER)
    else:
        text.append(" Ctrl-C quits · training is never affected by this window")
    return text


def _keys(text: Text, *pairs: tuple[str, str]) -> None:
    """Append ``key what · key what ...`` with the keys in bold."""
    for index, (key, what) in enumerate(pairs):
        text.append(key, style="tm.heading")
        text.append(f" {what}" + (" · " if index < len(pairs) - 1 else ""))


def status_line(state: RunState, opts: ViewOptions, now: float) -> str:
    """One plain line for logs and pipes, when there is no terminal to draw on."""
    run = shown_run(state, opts)
    if run is None:
        extra = f"; {state.rejected} rejected" if state.rejected else ""
        if state.refused:
            extra += f"; {state.refused} handshakes refused ({state.last_refusal})"
        return _nothing_yet(state, opts, "waiting for records", extra)
    lead = run.lead
    parts = [f"run {run.name}", run.status(now, opts.stall_after_s)]
    epoch = run.epoch_label()
    if epoch is not None:
        parts.append(f"epoch {epoch}")
    if lead is not None and lead.step is not None:
        parts.append(f"step {lead.step}")
    fraction = run.progress()
    if fraction is not None and not run.finished:
        eta = run.eta_s()
        if lead is None or lead.status(now, opts.stall_after_s) != "running":
            eta = None  # a rate from before the lead went quiet would mislead
        ahead = f" ETA {format_duration(eta)}" if eta is not None else ""
        parts.append(f"{math.floor(fraction * 100)}%{ahead}")
    for unit, rate in run.throughput(now, opts.stall_after_s).items():
        parts.append(f"{format_rate(rate)} {unit}/s")
    for label, names in (("loss", LOSS_NAMES), ("acc", ACCURACY_NAMES)):
        name = run.find_metric(names)
        series = run.series(name) if name else None
        if series is not None:
            value = format_percent(series.last) if label == "acc" else format_value(series.last)
            parts.append(f"{label} {value}")
    statuses = [w.status(now, opts.stall_after_s) for w in run.workers.values()]
    counts = ", ".join(f"{statuses.count(s)} {s}" for s in STATUS_STYLE if statuses.count(s))
    parts.append(f"workers {len(statuses)} ({counts})")
    parts.append(f"records {state.records}")
    parts.append(_missed_text(run))
    parts.append(f"rejected {state.rejected}")
    if state.link_note:
        parts.append(f"link {state.link_short}: {state.link_note}")
    if state.recording_note:
        parts.append(state.recording_note)
    return "trainmon: " + " · ".join(parts)


def _nothing_yet(state: RunState, opts: ViewOptions, what: str, extra: str) -> str:
    """The plain line of a monitor with no run yet: ``what``, where, ``extra``, and how
    its connections stand."""
    where = "from" if opts.connecting else "on"
    link = f"; {state.link_note}" if state.link_note else ""
    return f"trainmon: {what} {where} {opts.address}{extra}{link}"


def summary(state: RunState, opts: ViewOptions, now: float, width: int = 100) -> str:
    """The final report printed when the monitor exits (lines that may be long, like
    the config, fit ``width``)."""
    if not state.runs:
        extra = ""
        if state.rejected:
            extra += f"; {state.rejected} messages were rejected (last: {state.last_reject})"
        if state.refused:
            extra += f"; {state.refused} handshakes refused (last: {state.last_refusal})"
        return _nothing_yet(state, opts, "no records were received", extra)
    lines = []
    for run in state.runs.values():
        fraction = run.progress()
        early = ""
        if run.finished and fraction is not None and fraction < 1.0:
            early = f" (ended early, {math.floor(fraction * 100)}% of the way)"
        lines.append(
            f"run {run.name}: {run.status(now, opts.stall_after_s)}{early}, "
            f"{len(run.workers)} worker{'' if len(run.workers) == 1 else 's'}"
        )
        if run.config:
            lines.append(f"  config: {_config_line(run, max(width - 10, 30))}")
        lines += [
            line
            for name in run.metric_names[:_SUMMARY_METRICS]
            if (line := _summary_metric(run, name, width))
        ]
        if len(run.metric_names) > _SUMMARY_METRICS:
            lines.append(f"  … {len(run.metric_names) - _SUMMARY_METRICS} more metrics")
        lines.append(f"  {_missed_text(run)}")
        gone = [
            worker_label(w)
            for w in run.workers.values()
            if w.status(now, opts.stall_after_s) == "lost"
        ]
        if gone:
            lines.append(
                f"  {len(gone)} worker{'s' if len(gone) > 1 else ''} lost without a bye "
                f"({', '.join(gone[:8])}{', …' if len(gone) > 8 else ''}): "
                "records after their last heartbeat are unknown"
            )
        if limits_text(state, run):
            lines.append(f"  limits reached: {limits_text(state, run)}")
        alerts = [a for a in state.alerts if a.run == run.name]
        if alerts:
            lines.append(f"  {len(alerts)} alert{'s' if len(alerts) > 1 else ''}:")
            lines += [f"    {a.text}" for a in alerts[-_SUMMARY_ALERTS:]]
            if len(alerts) > _SUMMARY_ALERTS:
                lines.append(f"    … and {len(alerts) - _SUMMARY_ALERTS} before")
    received = f"records received {state.records}"
    if state.first_record_at is not None and state.last_record_at is not None:
        span = state.last_record_at - state.first_record_at
        if span > 0:
            received += f" in {span:.{1 if span >= 10 else 2}f} s ({state.records / span:,.0f}/s)"
    received += f", rejected {state.rejected}"
    if state.rejected_by_peer:
        received += (
            " ("
            + ", ".join(
                f"{count} from {peer}"
                for peer, count in sorted(
                    state.rejected_by_peer.items(), key=lambda item: -item[1]
                )[:5]
            )
            + ")"
        )
    lines.append(received)
    if state.skipped:
        lines.append(f"records skipped, of kinds this monitor does not know: {skipped_text(state)}")
    if state.refused:
        lines.append(f"handshakes refused {state.refused}; last: {state.last_refusal}")
    return "\n".join(lines)


def _summary_metric(run: Run, name: str, width: int) -> str:
    """``  name: last value (best ...) (worker)``: the value as the stats panel shows it,
    the best of a loss, the worker when not the lead; a long name cut to fit ``width``."""
    source = metric_source(run, name)
    if source is None:
        return ""
    series, worker = source
    rest = f": last {_format_metric(name, series.last)}"
    if is_loss(name) and series.best_step is not None:
        rest += f" (best {format_value(series.best)} at step {series.best_step})"
    if worker is not run.lead:
        rest += f" ({worker_label(worker)})"
    shown = Text(name)
    shown.truncate(max(width - 2 - len(rest), 16), overflow="ellipsis")
    return f"  {shown.plain}{rest}"


def _config_line(run: Run, width: int) -> str:
    """``key=value, ...`` in ``width`` characters: the items that fit, in order (one too
    long is left for the shorter ones after it), and how many are not shown."""
    parts: list[str] = []
    room = width - len(", … 9,999 more")
    for key, value in run.config.items():
        part = f"{key}={value}"
        if len(part) > _SUMMARY_CONFIG_CHARS:
            part = part[: _SUMMARY_CONFIG_CHARS - 1] + "…"
        if len(part) <= room:
            parts.append(part)
            room -= len(part) + 2
    more = len(run.config) - len(parts) + run.config_more
    return ", ".join(parts) + (f", … {more:,} more" if more else "")


def _missed_text(run: Run) -> str:
    missed, dropped = run.missed, run.client_dropped
    text = "nothing missed" if not missed and not dropped else f"missed {missed}"
    if dropped:
        text += f" (+{dropped} dropped by clients)"
    if run.client_unrecorded:
        text += f"; {run.client_unrecorded} not recorded by clients (record_to)"
    if run.not_resent:
        text += f"; {run.not_resent} early records were older than the clients' history"
    outages, longest = run.outages
    if outages:
        text += f"; {outages} outage{'s' if outages > 1 else ''} (longest {longest:.1f} s)"
    return text


def _format_metric(name: str, value: float) -> str:
    """A metric's value as the stats, the charts and the summary show it: an accuracy
    of any phase (``val_acc``, ``eval_accuracy``) in percent, anything else as a number."""
    return format_percent(value) if is_accuracy(name) else format_value(value)


def format_rate(value: float) -> str:
    """A rate in few characters: 950, 12.3k, 4.5M."""
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.1f}{suffix}"
    return f"{value:,.1f}" if abs(value) < 100 else f"{value:,.0f}"


def format_value(value: float) -> str:
    """A metric value in at most about 9 characters; NaN and ±Inf by name."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    magnitude = abs(value)
    if value == 0:
        return "0"
    if 1e-3 <= magnitude < 1e5:
        if float(value).is_integer():  # a count or a size: no decimals (an int may come)
            return str(int(value))
        decimals = max(0, 3 - math.floor(math.log10(magnitude)))
        return f"{value:.{decimals}f}"
    return f"{value:.3e}"


def format_percent(value: float) -> str:
    """An accuracy: fractions up to 1 as percentages, larger values taken as percent."""
    if not math.isfinite(value):
        return format_value(value)
    return f"{value * 100:.2f}%" if abs(value) <= 1 else f"{value:.2f}%"


def format_duration(seconds: float | None) -> str:
    """``mm:ss`` or ``h:mm:ss``."""
    if seconds is None or not math.isfinite(seconds):
        return "–"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"
