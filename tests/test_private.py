"""Private by default on a shared machine: another local user can neither write into a
user's monitor nor read a user's training; client and monitor meet whatever their
environments; where no private place can be had, loopback tcp, said once.

The two-user tests make two unprivileged users (tm-alice, tm-bob; kept, they are
harmless) and run real processes as them with setpriv; they need root.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import (
    BackgroundMonitor,
    free_endpoint,
    ipc_endpoint,
    start_cli,
    stop,
    wait_for,
)
from trainmon.sources.endpoints import EndpointError
from trainmon.sources.subscriber import Subscriber
from trainmon_client import Monitor
from trainmon_client.endpoints import LEGACY_ENDPOINT, ipc_in_use

pytestmark = pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX users and modes")

USERS = ("tm-alice", "tm-bob")

# Publishes one record with the default endpoint (or the one given), says where.
CLIENT = """
import sys
from trainmon_client import Monitor
mon = Monitor(sys.argv[2] if len(sys.argv) > 2 else None, run=sys.argv[1])
mon.log(loss=0.5)
print(mon.endpoint, flush=True)
mon.close()
"""

# Training that binds the default endpoint and logs until stopped.
TRAINING = """
import sys, time
from trainmon_client import Monitor
mon = Monitor(run=sys.argv[1], bind=True)
print(mon.endpoint, flush=True)
for step in range(2400):
    mon.log(loss=1.0 / (step + 1))
    time.sleep(0.05)
"""


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int

    @property
    def socket_dir(self) -> Path:
        return Path(f"/tmp/trainmon-{self.uid}")


@dataclass(frozen=True)
class Users:
    """The two users, and a Python with this checkout's packages that both can run."""

    alice: User
    bob: User
    python: str
    path: str  # PYTHONPATH: the installed packages, somewhere both can read
    scratch: Path  # a directory both can read and write (HOME, TMPDIR, XDG_RUNTIME_DIR)


