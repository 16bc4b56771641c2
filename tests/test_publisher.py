"""The client against real sockets: delivery, never blocking, fork, threads, identity."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import (
    BackgroundMonitor,
    command,
    drain_until,
    free_endpoint,
    ipc_endpoint,
    start_publisher,
    stop,
    wait_for,
)
from trainmon.sources.subscriber import Subscriber
from trainmon.state import RunState
from trainmon_client import Monitor, arguments, history, ioloop
from trainmon_client.framing import ReadReport, read_frames
from trainmon_client.identity import identify
from trainmon_client.protocol import Columns, decode_payload_items, valid_name


@pytest.fixture
def sub(endpoint: str) -> Iterator[BackgroundMonitor]:
    monitor = BackgroundMonitor([endpoint])
    try:
        yield monitor
    finally:
        monitor.close()


def records_of(state: RunState, run: str = "r") -> int:
    found = state.runs.get(run)
    return 0 if found is None else sum(w.records for w in found.workers.values())


def test_records_arrive_in_order(sub: BackgroundMonitor, endpoint: str) -> None:
    """Everything logged arrives: hello, each record with its step, and bye."""
    state = sub.state
    with Monitor(endpoint, run="r", total_epochs=2) as mon:
        for step in range(500):
            mon.log(loss=1.0 / (step + 1), step=step)
        sub.wait(lambda: records_of(state) >= 501)
    sub.wait(lambda: state.current().finished)
    worker = state.current().workers[mon.worker]
    assert worker.total_epochs == 2 and worker.missed == 0 and worker.step == 499
    assert worker.series["loss"].values(3) == [1 / 498, 1 / 499, 1 / 500]


def test_records_logged_before_the_subscription_are_kept(
    sub: BackgroundMonitor, endpoint: str
) -> None:
    """A process that logs at once and exits, before the monitor's subscription could
    arrive, loses nothing: records wait for the subscription, and close() waits for it."""
    proc = start_publisher(endpoint, count=100)
    try:
        state = sub.state
        sub.wait(lambda: state.runs.get("r") is not None and state.current().finished)
        assert state.current().series("loss").count == 100
        assert proc.wait(timeout=10) == 0
    finally:
        stop(proc)


def test_monitor_started_after_the_worker(endpoint: str) -> None:
    """A monitor that starts late receives the history and says nothing was missed."""
    proc = start_publisher(endpoint, count=300, hold_s=30)
    try:
        wait_for(lambda: proc.stdout.readline(), what="publisher start")  # type: ignore[union-attr]
        time.sleep(0.3)  # let the publisher log all 300 with nobody listening
        source = Subscriber([endpoint])
        try:
            state = RunState()
            drain_until(sub_source := source, state, lambda: records_of(state) >= 301)
            worker = next(iter(state.current().workers.values()))
            assert worker.missed == 0 and worker.series["loss"].count == 300
            assert sub_source is source
        finally:
            source.close()
    finally:
        stop(proc)


def test_training_binds_and_monitor_connects(tmp_path: Path) -> None:
    """The remote direction: training binds (ipc here), the monitor connects."""
    endpoint = ipc_endpoint(tmp_path)
    with Monitor(endpoint, run="r", bind=True) as mon:
        for step in range(50):
            mon.log(loss=float(step))
        source = Subscriber(connect=[endpoint])
        try:
            state = RunState()
            drain_until(source, state, lambda: records_of(state) >= 51)
            assert state.current().workers[mon.worker].missed == 0
        finally:
            source.close()


def test_several_publisher_processes(sub: BackgroundMonitor, endpoint: str) -> None:
    """Four real processes, started together, are four workers with all their records."""
    procs = [
        start_publisher(endpoint, count=200, env={"RANK": str(i), "WORLD_SIZE": "4"})
        for i in range(4)
    ]
    try:
        state = sub.state
        sub.wait(lambda: records_of(state) >= 4 * 202, timeout_s=20)
        run = state.current()
        assert sorted(w.rank for w in run.workers.values()) == [0, 1, 2, 3]
        assert all(w.world == 4 and w.finished and w.missed == 0 for w in run.workers.values())
    finally:
        for proc in procs:
            stop(proc)


def test_non_numbers_dropped_with_one_warning(
    sub: BackgroundMonitor, endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A value that is not a number is dropped, warned about once per name; log never raises."""
    state = sub.state
    with caplog.at_level(logging.WARNING, logger="trainmon_client"):
        with Monitor(endpoint, run="r") as mon:
            for step in range(10):
                mon.log(loss=float(step), label="cat", weights=[1, 2])
            mon.log({"x": 1.0, 3: 2.0}, step=-1, epoch="two")  # type: ignore[arg-type, dict-item]
            mon.log(["not", "a", "mapping"])  # type: ignore[arg-type]
            mon.log(huge=10**30, flag=True, none=None)
        sub.wait(lambda: state.runs.get("r") is not None and state.current().finished)
    worker = state.current().workers[mon.worker]
    assert set(worker.series) == {"loss", "x", "huge", "flag"}
    assert worker.series["huge"].last == 1e30 and worker.series["flag"].last == 1.0
    messages = [r.getMessage() for r in caplog.records]
    assert sum("'label'" in m for m in messages) == 1
    assert sum("'weights'" in m for m in messages) == 1
    assert any("mapping" in m for m in messages) and any("step" in m for m in messages)


