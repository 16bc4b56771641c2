"""The state's shared bounds and times: the ``Limits`` on runs, workers, series and
points, the bucket counts of a series' history, when a silent worker is lost, and the
warm-up and window of its rates.

A leaf of the state package: series, worker, run and runstate read these from here; a
module's own small caps (config items, kept alerts, sequence gaps) stay beside its code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [
    "DONE_GRACE_S",
    "LOST_AFTER_S",
    "Limits",
    "MAX_BUCKETS",
    "MIN_BUCKETS",
    "RATE_WINDOW_S",
    "WARMUP_RECORDS",
]

LOST_AFTER_S: Final = 5.0  # heartbeats come every second; five missed means gone
# Every worker ended for this long (none heard again) before --exit-when-done exits.
DONE_GRACE_S: Final = 2.0
# The first records of a worker (compiling, warming caches, the first batches) are
# slower than the rest: rates and ETAs leave them out.
WARMUP_RECORDS: Final = 3
# Rates are taken over the records of the last 10 s, by the worker's clock (or over the
# last two records, where they are further apart): a slowdown shows within seconds,
# and a pause long ago (validation, a checkpoint) is not averaged in for ever.
RATE_WINDOW_S: Final = 10.0
MAX_BUCKETS: Final = 512  # downsampled history per series, with the full window
MIN_BUCKETS: Final = 64  # and when the budget is shared by the most series


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
