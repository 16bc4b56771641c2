"""Bad input at the edges: hostile names in CSV cells and file names, numbers that are
not numbers, outputs that cannot be written, and mistaken arguments."""

from __future__ import annotations

import csv
import io
import math
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import IO

import click
import pytest
from click.testing import CliRunner

from tests.helpers import free_endpoint, start_cli, start_publisher, stop, wait_listening
from trainmon.cli import main
from trainmon.cli.options import Finite as _Finite
from trainmon.escape import escaped, escaped_lines
from trainmon.sources.export import csv_cell
from trainmon_client.framing import FrameWriter
from trainmon_client.protocol import Record, encode
from trainmon_client.security import create_keypair

# What no output may carry: controls (newlines aside), bidi overrides and isolates.
UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# A file name that sets the terminal's title and rings its bell: click strips colour
# sequences from what it prints to a pipe, not this.
HOSTILE = "run\x1b]0;owned\x07\u202e.tmr"
HOSTILE_SHOWN = "run\\x1b]0;owned\\x07\\u202e.tmr"


def _record(path: Path, records: list[Record]) -> Path:
    with FrameWriter(path) as writer:
        for record in records:
            writer.write(encode([record])[1])
    return path


def _metrics(run: str = "r", count: int = 3, **names: float) -> list[Record]:
    values = names or {"loss": 1.0}
    return [
        Record("metrics", run, "w", i + 1, 1000.0 + i, step=i, metrics=values) for i in range(count)
    ]


def _cli(*args: str, stdout: int | IO[str] = subprocess.PIPE) -> subprocess.CompletedProcess[str]:
    """Run the trainmon command to its end (a minute at most)."""
    return subprocess.run(
        [sys.executable, "-m", "trainmon", *args],
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
    )


# --- CSV cells a spreadsheet would run ------------------------------------------------


def test_csv_export_neutralises_formulas(tmp_path: Path) -> None:
    """Names a spreadsheet would take for formulas get a ' in front, text is quoted (a
    spreadsheet splitting at ; keeps a name whole), numbers stay bare numbers."""
    names = {
        '=HYPERLINK("http://evil.example","x")': -1.5,
        "=1+2": 2.0,
        "+cmd": 3.0,
        "@SUM(A1)": 4.0,
        "-loss": -5.0,
        "loss;=1+2": 6.0,
        "loss": 7.0,
    }
    path = _record(tmp_path / "f.tmr", _metrics("=run", 1, **names))
    result = CliRunner().invoke(main, ["export", str(path), "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert {row["run"] for row in rows} == {"'=run"}
    assert [row["metric"] for row in rows] == [
        '\'=HYPERLINK("http://evil.example","x")',
        "'=1+2",
        "'+cmd",
        "'@SUM(A1)",
        "'-loss",
        "loss;=1+2",
        "loss",
    ]
    assert [float(row["value"]) for row in rows] == list(names.values())
    assert ',"loss;=1+2",6.0' in result.output
    assert ',"\'-loss",-5.0' in result.output  # a negative number is written bare


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+2", "'=1+2"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("-x", "'-x"),
        ("-inf", "'-inf"),
        ("-1", "-1"),  # a name that is a number is a number, not a formula
        ("+2.5e3", "+2.5e3"),
        ("-.5", "-.5"),
        ("loss", "loss"),
        (-1.5, -1.5),
        (None, ""),
    ],
)
def test_csv_cell(value: object, cell: object) -> None:
    """Each cell a spreadsheet would run starts with a '; numbers stay."""
    assert csv_cell(value) == cell


# --- file names printed ---------------------------------------------------------------


def test_escaped() -> None:
    """Controls, separators, bidi marks and undecodable bytes are written as escapes;
    other characters, in any language, stay."""
    assert escaped(HOSTILE) == HOSTILE_SHOWN
    assert escaped(os.fsdecode(b"run\xff.tmr")) == "run\\xff.tmr"
    assert escaped("a\nb\u2028c") == "a\\nb\\u2028c"
    assert escaped("données/走る 🚀.tmr") == "données/走る 🚀.tmr"
    assert escaped_lines("a\x1b\nb") == "a\\x1b\nb"


