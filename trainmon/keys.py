"""Keys and signals in: a raw terminal turned into ``Action`` values, always restored."""

from __future__ import annotations

import contextlib
import enum
import os
import select
import signal
import sys
import termios
import tty
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, Final

__all__ = [
    "Action",
    "ESCAPES",
    "FOOTER",
    "HELP",
    "KEYMAP",
    "KeyReader",
    "PAUSED_FOOTER",
    "StopFlag",
    "parse_keys",
    "quit_on_signals",
    "terminal_keys",
]


class Action(enum.Enum):
    """What a key asks the app to do."""

    QUIT = "quit"
    TOGGLE_PAUSE = "pause"
    EXPORT = "export"
    TOGGLE_CHART = "chart"
    CYCLE_SMOOTHING = "smoothing"
    HELP = "help"
    CLOSE = "close"
    GRID = "grid"
    NEXT_PAGE = "next page"
    PREV_PAGE = "previous page"
    NEXT_METRIC = "next metric"
    PREV_METRIC = "previous metric"
    NEXT_WORKER = "next worker"
    WORKERS_MODE = "workers mode"
    NEXT_RUN = "next run"
    RUNS_LIST = "runs list"
    OVERLAY = "overlay"
    ZOOM_IN = "zoom in"
    ZOOM_OUT = "zoom out"
    PAN_LEFT = "pan left"
    PAN_RIGHT = "pan right"
    FOLLOW = "follow"
    TOGGLE_LOG = "log scale"
    TOGGLE_ROBUST = "ignore outliers"


KEYMAP: Final[dict[str, Action]] = {
    "q": Action.QUIT,
    "Q": Action.QUIT,
    " ": Action.TOGGLE_PAUSE,
    "e": Action.EXPORT,
    "E": Action.EXPORT,
    "c": Action.TOGGLE_CHART,
    "s": Action.CYCLE_SMOOTHING,
    "?": Action.HELP,
    "\x1b": Action.CLOSE,  # Esc alone
    "g": Action.GRID,
    "]": Action.NEXT_PAGE,
    "[": Action.PREV_PAGE,
    "m": Action.NEXT_METRIC,
    "M": Action.PREV_METRIC,
    "w": Action.NEXT_WORKER,
    "b": Action.WORKERS_MODE,
    "r": Action.NEXT_RUN,
    "R": Action.RUNS_LIST,
    "o": Action.OVERLAY,
    "+": Action.ZOOM_IN,
    "=": Action.ZOOM_IN,
    "-": Action.ZOOM_OUT,
    "h": Action.PAN_LEFT,
    "l": Action.PAN_RIGHT,
    "f": Action.FOLLOW,
    "y": Action.TOGGLE_LOG,
    "i": Action.TOGGLE_ROBUST,
    "\x03": Action.QUIT,  # Ctrl-C, should the terminal deliver it as a byte
}
# Escape sequences of the keys that send them (xterm and most terminals).
ESCAPES: Final[dict[str, Action]] = {
    "\x1b[D": Action.PAN_LEFT,
    "\x1b[C": Action.PAN_RIGHT,
    "\x1bOD": Action.PAN_LEFT,
    "\x1bOC": Action.PAN_RIGHT,
    "\x1b[F": Action.FOLLOW,  # End
    "\x1bOF": Action.FOLLOW,
    "\x1b[4~": Action.FOLLOW,
    "\x1b[5~": Action.PREV_PAGE,  # Page Up
    "\x1b[6~": Action.NEXT_PAGE,  # Page Down
}
# What the help overlay lists, in order: keys, then what they do.
HELP: Final = (
    ("q", "quit (training goes on)"),
    ("space", "pause / resume the view"),
    ("?  Esc", "this help / close it"),
    ("c", "chart of the whole run / sparkline"),
    ("g", "grid of every metric's chart"),
    ("]  [", "next / previous page of the grid (PgDn PgUp)"),
    ("m  M", "next / previous main metric"),
    ("+  -", "zoom the steps shown in / out"),
    ("←  →", "pan back / forward (h l)"),
    ("f", "follow the live tail again (End)"),
    ("y", "log-scale y axis"),
    ("i", "ignore outliers in the y range (5-95%)"),
    ("s", "smoothing weight (off, 0.6 ... 0.99)"),
    ("w", "next worker (rank) shown"),
    ("b", "workers: one / min-mean-max band / lines"),
    ("r", "next run"),
    ("R", "list of runs, and the shown run's config"),
    ("o", "overlay another run's main metric"),
    ("e", "save the screen as an SVG picture"),
    ("Ctrl-Z", "suspend; fg in the shell resumes"),
)


