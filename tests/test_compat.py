"""The wire changes compatibly: the client and monitor of the commit before the protocol's
growth rule (34b172e) against today's, both ways; and the old client on its default
endpoint (loopback tcp) is told where today's monitor listens.

The old code is taken from git at test time and run in a subprocess with the same
interpreter (its dependencies are the same), with PYTHONPATH pointing at it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT, free_endpoint, start_cli, stop, wait_listening
from trainmon.sources.subscriber import Subscriber
from trainmon.state import RunState

OLD_COMMIT = "34b172e"  # the last commit before unknown kinds were skipped and `ef` came

# Today's client: a real Monitor logs 20 records over two epochs; then, by hand with
# today's encoder, a second worker sends what the Monitor cannot yet be made to send: a
# hello with the identity keys added since, a fractional epoch (in columns and in a
# single record) and a record of a kind no monitor knows, alone in its message.
NEW_SENDER = """
import sys, time, zmq
from trainmon_client import Monitor
from trainmon_client.protocol import Record, columns_wire, encode, pack_payload, to_wire

endpoint = sys.argv[1]
with Monitor(endpoint, run="new", total_epochs=2) as mon:
    for step in range(20):
        if step % 10 == 0:
            mon.set_epoch(step // 10)
        mon.log(loss=1.0 / (step + 1), step=step)

ctx = zmq.Context()
pub = ctx.socket(zmq.XPUB)
pub.setsockopt(zmq.LINGER, 5000)
pub.connect(endpoint)
if not pub.poll(10_000):
    sys.exit("no subscription from the monitor")
pub.recv()
t = time.time()
info = {"host": "hand", "pid": 1, "epochs": 3, "epochs_f": 2.5, "port": 5556, "local_world": 2,
        "parent": "hand:0"}  # keys added since the old commit, beside the old ones
hello = Record("hello", "new", "hand", 0, t, info=info)
cols = columns_wire("new", "hand", 1, [t, t], [0, 1], [2.5, 2.5], {"loss": [0.5, 0.4]})
single = Record("metrics", "new", "hand", 4, t, step=2, epoch=2.5, metrics={"loss": 0.3})
pub.send_multipart([b"new", pack_payload([to_wire(hello), cols])])
pub.send_multipart(encode([Record("future", "new", "hand", 3, t)]))
pub.send_multipart(encode([single, Record("bye", "new", "hand", 5, t)]))
pub.close()
ctx.term()
"""

# The old client: a real Monitor of commit 34b172e, 20 records over two epochs.
OLD_CLIENT = """
import sys
import trainmon_client
from trainmon_client import Monitor

print(trainmon_client.__file__, flush=True)
with Monitor(sys.argv[1], run="old", total_epochs=2) as mon:
    for step in range(20):
        if step % 10 == 0:
            mon.set_epoch(step // 10)
        mon.log(loss=1.0 / (step + 1), step=step)
"""


@pytest.fixture(scope="module")
def old_code(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The client and monitor packages of the old commit, unpacked in a directory."""
    found = subprocess.run(
        ["git", "-C", str(ROOT), "cat-file", "-e", f"{OLD_COMMIT}^{{commit}}"],
        capture_output=True,
    )
    if found.returncode != 0:
        pytest.skip(f"commit {OLD_COMMIT} is not in this clone (a shallow clone?)")
    where = tmp_path_factory.mktemp("old")
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", OLD_COMMIT, "client", "trainmon"],
        capture_output=True,
        check=True,
    )
    subprocess.run(["tar", "-x", "-C", str(where)], input=archive.stdout, check=True)
    return where


def _env(old: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINMON_")}
    env["TRAINMON_DIR"] = os.environ["TRAINMON_DIR"]  # (the session's: runs are kept)
    if old is not None:  # ahead of the installed packages
        env["PYTHONPATH"] = f"{old / 'client'}{os.pathsep}{old}"
    return env


def _python(args: list[str], old: Path | None, cwd: Path) -> subprocess.Popen[str]:
    """This interpreter running ``args``, with the old code first on the path if given."""
    return subprocess.Popen(
        [sys.executable, *args],
        env=_env(old),
        cwd=cwd,  # never the checkout: its own trainmon/ would come first on the path
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _watched(
    monitor: list[str], client: str, old_monitor: Path | None, old_client: Path | None, cwd: Path
) -> tuple[str, str, str]:
    """Run ``trainmon MONITOR --bind E --exit-when-done`` and the client script on E:
    the monitor's stdout and stderr and the client's stdout."""
    endpoint = free_endpoint()
    mon = _python(
        ["-m", "trainmon", *monitor, "--bind", endpoint, "--exit-when-done"], old_monitor, cwd
    )
    pub = None
    try:
        wait_listening(endpoint)
        pub = _python(["-c", client, endpoint], old_client, cwd)
        pub_out, pub_err = pub.communicate(timeout=60)
        assert pub.returncode == 0, pub_err
        out, err = mon.communicate(timeout=60)
        assert mon.returncode == 0, err
        return out, err, pub_out
    finally:
        stop(mon)
        if pub is not None:
            stop(pub)


def _tail(
    client: str, old_monitor: Path | None, old_client: Path | None, cwd: Path
) -> tuple[list[dict[str, object]], str, str]:
    """The JSON lines and the stderr of ``trainmon tail``, and the client's stdout."""
    out, err, pub_out = _watched(["tail"], client, old_monitor, old_client, cwd)
    return [json.loads(line) for line in out.splitlines()], err, pub_out


def _summary(client: str, old_monitor: Path | None, old_client: Path | None, cwd: Path) -> str:
    """What ``trainmon watch --plain`` prints by the time every worker is done."""
    return _watched(["watch", "--plain"], client, old_monitor, old_client, cwd)[0]


def test_old_client_to_new_monitor(old_code: Path, tmp_path: Path) -> None:
    """Today's tail prints every record of the old client, with its steps and epochs,
    and rejects nothing."""
    lines, err, client_said = _tail(OLD_CLIENT, None, old_code, tmp_path)
    assert client_said.startswith(str(old_code)), "the old client was not the one run"
    assert [line["step"] for line in lines] == list(range(20))
    assert [line["epoch"] for line in lines] == [0] * 10 + [1] * 10
    assert [line["metrics"] for line in lines] == [{"loss": 1.0 / (s + 1)} for s in range(20)]
    assert "rejected" not in err
    summary = _summary(OLD_CLIENT, None, old_code, tmp_path)
    assert "run old: finished, 1 worker" in summary and "nothing missed" in summary


def test_new_client_to_new_monitor(tmp_path: Path) -> None:
    """Today's monitor shows the fractional epoch as it is and counts and skips the
    record of an unknown kind: nothing rejected, nothing missed."""
    lines, err, _ = _tail(NEW_SENDER, None, None, tmp_path)
    hand = [line for line in lines if line["worker"] == "hand"]
    assert len(lines) == 23
    assert [(line["step"], line["epoch"]) for line in hand] == [(0, 2.5), (1, 2.5), (2, 2.5)]
    assert "rejected" not in err
    summary = _summary(NEW_SENDER, None, None, tmp_path)
    assert "run new: finished" in summary and ", 2 workers" in summary
    assert "nothing missed" in summary and "rejected 0" in summary
    skipped = [line for line in summary.splitlines() if "skipped" in line]
    assert len(skipped) == 1 and "1 'future'" in skipped[0]


def test_new_client_to_old_monitor(old_code: Path, tmp_path: Path) -> None:
    """The old monitor takes every record of today's client, a fractional epoch as its
    whole part; it rejects the one message holding a record of a kind it does not know
    (and so counts that record missed), and keeps everything else."""
    lines, err, _ = _tail(NEW_SENDER, old_code, None, tmp_path)
    hand = [line for line in lines if line["worker"] == "hand"]
    new = [line for line in lines if line["worker"] != "hand"]
    assert [line["step"] for line in new] == list(range(20))
    assert [(line["step"], line["epoch"]) for line in hand] == [(0, 2), (1, 2), (2, 2)]
    assert err.count("rejected a message") == 1
    assert "rejected a message: unknown record kind 'future'" in err
    summary = _summary(NEW_SENDER, old_code, None, tmp_path)
    assert "run new: finished" in summary and ", 2 workers" in summary
    assert "rejected 1" in summary and "missed 1" in summary


# The old client on its own default endpoint (tcp://127.0.0.1:5555, before 0.2).
OLD_DEFAULT_CLIENT = """
import trainmon_client
from trainmon_client import Monitor

print(trainmon_client.__file__, flush=True)
with Monitor(run="old") as mon:
    for step in range(20):
        mon.log(loss=1.0 / (step + 1), step=step)
"""


def test_old_client_knocking_on_the_old_default_is_noticed(old_code: Path, tmp_path: Path) -> None:
    """A monitor on the private default also holds the old default without taking
    anything from it: the old client connecting there is said once, with where to go;
    none of its records is shown."""
    old_default = free_endpoint()  # stands in for 5555, which another program may hold
    new_default = f"ipc://{tmp_path / 'monitor'}"
    source = Subscriber([new_default], old_default=old_default)
    state = RunState()
    try:
        old = _python(["-c", OLD_CLIENT, old_default], old_code, tmp_path)
        try:
            deadline = time.monotonic() + 30
            while not state.link_note and time.monotonic() < deadline:
                source.drain(state, budget_s=0.05)
            assert old.wait(timeout=60) == 0
            for _ in range(20):  # (anything it sent would be here by now)
                source.drain(state, budget_s=0.05)
        finally:
            stop(old)
    finally:
        source.close()
    assert state.link_short == "old client"
    assert state.link_note == (
        f"a publisher connected to {old_default}, the default before 0.2: upgrade it or "
        f"set TRAINMON_ENDPOINT={new_default}"
    )
    assert state.records == 0 and not state.runs


def test_old_client_to_new_default_monitor(old_code: Path, tmp_path: Path) -> None:
    """The real thing: `trainmon tail` on the default, the old client on its default
    (tcp://127.0.0.1:5555): one line says so and where the monitor is now."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", 5555))
        except OSError:
            pytest.skip("tcp://127.0.0.1:5555 is taken on this machine")
    sockets = tmp_path / "s"
    env = dict(_env(None), TRAINMON_SOCKET_DIR=str(sockets))
    tail = start_cli("tail", env=env, cwd=tmp_path)
    old = None
    try:
        wait_listening("tcp://127.0.0.1:5555")
        old = _python(["-c", OLD_DEFAULT_CLIENT], old_code, tmp_path)
        client_said, _ = old.communicate(timeout=60)
        assert old.returncode == 0 and client_said.startswith(str(old_code))
        assert tail.stderr is not None
        said = tail.stderr.readline()
        assert said == (
            "trainmon: a publisher connected to tcp://127.0.0.1:5555, the default before "
            f"0.2: upgrade it or set TRAINMON_ENDPOINT=ipc://{sockets}/monitor\n"
        )
    finally:
        tail.terminate()
        out, err = tail.communicate(timeout=30)
        if old is not None:
            stop(old)
    assert out == "" and "publisher connected" not in err  # said once, nothing shown
