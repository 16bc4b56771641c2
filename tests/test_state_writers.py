"""The state's objects take no attribute they do not declare, and its writers are named."""

from __future__ import annotations

import math

import pytest

from trainmon.names import mark_of
from trainmon.state import Alert, AlertWatch, RunState
from trainmon_client.protocol import Columns, Record


def _state() -> RunState:
    state = RunState()
    state.apply(Record("hello", "r", "w", 0, 1.0, info={"rank": 0}), 1.0)
    state.apply(Record("metrics", "r", "w", 1, 1.0, step=0, metrics={"loss": 1.0}), 1.0)
    return state


def test_a_stray_write_fails_loudly() -> None:
    """Series, Worker, Run and RunState (and a series' history and buckets) have slots:
    writing an attribute they do not declare (say a view keeping its own things in the
    state) raises, where a plain object would take it silently."""
    state = _state()
    run = state.runs["r"]
    worker = run.workers["w"]
    series = worker.series["loss"]
    for thing in (series, series.older, worker, run, state):
        with pytest.raises(AttributeError):
            thing.drawn = {}  # type: ignore[union-attr]
        assert not hasattr(thing, "drawn")
    series.older.fold()
    with pytest.raises(AttributeError):
        series.history()[0].drawn = {}  # type: ignore[attr-defined]


def test_the_writers_cannot_be_replaced_on_a_state() -> None:
    """Not even apply can be swapped on a state (a test that wants to see what a source
    delivers feeds it a sink that wraps the state: tests.helpers.NotingSink)."""
    state = _state()
    with pytest.raises(AttributeError):
        state.apply = lambda record, now: True  # type: ignore[method-assign]
    columns = Columns("r", "w", 2, [2.0, 2.0], [1, 0], [None, None], {"loss": [1.0, 2.0]})
    assert state.apply_columns(columns, 2.0) == 2  # steps going back: one by one
    assert state.runs["r"].records == 4  # hello, 3 metrics


def test_alerts_reach_the_state_through_note_alerts() -> None:
    """The alert watch hands what it finds to RunState.note_alerts, which keeps the
    newest 200."""
    state = _state()
    state.apply(Record("metrics", "r", "w", 2, 2.0, step=1, metrics={"loss": math.nan}), 2.0)
    new = AlertWatch().check(state, 2.0, 60.0)
    assert [a.kind for a in new] == ["nan"] and state.alerts == new
    state.note_alerts([Alert(3.0, "r", "client", str(i)) for i in range(300)])
    assert len(state.alerts) == 200 and state.alerts[-1].text == "299"


@pytest.mark.parametrize(
    ("value", "mark"),
    [
        (1.0, ""),
        (-0.0, ""),
        (1e308, ""),
        (math.nan, "nan"),
        (math.inf, "+inf"),
        (-math.inf, "-inf"),
    ],
)
def test_mark_of(value: float, mark: str) -> None:
    """One spelling of how a value that cannot be drawn is marked."""
    assert mark_of(value) == mark
