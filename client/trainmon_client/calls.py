"""The queue of calls between training and the I/O thread: log(), alert() and the
hello markers, bounded by calls and by values, with what does not fit counted.

Training appends (never blocking); the I/O thread takes from the front and, before
each slice of work, sets the bound in calls from the size of the newest call. Both
hold the same :class:`CallQueue`; the Monitor is told each new bound, so ``log()``
compares with an attribute of its own.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Final

__all__ = [
    "ALERT",
    "Call",
    "CallQueue",
    "Closing",
    "HELLO",
    "TICK",
]

# One call: (time, step, epoch, positional metrics or a marker, named values).
Call = tuple[float, Any, Any, Any, dict[str, Any]]

ALERT: Final = object()  # marks an alert() call in the queue
HELLO: Final = object()  # marks new totals or config in the queue: a new hello goes out
TICK: Final = object()  # marks steps of a tracked loop (Monitor.track): step= of them on


class CallQueue(deque[Call]):
    """The bounded deque of calls; ``bound`` is how many it holds at most, lowered from
    ``max_calls`` to keep about ``max_values`` metric values (the newest calls' size)."""

    __slots__ = (
        "_drop_lock",
        "_on_bound",
        "bound",
        "call_values",
        "dropped",
        "max_calls",
        "max_values",
    )

    def __init__(
        self, max_calls: int, max_values: int, on_bound: Callable[[int], None] = lambda n: None
    ) -> None:
        super().__init__()
        self.max_calls = max_calls
        self.max_values = max_values
        # Calls log() queues at most: max_calls, lowered by the I/O thread to keep
        # about max_values values (see rebound); no cost to log().
        self.bound = min(max_calls, max_values)
        self.call_values = 1.0  # values per queued call, recently (the largest seen lately)
        self.dropped = 0
        self._drop_lock = threading.Lock()
        self._on_bound = on_bound

    def count_drop(self, count: int = 1) -> None:
        """Count ``count`` calls (or records) that went nowhere."""
        with self._drop_lock:
            self.dropped += count

    def rebound(self) -> None:
        """Keep the queue at about max_values values: its bound in calls follows the
        size of the newest call (at once when calls grow, slowly when they shrink).

        Looked at before each slice of work (every few ms while busy, 20 ms idle), so
        log() counts nothing; the queue can pass the bound by what is logged between
        two looks, when calls suddenly grow."""
        try:
            newest = len(self[-1][4])
        except IndexError:  # empty
            return
        size = self.call_values
        size = newest if newest >= size else size + 0.05 * (newest - size)
        self.call_values = size
        self.bound = max(1, min(self.max_calls, int(self.max_values / max(size, 1.0))))
        self._on_bound(self.bound)

    def newest(self, name: str) -> Any:
        """The newest value of ``name`` in calls not yet taken by the I/O thread, or None.

        (The I/O thread notes a call's values before it lets go of the call, so a call is
        always found here or in what it noted.)"""
        for _ in range(10):
            try:
                for _, _, _, marker, named in itertools.islice(reversed(self), 1000):
                    if marker is None and name in named:
                        return named[name]
                return None
            except RuntimeError:  # the I/O thread took some meanwhile: look again
                continue
        return None


class Closing:
    """close()'s request to the I/O thread: stop, delivering what is left by ``deadline``
    (a ``time.monotonic()``; ``inf`` until close() sets it)."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.deadline = math.inf

    def request(self, deadline: float) -> None:
        """Ask the I/O thread to finish by ``deadline``."""
        self.deadline = deadline
        self.event.set()

    def requested(self) -> bool:
        """Whether close() has asked the I/O thread to finish."""
        return self.event.is_set()
