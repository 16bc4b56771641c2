"""Kept runs on the command line: ``trainmon runs`` and ``trainmon rm``, and the
resolver every command naming a run uses (a file or folder path, else a run kept under
the data directory, by folder id, name or unique prefix)."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence

import click

from trainmon.cli.options import CONTEXT
from trainmon.cli.output import say
from trainmon.escape import escaped
from trainmon.sources.runs import RunSummary, summary_of
from trainmon.state import Run
from trainmon_client import store

__all__ = [
    "check_data_dir",
    "describe_run",
    "find_one",
    "main_metric",
    "rm",
    "run_files",
    "runs",
    "size_text",
]

_LISTED = 8  # an unknown or ambiguous run lists at most this many runs
_LIMIT = 50  # runs listed unless --all or --limit
_NAME_WIDTH = 32  # a longer run name is cut to this many characters
_HEADERS = ("run", "started", "duration", "status", "workers", "step", "metric", "last", "best")


def describe_run(run: store.RunFolder) -> str:
    """One line naming a run: its name, its start and its folder id."""
    return f"{escaped(run.name)}  {_when(run.started)}  ({escaped(run.id)})"


def _when(started: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started))


def _short_when(started: float) -> str:
    """A start to the minute, its year left out when it is this year's."""
    this_year = time.localtime().tm_year == time.localtime(started).tm_year
    return time.strftime("%m-%d %H:%M" if this_year else "%Y-%m-%d %H:%M", time.localtime(started))


def check_data_dir() -> None:
    """A click error when the data directory (or its runs folder) is there but is not a
    directory: ``$TRAINMON_DIR`` set to a file, say."""
    for path in (store.data_dir(), store.runs_dir()):
        if os.path.lexists(path) and not os.path.isdir(path):
            given = os.environ.get(store.ENV_DIR, "").strip()
            named = f" (TRAINMON_DIR={escaped(given)})" if given else ""
            raise click.ClickException(
                f"{escaped(path)}{named} is not a directory: no runs can be kept there; "
                "set TRAINMON_DIR to a directory, or unset it for the default"
            )


def _relative_note() -> str:
    """Words saying that ``$TRAINMON_DIR`` is relative (taken from the current
    directory), or ''."""
    given = os.environ.get(store.ENV_DIR, "").strip()
    if not given or os.path.isabs(os.path.expanduser(given)):
        return ""
    return f" (TRAINMON_DIR={escaped(given)} is relative: taken from the current directory)"


def _listed(runs: Sequence[store.RunFolder]) -> str:
    shown = "\n".join(f"  {describe_run(run)}" for run in runs[:_LISTED])
    more = len(runs) - _LISTED
    return shown + (f"\n  and {more} more" if more > 0 else "")


def find_one(arg: str, runs: Sequence[store.RunFolder] | None = None) -> store.RunFolder:
    """The kept run ``arg`` names: a folder id, a run name (the newest of that name) or
    a unique prefix. None found is a usage error listing a few runs there are; a prefix
    of several names is an error listing the matches."""
    every = store.scan() if runs is None else list(runs)
    if not every:
        check_data_dir()
    try:
        found = store.find_runs(arg, every)
    except store.AmbiguousRun as exc:
        raise click.UsageError(
            f"{escaped(arg)} names several runs:\n{_listed(exc.matches)}\n"
            "name one by more of its name, or by its folder id"
        ) from None
    if not found:
        where = escaped(store.runs_dir())
        if not every:
            raise click.BadParameter(
                f"no file or kept run {escaped(arg)}: no runs are kept in {where}"
            )
        raise click.BadParameter(
            f"no file or kept run {escaped(arg)}; runs kept in {where} "
            f"(newest first):\n{_listed(every)}"
        )
    return found[0]


def run_files(arg: str) -> tuple[str, list[str]]:
    """What to read for ``arg``: a label for it and its recordings. An existing path
    wins: a file is read as it is, a folder gives its ``.tmr`` recordings; else ``arg``
    names a kept run (see :func:`find_one`), labelled by its name (and its start, where
    other kept runs share the name)."""
    if os.path.isdir(arg):
        files = sorted(
            os.path.join(arg, name)
            for name in os.listdir(arg)
            if name.endswith(store.SUFFIX) and _not_empty(os.path.join(arg, name))
        )
        if not files:
            raise click.BadParameter(f"no recordings (*{store.SUFFIX}) in {escaped(arg)}")
        return arg, files
    if os.path.exists(arg):
        return arg, [arg]
    every = store.scan()
    run = find_one(arg, every)
    files = [path for path in run.files if _not_empty(path)]  # (one just made: no header)
    if not files:
        raise click.BadParameter(f"run {describe_run(run)} holds no recordings")
    shared = sum(1 for other in every if other.name == run.name) > 1
    label = f"{run.name} ({_when(run.started)})" if shared else run.name
    return label, files


