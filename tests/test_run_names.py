"""Default run names are what users launched: processes of one launch share a run,
processes started separately never do, whatever second they start in."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import free_endpoint

# Prints the default run name of a Monitor (connected to nowhere in particular).
NAME = """
import sys
from trainmon_client import Monitor
mon = Monitor({endpoint!r}, flush_timeout_s=0)
print(mon.run, flush=True)
"""

SPAWN = """
import multiprocessing as mp
from trainmon_client import Monitor

def child(endpoint, queue):
    queue.put(Monitor(endpoint, flush_timeout_s=0).run)

if __name__ == "__main__":
    endpoint = {endpoint!r}
    mon = Monitor(endpoint, flush_timeout_s=0)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    workers = [ctx.Process(target=child, args=(endpoint, queue)) for _ in range(2)]
    for worker in workers:
        worker.start()
    names = [queue.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(60)
    print(mon.run)
    print(*names, sep="\\n")
"""


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without launcher or trainmon variables, plus ``extra``."""
    launchers = ("TRAINMON_", "TORCHELASTIC_", "SLURM_", "PMIX_", "OMPI_", "GROUP_RANK")
    env = {k: v for k, v in os.environ.items() if not k.startswith(launchers)}
    env["TRAINMON_DIR"] = os.environ["TRAINMON_DIR"]  # (the session's: runs are kept)
    return {**env, **extra}


def start_script(path: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def names_of(procs: list[subprocess.Popen[str]]) -> list[str]:
    names = []
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        names.append(out.strip())
    return names


@pytest.fixture
def train_py(tmp_path: Path) -> Path:
    path = tmp_path / "train.py"
    path.write_text(NAME.format(endpoint=free_endpoint()))
    return path


def test_processes_started_by_hand_together_are_separate_runs(train_py: Path) -> None:
    """Four processes of one script started at once (a shell loop of a sweep) are four
    runs, each named after the script."""
    procs = [start_script(train_py, clean_env()) for _ in range(4)]
    names = names_of(procs)
    assert len(set(names)) == 4, names
    pids = {str(proc.pid) for proc in procs}
    assert all(name.startswith("train-20") for name in names)
    assert {name.rsplit("-", 1)[1] for name in names} == pids


def test_ranks_of_one_torchrun_job_are_one_run(train_py: Path) -> None:
    """Ranks with torchrun's variables and one parent (the agent) share a run; with a
    rendezvous id, that id names it."""
    agent = [
        start_script(
            train_py,
            clean_env(RANK=str(rank), TORCHELASTIC_RESTART_COUNT="0", GROUP_RANK="0"),
        )
        for rank in range(2)
    ]
    names = names_of(agent)
    assert names[0] == names[1] and names[0].endswith(f"-{os.getpid()}"), names
    with_id = [
        start_script(train_py, clean_env(RANK=str(rank), TORCHELASTIC_RUN_ID="job42"))
        for rank in range(2)
    ]
    assert names_of(with_id) == ["train-job42", "train-job42"]


def test_slurm_and_mpi_jobs_are_one_run(train_py: Path) -> None:
    """A SLURM job step, or an MPI job, names the run."""
    slurm = [
        start_script(train_py, clean_env(SLURM_JOB_ID="777", SLURM_STEP_ID="0", SLURM_PROCID=p))
        for p in "01"
    ]
    assert names_of(slurm) == ["train-777.0", "train-777.0"]
    mpi = [start_script(train_py, clean_env(PMIX_NAMESPACE="prterun-h-99@1")) for _ in "01"]
    assert names_of(mpi) == ["train-prterun-h-99@1"] * 2


def test_spawned_children_join_their_parents_run(tmp_path: Path) -> None:
    """Children started with multiprocessing's spawn (as mp.spawn does) are in the run
    of the process that started them."""
    path = tmp_path / "train.py"
    path.write_text(SPAWN.format(endpoint=free_endpoint()))
    names = names_of([start_script(path, clean_env())])[0].split("\n")
    assert len(names) == 3 and len(set(names)) == 1, names
    assert names[0].startswith("train-20")
