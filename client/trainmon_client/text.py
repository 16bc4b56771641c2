"""Text that reaches a terminal: what may name a run, worker, host or metric, and free
text with its unsafe characters escaped or made spaces."""

from __future__ import annotations

import re
from typing import Final, TypeGuard

__all__ = ["MAX_NAME_CHARS", "clean_text", "escape_text", "valid_name"]

MAX_NAME_CHARS: Final = 128

# What a name may not hold, and what free text has turned into spaces: control
# characters (C0, DEL, C1: an escape sequence would reach the watcher's terminal), line
# and paragraph separators, bidirectional overrides and isolates (they reorder what is
# shown), and lone surrogates (not UTF-8 at all).
_UNSAFE_CHARS: Final = "\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff"
_UNSAFE: Final = re.compile(f"[{_UNSAFE_CHARS}]")


def valid_name(value: object) -> TypeGuard[str]:
    """Whether ``value`` can name a run, worker, host or metric: a string of 1 to
    MAX_NAME_CHARS characters, none of them unsafe on a terminal (see _UNSAFE_CHARS).
    Other characters are fine, in any language and emoji (joiners included), even ones
    this Python's Unicode tables do not know yet."""
    return (
        type(value) is str
        and 0 < len(value) <= MAX_NAME_CHARS
        and (value.isprintable() or _UNSAFE.search(value) is None)
    )


def escape_text(text: str) -> str:
    """``text`` with every unsafe character (see _UNSAFE_CHARS) written as its escape
    (``\\x1b``, ``\\u202e``): a file name shown as it is, without acting on a terminal."""
    if text.isprintable():
        return text
    return _UNSAFE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def clean_text(text: str) -> str:
    """``text`` with every unsafe character (see _UNSAFE_CHARS) turned into a space."""
    return text if text.isprintable() else _UNSAFE.sub(" ", text)
