"""The publisher a training process uses: ``Monitor.log()`` and its I/O thread.

``log()`` only stamps the call and appends it to a bounded deque. A daemon I/O thread
validates, numbers, batches, encodes and sends with non-blocking sends on an XPUB
socket, whose subscription messages tell it when a monitor is listening. Everything
it has sent is kept in a bounded history that is sent again to each new subscriber, so
records logged before the monitor was there are not lost and a late monitor sees the run.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import logging
import math
import os
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

import msgpack
import zmq
from zmq.utils.monitor import recv_monitor_message

from trainmon_client.framing import FileFormatError, FrameWriter
from trainmon_client.identity import Identity, identify
from trainmon_client.protocol import (
    MAX_ALERT_TITLE,
    MAX_BATCH,
    MAX_METRICS,
    MAX_NAME_CHARS,
    MAX_PAYLOAD_BYTES,
    MAX_STEP,
    PROTOCOL_VERSION,
    clean_text,
    columns_wire,
    pack_payload,
    valid_name,
)
from trainmon_client.security import Curve, ZapHandler, is_loopback

__all__ = ["DEFAULT_ENDPOINT", "Monitor"]

DEFAULT_ENDPOINT: Final = "tcp://127.0.0.1:5555"
_SCHEMES: Final = ("tcp://", "ipc://", "inproc://")
_TICK_S: Final = 0.02  # the I/O thread's sleep when idle: at most this much latency
# Longest stretch of Python work the I/O thread does before it lets go of the GIL.
_SLICE_S: Final = 0.001
# Then it sleeps this long, so a training thread waiting for the GIL really gets it: a
# release that is taken straight back (a 0-timeout poll) looks to CPython like a switch
# and can keep the other thread waiting for as long as the backlog lasts.
_YIELD_S: Final = 0.0002
# Records per message at most: under load, fewer and larger messages cost the monitor
# less per record (it pays for each message, and for each metric of each message).
_MAX_BATCH_RECORDS: Final = 512
_CONFIG_TEXT_CHARS: Final = 1000  # config text kept per value (the monitor shows 200)
_MAX_HELLO_BYTES: Final = MAX_PAYLOAD_BYTES // 4  # a larger config is not sent
_JOIN_BYTES: Final = MAX_PAYLOAD_BYTES - 16  # history batches joined up to this (see _joined)
_CLOCK_EVERY: Final = 64  # records taken between looks at the clock (the slice's end)
_HEARTBEAT_S: Final = 1.0
_EVENTS: Final = (
    zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_DISCONNECTED
    | zmq.EVENT_CONNECT_RETRIED
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
)

# A record on its way out: (seq, time, step, epoch, metric values).
_Row = tuple[int, float, int | None, int | None, dict[str, Any]]

_ALERT: Final = object()  # marks an alert() call in the queue

_log = logging.getLogger("trainmon_client")
_now = time.time
_live: weakref.WeakSet[Monitor] = weakref.WeakSet()
_abandoned: list[object] = []  # a parent's zmq objects, kept unreachable-but-alive in a child
_instances = itertools.count()


def _default_run() -> str:
    script = clean_text(_script_name()).replace(" ", "_")  # a file name may hold anything
    for var in ("TORCHELASTIC_RUN_ID", "SLURM_JOB_ID"):
        job = os.environ.get(var, "").strip()
        if job and job != "none":
            return f"{script}-{job}"[:MAX_NAME_CHARS]
    return f"{script}-{time.strftime('%Y%m%d-%H%M%S')}"[:MAX_NAME_CHARS]


def _script_name() -> str:
    """What this Python runs, in a word: the script, the package run with ``-m``, a
    notebook, or just python (``-c``, standard input, the REPL)."""
    path = sys.argv[0] if sys.argv else ""
    name = os.path.splitext(os.path.basename(path))[0]
    if name == "__main__":  # python -m package
        name = os.path.basename(os.path.dirname(path))
    if name == "ipykernel_launcher":
        return "notebook"
    return name if name and not name.startswith("-") else "python"


class Monitor:
    """Publishes a training process's metrics to ``trainmon watch``.

    Args:
        endpoint: where to publish; ``$TRAINMON_ENDPOINT``, else ``tcp://127.0.0.1:5555``.
        run: the run name; ``$TRAINMON_RUN``, else the script name and start time.
        bind: listen on ``endpoint`` (monitors connect to it) instead of connecting.
        total_epochs: epochs the run will do, for the monitor's progress and ETA.
        total_steps: steps the run will do, for the same.
        config: hyperparameters, shown by the monitor (plain values only).
        max_queue: records held for the I/O thread before new ones are dropped.
        history: records kept to send again to a monitor that attaches later (at
            least this many, and less than one batch of up to 512 more).
        flush_timeout_s: the longest ``close()`` waits to deliver what is left.
        record_to: also append every record to this file (flushed every second), so
            the run is kept even if no monitor ever watched; ``trainmon replay`` reads
            it. A forked child records to the same name with ``.PID`` before the suffix.
        curve_secret: this process's ``.key_secret`` file: encrypt with CURVE
            (``$TRAINMON_CURVE_SECRET``). Connecting, also give ``curve_server``, the
            monitor's or relay's ``.key`` file (``$TRAINMON_CURVE_SERVER``); binding,
            ``curve_allow``, a directory of the monitors' ``.key`` files that may attach
            (``$TRAINMON_CURVE_ALLOW``).
    """

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        run: str | None = None,
        bind: bool = False,
        total_epochs: int | None = None,
        total_steps: int | None = None,
        config: Mapping[str, Any] | None = None,
        max_queue: int = 100_000,
        history: int = 10_000,
        flush_timeout_s: float = 2.0,
        record_to: str | os.PathLike[str] | None = None,
        curve_secret: str | None = None,
        curve_server: str | None = None,
        curve_allow: str | None = None,
    ) -> None:
        self.endpoint = endpoint or os.environ.get("TRAINMON_ENDPOINT") or DEFAULT_ENDPOINT
        if not self.endpoint.startswith(_SCHEMES):
            raise ValueError(
                f"endpoint {self.endpoint!r} must start with tcp://, ipc:// or inproc://"
            )
        self.run = (run or os.environ.get("TRAINMON_RUN") or _default_run())[:MAX_NAME_CHARS]
        if not valid_name(self.run):
            raise ValueError(
                f"run name {self.run!r}: use 1 to 128 characters, no control characters"
            )
        self.bind = bind
        self.total_epochs = _count_arg(total_epochs, "total_epochs")
        self.total_steps = _count_arg(total_steps, "total_steps")
        if config is not None and not isinstance(config, Mapping):
            raise TypeError(
                f"config must be a mapping of names to plain values, not {type(config).__name__}"
            )
        self.config = dict(config or {})
        self.flush_timeout_s = flush_timeout_s
        self._max_queue = max_queue
        self._history_records = history
        self.record_to = None if record_to is None else os.fspath(record_to)
        self.curve = Curve.from_env(curve_secret, curve_server, curve_allow)
        self._latest: dict[str, tuple[float, float]] = {}
        self._closed = False
        self._start()
        _live.add(self)

    # -- the hot path ---------------------------------------------------------------

    def log(
        self,
        metrics: Mapping[str, Any] | None = None,
        /,
        *,
        step: int | None = None,
        epoch: int | None = None,
        **named: Any,
    ) -> None:
        """Publish metric values, e.g. ``log(loss=0.3, accuracy=0.9, step=120)``.

        Values are numbers or anything with ``__float__`` (numpy scalars, 0-d tensors);
        a value that is not is dropped with one warning per metric name. ``step`` counts
        up by one per call when not given; ``epoch`` (from 0) stays as last given or set
        by :meth:`set_epoch`. Never blocks and never raises: when the queue is full the
        record is dropped and counted.
        """
        queue = self._queue
        if len(queue) < self._max_queue:
            if metrics is not None and isinstance(metrics, Mapping):
                # Copy now: the caller may reuse its dict. (A broken mapping is left for
                # the I/O thread to warn about.)
                with contextlib.suppress(Exception):
                    named, metrics = {**metrics, **named}, None
            queue.append((_now(), step, epoch, metrics, named))
        else:
            self._count_drop()

    # -- the guide's calls ----------------------------------------------------------

    def record_loss(self, loss: float) -> None:
        """Publish the training loss (metric ``loss``)."""
        self._latest["loss"] = (_now(), loss)
        self.log(loss=loss)

    def record_accuracy(self, accuracy: float) -> None:
        """Publish the accuracy, a fraction from 0 to 1 (metric ``accuracy``)."""
        self._latest["accuracy"] = (_now(), accuracy)
        self.log(accuracy=accuracy)

    def record_gradient(self, grad_norm: float) -> None:
        """Publish the gradient norm (metric ``grad_norm``)."""
        self.log(grad_norm=grad_norm)

    def alert(self, title: str, text: str = "") -> None:
        """Raise an alert on the monitor's alert line (and its bell, with ``--bell``),
        e.g. ``alert("validation loss went up", "epoch 3: 0.41 -> 0.52")``.

        Never blocks and never raises; the title is cut to 200 characters and the
        text to 2,000.
        """
        queue = self._queue
        if len(queue) < self._max_queue:
            queue.append((_now(), None, None, _ALERT, {"title": title, "text": text}))
        else:
            self._count_drop()

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch`` (from 0); later records carry it until it changes."""
        self.log(epoch=epoch)

    def current_loss(self) -> float | None:
        """The last loss recorded, or None.

        ``record_loss`` sets it at once; a ``log(loss=...)`` counts once the I/O thread
        has taken the call (within a few milliseconds).
        """
        return self._current("loss")

    def current_accuracy(self) -> float | None:
        """The last accuracy recorded, or None."""
        return self._current("accuracy")

    # -- lifecycle ------------------------------------------------------------------

    @property
    def worker(self) -> str:
        """This process's worker id, as the monitor shows it."""
        return self._worker

    @property
    def dropped(self) -> int:
        """Records dropped because the queue was full."""
        return self._dropped

    def close(self, timeout_s: float | None = None) -> None:
        """Deliver what is queued (for at most ``timeout_s``), say ``bye``, and stop.

        Called automatically at interpreter exit. Later ``log()`` calls are ignored.
        """
        if self._closed:
            return
        self._closed = True
        self.log = _ignore  # type: ignore[method-assign]
        _live.discard(self)
        budget = self.flush_timeout_s if timeout_s is None else timeout_s
        self._deadline = time.monotonic() + max(budget, 0.0)
        self._closing.set()
        self._thread.join(max(budget, 0.0) + 0.5)

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        role = "bind" if self.bind else "connect"
        return f"Monitor(run={self.run!r}, {role}={self.endpoint!r}, worker={self.worker!r})"

    # -- internals ------------------------------------------------------------------

    def _start(self) -> None:
        """Open the socket here, so a bad address fails now, and start the I/O thread."""
        self._identity: Identity = identify()
        # Several Monitors in one process are several workers: number the later ones.
        index = next(_instances)
        self._worker = self._identity.worker + (f"/{index}" if index else "")
        self._queue: deque[tuple[float, int | None, int | None, Any, dict[str, Any]]] = deque()
        self._drop_lock = threading.Lock()
        self._dropped = 0
        self._closing = threading.Event()
        self._deadline = math.inf
        self._ctx = zmq.Context()
        sock = self._ctx.socket(zmq.XPUB)
        sock.setsockopt(zmq.XPUB_VERBOSE, 1)
        sock.setsockopt(zmq.SNDHWM, 500)  # messages; each a batch of up to 512 records
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RECONNECT_IVL, 100)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
        # TCP keepalive notices a dead peer on an idle link and makes ZeroMQ reconnect.
        # (ZeroMQ's own heartbeats are not used: under a flood their pings queue behind
        # the data, time out, and tear down a healthy connection again and again.)
        sock.setsockopt(zmq.TCP_KEEPALIVE, 1)
        sock.setsockopt(zmq.TCP_KEEPALIVE_IDLE, 10)
        sock.setsockopt(zmq.TCP_KEEPALIVE_INTVL, 2)
        sock.setsockopt(zmq.TCP_KEEPALIVE_CNT, 3)
        events = sock.get_monitor_socket(_EVENTS)
        writer = None
        self._zap: ZapHandler | None = None
        try:
            if self.curve is not None:
                allowed = self.curve.apply(sock, server=self.bind)
                if self.bind:
                    self._zap = ZapHandler(self._ctx, allowed)
            elif self.bind and not is_loopback(self.endpoint):
                _log.warning(
                    "trainmon: %s is reachable from other machines and not encrypted; "
                    "pass curve_secret and curve_allow (see trainmon keygen)",
                    self.endpoint,
                )
            (sock.bind if self.bind else sock.connect)(self.endpoint)
            if self.record_to is not None:
                writer = FrameWriter(self.record_to)
        except (zmq.ZMQError, OSError, FileFormatError, ValueError) as exc:
            sock.close(0)
            events.close(0)
            if self._zap is not None:
                self._zap.close()
            self._ctx.term()
            if isinstance(exc, ValueError) and not isinstance(exc, FileFormatError):
                raise
            if isinstance(exc, zmq.ZMQError):
                verb = "bind" if self.bind else "connect"
                hint = ""
                if exc.errno == zmq.EADDRINUSE:
                    hint = "; another training process or monitor holds it: use another port"
                # (from None: ZeroMQ's own error says no more, and one traceback reads better)
                raise ValueError(f"cannot {verb} {self.endpoint}: {exc.strerror}{hint}") from None
            raise ValueError(f"cannot record to {self.record_to}: {exc}") from exc
        self._thread = threading.Thread(
            target=_IOLoop(self, sock, events, writer).run, name="trainmon-io", daemon=True
        )
        self._thread.start()
        if "multiprocessing.util" in sys.modules:
            # A multiprocessing child ends with os._exit(), skipping atexit; its
            # finalizers still run, so register close() there as well.
            import multiprocessing.util

            multiprocessing.util.Finalize(self, self.close, exitpriority=10)

    def _count_drop(self, count: int = 1) -> None:
        with self._drop_lock:
            self._dropped += count

    def _current(self, name: str) -> float | None:
        latest = self._latest.get(name)
        return None if latest is None else latest[1]

    def _after_fork_in_child(self) -> None:
        """Leave the parent's socket and thread alone; start afresh on the first log."""
        _abandoned.append((self._ctx, self._thread))
        self._queue = deque()
        if self._closed:
            return
        if self.record_to is not None:
            stem, suffix = os.path.splitext(self.record_to)
            self.record_to = f"{stem}.{os.getpid()}{suffix}"
        self.log = self._restart_then_log  # type: ignore[method-assign]

    def _restart_then_log(self, *args: Any, **kwargs: Any) -> None:
        with _fork_lock:
            if self.__dict__.get("log") == self._restart_then_log:
                del self.log
                try:
                    self._start()
                except Exception as exc:  # never raise inside training
                    _log.warning("trainmon: cannot publish from child process: %s", exc)
                    self.log = _ignore  # type: ignore[method-assign]
                    return
        self.log(*args, **kwargs)


