"""A real ``trainmon watch`` on a pseudo-terminal, for the benchmark scripts.

It draws its full dashboard as in a terminal; its output is read in a thread (keeping
the last chunks, enough for the final summary) so it never blocks on a full pty.
"""

from __future__ import annotations

import os
import pty
import re
import signal
import subprocess
import sys
import threading


class PtyWatch:
    """``trainmon watch --bind ENDPOINT --no-interactive [extra...]`` at 120x40."""

    def __init__(self, endpoint: str, *extra: str) -> None:
        self._master, slave = pty.openpty()
        env = dict(os.environ, COLUMNS="120", LINES="40", TERM="xterm-256color")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "trainmon",
                "watch",
                "--bind",
                endpoint,
                "--no-interactive",
                *extra,
            ],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            close_fds=True,
        )
        os.close(slave)
        self._chunks: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self._master, 65536)
            except OSError:
                return
            if not data:
                return
            self._chunks.append(data)
            del self._chunks[:-200]

    def stop(self) -> str:
        """Stop it (SIGTERM, then kill) if still running; what it printed last."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._reader.join(timeout=2)
        os.close(self._master)
        return b"".join(self._chunks).decode(errors="replace")


def summary_counts(text: str) -> tuple[int, int, float]:
    """Records received and missed, and the seconds from the first record to the last,
    from the summary watch prints when it stops (-1 where it says nothing)."""
    received = re.search(r"records received (\d+)(?: in ([\d.]+) s)?", text)
    missed = re.search(r"missed (\d+)", text)
    return (
        int(received.group(1)) if received else -1,
        0 if "nothing missed" in text else int(missed.group(1)) if missed else -1,
        float(received.group(2)) if received and received.group(2) else -1.0,
    )
