"""Lightning: real training with ``Trainer(logger=TrainmonLogger())`` (tests/lightning_proc.py)
published to a real ``trainmon watch --record``; the values received are those Lightning
logged (kept by a second logger on every rank), the hyperparameters arrive as the config,
the totals come from the Trainer (fractional where max_steps ends an epoch part-way), and
two DDP ranks on CPU share one run."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import free_endpoint, start_cli, stop, wait_listening
from trainmon.sources.recording import load
from trainmon_client.protocol import Record

# Looked up, not imported: importing Lightning here would only slow the test process.
# CI installs it (pinned in tests/constraints.txt), so there a missing one fails instead.
if importlib.util.find_spec("lightning") is None and not os.environ.get("CI"):
    pytest.skip(
        "needs lightning: pip install -c tests/constraints.txt lightning",
        allow_module_level=True,
    )

TRAIN = Path(__file__).resolve().parent / "lightning_proc.py"
CONFIG = {"lr": 0.05, "hidden": 16}  # Tiny's save_hyperparameters()


def _train(tmp_path: Path, *args: str, fails: bool = False) -> list[Record]:
    """Run lightning_proc.py with ARGS publishing to `trainmon watch --plain
    --exit-when-done --record`; every record the monitor received, once each."""
    endpoint = free_endpoint()
    recording = tmp_path / "run.tmr"
    with open(tmp_path / "watch.out", "w") as screen:
        watch = start_cli(
            "watch", "--bind", endpoint, "--plain", "--exit-when-done", "--record", str(recording),
            stdout=screen,
        )  # fmt: skip
    job = None
    try:
        wait_listening(endpoint)
        env = dict(
            os.environ, TRAINMON_ENDPOINT=endpoint, GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1"
        )
        job = subprocess.Popen(
            [sys.executable, str(TRAIN), str(tmp_path), *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its ranks too can be stopped, whatever happens
        )
        out, _ = job.communicate(timeout=120)  # (within the tests' 180 s)
        assert (job.returncode != 0) == fails, out
        assert ("Traceback" in out) == fails and "trainmon:" not in out, out
        _, err = watch.communicate(timeout=30)  # every worker said bye: it ends
        assert watch.returncode == 0, err
    finally:
        stop(watch)
        if job is not None:
            stop(job)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(job.pid, signal.SIGKILL)  # a rank Lightning started, if left
    assert "nothing missed" in (tmp_path / "watch.out").read_text()
    seen: dict[tuple[str, int], Record] = {}
    for record in load([recording]).records:
        seen.setdefault((record.worker, record.seq), record)
    return sorted(seen.values(), key=lambda r: (r.worker, r.seq))


def _kept(path: Path) -> list[tuple[int | None, Any, dict[str, float]]]:
    """What Lightning logged on one rank: (step, epoch, the other metrics) per call."""
    calls = json.loads(path.read_text())
    return [(c["step"], c["metrics"].pop("epoch", None), c["metrics"]) for c in calls]


def _received(records: Sequence[Record], worker: str) -> list[tuple[int | None, Any, Any]]:
    return [
        (r.step, r.epoch, dict(r.metrics))
        for r in records
        if r.worker == worker and r.kind == "metrics"
    ]


def _hellos(records: Sequence[Record]) -> dict[str, dict[str, Any]]:
    """Each worker's last hello info (totals and config set later come in new hellos)."""
    return {r.worker: dict(r.info) for r in records if r.kind == "hello"}


def test_values_config_and_totals_of_a_fit(tmp_path: Path) -> None:
    """Three epochs of 80 steps: every value Lightning logged arrives as it logged it,
    at its step, with Lightning's epoch as the record's epoch (never a metric named
    epoch); the config is the module's hyperparameters; the totals 3 epochs, 240 steps."""
    records = _train(tmp_path, "--max-epochs", "3")
    assert len({r.run for r in records}) == 1 and records[0].run.startswith("lightning_proc-")
    (worker, info), *others = _hellos(records).items()
    assert not others
    assert info["config"] == CONFIG
    assert (info["epochs"], info["steps"]) == (3, 240) and "epochs_f" not in info
    assert "rank" not in info  # one process: no rank to show
    received = _received(records, worker)
    assert received == _kept(tmp_path / "rank0.json")
    train = [m["train_loss"] for _, _, m in received if "train_loss" in m]
    val = [(step, epoch) for step, epoch, m in received if "val_loss" in m]
    assert len(train) == 240 and val == [(79, 0), (159, 1), (239, 2)], val
    assert all("epoch" not in m for _, _, m in received)
    assert sum(train[-20:]) < sum(train[:20]) / 2, "the model learned"
    assert [r.kind for r in records].count("bye") == 1


