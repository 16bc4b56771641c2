"""Points folded into pixel columns: each column's last value, finite low and high, and
any NaN or infinity mark, so drawing costs one step per column however many points
there are."""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from trainmon.names import mark_of

if TYPE_CHECKING:
    from trainmon.view.chart import Line, Point

__all__ = ["fold_line"]


def fold_line(
    line: Line, x0: float, x1: float, px_width: int
) -> list[tuple[int, tuple[float, float, float, str]]]:
    """A line's points gathered per pixel column: last value, finite low and high, any
    mark. However many points there are, drawing costs one step per pixel column."""
    columns: dict[int, list[Any]] = {}
    finite = line.finite
    if line.buckets:
        _fold_columns(*line.buckets, x0, x1, px_width, columns, finite)
    _fold_points(line.points, x0, x1, px_width, columns)
    if line.steps:
        values = line.values
        _fold_columns(line.steps, values, values, values, None, x0, x1, px_width, columns, finite)
    out = []
    for px in sorted(columns):
        y, low, high, mark = columns[px]
        if low > high:  # no finite value in the column
            low = high = y
        out.append((px, (y, low, high, mark)))
    return out


def _column(columns: dict[int, list[Any]], px: int, y: float) -> list[Any]:
    """Pixel column ``px`` as [last y, low, high, mark], its last value now ``y``."""
    column = columns.get(px)
    if column is None:
        column = columns[px] = [y, math.inf, -math.inf, ""]
    else:
        column[0] = y
    return column


def _pixel_runs(
    steps: Sequence[int], x0: float, x1: float, px_width: int
) -> Iterator[tuple[int, int, int]]:
    """(pixel column, start, end): the slices of sorted ``steps`` within [x0, x1] that
    fall in each pixel column, found by bisection."""
    start = bisect.bisect_left(steps, x0)
    stop = bisect.bisect_right(steps, x1)
    scale = (px_width - 1) / (x1 - x0) if x1 > x0 else 0.0
    while start < stop:
        px = round((steps[start] - x0) * scale)
        end = (
            stop if scale == 0 else bisect.bisect_left(steps, x0 + (px + 0.5) / scale, start, stop)
        )
        end = max(end, start + 1)
        yield px, start, end
        start = end


_MARKS = {"nan": "×", "+inf": "▲", "-inf": "▼"}


def _fold_columns(
    steps: Sequence[int],
    lasts: Sequence[float],
    lows: Sequence[float],
    highs: Sequence[float],
    marks: Sequence[str] | None,
    x0: float,
    x1: float,
    px_width: int,
    columns: dict[int, list[Any]],
    finite: bool = False,
) -> None:
    """Points given as columns in step order, a pixel column at a time: bisect, then
    C-level min/max. Downsampled buckets bring their lows, highs and marks; raw points
    are buckets of one (``lasts``, ``lows`` and ``highs`` the same list, no ``marks``:
    a NaN or infinity is its own mark). ``finite``: no NaN or infinity to look for."""
    inf = math.inf
    raw = marks is None
    if finite:
        marks = None  # all blank
    for px, start, end in _pixel_runs(steps, x0, x1, px_width):
        y = lasts[end - 1]
        column = _column(columns, px, y)
        low_chunk = lows[start:end]
        high_chunk = low_chunk if raw else highs[start:end]
        if finite:
            total = 0.0
        elif raw:
            total = sum(low_chunk)
        else:
            total = sum(low_chunk) + sum(high_chunk)
        if -inf < total < inf:
            low, high = min(low_chunk), max(high_chunk)
            if low < column[1]:
                column[1] = low
            if high > column[2]:
                column[2] = high
        else:  # NaN or an infinity inside (a bucket with no finite value has NaN bounds)
            _fold_nonfinite(column, low_chunk, high_chunk, raw)
        if marks is not None and not column[3]:
            column[3] = _first_mark(marks[start:end], y)


def _fold_nonfinite(
    column: list[Any], lows: Sequence[float], highs: Sequence[float], raw: bool
) -> None:
    """Lows and highs with a NaN or an infinity among them, one by one into ``column``:
    the finite ones widen its range, and a raw point that is not finite marks it."""
    inf = math.inf
    for low, high in zip(lows, highs, strict=True):
        if -inf < low < inf:
            if low < column[1]:
                column[1] = low
        elif raw and not column[3]:
            column[3] = _mark_of(low)
        if -inf < high < inf and high > column[2]:
            column[2] = high


def _first_mark(marks: Sequence[str], y: float) -> str:
    """The mark of the first marked bucket, else of a last value that is not finite."""
    for mark in marks:
        if mark:
            return _MARKS[mark]
    return "" if -math.inf < y < math.inf else _mark_of(y)


def _mark_of(value: float) -> str:
    """How a non-finite value is marked on the bottom row."""
    return _MARKS[mark_of(value)]


def _fold_points(
    points: Sequence[Point | tuple[float, float, float, float]],
    x0: float,
    x1: float,
    px_width: int,
    columns: dict[int, list[Any]],
) -> None:
    scale = (px_width - 1) / (x1 - x0) if x1 > x0 else 0.0
    inf = math.inf
    for x, y, low, high in points:
        if not x0 <= x <= x1:
            continue
        column = _column(columns, round((x - x0) * scale), y)
        if -inf < y < inf:
            if low < column[1]:
                column[1] = low
            if high > column[2]:
                column[2] = high
        elif not column[3]:
            column[3] = _mark_of(y)
