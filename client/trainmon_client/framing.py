"""The recording file format, shared by ``watch --record`` and ``Monitor(record_to=...)``.

A file is a 16-byte header, then frames appended one after another::

    header  b"TRAINMON-REC" + format version (u16 LE) + 2 reserved bytes
    frame   b"TM" + payload length (u32 LE) + CRC32 of the payload (u32 LE)
            + CRC32 of the 10 bytes before it (u32 LE; format 2 only) + payload

A payload is exactly what travels on the wire: msgpack of one record or a batch. Frames
are only ever appended, so a writer killed mid-write leaves at most one partial frame at
the end; a reader checks every length and CRC, skips damaged frames by searching for
the next frame marker, and reports what it skipped.

Format 2 (written since) adds the header's own CRC, so a reader looking for the next
frame after damage rejects a false marker by its 14 header bytes instead of reading and
summing the megabyte its length may promise: a file of crafted markers costs a scan, not
a scan per marker. Format 1 files are still read (and appended to in format 1). The
reader streams the file in bounded memory, whatever its size.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Final

from trainmon_client.protocol import MAX_PAYLOAD_BYTES

__all__ = [
    "BackgroundWriter",
    "FORMAT_VERSION",
    "FRAME_RECORDS",
    "FRAME_VALUES",
    "FileFormatError",
    "FrameWriter",
    "MAGIC",
    "ReadReport",
    "read_frames",
    "tail_frames",
]

MAGIC: Final = b"TRAINMON-REC"
FORMAT_VERSION: Final = 2
# A frame holds at most FRAME_RECORDS records and about FRAME_VALUES values, so damage to
# one costs a few records (the client writes frames this size; the monitor cuts to it).
FRAME_RECORDS: Final = 64
FRAME_VALUES: Final = 512
_HEADER: Final = struct.Struct("<12sHxx")
_FRAME_V1: Final = struct.Struct("<2sII")  # marker, length, payload CRC
_FRAME_V2: Final = struct.Struct("<2sIII")  # the same, then the CRC of those 10 bytes
_FRAMES: Final = {1: _FRAME_V1, 2: _FRAME_V2}
_SYNC: Final = b"TM"
_CHUNK: Final = 4 * 1024 * 1024  # bytes read at a time


class FileFormatError(Exception):
    """The file is not a trainmon recording (or of a format version this reader lacks)."""


@dataclass(slots=True)
class ReadReport:
    """What reading one file met: good frames, damaged ones skipped, a cut-off end."""

    frames: int = 0
    damaged: int = 0
    skipped_bytes: int = 0
    truncated_tail: bool = False


class FrameWriter:
    """Appends frames to a recording; buffered, flushed by :meth:`flush` and on close."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._file: BinaryIO = open(self.path, "ab")  # noqa: SIM115 -- closed in close()
        if not self._file.seekable() or self._file.tell() == 0:  # (a pipe is read as new)
            self._file.write(_HEADER.pack(MAGIC, FORMAT_VERSION))
            self.version = FORMAT_VERSION
        else:
            with open(self.path, "rb") as file:
                self.version = _read_header(file, self.path)  # appends in the file's format
        self.frames = 0

    def write(self, payload: bytes) -> None:
        self._file.write(frame_bytes(payload, self.version))
        self.frames += 1

    def flush(self) -> None:
        """Hand buffered frames to the OS, where a crash of this process cannot lose them."""
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def __enter__(self) -> FrameWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class BackgroundWriter:
    """Appends frames to a recording from a thread of its own, so that a disk that is
    full, slow or hung never holds up whoever hands it payloads.

    :meth:`put` queues a payload and returns at once; the thread opens the file (a
    file on a hung network file system may block even there), writes what is queued
    every ``interval_s`` (sooner past ``wake_bytes``) with unbuffered writes, so what
    it counts as written has reached the OS. At most ``max_bytes`` of payloads wait:
    what does not fit is not recorded, and counted. The first error (a full disk, no
    such directory) stops the recording: ``on_stop`` is called once with one line
    saying why, and from then on what is put is counted as not recorded.

    ``records`` given with each payload is what is counted: :attr:`unrecorded`, the
    records that will not be written, is exact for everything put, except that a write
    still blocked when :meth:`close` gives up counts as not written.

    ``opener``, when given, is called on the thread instead of opening ``path``: it
    returns the file's path and a descriptor open to append to (a run kept by default
    chooses its folder there); until then ``path`` is what lines say.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        on_stop: Callable[[str], None],
        *,
        opener: Callable[[], tuple[str, int]] | None = None,
        max_bytes: int = 16 * 1024 * 1024,
        interval_s: float = 1.0,
        wake_bytes: int = 1024 * 1024,
        split: Callable[[bytes], list[bytes]] | None = None,
    ) -> None:
        self.path = os.fspath(path)
        self.unrecorded = 0  # records that will not be written
        self.recorded = 0  # records written
        self.frames = 0
        self.stopped: str | None = None  # why recording stopped, once it has
        self.opened = False
        self._on_stop = on_stop
        self._opener = opener
        self._split = split  # a payload as the payloads of several frames (on this thread)
        self._max_bytes = max_bytes
        self._interval_s = interval_s
        self._wake_bytes = wake_bytes
        self._pending: deque[tuple[bytes, int]] = deque()  # (payload, records)
        self._pending_bytes = 0
        self._writing = 0  # records in the write under way
        self._closing = False
        self._overflowed = False
        self._abandoned = False  # given up at close: late writes change no count
        self._lock = threading.Condition(threading.Lock())
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="trainmon-record", daemon=True)
        self._thread.start()

    def put(self, payload: bytes, records: int) -> None:
        """Queue ``payload`` (holding ``records`` records) to be written; never blocks
        on the file."""
        say = False
        with self._lock:
            if self.stopped is not None or self._closing:
                self.unrecorded += records
            elif self._pending_bytes + len(payload) > self._max_bytes:
                self.unrecorded += records
                say, self._overflowed = not self._overflowed, True
            else:
                self._pending.append((payload, records))
                self._pending_bytes += len(payload)
                if self._pending_bytes >= self._wake_bytes:
                    self._wake.set()
        if say:  # once: the writes are not keeping up (or blocked)
            self._on_stop(
                f"recording to {self.path} is not keeping up (its writes are slow or "
                "blocked): records that do not fit its queue are not recorded, and counted"
            )

    def put_all(self, payloads: Iterable[tuple[bytes, int]]) -> None:
        """:meth:`put` each ``(payload, records)``."""
        for payload, records in payloads:
            self.put(payload, records)

    def abandon(self) -> None:
        """Write nothing more: what is queued or being written counts as not recorded
        (at close, when the writes do not end in time)."""
        with self._lock:
            said = self.stopped is not None or self._overflowed
            self._give_up("its writes did not end in time")
            count = self.unrecorded
        if not said:
            self._on_stop(
                f"recording to {self.path} stopped: its writes did not end in time "
                f"({count:,} records not recorded)"
            )

    def settle(self, until: float) -> bool:
        """Write what is queued now and wait for it, until ``until`` at most (on the
        ``time.monotonic()`` clock); whether all put so far is written or counted."""
        self._wake.set()
        with self._lock:
            while self._pending or self._writing:
                left = until - time.monotonic()
                if left <= 0:
                    break
                self._lock.wait(min(left, 0.05))
            return not (self._pending or self._writing)

    def close(self, until: float) -> None:
        """Write what is queued and close, waiting until ``until`` at most; what is not
        written by then is counted as not recorded (a thread still blocked in a write
        is left to end with the process)."""
        with self._lock:
            self._closing = True
        self._wake.set()
        left = until - time.monotonic()
        self._thread.join(None if left == math.inf else max(left, 0.0))
        with self._lock:
            if self._thread.is_alive():
                self._give_up("closed before its writes ended")

    def _give_up(self, why: str) -> None:
        """(The lock held.) Nothing more will be written: count what is left."""
        self.unrecorded += self._writing + sum(records for _, records in self._pending)
        self._writing = 0
        self._pending.clear()
        self._pending_bytes = 0
        self._abandoned = True
        if self.stopped is None:
            self.stopped = why
        self._lock.notify_all()

    def _run(self) -> None:
        file: BinaryIO | None = None
        try:
            file, version = self._open()
            while True:
                self._wake.wait(self._interval_s)
                self._wake.clear()
                with self._lock:
                    batch = list(self._pending)
                    self._pending.clear()
                    self._pending_bytes = 0
                    self._writing = sum(records for _, records in batch)
                    closing = self._closing
                if batch:
                    self._write(file, version, batch)
                with self._lock:
                    self._lock.notify_all()
                    if closing and not self._pending:
                        return
        except Exception as exc:  # a full disk, no such directory, a broken pipe
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            with self._lock:
                gave_up = self._abandoned
                self._give_up(why)
            if not gave_up:
                self._on_stop(f"cannot record to {self.path}: {why}; recording stopped")
        finally:
            if file is not None:
                with contextlib.suppress(OSError):
                    file.close()

    def _open(self) -> tuple[BinaryIO, int]:
        """The file, unbuffered, and its format (the header written if it is new)."""
        if self._opener is not None:
            self.path, fd = self._opener()
            file: BinaryIO = open(fd, "ab", buffering=0)  # noqa: SIM115 -- closed in _run()
        else:
            file = open(self.path, "ab", buffering=0)  # noqa: SIM115 -- closed in _run()
        try:
            if not file.seekable() or file.tell() == 0:  # (a pipe is read as new)
                _write_all(file, _HEADER.pack(MAGIC, FORMAT_VERSION))
                version = FORMAT_VERSION
            else:
                with open(self.path, "rb") as head:
                    version = _read_header(head, self.path)
        except BaseException:
            file.close()
            raise
        self.opened = True
        return file, version

    def _write(self, file: BinaryIO, version: int, batch: list[tuple[bytes, int]]) -> None:
        """Write ``batch`` as frames, counting the records of each frame
        as it is written: a write that blocks (or fails) leaves only its own frame's
        records unknown (counted as not recorded when given up)."""
        for payload, records in batch:
            for part in self._split(payload) if self._split else (payload,):
                _write_all(file, frame_bytes(part, version))
            with self._lock:
                if not self._abandoned:
                    self.recorded += records
                    self.frames += 1
                    self._writing -= records


def _write_all(file: BinaryIO, data: bytes) -> None:
    """Write all of ``data`` to an unbuffered file (which may take several writes)."""
    view = memoryview(data)
    written = 0
    while written < len(data):
        count = file.write(view[written:])
        if not count:  # (only a non-blocking file says None; this one blocks)
            raise OSError(f"nothing written ({written:,} of {len(data):,} bytes)")
        written += count


def frame_bytes(payload: bytes, version: int = FORMAT_VERSION) -> bytes:
    """One frame holding ``payload``, in format ``version``."""
    head = _FRAME_V1.pack(_SYNC, len(payload), zlib.crc32(payload))
    if version >= 2:
        head += zlib.crc32(head).to_bytes(4, "little")
    return head + payload


def _read_header(file: BinaryIO, path: str) -> int:
    """The file's format version, read from its header; FileFormatError if it has none."""
    head = file.read(_HEADER.size)
    if len(head) < _HEADER.size or not head.startswith(MAGIC):
        raise FileFormatError(f"{path} is not a trainmon recording (no {MAGIC.decode()} header)")
    version: int = _HEADER.unpack(head)[1]
    if version not in _FRAMES:
        raise FileFormatError(
            f"{path} is recording format {version}; this reads formats 1 to {FORMAT_VERSION}"
        )
    return version


