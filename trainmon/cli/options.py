"""The options the commands share, in groups: where to listen, CURVE keys, and how the
dashboard is drawn; with the checks their values pass."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from trainmon.state import DONE_GRACE_S, LOST_AFTER_S
from trainmon_client.endpoints import LEGACY_ENDPOINT, endpoint_problem
from trainmon_client.security import Curve

__all__ = [
    "CONTEXT",
    "Finite",
    "checked_endpoints",
    "curve",
    "curve_options",
    "display_options",
    "endpoint_options",
    "relay_curve_options",
]

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
F = TypeVar("F", bound=Callable[..., Any])


class Finite(click.FloatRange):
    """A number option: finite (nan and inf would switch a timer off for good), and at
    least ``min``."""

    name = "finite number"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


def _group(*options: Callable[[F], F]) -> Callable[[F], F]:
    """One decorator for ``options``, listed in ``--help`` in the order given."""

    def apply(func: F) -> F:
        for option in reversed(options):
            func = option(func)
        return func

    return apply


def checked_endpoints(
    ctx: click.Context, param: click.Parameter, value: Sequence[str] | str | None
) -> Any:
    """An endpoint option's values, each of a form ZeroMQ can use (it takes many others
    without a word and never delivers): else a usage error, exit 2."""
    for endpoint in (value,) if isinstance(value, str) else value or ():
        problem = endpoint_problem(endpoint)
        if problem:
            raise click.BadParameter(problem, ctx=ctx, param=param)
    return value


# -- where to listen: watch and tail -------------------------------------------------------

endpoint_options = _group(
    click.option(
        "--bind",
        "bind",
        multiple=True,
        metavar="ENDPOINT",
        envvar="TRAINMON_BIND",
        show_envvar=True,
        callback=checked_endpoints,
        help="Listen here for workers to connect (repeatable). [default, unless "
        "--connect is given: a socket only you can reach, "
        "ipc:///tmp/trainmon-UID/monitor, where Monitor() publishes by default "
        "($TRAINMON_SOCKET_DIR moves it); where none can be made, "
        f"{LEGACY_ENDPOINT}, said once]",
    ),
    click.option(
        "--connect",
        "connect",
        multiple=True,
        metavar="ENDPOINT",
        envvar="TRAINMON_CONNECT",
        show_envvar=True,
        callback=checked_endpoints,
        help="Connect to training that binds, e.g. tcp://gpu-box:5556 or "
        "tcp://[::1]:5556 (repeatable).",
    ),
    click.option(
        "--run",
        "run",
        metavar="NAME",
        envvar="TRAINMON_RUN_FILTER",
        show_envvar=True,
        help="Show only the run named NAME (default: every run that publishes).",
    ),
    click.option(
        "--exit-when-done",
        is_flag=True,
        help=(
            "Exit once every worker seen has ended: said bye, or been lost (silent "
            f"for {LOST_AFTER_S:g} s: killed or crashed), and none has come back for "
            f"{DONE_GRACE_S:g} s more; the summary (tail: a line on stderr) names the lost "
            "ones."
        ),
    ),
)


# -- CURVE keys ----------------------------------------------------------------------------


def _key_option(name: str, envvar: str, help: str, *, directory: bool = False) -> Callable[[F], F]:
    """An option naming an existing key file (or directory of them)."""
    return click.option(
        name,
        metavar="DIR" if directory else "FILE",
        envvar=envvar,
        show_envvar=True,
        type=click.Path(file_okay=not directory, dir_okay=directory, exists=True),
        help=help,
    )


_CURVE_SECRET = _key_option(
    "--curve-secret",
    "TRAINMON_CURVE_SECRET",
    "Encrypt with CURVE: this side's .key_secret file (trainmon keygen).",
)

curve_options = _group(
    _CURVE_SECRET,
    _key_option(
        "--curve-server",
        "TRAINMON_CURVE_SERVER",
        "With --connect: the public .key file of the side that binds.",
    ),
    _key_option(
        "--curve-allow",
        "TRAINMON_CURVE_ALLOW",
        "With --bind: a directory of the public .key files allowed in.",
        directory=True,
    ),
)

# A relay binds both its sides: no --curve-server.
relay_curve_options = _group(
    _CURVE_SECRET,
    _key_option(
        "--curve-allow",
        "TRAINMON_CURVE_ALLOW",
        "A directory of the public .key files allowed in (workers and monitors).",
        directory=True,
    ),
)


def curve(secret: str | None, server: str | None, allow: str | None) -> Curve | None:
    """The CURVE keys the options name, if any; a usage error when the secret is missing."""
    if not (secret or server or allow):
        return None
    if not secret:
        raise click.UsageError("--curve-server and --curve-allow need --curve-secret")
    return Curve(secret, server, allow)


# -- how the dashboard is drawn: watch and replay ------------------------------------------

_pace_options = _group(
    click.option(
        "--history",
        default=100,
        show_default=True,
        metavar="N",
        type=click.IntRange(2, 100_000),
        help="Values of the main metric in the sparkline.",
    ),
    click.option(
        "--refresh-ms",
        default=100,
        show_default=True,
        metavar="MS",
        type=click.IntRange(10, 60_000),
        help="Redraw the screen every MS milliseconds.",
    ),
    click.option(
        "--stall-after",
        default=60.0,
        show_default=True,
        metavar="SECONDS",
        type=Finite(0.5),
        help="Call a worker stalled after SECONDS without new metrics.",
    ),
)

_mode_options = _group(
    click.option(
        "--no-interactive",
        is_flag=True,
        help="Do not read keys (? lists them); quit with Ctrl-C.",
    ),
    click.option(
        "--plain",
        is_flag=True,
        help="No dashboard: status lines instead (automatic without a terminal).",
    ),
    click.option(
        "--plain-interval",
        default=5.0,
        show_default=True,
        metavar="SECONDS",
        type=Finite(0.1),
        help="Seconds between status lines in plain mode.",
    ),
)

_look_options = _group(
    click.option(
        "--theme",
        default="dark",
        show_default=True,
        envvar="TRAINMON_THEME",
        type=click.Choice(["dark", "light", "mono"]),
        help="Colours: dark or light terminal backgrounds, or mono (none). NO_COLOR "
        "in the environment also turns colour off. [env: TRAINMON_THEME]",
    ),
    click.option(
        "--theme-file",
        metavar="FILE",
        envvar="TRAINMON_THEME_FILE",
        type=click.Path(dir_okay=False),
        help="A TOML file of style names to colours over the theme, e.g. "
        'line = "bright_green" (see the README). [env: TRAINMON_THEME_FILE]',
    ),
    click.option(
        "--bell",
        is_flag=True,
        help="Ring the terminal bell once for each new alert (NaN, loss spike, "
        "stalled or lost worker, missed records, an alert from training).",
    ),
    click.option(
        "--export-dir",
        default=".",
        show_default=True,
        metavar="DIR",
        type=click.Path(file_okay=False, exists=True),
        help="Where the e key saves SVG pictures of the screen.",
    ),
)

display_options = _group(_pace_options, _mode_options, _look_options)
