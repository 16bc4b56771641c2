"""Shared test helpers: free ports, polling with a deadline, publisher processes, tmux."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

import zmq

from trainmon.sources.recording import load
from trainmon.sources.subscriber import Subscriber
from trainmon.state import RunState
from trainmon_client import store
from trainmon_client.framing import FileFormatError
from trainmon_client.protocol import Record, decode
from trainmon_client.security import Curve

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
PUBLISHER = Path(__file__).resolve().parent / "publisher_proc.py"


def free_endpoint() -> str:
    """A loopback tcp endpoint nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{sock.getsockname()[1]}"


def ipc_endpoint(tmp_path: Path) -> str:
    return f"ipc://{tmp_path / ('s-' + uuid.uuid4().hex[:8])}"


def wait_for(
    condition: Callable[[], T],
    timeout_s: float = 10.0,
    interval_s: float = 0.02,
    what: str = "condition",
) -> T:
    """Poll ``condition`` until it returns something truthy, or fail after the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)


def drain_until(
    source: Subscriber,
    state: RunState,
    condition: Callable[[], bool],
    timeout_s: float = 10.0,
    what: str = "records",
) -> None:
    """Drain ``source`` into ``state`` until ``condition`` holds, or fail at the deadline."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        source.drain(state, budget_s=0.02)