def read_frames(path: str | os.PathLike[str], report: ReadReport) -> Iterator[bytes]:
    """Every intact payload in the file, in order; ``report`` counts what was skipped.

    Reads the file a chunk at a time: memory stays within a few MiB however large it is.
    """
    path = os.fspath(path)
    with open(path, "rb") as file:
        reader = _Reader(file, _FRAMES[_read_header(file, path)])
        yield from reader.frames(report)


def tail_frames(path: str | os.PathLike[str], limit: int = 1024 * 1024) -> Iterator[bytes]:
    """The intact payloads in the last ``limit`` bytes of the file, in order (a frame cut
    by the start of that window is skipped): the end of a run, read at a bounded cost."""
    path = os.fspath(path)
    with open(path, "rb") as file:
        frame = _FRAMES[_read_header(file, path)]
        size = os.fstat(file.fileno()).st_size
        file.seek(max(_HEADER.size, size - limit))
        tail = io.BytesIO(file.read(limit))
    yield from _Reader(tail, frame).frames(ReadReport())


class _Reader:
    """A window over the file: ``data[pos:]`` is what is read and not yet used."""

    def __init__(self, file: BinaryIO, frame: struct.Struct) -> None:
        self.file = file
        self.frame = frame
        self.data = b""
        self.pos = 0
        self.eof = False

    def fill(self, need: int) -> bool:
        """Read until ``need`` bytes from ``pos`` are held (or the file ends)."""
        while len(self.data) - self.pos < need and not self.eof:
            chunk = self.file.read(max(_CHUNK, need))
            if not chunk:
                self.eof = True
                break
            self.data = self.data[self.pos :] + chunk  # what was used is let go
            self.pos = 0
        return len(self.data) - self.pos >= need

    def frames(self, report: ReadReport) -> Iterator[bytes]:
        size = self.frame.size
        while self.fill(1):
            payload = self.frame_here()
            if payload is not None:
                report.frames += 1
                yield payload
                self.pos += size + len(payload)
                continue
            cut = self.cut_here()
            report.skipped_bytes += self.skip_to_frame()
            if self.fill(1):
                report.damaged += 1
            elif cut:  # nothing intact follows a frame the writer did not finish
                report.truncated_tail = True
            else:
                report.damaged += 1

    def header(self) -> int | None:
        """The payload length a plausible frame header at ``pos`` gives, else None
        (format 2 checks the header's CRC here; format 1 has none to check)."""
        fields = self.frame.unpack_from(self.data, self.pos)
        if fields[0] != _SYNC or fields[1] > MAX_PAYLOAD_BYTES:
            return None
        if len(fields) == 4 and zlib.crc32(self.data[self.pos : self.pos + 10]) != fields[3]:
            return None
        length: int = fields[1]
        return length

    def frame_here(self) -> bytes | None:
        """The payload of an intact frame at ``pos``, else None."""
        size = self.frame.size
        if not self.fill(size):
            return None
        length = self.header()
        if length is None or not self.fill(size + length):
            return None
        start = self.pos + size
        payload = self.data[start : start + length]
        crc = self.frame.unpack_from(self.data, self.pos)[2]
        return payload if zlib.crc32(payload) == crc else None

    def cut_here(self) -> bool:
        """Whether ``pos`` starts a frame the file ends inside of (a header cut short, or
        one promising more bytes than there are)."""
        size = self.frame.size
        if not self.fill(size):
            return self.data.startswith(_SYNC[: len(self.data) - self.pos], self.pos)
        length = self.header()
        return length is not None and not self.fill(size + length)

    def skip_to_frame(self) -> int:
        """Move ``pos`` past damage to the next intact frame (or the end of the file),
        letting go of what it passes; how many bytes it passed over."""
        skipped = 1
        self.pos += 1
        while True:
            found = self.data.find(_SYNC, self.pos)
            if found == -1:
                keep = 1 if len(self.data) > self.pos else 0  # a marker may straddle chunks
                skipped += len(self.data) - keep - self.pos
                self.pos = len(self.data) - keep
                if not self.fill(keep + 1):
                    skipped += len(self.data) - self.pos
                    self.pos = len(self.data)
                    return skipped
                continue
            skipped += found - self.pos
            self.pos = found
            if self.frame_here() is not None:
                return skipped
            self.pos += 1
            skipped += 1
