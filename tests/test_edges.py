"""Bad input at the edges: hostile names in CSV cells and file names, numbers that are
not numbers, outputs that cannot be written, and mistaken arguments."""

from __future__ import annotations

import csv
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from trainmon.cli import main
from trainmon.export import csv_cell
from trainmon_client.framing import FrameWriter
from trainmon_client.protocol import Record, encode

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


def _cli(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trainmon", *args],
        stdin=subprocess.DEVNULL,
        capture_output="stdout" not in kwargs,
        text=True,
        timeout=60,
        **kwargs,
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


# --- mistaken arguments ---------------------------------------------------------------


def test_a_theme_file_without_end_is_refused(tmp_path: Path) -> None:
    """--theme-file /dev/zero: an error, not all memory and then a MemoryError."""
    path = _record(tmp_path / "r.tmr", _metrics())
    done = _cli("replay", "--plain", str(path), "--theme-file", "/dev/zero")
    assert done.returncode == 1
    assert done.stderr == "Error: theme file /dev/zero is over 1 MiB: not a theme file\n"
