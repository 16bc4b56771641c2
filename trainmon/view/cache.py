"""The view's draw caches: what it keeps between frames (smoothed lines, worker bands,
grid cells), beside the state and never in it."""

from __future__ import annotations

from typing import Any

from trainmon.state import Run

__all__ = ["RUN_CACHES", "SMOOTHED", "DrawCache", "run_cache"]


class DrawCache:
    """What the view keeps between frames, beside the state and never in it: an entry
    per series or run it was drawn from, found by identity (the object is held, so its
    id cannot be reused while the entry lives) and checked by the user against the
    series' count and revision. Cleared whole past ``limit`` entries."""

    def __init__(self, limit: int = 4096) -> None:
        self.limit = limit
        self.entries: dict[int, tuple[object, Any]] = {}

    def get(self, owner: object) -> Any:
        entry = self.entries.get(id(owner))
        return entry[1] if entry is not None and entry[0] is owner else None

    def put(self, owner: object, value: Any) -> None:
        if len(self.entries) >= self.limit:
            self.entries.clear()
        self.entries[id(owner)] = (owner, value)


SMOOTHED = DrawCache()  # series -> _Smoothed
RUN_CACHES = DrawCache(256)  # run -> {"band": ..., "grid": ...}


def run_cache(run: Run, what: str) -> dict[Any, Any]:
    """The view's cache of ``what`` ("band", "grid") for ``run``."""
    caches = RUN_CACHES.get(run)
    if caches is None:
        caches = {}
        RUN_CACHES.put(run, caches)
    return caches.setdefault(what, {})  # type: ignore[no-any-return]
