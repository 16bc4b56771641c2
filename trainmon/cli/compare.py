"""``trainmon compare``: two or more runs drawn together, and what ``watch --compare``
loads of a past run to draw under the live one."""

from __future__ import annotations

import math
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import replace
from itertools import pairwise
from typing import Any

import click
from rich.console import Console
from rich.text import Text

from trainmon.cli.files import load_files
from trainmon.cli.options import CONTEXT, display_options
from trainmon.cli.output import say
from trainmon.cli.runs import run_files
from trainmon.cli.show import display_settings, show
from trainmon.escape import escaped
from trainmon.names import is_accuracy
from trainmon.sources.recording import ReplaySource
from trainmon.state import Run, RunState
from trainmon.view import ViewOptions, main_metric
from trainmon.view.compare import (
    TICKS_PER_S,
    Points,
    difference_text,
    keep_elapsed,
    keep_exact,
)
from trainmon.view.format import format_metric
from trainmon.view.table import grid_lines
from trainmon_client import store
from trainmon_client.protocol import Record

__all__ = [
    "compare",
    "comparison_table",
    "elapsed_records",
    "exact_points",
    "kept_run",
    "named_records",
]


def named_records(arg: str, taken: Sequence[str] = ()) -> tuple[str, list[Record], bool]:
    """The records of the run ``arg`` names (a kept run's name, unique prefix or folder
    id, or a recording's path), all under one run name that is not in ``taken``: the
    label of the kept run (its name, with its start where others share it), else the
    run name in the recording. A recording holding several runs gives its first. And
    whether a process writes the run now (else its records are its end)."""
    label, files = run_files(arg)
    records = load_files(files).records
    live = any(store.is_live(path) for path in files)
    first = records[0].run
    records = [record for record in records if record.run == first]
    name = first if os.path.exists(arg) else label  # a path: the name recorded
    base, count = name, 1
    while name in taken:  # the same run given twice, or two recordings of one name
        count += 1
        name = f"{base} #{count}"
    if name != first:
        records = [record._replace(run=name) for record in records]
    return name, records, live


def kept_run(arg: str) -> tuple[str, list[Record], bool]:
    """The records of the run ``arg`` names, for ``watch --compare``: renamed "NAME
    (kept START)", a name no live run has, so it stays apart from the live one; and
    whether a process writes it now."""
    _, records, live = named_records(arg)
    when = time.strftime("%m-%d %H:%M", time.localtime(records[0].time))
    name = f"{records[0].run} (kept {when})"
    return name, [record._replace(run=name) for record in records], live


def elapsed_records(records: Sequence[Record]) -> list[Record]:
    """``records`` with each step the tenths of a second since its run's first record:
    the same runs aligned by wall time rather than by step."""
    starts: dict[str, float] = {}
    for record in records:
        starts.setdefault(record.run, record.time)
    return [
        record._replace(step=round((record.time - starts[record.run]) * TICKS_PER_S))
        if record.step is not None
        else record
        for record in records
    ]


def exact_points(records: Sequence[Record]) -> Points:
    """Every point of every metric in ``records``, by run, worker and metric, in step
    order (a record without a step at its sequence number, as the state takes it):
    the difference between runs read from disk is then taken at the step itself,
    where the state keeps only buckets of the points older than its window. The
    lists hold the records' own numbers: a pointer a point."""
    found: dict[tuple[str, str, str], tuple[list[int], list[float]]] = {}
    for record in records:
        if record.kind != "metrics" or not record.metrics:
            continue
        step = record.step if record.step is not None else record.seq
        for name, value in record.metrics.items():
            points = found.setdefault((record.run, record.worker, name), ([], []))
            points[0].append(step)
            points[1].append(value)
    for key, (steps, values) in found.items():
        if any(later < earlier for earlier, later in pairwise(steps)):
            order = sorted(range(len(steps)), key=steps.__getitem__)  # stable
            found[key] = ([steps[k] for k in order], [values[k] for k in order])
    return dict(found)


