"""File names and messages made safe to print: what a terminal would act on, escaped."""

from __future__ import annotations

import os
import re
from typing import Final

__all__ = ["escaped", "escaped_lines"]

# The characters trainmon_client.text counts unsafe in names and text (valid_name refuses
# them, clean_text makes them spaces): C0 and C1 controls and DEL (an
# escape sequence would reach the terminal), line and paragraph separators, bidirectional
# overrides and isolates (they reorder what is shown), and lone surrogates (what
# os.fsdecode makes of bytes that are not UTF-8).
_BEYOND_C0: Final = "\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff"
_UNSAFE: Final = re.compile(f"[\x00-\x1f{_BEYOND_C0}]")
_UNSAFE_BUT_NEWLINE: Final = re.compile(f"[\x00-\x09\x0b-\x1f{_BEYOND_C0}]")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if "\udc80" <= char <= "\udcff":  # a byte that was not UTF-8: show the byte
        return f"\\x{ord(char) - 0xDC00:02x}"
    return repr(char)[1:-1]  # \x1b, \n, \t, \u202e as Python writes them


def escaped(text: str | os.PathLike[str]) -> str:
    """``text`` (a file name) on one line, each unsafe character written as its escape."""
    text = os.fspath(text)
    return text if text.isprintable() else _UNSAFE.sub(_escape, text)


def escaped_lines(text: str) -> str:
    """``text`` (a message of one or more lines) with every unsafe character but the
    newline written as its escape."""
    return text if text.isprintable() else _UNSAFE_BUT_NEWLINE.sub(_escape, text)
