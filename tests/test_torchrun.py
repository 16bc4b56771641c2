"""A real distributed job: torchrun with 4 CPU ranks (gloo), every rank publishing."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT, BackgroundMonitor, drain_until, free_endpoint, stop
from tests.test_ranks_bind import free_ports
from trainmon.sources.subscriber import Subscriber
from trainmon.state import RunState

# Looked up, not imported: importing torch here would only slow the test process.
# CI installs the torch extra, so there a missing torch fails this test instead.
if importlib.util.find_spec("torch") is None and not os.environ.get("CI"):
    pytest.skip(
        "needs torch: CI=true scripts/test -k torchrun installs the pinned CPU build",
        allow_module_level=True,
    )


def test_torchrun_four_ranks() -> None:
    """The monitor shows four workers with ranks 0-3 of world 4, each with its whole run."""
    endpoint = free_endpoint()
    monitor = BackgroundMonitor([endpoint])
    env = dict(os.environ, GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1")
    job = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "4",
            str(ROOT / "scripts" / "example_ddp.py"),
            "--endpoint",
            endpoint,
            "--epochs",
            "2",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        out, _ = job.communicate(timeout=240)
        assert job.returncode == 0, out
        monitor.wait(
            lambda: (
                len(monitor.state.runs) == 1
                and next(iter(monitor.state.runs.values())).finished
                and len(next(iter(monitor.state.runs.values())).workers) == 4
            ),
            timeout_s=30,
            what="four finished ranks",
        )
        run = next(iter(monitor.state.runs.values()))
        workers = sorted(run.workers.values(), key=lambda w: w.rank or 0)
        assert [(w.rank, w.world) for w in workers] == [(0, 4), (1, 4), (2, 4), (3, 4)]
        for worker in workers:
            loss = worker.series["loss"]
            assert loss.count == 2 * (4096 // 4 // 64) and worker.missed == 0
            assert loss.points[-1][1] < loss.points[0][1] / 2, "the model learned"
            assert worker.series["grad_norm"].count == loss.count
    finally:
        stop(job)
        monitor.close()


def test_torchrun_ranks_bind_and_one_connect_sees_them() -> None:
    """torchrun --nproc-per-node 2 with Monitor(bind=True) on one endpoint: no rank
    fails, and one monitor connecting to that port sees both ranks."""
    base = free_ports(2)
    endpoint = f"tcp://127.0.0.1:{base}"
    source = Subscriber(connect=[endpoint])
    env = dict(os.environ, GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1")
    job = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            str(ROOT / "scripts" / "example_ddp.py"),
            "--endpoint",
            endpoint,
            "--bind",
            "--epochs",
            "40",  # long enough for the monitor to find the ranks (a few seconds)
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        state = RunState()

        def both_ranks() -> bool:
            runs = list(state.runs.values())
            return len(runs) == 1 and len(runs[0].workers) == 2

        drain_until(source, state, both_ranks, timeout_s=120, what="two ranks")
        out, _ = job.communicate(timeout=240)
        assert job.returncode == 0, out
        run = next(iter(state.runs.values()))
        assert sorted(w.rank for w in run.workers.values()) == [0, 1]
        assert "Address already in use" not in out and "cannot bind" not in out
    finally:
        stop(job)
        source.close()
