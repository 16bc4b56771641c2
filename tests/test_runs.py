"""Kept runs found again: `trainmon runs` (statuses, last step, main metric, --json,
--prune), runs named by name or prefix in replay, export and rm, and `watch --record`
without a file; with real training processes logging where nobody watches and no flag
is set (runs are kept by default), and the real `trainmon` command."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import (
    Tmux,
    command,
    free_endpoint,
    start_cli,
    start_kept_training,
    start_publisher,
    stop,
    wait_listening,
)
from trainmon_client import store

# A training process: logs steps FIRST (default 0) to COUNT - 1 of TOTAL (loss
# 1/(step+1) but the last, 0.5; in mode acc an accuracy step/TOTAL but the last, 0; in
# mode one a loss of 1.0 at each step), on the default endpoint where nobody watches; in
# mode hold it says "logged" and waits to be killed.
TRAIN = """
import sys, time
from trainmon_client import Monitor
name, count, total, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
first = int(sys.argv[5]) if len(sys.argv) > 5 else 0
mon = Monitor(run=name, total_steps=total)
for step in range(first, count):
    last = step == count - 1
    if mode == "acc":
        mon.log(accuracy=0.0 if last else step / total, step=step)
    elif mode == "one":
        mon.log(loss=1.0, step=step)
    else:
        mon.log(loss=0.5 if last else 1.0 / (step + 1), step=step)
print("logged", flush=True)
if mode == "hold":
    time.sleep(600)
