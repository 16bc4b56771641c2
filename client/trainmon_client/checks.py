"""The checks :func:`protocol.decode` makes of each item of a batch: every field's type
and range, containers bounded, a ``cols`` item column by column; :class:`ProtocolError`
for anything it does not accept."""

from __future__ import annotations

import bisect
import math
from typing import Any, Final

from trainmon_client.records import (
    COUNTER_KEYS,
    INFO_KEYS,
    KINDS,
    MAX_ALERT_TEXT,
    MAX_ALERT_TITLE,
    MAX_METRICS,
    MAX_SEQ,
    MAX_STEP,
    NEWER_COUNTER_KEYS,
    PROTOCOL_VERSION,
    Columns,
    ProtocolError,
    Record,
)
from trainmon_client.text import MAX_NAME_CHARS, clean_text, valid_name

__all__ = ["checked_item"]


def checked_item(item: object) -> Record | Columns:
    if not isinstance(item, dict):
        raise ProtocolError(f"a record is a map, not {type(item).__name__}")
    version = item.get("v")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(f"unsupported protocol version {version!r}")
    kind = item.get("k")
    if kind == "cols":
        return _columns(item)
    if type(kind) is not str or not (kind in KINDS or valid_name(kind)):
        raise ProtocolError(f"bad record kind {kind!r}")
    run = _name(item.get("r"), "run")
    worker = _name(item.get("w"), "worker")
    seq = item.get("s")
    if type(seq) is not int or not 0 <= seq < MAX_SEQ:
        raise ProtocolError(f"bad sequence number {seq!r}")
    wall = item.get("t")
    if not isinstance(wall, (int, float)) or isinstance(wall, bool) or not math.isfinite(wall):
        raise ProtocolError(f"bad time {wall!r}")
    if kind == "metrics":
        epoch: int | float | None = _counter(item.get("ep"), "epoch")
        if "ef" in item:
            epoch = _exact_epoch(item["ef"], epoch)
        return Record(
            kind,
            run,
            worker,
            seq,
            float(wall),
            step=_counter(item.get("st"), "step"),
            epoch=epoch,
            metrics=_metrics(item.get("m")),
        )
    if kind == "hello":
        return Record(kind, run, worker, seq, float(wall), info=_info(item.get("i")))
    if kind == "alert":
        return Record(kind, run, worker, seq, float(wall), info=_alert(item.get("a")))
    if kind == "heartbeat" or (kind == "bye" and "c" in item):
        return Record(kind, run, worker, seq, float(wall), counters=_counters(item.get("c")))
    return Record(kind, run, worker, seq, float(wall))  # bye, or a kind from a newer client


_COUNTER_TYPES: Final = frozenset({int, type(None)})


def _columns(item: dict[Any, Any]) -> Columns:
    """A ``cols`` item, checked column by column with C-level passes.

    A metric column is checked by summing it (anything but numbers raises TypeError), a
    column of steps or epochs by ``math.gcd`` over it (only ints pass): a few nanoseconds
    a value, where a look at each value's type costs several times that. A column of
    ints becomes floats; ints (or bools) among floats are numbers all the same and stay
    as sent here (the state takes them as they are); :meth:`Columns.records` gives
    floats.
    """
    run = _name(item.get("r"), "run")
    worker = _name(item.get("w"), "worker")
    seq = item.get("s")
    times = item.get("t")
    if type(times) is not list or not times:
        raise ProtocolError("cols: t must be a non-empty list of times")
    count = len(times)
    if type(seq) is not int or not 0 <= seq <= MAX_SEQ - count:
        raise ProtocolError(f"bad sequence number {seq!r}")
    times = _float_times(times)
    if not math.isfinite(sum(times)):
        raise ProtocolError("bad time: not finite")
    steps, ordered = _counter_column(item.get("st"), count, "step")
    epochs = _epoch_column(item, count)
    metrics, finite = _metric_columns(item.get("m"), count)
    return Columns(run, worker, seq, times, steps, epochs, metrics, ordered, finite)


def _float_times(times: list[Any]) -> list[float]:
    """A ``cols`` item's times, every one a number (ints become floats)."""
    kinds = set(map(type, times))  # one column: the strict look is cheap enough
    if kinds != {float}:
        if not kinds <= {float, int}:
            raise ProtocolError("cols: every time must be a number")
        times = [float(t) for t in times]
    return times


def _epoch_column(item: dict[Any, Any], count: int) -> list[int | float | None]:
    """A ``cols`` item's epochs: ``ep``, each replaced by ``ef`` where that gives one."""
    epochs: list[int | float | None]
    epochs, _ = _counter_column(item.get("ep"), count, "epoch")  # type: ignore[assignment]
    if "ef" in item:
        exact = item["ef"]
        if type(exact) is not list or len(exact) != count:
            raise ProtocolError(f"cols: ef needs a list of {count} entries")
        epochs = [_exact_epoch(e, whole) for e, whole in zip(exact, epochs, strict=True)]
    return epochs


def _metric_columns(columns: object, count: int) -> tuple[dict[str, list[float]], bool]:
    """A ``cols`` item's metric columns, and whether every value is finite."""
    if type(columns) is not dict:
        raise ProtocolError("metrics must be a map")
    if len(columns) > MAX_METRICS:
        raise ProtocolError(f"more than {MAX_METRICS} metrics in one record")
    metrics: dict[str, list[float]] = {}
    finite = True
    for name, column in columns.items():
        _name(name, "metric name")
        if type(column) is not list or len(column) != count:
            raise ProtocolError(f"cols: metric {name!r} needs a list of {count} values")
        total = _sum(column, f"metric {name!r} has a value that is not a number")
        if type(total) is not float:
            column = [float(value) for value in column]
            total = sum(column)
        finite = finite and -math.inf < total < math.inf  # NaN is not
        metrics[name] = column
    return metrics, finite


