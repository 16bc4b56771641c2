"""Keys and signals in: a raw terminal turned into ``Action`` values, always restored."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import termios
import tty
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from trainmon.keys import Action, parse_keys

__all__ = ["KeyReader", "StopFlag", "quit_on_signals", "terminal_keys"]


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
