"""Monitor.track(loader): each item a step of the same counter as log()'s automatic
step, the total steps from len(), and the share of step time spent waiting for data."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.helpers import Receiver, wait_for
from tests.slow_items import SlowItems
from tests.test_state import fed, hello, metrics
from tests.test_view import NOW, screen
from trainmon.report import status_line
from trainmon.view import ViewOptions
from trainmon_client import Monitor
from trainmon_client.calls import TICK
from trainmon_client.logs import Warnings
from trainmon_client.numbering import Records
from trainmon_client.tracking import DATA_WAIT, STEP_TIME


def _rows(records: Records, calls: list[tuple[Any, Any, dict[str, Any]]]) -> list[Any]:
    out = []
    for step, marker, named in calls:
        row = records.take(0.0, step, None, marker, named)
        if row is not None:
            out.append(row)
    return out


def test_ticks_move_the_automatic_step_and_calls_land_on_them() -> None:
    """Before any tick, log() counts on by itself; after, a call without step= lands on
    the latest tick's step (several on one), ticks without a call still count, and an
    explicit step= is taken as given."""
    records = Records("r", "w", {}, Warnings())
    tick = (1, TICK, {})
    rows = _rows(
        records,
        [
            (None, None, {"a": 1.0}),  # step 0, counted by itself
            tick,  # 1
            (None, None, {"a": 2.0}),
            (None, None, {"b": 2.0}),
            tick,  # 2, nothing logged
            (1, TICK, {}),  # 3
            (None, None, {"a": 3.0}),
            (10, None, {"a": 4.0}),
            (1, TICK, {}),  # 11
            (None, None, {"a": 5.0}),
            (2, TICK, {}),  # 13: a marker that stands for one the full queue left out
            (None, None, {"a": 5.0}),
        ],
    )
    assert [(row[2], row[4]) for row in rows] == [
        (0, {"a": 1.0}),
        (1, {"a": 2.0}),
        (1, {"b": 2.0}),
        (3, {"a": 3.0}),
        (10, {"a": 4.0}),
        (11, {"a": 5.0}),
        (13, {"a": 5.0}),
    ]
    assert records.logged == 7  # ticks are no records


def test_track_counts_steps_and_sets_the_total_steps(receiver: Receiver, endpoint: str) -> None:
    """Every item is a step, logged or not; the total steps are len() x total epochs
    (2.5 epochs of 10 items: 25 steps); the timings go out on the tracked steps."""
    with Monitor(endpoint, run="r", total_epochs=2.5) as mon:
        for epoch in range(3):
            mon.set_epoch(epoch)
            for index in mon.track(list(range(10))):
                if index % 3 == 0:
                    mon.log(loss=float(index))
    receiver.until_bye()
    hellos = [r for r in receiver.records if r.kind == "hello"]
    assert hellos[-1].info["steps"] == 25
    losses = [(r.step, r.metrics["loss"]) for r in receiver.metrics() if "loss" in r.metrics]
    expected = [(e * 10 + i, float(i)) for e in range(3) for i in (0, 3, 6, 9)]
    assert losses == expected
    timings = [r for r in receiver.metrics() if DATA_WAIT in r.metrics]
    assert timings  # at least once per loop (when it ends)
    assert timings[-1].step == 29
    for record in timings:
        assert 0.0 <= record.metrics[DATA_WAIT] <= 1.0
        assert record.metrics[STEP_TIME] >= 0.0


def test_a_slow_getitem_shows_as_waiting_for_data(receiver: Receiver, endpoint: str) -> None:
    """A loader whose __getitem__ sleeps, with a quick body: most of the step time is
    waiting; a slow body with a quick loader: little of it is."""
    with Monitor(endpoint, run="r") as mon:
        for _ in mon.track(SlowItems(20, 0.01), every_s=0.05):
            pass
        mon.log(marker=1.0)
        for _ in mon.track(list(range(20)), every_s=0.05):
            time.sleep(0.01)
    receiver.until_bye()
    records = receiver.metrics()
    cut = next(i for i, r in enumerate(records) if "marker" in r.metrics)
    slow = [r.metrics[DATA_WAIT] for r in records[:cut] if DATA_WAIT in r.metrics]
    quick = [r.metrics[DATA_WAIT] for r in records[cut:] if DATA_WAIT in r.metrics]
    assert len(slow) >= 2 and min(slow) > 0.8
    assert len(quick) >= 2 and max(quick) < 0.2
    assert records[cut].step == 19  # a log() after the loop lands on its last step
    step_times = [r.metrics[STEP_TIME] for r in records if STEP_TIME in r.metrics]
    assert min(step_times) >= 0.009


def test_breaking_out_sends_what_was_measured(receiver: Receiver, endpoint: str) -> None:
    """A loop left with break still sends its last stretch, at the step it stopped on;
    an iterable without len() sets no totals; every_s must be positive."""
    with Monitor(endpoint, run="r", total_epochs=1) as mon:
        with pytest.raises(ValueError, match="every_s"):
            mon.track([1], every_s=0)
        for index in mon.track(iter(range(100)), every_s=60):
            if index == 4:
                break
    receiver.until_bye()
    timings = [r for r in receiver.metrics() if DATA_WAIT in r.metrics]
    assert [r.step for r in timings] == [4]
    assert all("steps" not in r.info for r in receiver.records if r.kind == "hello")


def test_the_dashboard_says_input_bound_from_a_third_of_step_time() -> None:
    """The progress line says "input-bound 62%" and the plain line says it in words when
    the lead's last loop/data_wait is 0.3 or more; at 0.29 neither says anything."""
    bound = fed(hello(epochs=3), metrics(1, step=5, epoch=0, loss=0.5, **{"loop/data_wait": 0.625}))
    assert "input-bound 62%" in screen(bound)
    assert "loop/data_wait 62.50%" in screen(bound)  # (the stats: a share, in percent)
    assert "input-bound: 62% of step time waiting for data" in status_line(
        bound, ViewOptions(), NOW
    )
    fine = fed(hello(epochs=3), metrics(1, step=5, epoch=0, loss=0.5, **{"loop/data_wait": 0.29}))
    assert "input-bound" not in screen(fine)
    assert "input-bound" not in status_line(fine, ViewOptions(), NOW)


def test_a_full_queue_loses_no_step(receiver: Receiver, endpoint: str) -> None:
    """With a queue of 5 calls, a fast loop of 3,000 items finds it full most of the
    time: the markers that get in carry the steps of those that did not, so a log()
    after the loop still lands on its last step."""
    with Monitor(endpoint, run="r", max_queue=5) as mon:
        for _ in mon.track(range(3000)):
            pass
        wait_for(lambda: not mon._queue, what="the queue to drain")
        mon.log(after=1.0)
    receiver.until_bye()
    assert [r.step for r in receiver.metrics() if "after" in r.metrics] == [2999]
