"""Nothing lost that is not counted: a restarted monitor, a full or hung recording disk,
too many metrics in one call, a queue bounded in values, odd close deadlines."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.helpers import free_endpoint, start_publisher, stop, wait_for

MONITOR = Path(__file__).resolve().parent / "monitor_proc.py"


def _monitor(endpoint: str, seconds: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(MONITOR), endpoint, str(seconds)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )


def _lines(proc: subprocess.Popen[str]) -> list[dict[str, Any]]:
    """Every JSON line the monitor process printed (it has ended)."""
    out, _ = proc.communicate(timeout=60)
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_restarted_monitor_raises_no_false_missed_alarm() -> None:
    """A monitor killed mid-run and started again on the same endpoint while the training
    goes on: the new one gets the hello first (nothing queued for the dead one reaches
    it), never counts a record as missed, and every number is accounted for."""
    endpoint = free_endpoint()
    first = _monitor(endpoint, 120)
    publisher = second = None
    try:
        assert first.stdout is not None and first.stdout.readline().strip() == "listening"
        publisher = start_publisher(endpoint, count=40_000, delay_s=0.0002, extra=["--metrics", "5"])
        time.sleep(2.0)  # the first monitor takes a few thousand records
        first.kill()
        first.wait(timeout=10)
        time.sleep(2.0)  # training goes on; batches queue for the dead monitor
        second = _monitor(endpoint, 15)
        lines = _lines(second)
        publisher.wait(timeout=60)
    finally:
        for proc in (first, second, publisher):
            if proc is not None:
                stop(proc)
    counts = [next(iter(line["workers"].values())) for line in lines if line["workers"]]
    assert counts, "the restarted monitor took nothing"
    assert lines[-1]["first"][0][0] == "hello", lines[-1]["first"]
    assert all(c["missed"] == 0 for c in counts), [c for c in counts if c["missed"]][:3]
    last = counts[-1]
    assert last["finished"]
    assert last["not_resent"] > 0, "the history did not reach back to the start"
    assert last["records"] + last["not_resent"] == last["seen_max"] + 1 == 40_002


def test_history_start_after_queued_batches_moves_the_gap_out_of_missed() -> None:
    """Batches from before a hello that says where the client's history starts: the
    gap under that start was never sent to this monitor (not re-sent), not missed."""
    from trainmon.state import RunState
    from trainmon_client.protocol import Record

    state = RunState()
    state.apply(Record("metrics", "r", "w", 500, 1.0, step=500, metrics={"loss": 1.0}), 1.0)
    assert state.runs["r"].missed == 500  # what it looks like before the hello comes
    hello = Record("hello", "r", "w", 0, 0.5, info={"host": "h", "pid": 1, "from": 400})
    state.apply(hello, 1.1)
    for seq in range(400, 500):
        state.apply(Record("metrics", "r", "w", seq, 0.9, step=seq, metrics={"loss": 1.0}), 1.2)
    worker = state.runs["r"].workers["w"]
    assert (worker.missed, worker.not_resent, worker.gaps) == (0, 399, [])
    assert worker.records + worker.not_resent == worker.seen_max + 1