def _sum(column: list[Any], problem: str) -> float:
    """The sum of a column of numbers; ProtocolError saying ``problem`` if it holds
    anything else."""
    try:
        total: float = sum(column)
    except TypeError:
        raise ProtocolError(problem) from None
    return total


def _counter_column(value: object, count: int, what: str) -> tuple[list[int | None], bool]:
    """A column of steps or epochs, and whether they are all ints that do not go down."""
    if type(value) is not list or len(value) != count:
        raise ProtocolError(f"cols: {what} needs a list of {count} entries")
    problem = f"{what} must be an integer from 0 to 2**53 or nil"
    if value[0] is None and value.count(None) == count:  # none given (epochs, often)
        return value, False
    try:
        math.gcd(*value)  # raises TypeError unless every entry is an int (or a bool)
    except TypeError:  # nil among them, or worse: look at each
        kinds = set(map(type, value))
        if not kinds <= _COUNTER_TYPES:
            raise ProtocolError(problem) from None
        numbers = [n for n in value if n is not None]
        if numbers and (min(numbers) < 0 or max(numbers) > MAX_STEP):
            raise ProtocolError(problem) from None
        return value, False
    ordered = value == sorted(value)
    if ordered:  # only a leading 0 or 1 could be a bool
        low, high, small = value[0], value[-1], value[: bisect.bisect_right(value, 1)]
    else:
        low, high, small = min(value), max(value), value
    if low < 0 or high > MAX_STEP or bool in set(map(type, small)):
        raise ProtocolError(problem)
    return value, ordered


def _name(value: object, what: str) -> str:
    if not valid_name(value):
        raise ProtocolError(
            f"{what} must be a string of 1 to {MAX_NAME_CHARS} characters, "
            "without control characters"
        )
    return value


def _counter(value: object, what: str) -> int | None:
    if value is None:
        return None
    if type(value) is not int or not 0 <= value <= MAX_STEP:
        raise ProtocolError(f"{what} must be an integer from 0 to 2**53, not {value!r}")
    return value


def _exact_epoch(value: object, whole: int | float | None) -> int | float | None:
    """The epoch from ``ef`` (nil: the whole ``ep`` stands)."""
    if value is None:
        return whole
    if type(value) is not float or not 0.0 <= value <= MAX_STEP:  # NaN fails too
        raise ProtocolError(f"ef must be a number from 0 to 2**53 or nil, not {value!r}")
    return value


def _metrics(value: object) -> dict[str, float]:
    if not isinstance(value, dict):
        raise ProtocolError("metrics must be a map")
    if len(value) > MAX_METRICS:
        raise ProtocolError(f"more than {MAX_METRICS} metrics in one record")
    out: dict[str, float] = {}
    for name, number in value.items():
        _name(name, "metric name")
        kind = type(number)
        if kind is float:
            out[name] = number
        elif kind is int or kind is bool:
            out[name] = float(number)
        else:
            raise ProtocolError(f"metric {name!r} is {kind.__name__}, not a number")
    return out


def _alert(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ProtocolError("an alert must be a map with a title")
    title, text = value.get("title"), value.get("text", "")
    if not isinstance(title, str) or not 0 < len(title) <= MAX_ALERT_TITLE:
        raise ProtocolError(f"alert title must be a string of 1 to {MAX_ALERT_TITLE} characters")
    if not isinstance(text, str) or len(text) > MAX_ALERT_TEXT:
        raise ProtocolError(f"alert text must be a string of at most {MAX_ALERT_TEXT} characters")
    return {"title": clean_text(title), "text": clean_text(text)}


def _info(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ProtocolError("hello identity must be a map")
    info: dict[str, Any] = {}
    for key in ("host", "parent"):
        name = value.get(key)
        if name is not None:
            info[key] = _name(name, key)
    for key in INFO_KEYS[1:]:
        number = value.get(key)
        if number is not None:
            if type(number) is not int or not 0 <= number <= MAX_STEP:
                raise ProtocolError(f"hello {key} must be a non-negative integer")
            info[key] = number
    exact = value.get("epochs_f")
    if exact is not None:
        if type(exact) is not float or not 0.0 < exact <= MAX_STEP:
            raise ProtocolError("hello epochs_f must be a positive number")
        info["epochs_f"] = exact
    config = value.get("config")
    if config is not None:
        if not isinstance(config, dict):
            raise ProtocolError("hello config must be a map")
        info["config"] = config
    if "summary" in value:
        info["summary"] = _summary(value["summary"])
    return info


def _summary(value: object) -> dict[str, float]:
    """A hello's summary (``Monitor.set_summary``): metric names to numbers."""
    if not isinstance(value, dict) or len(value) > MAX_METRICS:
        raise ProtocolError(f"hello summary must be a map of at most {MAX_METRICS} numbers")
    for name, number in value.items():
        if not valid_name(name) or type(number) not in (int, float):
            raise ProtocolError("hello summary must map metric names to numbers")
    return {name: float(number) for name, number in value.items()}


def _counters(value: object) -> dict[str, int]:
    if not isinstance(value, dict):
        raise ProtocolError("heartbeat counters must be a map")
    out: dict[str, int] = {}
    for key in COUNTER_KEYS + tuple(k for k in NEWER_COUNTER_KEYS if k in value):
        number = value.get(key, 0)
        if type(number) is not int or not 0 <= number < MAX_SEQ:
            raise ProtocolError(f"heartbeat {key} must be a non-negative integer")
        out[key] = number
    return out
