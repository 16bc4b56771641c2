"""``trainmon replay`` and ``trainmon export``: recorded runs, shown again or written out
as values or a picture."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import click
from rich.console import Console

from trainmon.cli.options import CONTEXT, Finite, display_options
from trainmon.cli.output import names, say, stdout_failed
from trainmon.cli.runs import run_files
from trainmon.cli.show import display_settings, show
from trainmon.escape import escaped, escaped_lines
from trainmon.report import summary
from trainmon.sources.export import FORMATS, dashboard_picture, write_csv, write_jsonl
from trainmon.sources.recording import FileFormatError, Loaded, ReplaySource, load
from trainmon.state import RunState
from trainmon.view import ViewOptions, render
from trainmon_client import store
from trainmon_client.protocol import Record

__all__ = ["export", "load_files", "replay"]

_RUNS_LISTED = 20  # an unknown --run lists at most this many of the runs there are


def _resolve(args: Sequence[str]) -> tuple[str, list[str]]:
    """The recordings the arguments name (files, run folders or kept runs, see
    :func:`run_files`), in order, each once; and a label for them, in one line."""
    labels: list[str] = []
    files: list[str] = []
    for arg in args:
        try:
            label, found = run_files(arg)
        except click.BadParameter as exc:
            exc.param_hint = "'RUN_OR_FILE...'"
            raise
        labels.append(escaped(label))
        files.extend(path for path in found if path not in files)
    return ", ".join(labels), files


def load_files(files: Sequence[str]) -> Loaded:
    """The records in ``files``; a file unread, damaged past reading or empty is an error."""
    try:
        loaded = load(files)
    except FileFormatError as exc:
        raise click.ClickException(escaped_lines(str(exc))) from exc
    except OSError as exc:
        where = escaped(exc.filename) if exc.filename else names(files)
        raise click.ClickException(f"cannot read {where}: {exc.strerror}") from exc
    if not loaded.records:
        raise click.ClickException(f"no records in {names(files)}\n{loaded.describe()}")
    return loaded


def _of_run(loaded: Loaded, run: str | None, files: Sequence[str]) -> list[Record]:
    """The records of ``run`` (all when None); a run not in the files is a usage error
    that lists the runs they hold."""
    if run is None:
        return loaded.records
    records = [record for record in loaded.records if record.run == run]
    if not records:
        runs = sorted({record.run for record in loaded.records})
        shown = ", ".join(runs[:_RUNS_LISTED]) + (
            f" and {len(runs) - _RUNS_LISTED} more" if len(runs) > _RUNS_LISTED else ""
        )
        raise click.BadParameter(
            f"no run {run!r} in {names(files)}; its runs: {shown}", param_hint="'--run'"
        )
    return records


@click.command(context_settings=CONTEXT)
@click.argument("runs", nargs=-1, required=True, metavar="RUN_OR_FILE...")
@display_options
@click.option(
    "--speed",
    type=Finite(min=0.01),
    metavar="X",
    help="Play X times faster than real time [default: whatever plays it in ~10 s].",
)
@click.option("--instant", is_flag=True, help="Show the end state at once.")
@click.option("--run", "run", metavar="NAME", help="Show only the run named NAME.")
def replay(
    runs: tuple[str, ...], speed: float | None, instant: bool, run: str | None, **display: Any
) -> None:
    """Show recorded runs: kept runs (by name or unique prefix, see `trainmon runs`) or
    files (from watch --record FILE or Monitor(record_to=...)).

    An existing path wins over a run name; a run folder reads its recordings. Several
    play together, as several workers or runs. Damaged frames are skipped and counted.
    Keys as in watch: space pauses the playback, q quits. With --plain, prints the
    final summary.
    """
    label, files = _resolve(runs)
    loaded = load_files(files)
    records = _of_run(loaded, run, files)
    settings, opts, plain = display_settings(display, False, label, run)
    live = any(store.is_live(path) for path in files)  # a run being written now
    if plain or not Console().is_terminal:
        state = RunState()
        for record in records:
            state.apply(record, record.time)
        if not live:
            state.note_end()  # a worker without a bye is lost: nothing more comes
        say(summary(state, opts, records[-1].time, shutil.get_terminal_size().columns))
    else:
        source = ReplaySource(records, speed=speed, instant=instant, ends=not live)
        # replace(), not a new AppSettings: every option the user gave is kept
        settings = replace(settings, finished_notice="end of recording · q quits")
        show(source, opts, settings, plain=False)
    say(loaded.describe())


@click.command(context_settings=CONTEXT)
@click.argument("runs", nargs=-1, required=True, metavar="RUN_OR_FILE...")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    required=True,
    help="csv/jsonl: every metric value; html/svg: a picture of the final dashboard.",
)
@click.option(
    "-o",
    "--output",
    metavar="OUT",
    type=click.Path(dir_okay=False),
    help="Write here [default: standard output].",
)
@click.option(
    "--width",
    default=120,
    show_default=True,
    type=click.IntRange(40, 400),
    help="Picture width in columns (html/svg).",
)
@click.option(
    "--height",
    default=40,
    show_default=True,
    type=click.IntRange(12, 200),
    help="Picture height in rows (html/svg).",
)
@click.option(
    "--run", "run", metavar="NAME", help="Only this run's records (csv, jsonl) or picture."
)
def export(
    runs: tuple[str, ...], fmt: str, output: str | None, width: int, height: int, run: str | None
) -> None:
    """Export recorded runs (kept runs by name or unique prefix, or files): every metric
    value, or the dashboard at the end.

    csv has one row per metric value (run, worker, seq, step, epoch, time, metric,
    value); jsonl one object per record with metric values, the lines `trainmon
    tail` prints.
    """
    label, files = _resolve(runs)
    loaded = load_files(files)
    records = _of_run(loaded, run, files)
    to_file = output not in (None, "-")
    name = escaped(output) if output and to_file else "standard output"
    if output and to_file and any(_same_file(output, path) for path in files):
        raise click.BadParameter(f"{name} is one of the recordings read", param_hint="'-o'")
    try:
        out = click.open_file(output or "-", "w", encoding="utf-8", lazy=False)
    except OSError as exc:
        raise click.ClickException(f"cannot write {name}: {exc.strerror}") from exc
    try:
        try:
            ends = not any(store.is_live(path) for path in files)
            what = _write_export(records, fmt, out, (width, height), run, label, ends)
            out.flush()  # here, not at exit: a full disk is said as an error
        finally:
            if to_file:
                out.close()
    except OSError as exc:
        if not to_file:
            raise stdout_failed(exc) from None
        if exc.errno == errno.EPIPE:  # -o /dev/stdout | head: click ends quietly
            raise
        raise click.ClickException(f"cannot write {name}: {exc.strerror or exc}") from None
    if to_file:
        click.echo(f"wrote {what} to {name}", err=True)
    if loaded.damaged or any(r.truncated_tail for r in loaded.reports.values()):
        click.echo(loaded.describe(), err=True)


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False  # one does not exist (yet)


def _write_export(
    records: list[Record],
    fmt: str,
    out: Any,
    size: tuple[int, int],
    run: str | None,
    label: str,
    ends: bool,
) -> str:
    """Write ``records`` to ``out`` in ``fmt``; what was written, in words. A picture
    of records that ``ends`` (the run not written now) shows workers without a bye lost."""
    if fmt == "csv":
        return f"{write_csv(records, out)} metric values"
    if fmt == "jsonl":
        return f"{write_jsonl(records, out)} records"
    state = RunState()
    for record in records:
        state.apply(record, record.time)
    if ends:
        state.note_end()
    width, height = size
    opts = ViewOptions(run=run, interactive=False, address=label)
    frame = render(state, opts, records[-1].time)
    title = f"trainmon · {label}"
    out.write(dashboard_picture(frame, fmt, width, height, title=title))
    return f"a {width}x{height} picture"
