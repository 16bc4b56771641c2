"""Nothing lost that is not counted: a restarted monitor, a full or hung recording disk,
too many metrics in one call, a queue bounded in values, odd close deadlines."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import (
    free_endpoint,
    start_cli,
    start_publisher,
    stop,
    wait_for,
    wait_listening,
)

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
        publisher = start_publisher(
            endpoint, count=40_000, delay_s=0.0002, extra=["--metrics", "5"]
        )
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


_RECORDING_PUBLISHER = """
import sys, time
from trainmon_client import Monitor
endpoint, path, count, metrics = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
mon = Monitor(endpoint, run="r", record_to=path, max_queue_values=int(sys.argv[5]))
extra = {f"m{i}": float(i) for i in range(metrics)}
started = time.monotonic()
for step in range(count):
    mon.log(extra, loss=1.0 / (step + 1), step=step)
    if step % 100 == 99:
        time.sleep(0.001)
logged_s = time.monotonic() - started
mon.close()
print("closed", mon.dropped, round(logged_s, 2), flush=True)
"""


def _record_run(
    endpoint: str,
    path: Path,
    count: int,
    metrics: int = 3,
    timeout_s: float = 60,
    queue_values: int = 500_000,
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """A publisher process logging ``count`` records with record_to=``path`` (and
    ``max_queue_values=queue_values``) to a real monitor process: the publisher's end,
    and the monitor's last counts of it."""
    monitor = _monitor(endpoint, 120)
    try:
        assert monitor.stdout is not None and monitor.stdout.readline().strip() == "listening"
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                _RECORDING_PUBLISHER,
                endpoint,
                str(path),
                str(count),
                str(metrics),
                str(queue_values),
            ],
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )

        def finished() -> dict[str, Any] | None:
            assert monitor.stdout is not None
            line = json.loads(monitor.stdout.readline())
            counts = next(iter(line["workers"].values()), None) if line["workers"] else None
            return counts if counts is not None and counts["finished"] else None

        counts = wait_for(finished, timeout_s=30, interval_s=0, what="the bye at the monitor")
    finally:
        stop(monitor)
    return done, counts


def _recorded(path: Path) -> int:
    """Metrics records in the recording at ``path``, read back."""
    from trainmon.sources.recording import load

    return sum(r.kind == "metrics" for r in load([path]).records)


def test_a_full_disk_stops_the_recording_and_counts_what_it_did_not_keep(
    tmp_path: Path,
) -> None:
    """record_to on a 64 KiB tmpfs: one line says the recording stopped, every record
    still reaches the monitor, and the monitor shows exactly how many the file lacks."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], check=True)
    try:
        path = disk / "run.tmrec"
        done, counts = _record_run(free_endpoint(), path, 20_000)
        recorded = _recorded(path)
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)
    assert done.returncode == 0 and done.stdout.startswith("closed 0 "), done
    lines = done.stderr.splitlines()
    assert len(lines) == 1, lines
    assert f"cannot record to {path}: No space left on device" in lines[0], lines
    assert counts["records"] == 20_002 and counts["missed"] == 0, counts  # + hello, bye
    assert 0 < recorded < 20_000
    assert counts["unrecorded"] == 20_000 - recorded, (counts, recorded)


def test_a_recording_whose_writes_block_holds_up_nothing(tmp_path: Path) -> None:
    """record_to a FIFO opened but never read: the writes block once its 64 KiB buffer
    is full, as on a hung network file system. Logging and publishing go on, close()
    keeps to its deadline, one line says the recording stopped, and what was written
    plus what is counted as not recorded is every record."""
    path = tmp_path / "run.tmrec"
    os.mkfifo(path)
    held = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        started = time.monotonic()
        done, counts = _record_run(free_endpoint(), path, 20_000)
        took = time.monotonic() - started
        written = tmp_path / "written.tmrec"
        with open(written, "wb") as file:
            while chunk := os.read(held, 65536):
                file.write(chunk)
    finally:
        os.close(held)
    assert done.returncode == 0 and done.stdout.startswith("closed 0 "), done
    assert took < 20, took
    assert counts["records"] == 20_002 and counts["missed"] == 0, counts
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "its writes did not end in time" in lines[0], lines
    recorded = _recorded(written)
    assert 0 < recorded < 20_000
    assert counts["unrecorded"] == 20_000 - recorded, (counts, recorded)


def test_a_recording_that_cannot_open_holds_up_nothing_and_overflows_counted(
    tmp_path: Path,
) -> None:
    """record_to a FIFO nobody opens for reading (the open itself blocks): records
    queue for it up to a bound (16 MiB), one line says it is not keeping up, what does
    not fit is counted, and close() keeps to its deadline: nothing is recorded and
    every record not dropped is counted as not recorded."""
    path = tmp_path / "run.tmrec"
    os.mkfifo(path)
    started = time.monotonic()
    # (the call queue holds every call, so all 12,000 reach the recording's queue and
    # pass its bound even on a loaded machine, where the I/O thread falls behind)
    done, counts = _record_run(free_endpoint(), path, 12_000, metrics=200, queue_values=10**8)
    assert time.monotonic() - started < 30
    assert done.returncode == 0 and done.stdout.startswith("closed "), done
    dropped = int(done.stdout.split()[1])  # (a loaded machine may not send all in time)
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "is not keeping up" in lines[0], lines
    assert counts["missed"] == 0 and counts["dropped"] == dropped, counts
    assert counts["records"] == 12_002 - dropped, counts
    assert counts["unrecorded"] == 12_000 - dropped, counts


def _tmpfs(directory: Path) -> None:
    """A 64 KiB tmpfs on ``directory`` (skip if not root); the caller unmounts it
    (``umount -l``)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    directory.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(directory)], check=True)


