"""``trainmon keygen``: CURVE key pairs written for the sides that bind and connect."""

from __future__ import annotations

import os

import click

from trainmon.cli.options import CONTEXT
from trainmon.cli.output import say
from trainmon.escape import escaped
from trainmon_client.security import check_key_name, create_keypair

__all__ = ["keygen"]


@click.command(context_settings=CONTEXT)
@click.argument("directory", type=click.Path(file_okay=False))
@click.option(
    "--name",
    "names",
    multiple=True,
    metavar="NAME",
    help="Key pairs to write [default: server and client].",
)
@click.option("--force", is_flag=True, help="Replace key files that already exist.")
def keygen(directory: str, names: tuple[str, ...], force: bool) -> None:
    """Write CURVE key pairs into DIRECTORY: NAME.key (public), NAME.key_secret (0600).

    Give the binding side (monitor, relay or training) its .key_secret and a
    directory holding the .key files it allows; give each connecting side its own
    .key_secret and the binding side's .key.
    """
    for name in names or ("server", "client"):
        try:
            check_key_name(name)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--name") from None
        existing = [
            p
            for p in (f"{name}.key", f"{name}.key_secret")
            if os.path.exists(os.path.join(directory, p))
        ]
        if existing and not force:
            raise click.ClickException(
                f"{escaped(os.path.join(directory, existing[0]))} exists; new keys would lock out "
                "everyone holding the old ones. Use --force to replace them."
            )
        try:
            public, secret = create_keypair(directory, name)
        except OSError as exc:
            raise click.ClickException(
                f"cannot write keys in {escaped(directory)}: {exc.strerror}"
            ) from exc
        say(f"wrote {escaped(public)} (public) and {escaped(secret)} (secret, mode 0600)")
