"""A line chart drawn in Braille dots (2 x 4 per cell), with a y-axis and a step axis.

Downsampled history is drawn honestly: each bucket's min-max range as a dim band and
its last value on the line, so nothing is sampled away. NaN and ±Inf are marked in red
on the bottom row rather than hidden. The y-range comes from the finite values, and
can ignore outliers (5th-95th percentile) or be logarithmic.
"""

from __future__ import annotations

import itertools
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, NamedTuple

from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.style import Style

from trainmon.view.fold import fold_line
from trainmon.view.theme import resolve

__all__ = ["Line", "LineChart", "Point", "ema", "ema_extend", "y_range"]

_LABEL_WIDTH = 8  # y-axis labels are at most this wide (see _short)
_DOTS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))  # [row][column] bits
# _RUNS[column][first][last]: the bits of dot rows first..last in one cell's column
_RUNS = tuple(
    tuple(
        tuple(sum(_DOTS[r][half] for r in range(first, last + 1)) for last in range(4))
        for first in range(4)
    )
    for half in range(2)
)


class Point(NamedTuple):
    """One x position: a value, and the range it stands for (equal for a raw point)."""

    x: float
    y: float
    low: float
    high: float


@dataclass(frozen=True, slots=True)
class Line:
    """A series to draw, with its style; ``band`` draws each point's low-high range.

    ``points`` are (x, y, low, high) in x order; ``steps`` and ``values`` are raw points
    after them, as two sorted columns, folded per pixel column with C-level slices (a
    series' recent window goes here without being copied into tuples).
    """

    points: Sequence[Point | tuple[float, float, float, float]]  # (x, y, low, high)
    style: str = "tm.line"
    band: bool = True
    steps: Sequence[int] = ()
    values: Sequence[float] = ()
    label: str = ""
    # downsampled history before everything else: steps, last values, lows, highs, marks
    buckets: (
        tuple[Sequence[int], Sequence[float], Sequence[float], Sequence[float], Sequence[str]]
        | None
    ) = None
    finite: bool = False  # no value in ``steps``/``buckets`` is NaN or infinite: not looked for

    @property
    def first_x(self) -> float | None:
        if self.buckets and self.buckets[0]:
            return self.buckets[0][0]
        if self.points:
            return self.points[0][0]
        return self.steps[0] if self.steps else None

    @property
    def last_x(self) -> float | None:
        if self.steps:
            return self.steps[-1]
        if self.points:
            return self.points[-1][0]
        return self.buckets[0][-1] if self.buckets and self.buckets[0] else None

    @property
    def empty(self) -> bool:
        return not (self.points or self.steps or (self.buckets and self.buckets[0]))


def ema(values: Sequence[float], weight: float) -> list[float]:
    """TensorBoard's smoothing: a debiased exponential moving average (NaN passes through)."""
    return ema_extend(values, weight, 0.0, 0)[0]


def ema_extend(
    values: Sequence[float], weight: float, last: float, count: int
) -> tuple[list[float], float, int]:
    """:func:`ema` of ``values`` continuing from an earlier run's state: ``last`` is its
    running (not yet debiased) average and ``count`` the finite values it took in.
    Returns the smoothed values and the new state."""
    if weight >= 1:
        return list(values), last, count
    if not values:
        return [], last, count
    if not math.isfinite(sum(values)):
        out: list[float] = []
        for value in values:
            if not math.isfinite(value):
                out.append(value)
                continue
            last = last * weight + (1 - weight) * value
            count += 1
            out.append(last / (1 - weight**count))
        return out, last, count
    keep = 1 - weight
    # the running average in C-level steps, then the first values debiased
    out = list(
        itertools.accumulate(values, lambda acc, value: acc * weight + keep * value, initial=last)
    )[1:]
    power = weight**count if count < 4000 else 0.0
    for index in range(len(out)):
        power *= weight
        if power < 1e-16:
            break
        out[index] = out[index] / (1 - power)
    return out, out[-1] * (1 - power) if power >= 1e-16 else out[-1], count + len(out)


_LOG_MIN: Final = math.log10(5e-324)  # the smallest positive float, on a log axis


