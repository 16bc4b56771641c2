"""What the monitor knows: runs, workers and metric series, built by ``apply(record)``.

Plain Python with no I/O and no clock of its own: time comes from the records and from
the ``now`` the caller passes, so tests step time by hand. Every collection is bounded.
Everything the screen shows is derived here.
"""

from __future__ import annotations

import bisect
import math
import reprlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from trainmon.names import HELD_OUT_LOSS_NAMES, LOSS_NAMES
from trainmon_client.protocol import Columns, Record, clean_text

__all__ = [
    "Alert",
    "Bucket",
    "BucketColumns",
    "Downsampled",
    "LOST_AFTER_S",
    "Limits",
    "RATE_WINDOW_S",
    "Run",
    "RunState",
    "Series",
    "WARMUP_RECORDS",
    "Worker",
    "config_items",
    "worker_label",
]

LOST_AFTER_S: Final = 5.0  # heartbeats come every second; five missed means gone
# The first records of a worker (compiling, warming caches, the first batches) are
# slower than the rest: rates and ETAs leave them out.
WARMUP_RECORDS: Final = 3
_MAX_GAPS: Final = 64
_MAX_PEERS: Final = 64
_MAX_CLIENT_ALERTS: Final = 1000
# Rates are taken over the records of the last 10 s, by the worker's clock (or over the
# last two records, where they are further apart): a slowdown shows within seconds,
# and a pause long ago (validation, a checkpoint) is not averaged in for ever.
RATE_WINDOW_S: Final = 10.0
# One (time, step) point is kept per quarter second of the worker's clock (the last
# record in it), so 64 points hold more than the window however fast records come.
# A power of two: a quarter second's bounds, ``t // _RATE_SLOT_S * _RATE_SLOT_S`` and
# that plus ``_RATE_SLOT_S``, are exact, so "within them" is "the same quarter second".
_RATE_SLOT_S: Final = 0.25
_RATE_POINTS: Final = 64
_EPOCH_STARTS: Final = 16
_CONFIG_ITEMS: Final = 64  # hyperparameters kept per run, as text
_CONFIG_KEY_CHARS: Final = 64
_CONFIG_VALUE_CHARS: Final = 200
_CONFIG_DEPTH: Final = 3  # nested maps flattened to dotted keys this deep
_config_repr = reprlib.Repr()  # lists and maps in a config, shown short
_config_repr.maxlevel, _config_repr.maxlist, _config_repr.maxdict = 2, 8, 8
_config_repr.maxstring = _config_repr.maxother = _CONFIG_VALUE_CHARS

SAMPLE_NAMES: Final = ("samples", "batch_size")  # logged per step
TOKEN_NAMES: Final = ("tokens",)


class Alert(NamedTuple):
    """One alert: when (monitor time), which run, what kind, and what to say."""

    time: float
    run: str
    kind: str  # nan, spike, stalled, lost, missed, epochs, client
    text: str


def config_items(config: dict[str, Any]) -> tuple[dict[str, str], int]:
    """A hello's config as at most 64 ``key: text`` pairs, nested maps as dotted keys
    (``optim.lr``), every text cleaned for the terminal and cut, and how many more
    items there were: all the screen shows of it, and all the monitor keeps, whatever
    size of map a peer sends."""
    out: dict[str, str] = {}
    more = _flatten(config, "", 0, out)
    return out, more


def _flatten(config: dict[str, Any], prefix: str, depth: int, out: dict[str, str]) -> int:
    """Put ``config``'s items into ``out`` up to the limit; how many more there were
    (a map past the limit counts as one)."""
    more = 0
    for key, value in config.items():
        if len(out) >= _CONFIG_ITEMS:
            more += 1  # a map counts as one: not looked into
            continue
        name = prefix + clean_text(str(key))[:_CONFIG_KEY_CHARS]
        if isinstance(value, dict) and value and depth < _CONFIG_DEPTH:
            more += _flatten(value, name + ".", depth + 1, out)
        else:
            text = value if isinstance(value, str) else _config_repr.repr(value)
            if len(text) > _CONFIG_VALUE_CHARS:
                text = text[: _CONFIG_VALUE_CHARS - 1] + "…"
            out[name] = clean_text(text)
    return more


def worker_label(worker: Worker) -> str:
    """How the dashboard names a worker in one word: its rank, else its id."""
    return f"rank {worker.rank}" if worker.rank is not None else worker.id


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds that keep the monitor's memory flat whatever it is sent."""

    window: int = 10_000  # most full-resolution points kept per series (and < 1024 more)
    # Full-resolution points kept across all series: as series multiply, each keeps
    # fewer (see RunState._plan), so memory has one bound however the series came.
    points: int = 4_000_000
    series: int = 8192  # metric series (a metric of a worker) across all runs
    runs: int = 64
    workers: int = 1024  # per run
    all_workers: int = 8192  # across all runs
    metrics: int = 256  # per worker


@dataclass(slots=True)
class Bucket:
    """Several consecutive points folded into their extremes, last value and count."""

    first_step: int
    last_step: int
    low: float  # finite minimum, NaN when the bucket holds no finite value
    high: float
    last: float
    count: int
    mark: str = ""  # "nan", "+inf" or "-inf" if the bucket held such a value (see _MARK_RANK)

    def add(self, step: int, value: float) -> None:
        if step < self.first_step:
            self.first_step = step
        if step >= self.last_step:
            self.last_step, self.last = step, value
        self.count += 1
        if -math.inf < value < math.inf:
            if not value >= self.low:  # also true while low is NaN
                self.low = value
            if not value <= self.high:
                self.high = value
        else:
            self._extremes(value)

    def merge(self, other: Bucket) -> None:
        if other.last_step >= self.last_step:
            self.last_step, self.last = other.last_step, other.last
        self.first_step = min(self.first_step, other.first_step)
        self.count += other.count
        if _MARK_RANK[other.mark] > _MARK_RANK[self.mark]:
            self.mark = other.mark
        for value in (other.low, other.high):
            if math.isfinite(value):
                self._extremes(value)

    def _extremes(self, value: float) -> None:
        if math.isfinite(value):
            if not value >= self.low:  # also true while low is NaN
                self.low = value
            if not value <= self.high:
                self.high = value
        else:
            mark = "nan" if math.isnan(value) else ("+inf" if value > 0 else "-inf")
            if _MARK_RANK[mark] > _MARK_RANK[self.mark]:
                self.mark = mark