def test_watch_record_on_a_full_disk_goes_on_watching(tmp_path: Path) -> None:
    """`watch --record` to a 64 KiB tmpfs: no traceback; the status lines say the
    recording stopped, watching goes on to the end of the run, and one line on stderr
    says why it stopped."""
    disk = tmp_path / "disk"
    _tmpfs(disk)
    endpoint = free_endpoint()
    watch = start_cli(
        "watch",
        "--bind",
        endpoint,
        "--plain",
        "--plain-interval",
        "0.5",
        "--exit-when-done",
        "--record",
        str(disk / "run.tmrec"),
    )
    publisher = None
    try:
        wait_listening(endpoint)
        publisher = start_publisher(
            endpoint, count=20_000, delay_s=0.0001, extra=["--metrics", "5"]
        )
        out, err = watch.communicate(timeout=90)
    finally:
        stop(watch)
        if publisher is not None:
            stop(publisher)
        subprocess.run(["umount", "-l", str(disk)], check=True)
    assert watch.returncode == 0, (out, err)
    assert "Traceback" not in out + err, err
    assert err.splitlines() == [
        f"trainmon: cannot record to {disk / 'run.tmrec'}: No space left on device; "
        "recording stopped"
    ], err
    status = [line for line in out.splitlines() if "recording stopped" in line]
    assert status, out  # said on screen (the status lines) while watching went on
    assert "nothing missed" in out and "records received 20002 " in out, out[-2000:]