def _not_empty(path: str) -> bool:
    """A file with something in it (a recording just made has not even its header)."""
    try:
        return os.path.isfile(path) and os.path.getsize(path) > 0
    except OSError:
        return False


# -- trainmon runs -------------------------------------------------------------------------


def main_metric(run: Run) -> tuple[str, str] | None:
    """The dashboard's main metric of ``run`` and the worker it is read from."""
    from trainmon.view import ViewOptions
    from trainmon.view.shown import main_metric as chosen
    from trainmon.view.shown import metric_source

    name = chosen(run, ViewOptions())
    source = metric_source(run, name) if name is not None else None
    return None if name is None or source is None else (name, source[1].id)


def size_text(count: float) -> str:
    """Bytes in words: ``512 B``, ``1.5 MiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"  # (not reached)


@click.command("runs", context_settings=CONTEXT)
@click.option(
    "--json", "as_json", is_flag=True, help="One JSON list of objects (see docs/runs.md)."
)
@click.option("--all", "show_all", is_flag=True, help="List every kept run.")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    metavar="N",
    help=f"List the N newest runs [default: {_LIMIT}; with --json, all].",
)
@click.option(
    "--prune",
    is_flag=True,
    help="Remove the oldest runs (never a running one) until the runs fit "
    "$TRAINMON_BUDGET [default: 4 GiB]. Training prunes so as a run starts, too.",
)
@click.option(
    "--dry-run", is_flag=True, help="With --prune: say what would be removed; remove nothing."
)
def runs(as_json: bool, show_all: bool, limit: int | None, prune: bool, dry_run: bool) -> None:
    """List the runs kept on this machine, newest first.

    Each training process keeps its run in $TRAINMON_DIR (default: trainmon under the
    XDG data home), one folder per run; `trainmon watch --record` keeps what a monitor
    receives there too. Status: running, finished, ended early (stopped short of its
    total steps or epochs), crashed/lost (a worker ended without a word). The metric is
    the dashboard's main one; best is its lowest (highest for an accuracy). Name a run
    by its name or a unique prefix in replay, export, compare and rm. A relative
    TRAINMON_DIR is taken from the current directory.
    """
    check_data_dir()
    if dry_run and not prune:
        raise click.UsageError("--dry-run goes with --prune (or trainmon rm --dry-run RUN)")
    if prune:
        _prune(dry_run)
        return
    every = store.scan()
    if not every and not as_json:
        say(_nothing_kept())
        return
    if _relative_note() and not as_json:
        click.echo(f"runs kept in {escaped(store.runs_dir())}{_relative_note()}", err=True)
    count = len(every) if show_all or (as_json and limit is None) else (limit or _LIMIT)
    summaries = [summary_of(folder, main_metric) for folder in every[:count]]
    if as_json:
        say(json.dumps([s.as_json() for s in summaries], indent=1))
        return
    _table(summaries)
    if len(every) > count:
        more = len(every) - count
        click.echo(
            f"{more} older run{'s' if more != 1 else ''} not listed: --all lists them", err=True
        )


def _nothing_kept() -> str:
    return (
        f"no runs kept in {escaped(store.runs_dir())} yet{_relative_note()}.\n"
        "A training process using trainmon-client keeps its run there by default "
        "(Monitor(record=False) or TRAINMON_RECORD=0 turns it off); `trainmon watch "
        "--record` keeps what a monitor receives. TRAINMON_DIR moves the directory."
    )


def _row(summary: RunSummary, plain: bool) -> tuple[str, ...]:
    """A run's cells; ``plain`` (piped): numbers without thousands separators."""
    name = escaped(summary.name)
    if len(name) > _NAME_WIDTH:
        name = name[: _NAME_WIDTH - 1] + "…"
    metric = escaped(summary.metric or "–")
    return (
        name,
        _short_when(summary.started),
        _duration(summary.duration_s),
        summary.status,
        str(summary.workers),
        "–" if summary.last_step is None else f"{summary.last_step:{'' if plain else ','}}",
        metric,
        _value(summary.last, summary.metric),
        _value(summary.best, summary.metric),
    )


def _duration(seconds: float) -> str:
    from trainmon.view.format import format_duration

    return format_duration(seconds)


