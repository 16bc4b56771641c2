"""How queued calls become a worker's numbered records: values checked (the common case
at a glance), steps counted and epochs kept, the latest loss and accuracy noted, and
what cannot be used warned about once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trainmon_client.calls import ALERT, TICK
from trainmon_client.logs import Warnings
from trainmon_client.protocol import (
    MAX_ALERT_TEXT,
    MAX_ALERT_TITLE,
    MAX_METRICS,
    MAX_NAME_CHARS,
    MAX_STEP,
    Record,
    valid_name,
)
from trainmon_client.values import NotANumber, count_value, metric_value

__all__ = ["Records", "Row"]

# A record on its way out: (seq, time, step, epoch, metric values).
Row = tuple[int, float, int | None, int | float | None, dict[str, Any]]


class Records:
    """One worker's records as they are made: the next sequence number, the step and
    epoch so far, and how many records the user logged."""

    def __init__(self, run: str, worker: str, latest: dict[str, float], warnings: Warnings) -> None:
        self.run = run
        self.worker = worker
        self.latest = latest  # the last of each, as the I/O thread took them
        self.warnings = warnings
        self.seq = 0
        self.step = -1
        self.epoch: int | float | None = None
        self.logged = 0
        # Once a loop is tracked (Monitor.track), its iterations are the steps: a call
        # without step= lands on the latest one instead of counting on by itself.
        self.tracked = False

    def record(self, kind: str, t: float, **fields: Any) -> Record:
        """A record of this worker with the next sequence number."""
        record = Record(kind, self.run, self.worker, self.seq, t, **fields)
        self.seq += 1
        return record

    def last(self, kind: str, t: float, **fields: Any) -> Record:
        """A record that carries the last sequence number used and takes none (a
        heartbeat: it reveals records lost at the tail)."""
        return Record(kind, self.run, self.worker, self.seq - 1, t, **fields)

    def take(
        self, t: float, step: Any, epoch: Any, metrics: Any, named: dict[str, Any]
    ) -> Row | list[Row] | Record | None:
        """The record(s) of one queued call (an alert, or metric values); None for a
        call that says nothing (no values, no epoch)."""
        if metrics is ALERT:
            self.logged += 1
            title = str(named["title"])[:MAX_ALERT_TITLE] or "alert"
            text = str(named["text"])[:MAX_ALERT_TEXT]
            return self.record("alert", t, info={"title": title, "text": text})
        if metrics is TICK:  # (step: the tracked steps it stands for)
            self.step += step
            self.tracked = True
            return None
        if metrics is None and _plain_floats(named):
            values: dict[str, Any] = named  # the common case, checked at a glance
        else:
            values = self._numbers(metrics, named)
        step = self._count(step, epoch, named)
        if step is None and values and not self.tracked:
            self.step += 1
        if not values and epoch is None:
            return None
        self.logged += 1
        latest = self.latest
        if "loss" in values:
            latest["loss"] = values["loss"]
        if "accuracy" in values:
            latest["accuracy"] = values["accuracy"]
        step_now = self.step if self.step >= 0 else None
        if len(values) > MAX_METRICS:
            return self._split(t, step_now, values)
        seq = self.seq
        self.seq = seq + 1
        return (seq, t, step_now, self.epoch, values)

    def _count(self, step: Any, epoch: Any, named: dict[str, Any]) -> Any:
        """Take the call's epoch and step where they can be used (warned once where not);
        the step, None where it is left to count on by itself."""
        if epoch is not None:
            number = epoch if type(epoch) is int else count_value(epoch, fractional=True)
            if number is None or not 0 <= number <= MAX_STEP:
                self._warn_count("epoch", epoch, named, "the epoch stays as it was")
            else:
                self.epoch = number
        if step is not None:
            number = step if type(step) is int else count_value(step, fractional=False)
            if number is not None and 0 <= number <= MAX_STEP:
                self.step = int(number)
            else:
                self._warn_count("step", step, named, "the record has the automatic step")
                step = None
        return step

    def _split(self, t: float, step: int | None, values: dict[str, Any]) -> list[Row]:
        """A call with more metrics than a record holds: several records of the same
        step and time, MAX_METRICS metrics each (nothing dropped)."""
        items = list(values.items())
        rows: list[Row] = []
        for start in range(0, len(items), MAX_METRICS):
            rows.append((self.seq, t, step, self.epoch, dict(items[start : start + MAX_METRICS])))
            self.seq += 1
        self.logged += len(rows) - 1  # (the call was counted as one record)
        return rows

    def _numbers(self, metrics: Any, named: dict[str, Any]) -> dict[str, float | int]:
        warn = self.warnings.once
        if metrics is not None:
            if isinstance(metrics, Mapping):
                named = {**metrics, **named}
            else:
                warn("<positional>", "log() takes a mapping of metric values")
        out: dict[str, float | int] = {}
        for name, value in named.items():
            number = metric_value(value)
            if isinstance(number, NotANumber):
                warn(
                    f"{name!r}:{number.kind}"[:200],
                    f"metric {str(name)[:60]!r}: {number.kind} {number.text} is not a number",
                )
                continue
            if not valid_name(name):
                warn(
                    repr(name)[:200],
                    f"metric name {repr(name)[:60]}: names are strings of 1-128 characters "
                    "without control characters",
                )
                continue
            out[name] = number
        return out

    def _warn_count(self, what: str, value: Any, named: dict[str, Any], instead: str) -> None:
        """A step or epoch that cannot be used: once per argument and type, naming the
        call's metrics and the value."""
        kind = value.kind if isinstance(value, NotANumber) else type(value).__name__
        try:
            shown = repr(value)[:60]
        except Exception:
            shown = f"<{kind}>"
        names = ", ".join(str(name)[:40] for name in list(named)[:5])
        call = f"log({names})" if names else "set_epoch() (or a log() of no metrics)"
        self.warnings.once(
            f"<{what}>:{kind}",
            f"{what}={shown} ({kind}) in {call} is not a whole number from 0 to "
            f"2**53{' (or a fraction)' if what == 'epoch' else ''}: {instead} "
            f"(said once per type of {what})",
            dropped=False,
        )


def _plain_floats(named: dict[str, Any]) -> bool:
    """Whether every value is a float under a short name: nothing to convert or check."""
    if len(named) > MAX_METRICS:
        return False
    for name, value in named.items():
        if (  # valid_name(), inlined: this runs for every name of every record
            type(value) is not float
            or type(name) is not str
            or not 0 < len(name) <= MAX_NAME_CHARS
            or not (name.isprintable() or valid_name(name))
        ):
            return False
    return True
