"""The header line (run, status, elapsed time, workers) and the alert line under it."""

from __future__ import annotations

from rich.text import Text

from trainmon.state import Alert, Run, RunState
from trainmon.view.format import format_duration
from trainmon.view.options import ViewOptions
from trainmon.view.theme import STATUS_STYLE

__all__ = ["alert_line", "header"]


def alert_line(alerts: list[Alert], now: float, ago: bool = True) -> Text:
    """The newest alert, how long ago (unless not ``ago``: runs that ended, whose
    alerts were all raised as they were read), and how many there are."""
    latest = alerts[-1]
    text = Text()
    text.append(f" ⚠ {len(alerts)} alert{'s' if len(alerts) != 1 else ''} ", style="tm.alert")
    text.append(f" {latest.text}", style="tm.bad")
    if ago:
        text.append(f"  ({format_duration(max(now - latest.time, 0.0))} ago)", style="tm.dim")
    if len(alerts) > 1:
        text.append(f"  · before: {alerts[-2].text}", style="tm.dim")
    text.truncate(1000, overflow="ellipsis")
    return text


def header(state: RunState, run: Run | None, opts: ViewOptions, now: float) -> Text:
    """Title, run, status, elapsed time and the number of workers, on one line."""
    text = Text()
    text.append(" trainmon ", style="tm.title")
    if run is None:
        text.append("  waiting for records", style="tm.dim")
        return text
    status = run.status(now, opts.stall_after_s)
    text.append(f"  run {run.name}", style="tm.heading")
    text.append("  ● ", style=STATUS_STYLE[status])
    text.append(status, style=STATUS_STYLE[status])
    if run.started is not None:
        end = now
        if run.finished or opts.ended:
            end = max((w.last_seen for w in run.workers.values()), default=now)
        text.append(f"  elapsed {format_duration(max(end - _local_start(run, now), 0.0))}")
    count = len(run.workers)
    text.append(f"  {count} worker{'s' if count != 1 else ''}")
    world = max((w.world or 0 for w in run.workers.values()), default=0)
    ranks = {w.rank for w in run.workers.values() if w.rank is not None}
    if len(ranks) < world:  # ranks the launcher started that never spoke
        text.append(f" (ranks seen {len(ranks)} of {world})", style="tm.warn")
    others = len(state.runs) - 1
    if others > 0:  # kept on this one (see RunState.current): say the others are there
        text.append(f"  +{others} other run{'s' if others > 1 else ''} (r)", style="tm.dim")
    if opts.paused:
        text.append("  PAUSED", style="tm.paused")
    return text


def _local_start(run: Run, now: float) -> float:
    """When the run started, on the monitor's clock."""
    first_seen = min(w.first_seen for w in run.workers.values())
    return first_seen if run.started is None else min(run.started, first_seen, now)
