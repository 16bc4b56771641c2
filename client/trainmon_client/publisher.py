"""The publisher a training process uses: ``Monitor.log()`` and its I/O thread.

``log()`` stamps the call, takes the values as they are at the call (see values.py) and
appends it to a bounded deque. A daemon I/O thread
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
import socket
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

from trainmon_client.endpoints import (
    LEGACY_ENDPOINT,
    default_endpoint,
    endpoint_problem,
    fallback_warning,
    ipc_in_use,
    ipc_path,
    needs_ipv6,
)
from trainmon_client.framing import BackgroundWriter
from trainmon_client.identity import Identity, identify, launch
from trainmon_client.links import tune_link
from trainmon_client.memguard import MemoryGuard, megabytes, rebind
from trainmon_client.protocol import (
    MAX_ALERT_TITLE,
    MAX_BATCH,
    MAX_METRICS,
    MAX_NAME_CHARS,
    MAX_PAYLOAD_BYTES,
    MAX_STEP,
    MAX_TOPIC_BYTES,
    PROTOCOL_VERSION,
    clean_text,
    columns_wire,
    escape_text,
    pack_payload,
    valid_name,
)
from trainmon_client.security import Curve, ZapHandler, is_loopback
from trainmon_client.values import (
    NotANumber,
    capture_count,
    capture_values,
    count_value,
    metric_value,
)

__all__ = ["DEFAULT_ENDPOINT", "Monitor"]

# Loopback tcp: the default before 0.2, and where no private socket can be made. The
# default is a socket of the user's own: endpoints.default_endpoint().
DEFAULT_ENDPOINT: Final = LEGACY_ENDPOINT
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
# A recording's frame holds at most this many records, and about this many values
# (a few KiB): damage in the middle of a file costs one frame.
_FRAME_RECORDS: Final = 64
_FRAME_VALUES: Final = 512
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
_Row = tuple[int, float, int | None, int | float | None, dict[str, Any]]

_ALERT: Final = object()  # marks an alert() call in the queue
_HELLO: Final = object()  # marks new totals or config in the queue: a new hello goes out
_MAX_WARNINGS: Final = 64  # different warnings said at most; then one line says so
_MAX_LOCAL_WORLD: Final = 64  # ranks of one machine that bind consecutive ports at most
# What comes in is only subscriptions (a byte and a topic): a larger frame, CURVE's
# handshake and box included, is a peer to drop (ZeroMQ does it before reading it in).
_MAX_INBOUND_BYTES: Final = 1024 + 2 * MAX_TOPIC_BYTES
_MAX_INBOUND_MESSAGES: Final = 256  # read per wake-up at most: publishing goes on meanwhile
# Memory grown this far past its low mark makes the I/O thread reopen its socket: an
# endless multipart message accumulates inside libzmq (see memguard); a reopening that
# frees nothing doubles it, so training that grows for its own reasons is left alone.
_MEMORY_ALLOWANCE: Final = 512 << 20

_log = logging.getLogger("trainmon_client")


class _Escaped(logging.Filter):
    """What the client says names files and endpoints a user gave: their control
    characters are written as escapes, never sent to the terminal."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not message.isprintable():
            record.msg, record.args = escape_text(message), None
        return True


_log.addFilter(_Escaped())
_now = time.time
_live: weakref.WeakSet[Monitor] = weakref.WeakSet()
_fallback_said = False  # the default's fallback to loopback tcp is said once a process
_abandoned: list[object] = []  # a parent's zmq objects, kept unreachable-but-alive in a child
_instances = itertools.count()