class _IOLoop:
    """The I/O thread's state: everything here is touched by that thread only."""

    def __init__(
        self,
        monitor: Monitor,
        sock: zmq.Socket[bytes],
        events: zmq.Socket[bytes],
        writer: FrameWriter | None = None,
    ):
        self.mon = monitor
        self.writer = writer
        self.sock = sock
        self.events = events
        self.topic = monitor.run.encode()
        ident = monitor._identity
        self.worker = monitor._worker
        self.run_name = monitor.run
        self.seq = 0
        self.step = -1
        self.epoch: int | None = None
        self.logged = 0
        self.peers = 0
        self.refused = False
        self.deadline = 0.0  # while closing: how long a full pipe may be waited on
        self.prefixes: set[bytes] = set()
        self.history: deque[tuple[int, int, bytes]] = deque()  # (records, first seq, payload)
        self.history_records = 0
        self.row_cost_s = 2e-6  # seconds to publish one row (measured as it goes)
        self.warned: set[str] = set()
        self.poller = zmq.Poller()
        self.poller.register(sock, zmq.POLLIN)
        self.poller.register(events, zmq.POLLIN)
        info: dict[str, Any] = {"host": ident.host, "pid": ident.pid}
        for key, value in (
            ("rank", ident.rank),
            ("world", ident.world),
            ("local_rank", ident.local_rank),
            ("epochs", monitor.total_epochs),
            ("steps", monitor.total_steps),
        ):
            if value is not None:
                info[key] = value
        if monitor.config:
            info["config"] = _plain(monitor.config)
        self.info = info
        self.hello_wire = self._wire("hello", _now(), i=info)
        self.hello = pack_payload(self.hello_wire)
        if len(self.hello) > _MAX_HELLO_BYTES:  # a monitor would refuse the whole hello
            self._warn_once(
                "<config>",
                f"config of {len(self.hello):,} bytes packed not sent (at most "
                f"{_MAX_HELLO_BYTES:,}; the monitor shows 64 short items of it)",
                dropped=False,
            )
            info.pop("config", None)
            self.hello_wire = dict(self.hello_wire, i=info)  # (the same sequence number)
            self.hello = pack_payload(self.hello_wire)
        if writer is not None:
            writer.write(self.hello)

    @property
    def subscribed(self) -> bool:
        return any(self.topic.startswith(p) for p in self.prefixes)

    def run(self) -> None:
        mon = self.mon
        next_beat = time.monotonic() + _HEARTBEAT_S
        try:
            while not mon._closing.is_set():
                if self._drain(time.monotonic() + _SLICE_S):
                    time.sleep(_YIELD_S)
                    self._poll(0)
                else:
                    self._poll(int(_TICK_S * 1000))
                if time.monotonic() >= next_beat:
                    self._heartbeat()
                    if self.writer is not None:
                        self.writer.flush()
                    next_beat = time.monotonic() + _HEARTBEAT_S
            self._finish()
        except Exception:  # the thread must never take the training down
            _log.exception("trainmon: publisher stopped")
        finally:
            if mon._zap is not None:
                mon._zap.close()
            if self.writer is not None:
                self.writer.close()
            self.events.close(0)
            self.sock.close()  # honours the LINGER _finish set for the last records
            mon._ctx.term()

    def _poll(self, timeout_ms: int) -> None:
        """Wait for socket events (releasing the GIL) and handle them."""
        ready = dict(self.poller.poll(timeout_ms))
        if self.events in ready:
            while self.events.poll(0):
                event = recv_monitor_message(self.events)["event"]
                if event == zmq.EVENT_CONNECT_RETRIED:
                    self.refused = True
                elif event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                    self.peers += 1
                elif event in (
                    zmq.EVENT_HANDSHAKE_FAILED_AUTH,
                    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
                ):
                    self.refused = True
                    self._warn_once(
                        "<handshake>",
                        f"the handshake with {self.mon.endpoint} failed: the keys "
                        "do not match, or only one side encrypts (curve_* options)",
                        dropped=False,
                    )
                else:
                    self.peers = max(self.peers - 1, 0)
        if self.sock in ready:
            while self.sock.poll(0):
                message = self.sock.recv()
                if message[:1] == b"\x01":
                    self.prefixes.add(message[1:])
                    if self.subscribed:
                        self._resend()
                elif message[:1] == b"\x00":
                    self.prefixes.discard(message[1:])

    def _resend(self) -> None:
        """A monitor subscribed: send hello and the whole history (it drops repeats)."""
        hello = self.hello
        if self.history and self.history[0][1] > 1:
            # Older records were let go: say where the history starts, so a late
            # monitor does not count them as lost on the way.
            wire = dict(self.hello_wire, i={**self.info, "from": self.history[0][1]})
            hello = pack_payload(wire)
        self._send(hello)
        for payload in _joined(payload for _, _, payload in self.history):
            self._send(payload)

    def _send(self, payload: bytes) -> None:
        """Send without blocking; a full pipe drops the batch and the monitor counts the gap.

        While closing (``deadline`` set) a full pipe is waited on instead, up to it.
        """
        while True:
            try:
                self.sock.send_multipart((self.topic, payload), flags=zmq.NOBLOCK)
                return
            except zmq.Again:
                if time.monotonic() >= self.deadline:
                    return
                time.sleep(0.005)

    def _drain(self, until: float) -> bool:
        """Turn queued calls into records and send them; True if more are waiting."""
        queue = self.mon._queue
        rows: list[_Row] = []
        taken = 0
        while queue:
            taken += 1
            try:
                row = self._take(*queue.popleft())
            except Exception as exc:  # whatever was logged, the thread goes on
                self._warn_once("<record>", f"cannot publish a record ({exc!r})")
                self.mon._count_drop()
                continue
            if isinstance(row, dict):  # an alert: after the rows before it, on its own
                if rows:
                    self._publish_rows(rows)
                    rows = []
                self._publish([row], 1, row["s"])
            elif row is not None:
                rows.append(row)
            if len(rows) >= _MAX_BATCH_RECORDS:
                self._publish_timed(rows)
                rows = []
            # Stop in time for the rows taken so far to go out before the slice ends
            # (a smaller batch), so the GIL is held about a slice whatever the batch size.
            if (
                taken % _CLOCK_EVERY == 0
                and time.monotonic() + len(rows) * self.row_cost_s >= until
            ):
                break
        if rows:
            self._publish_timed(rows)
        return bool(queue)

    def _publish_timed(self, rows: list[_Row]) -> None:
        """Publish ``rows`` and keep an average of what one row costs to publish."""
        started = time.perf_counter()
        self._publish_rows(rows)
        cost = (time.perf_counter() - started) / len(rows)
        self.row_cost_s += 0.2 * (cost - self.row_cost_s)

    def _take(
        self, t: float, step: int | None, epoch: int | None, metrics: Any, named: dict[str, Any]
    ) -> _Row | dict[str, Any] | None:
        if metrics is _ALERT:
            self.logged += 1
            title = str(named["title"])[:MAX_ALERT_TITLE] or "alert"
            return self._wire("alert", t, a={"title": title, "text": str(named["text"])[:2000]})
        if metrics is None and _plain_floats(named):
            values: dict[str, Any] = named  # the common case, checked at a glance
        else:
            values = self._numbers(metrics, named)
        if epoch is not None:
            if type(epoch) is not int or not 0 <= epoch <= MAX_STEP:
                self._warn_once("epoch", f"epoch must be an int from 0 to 2**53, not {epoch!r}")
            else:
                self.epoch = epoch
        if step is not None:
            if type(step) is int and 0 <= step <= MAX_STEP:
                self.step = step
            else:
                self._warn_once("step", f"step must be an int from 0 to 2**53, not {step!r}")
                step = None
        if step is None and values:
            self.step += 1
        if not values and epoch is None:
            return None
        self.logged += 1
        if "loss" in values:
            self.mon._latest["loss"] = (t, values["loss"])
        if "accuracy" in values:
            self.mon._latest["accuracy"] = (t, values["accuracy"])
        seq = self.seq
        self.seq = seq + 1
        return (seq, t, self.step if self.step >= 0 else None, self.epoch, values)

    def _publish_rows(self, rows: list[_Row]) -> None:
        """Send consecutive records as ``cols`` items: one per run of the same names."""
        items: list[dict[str, Any]] = []
        start = 0
        names = tuple(rows[0][4])
        for index in range(1, len(rows)):
            these = tuple(rows[index][4])
            if these != names:
                items.append(self._columns(rows[start:index], names))
                start, names = index, these
        items.append(self._columns(rows[start:], names))
        payload = self._pack(items, len(rows))
        if payload is None:
            return
        if len(payload) > MAX_PAYLOAD_BYTES and len(rows) > 1:
            # Too large for a monitor to take (many long metric names, changing from
            # record to record, each change repeating them): two halves instead.
            half = len(rows) // 2
            self._publish_rows(rows[:half])
            self._publish_rows(rows[half:])
            return
        self._keep_and_send(payload, len(rows), rows[0][0])

    def _columns(self, rows: list[_Row], names: tuple[str, ...]) -> dict[str, Any]:
        seqs, times, steps, epochs, values = zip(*rows, strict=True)
        columns = zip(*(v.values() for v in values), strict=True) if names else ()
        return columns_wire(
            self.run_name,
            self.worker,
            seqs[0],
            times,
            steps,
            epochs,
            dict(zip(names, columns, strict=True)),
        )

    def _numbers(self, metrics: Any, named: dict[str, Any]) -> dict[str, float | int]:
        if metrics is not None:
            if isinstance(metrics, Mapping):
                named = {**metrics, **named}
            else:
                self._warn_once("<positional>", "log() takes a mapping of metric values")
        out: dict[str, float | int] = {}
        for name, value in named.items():
            kind = type(value)
            if kind is float or (kind is int and -(2**63) <= value < 2**63):
                number: float | int = value
            else:
                try:
                    number = float(value)
                except Exception:
                    self._warn_once(str(name), f"metric {name!r}: {kind.__name__} is not a number")
                    continue
            if not valid_name(name):
                self._warn_once(
                    repr(name)[:40],
                    "metric names are strings of 1-128 characters without control characters",
                )
                continue
            if len(out) >= MAX_METRICS:
                self._warn_once("<too-many>", f"more than {MAX_METRICS} metrics in one call")
                break
            out[name] = number
        return out

    def _warn_once(self, key: str, text: str, dropped: bool = True) -> None:
        if key not in self.warned:
            self.warned.add(key)
            _log.warning("trainmon: %s%s", text, "; dropped (warned once)" if dropped else "")

    def _wire(self, kind: str, t: float, **fields: Any) -> dict[str, Any]:
        wire = {"v": PROTOCOL_VERSION, "k": kind, "r": self.run_name, "w": self.worker}
        wire["s"] = self.seq
        wire["t"] = t
        wire.update(fields)
        self.seq += 1
        return wire

    def _publish(self, items: list[dict[str, Any]], records: int, first_seq: int) -> None:
        payload = self._pack(items, records)
        if payload is not None:
            self._keep_and_send(payload, records, first_seq)

    def _pack(self, items: list[dict[str, Any]], records: int) -> bytes | None:
        """The encoded batch; None (its records counted as dropped) if it cannot be."""
        try:
            return pack_payload(items)
        except (ValueError, OverflowError, TypeError) as exc:  # defensive: never expected
            self._warn_once("<pack>", f"cannot encode a batch ({exc})")
            self.mon._count_drop(records)
            return None

    def _keep_and_send(self, payload: bytes, records: int, first_seq: int) -> None:
        """Record, keep in the history and send an encoded batch."""
        if self.writer is not None:
            self.writer.write(payload)
        self.history.append((records, first_seq, payload))
        self.history_records += records
        # Keep at least the last `history` records: the oldest batch goes only if the
        # rest still hold that many (so up to a batch more are kept).
        limit, history = self.mon._history_records, self.history
        while len(history) > 1 and self.history_records - history[0][0] >= limit:
            self.history_records -= history.popleft()[0]
        if self.subscribed:
            self._send(payload)

    def _counters(self) -> dict[str, int]:
        return {
            "logged": self.logged,
            "dropped": self.mon._dropped,
            "queued": len(self.mon._queue),
        }

    def _heartbeat(self) -> None:
        if not self.subscribed:
            return
        last_used = self.seq - 1
        wire = self._wire("heartbeat", _now(), c=self._counters())
        self.seq = last_used + 1  # a heartbeat carries the last number used, takes none
        wire["s"] = last_used
        self._send(pack_payload(wire))

    def _finish(self) -> None:
        """Flush the queue and say bye, within the close deadline."""
        deadline = self.mon._deadline
        self._poll(0)
        while not self.subscribed and time.monotonic() < deadline:
            # A monitor may be connecting, its subscription on the way: wait for it,
            # unless nobody can be there (nothing connected to us, or refused).
            if self.peers == 0 and (self.mon.bind or self.refused):
                break
            self._poll(10)
        if self.subscribed:
            # From here a full pipe makes send() say so (rather than drop silently), so
            # the last records and the bye wait for a slow monitor, up to the deadline.
            self.sock.setsockopt(zmq.XPUB_NODROP, 1)
        # Keep the last quarter of the budget for the bye, which carries the final counts.
        flush_until = deadline - (deadline - time.monotonic()) / 4
        self.deadline = flush_until
        while self.mon._queue and time.monotonic() < flush_until:
            self._drain(flush_until)
        if self.mon._queue:  # out of time: these are dropped, and counted as such
            self.mon._count_drop(len(self.mon._queue))
            self.mon._queue.clear()
        self.deadline = deadline
        bye = self._wire("bye", _now(), c=self._counters())
        self._publish([bye], 1, bye["s"])
        if self.subscribed:
            remaining_ms = int(max(deadline - time.monotonic(), 0) * 1000)
            self.sock.setsockopt(zmq.LINGER, remaining_ms)


