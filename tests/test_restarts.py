"""A run's workers over time, and replays that end: a process killed and restarted under
its run's name is superseded by its restart (not the lead, deciding neither progress nor
status) alike in `trainmon runs`, replay (plain and dashboard) and the state; ranks
running together never supersede each other; a recording played to its end leaves its
workers without a bye lost, not running for ever; the demo keeps nothing. Real training
processes, the real `trainmon` command and a real terminal (tmux)."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from typing import Any

import pytest

from tests.helpers import Tmux, command, start_kept_training, stop
from trainmon.report import status_line
from trainmon.state import RunState
from trainmon.view import ViewOptions
from trainmon_client import store
from trainmon_client.protocol import Record

# A training process logging steps FIRST to COUNT - 1 of TOTAL (loss 1/(step+1)) where
# nobody watches; with "hold" it says "logged" and waits to be killed.
TRAIN = """
import sys, time
from trainmon_client import Monitor
name, first, count, total, mode = sys.argv[1], *map(int, sys.argv[2:5]), sys.argv[5]
mon = Monitor(run=name, total_steps=total)
for step in range(first, count):
    mon.log(loss=1.0 / (step + 1), step=step)
print("logged", flush=True)
if mode == "hold":
    time.sleep(600)
mon.close()
"""


def _train(name: str, first: int, count: int, total: int) -> None:
    done = subprocess.run(
        [sys.executable, "-c", TRAIN, name, str(first), str(count), str(total), "close"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr


def _held(name: str, count: int, total: int) -> subprocess.Popen[str]:
    """A process that logged steps 0 to ``count - 1``, all on disk, and lives on."""
    argv = ["-c", TRAIN, name, "0", str(count), str(total), "hold"]
    return start_kept_training(argv, name, count)


def _killed(name: str, count: int, total: int) -> None:
    proc = _held(name, count, total)
    try:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        stop(proc)


def _trainmon(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "trainmon", *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _listed() -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = json.loads(_trainmon("runs", "--json"))
    return runs


def _replay_in(tmux: Tmux, name: str) -> None:
    where = shlex.quote(os.environ["TRAINMON_DIR"])
    tmux.type(f"TRAINMON_DIR={where} {command('replay', name, '--instant')}")


def test_a_killed_and_restarted_run_is_as_its_restart_everywhere(tmux: Tmux) -> None:
    """Killed at step 14 of 30, started again from step 0 under its name (slow.py run
    twice): `runs`, `replay --plain` and the dashboard all say finished, with the
    restart's values (loss 1/30 at step 29, not the killed one's 1/15 at step 14); the
    killed worker is said restarted, not lost."""
    _killed("resume", 15, 30)
    _train("resume", 0, 30, 30)
    (run,) = _listed()
    assert (run["status"], run["workers"], run["last_step"]) == ("finished", 2, 29)
    plain = _trainmon("replay", "resume", "--plain")
    assert "run resume: finished, 2 workers" in plain, plain
    assert "loss: last 0.03333 (best 0.03333 at step 29)" in plain, plain
    assert "1 worker restarted" in plain and "lost without a bye" not in plain, plain
    _replay_in(tmux, "resume")
    screen = tmux.wait_text("end of recording")
    assert "100%" in screen and "finished" in screen and "29" in screen, screen
    assert "restarted" in screen and "(restarted since)" in screen, screen  # (the alert)
    tmux.keys("q")


def test_a_killed_run_replayed_is_lost_and_a_live_one_running(tmux: Tmux) -> None:
    """A recording played to its end is the end of the run unless a process writes it
    now: a SIGKILLed run replays (plain and dashboard) and exports (its picture) as
    lost, never "running", its
    worker last seen so long before the recording's end (not "ago": that clock stopped);
    a run being written replays as running."""
    _killed("killed", 10, 30)
    (run,) = _listed()
    assert run["status"] == "crashed/lost"
    plain = _trainmon("replay", "killed", "--plain")
    assert "run killed: lost, 1 worker" in plain, plain
    picture = _trainmon("export", "killed", "--format", "html")
    assert "lost" in picture and "running" not in picture
    _replay_in(tmux, "killed")
    screen = tmux.wait_text("end of recording")
    assert "lost" in screen and "running" not in screen, screen
    assert "lost: its records end without a bye" in screen, screen
    assert "at the end" in screen and " ago" not in screen, screen
    tmux.keys("q")
    live = _held("live", 10, 30)
    try:
        plain = _trainmon("replay", "live", "--plain")
        assert "run live: running, 1 worker" in plain, plain
    finally:
        stop(live)


def _hello(worker: str, t: float, rank: int | None = None) -> Record:
    info: dict[str, Any] = {"host": "h", "pid": 1, "steps": 100}
    if rank is not None:
        info["rank"] = rank
    return Record("hello", "r", worker, 0, t, info=info)


def _steps(worker: str, first: int, last: int, t: float) -> list[Record]:
    """Metrics records of ``worker`` for steps ``first`` to ``last``, 0.1 s apart."""
    return [
        Record("metrics", "r", worker, 1 + step - first, t + (step - first) * 0.1, step=step,
               metrics={"loss": 1.0 / (step + 1)})
        for step in range(first, last + 1)
    ]  # fmt: skip


def _apply(state: RunState, records: list[Record]) -> None:
    for record in sorted(records, key=lambda r: r.time):
        state.apply(record, record.time)


def test_ranks_running_together_are_never_superseded() -> None:
    """Two ranks, one of which ended (bye) before the other began logging late: a rank
    is superseded only by its own rank; the lead is rank 0 and both decide the status."""
    state = RunState()
    rank1 = [_hello("b", 0.0, 1), *_steps("b", 0, 9, 0.1)]
    rank1.append(Record("bye", "r", "b", 11, 1.5))
    _apply(state, [_hello("a", 2.0, 0), *_steps("a", 0, 20, 2.1), *rank1])
    run = state.runs["r"]
    assert run.superseded() == frozenset()
    assert run.lead is not None and run.lead.id == "a"
    assert run.status(4.2, 60.0) == "running"


def test_a_rank_restarted_leads_once_it_appears() -> None:
    """torchrun elastic: rank 0 dies at step 20 and a new rank 0 starts over from 0 at
    once (before the old one could be called lost): the new one leads from its first
    record, and the old one decides neither progress nor status."""
    state = RunState()
    old = [_hello("old", 0.0, 0), *_steps("old", 0, 20, 0.1)]
    _apply(state, [*old, _hello("new", 2.3, 0), *_steps("new", 0, 2, 2.4)])
    run = state.runs["r"]
    assert run.superseded() == frozenset({"old"})
    assert run.lead is not None and run.lead.id == "new" and run.lead.step == 2
    assert run.progress() == pytest.approx(3 / 100)
    line = status_line(state, ViewOptions(interactive=False), 2.6)
    assert "step 2 · 3%" in line and "workers 2 (1 running, 1 restarted)" in line, line


def test_a_process_without_rank_is_superseded_once_it_ended() -> None:
    """Without ranks, a worker is superseded by one that began after it ended: not
    while it may still be running (silent less than LOST_AFTER_S), but once lost; and
    the records' end (note_end) makes it lost at once."""
    state = RunState()
    _apply(state, [_hello("old", 0.0), *_steps("old", 0, 20, 0.1)])
    _apply(state, [_hello("new", 2.3), *_steps("new", 0, 2, 2.4)])
    run = state.runs["r"]
    assert run.superseded() == frozenset() and run.lead is not None and run.lead.id == "old"
    state.note_end()
    assert run.superseded() == frozenset({"old"}) and run.lead.id == "new"
    assert run.status(2.6, 60.0) == "lost"  # the new one, cut off too
    later = RunState()
    _apply(later, [_hello("old", 0.0), *_steps("old", 0, 20, 0.1)])
    _apply(later, [_hello("new", 2.3), *_steps("new", 0, 90, 2.4)])  # 9 s on
    run = later.runs["r"]
    assert run.superseded() == frozenset({"old"}) and run.lead is not None
    assert run.lead.id == "new" and run.status(11.4, 60.0) == "running"


