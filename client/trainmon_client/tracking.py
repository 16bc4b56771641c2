"""``Monitor.track(loader)``: a loop wrapper that counts the steps and measures how long
each step waited for its batch against how long its body took.

Each iteration puts one marker in the call queue (the I/O thread moves the step on, the
same counter ``log()``'s automatic step uses; a marker that finds the queue full is not
lost, the next one carries its step too) and reads the clock twice; every
``every_s`` seconds of training (and when the loop ends) one ``log()`` sends the
stretch's figures:

- ``loop/data_wait``: the share of step time spent waiting for the next batch (0 to 1):
  from the end of one body (the loop's next ``next()``) to the batch being handed out;
- ``loop/step_time``: the mean seconds per step, waiting included.

The monitor shows ``input-bound`` beside the progress when the share is high.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Final, TypeVar

from trainmon_client.calls import TICK

if TYPE_CHECKING:
    from trainmon_client.monitor import Monitor

__all__ = ["DATA_WAIT", "STEP_TIME", "track"]

DATA_WAIT: Final = "loop/data_wait"
STEP_TIME: Final = "loop/step_time"

T = TypeVar("T")

_NO_VALUES: Final[dict[str, Any]] = {}  # a tick's values (shared: nobody writes to it)


def track(monitor: Monitor, iterable: Iterable[T], every_s: float = 0.5) -> Iterator[T]:
    """Yield ``iterable``'s items, one step of ``monitor`` each (see the module)."""
    if not every_s > 0:
        raise ValueError(f"every_s must be a positive number of seconds, not {every_s!r}")
    set_totals_from(monitor, iterable)
    return _tracked(monitor, iter(iterable), every_s)


def set_totals_from(monitor: Monitor, iterable: Iterable[Any]) -> None:
    """The total steps from the steps per epoch (``len()``) and the total epochs, when
    both are known and the total steps are not."""
    try:
        per_epoch = len(iterable)  # type: ignore[arg-type]
    except Exception:  # no len(): an iterable of unknown length
        return
    epochs = monitor._epochs_f if monitor._epochs_f is not None else monitor.total_epochs
    if monitor.total_steps is None and epochs and per_epoch > 0:
        monitor.set_totals(total_steps=math.ceil(per_epoch * epochs))


def _tracked(monitor: Monitor, items: Iterator[T], every_s: float) -> Iterator[T]:
    clock = time.perf_counter
    monitor._started_here()  # (a forked child: its own queue first)
    queue = monitor._queue
    wait = body = 0.0
    steps = ticks = 0
    start = sent = clock()
    try:
        while True:
            try:
                item = next(items)
            except StopIteration:
                return
            got = clock()
            ticks += 1
            if len(queue) < monitor._bound:  # (else the next marker carries this step)
                queue.append((0.0, ticks, None, TICK, _NO_VALUES))
                ticks = 0
            yield item
            done = clock()
            wait += got - start  # (counted with its body: a loop left early counts neither)
            body += done - got
            start = done
            steps += 1
            if start - sent >= every_s:
                _send(monitor, wait, body, steps)
                wait = body = 0.0
                steps = 0
                sent = start
    finally:
        if ticks:  # steps no marker got in for (the queue was full): one past the bound
            queue.append((0.0, ticks, None, TICK, _NO_VALUES))
        if steps:
            _send(monitor, wait, body, steps)


def _send(monitor: Monitor, wait: float, body: float, steps: int) -> None:
    total = wait + body
    share = wait / total if total > 0 else 0.0
    monitor.log({DATA_WAIT: share, STEP_TIME: total / steps})
