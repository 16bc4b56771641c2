"""A dataset whose items are slow to load, for the tests of Monitor.track()."""

from __future__ import annotations

import time


class SlowItems:
    """``count`` items, each taking ``delay_s`` to load (a loader that is the bottleneck)."""

    def __init__(self, count: int, delay_s: float) -> None:
        self.count, self.delay_s = count, delay_s

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> int:
        if index >= self.count:
            raise IndexError(index)
        time.sleep(self.delay_s)
        return index
