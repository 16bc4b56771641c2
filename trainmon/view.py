"""The dashboard as pure functions of ``RunState`` and ``ViewOptions``.

No widget keeps data of its own: every frame is rebuilt from state, so what a person
sees can be tested by rendering to a ``Console`` writing into a ``StringIO``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.layout import Layout
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from trainmon.chart import Line, LineChart, ema
from trainmon.sparkline import Sparkline
from trainmon.state import ACCURACY_NAMES, GRAD_NAMES, Run, RunState, Worker

__all__ = [
    "ViewOptions",
    "format_duration",
    "format_value",
    "render",
    "status_line",
    "summary",
]

STATUS_STYLE = {
    "running": "green",
    "stalled": "yellow",
    "lost": "bold red",
    "finished": "blue",
    "waiting": "dim",
}
LOSS_NAMES = ("loss", "train_loss", "training_loss")
_SUMMARY_METRICS = 20


@dataclass(frozen=True, slots=True)
class ViewOptions:
    """How to show the state; changed by keys, never by records."""

    history: int = 100  # values in the loss sparkline
    run: str | None = None  # show this run, else the most recently active
    paused: bool = False
    paused_records: int = 0  # records received since the view was paused
    stall_after_s: float = 60.0
    address: str = ""  # where the monitor listens or connects, for the waiting screen
    interactive: bool = True
    notice: str = ""  # a passing message in the footer, e.g. where a screenshot went
    chart: bool = False  # the main metric as a line chart of the whole run (key c)
    smoothing: float = 0.6  # EMA weight of the chart's smoothed line (key s cycles)


def render(state: RunState, opts: ViewOptions, now: float) -> RenderableType:
    """The whole dashboard for one frame."""
    run = state.current(opts.run)
    layout = Layout(name="root")
    if run is None:
        layout.split_column(
            Layout(header(state, None, opts, now), size=1),
            Layout(waiting_panel(state, opts)),
            Layout(footer(opts), size=1),
        )
        return layout
    layout.split_column(
        Layout(header(state, run, opts, now), size=1),
        Layout(epoch_bar(run, now, opts.stall_after_s), size=3),
        Layout(name="middle", ratio=3, minimum_size=8),
        Layout(workers_panel(run, opts, now), ratio=2, minimum_size=5),
        Layout(footer(opts), size=1),
    )
    layout["middle"].split_row(
        Layout(loss_panel(run, opts), ratio=3),
        Layout(stats_panel(state, run), ratio=2, minimum_size=30),
    )
    return layout


def header(state: RunState, run: Run | None, opts: ViewOptions, now: float) -> Text:
    """Title, run, status, elapsed time and the number of workers, on one line."""
    text = Text()
    text.append(" trainmon ", style="bold reverse")
    if run is None:
        text.append("  waiting for records", style="dim")
        return text
    status = run.status(now, opts.stall_after_s)
    text.append(f"  run {run.name}", style="bold")
    text.append("  ● ", style=STATUS_STYLE[status])
    text.append(status, style=STATUS_STYLE[status])
    if run.started is not None:
        end = now
        if run.finished:
            end = max((w.last_seen for w in run.workers.values()), default=now)
        text.append(f"  elapsed {format_duration(max(end - _local_start(run, now), 0.0))}")
    text.append(f"  {len(run.workers)} worker{'s' if len(run.workers) != 1 else ''}")
    others = len(state.runs) - 1
    if others > 0:
        text.append(f"  (+{others} other run{'s' if others > 1 else ''})", style="dim")
    if opts.paused:
        text.append("  PAUSED", style="bold black on yellow")
    return text


def _local_start(run: Run, now: float) -> float:
    """When the run started, on the monitor's clock."""
    first_seen = min(w.first_seen for w in run.workers.values())
    return first_seen if run.started is None else min(run.started, first_seen, now)


