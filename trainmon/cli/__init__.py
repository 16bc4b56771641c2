"""The ``trainmon`` command: the click group, and a module for each family of commands
(watch and tail, replay and export, demo, relay, keygen) wiring the parts together."""

from __future__ import annotations

import click

from trainmon.cli import compare, demo, files, keygen, relay, runs, watch
from trainmon.cli.options import CONTEXT

__all__ = ["main"]


@click.group(context_settings=CONTEXT)
@click.version_option(package_name="trainmon", prog_name="trainmon")
def main() -> None:
    """Watch model training live, from another terminal or another machine.

    A training script publishes with the trainmon-client library
    (Monitor().log(loss=...)); `trainmon watch` shows the run. The monitor is a
    separate process: quitting or freezing it never touches training.
    """


for _command in (
    watch.watch,
    watch.tail,
    files.replay,
    files.export,
    runs.runs,
    runs.rm,
    compare.compare,
    demo.demo,
    relay.relay,
    keygen.keygen,
):
    main.add_command(_command)
