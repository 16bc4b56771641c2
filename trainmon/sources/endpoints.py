"""Endpoints a monitor or relay uses: checked before use, and what to say when they fail."""

from __future__ import annotations

import zmq

from trainmon_client.endpoints import LEGACY_ENDPOINT, endpoint_problem, ipc_in_use, ipc_path
from trainmon_client.security import is_loopback

__all__ = [
    "EndpointError",
    "bind_checked",
    "check_endpoint",
    "explain_error",
    "host_port",
    "old_default_notice",
    "unencrypted_warning",
]


class EndpointError(Exception):
    """An endpoint that cannot be used; the message says why and what to try."""


def bind_checked(
    sock: zmq.Socket[bytes], endpoint: str, encrypted: bool, warnings: list[str]
) -> str:
    """Bind ``sock`` to a checked ``endpoint``, warning in ``warnings`` if it is reachable
    from other machines unencrypted; the address bound (a real port for ``:0``/``*``)."""
    check_endpoint(endpoint)
    path = ipc_path(endpoint)
    if path is not None and ipc_in_use(path):
        # ZeroMQ would remove the socket file and take the name: the process listening
        # there would go on, blind, without a word.
        raise EndpointError(
            f"cannot listen on {endpoint}: another monitor (or a relay, or training with "
            "bind=True) is listening there; stop it, or listen elsewhere (--bind "
            f"ipc:///another/path); to watch training that binds there: --connect {endpoint}"
        )
    if not encrypted and not is_loopback(endpoint):
        warnings.append(unencrypted_warning(endpoint))
    sock.bind(endpoint)
    return sock.getsockopt_string(zmq.LAST_ENDPOINT)


def check_endpoint(endpoint: str) -> str:
    """``endpoint`` if its form is one ZeroMQ takes, else :class:`EndpointError`."""
    problem = endpoint_problem(endpoint)
    if problem:
        raise EndpointError(problem)
    return endpoint


def old_default_notice(old: str, new: str) -> str:
    """What to say when a publisher connects to the endpoint monitors used before 0.2."""
    return (
        f"a publisher connected to {old}, the default before 0.2: upgrade it or set "
        f"TRAINMON_ENDPOINT={new}"
    )


def host_port(endpoint: str) -> tuple[str, str]:
    """The host (or address) and port of a tcp endpoint (of its destination, in
    ZeroMQ's ``source;destination`` form); empty strings for others."""
    if not endpoint.startswith("tcp://"):
        return "", ""
    rest = endpoint[len("tcp://") :].rsplit(";", 1)[-1]
    host, _, port = rest.rpartition(":")
    return host.strip("[]"), port


def unencrypted_warning(endpoint: str) -> str:
    """What to say when listening beyond this machine without encryption."""
    return (
        f"warning: {endpoint} is reachable from other machines and not encrypted: anyone "
        "who can reach it can read and send metrics. Use --curve-secret/--curve-allow "
        "(see trainmon keygen) or an SSH tunnel."
    )


def explain_error(exc: zmq.ZMQError, endpoint: str) -> str:
    if exc.errno == zmq.EADDRINUSE:
        held = (
            " (a trainmon watch on the default endpoint holds it too, to tell older clients "
            "where it listens)"
            if endpoint == LEGACY_ENDPOINT
            else ""
        )
        return (
            f"cannot listen on {endpoint}: address already in use; another monitor or relay "
            f"may hold it{held}: stop it, or choose another port"
        )
    if exc.errno == zmq.EADDRNOTAVAIL:
        return f"cannot listen on {endpoint}: no such local address; use 127.0.0.1 or 0.0.0.0"
    return f"cannot use {endpoint}: {exc.strerror}"
