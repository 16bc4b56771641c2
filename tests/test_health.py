"""Nothing lost: late and restarted monitors, two monitors, lost workers, drop counts."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from tests.helpers import (
    BackgroundMonitor,
    drain_until,
    free_endpoint,
    ipc_endpoint,
    start_publisher,
    stop,
    wait_for,
)
from trainmon.sources.subscriber import Subscriber
from trainmon.state import LOST_AFTER_S, RunState
from trainmon_client import Monitor
from trainmon_client.ioloop import _MAX_BATCH_RECORDS


def _worker(state: RunState):  # type: ignore[no-untyped-def]
    run = state.runs.get("r")
    return None if run is None or not run.workers else next(iter(run.workers.values()))


def test_restarted_monitor_sees_the_whole_history(tmp_path: Path) -> None:
    """A monitor restarted mid-run shows every record again, once, with nothing missed."""
    endpoint = free_endpoint()
    proc = start_publisher(endpoint, count=3000, delay_s=0.002)
    try:
        first = BackgroundMonitor([endpoint])
        try:
            first.wait(lambda: (w := _worker(first.state)) is not None and w.records > 300)
        finally:
            first.close()
        second = Subscriber([endpoint])
        try:
            state = RunState()
            started = time.monotonic()
            drain_until(
                second,
                state,
                lambda: (
                    (w := _worker(state)) is not None
                    and w.records > 400
                    and w.seen_max + 1 == w.records
                ),
                timeout_s=10,
            )
            assert time.monotonic() - started < 2.0 + 1.0  # history within about 2 s
            worker = _worker(state)
            series = worker.series["loss"]
            steps = [s for s, _ in series.points]
            assert steps == list(range(len(steps))), "history is whole and in order"
            assert worker.missed == 0  # repeats were dropped: steps above are each once
            drain_until(second, state, lambda: _worker(state).finished, timeout_s=30)
            assert _worker(state).series["loss"].count == 3000 and _worker(state).missed == 0
        finally:
            second.close()
    finally:
        stop(proc)


def test_two_monitors_attach_to_training_that_binds(tmp_path: Path) -> None:
    """Training binds; two monitors attach at different times; both see everything once."""
    endpoint = ipc_endpoint(tmp_path)
    mon = Monitor(endpoint, run="r", bind=True)
    first = BackgroundMonitor(connect=[endpoint])
    second = None
    try:
        for step in range(500):
            mon.log(loss=float(step))
        first.wait(lambda: (w := _worker(first.state)) is not None and w.records == 501)
        second = BackgroundMonitor(connect=[endpoint])  # joins late: gets the history
        second.wait(lambda: (w := _worker(second.state)) is not None and w.records == 501)
        for step in range(500, 1000):
            mon.log(loss=float(step))
        mon.close()
        for monitor in (first, second):
            monitor.wait(lambda m=monitor: (w := _worker(m.state)) is not None and w.finished)
            worker = _worker(monitor.state)
            assert worker.series["loss"].count == 1000 and worker.missed == 0
        assert _worker(first.state).duplicates > 0  # the re-send for the second was dropped
    finally:
        mon.close()
        first.close()
        if second is not None:
            second.close()


def test_history_bound_is_said_not_counted_as_missed() -> None:
    """A monitor later than the client's history sees where it starts; nothing 'missed'."""
    endpoint = free_endpoint()
    mon = Monitor(endpoint, run="r", history=1000)
    try:
        for step in range(5000):
            mon.log(loss=float(step))
        # the I/O thread has taken all 5000 into its bounded history
        wait_for(lambda: not mon._queue, what="the client's queue to empty")
        late = BackgroundMonitor([endpoint])
        try:
            late.wait(lambda: (w := _worker(late.state)) is not None and w.step == 4999)
            worker = _worker(late.state)
            assert worker.missed == 0
            resent = worker.series["loss"].count
            # at least the last 1000, in whole batches of up to _MAX_BATCH_RECORDS
            assert 1000 <= resent < 1000 + _MAX_BATCH_RECORDS
            assert worker.not_resent == 5000 - resent
        finally:
            late.close()
    finally:
        mon.close()


def test_killed_worker_shows_as_lost() -> None:
    """A worker killed with SIGKILL is marked lost within 5 s; a live one stays running."""
    endpoint = free_endpoint()
    monitor = BackgroundMonitor([endpoint])
    victim = start_publisher(endpoint, run="r", count=100_000, delay_s=0.01, env={"RANK": "0"})
    survivor = start_publisher(endpoint, run="r", count=100_000, delay_s=0.01, env={"RANK": "1"})
    try:
        monitor.wait(
            lambda: (
                (run := monitor.state.runs.get("r")) is not None
                and len(run.workers) == 2
                and all(w.records > 10 for w in run.workers.values())
            )
        )
        os.kill(victim.pid, signal.SIGKILL)
        killed_at = time.time()

        def statuses() -> dict[int | None, str]:
            now = time.time()
            return {w.rank: w.status(now, 60.0) for w in monitor.state.runs["r"].workers.values()}

        monitor.wait(lambda: statuses()[0] == "lost", timeout_s=LOST_AFTER_S + 3)
        assert time.time() - killed_at <= LOST_AFTER_S + 1.0
        with monitor.lock:
            assert statuses() == {0: "lost", 1: "running"}
    finally:
        stop(victim)
        stop(survivor)
        monitor.close()


def test_client_drop_count_matches_what_was_dropped() -> None:
    """The monitor's count of the client's drops is exactly the client's own count."""
    endpoint = free_endpoint()
    monitor = BackgroundMonitor([endpoint])
    try:
        mon = Monitor(endpoint, run="r", max_queue=50)
        for step in range(200_000):
            mon.log(loss=float(step))
        mon.close()
        assert mon.dropped > 0
        monitor.wait(lambda: (w := _worker(monitor.state)) is not None and w.finished)
        worker = _worker(monitor.state)
        assert worker.client_dropped == mon.dropped
        assert worker.series["loss"].count + mon.dropped == 200_000
        assert worker.missed == 0
    finally:
        monitor.close()


def test_frozen_monitor_gap_is_counted_exactly() -> None:
    """Records lost while the monitor was frozen are counted: received + missed = sent."""
    endpoint = free_endpoint()
    source = Subscriber([endpoint])
    state = RunState()
    proc = start_publisher(endpoint, count=60_000, delay_s=0.00002, hold_s=2.0)
    try:
        drain_until(source, state, lambda: (w := _worker(state)) is not None and w.records > 100)
        time.sleep(1.0)  # the monitor does not read: the socket's queues fill and drop
        drain_until(
            source, state, lambda: (w := _worker(state)) is not None and w.finished, timeout_s=30
        )
        worker = _worker(state)
        assert worker.records + worker.missed == 60_000 + 2  # with hello and bye
    finally:
        stop(proc)
        source.close()


def test_wait_for_helper_fails_loudly() -> None:
    """The tests' polling helper raises when its condition never holds."""
    started = time.monotonic()
    try:
        wait_for(lambda: False, timeout_s=0.1)
    except AssertionError as exc:
        assert "timed out" in str(exc)
    else:
        raise AssertionError("wait_for did not fail")
    assert time.monotonic() - started < 2