@pytest.mark.parametrize("how", ["close()", "the exit handler"])
def test_an_infinite_flush_timeout_waits_and_never_raises(how: str) -> None:
    """flush_timeout_s=math.inf: close() and the exit handler deliver everything and
    say bye, without a word on stderr."""
    from tests.helpers import BackgroundMonitor

    endpoint = free_endpoint()
    monitor = BackgroundMonitor([endpoint])
    script = (
        "import math\nfrom trainmon_client import Monitor\n"
        f"mon = Monitor({endpoint!r}, run='r', flush_timeout_s=math.inf)\n"
        "for step in range(1000):\n    mon.log(loss=1.0)\n"
        + ("mon.close()\n" if how == "close()" else "")
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0 and done.stderr == "", done.stderr
        monitor.wait(lambda: (run := monitor.state.runs.get("r")) is not None and run.finished)
        run = monitor.state.runs["r"]
        assert run.records == 1002 and run.missed == 0  # + hello and bye
    finally:
        monitor.close()


def test_a_flush_timeout_that_is_no_number_of_seconds() -> None:
    """nan or a negative flush_timeout_s is a mistake in the code, said at once;
    close(timeout_s=nan) never raises (it keeps flush_timeout_s)."""
    import math

    from trainmon_client import Monitor

    for wrong in (math.nan, -1.0):
        with pytest.raises(ValueError, match="flush_timeout_s"):
            Monitor(free_endpoint(), run="r", flush_timeout_s=wrong)
    mon = Monitor(free_endpoint(), run="r", flush_timeout_s=0.2)
    started = time.monotonic()
    mon.close(timeout_s=math.nan)
    assert time.monotonic() - started < 5


def test_a_call_with_more_metrics_than_a_record_holds_loses_none() -> None:
    """log() with 1,000 metrics (a record holds 256): each call goes out as 4 records
    of the same step; every value arrives, nothing is dropped or missed."""
    from tests.helpers import BackgroundMonitor, NotingSink

    endpoint = free_endpoint()
    monitor = BackgroundMonitor([endpoint])
    values: dict[tuple[str, int], float] = {}

    def noted(record: Any, taken: bool) -> None:
        if taken and record.kind == "metrics":
            for name, value in record.metrics.items():
                values[(name, record.step)] = value

    # (every record one by one: the values themselves are checked, not just the count)
    with monitor.lock:
        monitor.sink = NotingSink(monitor.state, noted)
    publisher = start_publisher(endpoint, count=100, extra=["--metrics", "997"])
    try:
        _, err = publisher.communicate(timeout=60)
        assert publisher.returncode == 0 and err == "", err
        monitor.wait(lambda: (run := monitor.state.runs.get("r")) is not None and run.finished)
        with monitor.lock:
            run = monitor.state.runs["r"]
            worker = next(iter(run.workers.values()))
            assert (run.records, run.missed, run.client_dropped) == (402, 0, 0)
            assert worker.step == 99
    finally:
        stop(publisher)
        monitor.close()
    assert len(values) == 100 * 1000
    assert values[("metric_996", 50)] == pytest.approx(math.sin(50 / (10 + 996)))


_FLOOD = """
import re
from trainmon_client import Monitor
names = [f"layer_{i}.grad_norm" for i in range(256)]
mon = Monitor("tcp://127.0.0.1:9", run="r", flush_timeout_s=0)
most = 0
for step in range(100_000):
    mon.log({n: step + i * 0.5 for i, n in enumerate(names)})
    if step % 500 == 0:
        most = max(most, sum(len(call[4]) for call in list(mon._queue)))
mon.close(0)
# VmHWM, this process's own peak (ru_maxrss would keep pytest's across exec)
status = open("/proc/self/status").read()
rss_mb = int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)) // 1024
print(rss_mb, mon.dropped, most)
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads /proc for the peak")
def test_the_queue_is_bounded_in_values_not_only_in_calls() -> None:
    """100,000 calls of 256 fresh metric values, logged faster than they can be sent
    (this took training to 682 MB and more): the queue holds at most 500,000 values,
    the rest are dropped and counted, and the process stays small."""
    done = subprocess.run(
        [sys.executable, "-c", _FLOOD], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    rss_mb, dropped, most = map(int, done.stdout.split())
    assert dropped > 0
    assert most <= 500_000 + 256, most
    assert rss_mb < 200, rss_mb  # (about 1 GB without the bound)


_RECORD_ONLY = """
import sys
from trainmon_client import Monitor
# (a queue of 100k calls whatever their size: the 100-metric calls below would otherwise
# lower its bound to 5,000 calls, and drop what comes while the I/O thread is behind)
mon = Monitor("tcp://127.0.0.1:9", run="r", record_to=sys.argv[1], max_queue_values=10**7)
for step in range(5000):
    mon.log(loss=1.0 / (step + 1), accuracy=0.5, grad_norm=2.0, step=step)
for step in range(5000, 5300):  # more metrics than fit 64 records in a few KiB
    mon.log({f"m{i}": float(i) for i in range(100)}, step=step)
mon.close()
"""


def test_damage_in_the_middle_of_a_recording_costs_at_most_64_records(tmp_path: Path) -> None:
    """A training process records 5,300 records as fast as it can (batches of up to 512
    go out): its frames hold at most 64 records and about 4 KiB, so 21 bytes damaged in
    the middle of the file lose at most 64 records."""
    from trainmon.sources.recording import load
    from trainmon_client.framing import ReadReport, read_frames
    from trainmon_client.protocol import decode_payload

    path = tmp_path / "run.tmrec"
    done = subprocess.run(
        [sys.executable, "-c", _RECORD_ONLY, str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    sizes = [
        (sum(r.kind == "metrics" for r in decode_payload(p)), len(p))
        for p in read_frames(path, ReadReport())
    ]
    assert sum(records for records, _ in sizes) == 5300
    assert max(records for records, _ in sizes) == 64
    assert max(size for _, size in sizes) < 6 * 1024, max(size for _, size in sizes)
    data = bytearray(path.read_bytes())
    for middle in (len(data) // 3, len(data) // 2, 2 * len(data) // 3):
        damaged = tmp_path / f"damaged-{middle}.tmrec"
        damaged.write_bytes(data[:middle] + b"\xff" * 21 + data[middle + 21 :])
        loaded = load([damaged])
        kept = sum(r.kind == "metrics" for r in loaded.records)
        assert loaded.damaged >= 1 and 5300 - 64 <= kept < 5300, (middle, kept)


def test_watch_record_frames_hold_at_most_64_records(tmp_path: Path) -> None:
    """`watch --record` of a fast publisher (batches of up to 512 records): the file's
    frames hold at most 64 records each, every record is there, and 21 bytes damaged in
    the middle lose at most 64 of them."""
    from trainmon.sources.recording import load
    from trainmon_client.framing import ReadReport, read_frames
    from trainmon_client.protocol import decode_payload

    endpoint = free_endpoint()
    path = tmp_path / "watched.tmrec"
    watch = start_cli(
        "watch", "--bind", endpoint, "--plain", "--exit-when-done", "--record", str(path)
    )
    publisher = None
    try:
        wait_listening(endpoint)
        publisher = start_publisher(endpoint, count=5000)
        out, err = watch.communicate(timeout=90)
    finally:
        stop(watch)
        if publisher is not None:
            stop(publisher)
    assert watch.returncode == 0 and "recorded to" in out, (out, err)
    sizes = [
        sum(r.kind == "metrics" for r in decode_payload(p)) for p in read_frames(path, ReadReport())
    ]
    assert sum(sizes) == 5000 and max(sizes) <= 64, (sum(sizes), max(sizes))
    data = path.read_bytes()
    middle = len(data) // 2
    damaged = tmp_path / "damaged.tmrec"
    damaged.write_bytes(data[:middle] + b"\xff" * 21 + data[middle + 21 :])
    kept = sum(r.kind == "metrics" for r in load([damaged]).records)
    assert 5000 - 64 <= kept < 5000, kept


def test_the_monitor_shows_what_was_not_recorded() -> None:
    """A client's 'unrecorded' count and a recording of the monitor's own that stopped
    are in the stats, the status line and the summary."""
    from tests.test_state import fed, hello, metrics
    from tests.test_view import NOW, text
    from trainmon.report import status_line, summary
    from trainmon.state import RunState
    from trainmon.view import ViewOptions, stats_panel
    from trainmon_client.protocol import Record

    counters = {"logged": 1, "dropped": 0, "queued": 0, "unrecorded": 7}
    state: RunState = fed(
        hello(), metrics(1), Record("heartbeat", "r", "w0", 1, 100.0, counters=counters)
    )
    state.note_recording("cannot record to x.tmrec: No space left on device; recording stopped")
    run = state.runs["r"]
    assert run.client_unrecorded == 7
    shown = text(stats_panel(state, run, ViewOptions(), NOW), width=100, height=40)
    assert "7 not in record_to" in shown and "No space left on device" in shown, shown
    line = status_line(state, ViewOptions(), NOW)
    assert "7 not recorded by clients" in line and "recording stopped" in line, line
    assert "7 not recorded by clients" in summary(state, ViewOptions(), NOW)
