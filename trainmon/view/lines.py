"""The main chart's lines: a series as a chart line, the steps shown, the smoothed line
and the band over workers (both kept in the view's caches), and which lines a view
draws."""

from __future__ import annotations

from dataclasses import dataclass

from trainmon.state import Run, RunState, Series, Worker, worker_label
from trainmon.view.cache import SMOOTHED, run_cache
from trainmon.view.chart import Line, ema_extend
from trainmon.view.compare import overlaid, overlay_colour
from trainmon.view.fold import fold_line
from trainmon.view.options import ViewOptions
from trainmon.view.shown import shown_worker

__all__ = ["chart_lines", "series_line", "step_window"]

_MAX_WORKER_LINES = 8


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
    cache = SMOOTHED.get(series)
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
        SMOOTHED.put(series, cache)
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
    cache = run_cache(run, "band")
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
        for px, (y, low, high, _mark) in fold_line(line, x0, x1, _BAND_BINS):
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
        more = len(run.workers) > _MAX_WORKER_LINES
        parts.append(f"{len(lines)} workers" + (f" (first {_MAX_WORKER_LINES})" if more else ""))
    elif worker is not None and name in worker.series:
        series = worker.series[name]
        lines.append(series_line(series))
        if opts.smoothing:
            lines.append(_smoothed(series, opts.smoothing))
            parts.append(f"smoothed {opts.smoothing:.2f}")
        if len(run.workers) > 1:
            parts.insert(0, worker_label(worker))
    legend = []
    for index, other in enumerate(overlaid(state, run, opts)):
        lead = other.lead
        if lead is not None and name in lead.series:
            style, colour = overlay_colour(index)
            lines.append(series_line(lead.series[name], style, band=False, label=other.name))
            legend.append(f"{other.name} ({colour})")
    if legend:
        parts.append("vs " + ", ".join(legend))
    return lines, " · ".join(parts)
