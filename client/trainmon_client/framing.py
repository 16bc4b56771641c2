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
FORMAT_VERSION: Final = 2
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
        if self._file.tell() == 0:
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
