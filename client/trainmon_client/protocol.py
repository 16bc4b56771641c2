"""The wire protocol shared by the publisher and the monitor (version 1).

A ZeroMQ message is two frames, ``[topic, payload]``. The topic is the run name, so a
monitor can subscribe to one run by prefix. The payload is msgpack: one record (a map)
or a list of records (a batch). Every record is a map with short keys:

====  ==========================================================  =================
key   meaning                                                     kinds
====  ==========================================================  =================
v     protocol version (1)                                        all
k     kind: ``hello``, ``metrics``, ``alert``, ``heartbeat``,    all
      ``bye``
r     run name (equals the topic)                                 all
w     worker id, unique per publishing process                    all
s     per-worker sequence number                                  all
t     wall time, seconds since the epoch                          all
st    step (int or nil)                                           metrics
ep    epoch, counted from 0 like ``range()`` (int or nil)         metrics
ef    the epoch where it is not a whole number (2.5), with ``ep``  metrics
      its whole part: a monitor that knows ``ef`` shows it
m     map of metric name to number (NaN and +-Inf allowed)        metrics
a     alert from the training script: title, text                 alert
i     identity: host, pid, rank, world, local_rank, epochs,       hello
      steps, config; ``from``: the first sequence number the
      client still holds (older records are not re-sent);
      ``epochs_f``: total epochs where not whole (``epochs`` is
      then rounded up); ``port`` and ``local_world``: the port a
      binding rank listens on and how many local ranks bind
      consecutive ports from ``port - local_rank``; ``parent``:
      the worker id of the process this one was forked from
c     client counters: logged, dropped, queued, unrecorded        heartbeat, bye
====  ==========================================================  =================

A fifth kind, ``cols``, carries consecutive ``metrics`` records of one worker that log
the same metric names, column by column, so a batch costs one map instead of one per
record: ``s`` is the first record's sequence number (the others follow on by one),
``t``, ``st`` and ``ep`` are lists with one entry per record, and ``m`` maps each metric
name to its list of values. The publisher sends metrics this way; a monitor accepts
both forms, and :meth:`Columns.records` turns a ``cols`` item back into records.

``hello``, ``metrics``, ``alert`` and ``bye`` records take sequence numbers 0, 1, 2, ... so the
monitor can count what it missed. A ``heartbeat`` carries the last sequence number the
worker has used without taking one, which also reveals records lost at the tail. A
worker sends ``hello`` again (with the next sequence number) when what it says changes:
totals or config set after the start.

How the protocol grows (the rule both sides keep, so any client works with any monitor):

- New information goes in new keys or new kinds; an existing key never changes its
  meaning or its type (a fractional epoch is ``ef`` beside the whole ``ep``).
- A monitor ignores keys it does not know.
- A monitor counts and skips records of kinds it does not know: it never rejects their
  batch, and their sequence numbers still count as received (so no gap is reported).
  Such a record needs the keys every record has (v, k, r, w, s, t); :func:`decode`
  gives it as a :class:`Record` whose ``kind`` is the unknown name.
- ``v`` changes only for a change an older monitor must not misread; a monitor rejects
  versions it does not know.

``decode`` is strict and bounded: it checks sizes before unpacking, limits every
container, checks each field's type, and raises :class:`ProtocolError` for anything
it does not accept.
"""

from __future__ import annotations

import bisect
import itertools
import math
import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final, NamedTuple, TypeGuard

import msgpack

__all__ = [
    "Columns",
    "KINDS",
    "MAX_BATCH",
    "MAX_METRICS",
    "MAX_NAME_CHARS",
    "MAX_PAYLOAD_BYTES",
    "MAX_STEP",
    "PROTOCOL_VERSION",
    "ProtocolError",
    "Record",
    "clean_text",
    "columns_wire",
    "cut_columns",
    "decode",
    "decode_items",
    "decode_payload",
    "decode_payload_items",
    "encode",
    "escape_text",
    "pack_payload",
    "to_wire",
    "valid_name",
]