def test_the_demo_keeps_nothing() -> None:
    """`trainmon demo` run to its end leaves no run in the data directory (its workers
    are Monitor(record=False))."""
    demo = subprocess.Popen(
        [sys.executable, "-m", "trainmon", "demo", "--workers", "1", "--epochs", "1"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = demo.communicate(timeout=90)
        assert demo.returncode == 0, err
        assert "finished, 1 worker" in out
    finally:
        stop(demo)
    assert store.scan() == []


NAN_TRAIN = """
import sys
from trainmon_client import Monitor
with Monitor(run=sys.argv[1], total_steps=10) as mon:
    for step in range(10):
        mon.log(loss=float("nan") if step == 9 else 1.0 / (step + 1), step=step)
"""


def test_a_metric_that_ended_nan_reads_nan_in_runs_and_compare() -> None:
    """A run whose loss ended NaN: `runs` (table and --json) and `compare --plain`
    show its last value as the dashboard does, "nan", and its best the finite one."""
    for name in ("diverged", "steady"):
        script = NAN_TRAIN if name == "diverged" else NAN_TRAIN.replace('float("nan")', "0.05")
        done = subprocess.run(
            [sys.executable, "-c", script, name], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
    runs = {run["name"]: run for run in _listed()}
    assert runs["diverged"]["last"] == "nan" and runs["diverged"]["best"] == pytest.approx(1 / 9)
    assert runs["steady"]["last"] == pytest.approx(0.05)
    (row,) = [line.split() for line in _trainmon("runs").splitlines() if "diverged" in line]
    assert row[-2:] == ["nan", "0.1111"], row
    compared = _trainmon("compare", "steady", "diverged", "--plain")
    (row,) = [row for line in compared.splitlines() if (row := line.split())[:1] == ["diverged"]]
    assert row[2:4] == ["nan", "0.1111"], compared
    again = {run["name"]: run for run in _listed()}  # from the cache this time
    assert again["diverged"]["last"] == "nan"


def test_forked_children_running_together_are_not_superseded() -> None:
    """Two pool children of rank 0 (forked, ranked as their parent), the second begun
    after the last record of the first so far: neither is superseded while the first
    may go on (a child is not a rank restarted); once the first ended (bye) before a
    third began, it is."""
    state = RunState()
    parent = [_hello("p", 0.0, 0), *_steps("p", 0, 30, 0.1)]
    kids = []
    for kid, t in (("c1", 0.5), ("c2", 1.05)):
        hello = _hello(kid, t, 0)
        hello.info["parent"] = "p"
        kids += [hello, *_steps(kid, 0, 5, t + 0.01)]
    _apply(state, [*parent, *kids])
    run = state.runs["r"]
    assert run.superseded() == frozenset()
    third = _hello("c3", 2.0, 0)
    third.info["parent"] = "p"
    _apply(state, [Record("bye", "r", "c1", 7, 1.5), third, *_steps("c3", 0, 3, 2.01)])
    assert run.superseded() == frozenset({"c1"})


def test_compare_sets_aside_a_worker_its_restart_replaced_at_once() -> None:
    """A run killed and restarted at once (well within the 5 s a silent worker takes to
    be lost) compares by its restart: its records are its end, so the killed worker
    ended before the restart began, and the table's last value is the restart's."""
    _killed("quick", 10, 30)
    _train("quick", 10, 30, 30)  # steps 10 to 29: last loss 1/30
    _train("other", 0, 30, 30)
    table = _trainmon("compare", "quick", "other", "--plain")
    (row,) = [line for line in table.splitlines() if line.split()[:1] == ["quick"]]
    assert "0.03333" in row and "0.1000" not in row, table


def test_a_restart_with_other_totals_goes_by_its_own() -> None:
    """A run killed with total_steps=400 and restarted with total_steps=300 reaches the
    restart's total: finished, not ended early at 300 of the dead process's 400."""
    _killed("retotal", 40, 400)
    _train("retotal", 40, 300, 300)
    (run,) = _listed()
    assert run["status"] == "finished" and run["last_step"] == 299, run
    plain = _trainmon("replay", "retotal", "--plain")
    assert "run retotal: finished" in plain and "of the way" not in plain, plain