def start_publisher(
    endpoint: str,
    *,
    run: str = "r",
    count: int = 100,
    bind: bool = False,
    delay_s: float = 0.0,
    hold_s: float = 0.0,
    epochs: int | None = None,
    env: dict[str, str] | None = None,
    extra: Sequence[str] = (),
) -> subprocess.Popen[str]:
    """A real publisher process that logs ``count`` records and closes (``extra``:
    more publisher_proc.py options, e.g. ``--metrics 30``)."""
    args = [
        sys.executable,
        str(PUBLISHER),
        endpoint,
        "--run",
        run,
        "--count",
        str(count),
        "--delay",
        str(delay_s),
        "--hold",
        str(hold_s),
    ]
    if bind:
        args.append("--bind")
    if epochs is not None:
        args += ["--epochs", str(epochs)]
    args += extra
    return subprocess.Popen(
        args,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop(proc: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    """Stop a process for sure: continue it if stopped, terminate, then kill."""
    if proc.poll() is None:
        try:
            os.kill(proc.pid, 18)  # SIGCONT, in case a test froze it
            proc.terminate()
            proc.wait(timeout=5)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            proc.kill()
            proc.wait(timeout=5)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


class Tmux:
    """One tmux server of our own (its own socket), one window, for one test."""

    def __init__(self, width: int = 100, height: int = 30) -> None:
        if shutil.which("tmux") is None:
            raise RuntimeError("tmux is not installed; .ci/run installs it")
        self.socket = f"trainmon-test-{uuid.uuid4().hex[:8]}"
        self.width, self.height = width, height
        self._tmux(
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            str(width),
            "-y",
            str(height),
            "env -u NO_COLOR -u FORCE_COLOR TERM=xterm-256color bash --norc --noprofile",
        )
        self._tmux("set-option", "-t", "t", "status", "off")

    def _tmux(self, *args: str) -> str:
        return subprocess.run(
            ["tmux", "-L", self.socket, *args],
            check=True,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout

    def type(self, text: str, enter: bool = True) -> None:
        self._tmux("send-keys", "-t", "t", "-l", text)
        if enter:
            self._tmux("send-keys", "-t", "t", "Enter")

    def keys(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", "t", *keys)

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "t")

    def wait_screen(
        self, test: Callable[[str], object], timeout_s: float = 15.0, what: str = "the tmux screen"
    ) -> str:
        """Poll the screen until ``test`` accepts it; the accepted screen."""

        def check() -> str:
            screen = self.screen()
            return screen if test(screen) else ""

        return wait_for(check, timeout_s, 0.05, what)

    def wait_text(self, text: str, timeout_s: float = 15.0) -> str:
        return self.wait_screen(lambda s: text in s, timeout_s, f"{text!r} on the tmux screen")

    def wait_gone(self, text: str, timeout_s: float = 15.0) -> str:
        return self.wait_screen(lambda s: text not in s, timeout_s, f"{text!r} to go")

    def pane_pid(self) -> int:
        return int(self._tmux("display-message", "-p", "-t", "t", "#{pane_pid}").strip())

    def close(self) -> None:
        """Kill whatever still runs in the pane (a test that failed half-way), then tmux."""
        try:
            shell = self.pane_pid()
        except (subprocess.SubprocessError, ValueError):
            shell = None
        if shell is not None:
            for pid in _descendants(shell):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=10)


def _descendants(pid: int) -> list[int]:
    """The processes below ``pid``, children first."""
    found: list[int] = []
    todo = [pid]
    while todo:
        out = subprocess.run(
            ["pgrep", "-P", str(todo.pop())], capture_output=True, text=True
        ).stdout.split()
        children = [int(child) for child in out]
        found += children
        todo += children
    return found


def start_cli(
    *args: str,
    stdout: int | IO[str] = subprocess.PIPE,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[str]:
    """Start ``python -m trainmon ARGS`` with no standard input (the caller stops it)."""
    return subprocess.Popen(
        [sys.executable, "-m", "trainmon", *args],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
    )


def command(*args: str) -> str:
    """A shell command line running ``trainmon`` with this interpreter."""
    return shlex.join([sys.executable, "-m", "trainmon", *args])


def zmq_push_raw(endpoint: str, messages: list[list[bytes]], settle: Callable[[], None]) -> None:
    """Send raw multipart messages from a PUB socket connected to ``endpoint``."""
    ctx = zmq.Context()
    pub = ctx.socket(zmq.XPUB)
    pub.setsockopt(zmq.LINGER, 1000)
    pub.connect(endpoint)
    try:
        settle()
        for message in messages:
            pub.send_multipart(message)
    finally:
        pub.close()
        ctx.term()


@contextlib.contextmanager
def raw_peer(endpoint: str, source: Subscriber, state: RunState) -> Iterator[zmq.Socket[bytes]]:
    """A raw XPUB connected to ``source`` at ``endpoint``, once its subscription has
    arrived (``source`` is drained meanwhile), for sending hand-made messages."""
    ctx = zmq.Context()
    pub = ctx.socket(zmq.XPUB)
    pub.setsockopt(zmq.SNDHWM, 0)
    pub.setsockopt(zmq.LINGER, 0)
    pub.connect(endpoint)
    try:
        deadline = time.monotonic() + 10
        while not pub.poll(10):  # the subscription arrives while the SUB is serviced
            source.drain(state, budget_s=0.01)
            assert time.monotonic() < deadline, "no subscription"
        pub.recv()
        yield pub
    finally:
        pub.close()
        ctx.term()


class BackgroundMonitor:
    """A real Subscriber drained into a RunState by a thread, as a monitor process would.

    In-process publishers need the monitor's socket serviced while the test's own
    thread is busy (a bound SUB sends its subscription only while it is being used).
    """

    def __init__(
        self,
        bind: list[str] | None = None,
        connect: list[str] | None = None,
        curve: Curve | None = None,
    ) -> None:
        import threading

        self.state = RunState()
        self.sink: Any = self.state  # what the source feeds: the state, or a test's wrapper
        self.lock = threading.Lock()
        self._source = Subscriber(bind or [], connect or [], curve=curve)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self.lock:
                self._source.drain(self.sink, budget_s=0.01)
            time.sleep(0.001)

    def wait(
        self, condition: Callable[[], object], timeout_s: float = 10.0, what: str = "records"
    ) -> None:
        def locked() -> object:
            with self.lock:
                return condition()

        wait_for(locked, timeout_s, 0.01, what)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._source.close()


class NotingSink:
    """A record sink that hands every record to a state and tells ``noted`` of each, with
    whether the state took it: a test sees what a source delivered without patching the
    state (whose methods are its only writers). Batches in columns are taken apart into
    records, so each value is checked, not just the count."""

    def __init__(self, state: RunState, noted: Callable[[Any, bool], None]) -> None:
        self.state = state
        self.noted = noted

    def apply(self, record: Any, now: float) -> bool:
        taken = self.state.apply(record, now)
        self.noted(record, taken)
        return taken

    def apply_columns(self, columns: Any, now: float) -> int:
        return sum(self.apply(record, now) for record in columns.records())

    def reject(self, reason: str, peer: str = "") -> None:
        self.state.reject(reason, peer)

    def refuse(self, reason: str, count: int) -> None:
        self.state.refuse(reason, count)

    def note_link(self, short: str, note: str) -> None:
        self.state.note_link(short, note)

    def note_end(self) -> None:
        self.state.note_end()


def wait_listening(endpoint: str, timeout_s: float = 15.0) -> None:
    """Wait until some process has bound the loopback tcp ``endpoint``."""
    host, port = endpoint.removeprefix("tcp://").rsplit(":", 1)

    def bound() -> bool:
        with socket.socket() as probe:
            try:
                probe.bind((host, int(port)))
            except OSError:
                return True
            return False

    wait_for(bound, timeout_s, 0.02, f"a listener on {endpoint}")


class Receiver:
    """A bound SUB socket that decodes every record sent to it (no state in between),
    serviced by a thread of its own (a bound SUB sends its subscription only while it
    is used, and the test's thread is busy logging)."""

    def __init__(self, endpoint: str) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        self.sock.bind(endpoint)
        self.records: list[Record] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.sock.poll(10):
                self.records += decode(self.sock.recv_multipart())

    def until(self, done: Any, timeout_s: float = 10.0) -> list[Record]:
        """Wait until ``done(records)`` holds, or fail at the deadline."""
        wait_for(lambda: done(list(self.records)), timeout_s, what="records")
        return self.records

    def until_bye(self, workers: int = 1) -> list[Record]:
        return self.until(lambda rs: sum(r.kind == "bye" for r in rs) >= workers)

    def metrics(self) -> list[Record]:
        return [r for r in self.records if r.kind == "metrics"]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close(0)
        self.ctx.term()


def start_kept_training(argv: Sequence[str], run: str, count: int) -> subprocess.Popen[str]:
    """A training process (``python ARGV``) that keeps its run ``run`` by default and
    prints "logged" once it has logged ``count`` steps; returned when all ``count`` are
    on disk, the process living on (the caller stops it)."""
    proc = subprocess.Popen(
        [sys.executable, *argv],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "logged\n"
        folder = wait_for(lambda: [r for r in store.scan() if r.name == run])[0]
        wait_for(lambda: kept_steps(folder.path) == count, what=f"{count} steps on disk")
    except BaseException:
        stop(proc)
        raise
    return proc


def kept_steps(folder: str) -> int:
    """The metrics records on disk in a kept run's folder (0 before a header is written)."""
    files = [str(path) for path in Path(folder).glob("*.tmr")]
    try:
        return sum(1 for record in load(files).records if record.kind == "metrics")
    except FileFormatError:
        return 0