@click.command(context_settings=CONTEXT)
@click.argument("runs", nargs=-1, required=True, metavar="RUN RUN...")
@display_options
def compare(runs: tuple[str, ...], **display: Any) -> None:
    """Draw two or more runs together: the first shown, the others overlaid.

    A RUN is a kept run's name, unique prefix or folder id (see `trainmon runs`), or a
    recording file or run folder (an existing path wins). Curves are aligned by step;
    t aligns them by seconds since each run's first record. The stats say the
    difference of the main metric at the latest step both runs have (shown run minus
    the other). r shows the next run, the others under it; q quits. With --plain,
    prints a table: each run's main metric, last and best, and its difference from
    the first run.
    """
    if len(runs) < 2:
        raise click.UsageError("compare needs two runs or more (trainmon runs lists them)")
    names: list[str] = []
    records: list[Record] = []
    ends = True  # no run is being written: a worker without a bye is lost
    for arg in runs:
        name, found, live = named_records(arg, names)
        names.append(name)
        records += found
        ends = ends and not live
    records.sort(key=lambda record: record.time)
    settings, opts, plain = display_settings(display, False, "compare", names[0])
    opts = replace(
        opts, compared=tuple(names), time_axis=True, chart=True, smoothing=0.0, ended=True
    )
    state = RunState()
    keep_exact(state, exact_points(records))
    if plain or not Console().is_terminal:
        for record in records:
            state.apply(record, record.time)
        if ends:
            state.note_end()
        say(comparison_table(state, names, shutil.get_terminal_size().columns))
        return
    twin = RunState()
    for record in elapsed_records(records):
        twin.apply(record, record.time)
    if ends:
        twin.note_end()
    keep_elapsed(state, twin)
    show(ReplaySource(records, instant=True, ends=ends), opts, settings, False, state)


def _compare_help(command: click.Command) -> None:
    """compare prints a table once where watch and replay print status lines: --plain
    says so, and --plain-interval (the seconds between status lines) is not listed."""
    for param in command.params:
        if param.name == "plain" and isinstance(param, click.Option):
            param.help = (
                "No dashboard: print a table (each run's main metric, last and best, and "
                "its difference from the first run) and exit; automatic without a terminal."
            )
        elif param.name == "plain_interval" and isinstance(param, click.Option):
            param.hidden = True


_compare_help(compare)


def comparison_table(state: RunState, names: Sequence[str], width: int = 100) -> str:
    """Per run: the main metric (the first run's), its last and best value, and the
    difference from the first run at the latest step both have."""
    first = state.runs.get(names[0])
    metric = main_metric(first, ViewOptions(interactive=False)) if first is not None else None
    columns = (
        ("run", "left"),
        ("metric", "left"),
        ("last", "right"),
        ("best", "right"),
        (f"vs {names[0]}", "left"),
    )
    rows: list[tuple[str | Text, ...]] = []
    for name in names:
        run = state.runs.get(name)
        if run is None or metric is None:
            rows.append((escaped(name), "–", "–", "–", "–"))
            continue
        last, best = _last_best(run, metric)
        versus = (
            difference_text(run, first, metric, state)
            if first is not None and run is not first
            else "–"
        )
        rows.append((escaped(name), metric, last, best, versus))
    return "\n".join(line.plain.rstrip() for line in grid_lines(columns, rows, width))


def _last_best(run: Run, metric: str) -> tuple[str, str]:
    """The last value of ``metric`` and its best (highest for an accuracy, else lowest)."""
    lead = run.lead
    series = lead.series.get(metric) if lead is not None else None
    if series is None:
        return "–", "–"
    older = series.older.columns()
    highest = is_accuracy(metric)
    values = [v for v in (older.highs if highest else older.lows) + series.vals if math.isfinite(v)]
    best = (max(values) if highest else min(values)) if values else math.nan
    return format_metric(metric, series.last), format_metric(metric, best)