def _default_run() -> str:
    """The script's name and its launch (see :func:`identity.launch`): the ranks of one
    job share it, processes started separately never do."""
    script = clean_text(_script_name()).replace(" ", "_")  # a file name may hold anything
    suffix = clean_text(launch()).replace(" ", "_")[: MAX_NAME_CHARS // 2]
    return f"{script[: MAX_NAME_CHARS - len(suffix) - 1]}-{suffix}"


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

    Nothing that depends on the machine makes it raise (a port in use, an endpoint from
    the environment that cannot be used, a ``record_to`` that cannot be written): it
    says so in one line on stderr and training goes on; what cannot be delivered is
    counted in :attr:`dropped`. Arguments wrong in the code itself raise TypeError or
    ValueError.

    Args:
        endpoint: where to publish; ``$TRAINMON_LISTEN`` (which also makes it bind),
            else ``$TRAINMON_ENDPOINT``, else this user's private socket, where
            ``trainmon watch`` listens by default (``ipc:///tmp/trainmon-UID/monitor``;
            loopback ``tcp://127.0.0.1:5555`` where none can be made, said once).
            An IPv6 address goes in brackets: ``tcp://[::1]:5555``.
        run: the run name; ``$TRAINMON_RUN``, else the script name and its launch:
            the ranks of one torchrun, SLURM or MPI job and ``multiprocessing``
            children share a run, processes started separately never do.
        bind: listen on ``endpoint`` (monitors connect to it) instead of connecting;
            by default, bind when the endpoint comes from ``$TRAINMON_LISTEN``. Of
            several ranks on one machine, local rank ``k`` binds the tcp port + ``k``
            (a monitor connecting to the port finds the others).
        total_epochs: epochs the run will do, for the monitor's progress and ETA
            (2.5 is fine); see also :meth:`set_totals`.
        total_steps: steps the run will do, for the same.
        config: hyperparameters, shown by the monitor (plain values only); see also
            :meth:`set_config`.
        max_queue: calls held for the I/O thread before new ones are dropped.
        max_queue_values: about how many metric values those calls hold at most:
            the bound in calls is lowered to this over the values per call (the
            newest calls'), so a flood of large calls is dropped sooner. Queued calls
            cost about 220 bytes each and 50 bytes a value: with the defaults the
            queue holds about 22 MB + 25 MB = 47 MB at most (CPython 3.11, Python
            floats; a tensor on a GPU holds its copy there).
        history: records kept to send again to a monitor that attaches later (at
            least this many, and less than one batch of up to 512 more).
        flush_timeout_s: the longest ``close()`` waits to deliver what is left
            (``math.inf``: as long as it takes).
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
        bind: bool | None = None,
        total_epochs: float | None = None,
        total_steps: float | None = None,
        config: Mapping[str, Any] | None = None,
        max_queue: int = 100_000,
        max_queue_values: int = 500_000,
        history: int = 10_000,
        flush_timeout_s: float = 2.0,
        record_to: str | os.PathLike[str] | None = None,
        curve_secret: str | None = None,
        curve_server: str | None = None,
        curve_allow: str | None = None,
    ) -> None:
        self._problems: list[str] = []  # what cannot be used here, said once each
        self.endpoint, self.bind = self._where(endpoint, bind)
        self.run = self._run_name(run)
        epochs, self._epochs_f = _total_arg(total_epochs, "total_epochs")
        self.total_epochs: int | None = epochs
        self.total_steps: int | None = _total_arg(total_steps, "total_steps")[0]
        if config is not None and not isinstance(config, Mapping):
            raise TypeError(
                f"config must be a mapping of names to plain values, not {type(config).__name__}"
            )
        self.config = dict(config or {})
        self.flush_timeout_s = _seconds(flush_timeout_s, "flush_timeout_s")
        self._max_queue = max_queue
        self._max_values = max_queue_values
        self._history_records = history
        self.record_to = None if record_to is None else os.fspath(record_to)
        self.curve = Curve.from_env(curve_secret, curve_server, curve_allow)
        missing = "" if self.curve is None else _curve_missing(self.curve, self.bind)
        if missing and (curve_secret or curve_server or curve_allow):
            raise ValueError(missing)  # left out in the code itself
        if missing:  # the environment's $TRAINMON_CURVE_* (a shell set up for a monitor?)
            self._problems.append(f"{missing}, from $TRAINMON_CURVE_*: not publishing")
            self.endpoint = ""
        self._info_lock = threading.Lock()
        self._info_update: dict[str, Any] = {}
        self._hello_due = False
        self._latest: dict[str, float] = {}  # the last of each, as the I/O thread took them
        self._parent: str | None = None
        self._closed = False
        self._start()
        _live.add(self)

    def _where(self, endpoint: str | None, bind: bool | None) -> tuple[str, bool]:
        """Where to publish, and whether to bind there: the arguments, else the
        environment ("" if what the environment says cannot be an endpoint)."""
        if endpoint is not None:
            problem = endpoint_problem(endpoint)
            if problem:
                raise ValueError(f"endpoint {problem}")
            return endpoint, bool(bind)
        listen = os.environ.get("TRAINMON_LISTEN", "").strip()
        if listen and bind is not False:
            name, found = "TRAINMON_LISTEN", listen
        else:
            name = "TRAINMON_ENDPOINT"
            found = os.environ.get(name, "").strip()
        if not found:
            return self._default(), bool(bind)
        problem = endpoint_problem(found)
        if problem:
            self._problems.append(
                f"${name}={found!r} is not an endpoint (tcp://HOST:PORT or ipc://PATH): "
                f"{problem.split(': ', 1)[-1]}; not publishing"
            )
            found = ""
        return found, bind if bind is not None else name == "TRAINMON_LISTEN"

    def _default(self) -> str:
        """The private default endpoint; where there is none, loopback tcp, said once."""
        global _fallback_said
        default = default_endpoint()
        if default.note and not _fallback_said:
            _fallback_said = True
            self._problems.append(fallback_warning(default, "publishing to"))
        return default.endpoint

    def _run_name(self, run: str | None) -> str:
        if run is not None:
            if not valid_name(run[:MAX_NAME_CHARS]):
                raise ValueError(
                    f"run name {run!r}: use 1 to 128 characters, no control characters"
                )
            return run[:MAX_NAME_CHARS]
        named = clean_text(os.environ.get("TRAINMON_RUN", "")).strip()[:MAX_NAME_CHARS]
        return named or _default_run()

    # -- the hot path ---------------------------------------------------------------

    def log(
        self,
        metrics: Mapping[str, Any] | None = None,
        /,
        *,
        step: Any = None,
        epoch: Any = None,
        **named: Any,
    ) -> None:
        """Publish metric values, e.g. ``log(loss=0.3, accuracy=0.9, step=120)``.

        Values are taken as they are at the call: Python numbers as they are; numpy
        scalars and arrays, CPU tensors and anything with ``__float__`` are read now;
        a tensor on a GPU is copied on the GPU (``detach().clone()``, no wait for the
        GPU here) and read on the I/O thread. A value that is not a number (a string,
        a list) is dropped with one warning per metric name and type. ``step`` counts
        up by one per call when not given; ``epoch`` (from 0, fractional allowed)
        stays as last given or set by :meth:`set_epoch`; both take any integral
        number (numpy ints, 0-d tensors, 3.0), and a value that cannot be one is
        warned about and left out. Never blocks and never raises: when the queue is
        full the record is dropped and counted.
        """
        queue = self._queue
        if len(queue) < self._bound:
            if metrics is not None:
                metrics, named = _merged(metrics, named)
            try:
                # One C-level pass for the common case: adding up floats (and ints)
                # gives a float; a tensor, an array or a numpy scalar gives something
                # else (or raises), and those are read now, before they can change.
                if type(sum(named.values(), 0.0)) is not float:
                    named = self._other_values(named)
            except Exception:
                named = self._other_values(named)
            if step is not None and type(step) is not int:
                step = capture_count(step)
            if epoch is not None and type(epoch) is not int:
                epoch = capture_count(epoch)
            queue.append((_now(), step, epoch, metrics, named))
        else:
            self._count_drop()

    def _log_any(
        self,
        metrics: Mapping[str, Any] | None = None,
        /,
        *,
        step: Any = None,
        epoch: Any = None,
        **named: Any,
    ) -> None:
        """``log()`` for a process that logs tensors or numpy values: each value is
        looked at (adding a tensor up to see it is one costs several microseconds)."""
        queue = self._queue
        if len(queue) < self._bound:
            if metrics is not None:
                metrics, named = _merged(metrics, named)
            named = capture_values(named)
            if step is not None and type(step) is not int:
                step = capture_count(step)
            if epoch is not None and type(epoch) is not int:
                epoch = capture_count(epoch)
            queue.append((_now(), step, epoch, metrics, named))
        else:
            self._count_drop()

    def _other_values(self, named: dict[str, Any]) -> dict[str, Any]:
        """Values that are not all Python numbers, taken now; from here on log() looks at
        each value rather than adding them up first."""
        if "log" not in self.__dict__:  # (not closed, nor a forked child's first call)
            self.log = self._log_any  # type: ignore[method-assign]
        return capture_values(named)

    # -- the guide's calls ----------------------------------------------------------

    def record_loss(self, loss: float) -> None:
        """Publish the training loss (metric ``loss``)."""
        self.log(loss=loss)

    def record_accuracy(self, accuracy: float) -> None:
        """Publish the accuracy, a fraction from 0 to 1 (metric ``accuracy``)."""
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
        self._started_here()
        queue = self._queue
        if len(queue) < self._max_queue:
            queue.append((_now(), None, None, _ALERT, {"title": title, "text": text}))
        else:
            self._count_drop()

    def set_epoch(self, epoch: Any) -> None:
        """Start epoch ``epoch`` (from 0); later records carry it until it changes."""
        self.log(epoch=epoch)

    def set_totals(self, total_epochs: Any = None, total_steps: Any = None) -> None:
        """Say (or change) how many epochs or steps the run will do, once known (a
        framework knows them when training starts); None leaves one as it is.

        A new hello goes to the monitor. Thread-safe; takes any number a framework
        gives (2.5 epochs, numpy ints, 0-d tensors); a string or a negative number
        raises ValueError or TypeError.
        """
        update: dict[str, Any] = {}
        if total_epochs is not None:
            epochs, exact = _total_arg(total_epochs, "total_epochs")
            update["epochs"], update["epochs_f"] = epochs, exact
            self.total_epochs, self._epochs_f = epochs, exact
        if total_steps is not None:
            update["steps"] = _total_arg(total_steps, "total_steps")[0]
            self.total_steps = update["steps"]
        self._update_info(update)

    def set_config(self, config: Mapping[str, Any]) -> None:
        """Add to (or change) the run's config, shown by the monitor; a new hello goes
        to the monitor. Thread-safe."""
        if not isinstance(config, Mapping):
            raise TypeError(
                f"config must be a mapping of names to plain values, not {type(config).__name__}"
            )
        with self._info_lock:
            self.config.update(config)
            config = dict(self.config)
        self._update_info({"config": config})

    def _update_info(self, update: dict[str, Any]) -> None:
        """Hand new hello info to the I/O thread (one marker in the queue at a time)."""
        self._started_here()
        with self._info_lock:
            self._info_update.update(update)
            if self._hello_due:
                return
            self._hello_due = True
        self._queue.append((_now(), None, None, _HELLO, {}))

    def current_loss(self) -> float | None:
        """The last loss logged, or None; at once after ``log()``.

        (For a tensor on a GPU this waits for the GPU to compute it.)
        """
        return self._current("loss")

    def current_accuracy(self) -> float | None:
        """The last accuracy logged, or None."""
        return self._current("accuracy")

    # -- lifecycle ------------------------------------------------------------------

    @property
    def worker(self) -> str:
        """This process's worker id, as the monitor shows it."""
        return self._worker

    @property
    def dropped(self) -> int:
        """Records that went nowhere: the queue was full, or the endpoint could not be
        used (and nothing recorded them)."""
        return self._dropped

    def close(self, timeout_s: float | None = None) -> None:
        """Deliver what is queued (for at most ``timeout_s``), say ``bye``, and stop.

        Called automatically at interpreter exit. Later ``log()`` calls are ignored.
        If no monitor ever subscribed and nothing recorded the run, one line on stderr
        says so.
        """
        if self._closed:
            return
        self._closed = True
        self.log = _ignore  # type: ignore[method-assign]
        _live.discard(self)
        budget = self.flush_timeout_s
        if timeout_s is not None:
            with contextlib.suppress(TypeError, ValueError):  # (close() never raises)
                budget = _seconds(timeout_s, "timeout_s")
        self._deadline = time.monotonic() + budget  # (inf stays inf)
        self._closing.set()
        self._thread.join(None if budget == math.inf else budget + 0.5)

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        role = "bind" if self.bind else "connect"
        return f"Monitor(run={self.run!r}, {role}={self.endpoint!r}, worker={self.worker!r})"

    # -- internals ------------------------------------------------------------------

    def _start(self) -> None:
        """Open the socket and start the I/O thread; what cannot be opened is said once
        and left out (records that cannot go anywhere are counted as dropped)."""
        self._identity: Identity = identify()
        # Several Monitors in one process are several workers: number the later ones.
        index = next(_instances)
        self._worker = self._identity.worker + (f"/{index}" if index else "")
        self._queue: deque[tuple[float, Any, Any, Any, dict[str, Any]]] = deque()
        # Calls log() queues at most: max_queue, lowered by the I/O thread to keep
        # about max_queue_values values (see _IOLoop._bound_queue); no cost to log().
        self._bound = min(self._max_queue, self._max_values)
        self._drop_lock = threading.Lock()
        self._dropped = 0
        self.reopened = 0  # times the socket was reopened because memory ran away
        self._closing = threading.Event()
        self._deadline = math.inf
        self._port: int | None = None
        self._local_world: int | None = None
        self._ctx = zmq.Context()
        sock = self._ctx.socket(zmq.XPUB)
        sock.setsockopt(zmq.XPUB_VERBOSE, 1)
        sock.setsockopt(zmq.SNDHWM, 500)  # messages; each a batch of up to 512 records
        # Monitors only subscribe: little comes in, each frame small (see memguard for
        # what these options cannot bound).
        sock.setsockopt(zmq.RCVHWM, 64)
        sock.setsockopt(zmq.MAXMSGSIZE, _MAX_INBOUND_BYTES)
        sock.setsockopt(zmq.LINGER, 0)
        # A connection that breaks takes its queue with it: batches queued for a monitor
        # that died would otherwise reach the next one ahead of its hello and history
        # (and could fill the pipe the history is re-sent into).
        sock.setsockopt(zmq.IMMEDIATE, 1)
        tune_link(sock)
        events = sock.get_monitor_socket(_EVENTS)
        self._zap: ZapHandler | None = None
        self._offline = not self.endpoint
        if not self._offline:
            self._offline = not self._open(sock)
        writer = None
        if self.record_to is not None:
            # Opened and written on a thread of its own: a full, slow or hung disk
            # holds up neither training nor publishing (see BackgroundWriter).
            writer = BackgroundWriter(os.path.abspath(self.record_to), _say)
        for problem in self._problems:
            _log.warning("trainmon: %s", problem)
        self._problems = []
        self._thread = threading.Thread(
            target=_IOLoop(self, sock, events, writer).run, name="trainmon-io", daemon=True
        )
        self._thread.start()
        if "multiprocessing.util" in sys.modules:
            # A multiprocessing child ends with os._exit(), skipping atexit; its
            # finalizers still run, so register close() there as well.
            import multiprocessing.util

            multiprocessing.util.Finalize(self, self.close, exitpriority=10)

    def _open(self, sock: zmq.Socket[bytes]) -> bool:
        """Bind or connect ``sock``; False (the problem noted) if it cannot be."""
        endpoint = self._endpoint_given = getattr(self, "_endpoint_given", self.endpoint)
        if self.bind:
            endpoint = self._rank_endpoint(endpoint)
            self.endpoint = endpoint
        verb = "bind" if self.bind else "connect"
        path = ipc_path(endpoint)
        if self.bind and path is not None and _listened_on(path):
            # Binding would take the socket from whoever listens there, without a word.
            self._problems.append(
                f"cannot bind {endpoint}: a monitor or another process listens there "
                "(binding would take its socket from it); not publishing"
            )
            return False
        if needs_ipv6(endpoint):
            sock.setsockopt(zmq.IPV6, 1)
        try:
            if self.curve is not None:
                allowed = self.curve.apply(sock, server=self.bind)
                if self.bind:
                    self._zap = ZapHandler(self._ctx, allowed)
            (sock.bind if self.bind else sock.connect)(endpoint)
            if self.curve is None and self.bind and not is_loopback(endpoint):
                # (said once bound: a port that cannot be bound exposes nothing)
                _log.warning(
                    "trainmon: %s is reachable from other machines and not encrypted; "
                    "pass curve_secret and curve_allow (see trainmon keygen)",
                    endpoint,
                )
        except (zmq.ZMQError, ValueError) as exc:
            if self._zap is not None:
                self._zap.close()
                self._zap = None
            if isinstance(exc, zmq.ZMQError):
                why = exc.strerror
                if exc.errno == zmq.EADDRINUSE:
                    why += " (another training process or monitor holds it: use another port)"
            else:
                why = str(exc)
            self._problems.append(f"cannot {verb} {endpoint}: {why}; not publishing")
            return False
        return True

    def _rank_endpoint(self, endpoint: str) -> str:
        """The tcp port + local rank, where several ranks of this machine bind."""
        ident = self._identity
        k, n = ident.local_rank, ident.local_world
        head, _, port = endpoint.rpartition(":")
        if not (endpoint.startswith("tcp://") and port.isdigit()):
            return endpoint
        if k is None or n is None or not 1 < n <= _MAX_LOCAL_WORLD or not 0 <= k < n:
            return endpoint
        self._port, self._local_world = int(port) + k, n
        return f"{head}:{self._port}"

    def _count_drop(self, count: int = 1) -> None:
        with self._drop_lock:
            self._dropped += count

    def _current(self, name: str) -> float | None:
        value = _newest(self._queue, name)  # a call the I/O thread has not taken yet
        if value is None:
            return self._latest.get(name)
        number = metric_value(value)
        return None if isinstance(number, NotANumber) else float(number)

    def _started_here(self) -> None:
        """In a forked child that has not logged yet: start its own publisher now."""
        if self.__dict__.get("log") == self._restart_then_log:
            self._restart_then_log()

    def _after_fork_in_child(self) -> None:
        """Leave the parent's socket and thread alone; start afresh on the first log."""
        _abandoned.append((self._ctx, self._thread))
        self._queue = deque()
        if self._closed:
            return
        self._parent = self._worker
        if self.record_to is not None:
            stem, suffix = os.path.splitext(self.record_to)
            self.record_to = f"{stem}.{os.getpid()}{suffix}"
        self.log = self._restart_then_log  # type: ignore[method-assign]

    def _restart_then_log(self, *args: Any, **kwargs: Any) -> None:
        with _fork_lock:
            if self.__dict__.get("log") == self._restart_then_log:
                del self.log
                try:
                    self.endpoint = getattr(self, "_endpoint_given", self.endpoint)
                    self._start()
                except Exception as exc:  # never raise inside training
                    _log.warning("trainmon: cannot publish from child process: %s", exc)
                    self.log = _ignore  # type: ignore[method-assign]
                    return
        if args or kwargs:
            self.log(*args, **kwargs)


def _legacy_listener() -> bool:
    """Whether something listens on the old default's port (an older monitor, maybe)."""
    host, _, port = LEGACY_ENDPOINT[len("tcp://") :].rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=0.2):
            return True
    except OSError:
        return False


def _private_monitor() -> bool:
    """Whether a monitor listens on this user's private default socket."""
    path = ipc_path(default_endpoint(create=False).endpoint)
    return path is not None and ipc_in_use(path)


def _reachable(endpoint: str) -> str:
    """A bound endpoint as another machine would name it: this host for a wildcard."""
    for wildcard in ("tcp://0.0.0.0:", "tcp://*:", "tcp://[::]:"):
        if endpoint.startswith(wildcard):
            host = clean_text(socket.gethostname()) or "THIS_HOST"
            return f"tcp://{host}:{endpoint[len(wildcard) :]}"
    return endpoint


def _curve_missing(curve: Curve, bind: bool) -> str:
    """Which encryption option this side lacks, or "" (a key file that cannot be read
    is the machine's, said when the socket is opened)."""
    if not curve.secret:
        return "encryption needs this side's secret key (curve_secret)"
    if bind and not curve.allow:
        return "the binding side needs a directory of allowed public keys (curve_allow)"
    if not bind and not curve.server:
        return "the connecting side needs the server's public key (curve_server)"
    return ""


def _listened_on(path: str) -> bool:
    """Whether a process listens on the local socket ``path`` (False if it cannot be told)."""
    try:
        return ipc_in_use(path)
    except OSError:
        return False


def _merged(metrics: Any, named: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The positional mapping and the named values as one dict, copied now (the caller
    may reuse its dict); a broken mapping or a non-mapping is left for the I/O thread
    to warn about."""
    if isinstance(metrics, Mapping):
        with contextlib.suppress(Exception):
            return None, {**metrics, **named}
    return metrics, named


def _newest(queue: deque[tuple[float, Any, Any, Any, dict[str, Any]]], name: str) -> Any:
    """The newest value of ``name`` in calls not yet taken by the I/O thread, or None.

    (The I/O thread notes a call's values before it lets go of the call, so a call is
    always found here or in what it noted.)"""
    for _ in range(10):
        try:
            for _, _, _, marker, named in itertools.islice(reversed(queue), 1000):
                if marker is None and name in named:
                    return named[name]
            return None
        except RuntimeError:  # the I/O thread took some meanwhile: look again
            continue
    return None


class _IOLoop:
    """The I/O thread's state: everything here is touched by that thread only."""

    def __init__(
        self,
        monitor: Monitor,
        sock: zmq.Socket[bytes],
        events: zmq.Socket[bytes],
        writer: BackgroundWriter | None = None,
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
        self.epoch: int | float | None = None
        self.logged = 0
        self.peers = 0
        self.refused = False
        self.offline = monitor._offline  # no socket to send on: records go nowhere
        self.ever_subscribed = False
        self.deadline = 0.0  # while closing: how long a full pipe may be waited on
        self.prefixes: set[bytes] = set()
        self.history: deque[tuple[int, int, bytes]] = deque()  # (records, first seq, payload)
        self.history_records = 0
        self.row_cost_s = 2e-6  # seconds to publish one row (measured as it goes)
        self.call_values = 1.0  # values per queued call, recently (the largest seen lately)
        self.warned: set[str] = set()
        self.guard = MemoryGuard(_MEMORY_ALLOWANCE)
        self.poller = zmq.Poller()
        self.poller.register(sock, zmq.POLLIN)
        self.poller.register(events, zmq.POLLIN)
        info: dict[str, Any] = {"host": ident.host, "pid": ident.pid}
        for key, value in (
            ("rank", ident.rank),
            ("world", ident.world),
            ("local_rank", ident.local_rank),
            ("epochs", monitor.total_epochs),
            ("epochs_f", monitor._epochs_f),
            ("steps", monitor.total_steps),
            ("port", monitor._port),
            ("local_world", monitor._local_world),
            ("parent", monitor._parent),
        ):
            if value is not None:
                info[key] = value
        with monitor._info_lock:
            config = dict(monitor.config)
        if config:
            info["config"] = _plain(config)
        self.info = info
        self.hello_wire = self._wire("hello", _now(), i=info)
        self.hello = self._hello_payload()
        if writer is not None:
            writer.put(self.hello, 0)  # (not a record the user logged: not counted)

    def _hello_payload(self) -> bytes:
        """The packed hello; a config too large for a monitor to take is left out."""
        hello = pack_payload(self.hello_wire)
        if len(hello) > _MAX_HELLO_BYTES:  # a monitor would refuse the whole hello
            self._warn_once(
                "<config>",
                f"config of {len(hello):,} bytes packed not sent (at most "
                f"{_MAX_HELLO_BYTES:,}; the monitor shows 64 short items of it)",
                dropped=False,
            )
            self.info.pop("config", None)
            self.hello_wire = dict(self.hello_wire, i=self.info)  # (the same number)
            hello = pack_payload(self.hello_wire)
        return hello

    def _new_hello(self, t: float) -> dict[str, Any]:
        """Totals or config changed: the hello with the new info, as a new record (the
        next sequence number); the hello re-sent to late monitors says it too."""
        mon = self.mon
        with mon._info_lock:
            update, mon._info_update = mon._info_update, {}
            mon._hello_due = False
        for key, value in update.items():
            if value is None:
                self.info.pop(key, None)
            else:
                self.info[key] = _plain(value) if key == "config" else value
        self.hello_wire = dict(self.hello_wire, i=self.info)
        self.hello = self._hello_payload()
        return self._wire("hello", t, i=dict(self.hello_wire["i"]))

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
                if not self.offline:
                    self._watch_memory()
                if time.monotonic() >= next_beat:
                    self._heartbeat()
                    next_beat = time.monotonic() + _HEARTBEAT_S
            self._finish()
        except Exception:  # the thread must never take the training down
            _log.exception("trainmon: publisher stopped")
        finally:
            if mon._zap is not None:
                mon._zap.close()
            if self.writer is not None:
                self.writer.close(mon._deadline)
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
            self._take_subscriptions()

    def _take_subscriptions(self) -> None:
        """Subscriptions and unsubscriptions (one frame each); anything else a peer sent
        is read and let go frame by frame (a continuation frame is never taken for a
        subscription), a bounded number per call."""
        for _ in range(_MAX_INBOUND_MESSAGES):
            try:
                frame = self.sock.recv(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            if frame.more:
                while self.sock.recv(copy=False).more:
                    pass
                continue
            message = frame.bytes
            if message[:1] == b"\x01":
                self.prefixes.add(message[1:])
                if self.subscribed:
                    self.ever_subscribed = True
                    self._resend()
            elif message[:1] == b"\x00":
                self.prefixes.discard(message[1:])

    def _watch_memory(self) -> None:
        """Reopen the socket when memory runs away (libzmq lets go of what it held for
        a connection with it), and say so once."""
        if not self.guard.ran_away():
            return
        sock, mon = self.sock, self.mon
        where = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        if not where:
            return
        mon.reopened += 1
        with contextlib.suppress(zmq.ZMQError):  # (already gone: made again all the same)
            (sock.unbind if mon.bind else sock.disconnect)(where)
        done = self.guard.reclaim()
        if not done.false_alarm:  # (training that grew by itself is not told about it)
            self._warn_once(
                "<memory>",
                f"memory grew to {megabytes(done.before)}: the socket was reopened in case a "
                f"peer was sending a message without end ({megabytes(done.freed)} came "
                "back; said once, counted in Monitor.reopened)",
                dropped=False,
            )
        if not mon.bind:
            sock.connect(where)
        elif not rebind(sock, where):
            self._warn_once("<rebind>", f"cannot listen on {where} again; not publishing")
            self.offline = True

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

    def _bound_queue(self) -> None:
        """Keep the queue at about max_queue_values values: its bound in calls follows
        the size of the newest call (at once when calls grow, slowly when they shrink).

        Looked at before each slice of work (every few ms while busy, 20 ms idle), so
        log() counts nothing; the queue can pass the bound by what is logged between
        two looks, when calls suddenly grow."""
        mon = self.mon
        try:
            newest = len(mon._queue[-1][4])
        except IndexError:  # empty
            return
        size = self.call_values
        size = newest if newest >= size else size + 0.05 * (newest - size)
        self.call_values = size
        mon._bound = max(1, min(mon._max_queue, int(mon._max_values / max(size, 1.0))))

    def _drain(self, until: float) -> bool:
        """Turn queued calls into records and send them; True if more are waiting."""
        self._bound_queue()
        queue = self.mon._queue
        rows: list[_Row] = []
        taken = 0
        while queue:
            taken += 1
            try:
                # Taken, then let go: a call is always in the queue or in what the
                # I/O thread has seen, for current_loss() to find.
                row = self._take(*queue[0])
            except Exception as exc:  # whatever was logged, the thread goes on
                self._warn_once("<record>", f"cannot publish a record ({exc!r})")
                self.mon._count_drop()
                row = None
            queue.popleft()
            if isinstance(row, dict):  # an alert: after the rows before it, on its own
                if rows:
                    self._publish_rows(rows)
                    rows = []
                self._publish([row], 1, row["s"])
            elif isinstance(row, list):  # one call, several records
                rows.extend(row)
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
        self, t: float, step: Any, epoch: Any, metrics: Any, named: dict[str, Any]
    ) -> _Row | list[_Row] | dict[str, Any] | None:
        if metrics is _ALERT:
            self.logged += 1
            title = str(named["title"])[:MAX_ALERT_TITLE] or "alert"
            return self._wire("alert", t, a={"title": title, "text": str(named["text"])[:2000]})
        if metrics is _HELLO:
            return self._new_hello(t)
        if metrics is None and _plain_floats(named):
            values: dict[str, Any] = named  # the common case, checked at a glance
        else:
            values = self._numbers(metrics, named)
        if epoch is not None:
            number = epoch if type(epoch) is int else count_value(epoch, fractional=True)
            if number is None or not 0 <= number <= MAX_STEP:
                self._warn_count("epoch", epoch, named, "the epoch stays as it was")
            else:
                self.epoch = number
        if step is not None:
            number = step if type(step) is int else count_value(step, fractional=False)
            if number is not None and 0 <= number <= MAX_STEP:
                self.step = int(number)
            else:
                self._warn_count("step", step, named, "the record has the automatic step")
                step = None
        if step is None and values:
            self.step += 1
        if not values and epoch is None:
            return None
        self.logged += 1
        latest = self.mon._latest
        if "loss" in values:
            latest["loss"] = values["loss"]
        if "accuracy" in values:
            latest["accuracy"] = values["accuracy"]
        step_now = self.step if self.step >= 0 else None
        if len(values) > MAX_METRICS:
            return self._split(t, step_now, values)
        seq = self.seq
        self.seq = seq + 1
        return (seq, t, step_now, self.epoch, values)

    def _split(self, t: float, step: int | None, values: dict[str, Any]) -> list[_Row]:
        """A call with more metrics than a record holds: several records of the same
        step and time, MAX_METRICS metrics each (nothing dropped)."""
        items = list(values.items())
        rows: list[_Row] = []
        for start in range(0, len(items), MAX_METRICS):
            rows.append((self.seq, t, step, self.epoch, dict(items[start : start + MAX_METRICS])))
            self.seq += 1
        self.logged += len(rows) - 1  # (the call was counted as one record)
        return rows

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
        frames = None
        if self.writer is None:
            payload = self._pack(items, len(rows))
        else:
            frames = self._frames(items)
            payload = None if frames is None else _array_of([part for part, _ in frames])
        if payload is None:
            return
        if len(payload) > MAX_PAYLOAD_BYTES and len(rows) > 1:
            # Too large for a monitor to take (many long metric names, changing from
            # record to record, each change repeating them): two halves instead.
            half = len(rows) // 2
            self._publish_rows(rows[:half])
            self._publish_rows(rows[half:])
            return
        self._keep_and_send(payload, len(rows), rows[0][0], frames)

    def _frames(self, items: list[dict[str, Any]]) -> list[tuple[bytes, int]] | None:
        """The ``cols`` items cut to at most _FRAME_RECORDS records and about
        _FRAME_VALUES values each, each packed: the frames of a recording, where damage
        then costs a few records; sent joined as one batch. None if they cannot be."""
        parts: list[tuple[bytes, int]] = []
        for item in items:
            count = len(item["t"])
            step = max(1, min(_FRAME_RECORDS, _FRAME_VALUES // max(len(item["m"]), 1)))
            for start in range(0, count, step) if count > step else (0,):
                part = item if count <= step else _cut(item, start, start + step)
                packed = self._pack(part, 0)
                if packed is None:
                    self.mon._count_drop(sum(len(i["t"]) for i in items))
                    return None
                parts.append((packed, len(part["t"])))
        return parts

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
            number = metric_value(value)
            if isinstance(number, NotANumber):
                self._warn_once(
                    f"{name!r}:{number.kind}"[:200],
                    f"metric {str(name)[:60]!r}: {number.kind} {number.text} is not a number",
                )
                continue
            if not valid_name(name):
                self._warn_once(
                    repr(name)[:200],
                    f"metric name {repr(name)[:60]}: names are strings of 1-128 characters "
                    "without control characters",
                )
                continue
            out[name] = number
        return out

    def _warn_once(self, key: str, text: str, dropped: bool = True) -> None:
        if key in self.warned or len(self.warned) > _MAX_WARNINGS:
            return
        self.warned.add(key)
        if len(self.warned) > _MAX_WARNINGS:
            text, dropped = f"more than {_MAX_WARNINGS} different warnings: no more said", False
        _log.warning("trainmon: %s%s", text, "; dropped (warned once)" if dropped else "")

    def _warn_count(self, what: str, value: Any, named: dict[str, Any], instead: str) -> None:
        """A step or epoch that cannot be used: once per argument and type, naming the
        call's metrics and the value."""
        kind = value.kind if isinstance(value, NotANumber) else type(value).__name__
        try:
            shown = repr(value)[:60]
        except Exception:
            shown = f"<{kind}>"
        names = ", ".join(str(name)[:40] for name in list(named)[:5])
        call = f"log({names})" if names else "set_epoch() (or a log() of no metrics)"
        self._warn_once(
            f"<{what}>:{kind}",
            f"{what}={shown} ({kind}) in {call} is not a whole number from 0 to "
            f"2**53{' (or a fraction)' if what == 'epoch' else ''}: {instead} "
            f"(said once per type of {what})",
            dropped=False,
        )

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

    def _pack(self, items: list[dict[str, Any]] | dict[str, Any], records: int) -> bytes | None:
        """The encoded batch; None (its records counted as dropped) if it cannot be."""
        try:
            return pack_payload(items)
        except (ValueError, OverflowError, TypeError) as exc:  # defensive: never expected
            self._warn_once("<pack>", f"cannot encode a batch ({exc})")
            self.mon._count_drop(records)
            return None

    def _keep_and_send(
        self,
        payload: bytes,
        records: int,
        first_seq: int,
        frames: list[tuple[bytes, int]] | None = None,
    ) -> None:
        """Record, keep in the history and send an encoded batch; ``frames``, the
        same records as smaller payloads to record (else the batch is recorded)."""
        if self.writer is not None:
            self.writer.put_all(frames or ((payload, records),))
        elif self.offline:
            self.mon._count_drop(records)  # nothing can carry them anywhere
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
            "unrecorded": 0 if self.writer is None else self.writer.unrecorded,
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
        flush_until = (
            deadline - (deadline - time.monotonic()) / 4 if deadline < math.inf else deadline
        )
        self.deadline = flush_until
        while self.mon._queue and time.monotonic() < flush_until:
            self._drain(flush_until)
        if self.mon._queue:  # out of time: these are dropped, and counted as such
            self.mon._count_drop(len(self.mon._queue))
            self.mon._queue.clear()
        self.deadline = deadline
        # Everything before the bye recorded (or counted as not): the bye says so.
        writer = self.writer
        if writer is not None and not writer.settle(_midway(deadline)):
            writer.abandon()
        self._nobody_watched()
        self.offline = False  # (the bye is no record the user logged: not counted)
        bye = self._wire("bye", _now(), c=self._counters())
        self._publish([bye], 1, bye["s"])
        if self.subscribed:
            remaining_s = max(deadline - time.monotonic(), 0)
            self.sock.setsockopt(
                zmq.LINGER, -1 if remaining_s == math.inf else int(remaining_s * 1000)
            )

    def _nobody_watched(self) -> None:
        """At close: if no monitor ever subscribed and nothing recorded the run, say so."""
        recording = self.writer is not None and self.writer.stopped is None
        if self.ever_subscribed or recording or self.offline or not self.logged:
            return
        mon = self.mon
        if mon.bind:
            how = f"start `trainmon watch --connect {_reachable(mon.endpoint)}` first"
        elif mon.endpoint == LEGACY_ENDPOINT and _private_monitor():
            how = (
                f"a monitor listens on the default, {default_endpoint(create=False).endpoint}: "
                "unset TRAINMON_ENDPOINT to reach it"
            )
        elif mon.endpoint.startswith("ipc://") and _legacy_listener():
            how = (  # (a newer monitor's watcher there takes nothing: hence "if")
                f"something listens on {LEGACY_ENDPOINT}, the default before 0.2: if it is "
                "an older trainmon watch, upgrade it (or, on a machine of your own, set "
                f"TRAINMON_ENDPOINT={LEGACY_ENDPOINT} for this script)"
            )
        else:
            how = "start `trainmon watch` first (or `trainmon watch --record FILE`)"
        _log.warning(
            "trainmon: nobody watched run %r on %s: its %d records were not kept; next "
            "time %s, or pass Monitor(record_to='run.tmr') to keep them",
            mon.run,
            mon.endpoint,
            self.logged,
            how,
        )


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


def _total_arg(value: Any, what: str) -> tuple[int | None, float | None]:
    """A total the monitor can show, from any number a framework gives: a whole number
    from 1 to 2**53 (a fraction rounded up), and the fraction itself where not whole;
    TypeError or ValueError for what is no such number."""
    if value is None:
        return None, None
    if isinstance(value, (str, bytes, bool)) or not hasattr(value, "__float__"):
        raise TypeError(f"{what} must be a number, not {type(value).__name__} {value!r}")
    if type(value) is not int:
        value = capture_count(value)
    if type(value) is int:
        number: float = value
    else:
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            raise TypeError(f"{what} must be a number, not {value!r}") from None
    if not 0 < number <= MAX_STEP:  # NaN fails too
        raise ValueError(f"{what} must be a number from 1 to 2**53, not {value!r}")
    whole = math.ceil(number)
    return whole, None if number == whole else float(number)


def _seconds(value: Any, what: str) -> float:
    """A number of seconds from 0 to ``math.inf``; TypeError or ValueError otherwise."""
    if isinstance(value, (str, bytes, bool)) or not hasattr(value, "__float__"):
        raise TypeError(f"{what} must be a number of seconds, not {type(value).__name__}")
    seconds = float(value)
    if not seconds >= 0:  # NaN fails too
        raise ValueError(f"{what} must be a number of seconds from 0 to math.inf, not {value!r}")
    return seconds


def _midway(deadline: float) -> float:
    """Halfway from now to ``deadline`` (``inf`` stays ``inf``)."""
    now = time.monotonic()
    return deadline if deadline == math.inf else now + (deadline - now) / 2


def _say(line: str) -> None:
    """One line on stderr, from any thread (through the logging module)."""
    _log.warning("trainmon: %s", line)


def _cut(item: dict[str, Any], start: int, end: int) -> dict[str, Any]:
    """Records ``start`` to ``end`` of a ``cols`` item, as a ``cols`` item."""
    part = dict(item, s=item["s"] + start, m={k: v[start:end] for k, v in item["m"].items()})
    for key in ("t", "st", "ep", "ef"):
        if key in item:
            part[key] = item[key][start:end]
    return part


def _array_of(parts: list[bytes]) -> bytes:
    """Packed items as one packed array of them, nothing packed again."""
    return _array_header(len(parts)) + b"".join(parts)


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
