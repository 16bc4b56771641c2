"""How the client speaks: one logger, "trainmon_client", whose lines never carry a
control character to the terminal (they name files and endpoints a user gave)."""

from __future__ import annotations

import logging

from trainmon_client.protocol import escape_text

__all__ = ["log", "say"]

log = logging.getLogger("trainmon_client")


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
