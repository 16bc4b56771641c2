"""``trainmon watch`` and ``trainmon tail``: the records of live training, drawn as a
dashboard or printed as JSON lines."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from typing import Any

import click

from trainmon.app import DONE_GRACE_S, DoneWatch, lost_workers
from trainmon.cli.compare import exact_points, kept_run
from trainmon.cli.options import CONTEXT, curve, curve_options, display_options, endpoint_options
from trainmon.cli.output import say
from trainmon.cli.show import KEEP, display_settings, show, subscriber
from trainmon.controls.terminal import quit_on_signals
from trainmon.escape import escaped, escaped_lines
from trainmon.sources.export import is_printed, record_json
from trainmon.sources.recording import KeptRecorder
from trainmon.state import RunState
from trainmon.view.compare import keep_exact, keep_past
from trainmon_client.protocol import Columns, Record

__all__ = ["tail", "watch"]


@click.command(context_settings=CONTEXT)
@endpoint_options
@display_options
@click.option(
    "--record",
    metavar="[FILE]",
    type=click.Path(dir_okay=False),
    is_flag=False,
    flag_value=KEEP,
    help="Also append everything received to FILE (see `trainmon replay`); without "
    "FILE, keep each run received in the data directory, as training keeps its own "
    "(see `trainmon runs`).",
)
@click.option(
    "--compare",
    "past",
    metavar="RUN",
    help="Draw a kept run (name, prefix or recording) under the live one, from disk.",
)
@curve_options
def watch(
    bind: tuple[str, ...],
    connect: tuple[str, ...],
    run: str | None,
    exit_when_done: bool,
    record: str | None,
    past: str | None,
    curve_secret: str | None,
    curve_server: str | None,
    curve_allow: str | None,
    **display: Any,
) -> None:
    """Show a live dashboard of the training runs publishing to this monitor.

    By default it listens on a socket only you can reach, where Monitor() in a
    training script of yours connects by default. To watch training on another
    machine that binds, use --connect tcp://HOST:PORT. Keys: ? lists them all; q quits, space pauses
    the view, c charts the whole run, g shows every metric, + - zoom, arrows pan,
    m picks the main metric, w the worker, r the run, e saves an SVG picture.
    """
    curve_keys = curve(curve_secret, curve_server, curve_allow)
    state = RunState()  # (a recording that stops says so on screen: its note)
    compared = _compared(state, past)
    kept: list[KeptRecorder] = []
    with subscriber(bind, connect, run, record, curve_keys, state.note_recording, kept) as source:
        settings, opts, plain = display_settings(
            display, exit_when_done, source.address, run, connecting=bool(connect and not bind)
        )
        opts = replace(opts, warnings=tuple(source.warnings), compared=compared)
        opts = replace(opts, chart=True) if compared else opts
        show(source, opts, settings, plain, state)
    if record is not None:  # (after the recording is closed: its last words are in)
        if state.recording_note:
            click.echo(f"trainmon: {escaped_lines(state.recording_note)}", err=True)
        if kept:
            _say_kept(kept[0])
        elif not state.recording_note:
            say(f"recorded to {escaped(record)}")


def _compared(state: RunState, past: str | None) -> tuple[str, ...]:
    """Load the run ``past`` names (``--compare``) from disk, beside ``state`` rather
    than in it (see :mod:`trainmon.view.compare`): the names to draw under the live run."""
    if past is None:
        return ()
    name, records, live = kept_run(past)
    beside = RunState()
    for record in records:
        beside.apply(record, record.time)
    if not live:
        beside.note_end()  # its records are its end: a worker without a bye is lost
    keep_exact(beside, exact_points(records))
    keep_past(state, beside)
    return (name,)


def _say_kept(recorder: KeptRecorder) -> None:
    """Where ``watch --record`` (no file) kept the runs received."""
    folders = recorder.kept()
    if not folders:
        if recorder.stopped is None:  # (else the line that stopped it was said)
            say(f"no runs received to keep in {escaped(recorder.root)}")
        return
    for folder in folders:
        say(f"kept in {escaped(folder)}")
    say("`trainmon runs` lists them; `trainmon replay RUN` shows one again")


@click.command(context_settings=CONTEXT)
@endpoint_options
@curve_options
def tail(
    bind: tuple[str, ...],
    connect: tuple[str, ...],
    run: str | None,
    exit_when_done: bool,
    curve_secret: str | None,
    curve_server: str | None,
    curve_allow: str | None,
) -> None:
    """Print each metrics record received as one JSON object per line.

    Keys: run, worker, seq, step, epoch, t, metrics. For scripts and jq, e.g.
    `trainmon tail | jq .metrics.loss`. NaN and infinities are written as
    NaN and Infinity, as Python's json module reads them.
    """
    with subscriber(
        bind, connect, run, None, curve(curve_secret, curve_server, curve_allow)
    ) as source:
        sink = _JsonLines(RunState())
        done = DoneWatch()
        with quit_on_signals() as stop:
            while not stop:
                source.drain(sink, budget_s=0.1)
                if exit_when_done and done.check(sink.state, source.clock(), DONE_GRACE_S):
                    for lost in lost_workers(sink.state, source.clock()):
                        click.echo(f"trainmon: {lost} lost without a bye", err=True)
                    break


class _JsonLines:
    """A sink that keeps state (to drop repeats, to know when all is done) and prints."""

    def __init__(self, state: RunState) -> None:
        self.state = state

    def apply(self, record: Record, now: float) -> bool:
        if not self.state.apply(record, now):
            return False
        if is_printed(record):  # the same records as `export --format jsonl` writes
            try:
                say(json.dumps(record_json(record)))
            except BrokenPipeError:  # `trainmon tail | head`: the reader has gone
                sys.stderr.close()
                raise SystemExit(0) from None
        return True

    def apply_columns(self, columns: Columns, now: float) -> int:
        return sum(self.apply(record, now) for record in columns.records())

    def reject(self, reason: str, peer: str = "") -> None:
        self.state.reject(reason, peer)
        click.echo(f"trainmon: rejected a message: {reason}", err=True)

    def refuse(self, reason: str, count: int) -> None:
        self.state.refuse(reason, count)
        click.echo(f"trainmon: {reason}", err=True)

    def note_link(self, short: str, note: str) -> None:
        self.state.note_link(short, note)
        click.echo(f"trainmon: {note or 'connected'}", err=True)
