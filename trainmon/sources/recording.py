"""Recording what the monitor receives, and reading recordings back as a record source."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial

import msgpack

from trainmon.escape import escaped
from trainmon.sources import RecordSink
from trainmon_client import store
from trainmon_client.framing import (
    FRAME_RECORDS,
    FRAME_VALUES,
    BackgroundWriter,
    FileFormatError,
    FrameWriter,
    ReadReport,
    read_frames,
)
from trainmon_client.protocol import (
    Columns,
    ProtocolError,
    Record,
    columns_wire,
    decode_payload,
    decode_payload_items,
    pack_payload,
)

__all__ = [
    "FileFormatError",
    "KeptRecorder",
    "Loaded",
    "Recorder",
    "ReplaySource",
    "load",
]

FLUSH_INTERVAL_S = 1.0
# A payload (or an item) this small is recorded as it is: 64 records take more (a
# record of a cols item takes 10 bytes at least, its time and step).
_WHOLE_BYTES = 640
CLOSE_TIMEOUT_S = 2.0  # the longest close() waits for writes to end (a hung disk)
MAX_KEPT_RUNS = 100  # runs a monitor keeps at once; the records of more are counted


class Recorder:
    """Appends received payloads to a recording, written about once a second from a
    thread of its own (see :class:`BackgroundWriter`): a slow or hung disk never holds
    up the screen, a crash loses at most the last second, and the file stays readable.

    A file that cannot be opened, or is no recording, raises OSError or
    FileFormatError here. A write that fails later (a full disk) stops the recording:
    ``on_stop`` is called once with a line saying why, and :attr:`stopped` keeps it.
    """

    def __init__(
        self, path: str | os.PathLike[str], on_stop: Callable[[str], None] | None = None
    ) -> None:
        with FrameWriter(path):  # what is wrong from the start is said at the start
            pass
        self.path = os.fspath(path)
        self.stopped: str | None = None
        self._on_stop = on_stop
        self._writer = BackgroundWriter(
            os.path.abspath(path), self._stopped, interval_s=FLUSH_INTERVAL_S, split=frame_parts
        )

    def _stopped(self, line: str) -> None:
        self.stopped = self.stopped or line
        if self._on_stop is not None:
            self._on_stop(line)

    def write(self, payload: bytes, run: str = "") -> None:
        """Queue a received payload (of run ``run``: all go to the one file)."""
        self._writer.put(payload, 1)

    @property
    def frames(self) -> int:
        return self._writer.frames

    @property
    def unrecorded(self) -> int:
        """Messages received and not recorded."""
        return self._writer.unrecorded

    def close(self) -> None:
        self._writer.close(time.monotonic() + CLOSE_TIMEOUT_S)


class KeptRecorder:
    """Keeps what the monitor receives as runs are kept (see :mod:`trainmon_client.store`),
    for ``watch --record`` without a file: per run name, the folder a publisher on this
    machine would choose, and in it a recording ``monitor-<host>_<pid>.tmr``. Each run's
    recording is chosen, opened and written on a thread of its own (a
    :class:`BackgroundWriter`), so a slow, full or hung disk never holds up the screen;
    what stops a recording is said once to ``on_stop``, as :class:`Recorder` does.
    """

    def __init__(self, on_stop: Callable[[str], None] | None = None, root: str | None = None):
        self.root = store.runs_dir() if root is None else root
        self.stopped: str | None = None
        self._on_stop = on_stop
        self._writers: dict[str, BackgroundWriter] = {}
        self._refused = 0  # payloads of runs past MAX_KEPT_RUNS
        self._worker = f"monitor-{socket.gethostname()}_{os.getpid()}"

    def _stopped(self, line: str) -> None:
        self.stopped = self.stopped or line
        if self._on_stop is not None:
            self._on_stop(line)

    def write(self, payload: bytes, run: str = "") -> None:
        """Queue a received payload of run ``run`` to its run's recording."""
        writer = self._writers.get(run)
        if writer is None:
            if len(self._writers) >= MAX_KEPT_RUNS:
                self._refused += 1
                if self._refused == 1:
                    self._stopped(f"more than {MAX_KEPT_RUNS} runs: the others are not kept")
                return
            writer = BackgroundWriter(
                self.root,
                self._stopped,
                opener=partial(self._open, run),
                interval_s=FLUSH_INTERVAL_S,
                split=frame_parts,
            )
            self._writers[run] = writer
        writer.put(payload, 1)

    def _open(self, run: str) -> tuple[str, int]:
        """(On the writer's thread.) The run's folder, chosen, and its recording, open."""
        folder, _ = store.choose_folder(run, root=self.root)
        path = store.worker_file(folder, self._worker)
        return path, store.open_worker_file(path)

    @property
    def frames(self) -> int:
        return sum(writer.frames for writer in self._writers.values())

    @property
    def unrecorded(self) -> int:
        """Messages received and not recorded."""
        return self._refused + sum(writer.unrecorded for writer in self._writers.values())

    def kept(self) -> list[str]:
        """The run folders written to, in the order their runs came."""
        return [os.path.dirname(writer.path) for writer in self._writers.values() if writer.opened]

    def close(self) -> None:
        """Write what is queued and close every recording, waiting CLOSE_TIMEOUT_S at
        most in all."""
        until = time.monotonic() + CLOSE_TIMEOUT_S
        for writer in self._writers.values():
            writer.close(until)


