"""Alerts: what a person watching would want to be told about without looking closely.

Derived by :class:`AlertWatch` on each frame from the state: NaN or infinity in any
metric, a loss spike (far above its smoothed value), a worker that stalls or is lost,
records missed on the way, a run whose epoch passes its total epochs. Alerts a training
script raises with ``Monitor.alert()`` arrive as records (``RunState.client_alerts``)
and join the same list. The watch keeps its own trackers; the one thing it writes into
the state is the alerts it found, through ``RunState.note_alerts``. Each alert is raised
once; ``--bell`` rings for each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, NamedTuple

from trainmon.names import LOSS_NAMES
from trainmon.state.run import Run
from trainmon.state.series import Series
from trainmon.state.worker import Worker, worker_label

if TYPE_CHECKING:  # RunState keeps the alerts: it imports this module
    from trainmon.state.runstate import RunState

__all__ = [
    "Alert",
    "AlertWatch",
    "SPIKE_FACTOR",
]

SPIKE_FACTOR: Final = 6.0  # a spike is this many mean deviations above the smoothed value
_SPIKE_WEIGHT: Final = 0.9  # EMA weight of the smoothed value and of its mean deviation
_SPIKE_MIN_POINTS: Final = 20  # values seen before spikes are looked for
# and a spike is at least three times the smoothed value (the jump twice it): a batch
# loss near convergence with small batches often doubles from noise alone
_SPIKE_RELATIVE: Final = 2.0
_CHECK_AT_MOST: Final = 5000  # newest values looked at per series and frame
_TRAINING_LOSSES: Final = frozenset(LOSS_NAMES)  # spikes are looked for in these


class Alert(NamedTuple):
    """One alert: when (monitor time), which run, what kind, and what to say."""

    time: float
    run: str
    kind: str  # nan, spike, stalled, lost, missed, epochs, client
    text: str


@dataclass(slots=True)
class _Spikes:
    """The smoothed value and mean deviation of one series, as far as it was checked."""

    checked: int = 0  # series.count when last checked
    smooth: float = math.nan
    deviation: float = 0.0
    seen: int = 0
    last_spike: int = -1  # the step of the last spike raised

    def warm_up(self, values: list[float]) -> int:
        """The first values only start the smoothed value and its deviation off: take
        those of ``values`` still needed for that; how many."""
        smooth, deviation, seen = self.smooth, self.deviation, self.seen
        weight, rest = _SPIKE_WEIGHT, 1 - _SPIKE_WEIGHT
        warm = min(max(_SPIKE_MIN_POINTS - seen, 0), len(values))
        for value in values[:warm]:
            if seen == 0:
                smooth = value
            else:
                deviation = weight * deviation + rest * abs(value - smooth)
                smooth = weight * smooth + rest * value
            seen += 1
        self.smooth, self.deviation, self.seen = smooth, deviation, seen
        return warm

    def scan(
        self, steps: list[int], values: list[float], start: int, factor: float
    ) -> list[tuple[int, float, float]]:
        """Take ``values`` from ``start`` on (finite, at ``steps``); the spikes among
        them, each once: (step, value, the smoothed value before it)."""
        smooth, weight, rest = self.smooth, _SPIKE_WEIGHT, 1 - _SPIKE_WEIGHT
        out: list[tuple[int, float, float]] = []
        # The hot loop (every loss value, up to hundreds of thousands a second), with as
        # few float operations as it can: the deviation is kept times the factor (the
        # threshold itself), the smoothed value moves by a share of the jump.
        threshold, share = factor * self.deviation, rest * factor
        index = start - 1
        for value in values[start:]:
            index += 1
            jump = value - smooth
            if (
                jump > threshold
                and threshold > 0
                and jump > _SPIKE_RELATIVE * abs(smooth)
                and steps[index] != self.last_spike  # each spike once (seen once)
            ):
                self.last_spike = steps[index]
                out.append((steps[index], value, smooth))
            threshold = weight * threshold + share * abs(jump)
            smooth = weight * smooth + rest * value  # (not smooth + rest*jump: overflows)
        if len(values) > start:
            self.deviation = threshold / factor
        self.seen += len(values) - start
        self.smooth = smooth
        return out


@dataclass(slots=True)
class AlertWatch:
    """Finds new alerts and hands them to the state (:meth:`RunState.note_alerts`), which
    keeps them in ``state.alerts`` (newest last); keeps what it needs to find them again."""

    spike_factor: float = SPIKE_FACTOR
    raised: set[tuple[str, ...]] = field(default_factory=set)
    spikes: dict[tuple[str, str, str], _Spikes] = field(default_factory=dict)
    statuses: dict[tuple[str, str], str] = field(default_factory=dict)
    client_seen: int = 0

    def __post_init__(self) -> None:
        if not self.spike_factor > 0:
            raise ValueError(f"spike_factor must be above 0, not {self.spike_factor!r}")

    def check(self, state: RunState, now: float, stall_after_s: float) -> list[Alert]:
        """The alerts new since the last check, also noted in the state."""
        new: list[Alert] = []
        self._forget_gone_runs(state)
        # alerts from training scripts, taken in by RunState.apply since the last check
        fresh = min(state.client_alerts_total - self.client_seen, len(state.client_alerts))
        self.client_seen = state.client_alerts_total
        if fresh > 0:
            new.extend(state.client_alerts[-fresh:])
        for run in state.runs.values():
            for worker in run.workers.values():
                new.extend(self._worker(run, worker, now, stall_after_s))
            if run.past_total():
                new += self._raise((run.name, "epochs"), _past_total(run, now))
        state.note_alerts(new)
        return new

    def _forget_gone_runs(self, state: RunState) -> None:
        """Let go of what was kept for runs the state no longer holds (bounded memory)."""
        runs = state.runs
        if all(key[0] in runs for key in self.statuses):
            return
        self.raised = {key for key in self.raised if key[0] in runs}
        self.statuses = {key: value for key, value in self.statuses.items() if key[0] in runs}
        self.spikes = {key: value for key, value in self.spikes.items() if key[0] in runs}

    def _raise(self, key: tuple[str, ...], alert: Alert) -> list[Alert]:
        if key in self.raised:
            return []
        self.raised.add(key)
        return [alert]

    def _worker(self, run: Run, worker: Worker, now: float, stall_after_s: float) -> list[Alert]:
        out: list[Alert] = []
        who = worker_label(worker)
        for name, series in worker.series.items():
            if series.nonfinite:
                out += self._raise(
                    (run.name, worker.id, name, "nan"),
                    Alert(now, run.name, "nan", f"NaN/Inf in {name} ({who})"),
                )
            if name.lower() in _TRAINING_LOSSES:
                out += self._spikes(run, worker, name, series, now)
        status = worker.status(now, stall_after_s)
        key = (run.name, worker.id)
        before = self.statuses.get(key, "running")
        self.statuses[key] = status
        if status in ("stalled", "lost") and before != status:
            episode = str(worker.outages) + ":" + str(worker.last_metrics_at)
            what = (
                f"{who} stalled: no metrics for {now - (worker.last_metrics_at or now):.0f} s"
                if status == "stalled"
                else _lost_text(run, worker, now)
            )
            out += self._raise(
                (run.name, worker.id, status, episode), Alert(now, run.name, status, what)
            )
        if worker.missed:
            out += self._raise(
                (run.name, worker.id, "missed"),
                Alert(now, run.name, "missed", f"records missed from {who} ({worker.missed:,})"),
            )
        return out

    def _spikes(
        self, run: Run, worker: Worker, name: str, series: Series, now: float
    ) -> list[Alert]:
        """Look at the values that came since the last check for a jump far above the
        smoothed value (an EMA, with an EMA of the absolute deviation as the scale)."""
        key = (run.name, worker.id, name)
        tracker = self.spikes.get(key)
        if tracker is None:
            tracker = self.spikes[key] = _Spikes()
        new = min(series.count - tracker.checked, _CHECK_AT_MOST, len(series.vals))
        tracker.checked = series.count
        if new <= 0:
            return []
        steps, values = series.steps[-new:], series.vals[-new:]
        if not math.isfinite(sum(values)):  # NaN and infinities are not looked at
            finite = [(s, v) for s, v in zip(steps, values, strict=True) if math.isfinite(v)]
            steps, values = [s for s, _ in finite], [v for _, v in finite]
        warm = tracker.warm_up(values)
        who = worker_label(worker)
        return [
            Alert(
                now,
                run.name,
                "spike",
                f"{name} spike at step {step:,} ({who}): {value:.4g}, smoothed {smooth:.4g}",
            )
            for step, value, smooth in tracker.scan(steps, values, warm, self.spike_factor)
        ]


def _past_total(run: Run, now: float) -> Alert:
    """The run's epoch is past its total ("epoch 3/2"): most often epochs counted from 1."""
    return Alert(
        now,
        run.name,
        "epochs",
        f"epoch {run.epoch_label()} is past the total epochs: epochs count from 0 "
        "(set_epoch(0) starts the first)",
    )


def _lost_text(run: Run, worker: Worker, now: float) -> str:
    """What the alert of a lost worker says: how long silent, or that its records end
    (a recording played to its end); and whether another of the run took over."""
    who = worker_label(worker)
    said = (
        f"{who} lost: its records end without a bye"
        if worker.cut_off
        else f"{who} lost: silent for {now - worker.last_seen:.0f} s"
    )
    return said + (" (restarted since)" if worker.id in run.superseded() else "")
