"""Exports: every metric value as CSV or JSON lines, the dashboard as SVG or HTML."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator
from typing import IO, Final

from rich.console import Console, RenderableType
from rich.theme import Theme

from trainmon.state import RunState
from trainmon.view.theme import load_theme
from trainmon_client.protocol import Record

__all__ = [
    "FORMATS",
    "csv_cell",
    "dashboard_picture",
    "is_printed",
    "metric_rows",
    "record_json",
    "unique_metrics",
    "write_csv",
    "write_jsonl",
]

FORMATS = ("csv", "jsonl", "html", "svg")
CSV_COLUMNS = ("run", "worker", "seq", "step", "epoch", "time", "metric", "value")
# A spreadsheet takes a cell that starts with one of these for a formula (OWASP, "CSV
# Injection"): a run or metric named =HYPERLINK(...) would run when the file is opened.
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")
_NUMBER: Final = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def is_printed(record: Record) -> bool:
    """Whether ``trainmon tail`` and the jsonl export print a record they take in.

    Metrics records that hold values: ``set_epoch()`` sends one with none, to mark
    where the epoch starts, which would be a line without a metric.
    """
    return record.kind == "metrics" and bool(record.metrics)


def unique_metrics(records: Iterable[Record]) -> Iterator[Record]:
    """The records ``trainmon tail`` would print, of records in the order given.

    Repeats are left out as the monitor leaves them out, by feeding a state: a record
    sent again (to a monitor that attached later) is dropped, while a restarted
    process that numbers from 0 again under the same worker id is kept.
    """
    state = RunState()
    for record in records:
        if state.apply(record, record.time) and is_printed(record):
            yield record


def metric_rows(records: Iterable[Record]) -> Iterator[tuple[object, ...]]:
    """One row per metric value: run, worker, seq, step, epoch, time, metric, value."""
    for record in unique_metrics(records):
        for name, value in record.metrics.items():
            yield (
                record.run,
                record.worker,
                record.seq,
                record.step,
                record.epoch,
                record.time,
                name,
                value,
            )


def csv_cell(value: object) -> object:
    """A value as a CSV cell a spreadsheet shows and never runs: text it would take for
    a formula gets a ' in front; numbers (negative ones too) stay numbers."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _NUMBER.fullmatch(value):
        return "'" + value  # -loss too: a spreadsheet shows it as #NAME? otherwise
    return value


def write_csv(records: Iterable[Record], out: IO[str]) -> int:
    """Every metric value as a CSV row (NaN and infinities as nan, inf, -inf).

    Text cells are quoted (a spreadsheet that splits at ; keeps a name whole) and made
    safe by :func:`csv_cell`; numbers are written bare.
    """
    writer = csv.writer(out, quoting=csv.QUOTE_NONNUMERIC)
    writer.writerow(CSV_COLUMNS)
    count = 0
    for row in metric_rows(records):
        writer.writerow([csv_cell(v) for v in row])
        count += 1
    return count


def write_jsonl(records: Iterable[Record], out: IO[str]) -> int:
    """One JSON object per metrics record, the same shape as ``trainmon tail`` prints."""
    count = 0
    for record in unique_metrics(records):
        out.write(json.dumps(record_json(record)) + "\n")
        count += 1
    return count


def record_json(record: Record) -> dict[str, object]:
    """A metrics record as ``trainmon tail`` and the jsonl export write it."""
    return {
        "run": record.run,
        "worker": record.worker,
        "seq": record.seq,
        "step": record.step,
        "epoch": record.epoch,
        "t": record.time,
        "metrics": dict(record.metrics),
    }


def dashboard_picture(
    renderable: RenderableType,
    fmt: str,
    width: int = 120,
    height: int = 40,
    title: str = "",
    theme: Theme | None = None,
) -> str:
    """The renderable as an SVG or a standalone HTML page, as a terminal would show it."""
    console = Console(
        theme=theme or load_theme(),
        record=True,
        width=width,
        height=height,
        file=io.StringIO(),
        force_terminal=True,
        color_system="truecolor",
        legacy_windows=False,
    )
    console.print(renderable)
    if fmt == "svg":
        return console.export_svg(title=title or "trainmon")
    return console.export_html(inline_styles=True)
