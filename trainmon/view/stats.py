"""The stats panel: current and best values, held-out metrics, rates, what was received
and lost, then every other metric."""

from __future__ import annotations

import functools

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.panel import Panel
from rich.text import Text

from trainmon.names import (
    GRAD_NAMES,
    HELD_OUT_NAMES,
    LOSS_NAMES,
    LR_NAMES,
    SYSTEM_PREFIX,
    TRAIN_ACCURACY_NAMES,
)
from trainmon.state import Run, RunState, worker_label
from trainmon.view.compare import difference_text, overlaid
from trainmon.view.format import (
    format_metric,
    format_rate,
    format_value,
    limits_text,
    skipped_text,
)
from trainmon.view.options import ViewOptions
from trainmon.view.shown import main_metric, metric_source

__all__ = ["stats_panel"]


def stats_panel(
    state: RunState, run: Run, opts: ViewOptions | None = None, now: float | None = None
) -> Panel:
    """Current loss, accuracy, grad norm, best loss, held-out metrics, learning rate,
    throughput, what was received, then every other metric of any worker."""
    grid = _Pairs()
    shown = _known_metrics(grid, run)
    if opts is not None:
        _differences(grid, state, run, opts)
    if opts is not None and now is not None:
        _rates(grid, run, opts, now)
    _run_counts(grid, run)
    _state_counts(grid, state, run)
    for name in run.metric_names:
        if name not in shown and not name.startswith(SYSTEM_PREFIX):  # (the workers')
            grid.add_metric(name, _metric_text(run, name))
    return Panel(grid, title="Stats", title_align="left")


def _known_metrics(grid: _Pairs, run: Run) -> set[str | None]:
    """Rows for the loss, accuracy, grad norm, best loss, held-out metrics and learning
    rate; returns the names shown."""
    loss_name = run.find_metric(LOSS_NAMES)
    acc_name = run.find_metric(TRAIN_ACCURACY_NAMES)
    grad_name = run.find_metric(GRAD_NAMES)
    grid.add_metric("loss", _metric_text(run, loss_name) if loss_name else "–")
    for label, name in (("accuracy", acc_name), ("grad norm", grad_name)):
        if name is not None:  # a row only for what is logged: room for what is
            grid.add_metric(label, _metric_text(run, name))
    source = metric_source(run, loss_name) if loss_name else None
    if source is not None and source[0].best_step is not None:
        loss = source[0]
        grid.add_metric("best loss", f"{format_value(loss.best)} @ {loss.best_step:,}")
    else:
        grid.add_metric("best loss", "–")
    known = _metrics_among(run, HELD_OUT_NAMES) + _metrics_among(run, LR_NAMES)
    for name in known:
        grid.add_metric(name, _metric_text(run, name))
    return {loss_name, acc_name, grad_name, *known}


_MAX_DIFFERENCES = 4  # rows of differences at most: the other rows keep their room


def _differences(grid: _Pairs, state: RunState, run: Run, opts: ViewOptions) -> None:
    """A row per run overlaid: the shown run's main metric minus the overlaid run's, at
    the latest step both have."""
    name = main_metric(run, opts)
    if name is None:
        return
    for other in overlaid(state, run, opts)[:_MAX_DIFFERENCES]:
        grid.add_metric(f"vs {other.name}", difference_text(run, other, name, state), cut=True)


def _rates(grid: _Pairs, run: Run, opts: ViewOptions, now: float) -> None:
    """Rows for samples and tokens per second, and the straggler if there is one."""
    rates = run.throughput(now, opts.stall_after_s)
    for unit in ("samples", "tokens"):
        if unit in rates:
            grid.add_row(f"{unit}/s", format_rate(rates[unit]))
    straggler = run.straggler(now, opts.stall_after_s)
    if straggler is not None:
        grid.add_row(
            "straggler",
            Text(f"{worker_label(straggler)} at step {straggler.step:,}", style="tm.straggler"),
        )


def _run_counts(grid: _Pairs, run: Run) -> None:
    """Rows for the run's records, and what of them was missed, dropped or lost."""
    grid.add_row("records", f"{run.records:,}")
    missed, dropped = run.missed, run.client_dropped
    grid.add_row("missed", Text(f"{missed:,}", style="tm.warn" if missed else ""))
    if dropped:
        grid.add_row("dropped", Text(f"{dropped:,} by the client", style="tm.warn"))
    if run.client_unrecorded:
        grid.add_row(
            "unrecorded",
            Text(f"{run.client_unrecorded:,} not in record_to", style="tm.warn"),
        )
    if run.not_resent:
        grid.add_row("before", Text(f"{run.not_resent:,} older than history", style="tm.dim"))
    outages, longest = run.outages
    if outages:
        grid.add_row("outages", Text(f"{outages:,} (longest {longest:.1f} s)", style="tm.stalled"))


