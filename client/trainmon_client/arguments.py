"""The Monitor's arguments checked, and what they default to: where to publish and
whether to bind, the run name, totals, seconds and the encryption options."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping
from typing import Any

from trainmon_client.endpoints import default_endpoint, endpoint_problem, fallback_warning
from trainmon_client.identity import launch
from trainmon_client.records import MAX_STEP
from trainmon_client.redact import masked
from trainmon_client.security import Curve
from trainmon_client.text import MAX_NAME_CHARS, clean_text, valid_name
from trainmon_client.values import capture_count

__all__ = ["config_arg", "curve_arg", "run_name", "seconds", "total_arg", "where"]

_fallback_said = False  # the default's fallback to loopback tcp is said once a process


def where(endpoint: str | None, bind: bool | None, problems: list[str]) -> tuple[str, bool]:
    """Where to publish, and whether to bind there: the arguments, else the
    environment ("" if what the environment says cannot be an endpoint); what cannot
    be used goes in ``problems``, to be said once."""
    if endpoint is not None:
        problem = endpoint_problem(endpoint)
        if problem:
            raise ValueError(f"endpoint {problem}")
        return endpoint, bool(bind)
    listen = os.environ.get("TRAINMON_LISTEN", "").strip()
    if listen and bind is not False:
        name, found = "TRAINMON_LISTEN", listen
    else:
        name = "TRAINMON_ENDPOINT"
        found = os.environ.get(name, "").strip()
    if not found:
        return _default(problems), bool(bind)
    problem = endpoint_problem(found)
    if problem:
        problems.append(
            f"${name}={found!r} is not an endpoint (tcp://HOST:PORT or ipc://PATH): "
            f"{problem.split(': ', 1)[-1]}; not publishing"
        )
        found = ""
    return found, bind if bind is not None else name == "TRAINMON_LISTEN"


def _default(problems: list[str]) -> str:
    """The private default endpoint; where there is none, loopback tcp, said once."""
    global _fallback_said
    default = default_endpoint()
    if default.note and not _fallback_said:
        _fallback_said = True
        problems.append(fallback_warning(default, "publishing to"))
    return default.endpoint


def run_name(run: str | None) -> str:
    """The run name given (ValueError if it cannot be one), else ``$TRAINMON_RUN``, else
    the script's name and its launch."""
    if run is not None:
        if not valid_name(run[:MAX_NAME_CHARS]):
            raise ValueError(f"run name {run!r}: use 1 to 128 characters, no control characters")
        return run[:MAX_NAME_CHARS]
    named = clean_text(os.environ.get("TRAINMON_RUN", "")).strip()[:MAX_NAME_CHARS]
    return named or _default_run()


def _default_run() -> str:
    """The script's name and its launch (see :func:`identity.launch`): the ranks of one
    job share it, processes started separately never do."""
    script = clean_text(_script_name()).replace(" ", "_")  # a file name may hold anything
    suffix = clean_text(launch()).replace(" ", "_")[: MAX_NAME_CHARS // 2]
    return f"{script[: MAX_NAME_CHARS - len(suffix) - 1]}-{suffix}"


def _script_name() -> str:
    """What this Python runs, in a word: the script, the package run with ``-m``, a
    notebook, or just python (``-c``, standard input, the REPL)."""
    path = sys.argv[0] if sys.argv else ""
    name = os.path.splitext(os.path.basename(path))[0]
    if name == "__main__":  # python -m package
        name = os.path.basename(os.path.dirname(path))
    if name == "ipykernel_launcher":
        return "notebook"
    return name if name and not name.startswith("-") else "python"


def total_arg(value: Any, what: str) -> tuple[int | None, float | None]:
    """A total the monitor can show, from any number a framework gives: a whole number
    from 1 to 2**53 (a fraction rounded up), and the fraction itself where not whole;
    TypeError or ValueError for what is no such number."""
    if value is None:
        return None, None
    if isinstance(value, (str, bytes, bool)) or not hasattr(value, "__float__"):
        raise TypeError(f"{what} must be a number, not {type(value).__name__} {value!r}")
    if type(value) is not int:
        value = capture_count(value)
    if type(value) is int:
        number: float = value
    else:
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            raise TypeError(f"{what} must be a number, not {value!r}") from None
    if not 0 < number <= MAX_STEP:  # NaN fails too
        raise ValueError(f"{what} must be a number from 1 to 2**53, not {value!r}")
    whole = math.ceil(number)
    return whole, None if number == whole else float(number)


def seconds(value: Any, what: str) -> float:
    """A number of seconds from 0 to ``math.inf``; TypeError or ValueError otherwise."""
    if isinstance(value, (str, bytes, bool)) or not hasattr(value, "__float__"):
        raise TypeError(f"{what} must be a number of seconds, not {type(value).__name__}")
    number = float(value)
    if not number >= 0:  # NaN fails too
        raise ValueError(f"{what} must be a number of seconds from 0 to math.inf, not {value!r}")
    return number


def config_arg(config: Any) -> Mapping[str, Any] | None:
    """A copy of ``config`` with credentials' values masked (see redact.py) if it is a
    mapping (or None); TypeError otherwise."""
    if config is None:
        return None
    if not isinstance(config, Mapping):
        raise TypeError(
            f"config must be a mapping of names to plain values, not {type(config).__name__}"
        )
    copy: dict[str, Any] = masked(config)
    return copy


def curve_arg(
    secret: str | None, server: str | None, allow: str | None, bind: bool, problems: list[str]
) -> tuple[Curve | None, bool]:
    """The encryption asked for (ValueError if the code leaves a part out), and whether
    publishing can go on: one the environment leaves incomplete goes in ``problems``,
    and nothing is published."""
    curve = Curve.from_env(secret, server, allow)
    missing = "" if curve is None else _curve_missing(curve, bind)
    if missing and (secret or server or allow):
        raise ValueError(missing)  # left out in the code itself
    if missing:  # the environment's $TRAINMON_CURVE_* (a shell set up for a monitor?)
        problems.append(f"{missing}, from $TRAINMON_CURVE_*: not publishing")
    return curve, not missing


def _curve_missing(curve: Curve, bind: bool) -> str:
    """Which encryption option this side lacks, or "" (a key file that cannot be read
    is the machine's, said when the socket is opened)."""
    if not curve.secret:
        return "encryption needs this side's secret key (curve_secret)"
    if bind and not curve.allow:
        return "the binding side needs a directory of allowed public keys (curve_allow)"
    if not bind and not curve.server:
        return "the connecting side needs the server's public key (curve_server)"
    return ""