def test_two_ddp_ranks_on_cpu_share_a_run(tmp_path: Path) -> None:
    """strategy="ddp", devices=2: both ranks publish into one run, as ranks 0 and 1 of
    2, each the values it logged itself; max_steps=100 of 40-step epochs makes the
    total 2.5 epochs."""
    records = _train(tmp_path, "--devices", "2", "--max-steps", "100")
    assert len({r.run for r in records}) == 1
    hellos = _hellos(records)
    by_rank = {info["rank"]: (worker, info) for worker, info in hellos.items()}
    assert sorted(by_rank) == [0, 1] and len(hellos) == 2
    for rank, (worker, info) in by_rank.items():
        assert (info["world"], info["local_rank"]) == (2, rank)
        assert info["config"] == CONFIG
        assert (info["epochs"], info["epochs_f"], info["steps"]) == (3, 2.5, 100)
        received = _received(records, worker)
        assert received == _kept(tmp_path / f"rank{rank}.json")
        assert sum("train_loss" in m for _, _, m in received) == 100
        assert max(epoch for _, epoch, _ in received) == 2
    assert _received(records, by_rank[0][0]) != _received(records, by_rank[1][0])
    assert [r.kind for r in records].count("bye") == 2


def test_without_autolog_the_logger_as_a_callback_sends_the_totals(tmp_path: Path) -> None:
    """enable_autolog_hparams=False (no log_hyperparams, no log_graph) with the logger
    also in callbacks=[...]: the totals still come from the Trainer; no config."""
    records = _train(tmp_path, "--max-epochs", "2", "--no-autolog")
    ((worker, info),) = _hellos(records).items()
    assert (info["epochs"], info["steps"]) == (2, 160) and "config" not in info
    assert _received(records, worker) == _kept(tmp_path / "rank0.json")


def test_a_failed_fit_raises_an_alert(tmp_path: Path) -> None:
    """Training that raises: what was logged before arrives, then an alert that training
    failed, then the bye (the Monitor closes at exit, as the process ends)."""
    records = _train(tmp_path, "--fail-at", "30", fails=True)
    kinds = [r.kind for r in records]
    assert kinds.count("metrics") == 30 and kinds.count("bye") == 1, kinds
    (alert,) = (r for r in records if r.kind == "alert")
    assert alert.info["title"] == "Lightning: training failed", alert
    assert kinds.index("alert") > max(i for i, kind in enumerate(kinds) if kind == "metrics")


def test_pytorch_lightning_is_used_where_it_is_loaded_and_the_logger_pickles() -> None:
    """A script on ``pytorch_lightning`` gets a logger of that package (without loading
    ``lightning``); pickled, as ``ddp_spawn`` does, it leaves its Monitor behind and the
    copy starts its own."""
    done = _python(
        "import pickle, sys\n"
        "import pytorch_lightning as pl\n"
        "from trainmon_client.integrations.lightning import TrainmonLogger\n"
        f"logger = TrainmonLogger({free_endpoint()!r}, run='r', flush_timeout_s=0)\n"
        "logger.log_metrics({'loss': 1.0}, step=0)  # its Monitor starts\n"
        "copy = pickle.loads(pickle.dumps(logger))\n"
        "print(isinstance(logger, pl.loggers.Logger), isinstance(logger, pl.Callback),\n"
        "      'lightning' in sys.modules, type(copy) is TrainmonLogger, copy.version,\n"
        "      copy._monitor is None, copy.monitor is not logger.monitor)\n"
    )
    assert done.stdout.strip() == "True True False True r True True", done.stderr


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def test_importing_loads_no_framework_and_a_missing_one_says_what_to_install() -> None:
    """`import trainmon_client` and the integration module itself load no Lightning (it
    loads when TrainmonLogger is first used); without Lightning installed (hidden here),
    importing the module raises an ImportError that says what to install."""
    loaded = _python(
        "import sys, trainmon_client, trainmon_client.integrations.lightning\n"
        "print(sorted(m for m in sys.modules if 'lightning' in m.split('.')[0]"
        " or m.split('.')[0] in ('torch', 'rich')))"
    )
    assert loaded.stdout.strip() == "[]", loaded.stderr
    missing = _python(
        "import sys\n"
        "sys.modules['lightning'] = sys.modules['pytorch_lightning'] = None  # not installed\n"
        "try:\n    import trainmon_client.integrations.lightning\n"
        "except ImportError as exc:\n    print(exc)\n"
    )
    assert missing.stdout.strip() == (
        "trainmon_client.integrations.lightning needs Lightning: "
        "pip install lightning (or pip install pytorch-lightning)"
    ), missing.stderr