def _assert_safe(text: str) -> None:
    assert not UNSAFE.search(text), repr(text)


def test_replay_and_export_show_file_names_safely(tmp_path: Path) -> None:
    """replay, export and their errors print a hostile file name escaped."""
    path = _record(tmp_path / HOSTILE, _metrics())
    out = tmp_path / ("out" + HOSTILE)
    for args in (
        ["replay", "--plain", str(path)],
        ["replay", "--plain", str(path), "--run", "nope"],
        ["export", str(path), "--format", "jsonl", "-o", str(out)],
        ["export", str(path), "--format", "csv", "-o", str(tmp_path / HOSTILE / "x.csv")],
    ):
        done = _cli(*args)
        _assert_safe(done.stdout + done.stderr)
        assert HOSTILE_SHOWN in done.stdout + done.stderr, args


def test_errors_about_a_recording_show_its_name_safely(tmp_path: Path) -> None:
    """A file that is not a recording, or holds no records, is named escaped."""
    not_one = tmp_path / HOSTILE
    not_one.write_text("hello")
    empty = _record(tmp_path / ("empty" + HOSTILE), [])
    for args in (["replay", "--plain", str(not_one)], ["export", str(empty), "--format", "csv"]):
        done = _cli(*args)
        assert done.returncode == 1 and "Traceback" not in done.stderr
        _assert_safe(done.stderr)
        assert HOSTILE_SHOWN in done.stderr


def test_picture_export_of_a_hostile_file_name_is_well_formed(tmp_path: Path) -> None:
    """The svg's title names the file escaped: still well-formed XML."""
    path = _record(tmp_path / HOSTILE, _metrics())
    out = tmp_path / "out.svg"
    result = CliRunner().invoke(main, ["export", str(path), "--format", "svg", "-o", str(out)])
    assert result.exit_code == 0, result.output
    ET.fromstring(out.read_text())
    assert HOSTILE_SHOWN in out.read_text()


def test_a_file_name_that_is_not_utf8_is_shown_by_its_bytes(tmp_path: Path) -> None:
    """A name with a byte that is not UTF-8 is shown as \\xff: the svg title and the
    replay lines (the picture was a UnicodeEncodeError traceback)."""
    path = _record(tmp_path / os.fsdecode(b"run\xff.tmr"), _metrics())
    out = tmp_path / "out.svg"
    done = _cli("export", str(path), "--format", "svg", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert escaped(str(path)) in out.read_text()
    done = _cli("replay", "--plain", str(path))
    assert done.returncode == 0 and "run\\xff.tmr: 3 frames, intact" in done.stdout


def test_record_and_keygen_show_file_names_safely(tmp_path: Path) -> None:
    """watch --record's error and keygen's lines name the files escaped."""
    not_one = tmp_path / HOSTILE
    not_one.write_text("hello")
    done = _cli("watch", "--plain", "--bind", free_endpoint(), "--record", str(not_one))
    assert done.returncode == 1 and "cannot record to" in done.stderr
    _assert_safe(done.stderr)
    assert HOSTILE_SHOWN in done.stderr
    done = _cli("keygen", str(tmp_path / ("keys" + HOSTILE)))
    assert done.returncode == 0, done.stderr
    _assert_safe(done.stdout)
    assert done.stdout.count(HOSTILE_SHOWN) == 4


def test_watch_record_says_where_it_recorded_safely(tmp_path: Path) -> None:
    """The line after watching names the recording escaped."""
    endpoint = free_endpoint()
    path = tmp_path / HOSTILE
    watch = start_cli(
        "watch", "--plain", "--exit-when-done", "--bind", endpoint, "--record", str(path)
    )
    pub = None
    try:
        wait_listening(endpoint)
        pub = start_publisher(endpoint, count=20)
        out, err = watch.communicate(timeout=60)
        assert watch.returncode == 0, err
        _assert_safe(out + err)
        assert f"recorded to {escaped(str(path))}" in out
    finally:
        stop(watch)
        if pub is not None:
            stop(pub)


# --- numbers that are not numbers -----------------------------------------------------


def _commands() -> dict[str, click.Command]:
    """Every command of ``trainmon``, as the group gives them (imported when asked for)."""
    ctx = click.Context(main)
    found = {name: main.get_command(ctx, name) for name in main.list_commands(ctx)}
    return {name: command for name, command in found.items() if command is not None}


def _float_options() -> list[tuple[str, str]]:
    """Every number option of every command: (command, option)."""
    return [
        (name, param.opts[0])
        for name, command in sorted(_commands().items())
        for param in command.params
        if isinstance(param.type, click.types.FloatParamType)
    ]


def test_every_float_option_is_finite() -> None:
    """Every number option takes the one type that refuses nan and inf."""
    options = _float_options()
    assert ("watch", "--stall-after") in options and ("replay", "--speed") in options
    for name, option in options:
        (param,) = [p for p in _commands()[name].params if p.opts[0] == option]
        assert isinstance(param.type, _Finite), (name, option)


@pytest.mark.parametrize(("command", "option"), _float_options())
@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "Infinity", "1e999", "-1"])
def test_number_options_refuse_what_is_not_a_number(command: str, option: str, value: str) -> None:
    """nan, infinities (1e999 is one) and negative numbers are refused, naming the
    option (parsed only: a command that took them would run)."""
    with pytest.raises(click.BadParameter) as caught:
        _commands()[command].make_context(command, [f"{option}={value}"])
    assert caught.value.param is not None and caught.value.param.opts[0] == option


