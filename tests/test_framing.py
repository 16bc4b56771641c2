"""The recording format's reader: format 1 still read, crafted markers cost a scan,
huge files stream in bounded memory."""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest

from trainmon_client import framing
from trainmon_client.framing import FrameWriter, ReadReport, frame_bytes, read_frames

PAYLOADS = [f"p{i}".encode() * (i + 1) for i in range(8)]


def _v1_file(path: Path, payloads: list[bytes]) -> None:
    head = struct.pack("<12sHxx", b"TRAINMON-REC", 1)
    path.write_bytes(head + b"".join(frame_bytes(p, version=1) for p in payloads))


def test_format_1_files_are_read_and_appended_in_format_1(tmp_path: Path) -> None:
    """A recording made before format 2 reads whole, and appending keeps its format."""
    path = tmp_path / "old.tmr"
    _v1_file(path, PAYLOADS[:4])
    with FrameWriter(path) as writer:
        assert writer.version == 1
        for payload in PAYLOADS[4:]:
            writer.write(payload)
    report = ReadReport()
    assert list(read_frames(path, report)) == PAYLOADS
    assert (report.frames, report.damaged) == (8, 0)


def test_new_files_are_format_2(tmp_path: Path) -> None:
    """A new recording's header says format 2 and each frame carries its header CRC."""
    path = tmp_path / "new.tmr"
    with FrameWriter(path) as writer:
        writer.write(b"abc")
    data = path.read_bytes()
    assert struct.unpack_from("<H", data, 12)[0] == 2
    assert struct.unpack_from("<I", data, 16 + 10)[0] == zlib.crc32(data[16:26])


class _CountingZlib:
    """Stands in for zlib in the reader and counts the bytes it checksums."""

    def __init__(self) -> None:
        self.bytes = 0

    def crc32(self, data: Any) -> int:
        self.bytes += len(data)
        return zlib.crc32(data)


def test_crafted_markers_cost_a_scan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file of fake frame markers, each promising a megabyte, is checksummed about
    once over, not once per marker (format 1 read it in quadratic time)."""
    path = tmp_path / "crafted.tmr"
    fake = struct.pack("<2sII", b"TM", 1024 * 1024 - 1, 0)  # no header CRC: not a frame
    body = (fake + b"x" * 6) * 100_000  # 1.6 MB of markers
    path.write_bytes(struct.pack("<12sHxx", b"TRAINMON-REC", 2) + body + frame_bytes(b"real"))
    counting = _CountingZlib()
    monkeypatch.setattr(framing, "zlib", counting)
    report = ReadReport()
    assert list(read_frames(path, report)) == [b"real"]
    assert report.damaged == 1 and report.skipped_bytes == len(body)
    assert counting.bytes < 2 * len(body), counting.bytes


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc for the peak")
def test_huge_sparse_file_streams_in_bounded_memory(tmp_path: Path) -> None:
    """Frames on both sides of a 1 GiB hole are read, with the reader's peak memory
    well under the file's size (it used to read the whole file at once)."""
    path = tmp_path / "sparse.tmr"
    with FrameWriter(path) as writer:
        writer.write(b"before")
    with open(path, "r+b") as file:
        file.truncate(1024**3)
    with open(path, "ab") as file:
        file.write(frame_bytes(b"after"))
    code = (  # VmHWM: this process's own peak (ru_maxrss keeps the parent's across exec)
        "import re, sys\n"
        "from trainmon_client.framing import ReadReport, read_frames\n"
        "report = ReadReport()\n"
        "got = list(read_frames(sys.argv[1], report))\n"
        "status = open('/proc/self/status').read()\n"
        "peak_mb = int(re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1)) // 1024\n"
        "print(got, report.damaged, report.skipped_bytes, peak_mb)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    got, damaged, skipped, peak_mb = done.stdout.rsplit(" ", 3)
    assert got == "[b'before', b'after']" and damaged == "1"
    assert int(skipped) > 1024**3 - 100
    assert int(peak_mb) < 200, peak_mb
