"""Runs drawn together: which runs are overlaid on the shown one and in what style, the
difference of the main metric between two runs; and what the view keeps beside a state
for that: the seconds-aligned twin ``trainmon compare`` makes for the x axis in seconds
(key t), and the past runs ``watch --compare`` loads from disk.

The past runs are kept in a state of their own, not in the live one: the live state
then holds what was received and nothing else, so a past run is never the one shown
for being there first, never counted as received in the summary, and never makes
``--exit-when-done`` think everything has ended before the live run has begun."""

from __future__ import annotations

import math
from collections.abc import Sequence

from trainmon.state import Run, RunState
from trainmon.view.cache import DrawCache
from trainmon.view.format import format_difference
from trainmon.view.options import ViewOptions
from trainmon.view.shown import metric_source

__all__ = [
    "OVERLAY_STYLES",
    "TICKS_PER_S",
    "Points",
    "difference",
    "difference_text",
    "elapsed_state",
    "keep_elapsed",
    "keep_exact",
    "keep_past",
    "overlaid",
    "overlay_colour",
    "past_state",
]

# The styles of the runs overlaid, in turn, and the colour each has in the dark theme
# (the chart's title names it, as a legend).
OVERLAY_STYLES = ("tm.overlay", "tm.overlay2", "tm.overlay3", "tm.overlay4")
_COLOURS = ("magenta", "green", "blue", "red")
TICKS_PER_S = 10  # the seconds twin's "steps" are tenths of a second since the first record

_SEARCHED = 4096  # points looked back through for a step both runs have, at most
_ELAPSED = DrawCache(16)  # state -> its twin with steps as tenths of seconds
_PAST = DrawCache(16)  # state -> the past runs drawn under its runs
_EXACT = DrawCache(16)  # state -> every point of its runs' metrics (see keep_exact)

# (run, worker, metric) -> the steps and values of every point, in step order
Points = dict[tuple[str, str, str], tuple[Sequence[int], Sequence[float]]]


def overlaid(state: RunState, run: Run, opts: ViewOptions) -> list[Run]:
    """The runs drawn under ``run``: the one the o key picked, then those compared,
    each once, leaving out ``run`` itself and runs neither the state nor its past runs
    (:func:`keep_past`) hold."""
    names = ([opts.overlay] if opts.overlay is not None else []) + list(opts.compared)
    past = past_state(state)
    found: list[Run] = []
    for name in dict.fromkeys(names):
        other = state.runs.get(name)
        if other is None and past is not None:
            other = past.runs.get(name)
        if other is not None and other is not run:
            found.append(other)
    return found


def overlay_colour(index: int) -> tuple[str, str]:
    """The style of the ``index``-th run overlaid, and its colour's name."""
    turn = index % len(OVERLAY_STYLES)
    return OVERLAY_STYLES[turn], _COLOURS[turn]


def _columns(
    run: Run, name: str, states: Sequence[RunState]
) -> tuple[Sequence[int], Sequence[float]] | None:
    """Every step of metric ``name`` of ``run`` and its value: all the points where
    they were kept beside one of ``states`` (:func:`keep_exact`), else the downsampled
    history (each bucket's last point) then the window."""
    found = metric_source(run, name)
    if found is None:
        return None
    series, worker = found
    for state in states:
        points = _EXACT.get(state)
        if isinstance(points, dict) and (run.name, worker.id, name) in points:
            exact: tuple[Sequence[int], Sequence[float]] = points[run.name, worker.id, name]
            return exact
    older = series.older.columns()
    return older.steps + series.steps, older.lasts + series.vals


