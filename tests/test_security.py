"""Security: CURVE keys, refused handshakes, no clear text on the wire, warnings, relay."""

from __future__ import annotations

import logging
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.helpers import BackgroundMonitor, drain_until, free_endpoint, stop, wait_listening
from trainmon.cli import main
from trainmon.sources.endpoints import EndpointError
from trainmon.sources.relay import Relay
from trainmon.sources.subscriber import Subscriber
from trainmon.state import RunState
from trainmon_client import Monitor
from trainmon_client.security import Curve, create_keypair


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    """server, client and stranger key pairs; allow/ holds only the client's public key."""
    for name in ("server", "client", "stranger"):
        create_keypair(tmp_path, name)
    allow = tmp_path / "allow"
    allow.mkdir()
    (allow / "client.key").write_bytes((tmp_path / "client.key").read_bytes())
    return tmp_path


def _server(keys: Path) -> Curve:
    return Curve(secret=str(keys / "server.key_secret"), allow=str(keys / "allow"))


def _bound_training(keys: Path, endpoint: str) -> Monitor:
    """Training as the CURVE server: it binds and allows only the client's key."""
    return Monitor(
        endpoint,
        run="r",
        bind=True,
        curve_secret=str(keys / "server.key_secret"),
        curve_allow=str(keys / "allow"),
    )


def _client(keys: Path, name: str = "client") -> dict[str, str]:
    return {
        "curve_secret": str(keys / f"{name}.key_secret"),
        "curve_server": str(keys / "server.key"),
    }


def test_keygen_writes_pairs_with_private_secrets(tmp_path: Path) -> None:
    """keygen writes NAME.key and NAME.key_secret, the secret readable by its owner only."""
    result = CliRunner().invoke(main, ["keygen", str(tmp_path / "k"), "--name", "a"])
    assert result.exit_code == 0, result.output
    secret = tmp_path / "k" / "a.key_secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert "secret-key" in secret.read_text() and (tmp_path / "k" / "a.key").exists()


def test_encrypted_run_delivers(keys: Path) -> None:
    """With the right keys an encrypted run arrives whole."""
    endpoint = free_endpoint()
    monitor = BackgroundMonitor(curve=_server(keys), bind=[endpoint])
    try:
        with Monitor(endpoint, run="r", **_client(keys)) as mon:
            for step in range(100):
                mon.log(loss=float(step))
        monitor.wait(lambda: "r" in monitor.state.runs and monitor.state.runs["r"].finished)
        assert monitor.state.runs["r"].series("loss").count == 100
        assert monitor.state.refused == 0
    finally:
        monitor.close()


def test_unknown_key_is_refused_and_said(keys: Path) -> None:
    """A publisher whose key is not allowed delivers nothing; the monitor says who was refused."""
    endpoint = free_endpoint()
    monitor = BackgroundMonitor(curve=_server(keys), bind=[endpoint])
    try:
        with Monitor(
            endpoint, run="intruder", flush_timeout_s=0.5, **_client(keys, "stranger")
        ) as mon:
            mon.log(loss=1.0)
        monitor.wait(lambda: monitor.state.refused > 0)
        assert "handshake refused from 127.0.0.1" in (monitor.state.last_refusal or "")
        assert monitor.state.runs == {}
    finally:
        monitor.close()


def test_unencrypted_publisher_is_refused(keys: Path) -> None:
    """A publisher without encryption cannot talk to a monitor that requires it."""
    endpoint = free_endpoint()
    monitor = BackgroundMonitor(curve=_server(keys), bind=[endpoint])
    try:
        with Monitor(endpoint, run="plain", flush_timeout_s=0.5) as mon:
            mon.log(loss=1.0)
        monitor.wait(
            lambda: monitor.state.refused > 0 or monitor.state.rejected > 0,
            timeout_s=5,
            what="a refusal",
        )
        assert monitor.state.runs == {}
    finally:
        monitor.close()


