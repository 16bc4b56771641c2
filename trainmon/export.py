"""Exports: every metric value as CSV or JSON lines, the dashboard as SVG or HTML."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from typing import IO

from rich.console import Console, RenderableType
from rich.theme import Theme

from trainmon.theme import load_theme
from trainmon_client.protocol import Record

__all__ = [
    "FORMATS",
    "dashboard_picture",
    "metric_rows",
    "record_json",
    "unique_metrics",
    "write_csv",
    "write_jsonl",
]

FORMATS = ("csv", "jsonl", "html", "svg")
CSV_COLUMNS = ("run", "worker", "seq", "step", "epoch", "time", "metric", "value")


def unique_metrics(records: Iterable[Record]) -> Iterator[Record]:
    """Metrics records with repeats (the same worker and sequence number) left out."""
    seen: set[tuple[str, str, int]] = set()
    for record in records:
        key = (record.run, record.worker, record.seq)
        if record.kind == "metrics" and key not in seen:
            seen.add(key)
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


def write_csv(records: Iterable[Record], out: IO[str]) -> int:
    """Every metric value as a CSV row (NaN and infinities as nan, inf, -inf)."""
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    count = 0
    for row in metric_rows(records):
        writer.writerow(["" if v is None else v for v in row])
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
