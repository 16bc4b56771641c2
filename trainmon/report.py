"""The plain-text outputs: a status line for logs and pipes, and the summary printed at
the end of a run."""

from __future__ import annotations

import math

from rich.text import Text

from trainmon.names import ACCURACY_NAMES, LOSS_NAMES, SYSTEM_PREFIX, is_loss
from trainmon.state import Run, RunState, worker_label
from trainmon.view.format import (
    format_duration,
    format_metric,
    format_percent,
    format_rate,
    format_value,
    limits_text,
    missed_text,
    skipped_text,
)
from trainmon.view.options import ViewOptions
from trainmon.view.progress import data_wait_share
from trainmon.view.shown import metric_source, shown_run
from trainmon.view.theme import STATUS_STYLE

__all__ = ["status_line", "summary"]

_SUMMARY_METRICS = 20
_SUMMARY_ALERTS = 5
_SUMMARY_CONFIG_CHARS = 200
_SUMMARY_NAME_CHARS = 64  # of an end-of-run number's name (the final line)
_SUMMARY_FINAL_LINES = 4  # lines the end-of-run numbers take at most
_FINAL_INDENT = len("  final: ")


def status_line(state: RunState, opts: ViewOptions, now: float) -> str:
    """One plain line for logs and pipes, when there is no terminal to draw on."""
    run = shown_run(state, opts)
    if run is None:
        extra = f"; {state.rejected} rejected" if state.rejected else ""
        if state.refused:
            extra += f"; {state.refused} handshakes refused ({state.last_refusal})"
        return _nothing_yet(state, opts, "waiting for records", extra)
    parts = [f"run {run.name}", run.status(now, opts.stall_after_s)]
    parts += _progress_parts(run, opts, now)
    for unit, rate in run.throughput(now, opts.stall_after_s).items():
        parts.append(f"{format_rate(rate)} {unit}/s")
    parts += _value_parts(run)
    share = data_wait_share(run)
    if share is not None:
        parts.append(
            f"input-bound: {math.floor(min(share, 1.0) * 100)}% of step time waiting for data"
        )
    restarted = run.superseded()
    statuses = [
        "restarted" if w.id in restarted else w.status(now, opts.stall_after_s)
        for w in run.workers.values()
    ]
    counts = ", ".join(
        f"{statuses.count(s)} {s}" for s in (*STATUS_STYLE, "restarted") if statuses.count(s)
    )
    parts.append(f"workers {len(statuses)} ({counts})")
    parts.append(f"records {state.records}")
    parts.append(missed_text(run))
    parts.append(f"rejected {state.rejected}")
    if state.link_note:
        parts.append(f"link {state.link_short}: {state.link_note}")
    if state.recording_note:
        parts.append(state.recording_note)
    return "trainmon: " + " · ".join(parts)


def _progress_parts(run: Run, opts: ViewOptions, now: float) -> list[str]:
    """The epoch, the lead's step, and the percent done with the ETA while it runs."""
    parts = []
    lead = run.lead
    epoch = run.epoch_label()
    if epoch is not None:
        parts.append(f"epoch {epoch}")
    if lead is not None and lead.step is not None:
        parts.append(f"step {lead.step}")
    fraction = run.progress()
    if fraction is not None and not run.finished:
        eta = run.eta_s()
        if lead is None or lead.status(now, opts.stall_after_s) != "running":
            eta = None  # a rate from before the lead went quiet would mislead
        ahead = f" ETA {format_duration(eta)}" if eta is not None else ""
        parts.append(f"{math.floor(fraction * 100)}%{ahead}")
    return parts


def _value_parts(run: Run) -> list[str]:
    """The last loss and accuracy, when logged."""
    parts = []
    for label, names in (("loss", LOSS_NAMES), ("acc", ACCURACY_NAMES)):
        name = run.find_metric(names)
        series = run.series(name) if name else None
        if series is not None:
            value = format_percent(series.last) if label == "acc" else format_value(series.last)
            parts.append(f"{label} {value}")
    return parts


def _nothing_yet(state: RunState, opts: ViewOptions, what: str, extra: str) -> str:
    """The plain line of a monitor with no run yet: ``what``, where, ``extra``, and how
    its connections stand."""
    where = "from" if opts.connecting else "on"
    link = f"; {state.link_note}" if state.link_note else ""
    return f"trainmon: {what} {where} {opts.address}{extra}{link}"


def summary(state: RunState, opts: ViewOptions, now: float, width: int = 100) -> str:
    """The final report printed when the monitor exits (lines that may be long, like
    the config, fit ``width``)."""
    if not state.runs:
        extra = ""
        if state.rejected:
            extra += f"; {state.rejected} messages were rejected (last: {state.last_reject})"
        if state.refused:
            extra += f"; {state.refused} handshakes refused (last: {state.last_refusal})"
        return _nothing_yet(state, opts, "no records were received", extra)
    lines = []
    for run in state.runs.values():
        lines += _run_summary(state, run, opts, now, width)
    lines.append(_received(state))
    if state.skipped:
        lines.append(f"records skipped, of kinds this monitor does not know: {skipped_text(state)}")
    if state.refused:
        lines.append(f"handshakes refused {state.refused}; last: {state.last_refusal}")
    return "\n".join(lines)


