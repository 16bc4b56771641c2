"""The column form of a batch (wire kind ``cols``): decoding it strictly, and folding it
into the state with the same result as its records one by one."""

from __future__ import annotations

import math
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trainmon.state import Limits, RunState
from trainmon_client.protocol import (
    Columns,
    ProtocolError,
    Record,
    columns_wire,
    decode,
    decode_items,
)


def _cols(**changes: Any) -> dict[str, Any]:
    wire = columns_wire(
        "run",
        "w1",
        5,
        [1.0, 2.0, 3.0],
        [10, 11, 12],
        [0, 0, 1],
        {"loss": [0.5, 0.25, math.nan], "lr": [1, 2, 3]},
    )
    wire.update(changes)
    return wire


def _frames(*items: dict[str, Any]) -> list[bytes]:
    return [b"run", msgpack.packb(list(items))]


def test_columns_decode_to_the_same_records() -> None:
    records = decode(_frames(_cols()))
    assert [r.seq for r in records] == [5, 6, 7]
    assert [r.step for r in records] == [10, 11, 12]
    assert [r.epoch for r in records] == [0, 0, 1]
    assert records[1].metrics == {"loss": 0.25, "lr": 2.0}
    assert math.isnan(records[2].metrics["loss"])
    assert all(r.kind == "metrics" and r.worker == "w1" for r in records)
    (item,) = decode_items(_frames(_cols()))
    assert isinstance(item, Columns) and item.size == 3
    assert item.metrics["lr"] == [1.0, 2.0, 3.0] and type(item.metrics["lr"][0]) is float


