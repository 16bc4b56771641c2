"""How the client speaks: one logger, "trainmon_client", whose lines never carry a
control character to the terminal (they name files and endpoints a user gave)."""

from __future__ import annotations

import logging
from typing import Final

from trainmon_client.text import escape_text

__all__ = ["Warnings", "log", "say"]

log = logging.getLogger("trainmon_client")
_MAX_WARNINGS: Final = 64  # different warnings said at most; then one line says so


class _Escaped(logging.Filter):
    """What the client says names files and endpoints a user gave: their control
    characters are written as escapes, never sent to the terminal."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not message.isprintable():
            record.msg, record.args = escape_text(message), None
        return True


log.addFilter(_Escaped())


def say(line: str) -> None:
    """One line on stderr, from any thread (through the logging module)."""
    log.warning("trainmon: %s", line)


class Warnings:
    """Warnings said once each (by key), at most ``limit`` different ones: then one line
    says no more will be."""

    def __init__(self, limit: int = _MAX_WARNINGS) -> None:
        self.limit = limit
        self.said: set[str] = set()

    def once(self, key: str, text: str, dropped: bool = True) -> None:
        """Say ``text`` unless ``key`` was said (``dropped``: say what was dropped)."""
        if key in self.said or len(self.said) > self.limit:
            return
        self.said.add(key)
        if len(self.said) > self.limit:
            text, dropped = f"more than {self.limit} different warnings: no more said", False
        log.warning("trainmon: %s%s", text, "; dropped (warned once)" if dropped else "")