def epoch_bar(run: Run, now: float | None = None, stall_after_s: float = 60.0) -> Panel:
    """Epoch gauge with percent, ETA and steps per second (not while the lead is idle)."""
    lead = run.lead
    total = run.total_epochs
    epoch = lead.epoch if lead is not None else None
    if epoch is None:
        label = "Epoch –" if not total else f"Epoch –/{total}"
    else:
        shown = min(epoch + 1, total) if total else epoch + 1
        label = f"Epoch {shown}/{total}" if total else f"Epoch {shown}"
    fraction = run.progress()
    grid = Table.grid(padding=(0, 1), expand=True)
    grid.add_column(no_wrap=True)
    grid.add_column(ratio=1)
    grid.add_column(no_wrap=True, justify="right")
    bar: RenderableType
    if fraction is None:
        bar = Text("progress unknown: pass total_epochs or total_steps", style="dim")
        percent = ""
    else:
        bar = ProgressBar(total=1.0, completed=fraction, complete_style="green")
        percent = f"{fraction * 100:3.0f}%"
    eta = run.eta_s()
    rate = lead.steps_per_s if lead is not None else None
    if lead is not None and now is not None and lead.status(now, stall_after_s) != "running":
        eta = rate = None  # a rate from before a worker went quiet would mislead
    step = "" if lead is None or lead.step is None else f"step {lead.step:,}"
    if run.total_steps and step:
        step += f"/{run.total_steps:,}"
    right = "  ".join(
        part
        for part in (
            percent,
            f"ETA {format_duration(eta)}" if eta is not None else ("done" if run.finished else ""),
            f"{rate:,.1f} steps/s" if rate is not None and not run.finished else "",
            step,
        )
        if part
    )
    grid.add_row(Text(label, style="bold"), bar, right)
    return Panel(grid, title="Progress", title_align="left", height=3)


def loss_panel(run: Run, opts: ViewOptions) -> Panel:
    """The main metric's sparkline over the last ``history`` values."""
    name = run.find_metric(LOSS_NAMES) or (run.metric_names[0] if run.metric_names else None)
    series = run.series(name) if name is not None else None
    if series is None or not series.vals:
        return Panel(Text("no metrics yet", style="dim"), title="Loss", title_align="left")
    values = series.values(opts.history)
    finite = [v for v in values if math.isfinite(v)]
    caption = Text(style="dim")
    if finite:
        caption.append(f"min {format_value(min(finite))}  max {format_value(max(finite))}  ")
    caption.append(f"last {format_value(values[-1])}")
    bad = len(values) - len(finite)
    if bad:
        caption.append(f"  {bad} non-finite", style="bold red")
    if opts.chart:
        raw = series.history_points()
        lines = [Line(raw, "cyan")]
        if opts.smoothing:
            smooth = ema([point[1] for point in raw], opts.smoothing)
            smoothed = [(p[0], v, v, v) for p, v in zip(raw, smooth, strict=True)]
            lines.append(Line(smoothed, "bold yellow", band=False))
        title = f"{name} · all {series.count:,} steps"
        if opts.smoothing:
            title += f" · smoothed {opts.smoothing:.2f}"
        return Panel(_FillHeight(LineChart(lines), caption), title=title, title_align="left")
    return Panel(
        _FillHeight(values, caption),
        title=f"{name} · last {len(values)}",
        title_align="left",
    )


class _FillHeight:
    """A sparkline (or a chart) as tall as its panel allows, with a caption line under it."""

    def __init__(self, values: list[float] | LineChart, caption: Text) -> None:
        self.values = values
        self.caption = caption

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        height = max((options.height or 4) - 1, 1)
        if isinstance(self.values, LineChart):
            self.values.height = height
            yield self.values
        else:
            yield Sparkline(self.values, height=height)
        yield self.caption


