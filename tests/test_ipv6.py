"""IPv6 endpoints on both sides (an address in brackets), and endpoints that cannot be
ones refused at once instead of retried for ever."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.helpers import BackgroundMonitor, start_cli, start_publisher, stop, wait_for
from trainmon.cli import main
from trainmon.sources.relay import Relay
from trainmon_client import Monitor
from trainmon_client.endpoints import endpoint_problem, needs_ipv6


def _loopback6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_loopback6 = pytest.mark.skipif(not _loopback6(), reason="this machine has no ::1")


def free6() -> str:
    """A tcp endpoint on ::1 nobody listens on right now."""
    with socket.socket(socket.AF_INET6) as sock:
        sock.bind(("::1", 0))
        return f"tcp://[::1]:{sock.getsockname()[1]}"


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    try:
        yield started
    finally:
        for proc in started:
            stop(proc)


@needs_loopback6
def test_monitor_listens_on_ipv6(procs: list[subprocess.Popen[str]]) -> None:
    """`tail --bind tcp://[::1]:PORT` listens (it said "No such device") and a client
    publishing to that address is received (it delivered nothing)."""
    endpoint = free6()
    tail = start_cli("tail", "--bind", endpoint, "--exit-when-done")
    procs.append(tail)
    port = int(endpoint.rsplit(":", 1)[1])

    def listening() -> bool:
        with socket.socket(socket.AF_INET6) as probe:
            return probe.connect_ex(("::1", port)) == 0

    wait_for(listening, 30, what=f"the monitor on {endpoint}")
    publisher = start_publisher(endpoint, run="six", count=30)
    procs.append(publisher)
    out, err = tail.communicate(timeout=60)
    assert tail.returncode == 0, err
    assert out.count('"run": "six"') == 30


@needs_loopback6
def test_training_binds_ipv6(procs: list[subprocess.Popen[str]]) -> None:
    """Monitor('tcp://[::1]:PORT', bind=True), and a monitor connecting to it."""
    endpoint = free6()
    publisher = start_publisher(endpoint, run="six", count=30, bind=True, hold_s=30)
    procs.append(publisher)
    assert publisher.stdout is not None
    publisher.stdout.readline()  # its worker id: it has bound
    tail = start_cli("tail", "--connect", endpoint)
    procs.append(tail)
    assert tail.stdout is not None
    lines = [tail.stdout.readline() for _ in range(30)]
    assert all('"run": "six"' in line for line in lines), lines


@needs_loopback6
def test_relay_on_ipv6() -> None:
    """Workers and monitors reach a relay on IPv6 addresses."""
    workers, monitors = free6(), free6()
    relay = Relay([workers], [monitors])
    monitor = BackgroundMonitor(connect=[monitors])
    try:
        with Monitor(workers, run="relayed") as mon:
            mon.log(loss=1.0)
            monitor.wait(lambda: "relayed" in monitor.state.runs, 30)
    finally:
        monitor.close()
        relay.close()


def test_the_option_only_for_addresses_in_brackets() -> None:
    """ZeroMQ's IPV6 option is set for an IPv6 address; a host name stays on IPv4, where a
    monitor on 127.0.0.1 or 0.0.0.0 listens (with the option, ZeroMQ would take the
    name's IPv6 address first)."""
    assert needs_ipv6("tcp://[::1]:5555") and needs_ipv6("tcp://[fd00::2]:5555")
    assert not needs_ipv6("tcp://localhost:5555") and not needs_ipv6("tcp://gpu-box:5555")
    assert not needs_ipv6("tcp://127.0.0.1:5555") and not needs_ipv6("ipc:///tmp/x")


@pytest.mark.parametrize(
    ("endpoint", "why"),
    [
        ("tcp://[::1:5555", "unbalanced brackets"),
        ("tcp://::1:5555", "in brackets"),
        ("tcp://[1.2.3.4]:5555", "not an IPv6 address"),
        ("tcp://[::1]", "no port"),
        ("tcp://[::1]x:5", "after the address"),
        ("tcp://999.1.1.1:5", "not an IPv4 address"),
        ("tcp://a b:5", "not an address or a host name"),
        ("tcp://:5555", "no host"),
        ("tcp://127.0.0.1:0", "1-65535"),
        ("ipc://", "no path"),
        ("ipc:///" + "x" * 120, "at most 107 bytes"),
        ("udp://1.2.3.4:5", "must start with tcp://"),
    ],
)
def test_malformed_endpoints_are_named(endpoint: str, why: str) -> None:
    assert why in endpoint_problem(endpoint)


@pytest.mark.parametrize(
    "endpoint",
    [
        "tcp://[::1]:5555",
        "tcp://[fe80::1%eth0]:5555",
        "tcp://[::]:*",
        "tcp://127.0.0.1:5555",
        "tcp://*:5555",
        "tcp://localhost:5555",
        "tcp://gpu-box.example.org:5556",
        "tcp://eth0:5556",
        "tcp://127.0.0.1:0;10.0.0.1:5555",
        "ipc:///tmp/trainmon-0/monitor",
        "inproc://x",
    ],
)
def test_well_formed_endpoints_pass(endpoint: str) -> None:
    assert endpoint_problem(endpoint) == ""


@pytest.mark.parametrize("option", ["--connect", "--bind"])
def test_malformed_endpoint_is_a_usage_error(option: str) -> None:
    """`--connect 'tcp://[::1:5555'` ran for ever; now: a usage error, exit 2, one line."""
    done = subprocess.run(
        [sys.executable, "-m", "trainmon", "watch", "--plain", option, "tcp://[::1:5555"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "unbalanced brackets" in errors[0], done.stderr
    assert "Traceback" not in done.stderr


def test_relay_and_demo_check_their_endpoints() -> None:
    for args in (
        ["relay", "--sub-bind", "tcp://[::1:1", "--pub-bind", "tcp://127.0.0.1:2"],
        ["demo", "--bind", "tcp://::1:5"],
    ):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2 and "Error: Invalid value" in result.output, result.output


def test_malformed_endpoint_in_code_raises_and_from_environment_is_said(tmp_path: Path) -> None:
    """In the code, a ValueError at once; from the environment, one line, and training
    goes on."""
    with pytest.raises(ValueError, match="unbalanced brackets"):
        Monitor("tcp://[::1:5555")
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from trainmon_client import Monitor\n"
            "m = Monitor(); m.log(loss=1.0); m.close(); print(m.dropped)",
        ],
        env={
            "TRAINMON_ENDPOINT": "tcp://[::1:5555",
            "PATH": "/usr/bin:/bin",
            "TRAINMON_DIR": os.environ["TRAINMON_DIR"],  # (runs are kept by default)
        },
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and done.stdout.split() == ["1"], done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "$TRAINMON_ENDPOINT='tcp://[::1:5555'" in lines[0], lines
    assert "unbalanced brackets" in lines[0]
