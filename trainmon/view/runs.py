"""The runs panel (key R): every run with its status and main metric, then the shown
run's config."""

from __future__ import annotations

from rich.console import Console, ConsoleOptions, RenderResult
from rich.panel import Panel
from rich.text import Text

from trainmon.state import Run, RunState, worker_label
from trainmon.view.compare import past_state
from trainmon.view.format import format_metric
from trainmon.view.options import ViewOptions
from trainmon.view.shown import main_metric
from trainmon.view.table import grid_lines
from trainmon.view.theme import STATUS_STYLE

__all__ = ["runs_panel"]


def runs_panel(state: RunState, shown: Run, opts: ViewOptions, now: float) -> Panel:
    """Every run: status, workers, step and main metric; r switches, o overlays."""
    columns = (
        ("", "left"),
        ("run", "left"),
        ("status", "left"),
        ("workers", "right"),
        ("step", "right"),
        ("main metric", "right"),
    )
    rows: list[tuple[str | Text, ...]] = []
    past = past_state(state)  # runs from disk drawn under the live ones (watch --compare)
    listed = sorted(state.runs.values(), key=lambda r: r.created)
    listed += sorted(past.runs.values(), key=lambda r: r.created) if past is not None else []
    for run in listed:
        status = run.status(now, opts.stall_after_s)
        name = main_metric(run, opts)
        series = run.series(name) if name else None
        lead = run.lead
        drawn = run.name == opts.overlay or run.name in opts.compared
        marker = "▶" if run is shown else ("◆" if drawn else "")
        rows.append(
            (
                marker,
                run.name,
                Text(status, style=STATUS_STYLE[status]),
                str(len(run.workers)),
                "–" if lead is None or lead.step is None else f"{lead.step:,}",
                (
                    f"{name} {format_metric(name, series.last)}"
                    if series is not None and name
                    else "–"
                ),
            )
        )
    sender, config = shown.config_from, shown.config
    heading = Text("", no_wrap=True, overflow="ellipsis")
    if sender is not None:
        heading.append(f"config of {shown.name} (from {worker_label(sender)})", style="tm.heading")
    return Panel(
        _RunsAndConfig(columns, rows, heading, config, shown.config_more),
        title=f"Runs ({len(listed)}) · ▶ shown · ◆ overlaid · r next · o overlay · R closes",
        title_align="left",
    )


class _RunsAndConfig:
    """The runs, then the shown run's config as ``key  value`` lines; when the height is
    short the runs keep what they need and the config is cut with a count."""

    def __init__(
        self,
        columns: tuple[tuple[str, str], ...],
        rows: list[tuple[str | Text, ...]],
        heading: Text,
        config: dict[str, str],
        more: int,
    ) -> None:
        self.columns, self.rows = columns, rows
        self.heading, self.config, self.more = heading, config, more

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        runs = grid_lines(self.columns, self.rows, width)
        items = list(self.config.items())
        room = options.height or len(runs) + 2 + len(items)
        if not items:
            yield from runs[:room]
            return
        runs = runs[: max(room - 3, 1)]  # leave the config a heading and a line
        yield from runs
        room -= len(runs) + 2
        if room < 1:
            return
        yield Text("")
        heading = self.heading.copy()
        heading.truncate(width, overflow="ellipsis")
        yield heading
        if len(items) > room or (self.more and len(items) == room):
            items = items[: room - 1]  # and a line that says how many more
        key_width = min(max(len(key) for key, _ in items), max(24, width // 3)) if items else 0
        for key, value in items:
            if len(key) > key_width:
                key = key[: key_width - 1] + "…"
            line = Text(f" {key:<{key_width}}  ", style="tm.dim", no_wrap=True)
            line.append(value)
            line.truncate(width, overflow="ellipsis")
            yield line
        hidden = len(self.config) - len(items) + self.more
        if hidden:
            yield Text(f" … {hidden:,} more", style="tm.dim")