def _plain_floats(named: dict[str, Any]) -> bool:
    """Whether every value is a float under a short name: nothing to convert or check."""
    if len(named) > MAX_METRICS:
        return False
    for name, value in named.items():
        if (  # valid_name(), inlined: this runs for every name of every record
            type(value) is not float
            or type(name) is not str
            or not 0 < len(name) <= MAX_NAME_CHARS
            or not (name.isprintable() or valid_name(name))
        ):
            return False
    return True


def _count_arg(value: float | None, what: str) -> int | None:
    """A total the monitor can show: a whole number from 1 to 2**53, or None."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if type(value) is not int or not 0 < value <= MAX_STEP:
        raise ValueError(f"{what} must be a whole number from 1 to 2**53, not {value!r}")
    return value


def _ignore(*args: Any, **kwargs: Any) -> None:
    """Stands in for ``log`` once a Monitor is closed."""


def _joined(
    payloads: Iterable[bytes], max_items: int = MAX_BATCH, max_bytes: int = _JOIN_BYTES
) -> Iterator[bytes]:
    """Consecutive batches as few messages as fit (``max_items``, ``max_bytes``):
    their msgpack arrays' items laid end to end under one header, nothing decoded.

    A history logged slowly is thousands of small batches; re-sent as they are, they
    overflow the queues on the way (a relay's, the monitor's) and are lost."""
    parts: list[bytes] = []
    items = size = 0
    for payload in payloads:
        count, start = _array_head(payload)
        if items and (not count or items + count > max_items or size + len(payload) > max_bytes):
            yield _array_header(items) + b"".join(parts)
            parts, items, size = [], 0, 0
        if not count:  # not an array of items (or an empty one): as it is, in its place
            yield payload
            continue
        parts.append(payload[start:])
        items += count
        size += len(payload)
    if parts:
        yield _array_header(items) + b"".join(parts)


def _array_head(payload: bytes) -> tuple[int, int]:
    """A msgpack array's length and where its items start; (0, 0) if not an array."""
    reader = msgpack.Unpacker()
    reader.feed(payload[:5])  # an array's header is at most 5 bytes
    try:
        return reader.read_array_header(), reader.tell()
    except (ValueError, msgpack.OutOfData):  # not an array (or too short for one)
        return 0, 0


def _array_header(count: int) -> bytes:
    return msgpack.Packer().pack_array_header(count)  # type: ignore[no-any-return]


def _plain(value: Any, depth: int = 0) -> Any:
    """A msgpack-safe copy of config values: nested plain data, else their text."""
    if isinstance(value, str):
        return value[:_CONFIG_TEXT_CHARS]  # the monitor shows 200 characters of one
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    if depth < 4 and isinstance(value, Mapping):
        return {str(k)[:MAX_NAME_CHARS]: _plain(v, depth + 1) for k, v in list(value.items())[:256]}
    if depth < 4 and isinstance(value, (list, tuple)):
        return [_plain(v, depth + 1) for v in value[:256]]
    return str(value)[:256]


_fork_lock = threading.Lock()


def _after_fork_in_child() -> None:
    global _fork_lock, _instances
    _fork_lock = threading.Lock()
    _instances = itertools.count()
    for monitor in list(_live):
        monitor._after_fork_in_child()


def _close_all() -> None:
    for monitor in list(_live):
        monitor.close()


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_close_all)