def test_unprintable_names_are_refused_at_the_source(
    sub: BackgroundMonitor, endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A metric name with a control character (an escape sequence would reach the
    watcher's terminal, and the monitor refuses it) is dropped with a warning, the rest of
    the record goes; a run name with one is an error at construction."""
    state = sub.state
    with caplog.at_level(logging.WARNING, logger="trainmon_client"):
        with Monitor(endpoint, run="r") as mon:
            for step in range(5):
                mon.log(loss=float(step), **{"evil\x1b[2J": 1.0, "tab\tname": 2.0})
        sub.wait(lambda: state.runs.get("r") is not None and state.current().finished)
    worker = state.current().workers[mon.worker]
    assert set(worker.series) == {"loss"} and worker.series["loss"].count == 5
    assert state.rejected == 0, "nothing the monitor refuses was sent"
    assert sum("control characters" in r.getMessage() for r in caplog.records) == 2
    with pytest.raises(ValueError, match="control characters"):
        Monitor(endpoint, run="run\x1b]0;title\x07")


@pytest.mark.parametrize("script", ["train\u00a0v2.py", "tr\udce9n.py", "a\x1b[2Jb.py"])
def test_default_run_name_from_any_script_name_is_valid(
    monkeypatch: pytest.MonkeyPatch, script: str
) -> None:
    """The run name made from the script's file name (which may hold anything, even bytes
    that are not UTF-8) is always one the monitor takes."""
    monkeypatch.setattr(sys, "argv", [script])
    monkeypatch.delenv("TRAINMON_RUN", raising=False)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    name = arguments._default_run()
    assert valid_name(name) and name.encode()


@pytest.mark.parametrize(
    ("argv", "prefix"),
    [
        (["/home/me/train.py"], "train-"),
        (["-c"], "python-"),  # python -c '...'
        ([""], "python-"),  # python reading stdin, the REPL
        ([], "python-"),
        (["/home/me/proj/mytrainer/__main__.py"], "mytrainer-"),  # python -m mytrainer
        (["/venv/lib/ipykernel_launcher.py", "-f", "k.json"], "notebook-"),  # Jupyter
    ],
)
def test_default_run_name_says_what_runs(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], prefix: str
) -> None:
    """The run is named after the script, the package run with -m, or what Python was
    started as: never "-c-<date>" or "__main__-<date>"."""
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    name = arguments._default_run()
    assert name.startswith(prefix) and name[len(prefix) :][:2] == "20", name


def test_numpy_like_scalars_are_numbers(sub: BackgroundMonitor, endpoint: str) -> None:
    """Anything with __float__ (numpy scalars, 0-d tensors) is logged as its value."""

    class Scalar:
        def __float__(self) -> float:
            return 0.25

    state = sub.state
    with Monitor(endpoint, run="r") as mon:
        mon.log(loss=Scalar())
    sub.wait(lambda: state.runs.get("r") is not None and state.current().finished)
    assert state.current().series("loss").last == 0.25


def test_step_counts_up_and_epoch_sticks(sub: BackgroundMonitor, endpoint: str) -> None:
    """Without step= the step counts up per call; set_epoch applies to later records."""
    state = sub.state
    with Monitor(endpoint, run="r") as mon:
        mon.set_epoch(2)
        mon.log(loss=1.0)
        mon.log(loss=2.0)
        mon.log(loss=3.0, step=10)
        mon.log(loss=4.0)
    sub.wait(lambda: state.runs.get("r") is not None and state.current().finished)
    worker = state.current().workers[mon.worker]
    assert [s for s, _ in worker.series["loss"].points] == [0, 1, 10, 11]
    assert worker.epoch == 2


def test_guide_calls(sub: BackgroundMonitor, endpoint: str) -> None:
    """record_loss/accuracy/gradient, set_epoch and current_* work as in the guide."""
    state = sub.state
    with Monitor(endpoint, run="r", total_epochs=3) as mon:
        assert mon.current_loss() is None
        mon.set_epoch(1)
        mon.record_loss(0.5)
        mon.record_accuracy(0.75)
        mon.record_gradient(0.01)
        assert mon.current_loss() == 0.5 and mon.current_accuracy() == 0.75
    sub.wait(lambda: state.runs.get("r") is not None and state.current().finished)
    run = state.current()
    assert {n: run.series(n).last for n in run.metric_names} == {
        "loss": 0.5,
        "accuracy": 0.75,
        "grad_norm": 0.01,
    }


def test_threads_log_at_once(sub: BackgroundMonitor, endpoint: str) -> None:
    """Four threads logging into one Monitor lose nothing and number every record."""
    state = sub.state
    with Monitor(endpoint, run="r") as mon:

        def work() -> None:
            for step in range(2000):
                mon.log(loss=float(step))

        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    sub.wait(lambda: state.runs.get("r") is not None and state.current().finished)
    worker = state.current().workers[mon.worker]
    assert worker.series["loss"].count == 8000 and worker.missed == 0 and mon.dropped == 0


def test_full_queue_drops_and_counts(endpoint: str) -> None:
    """With a tiny queue and a flood of calls, log() drops and counts instead of waiting."""
    mon = Monitor(endpoint, run="r", max_queue=10)
    for step in range(100_000):
        mon.log(loss=float(step))
    mon.close(timeout_s=0.5)
    assert mon.dropped > 0


def test_close_without_monitor_is_quick() -> None:
    """With nobody listening, close() returns at once rather than waiting out its budget."""
    mon = Monitor(free_endpoint(), run="r", flush_timeout_s=5.0)
    mon.log(loss=1.0)
    started = time.monotonic()
    mon.close()
    assert time.monotonic() - started < 4.0
    mon.log(loss=2.0)  # after close: ignored, no error


def test_exit_without_close_flushes(sub: BackgroundMonitor, endpoint: str) -> None:
    """A script that never calls close() still delivers everything and says bye at exit."""
    code = (
        "from trainmon_client import Monitor\n"
        f"m = Monitor({endpoint!r}, run='r')\n"
        "for i in range(50): m.log(loss=float(i))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        state = sub.state
        sub.wait(lambda: state.runs.get("r") is not None and state.current().finished)
        assert state.current().series("loss").count == 50
        assert proc.wait(timeout=10) == 0
    finally:
        stop(proc)


def test_fork_child_gets_its_own_publisher(sub: BackgroundMonitor, endpoint: str) -> None:
    """A forked child that logs appears as its own worker; the parent carries on."""
    state = sub.state
    with Monitor(endpoint, run="r") as mon:
        mon.log(loss=1.0)
        pid = os.fork()
        if pid == 0:  # the child
            try:
                mon.log(loss=2.0)
                mon.close()
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        mon.log(loss=3.0)
    sub.wait(
        lambda: (
            state.runs.get("r") is not None
            and len(state.current().workers) == 2
            and state.current().finished
        )
    )
    workers = state.current().workers.values()
    assert sorted(w.pid for w in workers) == sorted([os.getpid(), pid])
    values = {w.pid: w.series["loss"].values(10) for w in workers}
    assert values == {os.getpid(): [1.0, 3.0], pid: [2.0]}


@pytest.mark.parametrize("freeze", ["SIGSTOP", "SIGKILL"])
def test_log_never_blocks_on_a_frozen_or_dead_monitor(endpoint: str, freeze: str) -> None:
    """A monitor frozen or killed mid-run does not slow log() into waiting, nor close()."""
    monitor = subprocess.Popen(
        command("watch", "--plain", "--bind", endpoint).split(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        mon = Monitor(endpoint, run="r", flush_timeout_s=1.0)
        wait_for(lambda: monitor.poll() is None and _subscribed(mon), what="subscription")
        os.kill(monitor.pid, getattr(signal, freeze))
        started = time.monotonic()
        for step in range(200_000):
            mon.log(loss=float(step), accuracy=0.5, grad_norm=1.0)
        logging_s = time.monotonic() - started
        started = time.monotonic()
        mon.close()
        assert time.monotonic() - started < 3.0
        # 200k calls of a few hundred ns each: seconds would mean waiting on the socket.
        assert logging_s < 10.0
    finally:
        stop(monitor)


def _subscribed(mon: Monitor) -> bool:
    """Whether the I/O thread has heard a subscription (test-only peek)."""
    import gc

    from trainmon_client.ioloop import IOLoop as _IOLoop

    # (type(), not isinstance(): that reads __class__, which some objects warn about)
    return any(
        type(o) is _IOLoop and o.calls is mon._queue and o.subscribed for o in gc.get_objects()
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1"}, (3, 8, 1)),
        ({"SLURM_PROCID": "5", "SLURM_NTASKS": "16", "SLURM_LOCALID": "2"}, (5, 16, 2)),
        (
            {
                "OMPI_COMM_WORLD_RANK": "1",
                "OMPI_COMM_WORLD_SIZE": "2",
                "OMPI_COMM_WORLD_LOCAL_RANK": "1",
            },
            (1, 2, 1),
        ),
        ({"PMI_RANK": "7", "PMI_SIZE": "9"}, (7, 9, None)),
        ({}, (None, None, None)),
    ],
)
def test_identity_from_launchers(env: dict[str, str], expected: tuple[int | None, ...]) -> None:
    """Rank, world size and local rank come from torchrun, SLURM, Open MPI or PMI."""
    ident = identify(env)
    assert (ident.rank, ident.world, ident.local_rank) == expected
    assert ident.pid == os.getpid() and ident.worker == f"{ident.host}:{ident.pid}"


def test_endpoint_and_run_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """$TRAINMON_ENDPOINT and $TRAINMON_RUN are the defaults."""
    endpoint = free_endpoint()
    monkeypatch.setenv("TRAINMON_ENDPOINT", endpoint)
    monkeypatch.setenv("TRAINMON_RUN", "from-env")
    mon = Monitor()
    try:
        assert (mon.endpoint, mon.run) == (endpoint, "from-env")
    finally:
        mon.close()


def test_bad_endpoint_is_a_clear_error() -> None:
    """A malformed endpoint in the code fails at construction, saying what is expected;
    one the machine cannot give (an address not here, a port in use) is said in one
    line and the Monitor carries on without publishing."""
    with pytest.raises(ValueError, match="must start with tcp://"):
        Monitor("localhost:5555")
    mon = Monitor("tcp://203.0.113.7:5555", bind=True)
    mon.log(loss=1.0)
    mon.close()
    endpoint = free_endpoint()
    with Monitor(endpoint, bind=True):
        taken = Monitor(endpoint, bind=True, record=False)  # (kept, it would not be dropped)
        taken.log(loss=1.0)
        taken.close()
        assert taken.dropped == 1


def test_bad_values_never_stop_the_publisher(
    sub: BackgroundMonitor, endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Steps past 2**53, empty names and the like are dropped; later records still go."""
    state = sub.state
    with caplog.at_level(logging.WARNING, logger="trainmon_client"):
        with Monitor(endpoint, run="r") as mon:
            mon.log(loss=1.0, step=2**64)
            mon.log(loss=2.0, step=2**60)
            mon.log(**{"": 0.5, "ok": 1.0})
            mon.log(loss=3.0, epoch=2**70)
            for step in range(10):
                mon.log(loss=float(step))
        sub.wait(lambda: state.runs.get("r") is not None and state.current().finished)
    worker = state.current().workers[mon.worker]
    assert worker.missed == 0 and state.rejected == 0
    assert worker.series["loss"].count == 13 and worker.series["ok"].count == 1
    assert any(
        "step=18446744073709551616 (int) in log(loss)" in r.getMessage() for r in caplog.records
    )


def test_reused_dict_is_copied_at_log_time(sub: BackgroundMonitor, endpoint: str) -> None:
    """A dict the caller fills, logs and clears again is logged as it was at the call."""
    state = sub.state
    with Monitor(endpoint, run="r") as mon:
        values: dict[str, float] = {}
        for step in range(5):
            values["loss"] = float(step)
            mon.log(values)
            values.clear()
    sub.wait(lambda: state.runs.get("r") is not None and state.current().finished)
    assert state.current().series("loss").values(10) == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_totals_are_checked_at_construction() -> None:
    """total_steps/total_epochs take whole numbers (300.0 is 300); others are refused."""
    mon = Monitor(free_endpoint(), total_steps=300.0, total_epochs=3)  # type: ignore[arg-type]
    try:
        assert mon.total_steps == 300
    finally:
        mon.close()
    with pytest.raises(ValueError, match="total_steps"):
        Monitor(free_endpoint(), total_steps=-1)


def test_a_batch_too_large_for_the_monitor_goes_in_parts(
    sub: BackgroundMonitor, endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records whose metric names change from one to the next repeat the names in each
    column group: a batch can pass the monitor's payload limit. The client sends it in
    parts instead; every record arrives. (The limit is lowered here so that the batches
    this machine makes are over it.)"""
    limit = 20_000
    monkeypatch.setattr(ioloop, "MAX_PAYLOAD_BYTES", limit)
    wide = {f"grad_norm/model.layers.{i}.self_attn.q_proj.weight": 0.5 for i in range(64)}
    state = sub.state
    path = tmp_path / "sent.tmrec"
    with Monitor(endpoint, run="r", record_to=str(path)) as mon:
        for step in range(600):
            mon.log(wide if step % 2 else {"loss": 0.1}, step=step)
        sub.wait(lambda: records_of(state) >= 601)
    sub.wait(lambda: state.current().finished)
    worker = state.current().workers[mon.worker]
    assert worker.missed == 0 and state.rejected == 0 and worker.step == 599
    payloads = list(read_frames(path, ReadReport()))
    assert payloads and max(len(p) for p in payloads) <= limit
    assert sum(size for p in payloads for size in _sizes(p)) == 600 + 2  # hello, bye


def _sizes(payload: bytes) -> list[int]:
    """Records in each item of an encoded batch."""
    return [item.size if isinstance(item, Columns) else 1 for item in decode_payload_items(payload)]


def test_a_config_too_large_to_send_is_cut_or_left_out(
    sub: BackgroundMonitor, endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Long texts in a config are cut (the monitor shows 200 characters of one), and a
    config too large for a message is left out with a warning: the hello (host, rank,
    the run's totals) still arrives, with no record counted as missed."""
    state = sub.state
    long_texts = {f"note_{i}": "x" * 60_000 for i in range(20)}  # 1.2 MB as given
    with Monitor(endpoint, run="r", config=long_texts) as mon:
        mon.log(loss=1.0)
    sub.wait(lambda: state.runs.get("r") is not None and state.runs["r"].finished)
    run = state.runs["r"]
    assert len(run.config) == 20 and run.config["note_0"] == "x" * 199 + "…"
    huge = {f"k{i}": {f"j{j}": "y" * 900 for j in range(256)} for i in range(4)}  # ~0.9 MB
    with caplog.at_level(logging.WARNING, logger="trainmon_client"):
        with Monitor(endpoint, run="big", config=huge, total_steps=5) as mon:
            mon.log(loss=1.0)
        sub.wait(lambda: "big" in state.runs and state.runs["big"].finished)
    big = state.runs["big"]
    worker = big.workers[mon.worker]
    assert not big.config and worker.total_steps == 5 and worker.host and worker.missed == 0
    assert state.rejected == 0
    assert sum("config of" in r.getMessage() for r in caplog.records) == 1
    with pytest.raises(TypeError, match="config must be a mapping"):
        Monitor(endpoint, run="bad", config=[1, 2])  # type: ignore[arg-type]


_int64 = st.integers(-(2**63), 2**64 - 1)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.lists(st.dictionaries(st.text(max_size=3), _int64, max_size=2), max_size=40),
            st.dictionaries(st.text(max_size=3), _int64, min_size=1, max_size=2),
        ),
        max_size=60,
    ),
    st.integers(2, 300),
)
def test_joined_history_batches_carry_the_same_items(batches: list[object], limit: int) -> None:
    """A history re-send joins batches without decoding them: the items come out the
    same and in order, each message within the item and byte limits."""
    packed = [msgpack.packb(batch) for batch in batches]
    joined = list(history._joined(packed, max_items=50, max_bytes=limit * 20))
    items = []
    for message in joined:
        value = msgpack.unpackb(message, strict_map_key=False)
        items += value if isinstance(value, list) else [value]
        if message not in packed:  # joined from several: within the limits
            assert len(value) <= 50 and len(message) <= limit * 20 + 5
    expected = []
    for batch in batches:
        expected += batch if isinstance(batch, list) else [batch]
    assert items == expected and len(joined) <= len(packed)