def test_columns_without_metrics_are_epoch_marks() -> None:
    records = decode(_frames(_cols(m={})))
    assert [r.metrics for r in records] == [{}, {}, {}]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"t": []}, "non-empty list"),
        ({"t": "123"}, "non-empty list"),
        ({"t": [1.0, "x", 3.0]}, "every time"),
        ({"t": [1.0, math.inf, 3.0]}, "not finite"),
        ({"t": [1.0, math.nan, 3.0]}, "not finite"),
        ({"s": -1}, "sequence"),
        ({"s": 2**63 - 2}, "sequence"),  # the last records would pass 2**63
        ({"st": [1, 2]}, "3 entries"),
        ({"st": [1, True, 3]}, "step"),
        ({"st": [True, 2, 3]}, "step"),
        ({"st": [5, True, 3]}, "step"),  # not in order: every entry is looked at
        ({"st": [1, 2.0, 3]}, "step"),
        ({"ep": [0, None, -1]}, "epoch"),
        ({"t": [1.0, None, 3.0]}, "every time"),
        ({"t": [1.0, True, 3.0]}, "every time"),
        ({"m": {"loss": [1.0, [2.0], 3.0]}}, "not a number"),
        ({"m": {"loss": [1.0, {"x": 1}, 3.0]}}, "not a number"),
        ({"st": [1, -2, 3]}, "step"),
        ({"st": [1, 2**60, 3]}, "step"),
        ({"ep": [0, 0.5, 1]}, "epoch"),
        ({"m": [1, 2]}, "map"),
        ({"m": {"loss": [1.0, 2.0]}}, "3 values"),
        ({"m": {"loss": [1.0, None, 2.0]}}, "not a number"),
        ({"m": {"loss": [1.0, "2", 2.0]}}, "not a number"),
        ({"m": {"": [1.0, 2.0, 3.0]}}, "metric name"),
        ({"m": {f"m{i}": [1.0, 2.0, 3.0] for i in range(300)}}, "more than"),
        ({"w": ""}, "worker"),
        ({"r": "other"}, "under topic"),
        ({"v": 2}, "version"),
    ],
)
def test_bad_columns_are_rejected(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        decode(_frames(_cols(**changes)))


def test_steps_may_be_nil() -> None:
    records = decode(_frames(_cols(st=[None, 4, None])))
    assert [r.step for r in records] == [None, 4, None]
    records = decode(_frames(_cols(st=[None] * 3, ep=[None] * 3)))
    assert [(r.step, r.epoch) for r in records] == [(None, None)] * 3


@pytest.mark.parametrize(
    "changes",
    [{"ep": [None, None, -1]}, {"st": [None, None, 1.5]}, {"ep": [None, None, True]}],
)
def test_a_nil_first_entry_does_not_spare_the_rest_a_look(changes: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError, match=r"step|epoch"):
        decode(_frames(_cols(**changes)))


@pytest.mark.parametrize(
    ("metrics", "finite"),
    [
        ({"loss": [0.5, 0.25, 1.0], "lr": [1, 2, 3]}, True),
        ({"loss": [0.5, math.nan, 1.0]}, False),
        ({"loss": [0.5, 1.0, 2.0], "lr": [1.0, -math.inf, 1.0]}, False),
        ({"loss": [math.inf, -math.inf, 1.0]}, False),
        ({"loss": [1e308, 1e308, 1.0]}, False),  # finite, but the sum is not: looked at
        ({}, True),
    ],
)
def test_columns_say_whether_every_value_is_finite(
    metrics: dict[str, list[float]], finite: bool
) -> None:
    """The state skips its own look for NaN and infinities when this says there are none."""
    (item,) = decode_items(_frames(_cols(m=metrics)))
    assert isinstance(item, Columns) and item.finite is finite


@pytest.mark.parametrize(
    ("steps", "ordered"),
    [([10, 11, 12], True), ([10, 10, 12], True), ([12, 11, 13], False), ([None, 4, 5], False)],
)
def test_columns_say_whether_their_steps_are_in_order(
    steps: list[int | None], ordered: bool
) -> None:
    (item,) = decode_items(_frames(_cols(st=steps)))
    assert isinstance(item, Columns) and item.ordered is ordered


def test_ints_among_floats_are_numbers_and_records_get_floats() -> None:
    (item,) = decode_items(_frames(_cols(m={"loss": [0.5, 2, True]}, t=[1, 2, 3])))
    assert isinstance(item, Columns)
    assert item.metrics["loss"] == [0.5, 2, 1] and item.times == [1.0, 2.0, 3.0]
    assert all(type(t) is float for t in item.times)
    records = item.records()  # what export and replay see
    assert [r.metrics["loss"] for r in records] == [0.5, 2.0, 1.0]
    assert all(type(r.metrics["loss"]) is float for r in records)


def _snapshot(state: RunState) -> str:
    """Everything apply() builds, as text (so NaN compares equal to NaN)."""
    parts: list[object] = [state.records, state.duplicates]
    for run in state.runs.values():
        parts += [run.name, run.started, run.metric_names, run.untracked_workers]
        for worker in run.workers.values():
            parts += [
                worker.id,
                worker.records,
                worker.seen_max,
                worker.missed,
                worker.gaps,
                worker.duplicates,
                worker.step,
                worker.epoch,
                list(worker.epoch_starts),
                list(worker.rate_points),
                worker.forward_records,
                worker.last_metrics_at,
                worker.untracked_metrics,
            ]
            for name, series in worker.series.items():
                parts += [
                    name,
                    series.points,
                    series.older.in_order(),  # folds what is held back, so first
                    series.older.width,
                    series.count,
                    series.best,
                    series.best_step,
                    series.nonfinite,
                ]
    return repr(parts)


_values = st.one_of(
    st.floats(min_value=-1e6, max_value=1e6),
    st.sampled_from([math.nan, math.inf, -math.inf]),
)


@st.composite
def _batches(draw: st.DrawFn) -> list[Columns]:
    """Batches from one or two workers, mostly in order, some re-sent or out of order."""
    batches: list[Columns] = []
    next_seq = {"a": 0, "b": 0}
    step = {"a": 0, "b": 0}
    for _ in range(draw(st.integers(1, 12))):
        worker = draw(st.sampled_from(["a", "b"]))
        count = draw(st.integers(1, 40))
        seq = next_seq[worker]
        if draw(st.integers(0, 9)) == 0:
            seq = max(seq - draw(st.integers(1, 50)), 0)  # a re-send overlapping the past
        elif draw(st.integers(0, 9)) == 0:
            seq += draw(st.integers(1, 20))  # a gap
        steps: list[int | None] = []
        for _ in range(count):
            if draw(st.integers(0, 19)) == 0:
                steps.append(None if draw(st.booleans()) else max(step[worker] - 30, 0))
            else:
                step[worker] += draw(st.integers(0, 60))
                steps.append(step[worker])
        names = draw(st.sampled_from([(), ("loss",), ("loss", "acc"), ("acc", "gn", "loss")]))
        epoch = draw(st.integers(0, 3))
        columns = {name: [draw(_values) for _ in range(count)] for name in names}
        batches.append(
            Columns(
                "r",
                worker,
                seq,
                [1000.0 + seq + i for i in range(count)],
                steps,
                [epoch + (i * 3 // count) for i in range(count)],
                columns,
                finite=all(math.isfinite(v) for column in columns.values() for v in column),
            )
        )
        next_seq[worker] = max(next_seq[worker], seq + count)
    return batches


@settings(max_examples=300, deadline=None)
@given(_batches())
def test_columns_fold_in_like_their_records(batches: list[Columns]) -> None:
    limits = Limits(window=16)
    by_columns, by_records = RunState(limits), RunState(limits)
    for index, batch in enumerate(batches):
        now = 2000.0 + index
        taken = by_columns.apply_columns(batch, now)
        expected = sum(by_records.apply(record, now) for record in batch.records())
        assert taken == expected
    assert _snapshot(by_columns) == _snapshot(by_records)


def test_long_series_folds_like_point_by_point() -> None:
    """Enough points to coarsen the downsampled buckets many times over."""
    limits = Limits(window=100)
    by_columns, by_records = RunState(limits), RunState(limits)
    seq = 0
    for batch in range(400):
        count = 128
        steps: list[int | None] = list(range(seq, seq + count))
        values = [1.0 / (s + 1) + (batch % 7) for s in range(seq, seq + count)]
        if batch % 50 == 3:
            values[5] = math.nan
        columns = Columns(
            "r",
            "w",
            seq,
            [float(s) for s in range(seq, seq + count)],
            steps,
            [batch // 40] * count,
            {"loss": values},
        )
        by_columns.apply_columns(columns, float(batch))
        for record in columns.records():
            by_records.apply(record, float(batch))
        seq += count
    series = by_columns.runs["r"].workers["w"].series["loss"]
    series.older.fold()
    assert series.older.width > 64 and series.count == 400 * 128
    assert _snapshot(by_columns) == _snapshot(by_records)


def test_records_from_columns_are_records() -> None:
    columns = Columns("r", "w", 3, [1.0], [7], [None], {"x": [2.0]})
    assert columns.records() == [
        Record("metrics", "r", "w", 3, 1.0, step=7, epoch=None, metrics={"x": 2.0})
    ]
