"""Frame pacing: how long the loop takes records in between frames, and how often it
draws, with Python's garbage collector kept off the state."""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Iterator

from trainmon.sources import RecordSource

__all__ = ["BusyShare", "Collector", "DRAIN_SLICE_S", "collector", "frame_interval"]

DRAIN_SLICE_S = 0.02  # records taken in for this long at a time, between keys and frames
_BUSY_REFRESH_S = 0.25  # frame interval while records are waiting or ingest is heavy
_BUSY_SHARE = 0.5  # ingest is heavy when the loop is busy more than this share of the time
_BUSY_FRAME_SHARE = 0.1  # and then drawing takes at most this share of the time
_FULL_COLLECTION_S = 600.0  # see Collector


def frame_interval(
    refresh_s: float, backlog: bool, busy_share: float, frame_s: float = 0.0
) -> float:
    """Seconds to the next frame. Under a flood (records left waiting, or the loop busy
    most of the time) taking every record in comes before drawing often: frames come
    at most every 0.25 s, and drawing takes at most a tenth of the time (a frame that
    took 60 ms on a machine whose cores are taken: 0.6 s), up to a second apart. A
    key always redraws at once."""
    if backlog or busy_share > _BUSY_SHARE:
        return max(refresh_s, min(max(_BUSY_REFRESH_S, frame_s / _BUSY_FRAME_SHARE), 1.0))
    return refresh_s


class BusyShare:
    """The share of the wall time between frames the loop was not waiting for records.

    Not the CPU time: on a machine whose cores are taken (publishers flat out beside
    the monitor) the loop may get a third of a core and still never wait for a record.
    """

    def __init__(self, source: RecordSource) -> None:
        self.source = source
        self.share = 0.0
        self._idle, self._wall = source.idle_s, time.monotonic()

    def frame(self) -> None:
        idle, wall = self.source.idle_s, time.monotonic()
        if wall > self._wall:
            self.share = 1.0 - (idle - self._idle) / (wall - self._wall)
        self._idle, self._wall = idle, wall


class Collector:
    """Keeps Python's cyclic garbage collector off the state.

    The state holds millions of references (every point of every window, every
    bucket). A full pass of the collector over them took 0.3 to 0.5 s, and objects that
    live through a frame, promoted to the oldest generation, set one off every few
    seconds: the screen and the intake froze each time (64 workers x 20 metrics). Neither
    the state nor a frame makes reference cycles (tested; see ``view.Frame``), so after
    each frame everything alive is frozen out of the collector's passes (``gc.freeze``,
    which costs nothing); what dies later is freed by reference counting as ever. Every
    ``_FULL_COLLECTION_S`` all is unfrozen and collected in one pass, so a cycle made
    elsewhere (a library, an exception) is still freed in the end.
    """

    def __init__(self) -> None:
        self.next_full = time.monotonic() + _FULL_COLLECTION_S

    def frame(self) -> None:
        if time.monotonic() >= self.next_full:
            gc.unfreeze()
            gc.collect()
            self.next_full = time.monotonic() + _FULL_COLLECTION_S
        gc.freeze()


@contextlib.contextmanager
def collector() -> Iterator[Collector]:
    """A :class:`Collector` for the block; the collector's passes as they were after."""
    try:
        yield Collector()
    finally:
        gc.unfreeze()  # the caller's process as it was