def y_range(
    values: Sequence[float], robust: bool = False, log: bool = False
) -> tuple[float, float] | None:
    """The finite (positive, for log) values' range; with ``robust``, 5th-95th percentile."""
    finite = [v for v in values if -math.inf < v < math.inf and (v > 0 or not log)]
    if not finite:
        return None
    if robust and len(finite) >= 20:
        finite.sort()
        low, high = finite[len(finite) * 5 // 100], finite[(len(finite) * 95 - 1) // 100]
    else:
        low, high = min(finite), max(finite)
    if log:
        low, high = math.log10(low), math.log10(high)
    if not high / 2 - low / 2 > 0:  # one value, or a span so small its half is 0 (5e-324)
        pad = abs(high) * 0.05 or 1.0
        low, high = low - pad, high + pad
    # within the floats either way (a pad past 1.8e308, or 10**308.3, would overflow; on a
    # log axis the smallest positive float is 10**-323.3)
    bottom, top = (_LOG_MIN, 308.0) if log else (-sys.float_info.max, sys.float_info.max)
    low, high = max(low, bottom), min(high, top)
    if not high / 2 - low / 2 > 0:  # cut to nothing at an end: a unit (or decade) inside it
        if high >= top:
            low = top - (1.0 if log else top / 2)
        else:
            high = bottom + (1.0 if log else top / 2)
    return low, high


class _Canvas:
    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.bits = [[0] * width for _ in range(height)]
        self.styles: list[list[Style | None]] = [[None] * width for _ in range(height)]
        self.marks: dict[int, Style] = {}

    def dot(self, px: int, py: int, style: Style) -> None:
        if 0 <= px < self.width * 2 and 0 <= py < self.height * 4:
            row, col = py // 4, px // 2
            self.bits[row][col] |= _DOTS[py % 4][px % 2]
            self.styles[row][col] = style

    def vline(self, px: int, py0: int, py1: int, style: Style) -> None:
        """Dots from ``py0`` to ``py1`` in pixel column ``px``, a cell at a time."""
        if not 0 <= px < self.width * 2:
            return
        if py0 > py1:
            py0, py1 = py1, py0
        top = py0 if py0 > 0 else 0
        bottom = py1 if py1 < self.height * 4 else self.height * 4 - 1
        col, masks = px // 2, _RUNS[px % 2]
        bits, styles = self.bits, self.styles
        py = top
        while py <= bottom:
            row = py >> 2
            last = row * 4 + 3
            if last > bottom:
                last = bottom
            bits[row][col] |= masks[py & 3][last & 3]
            styles[row][col] = style
            py = last + 1

    def line(self, x0: int, y0: int, x1: int, y1: int, style: Style) -> None:
        if abs(x1 - x0) <= 1:  # neighbouring columns: two vertical runs meeting halfway
            middle = (y0 + y1) // 2
            self.vline(x0, y0, middle, style)
            self.vline(x1, middle if y1 >= y0 else middle + 1, y1, style)
            return
        steps = max(abs(x1 - x0), abs(y1 - y0), 1)
        for i in range(steps + 1):
            self.dot(round(x0 + (x1 - x0) * i / steps), round(y0 + (y1 - y0) * i / steps), style)


class LineChart:
    """Lines over a shared x-range, with y-axis labels on the left and steps below.

    Args:
        lines: drawn in order (later ones on top).
        height: rows, including the step axis; None fills the space given.
        x_range: the steps shown; None fits all points.
        robust: ignore outliers when scaling y (5th-95th percentile).
        log: logarithmic y (non-positive values are left out).
    """

    def __init__(
        self,
        lines: Sequence[Line],
        *,
        height: int | None = None,
        x_range: tuple[float, float] | None = None,
        robust: bool = False,
        log: bool = False,
        mark_style: str = "tm.mark",
        axis_style: str = "tm.axis",
        x_per_s: int = 0,
    ):
        self.lines = lines
        self.height = height
        self.x_range = x_range
        self.robust = robust
        self.log = log
        self.mark_style = mark_style
        self.axis_style = axis_style
        self.x_per_s = x_per_s  # x is a time in 1/x_per_s seconds, labelled "12.5 s"; 0: steps

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        height = max(self.height or options.height or 8, 3)
        width = options.max_width
        lines = [line for line in self.lines if not line.empty]
        if not lines:
            for _ in range(height):
                yield Segment(" " * width)
                yield Segment.line()
            return
        axis_style = resolve(console, self.axis_style)
        mark_style = resolve(console, self.mark_style)
        x0, x1 = self.x_range or _x_span(lines)
        label_width = _LABEL_WIDTH + 1
        plot_width = max(width - label_width - 1, 4)
        folded = [(line, fold_line(line, x0, x1, plot_width * 2)) for line in lines]
        values = [v for _, columns in folded for _, column in columns for v in column[:3]]
        yr = y_range(values, self.robust, self.log)
        labels = _y_labels(yr, height - 1, self.log)
        canvas = _Canvas(plot_width, height - 1)
        marked: dict[int, str] = {}
        if yr is not None:
            self._draw(console, canvas, folded, yr, marked)
        for row in range(height - 1):
            yield Segment(labels[row].rjust(label_width - 1) + " ", axis_style)
            yield Segment("┤" if labels[row].strip() else "│", axis_style)
            yield from _row_segments(canvas, row, marked if row == height - 2 else {}, mark_style)
            yield Segment.line()
        left, right = _x_label(x0, self.x_per_s), _x_label(x1, self.x_per_s)
        gap = max(plot_width - len(left) - len(right), 1)
        yield Segment(" " * label_width + "└" + left + " " * gap + right, axis_style)
        yield Segment.line()

    def _draw(
        self,
        console: Console,
        canvas: _Canvas,
        folded: list[tuple[Line, list[tuple[int, tuple[float, float, float, str]]]]],
        yr: tuple[float, float],
        marked: dict[int, str],
    ) -> None:
        """Each line's points and bands on ``canvas``; marks of non-finite values go
        into ``marked`` by cell column."""
        lo, hi = yr
        # Halved, so that a range from -1e308 to 1e308 does not overflow to inf.
        half_lo, half_span = lo / 2, hi / 2 - lo / 2
        if not half_span > 0:  # y_range never gives this; a division by 0 must never happen
            half_span = 1.0
        top_px = canvas.height * 4 - 1
        for line, columns in folded:
            style = resolve(console, line.style)
            rows = _pixels([c[0] for _, c in columns], self.log, half_lo, half_span, top_px)
            bands = None
            if line.band:
                bands = (
                    _pixels([c[1] for _, c in columns], self.log, half_lo, half_span, top_px),
                    _pixels([c[2] for _, c in columns], self.log, half_lo, half_span, top_px),
                )
            _draw_line(canvas, columns, rows, bands, style, marked)


def _x_span(lines: list[Line]) -> tuple[float, float]:
    """The steps from the first point of any line to the last (points come in x order)."""
    return (
        min(x for line in lines if (x := line.first_x) is not None),
        max(x for line in lines if (x := line.last_x) is not None),
    )


def _pixels(
    ys: list[float], log: bool, half_lo: float, half_span: float, top_px: int
) -> list[int | None]:
    """Each value's pixel row (None for one not drawn), in one comprehension: a function
    call per value cost a fifth of a frame with 8 lines. ``half_lo`` and ``half_span``
    are the y range's bottom and span, halved."""
    inf = math.inf
    if log:
        log10, nan = math.log10, math.nan
        ys = [log10(y) if y > 0 else nan for y in ys]
    return [
        round((1 - min(max((y / 2 - half_lo) / half_span, 0.0), 1.0)) * top_px)
        if -inf < y < inf
        else None
        for y in ys
    ]


def _draw_line(
    canvas: _Canvas,
    columns: list[tuple[int, tuple[float, float, float, str]]],
    rows: list[int | None],
    bands: tuple[list[int | None], list[int | None]] | None,
    style: Style,
    marked: dict[int, str],
) -> None:
    """One line's pixel columns: its band (``bands``: low and high rows, None for no
    band) dim under it, then the point joined to the one before it."""
    band_style = style + Style(dim=True)
    vline, line_to, dot = canvas.vline, canvas.line, canvas.dot
    last_px = last_py = -1  # the previous drawn point, -1 if none
    for index, (px, (_, low, high, mark)) in enumerate(columns):
        if mark:
            marked[px // 2] = mark
        if bands is not None and low < high:
            top, bottom = bands[1][index], bands[0][index]
            if top is not None and bottom is not None:
                vline(px, top, bottom, band_style)
        py = rows[index]
        if py is None:
            last_px = -1
            continue
        if last_px < 0:
            dot(px, py, style)
        elif px - last_px <= 1:  # neighbours (most columns): as line() does it
            middle = (last_py + py) // 2
            vline(last_px, last_py, middle, style)
            vline(px, middle if py >= last_py else middle + 1, py, style)
        else:
            line_to(last_px, last_py, px, py, style)
        last_px, last_py = px, py


def _row_segments(
    canvas: _Canvas, row: int, marks: dict[int, str], mark_style: Style
) -> RenderResult:
    """One row of the canvas as few segments: a blank cell joins whatever run it is in
    (a space shows no colour), so segments change only where dots change style."""
    bits, styles = canvas.bits[row], canvas.styles[row]
    text: list[str] = []
    style: Style | None = None
    cell_style: Style | None
    dotted = False  # the run so far has more than blanks
    for col in range(canvas.width):
        if col in marks:
            char, cell_style = marks[col], mark_style
        else:
            dots = bits[col]
            if not dots:
                text.append(" ")
                continue
            char, cell_style = chr(0x2800 + dots), styles[col]
        if cell_style is not style and dotted:
            yield Segment("".join(text), style)
            text = []
        style, dotted = cell_style, True
        text.append(char)
    if text:
        yield Segment("".join(text), style)


def _y_labels(yr: tuple[float, float] | None, rows: int, log: bool) -> list[str]:
    """Labels for the top, middle and bottom rows; blanks elsewhere."""
    labels = [""] * rows
    if yr is None or rows < 1:
        return [label or " " for label in labels]
    lo, hi = yr
    shown: set[str] = set()
    for row in sorted({0, rows // 2, rows - 1}):
        share = row / max(rows - 1, 1)
        value = hi - share * hi + share * lo  # (hi - lo) itself may overflow
        label = _short(10**value if log else value)
        if label not in shown:  # a narrow range would repeat itself at this precision
            labels[row] = label
            shown.add(label)
    return [label or " " for label in labels]


def _short(value: float) -> str:
    magnitude = abs(value)
    if value == 0:
        return "0"
    if 1e-3 <= magnitude < 1e4:
        return f"{value:.{max(0, 2 - math.floor(math.log10(magnitude)))}f}"[:_LABEL_WIDTH]
    return f"{value:.1e}"


def _x_label(x: float, per_s: int) -> str:
    """A step, or with ``per_s`` a time in seconds."""
    return f"{x / per_s:,.1f} s" if per_s else f"{int(x):,}"