def difference(
    run: Run, other: Run, name: str, state: RunState | None = None
) -> tuple[float, int, int] | None:
    """Metric ``name`` of ``run`` minus that of ``other`` at the latest step both have,
    and that step (twice); where they share no step, at the points of each at or
    before the last step both reach, and their two steps. None when either lacks the
    metric or a finite value there, or when one run starts after the other ends.

    A run's points older than its window are only in buckets (a step every few
    dozen or thousand): the points kept beside ``state`` or its past runs
    (:func:`keep_exact`, a run read from disk) give the step itself."""
    found = _compared(run, other, name, state)
    if found is None:
        return None
    mine, theirs, step, their_step = found
    return mine - theirs, step, their_step


def _compared(
    run: Run, other: Run, name: str, state: RunState | None
) -> tuple[float, float, int, int] | None:
    """The two values :func:`difference` takes apart, and their steps."""
    states = [] if state is None else [state]
    past = past_state(state) if state is not None else None
    if past is not None:
        states.append(past)
    mine, theirs = _columns(run, name, states), _columns(other, name, states)
    if mine is None or theirs is None or not mine[0] or not theirs[0]:
        return None
    (steps_a, vals_a), (steps_b, vals_b) = mine, theirs
    reach = min(steps_a[-1], steps_b[-1])
    i, j = _at_or_before(steps_a, reach), _at_or_before(steps_b, reach)
    if i < 0 or j < 0:
        return None  # one run starts after the other ends: no step to compare them at
    nearest = (i, j)
    stop = max(i + j - _SEARCHED, -1)  # (a frame's worth: runs with no step in common)
    while i >= 0 and j >= 0 and i + j > stop:  # back from the reach to a step both have
        if steps_a[i] == steps_b[j] and math.isfinite(vals_a[i] - vals_b[j]):
            nearest = (i, j)
            break
        if steps_a[i] > steps_b[j]:
            i -= 1
        else:
            j -= 1
    i, j = nearest
    if not math.isfinite(vals_a[i] - vals_b[j]):
        return None
    return vals_a[i], vals_b[j], steps_a[i], steps_b[j]


def _at_or_before(steps: Sequence[int], step: int) -> int:
    """The index of the last of ``steps`` (in order) at or before ``step``; -1 if none."""
    low, high = 0, len(steps)
    while low < high:
        middle = (low + high) // 2
        if steps[middle] <= step:
            low = middle + 1
        else:
            high = middle
    return low - 1


def difference_text(run: Run, other: Run, name: str, state: RunState | None = None) -> str:
    """The difference in words: ``-0.042 at step 1,200`` (shown run minus ``other``);
    an accuracy's in percentage points, as accuracies are shown in percent:
    ``+4.69 pp at step 1,200``."""
    found = _compared(run, other, name, state)
    if found is None:
        return "–"
    mine, theirs, step, their_step = found
    where = f"step {step:,}" if step == their_step else f"steps {step:,} / {their_step:,}"
    return f"{format_difference(name, mine, theirs)} at {where}"


def keep_elapsed(state: RunState, twin: RunState) -> None:
    """Keep ``twin`` (the same records, each step the tenths of a second since its
    run's first record) as the state the chart draws from when the x axis is seconds."""
    _ELAPSED.put(state, twin)


def elapsed_state(state: RunState) -> RunState | None:
    """The seconds twin kept for ``state``, if any."""
    twin = _ELAPSED.get(state)
    return twin if isinstance(twin, RunState) else None


def keep_exact(state: RunState, points: Points) -> None:
    """Keep every point of the runs ``state`` holds (runs read from disk, which grow
    no more): :func:`difference` finds the step both runs have in them, where the
    state keeps only buckets of the points older than its window."""
    _EXACT.put(state, points)


def keep_past(state: RunState, past: RunState) -> None:
    """Keep ``past`` (runs loaded from disk) beside ``state``: its runs can be drawn
    under ``state``'s as if they were there (``ViewOptions.compared``)."""
    _PAST.put(state, past)


def past_state(state: RunState) -> RunState | None:
    """The past runs kept beside ``state``, if any."""
    past = _PAST.get(state)
    return past if isinstance(past, RunState) else None
