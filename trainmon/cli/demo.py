"""``trainmon demo``: the dashboard fed by simulated workers, each its own process
publishing through the real client (see :mod:`trainmon.cli.demo_worker`)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import click

from trainmon.app import AppSettings
from trainmon.cli.options import CONTEXT, checked_endpoints
from trainmon.cli.show import show, subscriber
from trainmon.view import ViewOptions

__all__ = ["demo"]

_WORKER = "trainmon.cli.demo_worker"  # run as python -m, one process a worker


@click.command(context_settings=CONTEXT)
@click.option(
    "--workers",
    default=4,
    show_default=True,
    type=click.IntRange(1, 64),
    metavar="N",
    help="Simulated workers.",
)
@click.option(
    "--epochs",
    default=10,
    show_default=True,
    type=click.IntRange(1, 1000),
    metavar="N",
    help="Epochs each worker runs (about 2.5 s each).",
)
@click.option(
    "--bind",
    default="tcp://127.0.0.1:*",
    show_default=True,
    metavar="ENDPOINT",
    callback=checked_endpoints,
    help="Where the demo's monitor listens (* picks a free port).",
)
@click.option("--plain", is_flag=True, help="Status lines instead of the dashboard.")
def demo(workers: int, epochs: int, bind: str, plain: bool) -> None:
    """Show the dashboard with simulated workers: about 30 s, or press q.

    Starts the monitor and WORKERS processes that publish through the real
    client: loss falls with noise, accuracy rises, the gradient norm varies.
    """
    with subscriber((bind,), (), None) as source:
        endpoint = source.endpoints[0]
        run = f"demo-{uuid.uuid4().hex[:6]}"
        procs = [_start_worker(endpoint, run, rank, workers, epochs) for rank in range(workers)]
        try:
            settings = AppSettings(
                exit_when_done=True, max_duration_s=epochs * 3.5 + 30, plain_interval_s=2.0
            )
            show(source, ViewOptions(address=endpoint), settings, plain)
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()


def _start_worker(
    endpoint: str, run: str, rank: int, world: int, epochs: int
) -> subprocess.Popen[bytes]:
    """One simulated worker, publishing as rank ``rank`` of ``world``."""
    env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            _WORKER,
            "--endpoint",
            endpoint,
            "--run",
            run,
            "--rank",
            str(rank),
            "--world",
            str(world),
            "--epochs",
            str(epochs),
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
