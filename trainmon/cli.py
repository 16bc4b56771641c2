"""The ``trainmon`` command: thin click functions that wire the parts together."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import click
from rich.console import Console

from trainmon.app import AppSettings, DoneWatch, final_summary, run_dashboard, run_plain
from trainmon.ingest import DEFAULT_ADDRESS, EndpointError, Subscriber
from trainmon.keys import quit_on_signals
from trainmon.state import RunState
from trainmon.view import ViewOptions
from trainmon_client.protocol import Record

__all__ = ["main"]

_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=_CONTEXT)
@click.version_option(package_name="trainmon", prog_name="trainmon")
def main() -> None:
    """Watch model training live, from another terminal or another machine.

    A training script publishes with the trainmon-client library
    (Monitor().log(loss=...)); `trainmon watch` shows the run. The monitor is a
    separate process: quitting or freezing it never touches training.
    """


def _endpoint_options(func: Any) -> Any:
    func = click.option(
        "--run",
        "run",
        metavar="NAME",
        envvar="TRAINMON_RUN_FILTER",
        show_envvar=True,
        help="Show only the run named NAME (default: every run that publishes).",
    )(func)
    func = click.option(
        "--connect",
        "connect",
        multiple=True,
        metavar="ENDPOINT",
        envvar="TRAINMON_CONNECT",
        show_envvar=True,
        help="Connect to training that binds, e.g. tcp://gpu-box:5556 (repeatable).",
    )(func)
    func = click.option(
        "--bind",
        "bind",
        multiple=True,
        metavar="ENDPOINT",
        envvar="TRAINMON_BIND",
        show_envvar=True,
        help=f"Listen here for workers to connect (repeatable). [default: {DEFAULT_ADDRESS}, "
        "unless --connect is given]",
    )(func)
    func = click.option(
        "--exit-when-done",
        is_flag=True,
        help="Exit once every worker seen has said bye (after a 2 s grace), with a summary.",
    )(func)
    return func


@contextmanager
def _subscriber(
    bind: Sequence[str], connect: Sequence[str], run: str | None
) -> Iterator[Subscriber]:
    if not bind and not connect:
        bind = (DEFAULT_ADDRESS,)
    try:
        source = Subscriber(bind, connect, run=run)
    except EndpointError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        yield source
    finally:
        source.close()


@main.command(context_settings=_CONTEXT)
@_endpoint_options
@click.option(
    "--history",
    default=100,
    show_default=True,
    metavar="N",
    type=click.IntRange(2, 100_000),
    help="Values of the main metric in the sparkline.",
)
@click.option(
    "--refresh-ms",
    default=100,
    show_default=True,
    metavar="MS",
    type=click.IntRange(10, 60_000),
    help="Redraw the screen every MS milliseconds.",
)
@click.option(
    "--stall-after",
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    type=click.FloatRange(0.5),
    help="Call a worker stalled after SECONDS without metrics.",
)
@click.option(
    "--no-interactive", is_flag=True, help="Do not read keys (q, space); quit with Ctrl-C."
)
@click.option(
    "--plain",
    is_flag=True,
    help="No dashboard: print a status line every few seconds (automatic without a terminal).",
)
@click.option(
    "--plain-interval",
    default=5.0,
    show_default=True,
    metavar="SECONDS",
    type=click.FloatRange(0.1),
    help="Seconds between status lines in plain mode.",
)
def watch(
    bind: tuple[str, ...],
    connect: tuple[str, ...],
    run: str | None,
    exit_when_done: bool,
    history: int,
    refresh_ms: int,
    stall_after: float,
    no_interactive: bool,
    plain: bool,
    plain_interval: float,
) -> None:
    """Show a live dashboard of the training runs publishing to this monitor.

    By default it listens on tcp://127.0.0.1:5555, where Monitor() in a training
    script connects. To watch training on another machine that binds, use
    --connect tcp://HOST:PORT. Keys: q quits, space pauses the view.
    """
    settings = AppSettings(
        refresh_s=refresh_ms / 1000,
        interactive=not no_interactive,
        exit_when_done=exit_when_done,
        plain_interval_s=plain_interval,
    )
    with _subscriber(bind, connect, run) as source:
        opts = ViewOptions(
            history=history,
            run=run,
            stall_after_s=stall_after,
            address=source.address,
            interactive=not no_interactive,
        )
        _show(source, opts, settings, plain)


def _show(source: Subscriber, opts: ViewOptions, settings: AppSettings, plain: bool) -> None:
    state = RunState()
    console = Console()
    if plain or not console.is_terminal:
        if not plain:
            click.echo(
                "trainmon: stdout is not a terminal, so no dashboard: printing a status "
                f"line every {settings.plain_interval_s:g} s (--plain to choose this)."
            )
        run_plain(source, state, opts, settings, emit=lambda line: click.echo(line))
    else:
        opts = run_dashboard(source, state, opts, settings, console)
    click.echo(final_summary(state, opts))


@main.command(context_settings=_CONTEXT)
@_endpoint_options
def tail(
    bind: tuple[str, ...], connect: tuple[str, ...], run: str | None, exit_when_done: bool
) -> None:
    """Print each metrics record received as one JSON object per line.

    Keys: run, worker, seq, step, epoch, t, metrics. For scripts and jq, e.g.
    `trainmon tail | jq .metrics.loss`. NaN and infinities are written as
    NaN and Infinity, as Python's json module reads them.
    """
    with _subscriber(bind, connect, run) as source:
        sink = _JsonLines(RunState())
        done = DoneWatch()
        with quit_on_signals() as stop:
            while not stop:
                source.drain(sink, budget_s=0.1)
                if exit_when_done and done.check(sink.state, time.time(), 2.0):
                    break


class _JsonLines:
    """A sink that keeps state (to drop repeats, to know when all is done) and prints."""

    def __init__(self, state: RunState) -> None:
        self.state = state

    def apply(self, record: Record, now: float) -> bool:
        if not self.state.apply(record, now):
            return False
        if record.kind == "metrics":
            line = json.dumps(
                {
                    "run": record.run,
                    "worker": record.worker,
                    "seq": record.seq,
                    "step": record.step,
                    "epoch": record.epoch,
                    "t": record.time,
                    "metrics": dict(record.metrics),
                }
            )
            try:
                click.echo(line)
            except BrokenPipeError:  # `trainmon tail | head`: the reader has gone
                sys.stderr.close()
                raise SystemExit(0) from None
        return True

    def reject(self, reason: str) -> None:
        self.state.reject(reason)
        click.echo(f"trainmon: rejected a message: {reason}", err=True)


@main.command(context_settings=_CONTEXT)
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
    help="Where the demo's monitor listens (* picks a free port).",
)
@click.option("--plain", is_flag=True, help="Status lines instead of the dashboard.")
def demo(workers: int, epochs: int, bind: str, plain: bool) -> None:
    """Show the dashboard with simulated workers: about 30 s, or press q.

    Starts the monitor and WORKERS processes that publish through the real
    client: loss falls with noise, accuracy rises, the gradient norm varies.
    """
    with _subscriber((bind,), (), None) as source:
        endpoint = source.endpoints[0]
        run = f"demo-{uuid.uuid4().hex[:6]}"
        procs = [
            _start_demo_worker(endpoint, run, rank, workers, epochs) for rank in range(workers)
        ]
        try:
            settings = AppSettings(
                exit_when_done=True, max_duration_s=epochs * 3.5 + 30, plain_interval_s=2.0
            )
            _show(source, ViewOptions(address=endpoint), settings, plain)
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()


def _start_demo_worker(
    endpoint: str, run: str, rank: int, world: int, epochs: int
) -> subprocess.Popen[bytes]:
    env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trainmon.demo",
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
