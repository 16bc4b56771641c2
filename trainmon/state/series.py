"""One metric of one worker over time: recent points in full, older ones in buckets.

``Series`` keeps the recent window at full resolution; ``Downsampled`` folds what leaves
it into at most a few hundred ``Bucket``s (extremes, last value, count, and a mark for
NaN or an infinity), which the view reads as ``BucketColumns``.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Final, NamedTuple

from trainmon.names import mark_of
from trainmon.state.limits import MAX_BUCKETS

__all__ = [
    "Bucket",
    "BucketColumns",
    "Downsampled",
    "Series",
]


@dataclass(slots=True)
class Bucket:
    """Several consecutive points folded into their extremes, last value and count."""

    first_step: int
    last_step: int
    low: float  # finite minimum, NaN when the bucket holds no finite value
    high: float
    last: float
    count: int
    mark: str = ""  # names.mark_of of a value not finite it held (see _MARK_RANK)

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
            mark = mark_of(value)
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

    max_buckets: int = MAX_BUCKETS
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
    _columns: BucketColumns | None = None  # columns(), kept until the next fold

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
        self._columns = None
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
        self._columns = None

    def in_order(self) -> list[Bucket]:
        self.fold()
        return [self.buckets[i] for i in sorted(self.buckets)]

    def columns(self) -> BucketColumns:
        """The buckets as columns, kept until the next fold (every frame draws them;
        they change a thousand points at a time)."""
        self.fold()
        if self._columns is None:
            buckets = self.in_order()
            self._columns = BucketColumns(
                [b.last_step for b in buckets],
                [b.last for b in buckets],
                [b.low for b in buckets],
                [b.high for b in buckets],
                [b.mark for b in buckets],
            )
        return self._columns


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
