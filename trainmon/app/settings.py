"""How the loop runs (as opposed to what it shows), and when those settings stop it."""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.theme import Theme

from trainmon.app.done import DONE_GRACE_S, DoneWatch
from trainmon.state import RunState

__all__ = ["AppSettings", "Deadline"]


@dataclass(frozen=True, slots=True)
class AppSettings:
    """How the loop runs, as opposed to what it shows."""

    refresh_s: float = 0.1
    interactive: bool = True
    exit_when_done: bool = False
    done_grace_s: float = DONE_GRACE_S
    plain_interval_s: float = 5.0
    max_duration_s: float | None = None  # stop after this long whatever happens
    export_dir: str = "."
    finished_notice: str = ""  # shown once the source has nothing more to give
    theme: Theme | None = None  # the dark theme unless given
    bell: bool = False  # ring the terminal bell for each new alert


class Deadline:
    """``exit_when_done`` (on the source's clock, as the state is) and
    ``max_duration_s`` (on the wall clock)."""

    def __init__(self, settings: AppSettings) -> None:
        self.settings = settings
        self.done = DoneWatch()
        self.started = time.monotonic()

    def reached(self, state: RunState, now: float) -> bool:
        settings = self.settings
        if settings.exit_when_done and self.done.check(state, now, settings.done_grace_s):
            return True
        return (
            settings.max_duration_s is not None
            and time.monotonic() - self.started >= settings.max_duration_s
        )
