"""The Braille line chart and smoothing, rendered to a StringIO console."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.test_state import fed, hello, metrics
from tests.test_view import screen, text
from trainmon.controls.reducer import next_smoothing
from trainmon.view import ViewOptions
from trainmon.view.chart import Line, LineChart, Point, ema, y_range


def chart(points: list[Point], width: int = 40, height: int = 6, **options: object) -> str:
    return text(LineChart([Line(points)], height=height, **options), width, height)  # type: ignore[arg-type]


def raw(values: list[float]) -> list[Point]:
    return [Point(i, v, v, v) for i, v in enumerate(values)]


def test_ema_is_debiased_like_tensorboard() -> None:
    """The first smoothed value is the first value; weight 0 is no smoothing."""
    values = [4.0, 2.0, 0.0]
    assert ema(values, 0.0) == values
    smooth = ema(values, 0.6)
    assert smooth[0] == 4.0
    assert math.isclose(smooth[1], (0.6 * 0.4 * 4 + 0.4 * 2) / (1 - 0.36))
    assert math.isnan(ema([1.0, math.nan, 1.0], 0.5)[1])


def test_y_range_ignores_outliers_when_asked() -> None:
    """A huge first loss does not flatten the curve with the robust range."""
    values = [1000.0] + [1.0 + i / 100 for i in range(100)]
    assert y_range(values) == (1.0, 1000.0)
    low, high = y_range(values, robust=True) or (0, 0)
    assert low >= 1.0 and high < 2.0
    assert y_range([math.nan]) is None
    assert y_range([10.0, 1000.0], log=True) == (1.0, 3.0)


def test_chart_axes_and_shape() -> None:
    """A falling line starts top-left and ends bottom-right, with labelled axes."""
    out = chart(raw([float(10 - i) for i in range(11)]))
    lines = out.splitlines()
    assert len(lines) == 6
    assert lines[0].lstrip().startswith("10.0 ┤") and "└0" in lines[-1] and "10" in lines[-1]
    plot = [line.split("┤")[-1].split("│")[-1] for line in lines[:-1]]
    assert plot[0].strip() and plot[0].index(plot[0].strip()[0]) < 3  # starts at the top left
    assert plot[-1].rstrip()[-1] != " "  # ends at the bottom right


def test_chart_marks_nan_and_inf() -> None:
    """NaN and infinities are marked on the bottom row, not dropped silently."""
    out = chart(raw([1.0, 2.0, math.nan, 3.0, math.inf, 2.0]))
    bottom = out.splitlines()[-2]
    assert "×" in bottom and "▲" in bottom


def test_chart_band_from_downsampled_buckets() -> None:
    """A bucket's min-max range is drawn: a spike inside a bucket still shows."""
    points = [Point(0, 1.0, 1.0, 1.0), Point(10, 1.0, 0.5, 9.0), Point(20, 1.0, 1.0, 1.0)]
    out = chart(points)
    assert out.splitlines()[0].lstrip().startswith("9.00 ┤")


def test_chart_empty_and_single_point() -> None:
    """No points: blank rows; one point: a dot, no division by zero."""
    assert chart([]).strip() == ""
    assert "⠀" not in chart(raw([5.0]))  # a real dot, not an empty Braille cell
    assert any(ch not in " │┤└0123456789.-" for ch in chart(raw([5.0])))


def test_dashboard_chart_mode() -> None:
    """In chart mode the main panel charts the whole run with its smoothed line."""
    state = fed(hello(), *(metrics(i, loss=1.0 / i) for i in range(1, 300)))
    out = screen(state, ViewOptions(chart=True, smoothing=0.6), width=100, height=30)
    assert "loss · 299 steps · smoothed 0.60" in out
    assert "┤" in out and "└0" in out
    plain = screen(state, ViewOptions(chart=False), width=100, height=30)
    assert "loss · last 100" in plain


def test_smoothing_cycle() -> None:
    """The s key walks through off and the usual weights, then wraps."""
    seen = [0.6]
    for _ in range(6):
        seen.append(next_smoothing(seen[-1]))
    assert seen == [0.6, 0.8, 0.9, 0.95, 0.99, 0.0, 0.6]


def test_smoothed_line_kept_between_frames_equals_a_fresh_one() -> None:
    """The dashboard extends its cached EMA with new points; it must equal the EMA of
    the whole series computed afresh, across NaNs, evictions and late points."""
    import math

    from trainmon.state import Series
    from trainmon.view.chart import ema
    from trainmon.view.lines import _smoothed

    series = Series(window=64)
    step = 0
    for frame in range(60):
        for _ in range(frame % 7 + 1):
            value = 1.0 / (step + 1) if step % 37 else math.nan
            series.add(step, value)
            step += 1
        if frame == 40:
            series.add(step - 5, 0.5)  # a late point
        cached = _smoothed(series, 0.9)
        older = series.older.columns()
        fresh = ema(older.lasts + series.vals, 0.9)
        assert list(cached.steps) == older.steps + series.steps
        assert [repr(round(v, 12)) for v in cached.values] == [repr(round(v, 12)) for v in fresh]


@pytest.mark.parametrize(
    ("values", "log"),
    [
        ([5e-324], False),
        ([0.0, 5e-324], False),  # half the span underflows to 0
        ([1.7e308], False),
        ([-1.7e308, 1.7e308], False),
        ([1e308, 1.7e308], True),  # past the top of a log axis
        ([5e-324, 1e-323, 2e-323, 4e-323], True),  # subnormals: below 10**-308
        ([5e-324], True),
    ],
)
def test_y_range_always_has_a_drawable_span(values: list[float], log: bool) -> None:
    """At the ends of the floats the y range still goes up and its half-span is not 0
    (the chart divides by it), and every value that can be drawn lies inside it."""
    found = y_range(values, log=log)
    assert found is not None
    low, high = found
    assert low < high and high / 2 - low / 2 > 0
    if log:
        assert all(low <= math.log10(v) <= high for v in values if v < 10**308)
    else:
        assert all(low <= v <= high for v in values)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.floats(-1e300, 1e300), min_size=1, max_size=300),
    st.integers(0, 200),
    st.booleans(),
    st.booleans(),
)
def test_a_line_said_finite_draws_as_one_looked_at(
    values: list[float], split: int, band: bool, log: bool
) -> None:
    """``Line.finite`` only skips looking for NaN and infinities (the dashboard sets it
    for a series that never had one): the drawing is the same."""
    steps = list(range(0, 3 * len(values), 3))
    split = min(split, len(values))
    lows = [v - abs(v) * 0.1 - 1 for v in values[:split]]
    highs = [v + abs(v) * 0.1 + 1 for v in values[:split]]
    buckets = (steps[:split], values[:split], lows, highs, [""] * split) if split else None
    drawn = [
        text(
            LineChart(
                [
                    Line(
                        (),
                        band=band,
                        steps=steps[split:],
                        values=values[split:],
                        buckets=buckets,
                        finite=finite,
                    )
                ],
                height=12,
                log=log,
            ),
            width=70,
        )
        for finite in (False, True)
    ]
    assert drawn[0] == drawn[1]
