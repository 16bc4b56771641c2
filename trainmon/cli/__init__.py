"""The ``trainmon`` command: the click group, and a module for each family of commands
(watch and tail, replay and export, runs and rm, compare, demo, relay, keygen) wiring
the parts together.

A command's module is imported when that command runs (or when ``--help`` lists them
all), not at every start: ``trainmon runs`` then loads neither the dashboard's loop nor
ZeroMQ, and answers in a fraction of the time (scripts/bench_runs.py).
"""

from __future__ import annotations

import importlib
from typing import Final

import click

from trainmon.cli.options import CONTEXT

__all__ = ["main"]

# Each command, in the order --help lists them: its name, and its module and function.
_COMMANDS: Final = {
    "watch": ("watch", "watch"),
    "tail": ("watch", "tail"),
    "replay": ("files", "replay"),
    "export": ("files", "export"),
    "runs": ("runs", "runs"),
    "rm": ("runs", "rm"),
    "compare": ("compare", "compare"),
    "demo": ("demo", "demo"),
    "relay": ("relay", "relay"),
    "keygen": ("keygen", "keygen"),
}


class _Commands(click.Group):
    """A group whose commands are imported when asked for (click's documented pattern for
    lazily loaded subcommands)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        where = _COMMANDS.get(cmd_name)
        if where is None:
            return None
        module = importlib.import_module(f"trainmon.cli.{where[0]}")
        command: click.Command = getattr(module, where[1])
        return command


@click.group(cls=_Commands, context_settings=CONTEXT)
@click.version_option(package_name="trainmon", prog_name="trainmon")
def main() -> None:
    """Watch model training live, from another terminal or another machine.

    A training script publishes with the trainmon-client library
    (Monitor().log(loss=...)); `trainmon watch` shows the run. The monitor is a
    separate process: quitting or freezing it never touches training.
    """
