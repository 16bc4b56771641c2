"""Several ranks of one machine with bind=True: each binds the port + its local rank, and
one monitor connecting to the port sees them all. Real processes with torchrun's
environment variables."""

from __future__ import annotations

import socket
import subprocess

from tests.helpers import drain_until, start_publisher, stop
from trainmon.sources.subscriber import Subscriber
from trainmon.state import RunState


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive loopback ports nobody listens on now."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + count > 65535:
            continue
        probes = [socket.socket() for _ in range(count)]
        try:
            for offset, other in enumerate(probes):
                other.bind(("127.0.0.1", base + offset))
            return base
        except OSError:
            continue
        finally:
            for other in probes:
                other.close()
    raise AssertionError("no consecutive free ports")


def torchrun_env(rank: int, world: int) -> dict[str, str]:
    """What torchrun --nproc-per-node WORLD sets for a rank (one machine)."""
    return {
        "RANK": str(rank),
        "LOCAL_RANK": str(rank),
        "WORLD_SIZE": str(world),
        "LOCAL_WORLD_SIZE": str(world),
        "GROUP_RANK": "0",
        "TORCHELASTIC_RESTART_COUNT": "0",
        "TORCHELASTIC_MAX_RESTARTS": "0",
        "TORCHELASTIC_RUN_ID": "job-1234",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "29500",
    }


def test_ranks_bind_consecutive_ports_and_one_connect_sees_all() -> None:
    """Three ranks bind the same endpoint in the code: none fails, and a monitor that
    connects to the base port only gets every rank's records (their hellos say the
    ports, and it connects to the others)."""
    base = free_ports(3)
    endpoint = f"tcp://127.0.0.1:{base}"
    source = Subscriber(connect=[endpoint])
    procs: list[subprocess.Popen[str]] = []
    try:
        procs = [
            start_publisher(endpoint, bind=True, count=200, hold_s=5, env=torchrun_env(k, 3))
            for k in range(3)
        ]
        state = RunState()

        def all_finished() -> bool:
            run = state.runs.get("r")
            return run is not None and len(run.workers) == 3 and run.finished

        drain_until(source, state, all_finished, timeout_s=20, what="three finished ranks")
        workers = sorted(state.runs["r"].workers.values(), key=lambda w: w.rank or 0)
        assert [(w.rank, w.world) for w in workers] == [(0, 3), (1, 3), (2, 3)]
        assert all(w.series["loss"].count == 200 and w.missed == 0 for w in workers)
        assert source.endpoints == [
            endpoint,
            f"tcp://127.0.0.1:{base + 1}",
            f"tcp://127.0.0.1:{base + 2}",
        ]
        for proc in procs:
            assert proc.wait(timeout=15) == 0
            assert proc.stderr is not None and proc.stderr.read() == ""
    finally:
        for proc in procs:
            stop(proc)
        source.close()


def test_a_rank_whose_port_is_taken_says_so_and_goes_on() -> None:
    """Local rank 1's port held by another program: that rank says so in one line and
    exits 0 with the others."""
    base = free_ports(2)
    endpoint = f"tcp://127.0.0.1:{base}"
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", base + 1))
        holder.listen()
        proc = start_publisher(endpoint, bind=True, count=50, env=torchrun_env(1, 2))
        try:
            assert proc.wait(timeout=30) == 0
            assert proc.stderr is not None
            lines = proc.stderr.read().splitlines()
            assert len(lines) == 1 and f"cannot bind tcp://127.0.0.1:{base + 1}" in lines[0]
        finally:
            stop(proc)


def test_local_world_size_from_launchers() -> None:
    """How many ranks share this machine comes from torchrun, SLURM, Open MPI or MPICH."""
    from trainmon_client.identity import identify

    for env in (
        {"LOCAL_WORLD_SIZE": "4"},
        {"SLURM_NTASKS_PER_NODE": "4"},
        {"OMPI_COMM_WORLD_LOCAL_SIZE": "4"},
        {"MPI_LOCALNRANKS": "4"},
    ):
        assert identify(env).local_world == 4, env
    assert identify({}).local_world is None
