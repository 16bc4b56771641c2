"""Nothing the machine does makes Monitor() raise into training; totals and config set
later; binding chosen from the environment; the line said when nobody watched; a forked
child's parent. Real processes, real sockets."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import BackgroundMonitor, Receiver, free_endpoint, wait_for
from trainmon.sources.subscriber import Subscriber
from trainmon.state import RunState
from trainmon_client import Monitor

# A script that publishes 100 records wherever its environment says and exits 0.
TRAIN = """
import sys
from trainmon_client import Monitor
mon = Monitor({args})
for step in range(100):
    mon.log(loss=1.0 / (step + 1))
mon.close()
print("dropped", mon.dropped)
"""


def run_script(
    args: str = "", env: dict[str, str] | None = None, warnings_error: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run TRAIN in a real Python (``-W error`` if asked); its result."""
    command = [sys.executable, *(["-W", "error"] if warnings_error else []), "-c"]
    clean = {  # (but the test session's data directory: runs are kept by default)
        k: v for k, v in os.environ.items() if not k.startswith("TRAINMON_") or k == "TRAINMON_DIR"
    }
    return subprocess.run(
        [*command, TRAIN.format(args=args)],
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("warnings_error", [False, True])
def test_a_port_in_use_is_said_in_one_line_and_training_goes_on(warnings_error: bool) -> None:
    """Monitor(bind=True) on a port another process holds: exit 0, one line on stderr
    saying so, even under ``python -W error``; with keeping runs off the records are
    counted as dropped, and with it on (the default) they are kept, not dropped."""
    endpoint = free_endpoint()
    host, port = endpoint.removeprefix("tcp://").rsplit(":", 1)
    with socket.socket() as holder:
        holder.bind((host, int(port)))
        holder.listen()
        off = {"TRAINMON_RECORD": "0"}
        done = run_script(f"{endpoint!r}, bind=True", off, warnings_error=warnings_error)
        kept = run_script(f"{endpoint!r}, bind=True", warnings_error=warnings_error)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, lines
    assert f"cannot bind {endpoint}" in lines[0] and "in use" in lines[0]
    assert done.stdout.split() == ["dropped", "100"]
    assert kept.returncode == 0 and len(kept.stderr.splitlines()) == 1, kept.stderr
    assert kept.stdout.split() == ["dropped", "0"]


@pytest.mark.parametrize("warnings_error", [False, True])
@pytest.mark.parametrize("bad", ["localhost:5555", "tcp://127.0.0.1:99999", "tcp://:5555"])
def test_a_bad_endpoint_from_the_environment_is_said_in_one_line(
    bad: str, warnings_error: bool
) -> None:
    """Monitor() with a $TRAINMON_ENDPOINT that cannot be an endpoint: exit 0, one
    line naming it, also under ``python -W error``."""
    done = run_script(env={"TRAINMON_ENDPOINT": bad}, warnings_error=warnings_error)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, lines
    assert f"$TRAINMON_ENDPOINT={bad!r} is not an endpoint" in lines[0]


def test_an_unreachable_endpoint_is_said_once_at_the_end() -> None:
    """An endpoint nothing listens on (ZeroMQ keeps trying quietly): the one line at
    close says nobody watched, where, where the run was kept and how to replay it, and
    how to watch next time; with keeping off, that the records were not kept."""
    endpoint = free_endpoint()
    done = run_script(env={"TRAINMON_ENDPOINT": endpoint}, warnings_error=True)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, lines
    assert "nobody watched" in lines[0] and endpoint in lines[0]
    assert "were kept in " in lines[0] and "`trainmon replay python-" in lines[0], lines
    assert "trainmon watch" in lines[0]
    done = run_script(env={"TRAINMON_ENDPOINT": endpoint, "TRAINMON_RECORD": "0"})
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "were not kept (keeping runs is off" in lines[0], lines
    assert "trainmon watch" in lines[0]


def test_nobody_watched_is_not_said_when_recorded_or_watched(tmp_path: Path, endpoint: str) -> None:
    """With record_to, or with a monitor watching, close() says nothing."""
    path = tmp_path / "run.tmrec"
    done = run_script(f"{endpoint!r}, record_to={str(path)!r}", warnings_error=True)
    assert done.returncode == 0 and done.stderr == "" and path.stat().st_size > 0
    monitor = BackgroundMonitor([endpoint])
    try:
        done = run_script(f"{endpoint!r}", warnings_error=True)
        assert done.returncode == 0 and done.stderr == "", done.stderr
    finally:
        monitor.close()


def test_a_record_to_that_cannot_be_written_is_said_and_publishing_goes_on(
    receiver: Receiver, endpoint: str, tmp_path: Path
) -> None:
    """A record_to in a folder that does not exist: one line, and the records still go
    to the monitor."""
    path = tmp_path / "no" / "such" / "run.tmrec"
    done = run_script(f"{endpoint!r}, record_to={str(path)!r}", warnings_error=True)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and f"cannot record to {path}" in lines[0], lines
    receiver.until_bye()
    assert len(receiver.metrics()) == 100


def test_totals_take_the_numbers_frameworks_give(receiver: Receiver, endpoint: str) -> None:
    """total_epochs=2.5 (a Trainer's fractional epochs) says epochs 3 and epochs_f
    2.5; numpy ints are numbers; a string or a negative total is a mistake in the code."""
    np = pytest.importorskip("numpy")
    with Monitor(endpoint, run="r", total_epochs=2.5, total_steps=np.int64(300)) as mon:
        mon.log(loss=1.0)
    receiver.until_bye()
    hello = receiver.records[0]
    assert hello.kind == "hello"
    assert (hello.info["epochs"], hello.info["epochs_f"], hello.info["steps"]) == (3, 2.5, 300)
    with pytest.raises(TypeError, match="total_epochs"):
        Monitor(endpoint, total_epochs="ten")
    with pytest.raises(ValueError, match="total_steps"):
        Monitor(endpoint, total_steps=-1)


def test_set_totals_and_config_send_a_new_hello(endpoint: str) -> None:
    """set_totals()/set_config() after construction: a new hello (the next sequence
    number) with the new info goes out, and a monitor that attaches later gets the
    current info in the hello sent to it."""
    torch = pytest.importorskip("torch")
    receiver = Receiver(endpoint)
    try:
        with Monitor(endpoint, run="r", config={"lr": 0.1}) as mon:
            mon.log(loss=1.0)
            mon.set_totals(total_epochs=2.5, total_steps=torch.tensor(40))
            mon.set_config({"batch": 64})
            mon.log(loss=2.0)
            second = lambda rs: sum(r.kind == "metrics" for r in rs) == 2  # noqa: E731
            receiver.until(second)
            receiver.close()
            late = Receiver(endpoint)  # a monitor that comes later
            try:
                late.until(second)
            finally:
                late.close()
        records = receiver.records
        # (set_totals and set_config may go out in one hello or two, as the I/O thread
        # takes them: each a record of its own, numbered on from the last)
        assert [r.seq for r in records] == list(range(len(records)))
        assert [r.kind for r in records[:2]] == ["hello", "metrics"]
        assert records[-1].kind == "metrics" and len(records) in (4, 5)
        assert {r.kind for r in records[2:-1]} == {"hello"}
        new = records[-2]
        assert (new.info["epochs"], new.info["epochs_f"], new.info["steps"]) == (3, 2.5, 40)
        assert new.info["config"] == {"lr": 0.1, "batch": 64}
        first = late.records[0]
        assert (first.kind, first.seq) == ("hello", 0)
        assert first.info["steps"] == 40 and first.info["config"] == {"lr": 0.1, "batch": 64}
    finally:
        receiver.close()


def test_listen_from_the_environment_binds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """$TRAINMON_LISTEN makes Monitor() bind there (a monitor connects); an explicit
    bind=False or endpoint wins over it."""
    listen = free_endpoint()
    monkeypatch.setenv("TRAINMON_LISTEN", listen)
    with Monitor(run="r") as mon:
        assert (mon.endpoint, mon.bind) == (listen, True)
        mon.log(loss=1.0)
        source = Subscriber(connect=[listen])
        try:
            state = RunState()
            deadline_ok = wait_for(
                lambda: source.drain(state, 0.02) or state.runs.get("r"), what="the run"
            )
            assert deadline_ok
        finally:
            source.close()
    other = free_endpoint()
    monkeypatch.setenv("TRAINMON_ENDPOINT", other)
    with Monitor(run="r", bind=False) as mon:
        assert (mon.endpoint, mon.bind) == (other, False)
    with Monitor(other, run="r") as mon:
        assert (mon.endpoint, mon.bind) == (other, False)


def test_a_forked_child_names_its_parent_and_its_alert_is_kept(
    receiver: Receiver, endpoint: str
) -> None:
    """A forked child's hello says its parent's worker id; an alert() it raises before
    logging anything is not lost."""
    with Monitor(endpoint, run="r") as mon:
        mon.log(loss=1.0)
        pid = os.fork()
        if pid == 0:  # the child
            try:
                mon.alert("from the child")
                mon.close()
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
    receiver.until_bye(workers=2)
    child = [r for r in receiver.records if r.worker != mon.worker]
    hello = next(r for r in child if r.kind == "hello")
    assert hello.info["parent"] == mon.worker and hello.info["pid"] == pid
    assert [r.info["title"] for r in child if r.kind == "alert"] == ["from the child"]


def test_key_files_that_cannot_be_read_are_said_and_training_goes_on(
    endpoint: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Encryption asked for with key files this machine lacks: one line, no publishing
    (never unencrypted instead), no exception; an option left out of the code still
    raises."""
    missing = tmp_path / "gone"
    with caplog.at_level(logging.WARNING, logger="trainmon_client"):
        mon = Monitor(
            endpoint,
            curve_secret=str(missing / "c.key_secret"),
            curve_server=str(missing / "s.key"),
        )
        mon.log(loss=1.0)
        mon.close()
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "cannot read secret key" in said[0], said
    assert mon.dropped == 1
    with pytest.raises(ValueError, match="curve_server"):
        Monitor(endpoint, curve_secret=str(missing / "c.key_secret"))


@pytest.mark.parametrize(
    "env",
    [
        {"TRAINMON_CURVE_SECRET": "server.key_secret", "TRAINMON_CURVE_ALLOW": "allow"},
        {"TRAINMON_CURVE_SERVER": "server.key"},
        {"TRAINMON_CURVE_ALLOW": "nowhere"},
    ],
    ids=["a monitor's keys", "server key alone", "allow alone"],
)
def test_partial_curve_environment_is_said_in_one_line(env: dict[str, str], tmp_path: Path) -> None:
    """$TRAINMON_CURVE_* that leave this side's options incomplete (a shell set up for
    the monitor) are the environment's, not the code's: one line, training goes on."""
    from trainmon_client.security import create_keypair

    create_keypair(tmp_path, "server")
    (tmp_path / "allow").mkdir()
    env = {key: str(tmp_path / value) for key, value in env.items()}
    done = run_script(f"{free_endpoint()!r}", env=env, warnings_error=True)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "from $TRAINMON_CURVE_*: not publishing" in lines[0], lines
    assert done.stdout.split() == ["dropped", "100"]


def test_encryption_option_left_out_in_the_code_raises() -> None:
    """curve_secret given without curve_server is a mistake in the code: ValueError."""
    with pytest.raises(ValueError, match="curve_server"):
        Monitor(free_endpoint(), curve_secret="x.key_secret")


def test_nobody_watched_names_what_listens_on_the_old_default(tmp_path: Path) -> None:
    """A new client on the private default and something on tcp://127.0.0.1:5555 (an
    older monitor, maybe): the line at close says so and how to reach it."""
    with socket.socket() as old_monitor:
        try:
            old_monitor.bind(("127.0.0.1", 5555))
        except OSError:
            pytest.skip("tcp://127.0.0.1:5555 is taken on this machine")
        old_monitor.listen()
        done = run_script(env={"TRAINMON_SOCKET_DIR": str(tmp_path / "s")})
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "nobody watched" in lines[0], lines
    assert "older trainmon watch" in lines[0]
    assert "TRAINMON_ENDPOINT=tcp://127.0.0.1:5555" in lines[0]


def test_nobody_watched_on_the_old_default_names_the_monitor_on_the_new_one(
    tmp_path: Path,
) -> None:
    """A client sent to tcp://127.0.0.1:5555 while a monitor listens on the private
    default: the line at close says to unset TRAINMON_ENDPOINT."""
    import zmq

    with socket.socket() as probe:  # nothing may listen on the old default meanwhile
        try:
            probe.bind(("127.0.0.1", 5555))
        except OSError:
            pytest.skip("tcp://127.0.0.1:5555 is taken on this machine")
    sockets = tmp_path / "s"
    sockets.mkdir(mode=0o700)
    ctx = zmq.Context()
    monitor = ctx.socket(zmq.SUB)
    try:
        monitor.bind(f"ipc://{sockets}/monitor")
        done = run_script(
            env={"TRAINMON_SOCKET_DIR": str(sockets), "TRAINMON_ENDPOINT": "tcp://127.0.0.1:5555"}
        )
    finally:
        monitor.close(0)
        ctx.term()
    assert done.returncode == 0, done.stderr
    assert "unset TRAINMON_ENDPOINT" in done.stderr, done.stderr


def test_a_file_name_with_escape_sequences_is_said_escaped(tmp_path: Path) -> None:
    """A record_to name holding terminal escapes is said with them written out, so the
    line cannot retitle or clear the user's terminal."""
    hostile = str(tmp_path / "no" / "esc\x1b]0;PWNED\x07\x1b[2J.tmr")
    done = run_script(f"{free_endpoint()!r}, record_to={hostile!r}")
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stderr and "\x07" not in done.stderr
    assert "esc\\x1b]0;PWNED\\x07\\x1b[2J.tmr" in done.stderr
