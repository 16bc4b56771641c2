"""--exit-when-done: the monitor ends when every worker has said bye or is lost (a
SIGKILLed process never says bye), after a grace in which none came back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from tests.helpers import (
    free_endpoint,
    start_cli,
    start_publisher,
    stop,
    wait_for,
    wait_listening,
)
from tests.test_state import hello, metrics
from trainmon.app import DoneWatch, is_done
from trainmon.state import LOST_AFTER_S, RunState
from trainmon_client.protocol import Record


def _kill_when_heard(pub: subprocess.Popen[str], heard: object) -> float:
    """SIGKILL ``pub`` once ``heard()`` is true; the monotonic time it was killed."""
    wait_for(heard, 20.0, 0.05, "the publisher's records")  # type: ignore[arg-type]
    os.kill(pub.pid, signal.SIGKILL)
    pub.wait(timeout=5)
    return time.monotonic()


def test_tail_exit_when_done_ends_after_a_worker_is_killed(tmp_path: Path) -> None:
    """One rank ends with a bye, the other is SIGKILLed: tail ends after the lost time
    and the grace (it waited for ever) and says which worker was lost."""
    endpoint = free_endpoint()
    printed = tmp_path / "tail.jsonl"
    with open(printed, "w") as out:  # a file, read as it grows: no pipe buffers to lose
        tail = start_cli("tail", "--bind", endpoint, "--exit-when-done", stdout=out)
    wait_listening(endpoint)
    done = start_publisher(endpoint, count=20, env={"RANK": "0", "WORLD_SIZE": "2"})
    killed = start_publisher(
        endpoint, count=100_000, delay_s=0.01, env={"RANK": "1", "WORLD_SIZE": "2"}
    )
    try:
        assert killed.stdout is not None and tail.stderr is not None
        worker = killed.stdout.readline().strip()
        at = _kill_when_heard(killed, lambda: f'"worker": "{worker}"' in printed.read_text())
        tail.wait(timeout=30)
        took = time.monotonic() - at
        err = tail.stderr.read()
        assert tail.returncode == 0, err
        assert LOST_AFTER_S <= took < LOST_AFTER_S + 10, took
        assert "trainmon: r: rank 1 lost without a bye" in err
        records = [json.loads(line) for line in printed.read_text().splitlines()]
        assert sum(r["worker"] != worker for r in records) == 20
    finally:
        for proc in (tail, done, killed):
            stop(proc)


def test_watch_exit_when_done_names_the_lost_worker() -> None:
    """watch --plain ends likewise, and its summary names the lost worker."""
    endpoint = free_endpoint()
    watch = start_cli("watch", "--bind", endpoint, "--exit-when-done", "--plain")
    wait_listening(endpoint)
    killed = start_publisher(endpoint, count=100_000, delay_s=0.01, env={"RANK": "1"})
    done = start_publisher(endpoint, count=20, env={"RANK": "0"})
    try:
        _kill_when_heard(killed, lambda: done.poll() is not None)  # rank 0 said bye
        out, err = watch.communicate(timeout=30)
        assert watch.returncode == 0, err
        assert "run r: lost, 2 workers" in out
        assert "1 worker lost without a bye (rank 1)" in out
    finally:
        for proc in (watch, done, killed):
            stop(proc)


def test_done_when_every_worker_ended_and_none_came_back() -> None:
    """Lost counts as ended; a worker heard again within the grace starts it over."""
    state = RunState()
    state.apply(hello("a", rank=0), 100.0)
    state.apply(hello("b", rank=1), 100.0)
    state.apply(Record("bye", "r", "a", 1, 101.0), 101.0)
    watch = DoneWatch()
    assert not watch.check(state, 101.0, 2.0), "b is still heard"
    lost_at = 100.0 + LOST_AFTER_S + 0.1
    assert is_done(state, lost_at) and not watch.check(state, lost_at, 2.0)
    state.apply(metrics(1, worker="b"), lost_at + 1)  # back
    assert not watch.check(state, lost_at + 1, 2.0)
    later = lost_at + 1 + LOST_AFTER_S + 0.1
    assert not watch.check(state, later, 2.0) and watch.check(state, later + 2.0, 2.0)


def test_done_when_pool_children_end_with_their_parent() -> None:
    """Children silent after their parent's bye have finished: done, nobody lost."""
    state = RunState()
    state.apply(hello("main", rank=0), 100.0)
    state.apply(hello("child", rank=0, parent="main"), 100.0)
    state.apply(Record("bye", "r", "main", 1, 102.0), 102.0)
    assert not is_done(state, 102.5)
    assert is_done(state, 106.0)
    assert state.runs["r"].status(106.0, 60.0) == "finished"
