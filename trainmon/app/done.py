"""Done-watching: when every worker seen has ended, and for how long that has held."""

from __future__ import annotations

import math

from trainmon.state import DONE_GRACE_S, RunState, worker_label

__all__ = ["DONE_GRACE_S", "DoneWatch", "is_done", "lost_workers"]


def is_done(state: RunState, now: float) -> bool:
    """Every worker of every run has ended: said bye (finished), or been silent for
    ``LOST_AFTER_S`` (lost: killed, crashed, or cut off); ``now`` on the clock the
    state was given (the source's)."""
    workers = [w for run in state.runs.values() for w in run.workers.values()]
    return bool(workers) and all(w.status(now, math.inf) in ("finished", "lost") for w in workers)


def lost_workers(state: RunState, now: float) -> list[str]:
    """``run: worker`` for each worker lost (see :func:`is_done`), for a last word."""
    return [
        f"{run.name}: {worker_label(w)}"
        for run in state.runs.values()
        for w in run.workers.values()
        if w.status(now, math.inf) == "lost"
    ]


class DoneWatch:
    """Knows when every worker seen has ended (:func:`is_done`), and for how long that
    has held: a worker heard again within the grace starts it over."""

    def __init__(self) -> None:
        self.since: float | None = None

    def check(self, state: RunState, now: float, grace_s: float) -> bool:
        if not is_done(state, now):
            self.since = None
            return False
        if self.since is None:
            self.since = now
        return now - self.since >= grace_s
