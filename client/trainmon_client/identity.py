"""Who is publishing: host, pid, the rank a launcher gave this process, and the launch
it belongs to (which names its run when no name is given)."""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass

from trainmon_client.protocol import clean_text

__all__ = ["Identity", "identify", "launch"]

# Each launcher names rank, world size and local rank in its own variables; the first
# one that is set wins (torchrun, then SLURM, then Open MPI, then PMI/MPICH).
_RANK_VARS = ("RANK", "SLURM_PROCID", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK")
_WORLD_VARS = ("WORLD_SIZE", "SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE")
_LOCAL_VARS = ("LOCAL_RANK", "SLURM_LOCALID", "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID")
_LOCAL_WORLD_VARS = (
    "LOCAL_WORLD_SIZE",
    "SLURM_NTASKS_PER_NODE",
    "OMPI_COMM_WORLD_LOCAL_SIZE",
    "MPI_LOCALNRANKS",
)
# Set by torchrun's agent in every rank it starts (the agent is the ranks' parent).
_TORCHRUN_VARS = ("TORCHELASTIC_RESTART_COUNT", "GROUP_RANK", "TORCHELASTIC_MAX_RESTARTS")


@dataclass(frozen=True, slots=True)
class Identity:
    """The facts a hello record carries about one publishing process."""

    host: str
    pid: int
    rank: int | None
    world: int | None
    local_rank: int | None
    local_world: int | None = None  # ranks on this machine (the launcher's local size)

    @property
    def worker(self) -> str:
        """A worker id unique across hosts and processes, readable on screen."""
        return f"{self.host}:{self.pid}"


def identify(environ: Mapping[str, str] | None = None, pid: int | None = None) -> Identity:
    """The identity of this process, reading launcher variables from ``environ``."""
    env = os.environ if environ is None else environ
    host = clean_text(socket.gethostname()[:64]).strip() or "localhost"
    return Identity(
        host=host,
        pid=os.getpid() if pid is None else pid,
        rank=_first_int(env, _RANK_VARS),
        world=_first_int(env, _WORLD_VARS),
        local_rank=_first_int(env, _LOCAL_VARS),
        local_world=_first_int(env, _LOCAL_WORLD_VARS),
    )


def launch(environ: Mapping[str, str] | None = None) -> str:
    """What the launch this process belongs to is called, for a default run name.

    Processes of one launch say the same: a torchrun job (its run id, else its agent,
    the ranks' parent), a SLURM job step, an MPI job, or the parent of a
    ``multiprocessing`` child (``mp.spawn``, a pool). Anything else is its own launch,
    named by its start time and pid, so processes started by hand, even in the same
    second, never share one.
    """
    env = os.environ if environ is None else environ
    job = env.get("TORCHELASTIC_RUN_ID", "").strip()
    if job and job != "none":
        return job
    if any(name in env for name in _TORCHRUN_VARS):
        return _started(os.getppid())
    job = env.get("SLURM_JOB_ID", "").strip()
    if job:
        step = env.get("SLURM_STEP_ID", "").strip()
        return f"{job}.{step}" if step else job
    for name in ("PMIX_NAMESPACE", "OMPI_MCA_ess_base_jobid"):
        job = env.get(name, "").strip()
        if job:
            return job
    parent = _mp_parent()
    return _started(os.getpid() if parent is None else parent)


def _mp_parent() -> int | None:
    """The pid of the process that started this one with ``multiprocessing``, if any."""
    if "multiprocessing" not in sys.modules:
        return None
    import multiprocessing

    parent = multiprocessing.parent_process()
    return None if parent is None else parent.pid


def _started(pid: int | None) -> str:
    """``pid`` with its start time, e.g. ``20261206-130501-4242``; ``now`` for ours where
    the start time cannot be read."""
    if pid is None:
        pid = os.getpid()
    started = _start_time(pid)
    if started is None:
        started = _own_start if pid == os.getpid() else time.time()
    return f"{time.strftime('%Y%m%d-%H%M%S', time.localtime(started))}-{pid}"


def _start_time(pid: int) -> float | None:
    """When ``pid`` started, in seconds since the epoch (Linux: /proc), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        ticks = int(fields[19])  # field 22, starttime, in clock ticks after boot
        with open("/proc/stat", "rb") as system:
            boot = next(int(line.split()[1]) for line in system if line.startswith(b"btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


_own_start = time.time()  # (where /proc cannot tell: about when this module was loaded)


def _first_int(env: Mapping[str, str], names: tuple[str, ...]) -> int | None:
    for name in names:
        value = env.get(name, "").strip()
        if value.isdigit():
            return int(value)
    return None
