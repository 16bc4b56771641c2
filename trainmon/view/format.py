"""Values, rates, durations and the state's counts as short words, for the panels and
the plain report alike."""

from __future__ import annotations

import math

from trainmon.names import DATA_WAIT_NAME, is_accuracy
from trainmon.state import Run, RunState

__all__ = [
    "format_difference",
    "format_duration",
    "format_metric",
    "format_percent",
    "format_rate",
    "format_value",
    "limits_text",
    "missed_text",
    "skipped_text",
]


def format_rate(value: float) -> str:
    """A rate in few characters: 950, 12.3k, 4.5M."""
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.1f}{suffix}"
    return f"{value:,.1f}" if abs(value) < 100 else f"{value:,.0f}"


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
        if float(value).is_integer():  # a count or a size: no decimals (an int may come)
            return str(int(value))
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


def format_metric(name: str, value: float) -> str:
    """A metric's value as the stats, the charts and the summary show it: an accuracy
    of any phase (``val_acc``, ``eval_accuracy``) and the share of step time waiting for
    data (``loop/data_wait``) in percent, anything else as a number."""
    percent = is_accuracy(name) or name == DATA_WAIT_NAME
    return format_percent(value) if percent else format_value(value)


def format_difference(name: str, value: float, other: float) -> str:
    """``value`` minus ``other`` of metric ``name``, signed, as :func:`format_metric`
    shows the metric: a percentage's in percentage points (``+4.69 pp``; fractions up
    to 1 taken as percentages, as :func:`format_percent` does), anything else as a
    number (``-0.0420``)."""
    difference = value - other
    sign = "+" if difference > 0 else ""
    if not (is_accuracy(name) or name == DATA_WAIT_NAME) or not math.isfinite(difference):
        return f"{sign}{format_value(difference)}"
    scale = 100 if abs(value) <= 1 and abs(other) <= 1 else 1
    return f"{sign}{difference * scale:.2f} pp"


def skipped_text(state: RunState) -> str:
    """Records of kinds this monitor does not know, by kind: '3 of kind "x" (newer client)'."""
    kinds = sorted(state.skipped.items(), key=lambda item: -item[1])
    return ", ".join(f"{count:,} {kind!r}" for kind, count in kinds) + " (newer client?)"


def limits_text(state: RunState, run: Run) -> str:
    """What was left untracked because a limit was reached, or ''."""
    parts = []
    if state.untracked_runs:
        parts.append(
            f"{state.untracked_runs:,} records of runs past the limit of {state.limits.runs}"
        )
    limits = state.limits
    if run.untracked_workers:
        parts.append(
            f"{run.untracked_workers:,} records of workers past the limit of {limits.workers} "
            f"per run or {limits.all_workers:,} in all"
        )
    untracked_metrics = sum(w.untracked_metrics for w in run.workers.values())
    if untracked_metrics:
        parts.append(
            f"{untracked_metrics:,} values of metrics past the limit of {limits.metrics} "
            f"per worker or {limits.series:,} series in all"
        )
    return "; ".join(parts)


def missed_text(run: Run) -> str:
    missed, dropped = run.missed, run.client_dropped
    text = "nothing missed" if not missed and not dropped else f"missed {missed}"
    if dropped:
        text += f" (+{dropped} dropped by clients)"
    if run.client_unrecorded:
        text += f"; {run.client_unrecorded} not recorded by clients (record_to)"
    if run.not_resent:
        text += f"; {run.not_resent} early records were older than the clients' history"
    outages, longest = run.outages
    if outages:
        text += f"; {outages} outage{'s' if outages > 1 else ''} (longest {longest:.1f} s)"
    return text