def _run_summary(state: RunState, run: Run, opts: ViewOptions, now: float, width: int) -> list[str]:
    """A run's lines of the summary: how it ended, its config, its end-of-run numbers,
    metrics, what was missed, workers lost, limits reached and its alerts."""
    fraction = run.progress()
    early = ""
    if run.finished and fraction is not None and fraction < 1.0:
        early = f" (ended early, {math.floor(fraction * 100)}% of the way)"
    lines = [
        f"run {run.name}: {run.status(now, opts.stall_after_s)}{early}, "
        f"{len(run.workers)} worker{'' if len(run.workers) == 1 else 's'}"
    ]
    if run.config:
        lines.append(f"  config: {_config_line(run, max(width - 10, 30))}")
    if run.summary:
        lines += _final_lines(run, max(width, 40))
    names = [name for name in run.metric_names if not name.startswith(SYSTEM_PREFIX)]
    lines += [
        line for name in names[:_SUMMARY_METRICS] if (line := _summary_metric(run, name, width))
    ]
    if len(names) > _SUMMARY_METRICS:
        lines.append(f"  … {len(names) - _SUMMARY_METRICS} more metrics")
    lines.append(f"  {missed_text(run)}")
    lines += _ended_lines(run, opts, now)
    if limits_text(state, run):
        lines.append(f"  limits reached: {limits_text(state, run)}")
    return lines + _alert_lines(state, run)


def _ended_lines(run: Run, opts: ViewOptions, now: float) -> list[str]:
    """The workers lost without a bye, and those restarted (see :meth:`Run.superseded`:
    a process killed and started again under the run's name is not lost)."""
    lines = []
    restarted = run.superseded()
    gone = [
        worker_label(w)
        for w in run.workers.values()
        if w.status(now, opts.stall_after_s) == "lost" and w.id not in restarted
    ]
    if gone:
        lines.append(
            f"  {len(gone)} worker{'s' if len(gone) > 1 else ''} lost without a bye "
            f"({_listed(gone)}): records after their last heartbeat are unknown"
        )
    if restarted:
        shown = [worker_label(w) for w in run.workers.values() if w.id in restarted]
        lines.append(
            f"  {len(shown)} worker{'s' if len(shown) > 1 else ''} restarted "
            f"({_listed(shown)}): ended before another of the run took over"
        )
    return lines


def _listed(labels: list[str]) -> str:
    """The first eight of ``labels``, and … for more."""
    return ", ".join(labels[:8]) + (", …" if len(labels) > 8 else "")


def _alert_lines(state: RunState, run: Run) -> list[str]:
    """How many alerts the run had, and the last few."""
    alerts = [a for a in state.alerts if a.run == run.name]
    if not alerts:
        return []
    lines = [f"  {len(alerts)} alert{'s' if len(alerts) > 1 else ''}:"]
    lines += [f"    {a.text}" for a in alerts[-_SUMMARY_ALERTS:]]
    if len(alerts) > _SUMMARY_ALERTS:
        lines.append(f"    … and {len(alerts) - _SUMMARY_ALERTS} before")
    return lines


def _received(state: RunState) -> str:
    """Records received, how fast, and rejected (by the peers that sent most)."""
    received = f"records received {state.records}"
    if state.first_record_at is not None and state.last_record_at is not None:
        span = state.last_record_at - state.first_record_at
        if span > 0:
            received += f" in {span:.{1 if span >= 10 else 2}f} s ({state.records / span:,.0f}/s)"
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
    return received


def _summary_metric(run: Run, name: str, width: int) -> str:
    """``  name: last value (best ...) (worker)``: the value as the stats panel shows it,
    the best of a loss, the worker when not the lead; a long name cut to fit ``width``."""
    source = metric_source(run, name)
    if source is None:
        return ""
    series, worker = source
    rest = f": last {format_metric(name, series.last)}"
    if is_loss(name) and series.best_step is not None:
        rest += f" (best {format_value(series.best)} at step {series.best_step})"
    if worker is not run.lead:
        rest += f" ({worker_label(worker)})"
    shown = Text(name)
    shown.truncate(max(width - 2 - len(rest), 16), overflow="ellipsis")
    return f"  {shown.plain}{rest}"


def _config_line(run: Run, width: int) -> str:
    """``key=value, ...`` in ``width`` characters: the items that fit, in order (one too
    long is left for the shorter ones after it), and how many are not shown."""
    parts: list[str] = []
    room = width - len(", … 9,999 more")
    for key, value in run.config.items():
        part = f"{key}={value}"
        if len(part) > _SUMMARY_CONFIG_CHARS:
            part = part[: _SUMMARY_CONFIG_CHARS - 1] + "…"
        if len(part) <= room:
            parts.append(part)
            room -= len(part) + 2
    more = len(run.config) - len(parts) + run.config_more
    return ", ".join(parts) + (f", … {more:,} more" if more else "")


def _final_lines(run: Run, width: int) -> list[str]:
    """The run's end-of-run numbers (``Monitor.set_summary``) in the order sent,
    ``final: train_runtime 12.3 s · total_flos 1.234e+12 · ...``: one line where they fit
    ``width``, else continued on lines below (at most _SUMMARY_FINAL_LINES, then how many
    more there are). A name cut to 64 characters; times in seconds."""
    parts = []
    for name, value in run.summary.items():
        unit = " s" if name.endswith(("_runtime", "_time")) else ""
        parts.append(f"{name[:_SUMMARY_NAME_CHARS]} {format_value(value)}{unit}")
    rows: list[list[str]] = [[]]
    used = _FINAL_INDENT
    for shown, part in enumerate(parts):
        if rows[-1] and used + 3 + len(part) > width:
            if len(rows) == _SUMMARY_FINAL_LINES:
                rows[-1].append(f"… {len(parts) - shown} more")
                break
            rows.append([])
            used = _FINAL_INDENT
        used += len(part) + (3 if rows[-1] else 0)
        rows[-1].append(part)
    lines = [" " * _FINAL_INDENT + " · ".join(row) for row in rows]
    return ["  final: " + lines[0][_FINAL_INDENT:], *lines[1:]]