def _state_counts(grid: _Pairs, state: RunState, run: Run) -> None:
    """Rows for limits reached, messages rejected, skipped and refused, the link and the
    recording."""
    if limits_text(state, run):
        grid.add_row("limits", Text("reached: see the summary", style="tm.warn"))
    grid.add_row("rejected", _rejected_text(state))
    if state.skipped:
        grid.add_row("skipped", Text(skipped_text(state), style="tm.warn"))
    if state.refused:
        grid.add_row("refused", Text(f"{state.refused:,} handshakes", style="tm.bad"))
    if state.link_short:
        grid.add_row("link", Text(state.link_short, style="tm.bad"))
    if state.recording_note:
        grid.add_row("recording", Text(state.recording_note, style="tm.bad"))


def _metric_text(run: Run, name: str) -> str | Text:
    """A metric's last value as the stats show it, with the worker it comes from when
    that is not the lead."""
    source = metric_source(run, name)
    if source is None:
        return "–"
    series, worker = source
    if worker is run.lead:
        return format_metric(name, series.last)
    text = Text(format_metric(name, series.last))
    text.append(f" {worker_label(worker)}", style="tm.dim")
    return text


def _width(value: str | Text) -> int:
    """Terminal cells ``value`` takes."""
    return value.cell_len if isinstance(value, Text) else cell_len(value)


def _metrics_among(run: Run, names: tuple[str, ...]) -> list[str]:
    """The run's metrics that are among ``names``, in the order of ``names``."""
    order = _order(names)
    found = [name for name in run.metric_names if name.lower() in order]
    return sorted(found, key=lambda name: order[name.lower()])


@functools.cache
def _order(names: tuple[str, ...]) -> dict[str, int]:
    return {name: index for index, name in enumerate(names)}


_MIN_LABEL = 10  # the stats' labels are at least this wide, so short ones line up as ever


class _Pairs:
    """Label and value lines: as many as fit, then how many more there are.

    Labels are as wide as the longest (in terminal cells, so wide characters and emoji
    keep the values aligned), and cut with an ellipsis only where the panel leaves no
    more room beside the widest metric value. A difference's label (``vs`` and a run's
    name, which the chart's legend gives whole) is cut to the others' width instead of
    widening them: a kept run's long name leaves the values where they were.
    """

    def __init__(self) -> None:
        # label, value, value kept whole, label cut to the others' width
        self.rows: list[tuple[str, str | Text, bool, bool]] = []

    def add_row(self, label: str, value: str | Text) -> None:
        self.rows.append((label, value, False, False))

    def add_metric(self, label: str, value: str | Text, *, cut: bool = False) -> None:
        """A row whose value is kept whole: labels give way first; with ``cut``, its
        label never widens the others'."""
        self.rows.append((label, value, True, cut))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        rows = self.rows
        room = options.height or len(rows)
        if len(rows) > room:
            rows = rows[: max(room - 1, 0)]
        width = options.max_width
        longest = max((cell_len(label) for label, _, _, cut in rows if not cut), default=0)
        kept = max((_width(value) for _, value, keep, _ in rows if keep), default=0)
        label_width = max(_MIN_LABEL, min(longest, width - 1 - kept))
        for label, value, _, _ in rows:
            cells = cell_len(label)
            if cells <= label_width:  # (most labels: no truncation to work out)
                line = Text(label + " " * (label_width - cells + 1), "tm.heading", no_wrap=True)
            else:
                line = Text(label, style="tm.heading", no_wrap=True)
                line.truncate(label_width, overflow="ellipsis", pad=True)
                line.append(" ")
            line.append_text(value if isinstance(value, Text) else Text(value))
            line.truncate(width, overflow="ellipsis")
            yield line
        if len(rows) < len(self.rows):
            yield Text(f"… {len(self.rows) - len(rows)} more", style="tm.dim")


def _rejected_text(state: RunState) -> Text:
    """The reject count, with the peer that sent most of them."""
    if not state.rejected:
        return Text("0")
    text = Text(f"{state.rejected:,}", style="tm.bad")
    if state.rejected_by_peer:
        peer, count = max(state.rejected_by_peer.items(), key=lambda item: item[1])
        text.append(f" ({count:,} from {peer})", style="tm.bad")
    return text
