"""A run's summary: numbers known once, at the end of a run or of an evaluation (a
framework's runtime, FLOPs, samples per second), that the monitor prints in its exit
summary and never charts. ``Monitor.set_summary()`` checks them here; they travel in
the hello's info as ``summary``, a map of names to numbers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from trainmon_client.records import MAX_METRICS
from trainmon_client.text import valid_name

__all__ = ["MAX_SUMMARY", "merged_summary"]

MAX_SUMMARY: Final = MAX_METRICS  # names a summary holds at most (as a record's metrics)


def merged_summary(current: Mapping[str, float], values: Any) -> dict[str, float]:
    """``current`` with ``values`` added or changed, every value a float; TypeError for
    what is not a mapping of names to numbers, ValueError for a name that cannot name a
    metric or a summary of more than MAX_SUMMARY names."""
    if not isinstance(values, Mapping):
        raise TypeError(f"a summary is a mapping of names to numbers, not {type(values).__name__}")
    merged = dict(current)
    for name, value in values.items():
        if not valid_name(name):
            raise ValueError(f"summary name {name!r} cannot name a metric")
        if isinstance(value, (str, bytes)) or not hasattr(value, "__float__"):
            raise TypeError(f"summary value of {name!r} must be a number, not {value!r}")
        merged[name] = float(value)
    if len(merged) > MAX_SUMMARY:
        raise ValueError(f"a summary holds at most {MAX_SUMMARY} names, not {len(merged)}")
    return merged
