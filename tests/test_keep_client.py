"""Runs kept by default, the publisher's side: real training processes (keep_proc.py)
that log with nobody watching and no flag set, and what they leave in the data
directory (a folder per run, a recording per worker), say on stderr, prune, continue;
full and read-only data directories never harm training."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import stop, wait_for
from trainmon_client import store
from trainmon_client.framing import ReadReport, read_frames
from trainmon_client.protocol import decode_payload
from trainmon_client.records import Record

_PROC = Path(__file__).with_name("keep_proc.py")


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data directory of the test's own (the processes started inherit it)."""
    where = tmp_path / "data"
    monkeypatch.setenv("TRAINMON_DIR", str(where))
    return where


def _train(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run keep_proc.py to its end (a minute at most)."""
    return subprocess.run(
        [sys.executable, str(_PROC), *args],
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(_PROC), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _metrics(path: str | Path) -> list[Record]:
    """The metrics records of one recording, read back."""
    report = ReadReport()
    return [
        record
        for payload in read_frames(path, report)
        for record in decode_payload(payload)
        if record.kind == "metrics"
    ]


def _mode(path: str | Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_run_nobody_watched_is_kept_in_its_folder(data: Path) -> None:
    """No flag set, nobody watching: a folder 0700 with run.json and one recording 0600
    holding exactly what was logged, not live once the process ended; stderr names the
    folder and how to replay it."""
    done = _train("--run", "kept-a", "--count", "300")
    assert done.returncode == 0 and "closed 0" in done.stdout, done
    runs = store.scan()
    assert [run.name for run in runs] == ["kept-a"], runs
    run = runs[0]
    assert _mode(data) == 0o700 and _mode(run.path) == 0o700
    with open(os.path.join(run.path, store.META), encoding="utf-8") as file:
        assert json.load(file)["name"] == "kept-a"
    assert len(run.files) == 1 and _mode(run.files[0]) == 0o600, run.files
    records = _metrics(run.files[0])
    assert [(r.step, r.metrics) for r in records] == [
        (i, {"loss": 1.0 / (i + 1), "accuracy": i / 300}) for i in range(300)
    ]
    assert not run.live() and not store.is_live(run.files[0])
    lines = done.stderr.splitlines()
    assert len(lines) == 1, lines
    assert f"its 300 records were kept in {run.path}" in lines[0], lines
    assert "`trainmon replay kept-a`" in lines[0], lines


def test_a_run_without_a_name_is_kept_under_the_scripts(data: Path) -> None:
    """No run name: the run is kept under the name made from the script and launch."""
    done = _train("--count", "20")
    assert done.returncode == 0, done
    runs = store.scan()
    assert len(runs) == 1 and runs[0].name.startswith("keep_proc-"), runs
    assert len(_metrics(runs[0].files[0])) == 20


@pytest.mark.parametrize("how", ["record=False", "TRAINMON_RECORD=0"])
def test_keeping_turned_off_writes_nothing(data: Path, how: str) -> None:
    """Monitor(record=False) or $TRAINMON_RECORD=0: nothing in the data directory, and
    the nobody-watched line says keeping is off."""
    if how == "record=False":
        done = _train("--run", "off", "--count", "50", "--no-record")
    else:
        done = _train("--run", "off", "--count", "50", env={"TRAINMON_RECORD": "0"})
    assert done.returncode == 0 and "closed 0" in done.stdout, done
    assert not data.exists() or not any(data.rglob("*")), list(data.rglob("*"))
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "were not kept (keeping runs is off" in lines[0], lines


def test_record_to_wins_over_keeping(data: Path, tmp_path: Path) -> None:
    """record_to= records to its file, as before: nothing in the data directory, and
    nothing said at close."""
    path = tmp_path / "mine.tmr"
    done = _train("--run", "own-file", "--count", "30", "--record-to", str(path))
    assert done.returncode == 0 and done.stderr == "", done
    assert [r.step for r in _metrics(path)] == list(range(30))
    assert store.scan() == []


def test_a_killed_run_keeps_its_records_up_to_the_last_flush(data: Path) -> None:
    """SIGKILL mid-run, once the recording has frames: the file reads (consecutive steps
    from 0, as logged), and the run is no longer live."""
    proc = _start("--run", "killed", "--forever", "--delay", "0.001")
    try:

        def some_frames() -> list[store.RunFolder]:
            runs = store.scan()
            return [  # (a file just made may not have its header yet)
                run
                for run in runs
                if run.files and run.size > 16 and run.live() and _metrics(run.files[0])
            ]

        run = wait_for(some_frames, timeout_s=30, what="frames in the recording")[0]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        stop(proc)
    records = _metrics(run.files[0])
    assert records, run
    assert [r.step for r in records] == list(range(len(records)))
    assert not store.is_live(run.files[0])
    assert not store.scan()[0].live()


def test_a_small_budget_prunes_the_oldest_finished_run_never_a_live_one(data: Path) -> None:
    """$TRAINMON_BUDGET of 1 byte: the next run removes the older finished run and says
    so; the run still writing, though older than the new one, stays."""
    assert _train("--run", "oldest", "--count", "20").returncode == 0
    live = _start("--run", "running", "--forever", "--delay", "0.01")
    try:
        wait_for(
            lambda: any(run.name == "running" and run.live() for run in store.scan()),
            timeout_s=30,
            what="the live run",
        )
        done = _train("--run", "newest", "--count", "20", env={"TRAINMON_BUDGET": "1"})
        names = [run.name for run in store.scan()]
    finally:
        stop(live)
    assert done.returncode == 0, done
    assert sorted(names) == ["newest", "running"], names
    said = [line for line in done.stderr.splitlines() if "removed 1 old run" in line]
    assert len(said) == 1 and "oldest (" in said[0] and "running" not in said[0], done.stderr


def test_a_bad_budget_is_said_once_and_the_default_used(data: Path) -> None:
    done = _train("--run", "budget", "--count", "20", env={"TRAINMON_BUDGET": "lots"})
    assert done.returncode == 0, done
    said = [line for line in done.stderr.splitlines() if "TRAINMON_BUDGET='lots'" in line]
    assert len(said) == 1 and "is not a size" in said[0], done.stderr
    assert [run.name for run in store.scan()] == ["budget"]


def test_the_same_name_again_continues_the_run_and_its_steps(data: Path) -> None:
    """The same explicit name twice: one folder, the second worker's automatic steps
    after the first's; with the folder's files an hour and more old, a new run."""
    for _ in range(2):
        assert _train("--run", "resume", "--count", "50").returncode == 0
    runs = store.scan()
    assert len(runs) == 1 and len(runs[0].files) == 2, runs
    steps = sorted(tuple(r.step for r in _metrics(path)) for path in runs[0].files)
    assert steps == [tuple(range(50)), tuple(range(50, 100))], steps
    old = time.time() - store.CONTINUE_S - 60
    for path in runs[0].files:
        os.utime(path, (old, old))
    assert _train("--run", "resume", "--count", "30").returncode == 0
    again = store.scan()
    assert len(again) == 2 and again[0].path != runs[0].path, again
    assert [r.step for r in _metrics(again[0].files[0])] == list(range(30))


def test_continuing_a_kept_run_is_said_at_the_start_and_at_close(data: Path) -> None:
    """A name reused while its run is recent continues it, never silently: the second
    process says at the start where the run is kept, when it was last written and the
    step its steps go on from, and its closing line says it continued; the first said
    nothing of the kind."""
    first = _train("--run", "lr-0.01", "--count", "300")
    assert first.returncode == 0, first
    assert "trainmon: continuing" not in first.stderr, first.stderr
    (run,) = store.scan()
    second = _train("--run", "lr-0.01", "--count", "300")
    assert second.returncode == 0, second
    lines = second.stderr.splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"trainmon: continuing run 'lr-0.01' kept in {run.path} (last ")
    said = " s ago; steps go on from 300): give another name (run= or TRAINMON_RUN)"
    assert said in lines[0], lines
    closing = f"its 300 records were kept in {run.path} with the run they continued ("
    assert closing in lines[1], lines


def test_a_rank_joining_its_jobs_live_run_says_nothing_of_continuing(data: Path) -> None:
    """Another process of the same name while the run is written (a rank of its job)
    shares the folder and says nothing of continuing; its closing line says kept."""
    live = _start("--run", "job", "--forever", "--delay", "0.01")
    try:
        wait_for(
            lambda: any(run.live() and run.files for run in store.scan()),
            timeout_s=30,
            what="the live run",
        )
        done = _train("--run", "job", "--count", "20")
    finally:
        stop(live)
    assert done.returncode == 0, done
    (run,) = store.scan()
    assert len(run.files) == 2, run
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and f"its 20 records were kept in {run.path}" in lines[0], lines


def test_the_closing_line_counts_the_records_dropped(data: Path) -> None:
    """A tight loop filling a small queue: the closing line says how many records were
    kept and how many more were dropped (the queue was full); together, every step."""
    done = _train("--run", "flood", "--count", "200000", "--max-queue", "10")
    assert done.returncode == 0, done
    dropped = int(done.stdout.split("closed ")[1].split()[0])
    assert dropped > 0, done.stdout
    (line,) = done.stderr.splitlines()
    kept = int(line.split("its ")[1].split(" records")[0])
    assert kept + dropped == 200000, (kept, dropped)
    assert f"; {dropped:,} more were dropped: the queue was full; next time" in line, line


def test_a_forked_child_records_into_its_parents_run(data: Path) -> None:
    """A child forked after logging keeps its records as a worker file of its own in
    the parent's run folder."""
    done = _train("--run", "forked", "--count", "40", "--fork-at", "20")
    assert done.returncode == 0 and "closed 0" in done.stdout, done
    runs = store.scan()
    assert len(runs) == 1 and len(runs[0].files) == 2, runs
    counts = sorted(len(_metrics(path)) for path in runs[0].files)
    assert counts == [10, 40], counts


def _mount(where: Path, options: str) -> None:
    """A tmpfs on ``where`` (skipped where mounting is not possible, except on CI)."""
    where.mkdir()
    if os.geteuid() != 0 and not os.environ.get("CI"):
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        if os.environ.get("CI"):
            raise AssertionError(done.stderr)
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")


@pytest.mark.parametrize(
    ("options", "why", "fate"),
    [
        ("size=64k", "No space left on device", "were not all kept"),
        ("ro,size=64k", "Read-only file system", "were not kept"),
    ],
)
def test_a_full_or_read_only_data_directory_never_harms_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: str, why: str, fate: str
) -> None:
    """$TRAINMON_DIR on a full (64 KiB) or a read-only tmpfs: every step is logged,
    nothing dropped, the process ends on time, and one line says the recording stopped
    (besides the nobody-watched line, which says the records were not kept)."""
    disk = tmp_path / "disk"
    _mount(disk, options)
    try:
        monkeypatch.setenv("TRAINMON_DIR", str(disk))
        started = time.monotonic()
        done = _train("--run", "full", "--count", "20000", "--metrics", "5")
        took = time.monotonic() - started
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)
    assert done.returncode == 0, done
    assert "logged 20000 " in done.stdout and "closed 0" in done.stdout, done.stdout
    assert took < 20, took
    lines = done.stderr.splitlines()
    stopped = [line for line in lines if "recording stopped" in line]
    assert len(stopped) == 1 and why in stopped[0], lines
    assert len(lines) == 2, lines
    assert f"{fate} (keeping them failed, as said above)" in lines[1], lines


def test_a_hung_data_directory_holds_up_neither_monitor_nor_log(data: Path) -> None:
    """A data directory where choosing the folder blocks (a run's run.json that is a
    FIFO nobody writes, as a hung file system would): training logs every step at
    full speed, closes on time, and one line says the recording did not end in time."""
    hung = data / "runs" / "20200101-000000_hung"
    hung.mkdir(parents=True)
    os.mkfifo(hung / store.META)
    started = time.monotonic()
    done = _train("--run", "after", "--count", "20000")
    took = time.monotonic() - started
    assert done.returncode == 0 and "closed 0" in done.stdout, done
    logged = float(done.stdout.split("logged 20000 in ")[1].split()[0])
    assert logged < 5 and took < 15, (logged, took)
    lines = done.stderr.splitlines()
    assert len(lines) == 2, lines
    assert "stopped: its writes did not end in time (20,000 records not recorded)" in lines[0]
    assert "its 20000 records were not kept (keeping them failed, as said above)" in lines[1]
