"""The trainmon command: help, errors without tracebacks, plain mode, tail, demo."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.helpers import free_endpoint, start_publisher, stop, wait_listening
from trainmon.cli import main
from trainmon.sources.subscriber import Subscriber


@pytest.mark.parametrize("args", [[], ["watch"], ["tail"], ["demo"]])
def test_help(args: list[str]) -> None:
    """Every command explains itself."""
    result = CliRunner().invoke(main, [*args, "--help"])
    assert (result.exit_code == 0 and "Usage: main" in result.output) or "Usage:" in result.output
    assert "Show this message and exit" in result.output


def test_version() -> None:
    """--version names the program and its version."""
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("trainmon, version ")


@pytest.mark.parametrize(
    "args",
    [
        ["watch", "--bind", "tcp://127.0.0.1:99999"],
        ["watch", "--bind", "localhost:5555"],
        ["watch", "--connect", "tcp://nohost"],
        ["tail", "--bind", "udp://1.2.3.4:5"],
    ],
)
def test_bad_endpoint_is_one_line(args: list[str]) -> None:
    """A mistyped endpoint is a usage error in one line with the expected form, exit 2."""
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and "tcp://HOST:PORT" in errors[0]
    assert "Traceback" not in result.output


def test_address_in_use() -> None:
    """A port another monitor holds is explained, with what to do."""
    endpoint = free_endpoint()
    holder = Subscriber([endpoint])
    try:
        result = CliRunner().invoke(main, ["watch", "--bind", endpoint, "--plain"])
        assert result.exit_code == 1
        assert "address already in use" in result.output and "another port" in result.output
    finally:
        holder.close()


@pytest.mark.parametrize(
    "args",
    [["watch", "--history", "0"], ["watch", "--refresh-ms", "x"], ["demo", "--workers", "0"]],
)
def test_bad_values_are_usage_errors(args: list[str]) -> None:
    """Out-of-range options are usage errors (exit 2) naming the option."""
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "Invalid value" in result.output


def _run_cli(*args: str, timeout: float = 60) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "trainmon", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_watch_without_terminal_prints_lines_and_summary() -> None:
    """Without a TTY, watch says so, prints status lines, and a summary when done."""
    endpoint = free_endpoint()
    watch = _run_cli("watch", "--bind", endpoint, "--exit-when-done", "--plain-interval", "0.2")
    wait_listening(endpoint)
    pubs = [
        start_publisher(endpoint, count=50, delay_s=0.01, epochs=5, env={"RANK": str(r)})
        for r in range(2)
    ]
    try:
        out, err = watch.communicate(timeout=60)
        assert watch.returncode == 0, err
        assert out.startswith("trainmon: stdout is not a terminal")
        assert "trainmon: run r · " in out
        assert "run r: finished, 2 workers" in out
        assert "nothing missed" in out and "loss: last 0.02000 (best 0.02000 at step 49)" in out
    finally:
        stop(watch)
        for pub in pubs:
            stop(pub)


def test_tail_prints_json_lines() -> None:
    """tail prints one parseable JSON object per metrics record, then exits when done."""
    endpoint = free_endpoint()
    tail = _run_cli("tail", "--bind", endpoint, "--exit-when-done")
    wait_listening(endpoint)
    pub = start_publisher(endpoint, count=30)
    try:
        out, err = tail.communicate(timeout=60)
        assert tail.returncode == 0, err
        lines = [json.loads(line) for line in out.splitlines()]
        assert len(lines) == 30
        assert set(lines[0]) == {"run", "worker", "seq", "step", "epoch", "t", "metrics"}
        assert [line["step"] for line in lines] == list(range(30))
        assert math.isclose(lines[-1]["metrics"]["loss"], 1 / 30)
    finally:
        stop(tail)
        stop(pub)


def test_demo_plain_runs_to_the_end() -> None:
    """The demo, without a terminal, runs its workers to the end and sums up."""
    demo = _run_cli("demo", "--workers", "2", "--epochs", "1")
    try:
        out, err = demo.communicate(timeout=90)
        assert demo.returncode == 0, err
        assert "finished, 2 workers" in out and "nothing missed" in out
    finally:
        stop(demo)


def test_export_to_a_missing_directory_is_one_line(tmp_path: Path) -> None:
    """An output path that cannot be written is an error, not a traceback."""
    from trainmon_client.framing import FrameWriter
    from trainmon_client.protocol import Record, encode

    path = tmp_path / "r.tmr"
    with FrameWriter(path) as writer:
        writer.write(encode([Record("metrics", "r", "w", 1, 1.0, step=0, metrics={"x": 1.0})])[1])
    result = CliRunner().invoke(
        main, ["export", str(path), "--format", "csv", "-o", str(tmp_path / "no" / "x.csv")]
    )
    assert result.exit_code == 1 and result.output.startswith("Error: cannot write ")


def test_keygen_refuses_to_overwrite(tmp_path: Path) -> None:
    """Running keygen again does not silently replace keys that clients hold."""
    assert CliRunner().invoke(main, ["keygen", str(tmp_path)]).exit_code == 0
    before = (tmp_path / "server.key").read_bytes()
    result = CliRunner().invoke(main, ["keygen", str(tmp_path)])
    assert result.exit_code == 1 and "--force" in result.output
    assert (tmp_path / "server.key").read_bytes() == before
    assert CliRunner().invoke(main, ["keygen", str(tmp_path), "--force"]).exit_code == 0
    assert (tmp_path / "server.key").read_bytes() != before


def test_plain_mode_prints_alerts() -> None:
    """Without a terminal each alert is a line of its own: for logs and CI."""
    endpoint = free_endpoint()
    watch = _run_cli("watch", "--bind", endpoint, "--plain", "--exit-when-done")
    wait_listening(endpoint)
    pub = start_publisher(endpoint, count=50, extra=["--nan-at", "5", "--alert-at", "10"])
    try:
        out, err = watch.communicate(timeout=60)
        assert watch.returncode == 0, err
        assert "trainmon: alert: run r: NaN/Inf in loss" in out
        assert "custom title from training — at step 10" in out
        assert out.count("trainmon: alert:") == 2
    finally:
        stop(watch)
        stop(pub)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--theme", "neon"], "'neon' is not one of"),
        (["--theme-file", "/nonexistent/theme.toml"], "cannot read theme file"),
    ],
)
def test_bad_theme_is_one_line(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["watch", "--plain", *args])
    assert result.exit_code == 2 if "neon" in args else result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output


def test_relay_says_an_address_others_can_connect_to() -> None:
    """A relay listening on every interface names this machine, not 0.0.0.0; its help
    offers only the options a relay takes (both its sides bind)."""
    import socket

    from trainmon.cli.relay import _reachable

    assert _reachable("tcp://0.0.0.0:5556") == f"tcp://{socket.gethostname()}:5556"
    assert _reachable("tcp://*:5556") == f"tcp://{socket.gethostname()}:5556"
    assert _reachable("tcp://10.0.0.5:5556") == "tcp://10.0.0.5:5556"
    assert _reachable("ipc:///tmp/relay") == "ipc:///tmp/relay"
    out = CliRunner().invoke(main, ["relay", "--help"]).output
    assert "--curve-allow" in out and "--curve-server" not in out and "--bind" not in out
