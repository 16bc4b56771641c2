"""The workers panel: a row per worker (rank, host, step, rate, missed, status), as many
as fit; GPU utilisation and memory, CPU and resident memory where workers send them
(``sys/*``, the client's system.py)."""

from __future__ import annotations

import math

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.panel import Panel
from rich.text import Text

from trainmon.state import Run, Worker
from trainmon.view.options import ViewOptions
from trainmon.view.table import grid_lines
from trainmon.view.theme import STATUS_STYLE

__all__ = ["workers_panel"]


def workers_panel(run: Run, opts: ViewOptions, now: float) -> Panel:
    """One row per worker, as many as fit, and how many more there are."""
    return Panel(_WorkersTable(run, opts, now), title="Workers", title_align="left")


class _WorkersTable:
    """The workers' rows, taken now (so a frozen frame stays frozen), cut to fit later."""

    COLUMNS = (
        ("rank", "right"),
        ("host", "left"),
        ("pid", "right"),
        ("step", "right"),
        ("last seen", "right"),
        ("steps/s", "right"),
        ("step ms", "right"),
        ("missed", "right"),
        ("status", "left"),
    )

    def __init__(self, run: Run, opts: ViewOptions, now: float) -> None:
        straggler = run.straggler(now, opts.stall_after_s)
        workers = sorted(run.workers.values(), key=Worker.sort_key)
        system = [c for c in _SYSTEM_COLUMNS if any(c[2] in w.series for w in workers)]
        self.columns = self.COLUMNS[:-1] + tuple((c[0], "right") for c in system)
        self.columns += self.COLUMNS[-1:]
        self.system = len(system)  # (before the status column)
        self.rows = []
        # a run that ended (compare; a recording played to its end): last seen is told
        # from the run's end, not from a clock that stopped
        ended = opts.ended or run.ended
        end = max((w.last_seen for w in workers), default=now) if ended else None
        restarted = run.superseded()
        for worker in workers:
            row = _worker_row(worker, opts, now, worker is straggler, end)
            if worker.id in restarted:  # ended before its restart began (not the lead)
                row = (*row[:-1], Text("restarted", style="tm.dim"))
            extra = tuple(_system_cell(worker, column) for column in system)
            self.rows.append(row[:-1] + extra + row[-1:])
        self.untracked = run.untracked_workers

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        rows = self.rows
        room = max((options.height or len(rows) + 2) - 1, 1)
        hidden = 0
        notes = 1 if self.untracked else 0
        if len(rows) + notes > room:
            keep = max(room - 1 - notes, 0)
            hidden = len(rows) - keep
            rows = rows[:keep]
        columns, rows = _fitting(self.columns, rows, self.system, options.max_width)
        yield from grid_lines(columns, rows, options.max_width)
        if hidden:
            yield Text(f"  … {hidden:,} more workers not shown", style="tm.dim")
        if self.untracked:
            yield Text(
                f"  worker limit reached: {self.untracked:,} records of further "
                "workers not tracked",
                style="tm.warn",
            )


def _worker_row(
    worker: Worker, opts: ViewOptions, now: float, straggler: bool = False, end: float | None = None
) -> tuple[str | Text, ...]:
    status = worker.status(now, opts.stall_after_s)
    rate = worker.steps_per_s
    shown_rate = rate is not None and not worker.finished and status == "running"
    # A straggler is running, but behind the others: say that alone (fits at 80 columns).
    status_text = (
        Text("straggler", style="tm.straggler")
        if straggler
        else Text(status, style=STATUS_STYLE[status])
    )
    missed = f"{worker.missed:,}"
    if worker.client_dropped:
        missed += f"+{worker.client_dropped:,}"
    return (
        "–" if worker.rank is None else str(worker.rank),
        worker.host or worker.id,
        "–" if worker.pid is None else str(worker.pid),
        "–" if worker.step is None else f"{worker.step:,}",
        _last_seen(worker, now, end),
        f"{rate:,.1f}" if shown_rate and rate is not None else "–",
        f"{1000 / rate:,.1f}" if shown_rate and rate else "–",
        Text(missed, style="tm.stalled" if missed != "0" else ""),
        status_text,
    )


def _last_seen(worker: Worker, now: float, end: float | None) -> str:
    """How long ago ``worker`` was last heard from; with ``end`` (the last record of a
    run that ended), how long before that end: "at the end" for most workers."""
    if end is None:
        return f"{max(now - worker.last_seen, 0):.1f}s ago"
    before = end - worker.last_seen
    return "at the end" if before < 0.05 else f"{before:.1f}s before the end"


# The system metrics the table shows when a worker sends them: (header, how shown,
# the metric, the metric of the whole where it is a share of one).
_SYSTEM_COLUMNS: tuple[tuple[str, str, str, str], ...] = (
    ("GPU %", "percent", "sys/gpu_util", ""),
    ("GPU mem", "of", "sys/gpu_mem_mb", "sys/gpu_mem_total_mb"),
    ("CPU %", "percent", "sys/cpu", ""),
    ("RSS", "size", "sys/rss_mb", ""),
)


def _fitting(
    columns: tuple[tuple[str, str], ...],
    rows: list[tuple[str | Text, ...]],
    system: int,
    width: int,
) -> tuple[tuple[tuple[str, str], ...], list[tuple[str | Text, ...]]]:
    """The columns and rows less the system columns (the ``system`` before the last
    column) that do not fit in ``width``, the rightmost left out first."""
    widths = [len(name) for name, _ in columns]
    for row in rows:
        for index, cell in enumerate(row):
            size = cell.cell_len if isinstance(cell, Text) else cell_len(cell)
            widths[index] = max(widths[index], size)
    while system and sum(widths) + 2 * (len(widths) - 1) + 1 > width:
        drop = len(columns) - 2  # the last system column, before the status
        del widths[drop]
        columns = columns[:drop] + columns[drop + 1 :]
        rows = [row[:drop] + row[drop + 1 :] for row in rows]
        system -= 1
    return columns, rows


def _system_cell(worker: Worker, column: tuple[str, str, str, str]) -> str:
    """A worker's last value of a system metric as the table shows it, or "–"."""
    _, how, name, whole = column
    series = worker.series.get(name)
    if series is None or not math.isfinite(series.last):
        return "–"
    value = series.last
    if how == "percent":
        return f"{value:.0f}"
    total = worker.series.get(whole) if whole else None
    if total is not None and math.isfinite(total.last):
        return f"{_size(value)}/{_size(total.last)}"
    return _size(value)


def _size(megabytes: float) -> str:
    """MB as the table shows it: ``512M``, ``3.2G``, ``80G``."""
    if megabytes < 1000:
        return f"{megabytes:.0f}M"
    gigabytes = megabytes / 1024
    return f"{gigabytes:.1f}G" if gigabytes < 10 else f"{gigabytes:.0f}G"