def test_stall_after_nan_is_a_usage_error() -> None:
    """`watch --stall-after nan` (which would never call a worker stalled) says so."""
    done = _cli("watch", "--plain", "--bind", free_endpoint(), "--stall-after", "nan")
    assert done.returncode == 2
    assert "Error: Invalid value for '--stall-after': 'nan' is not a finite number." in done.stderr


def test_finite_numbers_still_pass() -> None:
    """Numbers in range are taken as they are."""
    assert _Finite(0.5).convert("2.5", None, None) == 2.5
    assert _Finite(0.5).convert(60.0, None, None) == 60.0
    assert math.isclose(_Finite(min=0.01).convert("1e300", None, None), 1e300)


# --- outputs that cannot be written ---------------------------------------------------


@pytest.fixture
def long_recording(tmp_path: Path) -> Path:
    """A recording whose export is bigger than a pipe holds (64 KiB)."""
    return _record(tmp_path / "long.tmr", _metrics(count=3000))


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "svg"])
def test_export_to_a_full_disk_is_one_line(long_recording: Path, fmt: str) -> None:
    """-o /dev/full: a one-line error, exit 1."""
    done = _cli("export", str(long_recording), "--format", fmt, "-o", "/dev/full")
    assert done.returncode == 1
    assert done.stderr == "Error: cannot write /dev/full: No space left on device\n"


@pytest.mark.parametrize(
    "args",
    [
        ["export", "--format", "csv"],
        ["export", "--format", "html", "-o", "-"],
        ["replay", "--plain"],
    ],
)
def test_a_full_standard_output_is_one_line(long_recording: Path, args: list[str]) -> None:
    """> /dev/full: a one-line error, exit 1, for a small output too (it would fail
    only at exit)."""
    for path in (long_recording, _record(long_recording.parent / "short.tmr", _metrics())):
        with open("/dev/full", "w") as full:
            done = _cli(args[0], str(path), *args[1:], stdout=full)
        assert done.returncode == 1
        assert done.stderr == "Error: cannot write to standard output: No space left on device\n"


def test_export_into_a_closed_pipe_ends_quietly(long_recording: Path) -> None:
    """`trainmon export x.tmr | head -1`: no traceback once the reader has gone."""
    export = start_cli("export", str(long_recording), "--format", "csv")
    try:
        assert export.stdout is not None and export.stderr is not None
        assert export.stdout.readline().startswith('"run",')
        export.stdout.close()  # head -1 has what it wanted
        assert export.wait(timeout=60) == 1
        assert export.stderr.read() == ""
    finally:
        stop(export)


