"""What the commands print: lines on the standard output that fail as a one-line error,
and file names made safe to print."""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Sequence

import click

from trainmon.escape import escaped

__all__ = ["names", "say", "stdout_failed"]


def say(text: str) -> None:
    """Print ``text`` on the standard output; a failure to (a full disk) is an error."""
    try:
        click.echo(text)
    except OSError as exc:
        raise stdout_failed(exc) from None


def stdout_failed(exc: OSError) -> Exception:
    """What to raise when writing the standard output failed: a closed pipe (`| head`)
    as it is, for click (and tail) to end quietly; anything else a one-line error."""
    if exc.errno == errno.EPIPE:
        return exc
    # The interpreter flushes the standard output again at exit: that must not fail
    # (with a traceback of its own) too.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass  # not a file descriptor (a test's capture): nothing flushes it at exit
    return click.ClickException(f"cannot write to standard output: {exc.strerror or exc}")


def names(files: Sequence[str]) -> str:
    """File names as they are safe to print, in one line."""
    return ", ".join(map(escaped, files))
