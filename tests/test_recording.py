"""Recordings: the file format, damage, kill -9 of a writer, replay and export."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import pty
import re
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.helpers import free_endpoint, start_publisher, stop, wait_for, wait_listening
from trainmon.cli import main
from trainmon.sources.recording import ReplaySource, load
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
    from trainmon.sources.recording import Recorder

    path = tmp_path / "w.tmr"
    recorder = Recorder(path)
    try:
        recorder.write(encode([Record("bye", "r", "w", 1, 1.0)])[1])
        wait_for(lambda: path.stat().st_size > 16, timeout_s=5, what="the flush")
    finally:
        recorder.close()


def _two_runs(tmp_path: Path) -> list[str]:
    """Recordings of two runs, a and b, by the real client."""
    paths = []
    for run in ("a", "b"):
        path = tmp_path / f"{run}.tmr"
        with Monitor(free_endpoint(), run=run, record_to=path, flush_timeout_s=0.2) as mon:
            for step in range(10):
                mon.log(loss=1.0 / (step + 1))
        paths.append(str(path))
    return paths


@pytest.mark.parametrize(
    "args",
    [["export", "--format", "jsonl"], ["export", "--format", "csv"], ["replay", "--plain"]],
)
def test_replay_and_export_keep_to_the_run_asked_for(tmp_path: Path, args: list[str]) -> None:
    """--run keeps one run's records; a run the files do not hold is a usage error that
    lists the runs they do hold, without a traceback."""
    paths = _two_runs(tmp_path)
    result = CliRunner().invoke(main, [*args, *paths, "--run", "b"])
    assert result.exit_code == 0, result.output
    if args[0] == "replay":
        assert "run b:" in result.output and "run a:" not in result.output
    elif args[-1] == "jsonl":
        runs = [json.loads(line)["run"] for line in result.output.splitlines()]
        assert runs == ["b"] * 10
    else:
        assert [row["run"] for row in csv.DictReader(io.StringIO(result.output))] == ["b"] * 10
    result = CliRunner().invoke(main, [*args, *paths, "--run", "c"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "Invalid value for '--run': no run 'c' in " in result.output
    assert "its runs: a, b" in result.output


def test_tail_and_the_jsonl_export_print_the_same_lines(tmp_path: Path) -> None:
    """One run, watched by tail and recorded by the client: the export of the recording
    is tail's output line for line (set_epoch's marks, a NaN and an alert included)."""
    endpoint = free_endpoint()
    path = tmp_path / "run.tmr"
    code = (
        "from trainmon_client import Monitor\n"
        f"with Monitor({endpoint!r}, run='same', record_to={str(path)!r}, total_epochs=3) as m:\n"
        "    for epoch in range(3):\n"
        "        m.set_epoch(epoch)\n"
        "        for i in range(20):\n"
        "            m.log(loss=float('nan') if i == 7 else 1.0 / (i + 1), lr=0.1)\n"
        "        m.alert('epoch done', str(epoch))\n"
    )
    tail = subprocess.Popen(
        [sys.executable, "-m", "trainmon", "tail", "--bind", endpoint, "--exit-when-done"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    pub = None
    try:
        wait_listening(endpoint)
        pub = subprocess.Popen([sys.executable, "-c", code])
        assert pub.wait(timeout=60) == 0
        out, err = tail.communicate(timeout=60)
        assert tail.returncode == 0, err
    finally:
        stop(tail)
        if pub is not None:
            stop(pub)
    result = CliRunner().invoke(main, ["export", str(path), "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    assert len(out.splitlines()) == 60
    assert result.output == out


def test_tail_and_export_agree_on_repeats_and_restarts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A record sent twice is printed once; a process restarted under the same worker id
    (numbering from 0 again, later) is printed whole, by tail and export alike."""
    from trainmon.cli.watch import _JsonLines
    from trainmon.sources.export import write_jsonl

    def life(start: float) -> list[Record]:
        return [Record("hello", "r", "host:1", 0, start, info={"host": "host", "pid": 1})] + [
            Record("metrics", "r", "host:1", i, start + i, step=i, metrics={"loss": 1 / i})
            for i in range(1, 4)
        ]

    first, second = life(100.0), life(200.0)
    records = [*first, first[2], *second, Record("metrics", "r", "host:1", 4, 205.0, step=4)]
    sink = _JsonLines(RunState())
    for record in records:
        sink.apply(record, record.time)
    printed = capsys.readouterr().out
    exported = io.StringIO()
    assert write_jsonl(records, exported) == 6
    assert exported.getvalue() == printed


def _on_a_terminal(args: list[str], until: bytes, timeout_s: float = 30) -> bytes:
    """What ``trainmon ARGS`` writes to a pseudo-terminal until ``until`` appears."""
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    env.update(COLUMNS="120", LINES="40", TERM="xterm-256color")
    proc = subprocess.Popen(
        [sys.executable, "-m", "trainmon", *args], stdin=slave, stdout=slave, stderr=slave, env=env
    )
    os.close(slave)
    chunks: list[bytes] = []

    def read() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        wait_for(lambda: until in b"".join(chunks), timeout_s, 0.05, f"{until!r} on the terminal")
    finally:
        stop(proc)
        reader.join(timeout=2)
        os.close(master)
    return b"".join(chunks)


def test_replay_keeps_theme_and_bell(tmp_path: Path) -> None:
    """replay on a terminal draws with the --theme given and rings the --bell (a NaN is
    an alert): its settings keep every option."""
    path = tmp_path / "nan.tmr"
    records = [Record("hello", "r", "w", 0, 1.0, info={"host": "h"})] + [
        Record(
            "metrics", "r", "w", i, 1.0 + i, step=i, metrics={"loss": 1 / i if i != 5 else math.nan}
        )
        for i in range(1, 11)
    ]
    _write(path, [encode(records)[1]])
    replay = ["replay", str(path), "--instant", "--no-interactive"]
    colour = re.compile(rb"\x1b\[[0-9;]*(3[0-7]|38;[25];[0-9;]+)m")
    dark = _on_a_terminal([*replay, "--bell"], b"NaN/Inf in loss")
    assert colour.search(dark) and b"\x07" in dark
    mono = _on_a_terminal([*replay, "--theme", "mono"], b"NaN/Inf in loss")
    assert not colour.search(mono) and b"\x07" not in mono
