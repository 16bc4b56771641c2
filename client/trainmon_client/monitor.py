"""The Monitor: what a training process calls (log, set_epoch, set_totals, set_config,
set_summary, alert, current_*, close, the context manager).

``log()`` stamps the call, takes the values as they are at the call (see values.py) and
appends it to a bounded queue (calls.py); the I/O thread (ioloop.py) validates, numbers,
batches, encodes and sends, keeping a history for monitors that subscribe later. A
forked child leaves its parent's socket and thread alone and starts its own on its
first call; open Monitors are closed at exit.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import math
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Final, TypeVar

from trainmon_client.arguments import config_arg, curve_arg, run_name, seconds, total_arg, where
from trainmon_client.calls import ALERT, HELLO, CallQueue, Closing
from trainmon_client.endpoints import LEGACY_ENDPOINT
from trainmon_client.hello import InfoUpdates, hello_info
from trainmon_client.identity import identify
from trainmon_client.ioloop import IOLoop, LoopSettings
from trainmon_client.keeping import child_record_to, keep_plan, make_writer
from trainmon_client.logs import log
from trainmon_client.sockets import PubSocket, rank_endpoint
from trainmon_client.summary import merged_summary
from trainmon_client.system import system_enabled
from trainmon_client.tracking import track
from trainmon_client.values import NotANumber, capture_count, capture_values, metric_value
from trainmon_client.values import merged_call as _merged

__all__ = ["DEFAULT_ENDPOINT", "Monitor"]

# Loopback tcp, the default before 0.2 (now endpoints.default_endpoint(), the user's own).
DEFAULT_ENDPOINT: Final = LEGACY_ENDPOINT

_now = time.time
_live: weakref.WeakSet[Monitor] = weakref.WeakSet()
_abandoned: list[object] = []  # a parent's zmq objects, kept unreachable-but-alive in a child
_instances = itertools.count()
T = TypeVar("T")


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
        record: keep the run (default; False or ``$TRAINMON_RECORD=0``: not) in its folder
            under ``$TRAINMON_DIR`` (``~/.local/share/trainmon``), flushed every second,
            for ``trainmon runs``, ``replay``, ``compare``; the oldest finished runs go
            past ``$TRAINMON_BUDGET`` (4 GiB). A name given (``run=``, ``$TRAINMON_RUN``)
            of a run live or written within the hour continues it, steps after its last.
        record_to: record to this file instead, for ``trainmon replay``; a forked
            child records to the same name with ``.PID`` before the suffix.
        curve_secret: this process's ``.key_secret`` file: encrypt with CURVE
            (``$TRAINMON_CURVE_SECRET``). Connecting, also give ``curve_server``, the
            monitor's or relay's ``.key`` file (``$TRAINMON_CURVE_SERVER``); binding,
            ``curve_allow``, a directory of the monitors' ``.key`` files that may attach
            (``$TRAINMON_CURVE_ALLOW``).
        system_metrics: CPU, memory, GPU as ``sys/*`` (False or $TRAINMON_SYSTEM=0: none).
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
        record: bool | None = None,
        record_to: str | os.PathLike[str] | None = None,
        curve_secret: str | None = None,
        curve_server: str | None = None,
        curve_allow: str | None = None,
        system_metrics: bool | None = None,
    ) -> None:
        self._problems: list[str] = []  # what cannot be used here, said once each
        self.endpoint, self.bind = where(endpoint, bind, self._problems)
        self.run = run_name(run)
        self._kept = keep_plan(record, run, self.run)  # (its folder, once chosen)
        epochs, self._epochs_f = total_arg(total_epochs, "total_epochs")
        self.total_epochs: int | None = epochs
        self.total_steps: int | None = total_arg(total_steps, "total_steps")[0]
        self.config = dict(config_arg(config) or {})
        self.summary: dict[str, float] = {}  # see set_summary()
        self.flush_timeout_s = seconds(flush_timeout_s, "flush_timeout_s")
        self._max_queue = max_queue
        self._max_values = max_queue_values
        self._history_records = history
        self.record_to = None if record_to is None else os.fspath(record_to)
        self._system = system_enabled(system_metrics)
        self.curve, usable = curve_arg(
            curve_secret, curve_server, curve_allow, self.bind, self._problems
        )
        if not usable:
            self.endpoint = ""
        self._info = InfoUpdates()  # set_totals() and set_config() to the I/O thread
        self._latest: dict[str, float] = {}  # the last of each, as the I/O thread took them
        self._parent: str | None = None
        self._closed = False
        self._start()
        _live.add(self)

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
        a list) is dropped with one warning per metric name and type. ``step``, when
        not given, counts up by one per call (once a loop is tracked, :meth:`track`,
        is its latest step); ``epoch`` (from 0, fractional allowed) stays as last
        given or set by :meth:`set_epoch`; both take any integral number (numpy ints,
        0-d tensors, 3.0), and one that cannot be is warned about and left out. Never
        blocks or raises: when the queue is full the record is dropped and counted.
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
        self, metrics: Mapping[str, Any] | None = None, /, *,
        step: Any = None, epoch: Any = None, **named: Any,
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

    def track(self, iterable: Iterable[T], every_s: float = 0.5) -> Iterator[T]:
        """``for batch in mon.track(loader):``: each item is a step (log() without
        ``step=`` lands on it, from then on), the total steps follow from ``len()`` and
        the total epochs, and every ``every_s`` the share of step time spent waiting
        for data goes out as ``loop/data_wait`` (see tracking.py)."""
        return track(self, iterable, every_s)

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
            queue.append((_now(), None, None, ALERT, {"title": title, "text": text}))
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
            epochs, exact = total_arg(total_epochs, "total_epochs")
            update["epochs"], update["epochs_f"] = epochs, exact
            self.total_epochs, self._epochs_f = epochs, exact
        if total_steps is not None:
            update["steps"] = total_arg(total_steps, "total_steps")[0]
            self.total_steps = update["steps"]
        self._update_info(update)

    def set_config(self, config: Mapping[str, Any]) -> None:
        """Add to (or change) the run's config, shown by the monitor; a new hello goes
        to the monitor. Thread-safe."""
        config = config_arg(config) or {}  # (credentials masked)
        with self._info.lock:
            self.config.update(config)
            config = dict(self.config)
        self._update_info({"config": config})

    def set_summary(self, values: Mapping[str, Any]) -> None:
        """Add to (or change) the run's end-of-run numbers (``train_runtime=12.3``): the
        monitor prints them once, in its exit summary, and charts none; a new hello goes
        to the monitor. Thread-safe; a value that is no number raises TypeError."""
        with self._info.lock:
            self.summary = merged_summary(self.summary, values)
            summary = dict(self.summary)
        self._update_info({"summary": summary})

    def _update_info(self, update: dict[str, Any]) -> None:
        """Hand new hello info to the I/O thread (one marker in the queue at a time)."""
        self._started_here()
        if self._info.put(update):
            self._queue.append((_now(), None, None, HELLO, {}))

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
    def reopened(self) -> int:
        """Times the socket was reopened because memory ran away (see memguard)."""
        return self._io.reopened

    @property
    def dropped(self) -> int:
        """Records that went nowhere: the queue was full, or the endpoint could not be
        used (and nothing recorded them)."""
        return self._queue.dropped

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
                budget = seconds(timeout_s, "timeout_s")
        self._closing.request(time.monotonic() + budget)  # (inf stays inf)
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
        self._identity = identify()
        # Several Monitors in one process are several workers: number the later ones.
        index = next(_instances)
        self._worker = self._identity.worker + (f"/{index}" if index else "")
        self._new_queue()
        self._closing = Closing()
        self._port: int | None = None
        self._local_world: int | None = None
        self._socket = PubSocket(self.run.encode())
        offline = not self.endpoint or not self._open()
        writer, self._kept = make_writer(self.record_to, self._kept, self._worker)
        for problem in self._problems:
            log.warning("trainmon: %s", problem)
        self._problems = []
        self._io = IOLoop(
            self._loop_settings(offline),
            self._queue,
            self._latest,
            self._info,
            self._closing,
            self._socket,
            writer,
            self._kept,
        )
        self._thread = threading.Thread(target=self._io.run, name="trainmon-io", daemon=True)
        self._thread.start()
        if "multiprocessing.util" in sys.modules:
            # A multiprocessing child ends with os._exit() (no atexit) but runs finalizers.
            import multiprocessing.util

            multiprocessing.util.Finalize(self, self.close, exitpriority=10)

    def _new_queue(self, dropped: int = 0) -> None:
        """A new, empty queue of calls (``dropped`` counted already)."""
        queue = CallQueue(self._max_queue, self._max_values, self._set_bound)
        queue.dropped = dropped
        self._queue = queue
        self._bound = queue.bound
        self._count_drop: Callable[..., None] = queue.count_drop

    def _set_bound(self, bound: int) -> None:
        """The I/O thread's new bound on the queue, for log() to compare with."""
        self._bound = bound

    def _loop_settings(self, offline: bool) -> LoopSettings:
        """What the I/O thread is told at its start, its hello's info included."""
        with self._info.lock:
            config = dict(self.config)
        info = hello_info(
            self._identity,
            config,
            epochs=self.total_epochs,
            epochs_f=self._epochs_f,
            steps=self.total_steps,
            port=self._port,
            local_world=self._local_world,
            parent=self._parent,
            summary=dict(self.summary) or None,
        )
        return LoopSettings(
            self.run, self._worker, self.endpoint, self.bind, self._history_records, info, offline,
            self._system,
        )

    def _open(self) -> bool:
        """Bind or connect the socket; False (the problem noted) if it cannot be."""
        endpoint = self._endpoint_given = getattr(self, "_endpoint_given", self.endpoint)
        if self.bind:
            endpoint, self._port, self._local_world = rank_endpoint(endpoint, self._identity)
            self.endpoint = endpoint
        problem = self._socket.open(endpoint, self.bind, self.curve)
        if problem:
            self._problems.append(problem)
        return not problem

    def _current(self, name: str) -> float | None:
        value = self._queue.newest(name)  # a call the I/O thread has not taken yet
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
        _abandoned.append((self._socket, self._thread))
        self._new_queue(self._queue.dropped)
        if self._closed:
            return
        self._parent = self._worker
        self.record_to = child_record_to(self.record_to)  # (kept: the parent's folder)
        self.log = self._restart_then_log  # type: ignore[method-assign]

    def _restart_then_log(self, *args: Any, **kwargs: Any) -> None:
        with _fork_lock:
            if self.__dict__.get("log") == self._restart_then_log:
                del self.log
                try:
                    self.endpoint = getattr(self, "_endpoint_given", self.endpoint)
                    self._start()
                except Exception as exc:  # never raise inside training
                    log.warning("trainmon: cannot publish from child process: %s", exc)
                    self.log = _ignore  # type: ignore[method-assign]
                    return
        if args or kwargs:
            self.log(*args, **kwargs)


def _ignore(*args: Any, **kwargs: Any) -> None:
    """Stands in for ``log`` once a Monitor is closed."""


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
