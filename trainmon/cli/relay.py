"""``trainmon relay``: many workers forwarded to any number of monitors."""

from __future__ import annotations

import socket
import time

import click

from trainmon.cli.options import CONTEXT, checked_endpoints, curve, relay_curve_options
from trainmon.cli.output import names
from trainmon.controls.terminal import quit_on_signals
from trainmon.escape import escaped_lines
from trainmon.sources.endpoints import EndpointError, host_port
from trainmon.sources.relay import Relay

__all__ = ["relay"]


def _reachable(endpoint: str) -> str:
    """A bound endpoint as others would connect to it: this machine's name for the
    any-interface address (no one can connect to 0.0.0.0)."""
    host, port = host_port(endpoint)
    if host in ("0.0.0.0", "*", "::"):
        return f"tcp://{socket.gethostname()}:{port}"
    return endpoint


@click.command(context_settings=CONTEXT)
@click.option(
    "--sub-bind",
    multiple=True,
    metavar="ENDPOINT",
    required=True,
    envvar="TRAINMON_RELAY_SUB",
    show_envvar=True,
    callback=checked_endpoints,
    help="Workers connect here: Monitor(ENDPOINT) (repeatable).",
)
@click.option(
    "--pub-bind",
    multiple=True,
    metavar="ENDPOINT",
    required=True,
    envvar="TRAINMON_RELAY_PUB",
    show_envvar=True,
    callback=checked_endpoints,
    help="Monitors connect here: trainmon watch --connect ENDPOINT (repeatable).",
)
@relay_curve_options
def relay(
    sub_bind: tuple[str, ...],
    pub_bind: tuple[str, ...],
    curve_secret: str | None,
    curve_allow: str | None,
) -> None:
    """Forward many workers to any number of monitors (ZeroMQ's XSUB/XPUB proxy).

    One relay per job or per node: workers connect to --sub-bind, monitors to
    --pub-bind, from anywhere that can reach them (no defaults: a relay is for
    reaching beyond your own private socket; on tcp beyond loopback, use CURVE).
    A monitor attaching later still gets each worker's history. Runs until Ctrl-C
    or SIGTERM.
    """
    try:
        forwarder = Relay(sub_bind, pub_bind, curve(curve_secret, None, curve_allow))
    except EndpointError as exc:
        raise click.ClickException(escaped_lines(str(exc))) from exc
    # Signals are caught before saying where to connect: a SIGTERM right after that
    # line must still stop the relay cleanly.
    try:
        with quit_on_signals() as stop:
            for warning in forwarder.warnings:
                click.echo(f"trainmon: {escaped_lines(warning)}", err=True)
            workers = names(list(map(_reachable, forwarder.endpoints["workers"])))
            monitors = names(list(map(_reachable, forwarder.endpoints["monitors"])))
            click.echo(f"trainmon relay: workers connect to {workers}; monitors to {monitors}")
            while not stop:
                time.sleep(0.1)
    finally:
        forwarder.close()
    refused = forwarder.refused()
    click.echo("trainmon relay: stopped" + (f"; {refused} handshakes refused" if refused else ""))