def _value(value: float | None, metric: str | None) -> str:
    """A metric's value as the dashboard shows it (an accuracy in percent; four
    significant digits), a whole number too: ``1.000`` beside ``0.5000``, not ``1``."""
    from trainmon.names import DATA_WAIT_NAME, is_accuracy
    from trainmon.view.format import format_metric, format_percent, format_value

    if value is None or metric is None:
        return "–"
    if not math.isfinite(value):
        return format_metric(metric, value)  # nan and inf as the dashboard shows them
    if is_accuracy(metric) or metric == DATA_WAIT_NAME:
        return format_percent(value)
    magnitude = abs(value)
    if value == 0 or 1e-3 <= magnitude < 1e5:
        decimals = 3 if value == 0 else max(0, 3 - math.floor(math.log10(magnitude)))
        return f"{value:.{decimals}f}"
    return format_value(value)


def _table(summaries: Sequence[RunSummary]) -> None:
    """The runs as a table on a terminal, else as plain columns (for grep and awk)."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    rows = [_row(summary, plain=not console.is_terminal) for summary in summaries]
    widths = [max(len(cell) for cell in column) for column in zip(_HEADERS, *rows, strict=False)]
    if console.is_terminal:
        # the run's name takes what the other columns leave (cut, never wrapped)
        room = console.width - sum(widths[1:]) - 2 * (len(widths) - 1)
        table = Table(box=None, header_style="bold", pad_edge=False)
        for index, (header, width) in enumerate(zip(_HEADERS, widths, strict=True)):
            table.add_column(
                header,
                no_wrap=True,
                overflow="ellipsis",
                min_width=None if index == 0 else width,
                max_width=max(room, 8) if index == 0 else None,
            )
        for row in rows:
            table.add_row(*row, style="green" if row[3] == "running" else None)
        console.print(table)
        return
    for row in (_HEADERS, *rows):
        say("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _prune(dry_run: bool) -> None:
    """Remove the oldest runs not running until the runs fit the budget; say what (with
    ``dry_run``, what would go, removing nothing)."""
    budget, problem = store.budget_bytes()
    if problem:
        click.echo(problem, err=True)
    if budget <= 0:
        say("no budget (TRAINMON_BUDGET=0): every run is kept")
        return
    removed = store.prune(budget, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for run in removed:
        say(f"{verb} {describe_run(run)}, {size_text(run.size)}")
    gone = {run.path for run in removed}
    left = [run for run in store.scan() if run.path not in gone]
    total = sum(run.size for run in left)
    if removed:
        freed = sum(run.size for run in removed)
        kept = "would be kept, taking" if dry_run else "kept take"
        say(
            f"{verb} {len(removed)} run{'s' if len(removed) != 1 else ''} "
            f"({size_text(freed)}); {len(left)} {kept} {size_text(total)} "
            f"of {size_text(budget)}{' (--dry-run: nothing removed)' if dry_run else ''}"
        )
    else:
        say(f"all {len(left)} runs fit: {size_text(total)} of {size_text(budget)}")


# -- trainmon rm ---------------------------------------------------------------------------


@click.command(context_settings=CONTEXT)
@click.argument("names", nargs=-1, required=True, metavar="RUN...")
@click.option("--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
def rm(names: tuple[str, ...], dry_run: bool) -> None:
    """Remove kept runs (RUN: a run's name, a unique prefix, its folder id or path).

    A name several kept runs share is an error listing them (name one by its folder
    id); a running run is not removed. Nothing is removed unless every RUN is found.
    """
    check_data_dir()
    every = store.scan()
    chosen: list[store.RunFolder] = []
    for arg in names:
        run = _one_to_remove(arg, every)
        if run.live():
            raise click.ClickException(f"run {describe_run(run)} is running: not removed")
        if run not in chosen:
            chosen.append(run)
    for run in chosen:
        if dry_run:
            say(f"would remove {describe_run(run)}, {size_text(run.size)} (--dry-run)")
        elif store.remove(run):
            say(f"removed {describe_run(run)}, {size_text(run.size)}")
        else:
            raise click.ClickException(f"could not remove {escaped(run.path)}")


def _one_to_remove(arg: str, every: Sequence[store.RunFolder]) -> store.RunFolder:
    """The one run ``arg`` names: its folder's path, else as :func:`find_one` finds it,
    but a name several runs share is an error too (removing is for good)."""
    if os.path.isdir(arg):
        for run in every:
            if os.path.samefile(arg, run.path):
                return run
        raise click.BadParameter(
            f"{escaped(arg)} is not a run folder of {escaped(store.runs_dir())}"
        )
    run = find_one(arg, every)
    same = [other for other in store.find_runs(arg, every) if other.name == run.name]
    if len(same) > 1:
        raise click.UsageError(
            f"{escaped(arg)} names several runs:\n{_listed(same)}\nname one by its folder id"
        )
    return run