# A bucket holding several kinds of non-finite value is marked with the first of NaN,
# +inf, -inf it holds: the same whatever order its points were folded in.
_MARK_RANK: Final = {"": 0, "-inf": 1, "+inf": 2, "nan": 3}


def _bucket(step: int, value: float) -> Bucket:
    bucket = Bucket(step, step, math.nan, math.nan, value, 0)
    bucket.add(step, value)
    return bucket


class BucketColumns(NamedTuple):
    """Downsampled buckets in step order, a list per field."""

    steps: list[int]  # each bucket's last step
    lasts: list[float]
    lows: list[float]  # NaN where a bucket holds no finite value
    highs: list[float]
    marks: list[str]  # "nan", "+inf", "-inf" or ""


_FOLD_AFTER: Final = 1024  # points held back before they are folded into buckets
_MAX_BUCKETS: Final = 512  # downsampled history per series, with the full window
_MIN_BUCKETS: Final = 64  # and when the budget is shared by the most series


@dataclass(slots=True)
class Downsampled:
    """Everything older than the recent window, in at most ``max_buckets`` buckets.

    A bucket covers ``width`` steps aligned to multiples of ``width``; when there are
    too many, the width doubles and neighbours merge pairwise, so a point stays in the
    bucket it went into (only coarser) and old points never reshuffle.

    Points are held back and folded a thousand or so at a time, at the width all of
    them need, so most of the work is ``min``/``max`` over slices. The buckets come out
    the same as folding point by point: a bucket of width ``w`` is all the points with
    ``step // w`` equal to its index, and the width ends as the least power of two, at
    least ``min_width``, that fits all points into ``max_buckets``, in whatever batches
    they came.

    ``min_width`` keeps a fold from making hundreds of one- or two-step buckets at the
    start of a run (a fold costs mostly per bucket made): the series sets it to an
    eighth of the points it folds at a time, so a fold of points logged every step
    makes a few buckets at most (sparser steps span more buckets, as before).
    """

    max_buckets: int = _MAX_BUCKETS
    fold_after: int = _FOLD_AFTER  # points held back before they are folded
    min_width: int = 1  # a power of two
    width: int = 1
    buckets: dict[int, Bucket] = field(default_factory=dict)
    pending_steps: list[int] = field(default_factory=list)
    pending_values: list[float] = field(default_factory=list)
    pending_sorted: bool = True  # the held-back steps do not go down
    pending_finite: bool = True  # and their values are all finite
    low: float = math.inf  # the lowest finite value folded so far
    low_step: int | None = None  # and its step (the first such)
    _drawn: BucketColumns | None = None  # columns(), until the next fold

    def add(self, step: int, value: float) -> None:
        pending = self.pending_steps
        if pending and step < pending[-1]:
            self.pending_sorted = False
        if not -math.inf < value < math.inf:
            self.pending_finite = False
        pending.append(step)
        self.pending_values.append(value)
        if len(pending) >= self.fold_after:
            self.fold()

    def extend(self, steps: list[int], values: list[float], *, finite: bool = False) -> None:
        """Hold back points whose ``steps`` do not go down (a slice of a window);
        ``finite`` says the caller knows every value is finite. The lists become the
        history's own (no copy): the caller must not use them again."""
        pending = self.pending_steps
        if not finite:
            self.pending_finite = False
        if not pending:  # the common case: the window's spill, folded at once
            self.pending_steps, self.pending_values = steps, values
        else:
            if steps[0] < pending[-1]:
                self.pending_sorted = False
            pending += steps
            self.pending_values += values
        if len(self.pending_steps) >= self.fold_after:
            self.fold()

    def resize(self, max_buckets: int) -> None:
        """Keep at most ``max_buckets`` buckets from now on, merging at once if need be."""
        self.max_buckets = max_buckets
        self.fold()
        width, ratio = self.width, 1
        while len({index // ratio for index in self.buckets}) > max_buckets:
            width, ratio = width * 2, ratio * 2
        self._widen(width)

    def lowest(self) -> tuple[float, int | None]:
        """The lowest finite value of all the points (inf if none) and its step."""
        self.fold()
        return self.low, self.low_step

    def fold(self) -> None:
        """Fold the held-back points into the buckets."""
        steps, values = self.pending_steps, self.pending_values
        if not steps:
            return
        in_order, finite = self.pending_sorted, self.pending_finite
        self.pending_steps, self.pending_values = [], []
        self.pending_sorted = self.pending_finite = True
        self._drawn = None
        width = max(self.width, self.min_width)
        while True:
            if in_order and (
                len(self.buckets) + steps[-1] // width - steps[0] // width < self.max_buckets
            ):
                break  # fits even if every bucket the new points span were a new one
            ratio = width // self.width
            indexes = {index // ratio for index in self.buckets}
            indexes.update({step // width for step in steps})
            if len(indexes) <= self.max_buckets:
                break
            width *= 2
        self._widen(width)
        if not in_order:  # late points: one by one, in the order they came
            for step, value in zip(steps, values, strict=True):
                self._merge(step // width, _bucket(step, value))
                if -math.inf < value < self.low:
                    self.low, self.low_step = value, step
            return
        start, end = 0, len(steps)
        lowest = None  # the chunk holding the new lowest value, if one came
        while start < end:
            index = steps[start] // width
            stop = bisect.bisect_left(steps, (index + 1) * width, start, end)
            chunk = values if stop - start == end else values[start:stop]
            if finite or math.isfinite(sum(chunk)):
                part = Bucket(
                    steps[start], steps[stop - 1], min(chunk), max(chunk), chunk[-1], len(chunk)
                )
            else:  # NaN or an infinity inside (or a sum too large): point by point
                part = _bucket(steps[start], chunk[0])
                for step, value in zip(steps[start + 1 : stop], chunk[1:], strict=True):
                    part.add(step, value)
            if part.low < self.low:  # False while low is NaN (no finite value)
                self.low, lowest = part.low, (start, chunk)
            self._merge(index, part)
            start = stop
        if lowest is not None:  # its step: looked for once, not in every chunk
            start, chunk = lowest
            self.low_step = steps[start + chunk.index(self.low)]

    def _merge(self, index: int, part: Bucket) -> None:
        bucket = self.buckets.get(index)
        if bucket is None:
            self.buckets[index] = part
        else:
            bucket.merge(part)

    def _widen(self, width: int) -> None:
        """Merge neighbouring buckets until they are ``width`` steps wide."""
        if width == self.width:
            return
        ratio = width // self.width
        merged: dict[int, Bucket] = {}
        for index in sorted(self.buckets):
            bucket = self.buckets[index]
            target = merged.get(index // ratio)
            if target is None:
                merged[index // ratio] = bucket
            else:
                target.merge(bucket)
        self.buckets, self.width = merged, width
        self._drawn = None

    def in_order(self) -> list[Bucket]:
        self.fold()
        return [self.buckets[i] for i in sorted(self.buckets)]

    def columns(self) -> BucketColumns:
        """The buckets as columns, kept until the next fold (every frame draws them;
        they change a thousand points at a time)."""
        self.fold()
        if self._drawn is None:
            buckets = self.in_order()
            self._drawn = BucketColumns(
                [b.last_step for b in buckets],
                [b.last for b in buckets],
                [b.low for b in buckets],
                [b.high for b in buckets],
                [b.mark for b in buckets],
            )
        return self._drawn


@dataclass(slots=True)
class Series:
    """One metric of one worker: recent points at full resolution, older ones downsampled.

    The recent window is two columns (steps and values) in step order, so a batch of
    points is taken in with a few C-level passes rather than a Python step per point.
    It holds ``window`` points or up to ``spill`` more (1024, or an eighth of a small
    window): once it reaches ``window + spill`` the oldest ``spill`` points go to the
    downsampled history together, the same ones whether points came one by one or in
    batches. The monitor shrinks the window (:meth:`resize`) as series multiply.
    """

    window: int
    spill: int = field(init=False)
    steps: list[int] = field(default_factory=list)
    vals: list[float] = field(default_factory=list)
    older: Downsampled = field(default_factory=Downsampled)
    count: int = 0
    nonfinite: int = 0
    revision: int = 0  # changes when points leave the window or arrive out of order
    # The window's lowest finite value and its step, as of (revision, window length):
    # found when asked, over the points that came since.
    _low: tuple[float, int | None] = (math.inf, None)
    _low_as_of: tuple[int, int] = (-1, 0)

    def __post_init__(self) -> None:
        self.resize(self.window, self.older.max_buckets)

    def resize(self, window: int, buckets: int) -> None:
        """Keep ``window`` points at full resolution and ``buckets`` of history from now
        on; points past a smaller window go to the history at once."""
        self.window = window
        self.spill = min(_FOLD_AFTER, window // 8 + 1)
        self.older.fold_after = self.spill  # a few points held back, as the window is small
        # history buckets at least an eighth of a spill wide: 128 steps for a full window
        self.older.min_width = 1 << max((self.spill // 8).bit_length() - 1, 0)
        excess = len(self.steps) - window
        if excess > 0:
            self.revision += 1
            self.older.extend(self.steps[:excess], self.vals[:excess], finite=not self.nonfinite)
            del self.steps[:excess], self.vals[:excess]
        self.older.resize(buckets)

    @property
    def best(self) -> float:
        """The lowest finite value so far (inf if none)."""
        return self._lowest()[0]

    @property
    def best_step(self) -> int | None:
        """A step at which :attr:`best` came (the first, for points that came in step
        order; a late point equal to it does not take its place)."""
        return self._lowest()[1]

    def _lowest(self) -> tuple[float, int | None]:
        revision, length = self._low_as_of
        if revision != self.revision or length > len(self.vals):
            revision, length, self._low = self.revision, 0, (math.inf, None)
        if length < len(self.vals):
            fresh = self.vals[length:]
            if math.isfinite(sum(fresh)):
                low = min(fresh)
            else:
                low = min((v for v in fresh if -math.inf < v < math.inf), default=math.inf)
            if low < self._low[0]:
                self._low = (low, self.steps[length + fresh.index(low)])
            self._low_as_of = (revision, len(self.vals))
        older = self.older.lowest()
        return older if older[0] <= self._low[0] and older[1] is not None else self._low

    @property
    def points(self) -> list[tuple[int, float]]:
        """The recent window as (step, value) pairs, oldest first."""
        return list(zip(self.steps, self.vals, strict=True))

    @property
    def last(self) -> float:
        return self.vals[-1] if self.vals else math.nan

    def add(self, step: int, value: float) -> None:
        self.count += 1
        if not -math.inf < value < math.inf:
            self.nonfinite += 1  # counted before the point can go on to the history
        steps = self.steps
        if steps and step < steps[-1]:
            self._add_late(step, value)
        else:
            steps.append(step)
            self.vals.append(value)
            if len(steps) >= self.window + self.spill:
                self._evict()

    def extend(
        self,
        steps: list[int],
        values: list[float],
        *,
        sorted_steps: bool = False,
        finite: bool = False,
    ) -> None:
        """Add points as :meth:`add` would one by one; fast when the steps do not go
        down (``sorted_steps`` says the caller has checked that; ``finite``, that every
        value is finite)."""
        own = self.steps
        if (own and steps[0] < own[-1]) or (not sorted_steps and steps != sorted(steps)):
            for step, value in zip(steps, values, strict=True):
                self.add(step, value)
            return
        self.count += len(values)
        if not finite and not math.isfinite(sum(values)):  # counted before points go on
            self.nonfinite += sum(1 for value in values if not -math.inf < value < math.inf)
        own += steps
        self.vals += values
        while len(own) >= self.window + self.spill:
            self._evict()

    def _evict(self) -> None:
        """The oldest ``spill`` points leave the window for the downsampled history."""
        spill = self.spill
        self.revision += 1
        # No value of the series was ever NaN or infinite: the history need not look.
        self.older.extend(self.steps[:spill], self.vals[:spill], finite=not self.nonfinite)
        del self.steps[:spill], self.vals[:spill]

    def _add_late(self, step: int, value: float) -> None:
        """A point older than the newest (a gap filled by a re-send): keep step order."""
        steps, vals = self.steps, self.vals
        self.revision += 1
        if step < steps[0] and len(steps) >= self.window:
            self.older.add(step, value)  # older than the whole window
            return
        index = bisect.bisect_right(steps, step)
        steps.insert(index, step)
        vals.insert(index, value)
        if len(steps) >= self.window + self.spill:
            self._evict()

    def values(self, last: int) -> list[float]:
        """The last ``last`` values at full resolution, oldest first."""
        return self.vals[-last:] if last > 0 else []

    def history(self) -> list[Bucket]:
        """The whole series: downsampled buckets, then the recent points as buckets of one."""
        return self.older.in_order() + [
            _bucket(step, value) for step, value in zip(self.steps, self.vals, strict=True)
        ]


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
        without a bye of their own)."""
        if self.finished:
            return "finished"
        if now - self.last_seen > LOST_AFTER_S:
            return "finished" if self.parent_ended else "lost"
        if self.last_metrics_at is not None and now - self.last_metrics_at > stall_after_s:
            return "stalled"
        return "running"

    def sort_key(self) -> tuple[int, int, str]:
        return (0 if self.rank is not None else 1, self.rank or 0, self.id)


@dataclass(slots=True)
class Run:
    """All workers publishing under one run name."""

    name: str
    workers: dict[str, Worker] = field(default_factory=dict)
    metric_names: list[str] = field(default_factory=list)
    started: float | None = None  # earliest record time
    updated: float = 0.0  # monitor time of the last record
    created: float = 0.0  # monitor time of the first record
    heard: float = 0.0  # monitor time of the last record or heartbeat
    untracked_workers: int = 0
    forked: bool = False  # some worker names a parent (see Worker.parent)
    # The hyperparameters one worker sent (see config_items): the lowest rank's, else
    # the first; one per run, as every rank sends the same (and memory stays bounded).
    config: dict[str, str] = field(default_factory=dict)
    config_more: int = 0  # items left out (a map past the limit counts as one)
    config_from: Worker | None = None
    changes: int = 0  # counts records taken (their workers may have changed)
    _lead: tuple[int, Worker | None] = (-1, None)  # lead, as of changes

    @property
    def lead(self) -> Worker | None:
        """The worker whose curves the dashboard shows. Never a forked child while its
        parent is in the run (a pool process is not the training loop); of the rest,
        those that log the main metric (the loss, else the first metric logged) if any
        do; of those, the ones still going (so a finished process never hides a live
        one, nor does one silent while the run's others are heard: a killed process,
        and its restart under the same run name), else the finished ones; and of those
        the lowest rank, else the first seen. Found again only after a record came (a
        frame asks dozens of times)."""
        if self._lead[0] == self.changes:
            return self._lead[1]
        lead = None
        if self.workers:
            ranks = self.ranks()
            main = (  # as the view's main metric picks it, short of a choice
                self.find_metric(LOSS_NAMES)
                or self.find_metric(HELD_OUT_LOSS_NAMES)
                or (self.metric_names[0] if self.metric_names else None)
            )
            if main is not None:
                ranks = [w for w in ranks if main in w.series] or ranks
            going = [
                w for w in ranks if not w.finished and self.updated - w.last_seen <= LOST_AFTER_S
            ]  # else the finished ones (a killed process never outranks its restart)
            going = going or [w for w in ranks if w.finished] or ranks
            lead = min(going, key=lambda w: (w.sort_key()[:2], w.first_seen))
        self._lead = (self.changes, lead)
        return lead

    def ranks(self) -> list[Worker]:
        """The workers but forked children whose parent is in the run."""
        workers = self.workers
        if not self.forked:
            return list(workers.values())
        out = [w for w in workers.values() if w.parent is None or w.parent not in workers]
        return out or list(workers.values())

    @property
    def total_epochs(self) -> int | None:
        return max((w.total_epochs for w in self.workers.values() if w.total_epochs), default=None)

    @property
    def epochs_total(self) -> int | float | None:
        """The total epochs as sent: fractional where a worker's is (hello epochs_f)."""
        return max(
            (w.total_epochs_f or w.total_epochs for w in self.workers.values() if w.total_epochs),
            default=None,
        )

    @property
    def total_steps(self) -> int | None:
        return max((w.total_steps for w in self.workers.values() if w.total_steps), default=None)

    @property
    def finished(self) -> bool:
        """Every worker has said bye (a forked child, or its parent has)."""
        return bool(self.workers) and all(
            w.finished or w.parent_ended for w in self.workers.values()
        )

    @property
    def missed(self) -> int:
        return sum(w.missed for w in self.workers.values())

    @property
    def records(self) -> int:
        """Records taken in for this run."""
        return sum(w.records for w in self.workers.values())

    @property
    def client_dropped(self) -> int:
        return sum(w.client_dropped for w in self.workers.values())

    @property
    def client_unrecorded(self) -> int:
        return sum(w.client_unrecorded for w in self.workers.values())

    @property
    def not_resent(self) -> int:
        return sum(w.not_resent for w in self.workers.values())

    @property
    def outages(self) -> tuple[int, float]:
        """How many times workers went silent and came back, and the longest silence."""
        workers = self.workers.values()
        return (
            sum(w.outages for w in workers),
            max((w.longest_outage_s for w in workers), default=0.0),
        )

    def throughput(self, now: float, stall_after_s: float) -> dict[str, float]:
        """Summed over the running workers (forked children left out): steps/s (of the
        lead), samples/s, tokens/s."""
        total: dict[str, float] = {}
        for worker in self.ranks():
            if worker.status(now, stall_after_s) != "running":
                continue
            for unit, rate in worker.throughput().items():
                total[unit] = total.get(unit, 0.0) + rate
        lead = self.lead
        if "steps" in total and lead is not None:
            lead_rate = lead.steps_per_s
            if lead_rate is None:
                del total["steps"]
            else:
                total["steps"] = lead_rate  # steps are shared by data-parallel ranks
        return total

    def straggler(self, now: float, stall_after_s: float) -> Worker | None:
        """The running worker furthest behind the others, if it is clearly behind: more
        than a few seconds of steps behind the median, or under 80% of the median rate
        (forked children, which do other work, left out)."""
        running = [
            w
            for w in self.ranks()
            if w.step is not None and w.status(now, stall_after_s) == "running"
        ]
        if len(running) < 2:
            return None
        steps = sorted(w.step for w in running if w.step is not None)
        median_step = steps[len(steps) // 2]
        rates = sorted(r for w in running if (r := w.steps_per_s))
        median_rate = rates[len(rates) // 2] if rates else None
        slowest = min(running, key=lambda w: (w.step or 0, w.steps_per_s or 0.0))
        behind = median_step - (slowest.step or 0)
        if median_rate:
            slow = slowest.steps_per_s is not None and slowest.steps_per_s < 0.8 * median_rate
            if behind > max(3 * median_rate, 2) or (slow and behind > 0):
                return slowest
        elif behind > 10:
            return slowest
        return None

    def status(self, now: float, stall_after_s: float) -> str:
        """The run's status: the most hopeful of its workers' statuses."""
        statuses = {w.status(now, stall_after_s) for w in self.workers.values()}
        for status in ("running", "stalled", "lost", "finished"):
            if status in statuses:
                return status
        return "waiting"

    def series(self, name: str) -> Series | None:
        lead = self.lead
        return None if lead is None else lead.series.get(name)

    def find_metric(self, names: tuple[str, ...]) -> str | None:
        """The first of ``names`` this run logs (matching case-insensitively)."""
        lowered = {n.lower(): n for n in self.metric_names}
        for name in names:
            if name in lowered:
                return lowered[name]
        return None

    def epoch_label(self) -> str | None:
        """The lead's epoch as the screen shows it (– if not known yet) over the total
        epochs, or None if neither is known.

        Whole epochs come counted from 0 (``set_epoch(0)`` starts the first) and are
        shown counted from 1: epoch 1 of 3 is "1/3" from its first step to its last. A
        fractional epoch (the Hugging Face Trainer's) is the number of epochs done so
        far and is shown as it is: 2.5 of 3 is "2.5/3", halfway through the third; once
        a worker has sent one, its whole epochs are read the same way (the Trainer's
        2.0 travels as 2). A total may be fractional too (hello ``epochs_f``)."""
        lead, total = self.lead, self.epochs_total
        if lead is None or lead.epoch is None:
            return f"–/{_number(total)}" if total else None
        shown = _number(lead.epoch) if lead.fractional else f"{lead.epoch + 1:,}"
        return f"{shown}/{_number(total)}" if total else shown

    def past_total(self) -> bool:
        """The lead's epoch is past the total epochs ("epoch 3/2": epochs counted from
        1 by ``set_epoch``, or a total that is too small)."""
        lead, total = self.lead, self.epochs_total
        if lead is None or lead.epoch is None or not total:
            return False
        return lead.epoch > total if lead.fractional else lead.epoch >= total

    def progress(self) -> float | None:
        """The fraction of the run done, or None if not known.

        From the steps where the total steps are known. Else from the epochs done
        (:meth:`Worker.epochs_done`: whole epochs and the share of the current one from
        the steps per epoch seen) over the total epochs: not known in the first epoch
        seen, before any epoch has ended, nor past the total (see :meth:`past_total`).
        """
        lead = self.lead
        if lead is None:
            return None
        fraction: float | None = None
        if self.total_steps and lead.step is not None:
            fraction = min((lead.step + 1) / self.total_steps, 1.0)
            if self.finished and self.total_steps - lead.step - 1 < max(lead.step_gap, 1):
                return 1.0  # the last step was logged (steps logged every N: within N)
        elif self.epochs_total and lead.epoch is not None:
            total = self.epochs_total
            if self.finished and self._last_epoch_ended(lead, total):
                return 1.0
            done = lead.epochs_done()
            if self.finished and done is None and not lead.fractional:
                done = float(lead.epoch)  # whole epochs done: all that is known
            if done is not None and not self.past_total():
                fraction = min(done / total, 1.0)
        if self.finished:  # done; or ended early (stopped, or crashed with a bye)
            return 1.0 if fraction is None else fraction
        return fraction

    @staticmethod
    def _last_epoch_ended(lead: Worker, total: float) -> bool:
        """The lead's records reached the end of the last epoch (within the steps
        between two records, for fractional epochs logged every N steps)."""
        if lead.epoch is None:
            return False
        if not lead.fractional:
            return lead.epoch + 1 >= total
        per_epoch = lead.steps_per_epoch()
        left = total - lead.epoch
        return left <= 0 or (per_epoch is not None and left * per_epoch < lead.step_gap + 1)

    def eta_s(self) -> float | None:
        """Seconds left: the steps left at the recent step rate (see
        :attr:`Worker.steps_per_s`). The steps left come from the total steps, else
        from the epochs left and the steps per epoch seen; not known before an epoch
        has ended, nor while an epoch runs longer than the ones before (it would say
        00:00 for as long as that lasts)."""
        lead = self.lead
        if lead is None or self.finished:
            return None
        rate = lead.steps_per_s
        if not rate:
            return None
        if self.total_steps and lead.step is not None:
            return max(self.total_steps - lead.step - 1, 0) / rate
        total, per_epoch = self.epochs_total, lead.steps_per_epoch()
        if not total or not per_epoch or lead.epoch is None or self.past_total():
            return None
        if lead.fractional:
            return max(total - lead.epoch, 0.0) * per_epoch / rate
        share = lead.epoch_share()
        if share is None or share > 1.0:
            return None
        return max(total - lead.epoch - share, 0.0) * per_epoch / rate


def _number(value: float) -> str:
    """A count of epochs as a person writes it: 3, 2.5, 0.33."""
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:.2f}".rstrip("0").rstrip(".")


class RunState:
    """Everything received, grouped by run and worker. ``apply`` is the only writer of
    what came; :meth:`current` and :meth:`choose` keep which run the dashboard shows."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.runs: dict[str, Run] = {}
        self.records = 0  # accepted records
        self.rejected = 0  # messages that failed to decode
        # Records of kinds this monitor does not know (a newer client's): skipped, their
        # sequence numbers counted as received. kind -> count, a few kinds at most.
        self.skipped: dict[str, int] = {}
        self.last_reject: str | None = None
        self.rejected_by_peer: dict[str, int] = {}
        self.refused = 0  # encrypted handshakes refused (a key not allowed)
        self.last_refusal: str | None = None
        self.link_short = ""  # what is wrong with the connections made, in a few words
        self.link_note = ""  # and the whole story
        self.recording_note = ""  # why `watch --record` stopped recording, once it has
        self.duplicates = 0
        self.untracked_runs = 0
        self.forgotten_runs = 0  # finished runs let go to make room for new ones
        self.worker_count = 0  # workers across all runs (at most limits.all_workers)
        self.series_count = 0  # series across all runs (at most limits.series)
        # What each series keeps (full-resolution points, buckets), for series_count
        # up to _planned_for (see _plan).
        self.share = (self.limits.window, _MAX_BUCKETS)
        self._planned_for = 0
        self.alerts: list[Alert] = []  # raised so far, newest last (see trainmon.alerts)
        self.client_alerts: list[Alert] = []  # sent by training scripts (the latest)
        self.client_alerts_total = 0
        self.first_record_at: float | None = None  # monitor time of the first record
        self.last_record_at: float | None = None  # and of the latest
        self._shown: str | None = None  # the run current() gave last
        self._pinned = False  # it was chosen when it had already ended: it stays
        self.chosen: str | None = None  # the run chosen last (choose())

    def apply(self, record: Record, now: float) -> bool:
        """Fold one record in; ``now`` is the monitor's clock when it arrived.

        Returns False for a record not taken: a repeat, a heartbeat, or one past a limit.
        """
        found = self._worker(record.run, record.worker, now)
        if found is None:
            return False
        run, worker = found
        if record.kind == "heartbeat":
            self._heartbeat(worker, record)
            return False
        if (
            record.kind == "hello"
            and record.seq == 0
            and worker.hello_time is not None
            and (record.time > worker.hello_time)
        ):
            # The same host:pid again, started later: a restarted process (a container's
            # PID 1, a requeued job). Its numbering starts over.
            worker.seen_max, worker.gaps, worker.missed, worker.finished = -1, [], 0, False
            self._parent_ended(run, worker, False)
        if record.kind == "hello":
            worker.hello_time = max(worker.hello_time or record.time, record.time)
        if not worker.accept(record.seq):
            self.duplicates += 1
            return False
        self.records += 1
        worker.records += 1
        run.updated = now
        if self.first_record_at is None:
            self.first_record_at = now
        self.last_record_at = now
        if run.started is None or record.time < run.started:
            run.started = record.time
        if record.kind == "metrics":
            self._metrics(run, worker, record, now)
        elif record.kind == "hello":
            self._hello(run, worker, record.info)
        elif record.kind == "alert":
            title, text = record.info.get("title", "alert"), record.info.get("text", "")
            said = f"{worker_label(worker)}: {title}" + (f" — {text}" if text else "")
            self.client_alerts.append(Alert(now, run.name, "client", said))
            self.client_alerts_total += 1
            del self.client_alerts[:-_MAX_CLIENT_ALERTS]
        elif record.kind == "bye":
            worker.finished = True
            self._parent_ended(run, worker, True)
            self._counts(worker, record)
        elif record.kind != "metrics" and (  # a newer client's kind: counted, not applied
            record.kind in self.skipped or len(self.skipped) < _MAX_PEERS
        ):
            self.skipped[record.kind] = self.skipped.get(record.kind, 0) + 1
        return True

    def apply_columns(self, columns: Columns, now: float) -> int:
        """Fold in consecutive metrics records given as columns; how many were taken.

        The same result as applying ``columns.records()`` one by one, in a few passes
        per column when the records are all new and their steps do not go down;
        otherwise it does exactly that.
        """
        found = self._worker(columns.run, columns.worker, now, len(columns.times))
        if found is None:
            return 0
        run, worker = found
        seq, count = columns.seq, len(columns.times)
        steps = columns.steps
        if seq <= worker.seen_max or not (
            columns.ordered or (None not in steps and steps == sorted(steps))  # type: ignore[type-var]
        ):
            return sum(self.apply(record, now) for record in columns.records())
        worker.expect_through(seq - 1)
        worker.seen_max = seq + count - 1
        self.records += count
        worker.records += count
        run.updated = now
        if self.first_record_at is None:
            self.first_record_at = now
        self.last_record_at = now
        times = columns.times
        started = min(times)
        if run.started is None or started < run.started:
            run.started = started
        epochs = columns.epochs
        numbers: list[int] = steps  # type: ignore[assignment]  # no None, checked above
        if epochs.count(worker.epoch) != count:
            marker = not columns.metrics
            for epoch, step, t in zip(epochs, numbers, times, strict=True):
                if epoch is not None and epoch != worker.epoch:
                    worker.note_epoch(epoch, step, t, marker)
        if not columns.metrics:
            return count
        worker.last_metrics_at = now
        first = -1
        if worker.step is None or numbers[0] >= worker.step:
            first = 0
        elif numbers[-1] >= worker.step:
            first = bisect.bisect_left(numbers, worker.step)
        if first >= 0:  # records from `first` on move the step forward
            last = numbers[-1]
            same = bisect.bisect_left(numbers, last, first)  # the first record at `last`
            if same > first:
                worker.step_gap = last - numbers[same - 1]
            elif worker.step is not None and last > worker.step:
                worker.step_gap = last - worker.step
            worker.step = last
            skip = first + max(WARMUP_RECORDS - worker.forward_records, 0)
            worker.forward_records += count - first
            if skip < count:
                _rate_points(worker, times, numbers, skip)
        for name, values in columns.metrics.items():
            series = worker.series.get(name) or self._new_series(run, worker, name, count)
            if series is not None:
                series.extend(numbers, values, sorted_steps=True, finite=columns.finite)
        return count

    def reject(self, reason: str, peer: str = "") -> None:
        """Count a message that could not be decoded, and who sent it."""
        self.rejected += 1
        self.last_reject = reason
        if peer:
            if peer in self.rejected_by_peer or len(self.rejected_by_peer) < _MAX_PEERS:
                self.rejected_by_peer[peer] = self.rejected_by_peer.get(peer, 0) + 1
            else:
                self.rejected_by_peer["others"] = self.rejected_by_peer.get("others", 0) + 1

    def refuse(self, reason: str, count: int = 1) -> None:
        """Count handshakes refused by authentication."""
        self.refused += count
        self.last_refusal = reason

    def note_recording(self, note: str) -> None:
        """The recording (``watch --record``) stopped or falls behind: ``note`` says why."""
        self.recording_note = note

    def note_link(self, short: str, note: str) -> None:
        """How the monitor's connections stand ("" and "" when all are up)."""
        self.link_short, self.link_note = short, note

    def current(self, name: str | None = None) -> Run | None:
        """The run named ``name``; else the run the dashboard shows.

        That is the run given last (the one the user is looking at) while it is live,
        or while no other is; when it has finished or is lost (its workers silent for
        ``LOST_AFTER_S`` while others are heard) and another run is live, the newest
        live one. A run chosen (:meth:`choose`) when it had already ended stays until it
        is live again. The first time: the newest live run, else the newest not
        finished, else the one heard from last. So a run started later, or another
        user's script publishing to the same port, never takes the view from a run
        being watched: the header says other runs exist, and r switches.
        """
        if name is not None:
            return self.runs.get(name)
        if not self.runs:
            return None
        latest = max(run.heard for run in self.runs.values())
        shown = self.runs.get(self._shown) if self._shown is not None else None
        if shown is not None:
            if _live(shown, latest):
                self._pinned = False
                return shown
            if self._pinned:
                return shown
            others = [r for r in self.runs.values() if r is not shown and _live(r, latest)]
            if not others:
                return shown
            shown = max(others, key=lambda run: run.created)
        else:
            live = [run for run in self.runs.values() if _live(run, latest)]
            going = live or [r for r in self.runs.values() if r.workers and not r.finished]
            if going:
                shown = max(going, key=lambda run: run.created)
            else:
                heard = [r for r in self.runs.values() if r.workers] or self.runs.values()
                shown = max(heard, key=lambda run: run.updated)
        self._shown, self._pinned = shown.name, False
        return shown

    def choose(self, name: str) -> None:
        """Show run ``name`` (the r key, or ``--run``) from now on, as :meth:`current`
        keeps a run shown; one that has already ended stays until it is live again."""
        self.chosen = name
        run = self.runs.get(name)
        if run is not None:
            latest = max(r.heard for r in self.runs.values())
            self._shown, self._pinned = name, not _live(run, latest)

    def _worker(
        self, run_name: str, worker_id: str, now: float, records: int = 1
    ) -> tuple[Run, Worker] | None:
        """The run and worker ``records`` records belong to (made if new and within the
        limits), with the worker's silence (an outage if long) ended at ``now``."""
        run = self._run(run_name, now, records)
        if run is None:
            return None
        run.changes += 1  # whatever the record does to its worker happens after this
        worker = run.workers.get(worker_id)
        if worker is None:
            limits = self.limits
            self._make_room(lambda: self.worker_count >= limits.all_workers, keep=run)
            if len(run.workers) >= limits.workers or self.worker_count >= limits.all_workers:
                run.untracked_workers += records
                return None
            worker = run.workers[worker_id] = Worker(worker_id, now, now)
            self.worker_count += 1
        silence = now - worker.last_seen
        if silence > LOST_AFTER_S and not worker.finished:
            worker.outages += 1
            worker.longest_outage_s = max(worker.longest_outage_s, silence)
        worker.last_seen = max(worker.last_seen, now)
        if now > run.heard:
            run.heard = now
        return run, worker

    def _run(self, name: str, now: float, records: int = 1) -> Run | None:
        run = self.runs.get(name)
        if run is None:
            if len(self.runs) >= self.limits.runs and not self._forget_a_run():
                self.untracked_runs += records
                return None
            run = self.runs[name] = Run(name, updated=now, created=now, heard=now)
        return run

    def _make_room(self, full: Callable[[], bool], keep: Run) -> None:
        """Let runs go (see :meth:`_forget_a_run`) while ``full()`` says a cap in all is
        reached and there is one to let go."""
        while full() and self._forget_a_run(keep=keep):
            pass

    def _forget_a_run(self, keep: Run | None = None) -> bool:
        """Make room (runs, workers and series in all) by letting go of the run that
        finished longest ago, or one that never had a worker; False if there is none.

        A monitor left running for days, across job after job, always has room for the
        newest run."""
        done = [r for r in self.runs.values() if r is not keep and (r.finished or not r.workers)]
        if not done:
            return False
        gone = self.runs.pop(min(done, key=lambda r: r.updated).name)
        self.forgotten_runs += 1
        self.worker_count -= len(gone.workers)
        self.series_count -= sum(len(w.series) for w in gone.workers.values())
        if self.series_count <= self._planned_for // 2:
            self._plan()  # the rest may keep more
        return True

    def _heartbeat(self, worker: Worker, record: Record) -> None:
        self._counts(worker, record)
        worker.expect_through(record.seq)  # a heartbeat carries the last number used

    @staticmethod
    def _counts(worker: Worker, record: Record) -> None:
        """What the client says it dropped and did not record (heartbeat, bye)."""
        counters = record.counters
        worker.client_dropped = max(worker.client_dropped, counters.get("dropped", 0))
        worker.client_unrecorded = max(worker.client_unrecorded, counters.get("unrecorded", 0))

    def _hello(self, run: Run, worker: Worker, info: dict[str, Any] | Any) -> None:
        worker.host = info.get("host", worker.host)
        worker.pid = info.get("pid", worker.pid)
        worker.rank = info.get("rank", worker.rank)
        worker.world = info.get("world", worker.world)
        if "epochs" in info:  # (epochs_f goes with it: a hello again may drop it)
            worker.total_epochs, worker.total_epochs_f = info["epochs"], info.get("epochs_f")
        worker.total_steps = info.get("steps", worker.total_steps)
        parent = info.get("parent")
        if parent is not None and parent != worker.id:
            worker.parent, run.forked = parent, True
            father = run.workers.get(parent)
            worker.parent_ended = father is not None and father.finished
        config = info.get("config")
        sender = run.config_from
        if (
            isinstance(config, dict)
            and (  # a restarted rank 0 is newer than the one gone
                sender is None or sender.finished or worker.sort_key()[:2] <= sender.sort_key()[:2]
            )
        ):
            (run.config, run.config_more), run.config_from = config_items(config), worker
        first_held = info.get("from")
        if first_held is not None:
            worker.not_held_before(first_held)

    def _metrics(self, run: Run, worker: Worker, record: Record, now: float) -> None:
        if record.epoch is not None and record.epoch != worker.epoch:
            worker.note_epoch(record.epoch, record.step, record.time, not record.metrics)
        step = record.step if record.step is not None else record.seq
        if not record.metrics:
            return
        worker.last_metrics_at = now
        last = worker.step
        if last is None or step >= last:
            if last is not None and step > last:
                worker.step_gap = step - last
            worker.step = step
            worker.forward_records += 1
            if worker.forward_records > WARMUP_RECORDS:  # Worker.rate_point, inlined
                t = record.time
                if worker.rate_from <= t < worker.rate_until:
                    worker.rate_points[-1] = (t, step)
                else:
                    worker.rate_points.append((t, step))
                    worker.rate_from = t // _RATE_SLOT_S * _RATE_SLOT_S
                    worker.rate_until = worker.rate_from + _RATE_SLOT_S
        for name, value in record.metrics.items():
            series = worker.series.get(name) or self._new_series(run, worker, name, 1)
            if series is not None:
                series.add(step, value)

    @staticmethod
    def _parent_ended(run: Run, parent: Worker, ended: bool) -> None:
        """Tell the forked children of ``parent`` whether it has said bye."""
        if run.forked:
            for worker in run.workers.values():
                if worker.parent == parent.id:
                    worker.parent_ended = ended

    def _new_series(self, run: Run, worker: Worker, name: str, count: int) -> Series | None:
        """A series for metric ``name`` of ``worker``, if the limits allow; else None,
        with the ``count`` values that came for it counted as untracked."""
        limits = self.limits
        self._make_room(lambda: self.series_count >= limits.series, keep=run)
        if len(worker.series) >= limits.metrics or self.series_count >= limits.series:
            worker.untracked_metrics += count
            return None
        self.series_count += 1
        if self.series_count > self._planned_for:
            self._plan()
        window, buckets = self.share
        series = worker.series[name] = Series(window, older=Downsampled(max_buckets=buckets))
        if name not in run.metric_names and len(run.metric_names) < limits.metrics:
            run.metric_names.append(name)
        return series

    def _plan(self) -> None:
        """Share the point budget out: each series keeps ``points / n`` points at full
        resolution (``window`` at most) and 512 buckets of history, or an eighth as
        many as its points (at least 64) when the window is cut; ``n`` is the number of
        series rounded up to a power of two, so this runs only when that number doubles
        or halves. Held points beyond a smaller share go to the history at once."""
        limits = self.limits
        planned = 1 << max(self.series_count - 1, 0).bit_length()
        window = max(1, min(limits.window, limits.points // planned))
        buckets = _MAX_BUCKETS
        if window < limits.window:
            buckets = max(_MIN_BUCKETS, min(_MAX_BUCKETS, window // 8))
        share = (window, buckets)
        if share != self.share:
            for run in self.runs.values():
                for worker in run.workers.values():
                    for series in worker.series.values():
                        series.resize(*share)
        self.share, self._planned_for = share, planned


def _live(run: Run, latest: float) -> bool:
    """``run`` has workers, not all finished, one heard within ``LOST_AFTER_S`` of
    ``latest`` (the monitor time anything was heard last)."""
    return bool(run.workers) and not run.finished and latest - run.heard <= LOST_AFTER_S


def _rate_points(worker: Worker, times: list[float], steps: list[int], start: int) -> None:
    """:meth:`Worker.rate_point` for records ``start`` on of a batch, as if one by one:
    the last record of each quarter second, found by bisection when the times do not
    go down (almost always), so a batch costs a few steps rather than one per record."""
    if start > 0:
        times, steps = times[start:], steps[start:]
    if times != sorted(times):
        for t, step in zip(times, steps, strict=True):
            worker.rate_point(t, step)
        return
    index, end = 0, len(times)
    while index < end:
        slot = times[index] // _RATE_SLOT_S
        index = bisect.bisect_left(times, (slot + 1) * _RATE_SLOT_S, index, end)
        worker.rate_point(times[index - 1], steps[index - 1])
