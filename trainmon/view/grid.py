"""The grid of small charts (key g): every metric but the main one, a page at a time,
cells redrawn a few a frame."""

from __future__ import annotations

from typing import Any

from rich.console import Console, ConsoleOptions, RenderResult
from rich.panel import Panel
from rich.segment import Segment
from rich.text import Text

from trainmon.state import Run, Worker
from trainmon.view.cache import run_cache
from trainmon.view.chart import LineChart
from trainmon.view.format import format_metric
from trainmon.view.lines import series_line, step_window
from trainmon.view.main_panel import panel_title
from trainmon.view.options import ViewOptions
from trainmon.view.shown import main_metric, shown_worker

__all__ = ["ChartGrid"]


class ChartGrid:
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
        cache = run_cache(self.run, "grid")
        frame = cache["frame"] = cache.get("frame", 0) + 1
        worker = shown_worker(self.run, self.opts)
        opts = self.opts
        keys = [
            (
                worker.id if worker else "",
                name,
                cell_width,
                heights[index // cols],
                opts.zoom,
                opts.window,
                opts.log_y,
                opts.robust,
            )
            for index, name in enumerate(names)
        ]
        versions = [_version(worker, name) for name in names]
        for index in self._redraws(cache, keys, versions):
            lines = console.render_lines(
                self._cell(names[index]),
                options.update(width=cell_width, height=heights[index // cols]),
                pad=True,
            )
            cache[keys[index]] = (lines, versions[index], frame)
        if len(cache) > 4 * len(names) + 8:  # forget cells of other pages and sizes
            shown = set(keys)
            for key in [
                k for k, v in cache.items() if k != "frame" and k not in shown and v[2] < frame - 50
            ]:
                del cache[key]
        return [cache[key][0] for key in keys]

    def _redraws(self, cache: dict[Any, Any], keys: list[Any], versions: list[Any]) -> list[int]:
        """The cells to draw this frame: every one never drawn, then at most
        ``REDRAWS_PER_FRAME`` whose series changed, the longest-waiting first."""
        stale = []
        for index, key in enumerate(keys):
            entry = cache.get(key)
            if entry is None:
                stale.append((-1, index))  # never drawn: now, whatever it costs
            elif entry[1] != versions[index]:
                stale.append((entry[2], index))
        stale.sort()
        redraw = [index for drawn_at, index in stale if drawn_at < 0]
        redraw += [index for drawn_at, index in stale if drawn_at >= 0][: self.REDRAWS_PER_FRAME]
        return redraw

    def _cell(self, name: str) -> Panel:
        worker = shown_worker(self.run, self.opts)
        series = worker.series.get(name) if worker is not None else None
        if series is None or not series.vals:
            return Panel(Text("–", style="tm.dim"), title=panel_title(name), title_align="left")
        line = series_line(series)
        x_range, _ = step_window([line], self.opts.zoom, self.opts.window)
        chart = LineChart([line], x_range=x_range, log=self.opts.log_y, robust=self.opts.robust)
        title = panel_title(f"{name[:24]} {format_metric(name, series.last)}")
        return Panel(chart, title=title, title_align="left", padding=(0, 0))


def _version(worker: Worker | None, name: str) -> tuple[int, int] | None:
    """What a cell of metric ``name`` was drawn from: the series' count and revision."""
    series = worker.series.get(name) if worker is not None else None
    return (series.count, series.revision) if series is not None else None