def _user(name: str) -> User:
    if subprocess.run(["id", "-u", name], capture_output=True).returncode != 0:
        subprocess.run(
            ["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=True,
            capture_output=True,
        )
    entry = pwd.getpwnam(name)
    return User(name, entry.pw_uid, entry.pw_gid)


def _as(user: User, args: list[str]) -> list[str]:
    """``args`` run as ``user`` (setpriv runs it in its place: the pid is the process's)."""
    return [
        "setpriv",
        f"--reuid={user.uid}",
        f"--regid={user.gid}",
        "--clear-groups",
        "--",
        *args,
    ]


def _site_packages() -> list[str]:
    paths = sysconfig.get_paths()
    return list(dict.fromkeys((paths["purelib"], paths["platlib"])))


def _works(user: User, python: str, path: str, cwd: Path) -> bool:
    done = subprocess.run(
        _as(user, [python, "-s", "-c", "import trainmon.cli, trainmon_client, zmq"]),
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": path},
        cwd=cwd,
        capture_output=True,
    )
    return done.returncode == 0


def _pythons() -> list[str]:
    """This interpreter and others of its version (a venv's may sit where others cannot
    go, under /root): the installed packages need the same version."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    found = [os.path.realpath(sys.executable), f"/usr/bin/python{version}"]
    found += [shutil.which(f"python{version}", path="/usr/local/bin:/usr/bin:/bin") or ""]
    return [p for p in dict.fromkeys(found) if p and os.access(p, os.X_OK)]


def _copy_packages(into: Path) -> str:
    """The packages trainmon needs, copied where anyone can read them."""
    code = (
        "import sys, trainmon.cli, trainmon_client.monitor, zmq\n"
        "print('\\n'.join(getattr(m, '__file__', None) or '' for m in list(sys.modules.values())))"
    )
    files = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/"
    ).stdout.split()
    for site in map(Path, _site_packages()):
        tops = {Path(f).relative_to(site).parts[0] for f in files if f.startswith(f"{site}/")}
        tops |= {p.name for p in site.glob("*.libs")}  # the libraries wheels bring
        for top in tops:
            source = site / top
            if source.is_dir():
                shutil.copytree(source, into / top, dirs_exist_ok=True)
            else:
                shutil.copy2(source, into / top)
    for path in [into, *into.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o444 | (0o111 if path.is_dir() else 0))
    return str(into)


@pytest.fixture(scope="module")
def users() -> Iterator[Users]:
    if os.geteuid() != 0:
        pytest.skip("needs root to make two users and run processes as them")
    if not (shutil.which("useradd") and shutil.which("setpriv")):
        pytest.skip("needs useradd and setpriv (util-linux)")
    alice, bob = (_user(name) for name in USERS)
    scratch = Path(tempfile.mkdtemp(prefix="tm-users-"))
    scratch.chmod(0o1777)  # like /tmp: each user makes its own directories in it
    try:
        path = os.pathsep.join(_site_packages())
        python = next((p for p in _pythons() if _works(alice, p, path, scratch)), None)
        if python is None:  # the packages sit where other users cannot read them
            packages = scratch / "packages"
            packages.mkdir(mode=0o755)
            path = _copy_packages(packages)
            python = next((p for p in _pythons() if _works(alice, p, path, scratch)), None)
        if python is None:
            pytest.skip(f"no Python {sys.version_info[:2]} other users can run: {_pythons()}")
        for user in (alice, bob):
            if (user.socket_dir / "monitor").exists() and ipc_in_use(
                str(user.socket_dir / "monitor")
            ):
                pytest.skip(f"a monitor of {user.name} is running already")
        yield Users(alice, bob, python, path, scratch)
    finally:
        for user in (alice, bob):  # what they made: their socket directories
            shutil.rmtree(user.socket_dir, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)


class Proc:
    """A process run as a user, its output in files of ours (it writes to the inherited
    descriptors; it could not open our files itself)."""

    def __init__(self, users: Users, user: User, args: list[str], *, xdg: bool, tmp: Path) -> None:
        home = users.scratch / f"{user.name}-{'xdg' if xdg else 'plain'}-{os.urandom(3).hex()}"
        home.mkdir()
        os.chown(home, user.uid, user.gid)
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(home),
            "TMPDIR": str(home),
            "PYTHONPATH": users.path,
            "LANG": "C.UTF-8",
        }
        if xdg:  # a login shell's: the monitor's has it, a batch job's does not
            env["XDG_RUNTIME_DIR"] = str(home)
        self.out_path = tmp / f"{home.name}.out"
        self.err_path = tmp / f"{home.name}.err"
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = subprocess.Popen(
                _as(user, [users.python, "-s", *args]),
                env=env,
                cwd=home,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )

    @property
    def out(self) -> str:
        return self.out_path.read_text()

    @property
    def err(self) -> str:
        return self.err_path.read_text()

    def wait(self, timeout_s: float = 60.0) -> int:
        return self.proc.wait(timeout=timeout_s)

    def stop(self) -> None:
        stop(self.proc)


def _listening(path: Path) -> bool:
    return path.exists() and ipc_in_use(str(path))


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    try:
        yield started
    finally:
        for proc in started:
            proc.stop()


def test_another_user_cannot_write_into_a_monitor(
    users: Users, procs: list[Proc], tmp_path: Path
) -> None:
    """Alice's monitor on the default: Bob's Monitor() publishes to his own socket, and
    Bob aiming at Alice's socket is kept out by her 0700 directory; Alice's training in
    an environment without XDG_RUNTIME_DIR (a batch job's) still meets her monitor."""
    alice, bob = users.alice, users.bob
    monitor = Proc(users, alice, ["-m", "trainmon", "tail"], xdg=True, tmp=tmp_path)
    procs.append(monitor)
    alice_socket = alice.socket_dir / "monitor"
    wait_for(lambda: _listening(alice_socket), 30, what="alice's monitor")
    info = alice.socket_dir.stat()
    assert (info.st_uid, info.st_mode & 0o777) == (alice.uid, 0o700)

    bob_default = Proc(users, bob, ["-c", CLIENT, "bob-default"], xdg=True, tmp=tmp_path)
    procs.append(bob_default)
    aimed = f"ipc://{alice_socket}"
    bob_aimed = Proc(users, bob, ["-c", CLIENT, "bob-aimed", aimed], xdg=False, tmp=tmp_path)
    procs.append(bob_aimed)
    assert bob_default.wait() == 0 and bob_aimed.wait() == 0, bob_default.err + bob_aimed.err
    assert bob_default.out.split() == [f"ipc://{bob.socket_dir}/monitor"]
    assert bob_aimed.out.split() == [aimed]

    # Alice's own training, started after Bob's had their chance, in a batch job's
    # environment (no XDG_RUNTIME_DIR, another HOME and TMPDIR than the monitor's).
    training = Proc(users, alice, ["-c", CLIENT, "alice"], xdg=False, tmp=tmp_path)
    procs.append(training)
    assert training.wait() == 0, training.err
    wait_for(lambda: '"run": "alice"' in monitor.out, 30, what="alice's record")
    assert "bob" not in monitor.out, monitor.out
    assert training.out.split() == [f"ipc://{alice_socket}"]


def test_another_user_cannot_read_training(users: Users, procs: list[Proc], tmp_path: Path) -> None:
    """Alice's training binds the default: Bob's monitor connecting to it gets nothing
    (the directory keeps him out; his link stays down), Alice's gets the records."""
    alice, bob = users.alice, users.bob
    training = Proc(users, alice, ["-c", TRAINING, "alice-bound"], xdg=True, tmp=tmp_path)
    procs.append(training)
    alice_socket = alice.socket_dir / "monitor"
    wait_for(lambda: _listening(alice_socket), 30, what="alice's training to bind")
    endpoint = f"ipc://{alice_socket}"
    spy = Proc(
        users, bob, ["-m", "trainmon", "tail", "--connect", endpoint], xdg=True, tmp=tmp_path
    )
    procs.append(spy)
    wait_for(lambda: "not connected to" in spy.err, 30, what="bob's monitor to find it shut")
    watcher = Proc(
        users, alice, ["-m", "trainmon", "tail", "--connect", endpoint], xdg=False, tmp=tmp_path
    )
    procs.append(watcher)
    wait_for(lambda: watcher.out.count('"run": "alice-bound"') >= 20, 30, what="alice's records")
    # Bob's monitor started first and retries all along: it would have had them by now.
    assert spy.proc.poll() is None and spy.out == "", spy.out[:500]


def test_client_without_xdg_runtime_dir_meets_the_monitor(tmp_path: Path) -> None:
    """The same user's monitor (XDG_RUNTIME_DIR, HOME, TMPDIR of a login) and client (none
    of them, as under cron or nohup) meet on the default endpoint."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TRAINMON_", "XDG_"))}
    base["TRAINMON_DIR"] = os.environ["TRAINMON_DIR"]  # (the session's: runs are kept)
    default = Path(f"/tmp/trainmon-{os.getuid()}/monitor")
    if _listening(default):
        pytest.skip(f"a monitor of this user listens on {default} already")
    made = not default.parent.exists()  # then removed at the end
    login = dict(base, XDG_RUNTIME_DIR=str(tmp_path), HOME=str(tmp_path), TMPDIR=str(tmp_path))
    batch = dict(base, HOME="/", TMPDIR="/var/tmp")
    monitor = start_cli("tail", env=login, cwd=tmp_path)
    try:
        wait_for(lambda: _listening(default), 30, what="the monitor")
        done = subprocess.run(
            [sys.executable, "-c", CLIENT, "batch"],
            env=batch,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0 and done.stderr == "", done.stderr
        assert done.stdout.split() == [f"ipc://{default}"]
        assert monitor.stdout is not None
        assert '"run": "batch"' in monitor.stdout.readline()
    finally:
        stop(monitor)
        if made:
            shutil.rmtree(default.parent, ignore_errors=True)


@pytest.fixture
def foreign_dir(tmp_path: Path) -> Path:
    """A socket directory that belongs to another user."""
    if os.geteuid() != 0:
        return Path("/")  # root's
    where = tmp_path / "taken"
    where.mkdir(mode=0o700)
    os.chown(where, 65534, 65534)
    return where


def _port_free(endpoint: str) -> bool:
    host, port = endpoint.removeprefix("tcp://").rsplit(":", 1)
    with socket.socket() as probe:
        try:
            probe.bind((host, int(port)))
        except OSError:
            return False
    return True


def test_no_private_place_falls_back_to_loopback_and_says_so_once(
    foreign_dir: Path, tmp_path: Path
) -> None:
    """TRAINMON_SOCKET_DIR owned by another user: the monitor listens on loopback tcp,
    the client publishes there, each says why in one line (once for two Monitors)."""
    if not _port_free(LEGACY_ENDPOINT):
        pytest.skip(f"{LEGACY_ENDPOINT} is taken on this machine")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINMON_")}
    env["TRAINMON_DIR"] = os.environ["TRAINMON_DIR"]  # (the session's: runs are kept)
    env["TRAINMON_SOCKET_DIR"] = str(foreign_dir)
    monitor = start_cli("tail", env=env, cwd=tmp_path)
    try:
        wait_for(lambda: not _port_free(LEGACY_ENDPOINT), 30, what="the monitor on tcp")
        assert monitor.stdout is not None and monitor.stderr is not None
        said = monitor.stderr.readline()
        assert "no private socket here" in said and "belongs to another user" in said
        assert f"listening on {LEGACY_ENDPOINT}" in said
        two = CLIENT.replace("mon.close()", "Monitor(run='second').close()\nmon.close()")
        done = subprocess.run(
            [sys.executable, "-c", two, "fallback"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == [LEGACY_ENDPOINT]
        said_by_client = done.stderr.splitlines()
        assert len(said_by_client) == 1, said_by_client
        assert "belongs to another user" in said_by_client[0]
        assert f"publishing to {LEGACY_ENDPOINT}" in said_by_client[0]
        assert '"run": "fallback"' in monitor.stdout.readline()
    finally:
        stop(monitor)


def test_second_monitor_on_an_ipc_path_refuses(tmp_path: Path) -> None:
    """A second monitor (or training binding) on an ipc path someone listens on refuses
    in one line; the first keeps receiving."""
    endpoint = ipc_endpoint(tmp_path)
    first = BackgroundMonitor([endpoint])
    try:
        with pytest.raises(EndpointError, match=r"another monitor .* is listening there"):
            Subscriber([endpoint])
        second = subprocess.run(
            [sys.executable, "-m", "trainmon", "tail", "--bind", endpoint],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1 and second.stderr.count("\n") == 1, second.stderr
        assert "is listening there" in second.stderr and "Traceback" not in second.stderr
        taker = Monitor(endpoint, bind=True, run="taker", record=False)  # (kept: not dropped)
        taker.log(loss=1.0)
        taker.close()
        assert taker.dropped == 1
        with Monitor(endpoint, run="after") as mon:
            mon.log(loss=2.0)
        first.wait(lambda: "after" in first.state.runs, 30, what="the first monitor's records")
        assert "taker" not in first.state.runs
    finally:
        first.close()


def test_a_socket_left_by_a_dead_monitor_is_taken(tmp_path: Path) -> None:
    """A socket file nobody listens on any more is no reason to refuse."""
    endpoint = ipc_endpoint(tmp_path)
    with socket.socket(socket.AF_UNIX) as stale:  # as a monitor killed with -9 leaves it
        stale.bind(endpoint.removeprefix("ipc://"))
    assert Path(endpoint.removeprefix("ipc://")).exists()
    source = BackgroundMonitor([endpoint])
    try:
        with Monitor(endpoint, run="fresh") as mon:
            mon.log(loss=1.0)
        source.wait(lambda: "fresh" in source.state.runs, 30)
    finally:
        source.close()


def test_binding_the_old_default_is_unchanged() -> None:
    """An explicit tcp endpoint works as before (no private socket is involved)."""
    endpoint = free_endpoint()
    source = Subscriber([endpoint])
    try:
        assert source.endpoints == [endpoint]
    finally:
        source.close()


def test_waiting_screen_on_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """On the private default the waiting screen says Monitor(), as the training needs
    nothing more; an older client's knock is on it; elsewhere the endpoint is named."""
    import io

    from rich.console import Console

    from trainmon.state import RunState
    from trainmon.view import ViewOptions, render
    from trainmon_client.endpoints import default_endpoint

    short = tempfile.mkdtemp(prefix="tm-")  # the address fits one line
    monkeypatch.setenv("TRAINMON_SOCKET_DIR", short)
    state = RunState()
    state.note_link("old client", "a publisher connected to tcp://127.0.0.1:5555, the default")

    def screen(address: str) -> str:
        out = io.StringIO()
        console = Console(file=out, width=100, height=30, color_system=None)
        console.print(render(state, ViewOptions(address=address), 0.0))
        return out.getvalue()

    default = screen(default_endpoint().endpoint)
    assert "mon = Monitor()" in default and "a publisher connected to" in default
    assert f"Waiting for records on ipc://{short}/monitor" in default
    other = screen("ipc:///elsewhere/sock")
    assert "mon = Monitor('ipc:///elsewhere/sock')" in other
    shutil.rmtree(short)


def test_client_fallback_is_said_once_a_process(foreign_dir: Path, tmp_path: Path) -> None:
    """Two Monitor()s without a private place: both publish to loopback tcp, one line
    says why (no monitor needed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINMON_")}
    env["TRAINMON_DIR"] = os.environ["TRAINMON_DIR"]  # (the session's: runs are kept)
    env["TRAINMON_SOCKET_DIR"] = str(foreign_dir)
    code = (
        "from trainmon_client import Monitor\n"
        "a, b = Monitor(run='a', flush_timeout_s=0), Monitor(run='b', flush_timeout_s=0)\n"
        "print(a.endpoint, b.endpoint)\n"
        "a.close(); b.close()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [LEGACY_ENDPOINT, LEGACY_ENDPOINT]
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "no private socket here" in lines[0], lines
    assert "belongs to another user" in lines[0]