def test_training_binds_encrypted(keys: Path) -> None:
    """Training can be the CURVE server: it binds and allows the monitor's key."""
    endpoint = free_endpoint()
    mon = _bound_training(keys, endpoint)
    monitor = BackgroundMonitor(
        connect=[endpoint],
        curve=Curve(secret=str(keys / "client.key_secret"), server=str(keys / "server.key")),
    )
    try:
        for step in range(50):
            mon.log(loss=float(step))
        monitor.wait(
            lambda: (
                "r" in monitor.state.runs
                and monitor.state.runs["r"].series("loss") is not None
                and monitor.state.runs["r"].series("loss").count == 50
            )
        )
    finally:
        mon.close()
        monitor.close()


class _Tap:
    """A TCP forwarder that keeps every byte it passes: a capture of the link."""

    def __init__(self, target_port: int) -> None:
        self.captured = bytearray()
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.target_port = target_port
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                with self.lock:
                    self.captured += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                sock.close()

    def close(self) -> None:
        self.closed = True
        self.listener.close()


@pytest.mark.parametrize("encrypted", [False, True])
def test_capture_shows_no_metric_name_when_encrypted(keys: Path, encrypted: bool) -> None:
    """The bytes on the wire carry metric names in clear, unless the run is encrypted."""
    endpoint = free_endpoint()
    port = int(endpoint.rsplit(":", 1)[1])
    curve = _server(keys) if encrypted else None
    monitor = BackgroundMonitor(bind=[endpoint], curve=curve)
    tap = _Tap(port)
    try:
        client = _client(keys) if encrypted else {}
        with Monitor(f"tcp://127.0.0.1:{tap.port}", run="r", **client) as mon:
            for step in range(20):
                mon.log(zebra_crossing_loss=float(step))
        monitor.wait(lambda: "r" in monitor.state.runs and monitor.state.runs["r"].finished)
        with tap.lock:
            captured = bytes(tap.captured)
        assert len(captured) > 500
        assert (b"zebra_crossing_loss" in captured) is not encrypted
    finally:
        tap.close()
        monitor.close()


def test_a_connecting_monitor_whose_key_is_refused_says_so(keys: Path) -> None:
    """Training that binds encrypted and does not allow the monitor's key: the monitor
    says its key was refused (ZeroMQ stops trying), not that the link is down."""
    endpoint = free_endpoint()
    training = _bound_training(keys, endpoint)
    source = Subscriber(
        connect=[endpoint],
        curve=Curve(secret=str(keys / "stranger.key_secret"), server=str(keys / "server.key")),
    )
    state = RunState()
    try:
        drain_until(source, state, lambda: state.link_short == "key refused", what="refusal")
        assert "refused this monitor's key" in state.link_note
        for _ in range(20):  # and it stays so
            source.drain(state, 0.02)
        assert state.link_short == "key refused" and not state.runs
        # ZeroMQ gives up after a refusal; the monitor tries again, so training that
        # allows its key is reached without restarting the monitor
        training.close()
        (keys / "allow" / "stranger.key").write_bytes((keys / "stranger.key").read_bytes())
        training = _bound_training(keys, endpoint)
        drain_until(source, state, lambda: state.link_note == "", timeout_s=15)
    finally:
        source.close()
        training.close()


def test_curve_needs_the_right_options(keys: Path) -> None:
    """Missing pieces of the key setup are named in the error."""
    with pytest.raises(EndpointError, match="allowed public keys"):
        Subscriber([free_endpoint()], curve=Curve(secret=str(keys / "server.key_secret")))
    with pytest.raises(EndpointError, match="server's public key"):
        Subscriber(connect=[free_endpoint()], curve=Curve(secret=str(keys / "client.key_secret")))
    with pytest.raises(ValueError, match="server's public key"):
        Monitor(free_endpoint(), curve_secret=str(keys / "client.key_secret"))
    result = CliRunner().invoke(main, ["watch", "--curve-allow", str(keys / "allow")])
    assert result.exit_code == 2 and "need --curve-secret" in result.output