def test_tail_into_a_closed_pipe_or_a_full_disk(tmp_path: Path) -> None:
    """`trainmon tail | head -1` ends quietly; `trainmon tail > /dev/full` is one line."""
    endpoint = free_endpoint()
    tail = start_cli("tail", "--bind", endpoint)
    pub = None
    try:
        wait_listening(endpoint)
        pub = start_publisher(endpoint, count=2000, delay_s=0.005)
        assert tail.stdout is not None and tail.stderr is not None
        assert tail.stdout.readline().startswith('{"run": "r"')
        tail.stdout.close()
        assert tail.wait(timeout=60) == 0
        assert "Traceback" not in tail.stderr.read()
    finally:
        stop(tail)
        if pub is not None:
            stop(pub)
    endpoint = free_endpoint()
    with open("/dev/full", "w") as full:
        tail = start_cli("tail", "--bind", endpoint, stdout=full)
    pub = None
    try:
        wait_listening(endpoint)
        pub = start_publisher(endpoint, count=200, delay_s=0.005)
        _, err = tail.communicate(timeout=60)
        assert tail.returncode == 1
        assert err.endswith("Error: cannot write to standard output: No space left on device\n")
        assert "Traceback" not in err
    finally:
        stop(tail)
        if pub is not None:
            stop(pub)


# --- the client's allow directory -----------------------------------------------------


def test_a_missing_allow_directory_is_named_by_the_client(tmp_path: Path) -> None:
    """Monitor(bind=True, curve_allow=a missing folder) says what is wrong with it, not
    "cannot record to None"."""
    _, secret = create_keypair(tmp_path, "server")
    missing = tmp_path / "no-such-dir"
    code = (
        "from trainmon_client import Monitor\n"
        f"m = Monitor({free_endpoint()!r}, bind=True, curve_secret={str(secret)!r},"
        f" curve_allow={str(missing)!r}, flush_timeout_s=0.2)\n"
        "m.log(loss=1.0)\n"
        "m.close()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"{missing} is not a directory of public keys" in done.stderr
    assert "None" not in done.stderr and "Traceback" not in done.stderr


# --- mistaken arguments ---------------------------------------------------------------


def test_a_read_error_names_the_file(tmp_path: Path) -> None:
    """A file that fails while it is read (EIO) is named: not "cannot read None"."""
    done = _cli("replay", "--plain", "/proc/self/mem")
    assert done.returncode == 1
    assert done.stderr == "Error: cannot read /proc/self/mem: Input/output error\n"


def test_export_will_not_overwrite_a_recording_it_reads(tmp_path: Path) -> None:
    """-o naming one of the recordings read would destroy it: a usage error."""
    path = _record(tmp_path / "r.tmr", _metrics())
    before = path.read_bytes()
    for out in (str(path), str(tmp_path / "." / "r.tmr")):
        result = CliRunner().invoke(main, ["export", str(path), "--format", "csv", "-o", out])
        assert result.exit_code == 2 and "is one of the recordings read" in result.output
    assert path.read_bytes() == before


def test_a_theme_file_without_end_is_refused(tmp_path: Path) -> None:
    """--theme-file /dev/zero: an error, not all memory and then a MemoryError."""
    path = _record(tmp_path / "r.tmr", _metrics())
    done = _cli("replay", "--plain", str(path), "--theme-file", "/dev/zero")
    assert done.returncode == 1
    assert done.stderr == "Error: theme file /dev/zero is over 1 MiB: not a theme file\n"


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["watch", "--history", "-5"], "--history"),
        (["watch", "--history", str(10**30)], "--history"),
        (["watch", "--refresh-ms", "1e3"], "--refresh-ms"),
        (["export", "--width", str(10**30), "--format", "svg", "x.tmr"], "--width"),
        (["demo", "--workers", str(10**30)], "--workers"),
        (["replay", "/"], "RUN_OR_FILE..."),
        (["export", ".", "--format", "csv"], "RUN_OR_FILE..."),
    ],
)
def test_mistaken_counts_and_paths_are_usage_errors(args: list[str], option: str) -> None:
    """Negative or huge counts and folders given as files are usage errors."""
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and f"Invalid value for '{option}'" in result.output
    assert "Traceback" not in result.output
