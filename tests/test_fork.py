"""A training process with a multiprocessing pool forked from it (the pool processes
inherit its Monitor): the process that logs the loss stays the lead, and children that
end without a bye when their finished parent exits do not make the run lost."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import BackgroundMonitor, free_endpoint, stop
from trainmon.app import is_done
from trainmon.state import LOST_AFTER_S

_SCRIPT = """
import multiprocessing as mp, sys, time
from trainmon_client import Monitor

mon = Monitor(sys.argv[1], run="pool")

def work(i):
    mon.log(rows=float(i))  # from the forked child: its own worker
    time.sleep(0.3)
    return i

if __name__ == "__main__":
    with mp.get_context("fork").Pool(2) as pool:
        for step in range(30):
            pool.map(work, range(2))
            mon.log(loss=1.0 / (step + 1), step=step)
            time.sleep(0.02)
    mon.close()
"""


def test_pool_children_do_not_lead_nor_leave_the_run_lost(tmp_path: Path) -> None:
    script = tmp_path / "pool_train.py"
    script.write_text(_SCRIPT)
    endpoint = free_endpoint()
    monitor = BackgroundMonitor([endpoint])
    proc = subprocess.Popen(
        [sys.executable, str(script), endpoint],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
        state = monitor.state

        def settled() -> bool:  # every child silent past the lost time
            run = state.runs.get("pool")
            return bool(run) and all(
                time.time() - w.last_seen > LOST_AFTER_S + 0.5 for w in run.workers.values()
            )

        monitor.wait(settled, 20.0, "the pool processes to fall silent")
        with monitor.lock:
            run = state.runs["pool"]
            assert len(run.workers) >= 2, "the children published as workers of their own"
            lead = run.lead
            assert lead is not None and "loss" in lead.series and lead.finished
            assert run.series("loss").count == 30
            if not any(w.parent for w in run.workers.values()):
                pytest.skip("this client does not name a forked child's parent (hello parent)")
            now = time.time()
            assert run.status(now, 60.0) == "finished"
            assert is_done(state, now)
    finally:
        stop(proc)
        monitor.close()
