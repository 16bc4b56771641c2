"""What ZeroMQ does not bound: memory running away in a socket, noticed and given back.

libzmq bounds each frame (MAXMSGSIZE) and the number of whole messages queued per
connection (the high-water marks), but not the frames of one message: a message that
never ends accumulates inside libzmq, unseen by the application, until memory runs out.
The guard here notices it from the process's resident memory (``/proc/self/statm``, a
few microseconds to read) and says when the socket should be reopened: closing a
connection makes libzmq let go of whatever it held for it. After that, freed heap is
given back to the system (glibc's ``malloc_trim``).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import zmq

# After dropping connections libzmq frees what they held in its own thread: look every
# 20 ms for it to have gone, for half a second at most (a busy machine is slow at it).
_SETTLE_S: Final = 0.02
_RECLAIM_S: Final = 0.5
_TIDY_S: Final = 2.0  # memory well above its low mark is given back this often
_MAX_ALLOWANCE: Final = 64 << 30


def rss_bytes() -> int | None:
    """This process's resident memory, or None where /proc does not say (macOS)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


def _page_size() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 4096


_PAGE: Final = _page_size()


def _find_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim  # glibc only (musl has none)
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_trim: Callable[[int], int] | bool | None = False  # False: not looked for yet


def give_back() -> None:
    """Give freed heap back to the system where the C library can (glibc)."""
    global _trim
    if _trim is False:
        _trim = _find_trim()
    if callable(_trim):
        with contextlib.suppress(Exception):
            _trim(0)


@dataclass(frozen=True)
class Settled:
    """What a reopening gave back: resident memory before it and after, and whether
    that was too little for the memory to have been the socket's."""

    before: int
    after: int
    false_alarm: bool = False

    @property
    def freed(self) -> int:
        return max(self.before - self.after, 0)


class MemoryGuard:
    """Says when resident memory ran ``allowance`` bytes past its low mark.

    The low mark is the least seen. A reopening that gives back less than half of what
    had grown was a false alarm (the process itself grew): the allowance then doubles
    and the low mark moves up, so a process that grows for its own reasons is reopened a
    few times at most. Memory well above the low mark (a peer that left by itself, its
    memory freed but kept by the C library) is given back every few seconds.
    """

    def __init__(self, allowance: int, every_s: float = 0.05) -> None:
        self.allowance = allowance
        self.every_s = every_s
        rss = rss_bytes()
        self.enabled = rss is not None
        self.low = rss or 0
        # The least ever seen, never raised (a false alarm raises ``low``): memory well
        # above it is given back, so what a peer made the C library keep goes back to
        # the system once the peer has left, whatever the alarms decided meanwhile.
        self.floor = self.low
        self._tidy_above = allowance // 4
        self._tidy_every_s = _TIDY_S
        self._next = 0.0
        self._before = 0
        self._next_tidy = 0.0

    def ran_away(self, now: float | None = None) -> bool:
        """Whether the socket's connections should be dropped now (checked every
        ``every_s`` at most); if so, call :meth:`reclaim` once they are."""
        now = time.monotonic() if now is None else now
        if not self.enabled or now < self._next:
            return False
        self._next = now + self.every_s
        rss = rss_bytes()
        if rss is None:
            return False
        if rss > self.low + self.allowance:
            self._before = rss
            return True
        self.low = min(self.low, rss)
        self.floor = min(self.floor, rss)
        if rss > self.floor + self._tidy_above and now >= self._next_tidy:
            give_back()  # about 2 ms for a heap of 400 MB, then microseconds
            after = rss_bytes() or rss
            # Nothing came back: the process's own memory; look less and less often.
            gained = rss - after >= self._tidy_above // 2
            self._tidy_every_s = _TIDY_S if gained else min(self._tidy_every_s * 2, 60.0)
            self._next_tidy = now + self._tidy_every_s
        return False

    def reclaim(self) -> Settled:
        """Once the connections are dropped (before any is made again): let libzmq free
        what it held, give it back to the system, and say how much came back."""
        deadline = time.monotonic() + _RECLAIM_S
        enough = (self._before - self.low) // 2
        while True:
            time.sleep(_SETTLE_S)
            give_back()
            after = rss_bytes() or 0
            if self._before - after >= enough or time.monotonic() >= deadline:
                break
        if self._before - after < enough:
            # the process's own memory: ask for more before the next time
            self.allowance = min(self.allowance * 2, _MAX_ALLOWANCE)
            self.low = after
            return Settled(self._before, after, false_alarm=True)
        self.low = min(self.low, after)
        return Settled(self._before, after)


def rebind(sock: zmq.Socket[bytes], address: str, timeout_s: float = 2.0) -> bool:
    """Bind ``sock`` to ``address`` again, just after it was unbound there; whether it
    could be (the old listener closes in libzmq's thread, a moment later)."""
    deadline = time.monotonic() + timeout_s
    if address.startswith("ipc://") and not address.startswith("ipc://@"):
        # the old listener removes its file when it closes: bind only after that, or
        # it would remove the new one
        path = address[len("ipc://") :]
        while os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.005)
    while True:
        try:
            sock.bind(address)
            return True
        except zmq.ZMQError as exc:
            if exc.errno != zmq.EADDRINUSE or time.monotonic() >= deadline:
                return False
            time.sleep(0.01)


def megabytes(count: int) -> str:
    return f"{count / (1 << 20):,.0f} MB"
