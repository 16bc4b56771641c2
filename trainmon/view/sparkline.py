"""A multi-row sparkline: the one renderable Rich lacks."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence

from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.style import Style

from trainmon.names import mark_of

__all__ = ["Sparkline", "columns", "joined_segments"]

_BLOCKS = " ▁▂▃▄▅▆▇█"


def columns(values: Sequence[float], width: int) -> list[tuple[float, float, str]]:
    """``values`` as ``width`` columns of ``(low, high, mark)``: folded when there are
    more values than columns, stretched (each value over neighbouring columns) when
    there are fewer, so the line always spans the width it is given.

    A column that covers several values keeps their finite minimum and maximum, so a
    spike is never sampled away. ``mark`` is ``"nan"``, ``"+inf"`` or ``"-inf"`` when
    the column holds such a value, else ``""``.
    """
    if width <= 0 or not values:
        return []
    count = len(values)
    if count < width:
        shown = [_column(values[index : index + 1]) for index in range(count)]
        return [shown[column * count // width] for column in range(width)]
    return [
        _column(values[index * count // width : (index + 1) * count // width])
        for index in range(width)
    ]


def _column(chunk: Sequence[float]) -> tuple[float, float, str]:
    """One column's finite low and high (NaN if none) and its mark."""
    finite = [v for v in chunk if math.isfinite(v)]
    mark = ""
    for value in chunk:  # NaN marks the column, else its first infinity does
        this = mark_of(value)
        if this == "nan" or (this and not mark):
            mark = this
    if finite:
        return (min(finite), max(finite), mark)
    return (math.nan, math.nan, mark)


class Sparkline:
    """A bar sparkline ``height`` rows tall over the last values that fit the width,
    stretched across it when there are fewer values than columns.

    Scaled to the finite values; NaN shows as a red ``×`` on the bottom row and ±Inf
    as a red ``▲``/``▼``, so they are marked rather than hidden or breaking the line.
    """

    def __init__(
        self,
        values: Sequence[float],
        *,
        height: int = 1,
        width: int | None = None,
        style: str = "tm.line",
        mark_style: str = "tm.mark",
    ) -> None:
        self.values = values
        self.height = max(height, 1)
        self.width = width
        self.style_name, self.mark_style_name = style, mark_style
        self.style = self.mark_style = Style.null()

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        self.style = console.get_style(self.style_name, default=Style.null())
        self.mark_style = console.get_style(self.mark_style_name, default=Style.null())
        width = min(self.width or options.max_width, options.max_width)
        height = self.height
        cols = columns(self.values, width)
        finite = [c for c in cols if not math.isnan(c[1])]
        if not finite:
            for row in range(height):
                marks = [self._mark(c, row, height) for c in cols]
                yield from self._row(marks, width)
            return
        bars = _bars(cols, finite, height * 8)
        marked_rows = {row for row in (0, height - 1) for col in cols if col[2]}
        # Each column top to bottom as a string (one per bar height, shared by the columns
        # a value is stretched over), then the rows read across them: C-level work,
        # however wide the line.
        drawn: dict[int | None, str] = {}
        for bar in bars:
            if bar not in drawn:
                drawn[bar] = _column_text(bar, height)
        rows = list(map("".join, zip(*[drawn[bar] for bar in bars], strict=True)))
        for row in range(height):
            if row not in marked_rows:  # one segment for the whole row
                yield Segment(rows[row].ljust(width), self.style)
                yield Segment.line()
                continue
            yield from self._row(self._marked_cells(cols, bars, row), width)

    def _marked_cells(
        self, cols: list[tuple[float, float, str]], bars: list[int | None], row: int
    ) -> list[tuple[str, Style | None] | None]:
        """Row ``row``'s cells a column at a time: a mark where one is, else the bar."""
        height = self.height
        base = (height - 1 - row) * 8
        cells: list[tuple[str, Style | None] | None] = []
        for col, bar in zip(cols, bars, strict=True):
            marked = self._mark(col, row, height)
            if marked is not None:
                cells.append(marked)
            elif bar is None:
                cells.append((" ", None))
            else:
                cells.append((_BLOCKS[min(max(bar - base, 0), 8)], self.style))
        return cells

    def _mark(
        self, col: tuple[float, float, str], row: int, height: int
    ) -> tuple[str, Style | None] | None:
        mark = col[2]
        if mark == "nan" and row == height - 1:
            return ("×", self.mark_style)
        if mark == "+inf" and row == 0:
            return ("▲", self.mark_style)
        if mark == "-inf" and row == height - 1:
            return ("▼", self.mark_style)
        if mark and math.isnan(col[1]):
            return (" ", None)
        return None

    @staticmethod
    def _row(cells: Sequence[tuple[str, Style | None] | None], width: int) -> RenderResult:
        """One line of cells, padded to ``width``."""
        yield from joined_segments(cell if cell is not None else (" ", None) for cell in cells)
        if len(cells) < width:
            yield Segment(" " * (width - len(cells)))
        yield Segment.line()


def _bars(
    cols: list[tuple[float, float, str]], finite: list[tuple[float, float, str]], levels: int
) -> list[int | None]:
    """Each column's bar height in ``levels`` steps, scaled to the finite columns (None:
    no finite value). Bars reach the column's maximum; the band below its minimum is
    solid."""
    low = min(c[0] for c in finite) / 2  # halved: -1e308..1e308 must not overflow
    high = max(c[1] for c in finite) / 2
    span = high - low
    return [
        None
        if math.isnan(col[1])
        else (levels // 2 if span == 0 else 1 + round((col[1] / 2 - low) / span * (levels - 1)))
        for col in cols
    ]


def _column_text(bar: int | None, height: int) -> str:
    """A column ``height`` rows tall, top first: blank above a bar ``bar`` eighths of a
    row high (None: no bar)."""
    if bar is None:
        return " " * height
    full, part = divmod(min(max(bar, 0), height * 8), 8)
    top = _BLOCKS[part] if part else ""
    return " " * (height - full - len(top)) + top + "█" * full


def joined_segments(cells: Iterable[tuple[str, Style | None]]) -> Iterator[Segment]:
    """Cells as segments, neighbours of one style joined: far fewer for Rich to handle."""
    run: list[str] = []
    run_style: Style | None = None
    for text, style in cells:
        if style is not run_style and run:
            yield Segment("".join(run), run_style)
            run = []
        run.append(text)
        run_style = style
    if run:
        yield Segment("".join(run), run_style)