def stats_panel(state: RunState, run: Run) -> Panel:
    """Current loss, accuracy, grad norm, best loss, and what was received."""
    grid = _Pairs()
    loss_name = run.find_metric(LOSS_NAMES)
    acc_name = run.find_metric(ACCURACY_NAMES)
    grad_name = run.find_metric(GRAD_NAMES)
    shown = {loss_name, acc_name, grad_name}
    loss = run.series(loss_name) if loss_name else None
    grid.add_row("loss", format_value(loss.last) if loss else "–")
    acc = run.series(acc_name) if acc_name else None
    grid.add_row("accuracy", format_percent(acc.last) if acc else "–")
    grad = run.series(grad_name) if grad_name else None
    grid.add_row("grad norm", format_value(grad.last) if grad else "–")
    if loss is not None and loss.best_step is not None:
        grid.add_row("best loss", f"{format_value(loss.best)} @ {loss.best_step:,}")
    else:
        grid.add_row("best loss", "–")
    grid.add_row("records", f"{state.records:,}")
    missed, dropped = run.missed, run.client_dropped
    grid.add_row("missed", Text(f"{missed:,}", style="bold yellow" if missed else ""))
    if dropped:
        grid.add_row("dropped", Text(f"{dropped:,} by the client", style="bold yellow"))
    if run.not_resent:
        grid.add_row("before", Text(f"{run.not_resent:,} older than history", style="dim"))
    outages, longest = run.outages
    if outages:
        grid.add_row("outages", Text(f"{outages:,} (longest {longest:.1f} s)", style="yellow"))
    if limits_text(state, run):
        grid.add_row("limits", Text("reached: see the summary", style="bold yellow"))
    grid.add_row("rejected", _rejected_text(state))
    if state.refused:
        grid.add_row("refused", Text(f"{state.refused:,} handshakes", style="bold red"))
    for name in run.metric_names:
        if name not in shown:
            series = run.series(name)
            if series is not None:
                grid.add_row(name[:14], format_value(series.last))
    return Panel(grid, title="Stats", title_align="left")


