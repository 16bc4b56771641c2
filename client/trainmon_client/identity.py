"""Who is publishing: host, pid, and the rank a launcher gave this process."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from trainmon_client.protocol import clean_text

__all__ = ["Identity", "identify"]

# Each launcher names rank, world size and local rank in its own variables; the first
# one that is set wins (torchrun, then SLURM, then Open MPI, then PMI/MPICH).
_RANK_VARS = ("RANK", "SLURM_PROCID", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK")
_WORLD_VARS = ("WORLD_SIZE", "SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE")
_LOCAL_VARS = ("LOCAL_RANK", "SLURM_LOCALID", "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID")


@dataclass(frozen=True, slots=True)
class Identity:
    """The facts a hello record carries about one publishing process."""

    host: str
    pid: int
    rank: int | None
    world: int | None
    local_rank: int | None

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
    )


def _first_int(env: Mapping[str, str], names: tuple[str, ...]) -> int | None:
    for name in names:
        value = env.get(name, "").strip()
        if value.isdigit():
            return int(value)
    return None
