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
      the worker id of the process this one was forked from;
      ``summary``: end-of-run numbers (``Monitor.set_summary``),
      metric names to numbers, for the exit summary, not charts
c     client counters: logged, dropped, queued, unrecorded        heartbeat, bye
====  ==========================================================  =================

A sixth kind, ``cols``, carries consecutive ``metrics`` records of one worker that log
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

This module is the only one that builds the wire's maps (:func:`to_wire`,
:func:`columns_wire`, :func:`cut_columns`). The decoded types and the limits are in
records.py, the checks of each item in checks.py, the rules for names in text.py; all
are importable from here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import msgpack

from trainmon_client.checks import checked_item
from trainmon_client.records import (
    KINDS,
    MAX_ALERT_TEXT,
    MAX_ALERT_TITLE,
    MAX_BATCH,
    MAX_MAP,
    MAX_METRICS,
    MAX_PAYLOAD_BYTES,
    MAX_STEP,
    MAX_STR,
    MAX_TOPIC_BYTES,
    PROTOCOL_VERSION,
    Columns,
    ProtocolError,
    Record,
)
from trainmon_client.text import MAX_NAME_CHARS, clean_text, escape_text, valid_name

__all__ = [
    "Columns",
    "KINDS",
    "MAX_ALERT_TEXT",
    "MAX_ALERT_TITLE",
    "MAX_BATCH",
    "MAX_METRICS",
    "MAX_NAME_CHARS",
    "MAX_PAYLOAD_BYTES",
    "MAX_STEP",
    "MAX_TOPIC_BYTES",
    "PROTOCOL_VERSION",
    "ProtocolError",
    "Record",
    "WIRE_KEYS",
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

# The short keys of the table above: the maps with them are built here and nowhere else.
WIRE_KEYS: Final = frozenset({"v", "k", "r", "w", "s", "t", "st", "ep", "ef", "m", "a", "i", "c"})


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
            max_str_len=MAX_STR,
            max_bin_len=0,
            max_array_len=MAX_BATCH,
            max_map_len=MAX_MAP,
            max_ext_len=0,
        )
    except Exception as exc:  # msgpack raises ValueError, ExtraData, StackError, ...
        raise ProtocolError(f"undecodable payload: {type(exc).__name__}: {exc}") from exc
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise ProtocolError("empty batch")
    return [checked_item(item) for item in items]