def test_unencrypted_non_loopback_bind_warns(caplog: pytest.LogCaptureFixture) -> None:
    """Listening beyond loopback without encryption warns: monitor, relay and client."""
    port = free_endpoint().rsplit(":", 1)[1]
    watch = subprocess.Popen(
        [sys.executable, "-m", "trainmon", "watch", "--plain", "--bind", f"tcp://0.0.0.0:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert watch.stderr is not None
        line = watch.stderr.readline()
        assert "reachable from other machines and not encrypted" in line
    finally:
        stop(watch)
    relay = Relay([f"tcp://0.0.0.0:{free_endpoint().rsplit(':', 1)[1]}"], [free_endpoint()])
    try:
        assert any("not encrypted" in w for w in relay.warnings)
    finally:
        relay.close()
    with caplog.at_level(logging.WARNING, logger="trainmon_client"):
        mon = Monitor(f"tcp://0.0.0.0:{free_endpoint().rsplit(':', 1)[1]}", bind=True)
        mon.close()
    assert any("not encrypted" in r.getMessage() for r in caplog.records)
    quiet = Subscriber([free_endpoint()])
    try:
        assert quiet.warnings == []  # loopback: no warning
    finally:
        quiet.close()


@pytest.fixture
def relay() -> Iterator[Relay]:
    forwarder = Relay([free_endpoint()], [free_endpoint()])
    try:
        yield forwarder
    finally:
        forwarder.close()


def test_relay_forwards_to_several_monitors_with_late_join(
    relay: Relay, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers into a relay, monitors out of it; a monitor that joins late gets the history."""
    workers_at = relay.endpoints["workers"][0]
    monitors_at = relay.endpoints["monitors"][0]
    early = BackgroundMonitor(connect=[monitors_at])
    late = None
    mons: list[Monitor] = []
    try:
        for rank in range(3):
            monkeypatch.setenv("RANK", str(rank))
            mons.append(Monitor(workers_at, run="job"))
        for mon in mons:
            for step in range(200):
                mon.log(loss=float(step))
        early.wait(
            lambda: (
                "job" in early.state.runs
                and sum(w.records for w in early.state.runs["job"].workers.values()) == 603
            )
        )
        late = BackgroundMonitor(connect=[monitors_at])
        late.wait(
            lambda: (
                "job" in late.state.runs
                and sum(w.records for w in late.state.runs["job"].workers.values()) == 603
            )
        )
        ranks = sorted(w.rank for w in late.state.runs["job"].workers.values())
        assert ranks == [0, 1, 2]
        assert all(w.missed == 0 for w in late.state.runs["job"].workers.values())
    finally:
        for mon in mons:
            mon.close()
        early.close()
        if late is not None:
            late.close()


def test_relay_command_runs_and_stops() -> None:
    """trainmon relay says where to connect and stops cleanly on SIGTERM."""
    sub, pub = free_endpoint(), free_endpoint()
    proc = subprocess.Popen(
        [sys.executable, "-m", "trainmon", "relay", "--sub-bind", sub, "--pub-bind", pub],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert f"workers connect to {sub}" in line and pub in line
        wait_listening(pub)
        proc.terminate()
        out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert "relay: stopped" in out
    finally:
        stop(proc)


def test_late_join_through_a_relay_is_whole_with_many_small_batches(
    relay: Relay, monkeypatch: pytest.MonkeyPatch
) -> None:
    """8 workers logging slowly (a few records per message) into a relay, and a monitor
    that joins late while busy (drawing, say) for a second: every worker's history
    arrives whole. Re-sent as logged it was ~1,600 small messages at once, more than
    the queues on the way hold."""
    workers_at = relay.endpoints["workers"][0]
    monitors_at = relay.endpoints["monitors"][0]
    mons: list[Monitor] = []
    late = None
    try:
        for rank in range(8):
            monkeypatch.setenv("RANK", str(rank))
            mons.append(Monitor(workers_at, run="slow"))
        for step in range(2000):
            for mon in mons:
                mon.log(loss=float(step), step=step)
            time.sleep(0.002)  # pacing the logging itself (not a synchronisation)
        state = RunState()
        late = Subscriber(connect=[monitors_at])
        time.sleep(1.0)  # a monitor busy for a second as the history comes
        drain_until(
            late,
            state,
            lambda: (
                "slow" in state.runs
                and sum(w.records for w in state.runs["slow"].workers.values()) == 8 * 2001
            ),
            timeout_s=30,
        )
        assert all(w.missed == 0 for w in state.runs["slow"].workers.values())
    finally:
        for mon in mons:
            mon.close()
        if late is not None:
            late.close()
