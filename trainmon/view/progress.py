"""The progress panel: the epoch, a bar, and the figures beside it (percent, ETA, rates,
step) that fit."""

from __future__ import annotations

import math

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from trainmon.names import DATA_WAIT_NAME, INPUT_BOUND_SHARE
from trainmon.state import Run
from trainmon.view.format import format_duration, format_rate

__all__ = ["data_wait_share", "epoch_bar"]

_MIN_BAR = 10  # columns the progress bar keeps before figures beside it give way


def _ended(run: Run, fraction: float | None) -> str:
    """How a finished run ended: done, or ended short of its total (stopped early)."""
    if not run.finished:
        return ""
    return "done" if fraction is None or fraction >= 1.0 else "ended early"


def epoch_bar(run: Run, now: float | None = None, stall_after_s: float = 60.0) -> Panel:
    """Epoch gauge with percent, ETA and steps per second (not while the lead is idle).

    With only the total epochs, progress comes from the steps per epoch seen (see
    ``Run.progress``): in the first epoch there is no bar, only the epoch and the step,
    rather than a 0% that is not true."""
    label = f"Epoch {run.epoch_label() or '–'}"
    fraction = run.progress()
    bar, percent = _bar(run, fraction)
    parts: list[tuple[str | Text, int]] = [  # (text, rank): the lowest ranks are left
        (percent, 9),  # out first when space is short
        (_input_bound(run), 5),
        *_figures(run, fraction, now, stall_after_s),
        (_step_text(run, fraction), 8),
    ]
    grid = _ProgressLine(Text(label, style="tm.heading"), bar, [p for p in parts if p[0]])
    return Panel(grid, title="Progress", title_align="left", height=3)


def _bar(run: Run, fraction: float | None) -> tuple[RenderableType, str]:
    """The bar and its percent; without a fraction, words for why there is none."""
    if fraction is None:
        return Text(_no_progress(run), style="tm.dim"), ""
    bar = ProgressBar(
        total=1.0,
        completed=fraction,
        style="tm.barback",
        complete_style="tm.bar",
        finished_style="tm.bar",
    )
    return bar, f"{math.floor(fraction * 100):3d}%"  # 100% only when done


def _no_progress(run: Run) -> str:
    """Why there is no progress to show."""
    if run.past_total():
        return "past the total epochs: do its epochs count from 1?"
    if run.epochs_total and not run.total_steps:
        lead = run.lead
        known = lead is not None and lead.epoch is not None
        return "progress known once an epoch ends" if known else "no epoch logged yet"
    return "progress unknown: pass total_epochs or total_steps"


def data_wait_share(run: Run) -> float | None:
    """The lead's last share of step time spent waiting for data (Monitor.track()), when
    it says the run is input-bound; else None."""
    lead = run.lead
    share = lead.per_step((DATA_WAIT_NAME,)) if lead is not None else None
    return share if share is not None and share >= INPUT_BOUND_SHARE else None


def _input_bound(run: Run) -> Text:
    """The figure that says the run is input-bound (62% of step time waiting for data)."""
    share = data_wait_share(run)
    if share is None:
        return Text("")
    return Text(f"input-bound {math.floor(min(share, 1.0) * 100)}%", style="tm.warn")


def _figures(
    run: Run, fraction: float | None, now: float | None, stall_after_s: float
) -> list[tuple[str, int]]:
    """The ETA (or how the run ended), steps per second and the other rates, ranked."""
    lead = run.lead
    eta = run.eta_s()
    rate = lead.steps_per_s if lead is not None else None
    if lead is not None and now is not None and lead.status(now, stall_after_s) != "running":
        eta = rate = None  # a rate from before a worker went quiet would mislead
    going = rate is not None and not run.finished
    rates = run.throughput(now, stall_after_s) if now is not None and going else {}
    return [
        (f"ETA {format_duration(eta)}" if eta is not None else _ended(run, fraction), 4),
        (f"{rate:,.1f} steps/s" if going else "", 3),
        *(
            (f"{format_rate(value)} {unit}/s", 2 if unit == "samples" else 1)
            for unit, value in rates.items()
            if unit != "steps"
        ),
    ]


def _step_text(run: Run, fraction: float | None) -> str:
    """The lead's step, out of the total steps when known."""
    lead = run.lead
    step = "" if lead is None or lead.step is None else f"step {lead.step:,}"
    if run.total_steps and step:
        # Done: the run's steps, not its last step number ("step 599/600" when counted
        # from 0 reads as one short).
        done = run.finished and fraction == 1.0
        step = f"{run.total_steps:,} steps" if done else f"{step}/{run.total_steps:,}"
    return step


class _ProgressLine:
    """The epoch label, the bar, and as many of the figures beside it as leave the bar
    room (at 80 columns samples/s and tokens/s give way before the step count)."""

    def __init__(
        self, label: Text, bar: RenderableType, parts: list[tuple[str | Text, int]]
    ) -> None:
        self.label, self.bar = label, bar
        self.parts = [(Text(text) if isinstance(text, str) else text, rank) for text, rank in parts]

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        parts = list(self.parts)
        room = options.max_width - self.label.cell_len - 4 - _MIN_BAR  # (the gaps)
        while parts and sum(text.cell_len + 2 for text, _ in parts) - 2 > room:
            parts.remove(min(parts, key=lambda part: part[1]))
        grid = Table.grid(padding=(0, 1), expand=True)
        grid.add_column(no_wrap=True)
        grid.add_column(ratio=1)
        grid.add_column(no_wrap=True, justify="right")
        grid.add_row(self.label, self.bar, Text("  ").join(text for text, _ in parts))
        yield grid
