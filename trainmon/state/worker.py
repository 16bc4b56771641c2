"""One publishing process as far as its records tell: sequence numbers, steps, epochs, rates."""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Final

from trainmon.names import SAMPLE_NAMES, TOKEN_NAMES
from trainmon.state.limits import LOST_AFTER_S, RATE_WINDOW_S, WARMUP_RECORDS
from trainmon.state.series import Series

__all__ = ["Worker", "worker_label"]

_MAX_GAPS: Final = 64
# One (time, step) point is kept per quarter second of the worker's clock (the last
# record in it), so 64 points hold more than the window however fast records come.
# A power of two: a quarter second's bounds, ``t // _RATE_SLOT_S * _RATE_SLOT_S`` and
# that plus ``_RATE_SLOT_S``, are exact, so "within them" is "the same quarter second".
_RATE_SLOT_S: Final = 0.25
_RATE_POINTS: Final = 64
_EPOCH_STARTS: Final = 16


def worker_label(worker: Worker) -> str:
    """How the dashboard names a worker in one word: its rank, else its id."""
    return f"rank {worker.rank}" if worker.rank is not None else worker.id


@dataclass(slots=True)
class Worker:
    """One publishing process, as far as its records tell."""

    id: str
    first_seen: float
    last_seen: float
    host: str | None = None
    pid: int | None = None
    rank: int | None = None
    world: int | None = None
    total_epochs: int | None = None
    total_epochs_f: float | None = None  # where the total is not whole (hello epochs_f)
    total_steps: int | None = None
    parent: str | None = None  # the worker this process was forked from (a pool child)
    parent_ended: bool = False  # and that worker has said bye
    step: int | None = None
    step_gap: int = 1  # steps between the last two steps logged
    epoch: int | float | None = None
    fractional: bool = False  # a fractional epoch came: epochs are "done so far"
    last_metrics_at: float | None = None
    records: int = 0
    seen_max: int = -1
    gaps: list[list[int]] = field(default_factory=list)
    missed: int = 0
    duplicates: int = 0
    client_dropped: int = 0
    client_unrecorded: int = 0  # records its recording (record_to) did not keep
    not_resent: int = 0  # early records older than the client's history, never sent to us
    outages: int = 0  # times nothing came for LOST_AFTER_S and then the worker came back
    hello_time: float | None = None  # when the process started, by its own clock
    longest_outage_s: float = 0.0
    finished: bool = False
    cut_off: bool = False  # its records ended without a bye (a recording's end): lost
    series: dict[str, Series] = field(default_factory=dict)
    untracked_metrics: int = 0
    # (time, step) after the warm-up, the last record in each quarter second (see
    # RATE_WINDOW_S), and the quarter second of the newest (from, until)
    rate_points: deque[tuple[float, int]] = field(
        default_factory=lambda: deque(maxlen=_RATE_POINTS)
    )
    rate_from: float = math.inf
    rate_until: float = -math.inf
    forward_records: int = 0  # metrics records that moved the step on (rate after warm-up)
    # (epoch, the step it started at or None if not known, time), see note_epoch
    epoch_starts: deque[tuple[int | float, int | None, float]] = field(
        default_factory=lambda: deque(maxlen=_EPOCH_STARTS)
    )

    def accept(self, seq: int) -> bool:
        """Note sequence number ``seq``; False if it was seen before (a repeat)."""
        if seq > self.seen_max:
            self.expect_through(seq - 1)
            self.seen_max = seq
            return True
        for index, (lo, hi) in enumerate(self.gaps):
            if lo <= seq <= hi:
                self.missed -= 1
                if lo == hi:
                    del self.gaps[index]
                elif seq == lo:
                    self.gaps[index][0] = seq + 1
                elif seq == hi:
                    self.gaps[index][1] = seq - 1
                else:
                    self.gaps[index : index + 1] = [[lo, seq - 1], [seq + 1, hi]]
                return True
        self.duplicates += 1
        return False

    def accept_batch(self, seq: int, count: int) -> None:
        """Note sequence numbers ``seq`` to ``seq + count - 1``, all past any seen."""
        self.expect_through(seq - 1)
        self.seen_max = seq + count - 1

    def expect_through(self, last: int) -> None:
        """The worker has used sequence numbers up to ``last``: unseen ones are missed."""
        if last > self.seen_max:
            self.missed += last - self.seen_max
            self.gaps.append([self.seen_max + 1, last])
            if len(self.gaps) > _MAX_GAPS:
                del self.gaps[0]  # too old to fill: it stays counted as missed
            self.seen_max = last

    def not_held_before(self, first_held: int) -> None:
        """The client no longer holds records before ``first_held``: those not seen were
        not lost on the way to this monitor but never sent to it (not re-sent).

        Batches queued for a monitor that died can reach its successor before the hello
        that says so: gaps already counted as missed below ``first_held`` move too."""
        kept: list[list[int]] = []
        for lo, hi in self.gaps:
            if lo < first_held:
                cut = min(hi, first_held - 1) - lo + 1
                self.missed -= cut
                self.not_resent += cut
                lo = first_held
            if lo <= hi:
                kept.append([lo, hi])
        self.gaps = kept
        if self.seen_max < first_held - 1:
            self.not_resent += first_held - 1 - self.seen_max
            self.seen_max = first_held - 1

    def rate_point(self, t: float, step: int) -> None:
        """A record after the warm-up that moved the step on: the newest point of its
        quarter second."""
        if self.rate_from <= t < self.rate_until:
            self.rate_points[-1] = (t, step)
        else:
            self.rate_points.append((t, step))
            self.rate_from = t // _RATE_SLOT_S * _RATE_SLOT_S
            self.rate_until = self.rate_from + _RATE_SLOT_S

    def advance(self, step: int, t: float) -> None:
        """A metrics record at ``step``, time ``t`` by the worker's clock: the worker's step
        and the steps between the last two, unless it goes back; and, after the warm-up,
        a rate point. :meth:`advance_batch` is the same for a batch."""
        last = self.step
        if last is None or step >= last:
            if last is not None and step > last:
                self.step_gap = step - last
            self.step = step
            self.forward_records += 1
            if self.forward_records > WARMUP_RECORDS:  # rate_point, inlined (per record)
                if self.rate_from <= t < self.rate_until:
                    self.rate_points[-1] = (t, step)
                else:
                    self.rate_points.append((t, step))
                    self.rate_from = t // _RATE_SLOT_S * _RATE_SLOT_S
                    self.rate_until = self.rate_from + _RATE_SLOT_S

    def advance_batch(self, steps: list[int], times: list[float]) -> None:
        """:meth:`advance` for each of a batch of records whose ``steps`` do not go down,
        in a few passes: only the records from the first not behind the worker's step on
        move it, and a rate point is kept per quarter second (:meth:`_rate_points`)."""
        count = len(steps)
        if self.step is None or steps[0] >= self.step:
            first = 0
        elif steps[-1] >= self.step:
            first = bisect.bisect_left(steps, self.step)
        else:
            return  # all behind
        last = steps[-1]
        same = bisect.bisect_left(steps, last, first)  # the first record at `last`
        if same > first:
            self.step_gap = last - steps[same - 1]
        elif self.step is not None and last > self.step:
            self.step_gap = last - self.step
        self.step = last
        skip = first + max(WARMUP_RECORDS - self.forward_records, 0)
        self.forward_records += count - first
        if skip < count:
            self._rate_points(times, steps, skip)

    def _rate_points(self, times: list[float], steps: list[int], start: int) -> None:
        """:meth:`rate_point` for records ``start`` on of a batch, as if one by one: the
        last record of each quarter second, found by bisection when the times do not go
        down (almost always), so a batch costs a few steps rather than one per record."""
        if start > 0:
            times, steps = times[start:], steps[start:]
        if times != sorted(times):
            for t, step in zip(times, steps, strict=True):
                self.rate_point(t, step)
            return
        index, end = 0, len(times)
        while index < end:
            slot = times[index] // _RATE_SLOT_S
            index = bisect.bisect_left(times, (slot + 1) * _RATE_SLOT_S, index, end)
            self.rate_point(times[index - 1], steps[index - 1])

    def note_epochs(
        self,
        epochs: list[int | float | None],
        steps: list[int],
        times: list[float],
        marker: bool,
    ) -> None:
        """:meth:`note_epoch` for each record of a batch whose epoch is not the worker's."""
        if epochs.count(self.epoch) != len(epochs):
            for epoch, step, t in zip(epochs, steps, times, strict=True):
                if epoch is not None and epoch != self.epoch:
                    self.note_epoch(epoch, step, t, marker)

    def note_epoch(self, epoch: int | float, step: int | None, t: float, marker: bool) -> None:
        """A record at ``step`` (``marker``: one with no metrics, from ``set_epoch``)
        carries ``epoch``, not the worker's epoch so far: note where the new one began.

        Whole epochs count from 0, and a step is where one began: step 0 for epoch 0;
        the step after a ``set_epoch`` record's (which carries the last step done), or a
        metrics record's own step; not known for the first epoch seen if it is not 0
        (the monitor joined late). A fractional epoch (the Hugging Face Trainer's 2.5) is
        how many epochs are done, so each one is noted with its own step. The steps per
        epoch follow from these (:meth:`steps_per_epoch`).
        """
        if type(epoch) is float:
            self.fractional = True
        current = self.epoch
        if current is not None and epoch > current:
            # (a set_epoch record carries the last step of the epoch before)
            start = step + 1 if marker and step is not None and not self.fractional else step
        else:  # the first epoch seen, or one lower (a restart): start over
            self.epoch_starts.clear()
            start = step if self.fractional else (0 if epoch == 0 else None)
        self.epoch_starts.append((epoch, start, t))
        self.epoch = epoch

    def steps_per_epoch(self) -> float | None:
        """Steps per epoch, between the oldest and the newest epoch start whose step is
        known (the last 16), or None while there are not two."""
        first: tuple[int | float, int] | None = None
        last: tuple[int | float, int] | None = None
        for epoch, start, _ in self.epoch_starts:
            if start is not None:
                first = first or (epoch, start)
                last = (epoch, start)
        if first is None or last is None:
            return None
        (e0, s0), (e1, s1) = first, last
        if e1 <= e0 or s1 <= s0:
            return None
        return (s1 - s0) / (e1 - e0)

    def epoch_share(self) -> float | None:
        """How much of its current whole epoch the worker has done (past 1 when it runs
        longer than the epochs before), from the steps per epoch; None if not known, or
        for fractional epochs."""
        per_epoch = self.steps_per_epoch()
        if self.fractional or not per_epoch or self.step is None or not self.epoch_starts:
            return None
        epoch, start, _ = self.epoch_starts[-1]
        if start is None or epoch != self.epoch:
            return None
        return max(self.step + 1 - start, 0) / per_epoch

    def epochs_done(self) -> float | None:
        """Epochs done so far: a fractional epoch as sent; else the whole epoch (from
        0) and the share of the current one done (:meth:`epoch_share`, at most 1).
        None while that share is not known (the first epoch, no start seen)."""
        epoch = self.epoch
        if epoch is None:
            return None
        if self.fractional:
            return float(epoch)
        share = self.epoch_share()
        return None if share is None else epoch + min(share, 1.0)

    @property
    def steps_per_s(self) -> float | None:
        """Steps per second over the records of the last ``RATE_WINDOW_S`` seconds by the
        worker's clock, or over its last two where they are further apart (warm-up
        records left out)."""
        points = self.rate_points
        count = len(points)
        if count < 2:
            return None
        t1, s1 = points[-1]
        # the oldest point within the window, else the one before the newest
        t0, s0 = points[bisect.bisect_left(points, (t1 - RATE_WINDOW_S,), 0, count - 2)]
        if t1 <= t0 or s1 < s0:
            return None
        return (s1 - s0) / (t1 - t0)

    def per_step(self, names: tuple[str, ...]) -> float | None:
        """The last value of the first of ``names`` logged (e.g. samples per step)."""
        for name in names:
            series = self.series.get(name)
            if series is not None and math.isfinite(series.last):
                return series.last
        return None

    def throughput(self) -> dict[str, float]:
        """steps/s, and samples/s and tokens/s where the worker logs them per step."""
        rate = self.steps_per_s
        if rate is None:
            return {}
        out = {"steps": rate}
        for unit, names in (("samples", SAMPLE_NAMES), ("tokens", TOKEN_NAMES)):
            per_step = self.per_step(names)
            if per_step is not None:
                out[unit] = rate * per_step
        return out

    def status(self, now: float, stall_after_s: float) -> str:
        """``finished``, ``lost``, ``stalled`` or ``running``. A forked child silent
        after its parent said bye has finished with it (pool processes are ended
        without a bye of their own). A worker whose records ended without a bye (the
        end of a recording, :meth:`RunState.note_end`) is lost, whatever ``now``."""
        if self.finished:
            return "finished"
        if self.cut_off or now - self.last_seen > LOST_AFTER_S:
            return "finished" if self.parent_ended else "lost"
        if self.last_metrics_at is not None and now - self.last_metrics_at > stall_after_s:
            return "stalled"
        return "running"

    def sort_key(self) -> tuple[int, int, str]:
        return (0 if self.rank is not None else 1, self.rank or 0, self.id)
