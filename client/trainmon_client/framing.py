"""The recording file format, shared by ``watch --record`` and ``Monitor(record_to=...)``.

A file is a 16-byte header, then frames appended one after another::

    header  b"TRAINMON-REC" + format version (u16 LE) + 2 reserved bytes
    frame   b"TM" + payload length (u32 LE) + CRC32 of the payload (u32 LE) + payload

A payload is exactly what travels on the wire: msgpack of one record or a batch. Frames
are only ever appended, so a writer killed mid-write leaves at most one partial frame at
the end; a reader checks every length and CRC, skips damaged frames by searching for
the next frame marker, and reports what it skipped.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Final

from trainmon_client.protocol import MAX_PAYLOAD_BYTES

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "FileFormatError",
    "FrameWriter",
    "ReadReport",
    "read_frames",
]

MAGIC: Final = b"TRAINMON-REC"
FORMAT_VERSION: Final = 1
_HEADER: Final = struct.Struct("<12sHxx")
_FRAME: Final = struct.Struct("<2sII")
_SYNC: Final = b"TM"


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
        if self._file.tell() == 0:
            self._file.write(_HEADER.pack(MAGIC, FORMAT_VERSION))
        else:
            _check_header(self.path)
        self.frames = 0

    def write(self, payload: bytes) -> None:
        self._file.write(_FRAME.pack(_SYNC, len(payload), zlib.crc32(payload)) + payload)
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


def _check_header(path: str) -> None:
    with open(path, "rb") as file:
        head = file.read(_HEADER.size)
    if len(head) < _HEADER.size or not head.startswith(MAGIC):
        raise FileFormatError(f"{path} is not a trainmon recording (no {MAGIC.decode()} header)")
    version = _HEADER.unpack(head)[1]
    if version != FORMAT_VERSION:
        raise FileFormatError(f"{path} is recording format {version}; this reads {FORMAT_VERSION}")


def read_frames(path: str | os.PathLike[str], report: ReadReport) -> Iterator[bytes]:
    """Every intact payload in the file, in order; ``report`` counts what was skipped."""
    path = os.fspath(path)
    _check_header(path)
    with open(path, "rb") as file:
        data = file.read()
    pos, end = _HEADER.size, len(data)
    while pos < end:
        payload = _frame_at(data, pos)
        if payload is not None:
            report.frames += 1
            yield payload
            pos += _FRAME.size + len(payload)
            continue
        following = _next_frame(data, pos + 1)
        if following is None:
            # Nothing intact follows. A frame header that promises more bytes than the
            # file holds (or a header cut short) is the writer stopped mid-frame.
            cut = end - pos < _FRAME.size or (
                data[pos : pos + 2] == _SYNC
                and pos + _FRAME.size + _FRAME.unpack_from(data, pos)[1] > end
            )
            if cut:
                report.truncated_tail = True
            else:
                report.damaged += 1
            report.skipped_bytes += end - pos
            return
        report.damaged += 1
        report.skipped_bytes += following - pos
        pos = following


def _frame_at(data: bytes, pos: int) -> bytes | None:
    """The payload of an intact frame starting at ``pos``, else None."""
    if len(data) - pos < _FRAME.size:
        return None
    sync, length, crc = _FRAME.unpack_from(data, pos)
    start = pos + _FRAME.size
    if sync != _SYNC or length > MAX_PAYLOAD_BYTES or start + length > len(data):
        return None
    payload = data[start : start + length]
    return payload if zlib.crc32(payload) == crc else None


def _next_frame(data: bytes, pos: int) -> int | None:
    """Where the next intact frame at or after ``pos`` starts, else None."""
    while (found := data.find(_SYNC, pos)) != -1:
        if _frame_at(data, found) is not None:
            return found
        pos = found + 1
    return None