PROTOCOL_VERSION: Final = 1
KINDS: Final = frozenset({"hello", "metrics", "heartbeat", "bye", "alert"})
MAX_ALERT_TITLE: Final = 200
MAX_ALERT_TEXT: Final = 2000

MAX_PAYLOAD_BYTES: Final = 1024 * 1024  # a batch of 512 records of 200 metrics fits
MAX_BATCH: Final = 4096
MAX_METRICS: Final = 256
MAX_NAME_CHARS: Final = 128
MAX_TOPIC_BYTES: Final = 256
MAX_STEP: Final = 2**53
_MAX_SEQ: Final = 2**63
_MAX_STR: Final = 64 * 1024
_MAX_MAP: Final = 1024
_INFO_KEYS: Final = (
    "host",
    "pid",
    "rank",
    "world",
    "local_rank",
    "epochs",
    "steps",
    "from",
    "port",
    "local_world",
)
_COUNTER_KEYS: Final = ("logged", "dropped", "queued")
_NEWER_COUNTER_KEYS: Final = ("unrecorded",)  # given only where the client sent them


class ProtocolError(ValueError):
    """A message that is not a valid trainmon v1 message."""


_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})


class Record(NamedTuple):
    """One decoded record; see the module docstring for the meaning of each field.

    A NamedTuple rather than a frozen dataclass: just as immutable, and several times
    cheaper to build, which matters at hundreds of thousands of records a second.
    """

    kind: str
    run: str
    worker: str
    seq: int
    time: float
    step: int | None = None
    epoch: int | float | None = None  # a float only where not whole (wire key ``ef``)
    metrics: Mapping[str, float] = _EMPTY
    info: Mapping[str, Any] = _EMPTY
    counters: Mapping[str, int] = _EMPTY


class Columns(NamedTuple):
    """Consecutive metrics records of one worker, as columns (wire kind ``cols``).

    Record ``i`` has sequence number ``seq + i``, time ``times[i]``, step ``steps[i]``,
    epoch ``epochs[i]`` and the value ``column[i]`` of each ``metrics`` column.
    """

    run: str
    worker: str
    seq: int
    times: list[float]
    steps: list[int | None]
    epochs: list[int | float | None]  # floats only where not whole (wire key ``ef``)
    metrics: dict[str, list[float]]
    ordered: bool = False  # every step is an int and they do not go down (checked)
    finite: bool = False  # every metric value is a finite number (checked)

    @property
    def size(self) -> int:
        """How many records the columns hold."""
        return len(self.times)

    def records(self) -> list[Record]:
        """The same records, one by one (every metric value a float)."""
        names = list(self.metrics)
        rows = zip(*self.metrics.values(), strict=True) if names else itertools.repeat(())
        return [
            Record(
                "metrics",
                self.run,
                self.worker,
                self.seq + i,
                self.times[i],
                step=self.steps[i],
                epoch=self.epochs[i],
                metrics=dict(zip(names, map(float, row), strict=True)),
            )
            for i, row in zip(range(len(self.times)), rows, strict=False)
        ]


def columns_wire(
    run: str,
    worker: str,
    seq: int,
    times: Sequence[float],
    steps: Sequence[int | None],
    epochs: Sequence[int | float | None],
    metrics: Mapping[str, Sequence[float]],
) -> dict[str, Any]:
    """The msgpack-ready ``cols`` map for consecutive metrics records of one worker.

    A fractional epoch goes out as its whole part in ``ep`` and itself in ``ef``.
    """
    wire = {
        "v": PROTOCOL_VERSION,
        "k": "cols",
        "r": run,
        "w": worker,
        "s": seq,
        "t": times,
        "st": steps,
        "ep": epochs,
        "m": metrics,
    }
    if float in set(map(type, epochs)):
        wire["ep"], wire["ef"] = _split_epochs(epochs)
    return wire