def frame_parts(payload: bytes) -> list[bytes]:
    """A received payload as the payloads of small frames: a large batch item by item
    (its bytes as they are), and a ``cols`` item of many records cut in parts of at
    most FRAME_RECORDS records and about FRAME_VALUES values, so that damage to one
    frame of a recording costs a few records. What it does not take apart stays whole.
    """
    if len(payload) <= _WHOLE_BYTES:
        return [payload]
    parts: list[bytes] = []
    for item in _items(payload):
        parts += [item] if len(item) <= _WHOLE_BYTES else _cut_columns(item)
    return parts


def _items(payload: bytes) -> list[bytes]:
    """The packed items of a packed array, each as its own bytes; else the payload."""
    unpacker = msgpack.Unpacker()
    unpacker.feed(payload)
    try:
        count = unpacker.read_array_header()
        items = []
        start = unpacker.tell()
        for _ in range(count):
            unpacker.skip()
            end = unpacker.tell()
            items.append(payload[start:end])
            start = end
    except (ValueError, msgpack.OutOfData):  # a single record (a map), or not msgpack
        return [payload]
    return items


def _cut_columns(item: bytes) -> list[bytes]:
    """A packed ``cols`` item of many records as several; anything else as it is."""
    try:
        (columns,) = decode_payload_items(item)
    except (ProtocolError, ValueError):
        return [item]
    if not isinstance(columns, Columns):
        return [item]
    step = max(1, min(FRAME_RECORDS, FRAME_VALUES // max(len(columns.metrics), 1)))
    if columns.size <= step:
        return [item]
    return [
        pack_payload(
            columns_wire(
                columns.run,
                columns.worker,
                columns.seq + start,
                columns.times[start : start + step],
                columns.steps[start : start + step],
                columns.epochs[start : start + step],
                {name: values[start : start + step] for name, values in columns.metrics.items()},
            )
        )
        for start in range(0, columns.size, step)
    ]


@dataclass(slots=True)
class Loaded:
    """The records of one or more recordings, in time order, and what reading met."""

    records: list[Record] = field(default_factory=list)
    reports: dict[str, ReadReport] = field(default_factory=dict)
    undecodable: int = 0

    @property
    def damaged(self) -> int:
        return sum(r.damaged for r in self.reports.values())

    def describe(self) -> str:
        """One line per file: frames read, damaged frames skipped, a cut-off end."""
        lines = []
        for path, report in self.reports.items():
            parts = [f"{report.frames} frames"]
            if report.damaged:
                parts.append(f"{report.damaged} damaged skipped ({report.skipped_bytes} bytes)")
            if report.truncated_tail:
                parts.append("last frame cut off (writer stopped mid-write)")
            if not report.damaged and not report.truncated_tail:
                parts.append("intact")
            lines.append(f"{escaped(path)}: {', '.join(parts)}")
        if self.undecodable:
            lines.append(f"{self.undecodable} frames held no valid records")
        return "\n".join(lines)


def load(paths: Sequence[str | os.PathLike[str]]) -> Loaded:
    """Read every intact record of every file, merged in time order. A record that
    several files hold (a run kept by its own process and by a monitor on the same
    machine, in one folder) is taken once.

    Raises :class:`FileFormatError` for a file that is not a recording.
    """
    loaded = Loaded()
    seen: set[tuple[str, str, int, str, float]] | None = set() if len(paths) > 1 else None
    for path in paths:
        report = ReadReport()
        loaded.reports[os.fspath(path)] = report
        before = len(loaded.records)
        for payload in read_frames(path, report):
            try:
                loaded.records.extend(decode_payload(payload))
            except ProtocolError:
                loaded.undecodable += 1
        if seen is not None:
            loaded.records[before:] = _unseen(loaded.records[before:], seen)
    loaded.records.sort(key=lambda r: r.time)  # stable: a worker's order is kept
    return loaded


def _unseen(records: list[Record], seen: set[tuple[str, str, int, str, float]]) -> list[Record]:
    """The records of one file not read from an earlier one (by run, worker, sequence
    number, kind and time); ``seen`` then holds these too."""
    fresh = []
    for record in records:
        key = (record.run, record.worker, record.seq, record.kind, record.time)
        if key not in seen:
            seen.add(key)
            fresh.append(record)
    return fresh


class ReplaySource:
    """Plays recorded records back on a clock of their own, ``speed`` times real time.

    Args:
        records: in time order.
        speed: how much faster than real time; None picks a speed that plays the
            whole recording in about ``target_s`` seconds (never slower than real time).
        instant: apply everything at the first drain.
        ends: nothing comes after the last record (the run is not being written now):
            once played, the workers that did not say bye are lost
            (:meth:`RunState.note_end`), not running for ever.
    """

    def __init__(
        self,
        records: Sequence[Record],
        *,
        speed: float | None = None,
        instant: bool = False,
        target_s: float = 10.0,
        ends: bool = True,
        wall: Callable[[], float] = time.monotonic,
    ) -> None:
        self._records = records
        self._next = 0
        self._idle_s = 0.0
        self._wall = wall
        self.first = records[0].time if records else 0.0
        self.last = records[-1].time if records else 0.0
        duration = self.last - self.first
        self.speed = speed if speed is not None else max(duration / target_s, 1.0)
        self.instant = instant
        self._started = wall()
        self._paused_at: float | None = None
        self._ends = ends

    @property
    def finished(self) -> bool:
        return self._next >= len(self._records)

    @property
    def backlog(self) -> bool:
        return False  # a replay goes at its own pace

    def clock(self) -> float:
        """The replayed time: the recording's own clock, stopped while paused or done."""
        if self.instant or self.finished:
            return self.last
        wall = self._paused_at if self._paused_at is not None else self._wall()
        return min(self.first + (wall - self._started) * self.speed, self.last)

    def set_paused(self, paused: bool) -> None:
        if paused and self._paused_at is None:
            self._paused_at = self._wall()
        elif not paused and self._paused_at is not None:
            self._started += self._wall() - self._paused_at
            self._paused_at = None

    def drain(self, sink: RecordSink, budget_s: float) -> int:
        now = self.clock()
        applied = 0
        records = self._records
        while self._next < len(records) and (self.instant or records[self._next].time <= now):
            sink.apply(records[self._next], records[self._next].time)
            self._next += 1
            applied += 1
        if applied and self._ends and self.finished:
            end = getattr(sink, "note_end", None)  # RunState's (a sink may have none)
            if end is not None:
                end()
        if not applied and budget_s > 0:
            # Nothing due yet: wait a little; nothing more at all: wait the whole budget
            # (the loop is only waiting for keys then: no spinning).
            wait = budget_s if self.finished else min(budget_s, 0.01)
            time.sleep(wait)
            self._idle_s += wait
        return applied

    @property
    def idle_s(self) -> float:
        return self._idle_s

    def close(self) -> None:
        """Nothing to release: the records are in memory."""


def apply_all(records: Iterable[Record], sink: RecordSink) -> None:
    """Feed every record at its own time (the replay of ``--instant``)."""
    for record in records:
        sink.apply(record, record.time)
