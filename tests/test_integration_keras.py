"""The Keras 3 integration: real training (torch backend) in a process of its own,
publishing to a real ``trainmon watch`` or ``trainmon tail``; what arrives is what Keras
itself logged, batch by batch and epoch by epoch."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ROOT, free_endpoint, start_cli, stop, wait_listening
from trainmon.sources.export import unique_metrics
from trainmon.sources.recording import load
from trainmon_client.protocol import Record

KERAS_PROC = Path(__file__).resolve().parent / "keras_proc.py"
# Looked up, not imported: importing Keras (and torch) here would only slow the test
# process. CI installs them (pinned in tests/constraints.txt), so there a missing one
# fails these tests instead of skipping them.
MISSING = [name for name in ("keras", "torch") if importlib.util.find_spec(name) is None]
needs_keras = pytest.mark.skipif(
    bool(MISSING) and not os.environ.get("CI"),
    reason=f"needs {' and '.join(MISSING)}: pip install -c tests/constraints.txt keras torch",
)


def _env() -> dict[str, str]:
    """The environment now (with the test's own TRAINMON_DIR), Keras on torch."""
    return dict(os.environ, KERAS_BACKEND="torch", OMP_NUM_THREADS="1")


def _train(endpoint: str, out: Path, *args: str) -> dict[str, Any]:
    """Run tests/keras_proc.py to its end; what Keras logged, as it wrote it."""
    job = subprocess.Popen(
        [sys.executable, str(KERAS_PROC), endpoint, str(out), *args],
        env=_env(),
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        printed, _ = job.communicate(timeout=150)
        assert job.returncode == 0, printed
    finally:
        stop(job)
    kept: dict[str, Any] = json.loads(out.read_text())
    return kept


def _expected(kept: dict[str, Any], steps: int) -> list[tuple[int, int, dict[str, float]]]:
    """(step, epoch, metrics) of every record the callback should send, in order: each
    batch's logs, then at each epoch's end its val_* from the History."""
    history, expected = kept["history"], []
    for index, epoch in enumerate(kept["epochs"]):
        for batch in (b for b in kept["batches"] if b["epoch"] == epoch):
            expected.append((epoch * steps + batch["batch"] + 1, epoch, batch["logs"]))
        val = {name: values[index] for name, values in history.items() if name[:4] == "val_"}
        expected.append(((epoch + 1) * steps, epoch, val))
    return expected


def _received(records: list[Record]) -> list[tuple[int | None, int | None, dict[str, float]]]:
    return [(r.step, r.epoch, dict(r.metrics)) for r in records]


@needs_keras
def test_fit_publishes_what_keras_logs_to_a_real_watch(tmp_path: Path) -> None:
    """fit over 3 epochs of 100 batches with validation_data, watched by a real
    ``watch --plain --exit-when-done --record``: each batch's logs (running means, as
    Keras gives them) at global steps 1-300 with Keras's epoch, each epoch's val_* at
    its last step, totals of 3 epochs and 300 steps from fit, and a bye at the end."""
    endpoint, recording = free_endpoint(), tmp_path / "run.tmr"
    watch = start_cli(
        "watch", "--bind", endpoint, "--plain", "--exit-when-done", "--record", str(recording)
    )
    try:
        wait_listening(endpoint)
        kept = _train(endpoint, tmp_path / "keras.json")
        out, err = watch.communicate(timeout=60)
        assert watch.returncode == 0, err
    finally:
        stop(watch)
    assert kept["params"] == {"verbose": 0, "epochs": 3, "steps": 100}
    records = load([recording]).records
    assert _received(list(unique_metrics(records))) == _expected(kept, 100)
    assert len(kept["batches"]) == 300 and kept["epochs"] == [0, 1, 2]
    for epoch in range(3):  # the epoch's training figures are its last batch's
        last = kept["batches"][epoch * 100 + 99]["logs"]
        assert {k: kept["history"][k][epoch] for k in last} == last
    info = [r.info for r in records if r.kind == "hello"][-1]
    assert (info["epochs"], info["steps"]) == (3, 300)
    assert info["config"]["keras_backend"] == "torch"
    assert info["config"]["optimizer"] == "Adam"
    assert info["config"]["steps_per_epoch"] == 100
    assert [r.kind for r in records].count("bye") == 1, "closed at the end of fit"
    assert "run keras: finished, 1 worker" in out and "nothing missed" in out, out


@needs_keras
def test_initial_epoch_and_a_monitor_of_ones_own_to_a_real_tail(tmp_path: Path) -> None:
    """fit(epochs=3, initial_epoch=1) of 40 batches an epoch with monitor=Monitor(...):
    the steps go on from epoch 1's start (41-120), and the callback leaves the Monitor
    open, so what the script logs after fit arrives too (``trainmon tail``'s lines)."""
    endpoint, printed = free_endpoint(), tmp_path / "tail.jsonl"
    with open(printed, "w") as out:  # a file, read when tail has ended
        tail = start_cli("tail", "--bind", endpoint, "--exit-when-done", stdout=out)
    try:
        wait_listening(endpoint)
        kept = _train(
            endpoint,
            tmp_path / "keras.json",
            *("--epochs", "3", "--initial-epoch", "1", "--batches", "40", "--own-monitor"),
        )
        tail.wait(timeout=60)
        assert tail.stderr is not None
        assert tail.returncode == 0, tail.stderr.read()
    finally:
        stop(tail)
    lines = [json.loads(line) for line in printed.read_text().splitlines()]
    received = [(r["step"], r["epoch"], r["metrics"]) for r in lines]
    after = {f"test_{name}": value for name, value in kept["after"].items()}
    assert kept["epochs"] == [1, 2] and after
    assert received == [*_expected(kept, 40), (120, 2, after)]
    assert received[0][:2] == (41, 1)


def test_importing_loads_no_framework_and_says_what_to_install() -> None:
    """``import trainmon_client`` (and the Monitor) never loads Keras; the integration
    module alone loads no Keras or backend either; without Keras, importing it raises
    ImportError naming what to install."""
    probe = (
        "import sys, trainmon_client, trainmon_client.monitor\n"
        "assert 'keras' not in sys.modules\n"
        "import trainmon_client.integrations.keras\n"
        "print(sorted(m for m in ('keras', 'torch') if m in sys.modules))\n"
    )
    if not MISSING or os.environ.get("CI"):
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
        assert (done.returncode, done.stdout) == (0, "[]\n"), done.stderr
    blocked = (
        "import sys\nsys.modules['keras'] = None  # as if not installed\n"
        "import trainmon_client.integrations.keras\n"
    )
    done = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True)
    assert done.returncode == 1
    assert "ImportError: trainmon_client.integrations.keras needs Keras 3" in done.stderr
    assert "pip install keras" in done.stderr