def cut_columns(item: dict[str, Any], start: int, end: int) -> dict[str, Any]:
    """Records ``start`` to ``end`` of a ``cols`` map, as a ``cols`` map."""
    part = dict(item, s=item["s"] + start, m={k: v[start:end] for k, v in item["m"].items()})
    for key in ("t", "st", "ep", "ef"):
        if key in item:
            part[key] = item[key][start:end]
    return part


def _split_epochs(
    epochs: Sequence[int | float | None],
) -> tuple[list[int | None], list[float | None]]:
    """Whole parts for ``ep`` and the fractional epochs for ``ef`` (nil where whole)."""
    whole: list[int | None] = []
    exact: list[float | None] = []
    for epoch in epochs:
        if type(epoch) is float:
            whole.append(int(epoch))
            exact.append(epoch)
        else:
            whole.append(epoch)  # type: ignore[arg-type]
            exact.append(None)
    return whole, exact


def to_wire(record: Record) -> dict[str, Any]:
    """The msgpack-ready map for ``record``, with only the keys its kind uses."""
    wire: dict[str, Any] = {
        "v": PROTOCOL_VERSION,
        "k": record.kind,
        "r": record.run,
        "w": record.worker,
        "s": record.seq,
        "t": record.time,
    }
    if record.kind == "metrics":
        wire["st"] = record.step
        wire["ep"] = record.epoch
        if type(record.epoch) is float:
            wire["ep"], wire["ef"] = int(record.epoch), record.epoch
        wire["m"] = dict(record.metrics)
    elif record.kind == "hello":
        wire["i"] = dict(record.info)
    elif record.kind == "alert":
        wire["a"] = dict(record.info)
    elif record.counters:
        wire["c"] = dict(record.counters)
    return wire


