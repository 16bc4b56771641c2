"""A ``SummaryWriter`` for code written for TensorBoard: change one import and the
scalars go to ``trainmon watch`` instead of event files.

    from trainmon_client.tensorboard import SummaryWriter   # was: torch.utils.tensorboard

It takes torch.utils.tensorboard's arguments and calls, with their signatures:

- ``add_scalar(tag, value, global_step)``: metric ``tag`` (``loss/train`` is a metric
  name) at step ``global_step``; the tag ``epoch`` is the record's epoch (fractional
  allowed), not a metric.
- ``add_scalars(main_tag, {tag: value}, global_step)``: metrics ``main_tag/tag``.
- ``add_hparams(hparams, metrics, ...)``: the hyperparameters become the run's config
  (credentials masked), the metrics are logged at ``global_step``.
- ``flush()``, ``close()``, ``with``. Every other ``add_*`` call (histograms, images,
  text, graphs) is accepted and ignored, with one warning each.

No framework is needed or imported. One SummaryWriter is one :class:`Monitor`: the run is
named after ``log_dir``'s last part (TensorBoard's run name), else the default run name
with ``comment`` added; ``$TRAINMON_RUN`` names it in either case. Where to publish is
the Monitor's default (``$TRAINMON_ENDPOINT`` and the rest); other Monitor arguments can
be given by name (``SummaryWriter("runs/a", total_steps=1000)``), or a Monitor of one's
own (``monitor=``), which close() then leaves open.

Values are read at the call (tensors, numpy) as ``Monitor.log`` reads them. The calls of
one step go out as one record: the scalars logged for the same ``global_step`` are held
until a call for another step, a tag logged twice, ``flush()`` or ``close()``, and for at
most ``GROUP_S`` (0.1 s; a thread of the writer's sends them then). ``walltime`` is not
used: a record's time is when it is sent. Holding costs about a microsecond a call more
than ``Monitor.log`` alone (docs/integrations/tensorboard.md has the numbers).
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any, Final

from trainmon_client.arguments import run_name
from trainmon_client.logs import Warnings
from trainmon_client.monitor import Monitor
from trainmon_client.text import MAX_NAME_CHARS, clean_text
from trainmon_client.values import OnDevice, capture_count, capture_values

__all__ = ["GROUP_S", "SummaryWriter"]

GROUP_S: Final = 0.1  # the longest a step's scalars are held for the calls that follow
EPOCH_TAG: Final = "epoch"
_ignored = Warnings()  # the add_* calls trainmon does not show, said once each a process
_open: weakref.WeakSet[SummaryWriter] = weakref.WeakSet()


class SummaryWriter:
    """torch.utils.tensorboard's SummaryWriter, publishing its scalars to trainmon.

    Args:
        log_dir: names the run (its last part); no directory is made.
        comment: added to the default run name when there is no ``log_dir``.
        purge_step, max_queue, flush_secs, filename_suffix: accepted, not used.
        monitor: a Monitor of your own to publish with (left open by close()).
        **monitor_args: passed to :class:`Monitor` (``endpoint=``, ``total_steps=`` ...).
    """

    def __init__(
        self,
        log_dir: Any = None,
        comment: str = "",
        purge_step: Any = None,
        max_queue: int = 10,
        flush_secs: int = 120,
        filename_suffix: str = "",
        *,
        monitor: Monitor | None = None,
        **monitor_args: Any,
    ) -> None:
        self.log_dir = None if log_dir is None else os.fspath(log_dir)
        self.comment = comment
        self.purge_step = purge_step
        self.max_queue = max_queue
        self.flush_secs = flush_secs
        self.filename_suffix = filename_suffix
        self._own = monitor is None
        if monitor is None:
            monitor_args.setdefault("run", _run_for(self.log_dir, comment))
            monitor = Monitor(**monitor_args)
        self.monitor = monitor
        self._lock = threading.Lock()
        self._holding = False  # values of one step are held: these
        self._pending: dict[str, Any] = {}  # (in call order)
        self._step: Any = None
        self._epoch: Any = None
        self._since = 0.0  # when they began to be held (time.monotonic())
        self._started = threading.Event()  # set when values begin to be held
        self._stop = threading.Event()  # set by close(): the thread ends
        self._thread: threading.Thread | None = None
        self._closed = False
        _open.add(self)

    # -- torch.utils.tensorboard's calls ----------------------------------------------

    def add_scalar(
        self,
        tag: str,
        scalar_value: Any,
        global_step: Any = None,
        walltime: float | None = None,
        new_style: bool = False,
        double_precision: bool = False,
    ) -> None:
        """Publish ``scalar_value`` as metric ``tag`` at step ``global_step`` (the tag
        ``epoch``: the record's epoch). ``walltime`` and the styles are not used."""
        value = scalar_value if type(scalar_value) is float else _read(scalar_value)
        step = global_step if type(global_step) is int else _step(global_step)
        if tag == EPOCH_TAG:
            self._hold({}, step, value)
        else:
            self._hold({tag: value}, step, None)

    def add_scalars(
        self,
        main_tag: str,
        tag_scalar_dict: Mapping[str, Any],
        global_step: Any = None,
        walltime: float | None = None,
    ) -> None:
        """Publish each value as metric ``main_tag/tag`` at step ``global_step``."""
        named = {f"{main_tag}/{tag}": value for tag, value in tag_scalar_dict.items()}
        self._add(named, global_step)

    def add_hparams(
        self,
        hparam_dict: Mapping[str, Any],
        metric_dict: Mapping[str, Any],
        hparam_domain_discrete: Mapping[str, Any] | None = None,
        run_name: str | None = None,
        global_step: Any = None,
    ) -> None:
        """Add the hyperparameters to the run's config (credentials masked), and publish
        the metrics at ``global_step``."""
        if not isinstance(hparam_dict, dict) or not isinstance(metric_dict, dict):
            raise TypeError("hparam_dict and metric_dict should be dictionary.")  # (as torch)
        self.monitor.set_config(hparam_dict)
        self._add(metric_dict, global_step)

    def get_logdir(self) -> str | None:
        """The ``log_dir`` given (no event files are written there)."""
        return self.log_dir

    def flush(self) -> None:
        """Send the values held for the current step now."""
        with self._lock:
            self._send()

    def close(self) -> None:
        """Send what is held, and close the Monitor (one given as ``monitor=`` is left
        open). Later calls are ignored."""
        with self._lock:
            self._send()
            self._closed = True
        self._stop.set()
        self._started.set()  # (the thread sees it is stopped, and ends)
        _open.discard(self)
        if self._own:
            self.monitor.close()

    def __enter__(self) -> SummaryWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __getattr__(self, name: str) -> Callable[..., None]:
        """The ``add_*`` calls trainmon does not show: accepted, ignored, said once."""
        if not name.startswith("add_"):
            raise AttributeError(f"'SummaryWriter' object has no attribute {name!r}")

        def ignored(*args: Any, **kwargs: Any) -> None:
            _ignored.once(name, f"SummaryWriter.{name}(): trainmon shows scalars only")

        return ignored

    # -- holding one step's values ----------------------------------------------------

    def _add(self, values: Mapping[str, Any], global_step: Any) -> None:
        """Hold ``values`` (read now) at ``global_step``: the tag ``epoch`` as the epoch."""
        taken = {tag: _read(value) for tag, value in values.items()}
        epoch = taken.pop(EPOCH_TAG, None)
        self._hold(taken, _step(global_step), epoch)

    def _hold(self, values: dict[str, Any], step: Any, epoch: Any) -> None:
        """Hold ``values`` with the step's others; send those first where the step
        changed or a tag (or the epoch) comes again."""
        with self._lock:
            if self._closed:
                return
            pending = self._pending
            if self._holding and (
                step != self._step
                or (epoch is not None and self._epoch is not None)
                or (pending and not pending.keys().isdisjoint(values))
            ):
                self._send()
                pending = self._pending
            if not self._holding:
                self._holding, self._step, self._since = True, step, time.monotonic()
                if not self._started.is_set():
                    self._wake()
            pending.update(values)
            if epoch is not None:
                self._epoch = epoch

    def _send(self) -> None:
        """Log the held values as one record (the lock held)."""
        if self._holding:
            self.monitor.log(self._pending, step=self._step, epoch=self._epoch)
            self._pending, self._epoch, self._holding = {}, None, False

    def _after_fork_in_child(self) -> None:
        """A lock, events and thread of its own for a forked child (the parent's lock
        may be held for ever there, and its thread is gone)."""
        self._lock, self._thread = threading.Lock(), None
        self._started, self._stop = threading.Event(), threading.Event()

    def _wake(self) -> None:
        """Values began to be held: the thread sends them in GROUP_S if no call does."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._send_late, name="trainmon-tensorboard", daemon=True
            )
            self._thread.start()
        self._started.set()

    def _send_late(self) -> None:
        """The thread: each time values begin to be held, wait until they have been for
        GROUP_S, and send them if no call has."""
        started, stop, lock = self._started, self._stop, self._lock
        while not stop.is_set():
            started.wait()
            started.clear()
            wait_s = GROUP_S
            while not stop.wait(wait_s):
                with lock:
                    if not self._holding:
                        break
                    wait_s = GROUP_S - (time.monotonic() - self._since)
                    if wait_s <= 0:
                        self._send()
                        break


def _read(value: Any) -> Any:
    """A value as it is at the call, in a form ``Monitor.log`` takes: a tensor on a GPU
    as its device-side copy (read on the I/O thread)."""
    value = capture_values({"": value}).get("", value)
    return value.tensor if isinstance(value, OnDevice) else value


def _step(step: Any) -> Any:
    """A step as it is at the call (None: the Monitor counts on)."""
    return step if step is None or type(step) is int else capture_count(step)


def _run_for(log_dir: str | None, comment: str) -> str | None:
    """The run's name: ``$TRAINMON_RUN`` (None: the Monitor reads it), else the last
    part of ``log_dir``, else the default name with ``comment`` added."""
    if os.environ.get("TRAINMON_RUN", "").strip():
        return None
    if log_dir:
        name = clean_text(os.path.basename(os.path.normpath(log_dir))).strip()
        return name[:MAX_NAME_CHARS] or None
    if comment:
        return clean_text(run_name(None) + str(comment))[:MAX_NAME_CHARS]
    return None


def _close_all() -> None:
    """At exit, send what open writers hold (before the Monitors close: atexit runs
    this first, as it was registered after the monitor module's own)."""
    for writer in list(_open):
        writer.close()


def _after_fork_in_child() -> None:
    for writer in list(_open):
        writer._after_fork_in_child()


atexit.register(_close_all)
os.register_at_fork(after_in_child=_after_fork_in_child)