class _Pairs:
    """Label and value lines: as many as fit, then how many more there are."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str | Text]] = []

    def add_row(self, label: str, value: str | Text) -> None:
        self.rows.append((label, value))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        rows = self.rows
        room = options.height or len(rows)
        if len(rows) > room:
            rows = rows[: max(room - 1, 0)]
        for label, value in rows:
            line = Text(f"{label:<10} ", style="bold", no_wrap=True, overflow="ellipsis")
            line.append_text(value if isinstance(value, Text) else Text(value))
            line.truncate(options.max_width, overflow="ellipsis")
            yield line
        if len(rows) < len(self.rows):
            yield Text(f"… {len(self.rows) - len(rows)} more", style="dim")


def _rejected_text(state: RunState) -> Text:
    """The reject count, with the peer that sent most of them."""
    if not state.rejected:
        return Text("0")
    text = Text(f"{state.rejected:,}", style="bold red")
    if state.rejected_by_peer:
        peer, count = max(state.rejected_by_peer.items(), key=lambda item: item[1])
        text.append(f" ({count:,} from {peer})", style="red")
    return text


def limits_text(state: RunState, run: Run) -> str:
    """What was left untracked because a limit was reached, or ''."""
    parts = []
    if state.untracked_runs:
        parts.append(
            f"{state.untracked_runs:,} records of runs past the limit of {state.limits.runs}"
        )
    if run.untracked_workers:
        parts.append(
            f"{run.untracked_workers:,} records of workers past the limit of {state.limits.workers}"
        )
    untracked_metrics = sum(w.untracked_metrics for w in run.workers.values())
    if untracked_metrics:
        parts.append(
            f"{untracked_metrics:,} values of metrics past the limit of "
            f"{state.limits.metrics} per worker"
        )
    return "; ".join(parts)


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
        ("missed", "right"),
        ("status", "left"),
    )

    def __init__(self, run: Run, opts: ViewOptions, now: float) -> None:
        self.rows = [
            _worker_row(worker, opts, now)
            for worker in sorted(run.workers.values(), key=Worker.sort_key)
        ]
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
        yield from grid_lines(self.COLUMNS, rows, options.max_width)
        if hidden:
            yield Text(f"  … {hidden:,} more workers not shown", style="dim")
        if self.untracked:
            yield Text(
                f"  worker limit reached: {self.untracked:,} records of further "
                "workers not tracked",
                style="bold yellow",
            )


def grid_lines(
    columns: tuple[tuple[str, str], ...], rows: list[tuple[str | Text, ...]], width: int
) -> list[Text]:
    """A header and rows as aligned lines: a plain table, far cheaper than Rich's Table.

    Columns are as wide as their widest cell; spare width goes to the first
    left-aligned column, and that column is cut with an ellipsis when space is short.
    """
    cells = [[c if isinstance(c, Text) else Text(c) for c in row] for row in rows]
    widths = [len(name) for name, _ in columns]
    for row in cells:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], cell.cell_len)
    # spare width goes to the last left-aligned column (status), keeping hosts compact
    flexible = max((i for i, (_, justify) in enumerate(columns) if justify == "left"), default=0)
    spare = width - 1 - sum(widths) - 2 * (len(columns) - 1)
    widths[flexible] = max(widths[flexible] + spare, 4)
    lines = []
    header = Text(" ", style="bold")
    for index, (name, justify) in enumerate(columns):
        header.append(_fit(Text(name), widths[index], justify))
        header.append("  " if index < len(columns) - 1 else "")
    lines.append(header)
    for row in cells:
        line = Text(" ")
        for index, cell in enumerate(row):
            line.append_text(_fit(cell, widths[index], columns[index][1]))
            if index < len(columns) - 1:
                line.append("  ")
        lines.append(line)
    return lines


def _fit(text: Text, width: int, justify: str) -> Text:
    text = text.copy()
    if text.cell_len > width:
        text.truncate(width, overflow="ellipsis")
    pad = " " * (width - text.cell_len)
    if justify == "right":
        text = Text(pad) + text
    else:
        text.append(pad)
    return text


def _worker_row(worker: Worker, opts: ViewOptions, now: float) -> tuple[str | Text, ...]:
    status = worker.status(now, opts.stall_after_s)
    rate = worker.steps_per_s
    missed = f"{worker.missed:,}"
    if worker.client_dropped:
        missed += f"+{worker.client_dropped:,}"
    return (
        "–" if worker.rank is None else str(worker.rank),
        worker.host or worker.id,
        "–" if worker.pid is None else str(worker.pid),
        "–" if worker.step is None else f"{worker.step:,}",
        f"{max(now - worker.last_seen, 0):.1f}s ago",
        "–" if rate is None or worker.finished else f"{rate:,.1f}",
        Text(missed, style="yellow" if missed != "0" else ""),
        Text(status, style=STATUS_STYLE[status]),
    )


def waiting_panel(state: RunState, opts: ViewOptions) -> Panel:
    """What to do while nothing has arrived yet."""
    text = Text()
    text.append(
        f"Waiting for records on {opts.address or 'the configured endpoints'}\n\n", style="bold"
    )
    text.append("In the training script:\n\n", style="dim")
    text.append("    from trainmon_client import Monitor\n")
    text.append(
        f"    mon = Monitor({opts.address!r})\n" if opts.address else "    mon = Monitor()\n"
    )
    text.append("    mon.log(loss=loss, accuracy=acc)\n")
    if state.rejected:
        text.append(
            f"\n{state.rejected:,} messages rejected: {state.last_reject}", style="bold red"
        )
    if state.refused:
        text.append(
            f"\n{state.refused:,} handshakes refused; last: {state.last_refusal}", style="bold red"
        )
    return Panel(text, title="No data yet", title_align="left")


def footer(opts: ViewOptions) -> Text:
    """The keys, or the pause notice, and any passing notice."""
    text = Text()
    if opts.notice:
        text.append(f" {opts.notice} ", style="bold black on cyan")
        text.append(" ")
    if opts.paused:
        text.append(" PAUSED ", style="bold black on yellow")
        text.append(f" view frozen · {opts.paused_records:,} records arrived since · ")
        text.append("space", style="bold")
        text.append(" resume · ")
        text.append("e", style="bold")
        text.append(" save svg · ")
        text.append("q", style="bold")
        text.append(" quit")
    elif opts.interactive:
        text.append(" q", style="bold")
        text.append(" quit · ")
        text.append("space", style="bold")
        text.append(" pause · ")
        text.append("c", style="bold")
        text.append(" chart · ")
        text.append("s", style="bold")
        text.append(" smoothing · ")
        text.append("e", style="bold")
        text.append(" save svg")
    else:
        text.append(" Ctrl-C quits · training is never affected by this window")
    return text


def status_line(state: RunState, opts: ViewOptions, now: float) -> str:
    """One plain line for logs and pipes, when there is no terminal to draw on."""
    run = state.current(opts.run)
    if run is None:
        extra = f"; {state.rejected} rejected" if state.rejected else ""
        if state.refused:
            extra += f"; {state.refused} handshakes refused ({state.last_refusal})"
        return f"trainmon: waiting for records on {opts.address}{extra}"
    lead = run.lead
    parts = [f"run {run.name}", run.status(now, opts.stall_after_s)]
    if lead is not None and lead.epoch is not None:
        total = run.total_epochs
        parts.append(f"epoch {lead.epoch + 1}/{total}" if total else f"epoch {lead.epoch + 1}")
    if lead is not None and lead.step is not None:
        parts.append(f"step {lead.step}")
    for label, names in (("loss", LOSS_NAMES), ("acc", ACCURACY_NAMES)):
        name = run.find_metric(names)
        series = run.series(name) if name else None
        if series is not None:
            value = format_percent(series.last) if label == "acc" else format_value(series.last)
            parts.append(f"{label} {value}")
    statuses = [w.status(now, opts.stall_after_s) for w in run.workers.values()]
    counts = ", ".join(f"{statuses.count(s)} {s}" for s in STATUS_STYLE if statuses.count(s))
    parts.append(f"workers {len(statuses)} ({counts})")
    parts.append(f"records {state.records}")
    parts.append(_missed_text(run))
    parts.append(f"rejected {state.rejected}")
    return "trainmon: " + " · ".join(parts)


def summary(state: RunState, opts: ViewOptions, now: float) -> str:
    """The final report printed when the monitor exits."""
    if not state.runs:
        text = f"trainmon: no records were received on {opts.address}"
        if state.rejected:
            text += f"; {state.rejected} messages were rejected (last: {state.last_reject})"
        if state.refused:
            text += f"; {state.refused} handshakes refused (last: {state.last_refusal})"
        return text
    lines = []
    for run in state.runs.values():
        lines.append(
            f"run {run.name}: {run.status(now, opts.stall_after_s)}, {len(run.workers)} worker(s)"
        )
        for name in run.metric_names[:_SUMMARY_METRICS]:
            series = run.series(name)
            if series is None:
                continue
            best = ""
            if name in LOSS_NAMES and series.best_step is not None:
                best = f" (best {format_value(series.best)} at step {series.best_step})"
            shown = (
                format_percent(series.last)
                if name.lower() in ACCURACY_NAMES
                else format_value(series.last)
            )
            lines.append(f"  {name}: last {shown}{best}")
        if len(run.metric_names) > _SUMMARY_METRICS:
            lines.append(f"  … {len(run.metric_names) - _SUMMARY_METRICS} more metrics")
        lines.append(f"  {_missed_text(run)}")
        if limits_text(state, run):
            lines.append(f"  limits reached: {limits_text(state, run)}")
    received = f"records received {state.records}"
    if state.first_record_at is not None and state.last_record_at is not None:
        span = state.last_record_at - state.first_record_at
        if span > 0:
            received += f" in {span:.1f} s ({state.records / span:,.0f}/s)"
    received += f", rejected {state.rejected}"
    if state.rejected_by_peer:
        received += (
            " ("
            + ", ".join(
                f"{count} from {peer}"
                for peer, count in sorted(
                    state.rejected_by_peer.items(), key=lambda item: -item[1]
                )[:5]
            )
            + ")"
        )
    lines.append(received)
    if state.refused:
        lines.append(f"handshakes refused {state.refused}; last: {state.last_refusal}")
    return "\n".join(lines)


def _missed_text(run: Run) -> str:
    missed, dropped = run.missed, run.client_dropped
    text = "nothing missed" if not missed and not dropped else f"missed {missed}"
    if dropped:
        text += f" (+{dropped} dropped by clients)"
    if run.not_resent:
        text += f"; {run.not_resent} early records were older than the clients' history"
    outages, longest = run.outages
    if outages:
        text += f"; {outages} outage{'s' if outages > 1 else ''} (longest {longest:.1f} s)"
    return text


def format_value(value: float) -> str:
    """A metric value in at most about 9 characters; NaN and ±Inf by name."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    magnitude = abs(value)
    if value == 0:
        return "0"
    if 1e-3 <= magnitude < 1e5:
        decimals = max(0, 3 - math.floor(math.log10(magnitude)))
        return f"{value:.{decimals}f}"
    return f"{value:.3e}"


def format_percent(value: float) -> str:
    """An accuracy: fractions up to 1 as percentages, larger values taken as percent."""
    if not math.isfinite(value):
        return format_value(value)
    return f"{value * 100:.2f}%" if abs(value) <= 1 else f"{value:.2f}%"


def format_duration(seconds: float | None) -> str:
    """``mm:ss`` or ``h:mm:ss``."""
    if seconds is None or not math.isfinite(seconds):
        return "–"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"