mon.close()
"""


def train(name: str, count: int = 20, total: int = 20, mode: str = "loss", first: int = 0) -> None:
    """Run a training process to its end (nobody watching, no flag set)."""
    done = subprocess.run(
        [sys.executable, "-c", TRAIN, name, str(count), str(total), mode, str(first)],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    assert "logged" in done.stdout


def trainmon(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m trainmon ARGS`` run to its end."""
    return subprocess.run(
        [sys.executable, "-m", "trainmon", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
    )


def listed() -> list[dict[str, Any]]:
    done = trainmon("runs", "--json")
    assert done.returncode == 0, done.stderr
    runs: list[dict[str, Any]] = json.loads(done.stdout)
    return runs


def test_runs_lists_each_status_newest_first() -> None:
    """Finished, ended early (bye short of total_steps), running (a live process) and,
    once that one is SIGKILLed, crashed/lost with its records up to the last flush; the
    last step and the main metric's last and best value (lowest for a loss, highest for
    an accuracy) as logged; the plain table when piped; summaries cached 0600."""
    train("done-run", 20, 20)
    train("early-run", 10, 20)
    train("acc-run", 20, 20, "acc")
    proc = start_held("killed-run", 30, 100)
    try:
        runs = listed()
        assert [r["name"] for r in runs] == ["killed-run", "acc-run", "early-run", "done-run"]
        assert runs[0]["status"] == "running"
        refused = trainmon("rm", "killed-run")
        assert refused.returncode != 0 and "is running: not removed" in refused.stderr
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        stop(proc)
    runs = {r["name"]: r for r in listed()}
    assert {name: r["status"] for name, r in runs.items()} == {
        "killed-run": "crashed/lost",
        "acc-run": "finished",
        "early-run": "ended early",
        "done-run": "finished",
    }
    killed, early, acc = runs["killed-run"], runs["early-run"], runs["acc-run"]
    assert (killed["last_step"], killed["metric"], killed["last"]) == (29, "loss", 0.5)
    assert killed["best"] == pytest.approx(1 / 29)
    assert (early["last_step"], early["last"], early["best"]) == (9, 0.5, pytest.approx(1 / 9))
    assert (acc["metric"], acc["higher_is_better"], acc["last"]) == ("accuracy", True, 0.0)
    assert acc["best"] == pytest.approx(18 / 20)
    assert all(r["workers"] == 1 for r in runs.values())
    cache = Path(killed["path"]) / ".summary.json"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    table = trainmon("runs")
    lines = table.stdout.splitlines()
    assert lines[0].split()[:4] == ["run", "started", "duration", "status"]
    assert "crashed/lost" in lines[1] and lines[1].startswith("killed-run")
    assert "ended early" in lines[3] and lines[3].startswith("early-run")


def test_a_run_restarted_under_its_name_is_as_its_restart_ended() -> None:
    """A run SIGKILLed at step 14 and restarted from there under its name (within the
    hour: the same run) is one run, finished when the restart finished, its last step
    the restart's; two workers."""
    proc = start_held("resumed", 15, 30)
    try:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        stop(proc)
    (run,) = listed()
    assert (run["status"], run["last_step"]) == ("crashed/lost", 14)
    train("resumed", 30, 30, first=15)
    (run,) = listed()
    assert (run["status"], run["last_step"], run["workers"]) == ("finished", 29, 2)
    assert run["best"] == pytest.approx(1 / 29) and run["last"] == 0.5


def start_held(name: str, count: int, total: int) -> subprocess.Popen[str]:
    """A training process that has logged ``count`` steps, all on disk, and lives on
    (the caller stops it)."""
    return start_kept_training(["-c", TRAIN, name, str(count), str(total), "hold"], name, count)


def test_run_named_by_name_prefix_or_path() -> None:
    """A unique prefix names a run; an ambiguous one is an error listing the matches; an
    unknown one lists the runs there are; an existing file wins over a run's name."""
    train("alpha-1", 5, 5)
    train("alpha-2", 7, 7)
    train("beta", 9, 9)
    by_prefix = trainmon("replay", "be", "--plain")
    assert by_prefix.returncode == 0, by_prefix.stderr
    assert "run beta: finished" in by_prefix.stdout
    ambiguous = trainmon("replay", "alpha", "--plain")
    assert ambiguous.returncode == 2
    assert "names several runs" in ambiguous.stderr
    assert "alpha-1" in ambiguous.stderr and "alpha-2" in ambiguous.stderr
    assert "Traceback" not in ambiguous.stderr
    unknown = trainmon("export", "gamma", "--format", "csv")
    assert unknown.returncode == 2 and "no file or kept run gamma" in unknown.stderr
    assert "beta" in unknown.stderr
    here = Path(store.data_dir()).parent / "cwd"
    here.mkdir()
    (alpha,) = [r for r in store.scan() if r.name == "alpha-1"]
    shutil.copy(alpha.files[0], here / "beta")
    shadowed = trainmon("replay", "beta", "--plain", cwd=here)
    assert shadowed.returncode == 0, shadowed.stderr
    assert "run alpha-1: finished" in shadowed.stdout


def test_replay_and_export_by_name_equal_by_file() -> None:
    """A run logged with nobody watching and no flag is replayed and exported by name
    just as by its file; its folder is 0700 and its recording 0600."""
    train("by-name", 25, 25)
    assert [(r["name"], r["status"]) for r in listed()] == [("by-name", "finished")]
    (run,) = store.scan()
    assert stat.S_IMODE(os.stat(run.path).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(run.files[0]).st_mode) == 0o600
    by_name = trainmon("replay", "by-name", "--plain")
    by_file = trainmon("replay", run.files[0], "--plain")
    by_folder = trainmon("replay", run.path, "--plain")
    assert by_name.returncode == 0, by_name.stderr
    assert "run by-name: finished" in by_name.stdout
    assert by_name.stdout == by_file.stdout == by_folder.stdout
    csv_name = trainmon("export", "by-name", "--format", "csv")
    csv_file = trainmon("export", run.files[0], "--format", "csv")
    assert csv_name.returncode == 0, csv_name.stderr
    assert csv_name.stdout == csv_file.stdout
    assert len(csv_name.stdout.splitlines()) == 1 + 25  # a header and one row a step


def test_rm_removes_named_runs() -> None:
    """rm removes a run by name and says so; a name two runs share is an error listing
    them, and nothing is removed; the folder id names one of them."""
    train("keep-me")
    train("twice")
    _written_hours_ago("twice", 2)  # so the same name makes another run
    train("twice")
    shared = trainmon("rm", "twice")
    assert shared.returncode == 2 and shared.stderr.count("twice  ") == 2
    assert len(store.scan()) == 3
    newest = store.scan()[0]
    assert newest.name == "twice"
    removed = trainmon("rm", newest.id, "keep-me")
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout.count("removed ") == 2
    assert [r.name for r in store.scan()] == ["twice"]


def _written_hours_ago(name: str, hours: float) -> None:
    """Make the recordings of run ``name`` look written ``hours`` ago."""
    for run in store.scan():
        if run.name == name:
            for path in run.files:
                past = os.stat(path).st_mtime - hours * 3600
                os.utime(path, (past, past))


def test_prune_to_a_small_budget_removes_the_oldest() -> None:
    """runs --prune with a budget the two newest runs fit removes the oldest and says
    so; with the default budget all fit, and it says that."""
    for name in ("oldest", "middle", "newest"):
        train(name, 50, 50)
    fits = trainmon("runs", "--prune")
    assert fits.returncode == 0 and "all 3 runs fit" in fits.stdout
    runs = store.scan()
    budget = runs[0].size + runs[1].size + 1
    pruned = trainmon("runs", "--prune", TRAINMON_BUDGET=str(budget))
    assert pruned.returncode == 0, pruned.stderr
    assert "removed oldest" in pruned.stdout and "removed 1 run " in pruned.stdout
    assert [r.name for r in store.scan()] == ["newest", "middle"]


def test_empty_directory_and_limit() -> None:
    """No runs: where runs go and how to keep one; --limit lists the newest and says
    how many more there are."""
    empty = trainmon("runs")
    assert empty.returncode == 0 and "no runs kept in" in empty.stdout
    assert "TRAINMON_RECORD=0" in empty.stdout
    assert trainmon("runs", "--json").stdout.strip() == "[]"
    train("one")
    train("two")
    limited = trainmon("runs", "--limit", "1")
    assert limited.stdout.splitlines()[1].startswith("two")
    assert len(limited.stdout.splitlines()) == 2
    assert "1 older run not listed" in limited.stderr


def test_watch_record_without_file_keeps_the_runs_received() -> None:
    """watch --record without a file keeps what it receives (from a publisher that does
    not keep its own) as a run that `trainmon runs` lists and replay reads by name."""
    endpoint = free_endpoint()
    watch = start_cli("watch", "--bind", endpoint, "--record", "--plain", "--exit-when-done")
    publisher = None
    try:
        wait_listening(endpoint)
        publisher = start_publisher(
            endpoint, run="remote-run", count=40, env={"TRAINMON_RECORD": "0"}
        )
        out, err = watch.communicate(timeout=60)
        assert watch.returncode == 0, err
        assert "kept in " in out and "trainmon runs" in out
        publisher.wait(timeout=30)
    finally:
        stop(watch)
        if publisher is not None:
            stop(publisher)
    (run,) = listed()
    assert (run["name"], run["status"], run["last_step"]) == ("remote-run", "finished", 39)
    (kept,) = store.scan()
    assert [os.path.basename(path) for path in kept.files] == [
        store.safe(f"monitor-{os.uname().nodename}_{watch.pid}", 120) + ".tmr"
    ]
    replayed = trainmon("replay", "remote-run", "--plain")
    assert "run remote-run: finished" in replayed.stdout


def test_watch_record_beside_a_run_keeping_its_own_adds_no_duplicates() -> None:
    """On the machine training keeps its run, watch --record without a file writes
    into the same folder; replay and export by name take each record once."""
    endpoint = free_endpoint()
    watch = start_cli("watch", "--bind", endpoint, "--record", "--plain", "--exit-when-done")
    publisher = None
    try:
        wait_listening(endpoint)
        publisher = start_publisher(endpoint, run="both-keep", count=40)
        _out, err = watch.communicate(timeout=60)
        assert watch.returncode == 0, err
        assert publisher.wait(timeout=30) == 0
    finally:
        stop(watch)
        if publisher is not None:
            stop(publisher)
    (kept,) = store.scan()
    assert len(kept.files) == 2
    own = next(path for path in kept.files if "monitor-" not in os.path.basename(path))
    by_name = trainmon("export", "both-keep", "--format", "csv")
    alone = trainmon("export", own, "--format", "csv")
    assert by_name.returncode == 0, by_name.stderr
    assert len(alone.stdout.splitlines()) == 1 + 40 * 3  # loss, accuracy, grad_norm
    assert by_name.stdout == alone.stdout


def test_watch_record_without_file_on_an_unwritable_directory_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A data directory that cannot be made (under a file) stops the keeping with one
    line; the monitor receives every record and ends as usual."""
    monkeypatch.setenv("TRAINMON_DIR", "/dev/null/trainmon")
    endpoint = free_endpoint()
    watch = start_cli("watch", "--bind", endpoint, "--record", "--plain", "--exit-when-done")
    publisher = None
    try:
        wait_listening(endpoint)
        publisher = start_publisher(endpoint, run="nowhere", count=40)
        out, err = watch.communicate(timeout=60)
        assert publisher.wait(timeout=30) == 0
    finally:
        stop(watch)
        if publisher is not None:
            stop(publisher)
    assert watch.returncode == 0, err
    assert "Traceback" not in out + err
    (line,) = err.splitlines()
    assert line.startswith("trainmon: cannot record to /dev/null/trainmon/runs: ")
    assert line.endswith("; recording stopped")
    assert "run nowhere: finished" in out and "nothing missed" in out
    assert "kept in" not in out


def test_runs_on_a_terminal_is_a_table(tmux: Tmux) -> None:
    """On a terminal, `trainmon runs` draws a table, a long name cut."""
    long_name = "a-rather-long-run-name-that-goes-on-and-on"
    train(long_name, 10, 10)
    train("short", 5, 10)
    tmux.type(f"TRAINMON_DIR={shlex.quote(os.environ['TRAINMON_DIR'])} {command('runs')}")
    screen = tmux.wait_text("ended early")
    assert "finished" in screen and "short" in screen
    assert "a-rather-long-run-na" in screen and "…" in screen and long_name not in screen
    assert "run" in screen and "status" in screen and "best" in screen


# A process writing a large recording of run NAME as a live worker does (the file
# locked while it lives): STEPS steps of four metrics, then "ready", then it waits.
BIG_WRITER = """
import sys, time
from trainmon_client import store
from trainmon_client.framing import FrameWriter
from trainmon_client.protocol import Record, encode
name, steps = sys.argv[1], int(sys.argv[2])
folder, _ = store.choose_folder(name)
path = store.worker_file(folder, "big:1")
fd = store.open_worker_file(path)
with FrameWriter(path) as writer:
    batch = []
    for step in range(steps):
        metrics = {"loss": 1.0 / (step + 1), "a": 1.0, "b": 2.0, "c": float(step)}
        batch.append(Record("metrics", name, "big:1", step, 1e9 + step, step, 0, metrics))
        if len(batch) == 64 or step == steps - 1:
            writer.write(encode(batch)[1])
            batch = []
print("ready", flush=True)
time.sleep(600)
"""


def test_a_large_running_run_is_listed_from_its_end() -> None:
    """A running run past LIVE_READ_BYTES is listed from the end of its recordings:
    its last step and value, no best (not read whole)."""
    from trainmon.sources.runs import LIVE_READ_BYTES

    proc = subprocess.Popen(
        [sys.executable, "-c", BIG_WRITER, "big-live", "200000"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        (kept,) = store.scan()
        assert kept.size > LIVE_READ_BYTES
        (run,) = listed()
    finally:
        stop(proc)
    assert (run["status"], run["last_step"], run["metric"]) == ("running", 199_999, "loss")
    assert run["last"] == pytest.approx(1 / 200_000) and run["best"] is None
    assert 0 < run["records"] < 200_000


def test_piped_runs_prints_plain_numbers_in_one_format() -> None:
    """Piped, the step has no thousands separator (awk reads it) and values have four
    significant digits, a whole one too (1.000 beside 0.5000, not 1)."""
    train("long-run", 1200, 1200)
    train("flat-run", 3, 3, "one")
    lines = trainmon("runs").stdout.splitlines()
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["long-run"][-4:] == ["1199", "loss", "0.5000", "8.340e-04"], lines
    assert rows["flat-run"][-4:] == ["2", "loss", "1.000", "1.000"], lines
    steps = subprocess.run(
        ["awk", "NR > 1 { total += $7 } END { print total }"],
        input=trainmon("runs").stdout,
        capture_output=True,
        text=True,
        check=True,
    )
    assert steps.stdout.strip() == "1201"


def test_dry_run_says_what_would_go_and_removes_nothing() -> None:
    """runs --prune --dry-run and rm --dry-run say what they would remove, as the real
    ones say what they removed, and every run is still there; --dry-run alone is a
    usage error."""
    for name in ("oldest", "newest"):
        train(name, 50, 50)
    budget = str(store.scan()[0].size + 1)
    before = [r.id for r in store.scan()]
    pruned = trainmon("runs", "--prune", "--dry-run", TRAINMON_BUDGET=budget)
    assert pruned.returncode == 0, pruned.stderr
    assert "would remove oldest" in pruned.stdout and "would remove 1 run " in pruned.stdout
    assert "1 would be kept" in pruned.stdout and "nothing removed" in pruned.stdout
    removed = trainmon("rm", "--dry-run", "newest", "oldest")
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout.count("would remove ") == 2, removed.stdout
    assert [r.id for r in store.scan()] == before
    alone = trainmon("runs", "--dry-run")
    assert alone.returncode == 2 and "--dry-run goes with --prune" in alone.stderr
    assert trainmon("rm", "oldest").returncode == 0
    assert [r.name for r in store.scan()] == ["newest"]


def test_data_directory_a_file_or_relative(tmp_path: Path) -> None:
    """TRAINMON_DIR set to a file: runs, rm and replay by name say it is not a
    directory (one line, no traceback); a relative one is taken from the current
    directory, and runs says so."""
    script = tmp_path / "train.py"
    script.write_text("")
    for args in (("runs",), ("rm", "x"), ("replay", "x", "--plain"), ("runs", "--prune")):
        done = trainmon(*args, TRAINMON_DIR=str(script))
        assert done.returncode == 1, (args, done)
        assert f"{script} (TRAINMON_DIR={script}) is not a directory" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr and "no runs kept" not in done.stdout
    here = tmp_path / "here"
    here.mkdir()
    empty = trainmon("runs", cwd=here, TRAINMON_DIR="data")
    assert empty.returncode == 0, empty.stderr
    relative = "(TRAINMON_DIR=data is relative: taken from the current directory)"
    assert f"no runs kept in {here / 'data' / 'runs'} yet {relative}" in empty.stdout
    subprocess.run(
        [sys.executable, "-c", TRAIN, "rel-run", "5", "5", "loss"],
        cwd=here,
        env={**os.environ, "TRAINMON_DIR": "data"},
        check=True,
        capture_output=True,
        timeout=60,
    )
    listed_here = trainmon("runs", cwd=here, TRAINMON_DIR="data")
    assert listed_here.stdout.splitlines()[1].startswith("rel-run"), listed_here.stdout
    assert f"runs kept in {here / 'data' / 'runs'} {relative}" in listed_here.stderr