# What the footer names, in order: a key, then a word for what it does; and while paused.
FOOTER: Final = (
    ("?", "keys"),
    ("q", "quit"),
    ("space", "pause"),
    ("c", "chart"),
    ("s", "smoothing"),
    ("e", "save svg"),
)
PAUSED_FOOTER: Final = (("space", "resume"), ("e", "save svg"), ("q", "quit"))


def parse_keys(data: str) -> list[Action]:
    """The actions in a chunk of terminal input, escape sequences included."""
    actions: list[Action] = []
    index = 0
    while index < len(data):
        char = data[index]
        if char == "\x1b" and index + 1 < len(data) and data[index + 1] in "[O":
            end = index + 2
            while end < len(data) and not (data[end].isalpha() or data[end] == "~"):
                end += 1
            sequence = data[index : end + 1]
            action = ESCAPES.get(sequence)
            if action is not None:
                actions.append(action)
            index = end + 1
            continue
        action = KEYMAP.get(char)
        if action is not None:
            actions.append(action)
        index += 1
    return actions


class KeyReader:
    """Reads whatever keys are waiting, without blocking."""

    def __init__(self, fd: int | None, saved: list[Any] | None = None) -> None:
        self.fd = fd
        self.saved = saved  # the terminal's own settings, to give back

    def release(self) -> None:
        """Give the terminal its own settings back (before suspending)."""
        if self.fd is not None and self.saved is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)

    def grab(self) -> None:
        """cbreak mode again (after resuming)."""
        if self.fd is not None:
            tty.setcbreak(self.fd, termios.TCSANOW)

    def read(self) -> list[Action]:
        if self.fd is None:
            return []
        actions: list[Action] = []
        while select.select([self.fd], [], [], 0)[0]:
            try:
                data = os.read(self.fd, 64)
            except OSError:
                return actions
            if not data:
                self.fd = None  # end of input: no more keys
                return actions
            actions.extend(parse_keys(data.decode(errors="ignore")))
        return actions


@contextmanager
def terminal_keys(enabled: bool = True) -> Iterator[KeyReader]:
    """Put the terminal on standard input in cbreak mode while the block runs.

    cbreak (not raw) keeps Ctrl-C as a signal and output newline translation intact.
    Without a terminal, or when not ``enabled``, yields a reader that reads nothing.
    """
    fd = sys.stdin.fileno() if enabled and sys.stdin is not None and sys.stdin.isatty() else None
    if fd is None:
        yield KeyReader(None)
        return
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd, termios.TCSANOW)
        yield KeyReader(fd, saved)
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


class StopFlag:
    """Set by SIGINT, SIGTERM or SIGHUP; the app's loop checks it.

    SIGTSTP (Ctrl-Z) does not stop the loop: it sets ``suspend`` so the app can give
    the terminal back before the process stops, and take it again on ``fg``.
    """

    def __init__(self) -> None:
        self.signal: int | None = None
        self.suspend = False

    def request_suspend(self, signum: int, frame: FrameType | None = None) -> None:
        self.suspend = True

    def __bool__(self) -> bool:
        return self.signal is not None

    def set(self, signum: int, frame: FrameType | None = None) -> None:
        self.signal = signum


@contextmanager
def quit_on_signals(suspendable: bool = False) -> Iterator[StopFlag]:
    """Turn SIGINT, SIGTERM and SIGHUP into a flag, restoring the old handlers after.

    With ``suspendable``, SIGTSTP sets the flag's ``suspend`` instead of stopping.
    """
    flag = StopFlag()
    saved = {}
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
            saved[signum] = signal.signal(signum, flag.set)
    if suspendable:
        with contextlib.suppress(ValueError):
            saved[signal.SIGTSTP] = signal.signal(signal.SIGTSTP, flag.request_suspend)
    try:
        yield flag
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
