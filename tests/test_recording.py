"""Recordings: the file format, damage, kill -9 of a writer, replay and export."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.helpers import free_endpoint, start_publisher, stop, wait_for, wait_listening
from trainmon.cli import main
from trainmon.recording import ReplaySource, load
from trainmon.state import RunState
from trainmon_client import Monitor
from trainmon_client.framing import (
    FileFormatError,
    FrameWriter,
    ReadReport,
    read_frames,
)
from trainmon_client.protocol import Record, encode


def _write(path: Path, payloads: list[bytes]) -> None:
    with FrameWriter(path) as writer:
        for payload in payloads:
            writer.write(payload)


PAYLOADS = [f"payload-{i}".encode() * (i + 1) for i in range(20)]
FRAME_HEAD = 14  # marker, length, payload CRC, header CRC


def test_frames_round_trip(tmp_path: Path) -> None:
    """What is written is read back, in order, and the report says intact."""
    path = tmp_path / "a.tmr"
    _write(path, PAYLOADS[:10])
    _write(path, PAYLOADS[10:])  # appending to an existing recording
    report = ReadReport()
    assert list(read_frames(path, report)) == PAYLOADS
    assert (report.frames, report.damaged, report.truncated_tail) == (20, 0, False)


def test_truncated_tail_at_every_cut(tmp_path: Path) -> None:
    """A file cut anywhere in its last frame keeps every earlier frame."""
    path = tmp_path / "a.tmr"
    _write(path, PAYLOADS[:5])
    whole = path.read_bytes()
    last_start = len(whole) - (FRAME_HEAD + len(PAYLOADS[4]))
    for cut in range(last_start + 1, len(whole)):
        path.write_bytes(whole[:cut])
        report = ReadReport()
        assert list(read_frames(path, report)) == PAYLOADS[:4], cut
        assert report.truncated_tail and report.damaged == 0, cut


@pytest.mark.parametrize("where", ["payload", "length", "marker", "crc"])
def test_flipped_bytes_skip_one_frame(tmp_path: Path, where: str) -> None:
    """Damage in the middle costs that frame only; the reader says so."""
    path = tmp_path / "a.tmr"
    _write(path, PAYLOADS[:6])
    data = bytearray(path.read_bytes())
    frame3 = 16 + sum(FRAME_HEAD + len(p) for p in PAYLOADS[:3])
    offset = {"marker": 0, "length": 3, "crc": 7, "payload": 12}[where]
    data[frame3 + offset] ^= 0xFF
    path.write_bytes(bytes(data))
    report = ReadReport()
    assert list(read_frames(path, report)) == PAYLOADS[:3] + PAYLOADS[4:6]
    assert report.damaged == 1 and not report.truncated_tail


@pytest.mark.parametrize("content", [b"", b"hello world\n", b"TRAINMON-REC\x09\x00\x00\x00"])
def test_not_a_recording(tmp_path: Path, content: bytes) -> None:
    """Empty files, other files and unknown format versions are refused."""
    path = tmp_path / "x.tmr"
    path.write_bytes(content)
    with pytest.raises(FileFormatError):
        list(read_frames(path, ReadReport()))


def test_client_recording_survives_kill_9(tmp_path: Path) -> None:
    """A writer killed with SIGKILL loses at most its last flush interval; the file reads."""
    path = tmp_path / "run.tmr"
    code = (
        "import sys, time\n"
        "from trainmon_client import Monitor\n"
        f"m = Monitor({free_endpoint()!r}, run='k', record_to={str(path)!r})\n"
        "step = 0\n"
        "while True:\n"
        "    m.log(loss=1.0, step=step)\n"
        "    if step % 100 == 0: print(step, flush=True)\n"
        "    step += 1\n"
        "    time.sleep(0.001)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        printed = 0
        deadline = time.monotonic() + 30
        while printed < 2500 and time.monotonic() < deadline:
            printed = int(proc.stdout.readline())
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        stop(proc)
    loaded = load([path])
    steps = [r.step for r in loaded.records if r.kind == "metrics"]
    assert loaded.damaged == 0 and steps == list(range(len(steps)))
    # flushed every second: what is lost is at most about a second of logging
    rate = printed / 3.0  # conservatively slow: at least this many steps per second
    assert max(steps) >= printed - 2 * max(rate, 1000), (max(steps), printed)


def test_watch_record_then_replay_and_kill_9(tmp_path: Path) -> None:
    """watch --record writes what it receives; killed with -9, its file still replays."""
    endpoint = free_endpoint()
    path = tmp_path / "watch.tmr"
    watch = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trainmon",
            "watch",
            "--bind",
            endpoint,
            "--plain",
            "--record",
            str(path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    pub = None
    try:
        wait_listening(endpoint)
        pub = start_publisher(endpoint, count=100_000, delay_s=0.0005)
        wait_for(
            lambda: path.exists() and path.stat().st_size > 20_000,
            timeout_s=20,
            what="the recording to grow",
        )
        os.kill(watch.pid, signal.SIGKILL)
        watch.wait(timeout=10)
    finally:
        stop(watch)
        if pub is not None:
            stop(pub)
    result = CliRunner().invoke(main, ["replay", "--plain", str(path)])
    assert result.exit_code == 0, result.output
    assert "run r:" in result.output and "frames" in result.output
    assert "damaged" not in result.output


def test_replay_of_damaged_file_says_what_it_skipped(tmp_path: Path) -> None:
    """Replay reads every intact frame of a damaged file and counts the rest."""
    path = tmp_path / "d.tmr"
    records = [Record("hello", "r", "w", 0, 1.0, info={"host": "h"})] + [
        Record("metrics", "r", "w", i, 1.0 + i, step=i - 1, metrics={"loss": 1.0 / i})
        for i in range(1, 31)
    ]
    _write(path, [encode([r])[1] for r in records])
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data[:-3]))
    result = CliRunner().invoke(main, ["replay", "--plain", str(path)])
    assert result.exit_code == 0
    assert "1 damaged skipped" in result.output and "last frame cut off" in result.output
    assert "records received 29" in result.output and "missed 1" in result.output


def test_replay_refuses_other_files(tmp_path: Path) -> None:
    """A file that is not a recording is a one-line error, exit 1."""
    path = tmp_path / "notes.txt"
    path.write_text("not a recording\n")
    result = CliRunner().invoke(main, ["replay", str(path)])
    assert result.exit_code == 1
    assert result.output == f"Error: {path} is not a trainmon recording (no TRAINMON-REC header)\n"


def test_replay_clock_speed_and_pause() -> None:
    """Replay applies records when their time comes at the chosen speed; pause stops it."""
    records = [
        Record("metrics", "r", "w", i, 100.0 + i, step=i, metrics={"x": 1.0}) for i in range(10)
    ]
    wall = [0.0]
    source = ReplaySource(records, speed=2.0, wall=lambda: wall[0])
    state = RunState()
    source.drain(state, 0)
    assert state.records == 1  # the first record's time is the start
    wall[0] = 2.0  # two seconds at 2x: four more seconds of recording
    source.drain(state, 0)
    assert state.records == 5
    source.set_paused(True)
    wall[0] = 10.0
    source.drain(state, 0)
    assert state.records == 5 and source.clock() == 104.0
    source.set_paused(False)
    wall[0] = 100.0
    source.drain(state, 0)
    assert state.records == 10 and source.finished


def test_finished_replay_waits_idle_instead_of_spinning() -> None:
    """Once every record is played, a drain waits its whole budget and counts it as idle:
    the loop neither spins nor takes itself for busy (which would slow its frames)."""
    records = [Record("metrics", "r", "w", 1, 100.0, step=1, metrics={"x": 1.0})]
    source = ReplaySource(records, instant=True)
    state = RunState()
    source.drain(state, 0)
    assert source.finished
    before, started = source.idle_s, time.monotonic()
    assert source.drain(state, 0.05) == 0
    assert time.monotonic() - started >= 0.045
    assert source.idle_s - before == pytest.approx(0.05)


def test_default_speed_plays_in_about_ten_seconds() -> None:
    """Without --speed a long recording plays in about 10 s, a short one in real time."""
    long_run = [Record("bye", "r", "w", i, t) for i, t in enumerate((0.0, 3600.0))]
    assert ReplaySource(long_run).speed == 360.0
    assert ReplaySource(long_run[:1]).speed == 1.0


def test_several_files_show_several_workers(tmp_path: Path) -> None:
    """Two clients' recordings replay together as two workers."""
    endpoint = free_endpoint()
    paths = []
    for rank in range(2):
        path = tmp_path / f"rank{rank}.tmr"
        with Monitor(endpoint, run="multi", record_to=path, flush_timeout_s=0.2) as mon:
            for step in range(20):
                mon.log(loss=float(step + rank))
        paths.append(str(path))
    result = CliRunner().invoke(main, ["replay", "--plain", *paths])
    assert result.exit_code == 0
    assert "run multi: finished, 2 workers" in result.output


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    path = tmp_path / "e.tmr"
    with Monitor(free_endpoint(), run="exp", record_to=path, flush_timeout_s=0.2) as mon:
        for step in range(50):
            mon.log(loss=1.0 / (step + 1), accuracy=step / 50, epoch=step // 10)
        mon.log(loss=float("nan"))
    return path


def test_export_csv(recording: Path) -> None:
    """csv: one row per metric value with run, worker, step, epoch and time."""
    result = CliRunner().invoke(main, ["export", str(recording), "--format", "csv"])
    assert result.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert len(rows) == 101
    assert rows[0]["run"] == "exp" and rows[0]["metric"] == "loss" and rows[0]["step"] == "0"
    assert float(rows[-1]["value"]) != float(rows[-1]["value"])  # NaN survives as nan
    assert {row["epoch"] for row in rows} == {"0", "1", "2", "3", "4"}


def test_export_jsonl(recording: Path, tmp_path: Path) -> None:
    """jsonl: one parseable object per record, written to -o."""
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(
        main, ["export", str(recording), "--format", "jsonl", "-o", str(out)]
    )
    assert result.exit_code == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 51 and lines[10]["metrics"]["accuracy"] == 10 / 50


@pytest.mark.parametrize("fmt", ["svg", "html"])
def test_export_pictures(recording: Path, tmp_path: Path, fmt: str) -> None:
    """svg and html: a picture of the final dashboard, well-formed."""
    out = tmp_path / f"out.{fmt}"
    result = CliRunner().invoke(main, ["export", str(recording), "--format", fmt, "-o", str(out)])
    assert result.exit_code == 0
    text = out.read_text()
    if fmt == "svg":
        ET.fromstring(text)  # well-formed XML
        assert "Epoch" in text and "finished" in text
    else:
        assert text.lstrip().lower().startswith("<!doctype html>") and "finished" in text


def test_recorder_flushes_without_further_messages(tmp_path: Path) -> None:
    """What watch --record received reaches the file within about a second, even if
    nothing else arrives (so a kill -9 then loses at most that second)."""
    from trainmon.recording import Recorder

    path = tmp_path / "w.tmr"
    recorder = Recorder(path)
    try:
        recorder.write(encode([Record("bye", "r", "w", 1, 1.0)])[1])
        wait_for(lambda: path.stat().st_size > 16, timeout_s=5, what="the flush")
    finally:
        recorder.close()