def pack_payload(wire: Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> bytes:
    """Pack one wire map or a list of them; floats stay 64-bit so NaN/Inf survive."""
    return msgpack.packb(wire, use_bin_type=True)  # type: ignore[no-any-return]


def encode(records: Sequence[Record]) -> list[bytes]:
    """The two frames ``[topic, payload]`` that carry ``records`` (all of one run)."""
    if not records:
        raise ProtocolError("nothing to encode")
    run = records[0].run
    if any(r.run != run for r in records):
        raise ProtocolError("a message carries records of one run only")
    return [run.encode(), pack_payload([to_wire(r) for r in records])]


def decode(frames: Sequence[bytes]) -> list[Record]:
    """The records in one ZeroMQ message, or :class:`ProtocolError`."""
    return _expand(decode_items(frames))


def decode_items(frames: Sequence[bytes]) -> list[Record | Columns]:
    """Like :func:`decode`, but ``cols`` items stay :class:`Columns` (the fast path)."""
    if len(frames) != 2:
        raise ProtocolError(f"expected 2 frames [topic, payload], got {len(frames)}")
    topic_bytes, payload = frames
    if len(topic_bytes) > MAX_TOPIC_BYTES:
        raise ProtocolError(f"topic longer than {MAX_TOPIC_BYTES} bytes")
    try:
        topic = bytes(topic_bytes).decode()
    except UnicodeDecodeError as exc:
        raise ProtocolError("topic is not UTF-8") from exc
    items = decode_payload_items(payload)
    for item in items:
        if item.run != topic:
            raise ProtocolError(f"record of run {item.run!r} under topic {topic!r}")
    return items


def decode_payload(payload: bytes) -> list[Record]:
    """The records in one payload (a message's second frame, or a recorded frame)."""
    return _expand(decode_payload_items(payload))


def _expand(items: list[Record | Columns]) -> list[Record]:
    if all(type(item) is Record for item in items):
        return items  # type: ignore[return-value]
    records: list[Record] = []
    for item in items:
        if type(item) is Columns:
            records.extend(item.records())
        else:
            records.append(item)  # type: ignore[arg-type]
    return records


def decode_payload_items(payload: bytes) -> list[Record | Columns]:
    """Like :func:`decode_payload`, but ``cols`` items stay :class:`Columns`."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ProtocolError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    try:
        raw = msgpack.unpackb(
            payload,
            raw=False,
            strict_map_key=True,
            max_str_len=_MAX_STR,
            max_bin_len=0,
            max_array_len=MAX_BATCH,
            max_map_len=_MAX_MAP,
            max_ext_len=0,
        )
    except Exception as exc:  # msgpack raises ValueError, ExtraData, StackError, ...
        raise ProtocolError(f"undecodable payload: {type(exc).__name__}: {exc}") from exc
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise ProtocolError("empty batch")
    return [_record(item) for item in items]


def _record(item: object) -> Record | Columns:
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
    if type(seq) is not int or not 0 <= seq < _MAX_SEQ:
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
    if type(seq) is not int or not 0 <= seq <= _MAX_SEQ - count:
        raise ProtocolError(f"bad sequence number {seq!r}")
    kinds = set(map(type, times))  # one column: the strict look is cheap enough
    if kinds != {float}:
        if not kinds <= {float, int}:
            raise ProtocolError("cols: every time must be a number")
        times = [float(t) for t in times]
    if not math.isfinite(sum(times)):
        raise ProtocolError("bad time: not finite")
    steps, ordered = _counter_column(item.get("st"), count, "step")
    epochs: list[int | float | None]
    epochs, _ = _counter_column(item.get("ep"), count, "epoch")  # type: ignore[assignment]
    if "ef" in item:
        exact = item["ef"]
        if type(exact) is not list or len(exact) != count:
            raise ProtocolError(f"cols: ef needs a list of {count} entries")
        epochs = [_exact_epoch(e, whole) for e, whole in zip(exact, epochs, strict=True)]
    columns = item.get("m")
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
    return Columns(run, worker, seq, times, steps, epochs, metrics, ordered, finite)


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


# What a name may not hold, and what free text has turned into spaces: control
# characters (C0, DEL, C1: an escape sequence would reach the watcher's terminal), line
# and paragraph separators, bidirectional overrides and isolates (they reorder what is
# shown), and lone surrogates (not UTF-8 at all).
_UNSAFE_CHARS: Final = "\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff"
_UNSAFE: Final = re.compile(f"[{_UNSAFE_CHARS}]")


def valid_name(value: object) -> TypeGuard[str]:
    """Whether ``value`` can name a run, worker, host or metric: a string of 1 to
    MAX_NAME_CHARS characters, none of them unsafe on a terminal (see _UNSAFE_CHARS).
    Other characters are fine, in any language and emoji (joiners included), even ones
    this Python's Unicode tables do not know yet."""
    return (
        type(value) is str
        and 0 < len(value) <= MAX_NAME_CHARS
        and (value.isprintable() or _UNSAFE.search(value) is None)
    )


def escape_text(text: str) -> str:
    """``text`` with every unsafe character (see _UNSAFE_CHARS) written as its escape
    (``\\x1b``, ``\\u202e``): a file name shown as it is, without acting on a terminal."""
    if text.isprintable():
        return text
    return _UNSAFE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def clean_text(text: str) -> str:
    """``text`` with every unsafe character (see _UNSAFE_CHARS) turned into a space."""
    return text if text.isprintable() else _UNSAFE.sub(" ", text)


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
    for key in _INFO_KEYS[1:]:
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
    return info


def _counters(value: object) -> dict[str, int]:
    if not isinstance(value, dict):
        raise ProtocolError("heartbeat counters must be a map")
    out: dict[str, int] = {}
    for key in _COUNTER_KEYS + tuple(k for k in _NEWER_COUNTER_KEYS if k in value):
        number = value.get(key, 0)
        if type(number) is not int or not 0 <= number < _MAX_SEQ:
            raise ProtocolError(f"heartbeat {key} must be a non-negative integer")
        out[key] = number
    return out
