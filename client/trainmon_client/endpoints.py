"""Where a monitor and its training processes meet by default, and endpoint checks.

The default is an ipc socket in a directory only this user can enter,
``/tmp/trainmon-UID/monitor`` (mode 0700, owned by the user, not a link): another local
user can neither write into the user's dashboard nor read the user's metrics. Both sides
work the place out from the user id alone, so a batch job, cron or nohup without
``$XDG_RUNTIME_DIR`` finds the same socket as a login shell, and either side creates the
directory if it is missing, so nobody else can take the name first. Where no private
place can be had (Windows, a pyzmq without ipc, the name taken by another user) the
default is loopback tcp, ``LEGACY_ENDPOINT``, and the reason is given to be said once.
``$TRAINMON_SOCKET_DIR`` names another directory (it must be private in the same way).
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import re
import socket
import stat
from dataclasses import dataclass
from typing import Final

from trainmon_client.text import clean_text

__all__ = [
    "Default",
    "LEGACY_ENDPOINT",
    "SCHEMES",
    "default_endpoint",
    "endpoint_problem",
    "fallback_warning",
    "ipc_in_use",
    "ipc_path",
    "is_private_default",
    "needs_ipv6",
    "nobody_watched_hint",
    "private_dir",
]

SCHEMES: Final = ("tcp://", "ipc://", "inproc://")
LEGACY_ENDPOINT: Final = "tcp://127.0.0.1:5555"  # the default before 0.2, and the fallback
_SOCKET_NAME: Final = "monitor"
_TMP = "/tmp"  # not $TMPDIR: a batch job's may differ from the shell's
_IPC_PATH_MAX: Final = 107  # sun_path holds 108 bytes with the final NUL (Linux; macOS 104)
# A host name, an interface name (eth0) or an IPv4 address; "*" is any interface.
_NAME: Final = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?")
_TCP_FORM: Final = "use tcp://HOST:PORT (an IPv6 address in brackets: tcp://[::1]:PORT)"


@dataclass(frozen=True, slots=True)
class Default:
    """The default endpoint, and why it is not the usual private one ("" when it is):
    loopback tcp for want of a private place, or the home's socket directory."""

    endpoint: str
    note: str = ""


def private_dir(create: bool = True) -> tuple[str | None, str]:
    """This user's private socket directory and a note ("" when all is as usual), or
    None and the reason there is none.

    ``/tmp/trainmon-UID`` first; if another user holds that name (made before ours, to
    push us onto a port everyone can reach), a directory in the user's home instead,
    ``~/.trainmon/sockets-HOST`` (nobody else can make it), said in the note. Made
    (mode 0700) when missing and ``create``; one that exists must belong to this user,
    be a real directory (not a link) and let nobody else in.
    """
    getuid = getattr(os, "getuid", None)
    if getuid is None or not hasattr(socket, "AF_UNIX"):
        return None, "this system has no private local sockets"
    explicit = os.environ.get("TRAINMON_SOCKET_DIR")
    if explicit:
        return _usable(explicit, create)
    first = os.path.join(_TMP, f"trainmon-{getuid()}")
    path, why = _usable(first, create)
    if path is not None:
        return path, ""
    home = _home(getuid())
    if home is None:
        return None, why
    host = "".join(c for c in socket.gethostname() if c.isalnum() or c in ".-")[:32]
    second = os.path.join(home, ".trainmon", f"sockets-{host or 'host'}")
    if create:
        with contextlib.suppress(OSError):  # (checked as a whole below)
            os.makedirs(os.path.dirname(second), mode=0o700, exist_ok=True)
    path, why_second = _usable(second, create)
    if path is None:
        return None, f"{why}; and {why_second}"
    return path, f"{why}: using {second} instead"


def _home(uid: int) -> str | None:
    """The user's home directory from the password database (not $HOME, which a batch
    job or cron may set otherwise), or None."""
    try:
        import pwd

        return pwd.getpwuid(uid).pw_dir or None
    except (ImportError, KeyError):
        return None


def _usable(path: str, create: bool) -> tuple[str | None, str]:
    """``path`` and "" if it is (or is made) a private directory of this user's with
    room for the socket's name; else None and why not."""
    if not os.path.isabs(path):
        return None, f"{path} is not an absolute path (both sides must find it)"
    if len(os.fsencode(path)) + 1 + len(_SOCKET_NAME) > min(_IPC_PATH_MAX, 103):
        return None, f"{path} is too long a path for a local socket"
    if create:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass  # checked below, whoever made it
        except OSError as exc:
            return None, f"cannot make {path}: {exc.strerror}"
    try:
        info = os.lstat(path)
    except OSError as exc:
        return None, f"cannot use {path}: {exc.strerror}"
    if stat.S_ISLNK(info.st_mode):
        return None, f"{path} is a symbolic link (it could lead anywhere)"
    if not stat.S_ISDIR(info.st_mode):
        return None, f"{path} is not a directory"
    if info.st_uid != os.getuid():
        return None, f"{path} belongs to another user"
    if stat.S_IMODE(info.st_mode) & 0o077:
        try:  # ours, so ours to close
            os.chmod(path, 0o700)
        except OSError as exc:
            return None, f"{path} is open to other users and cannot be closed: {exc.strerror}"
    return path, ""


def default_endpoint(create: bool = True) -> Default:
    """The endpoint a monitor binds and a training process connects to by default."""
    try:
        import zmq

        has_ipc = bool(zmq.has("ipc"))
    except ImportError:  # pragma: no cover - pyzmq is a dependency of both sides
        has_ipc = False
    if not has_ipc:
        return Default(LEGACY_ENDPOINT, "this pyzmq has no ipc sockets")
    path, why = private_dir(create)
    if path is None:
        return Default(LEGACY_ENDPOINT, why)
    return Default(f"ipc://{path}/{_SOCKET_NAME}", why)  # (a note: the home's instead)


def is_private_default(endpoint: str) -> bool:
    """Whether ``endpoint`` is this user's private default socket (as it stands now)."""
    path, _ = private_dir(create=False)
    return path is not None and endpoint == f"ipc://{path}/{_SOCKET_NAME}"


def fallback_warning(default: Default, doing: str) -> str:
    """The one line said where the default is loopback tcp for want of a private place,
    or a private place other than the usual one (``doing``: "listening on",
    "publishing to")."""
    if default.endpoint != LEGACY_ENDPOINT:
        return f"{default.note} ({doing} {default.endpoint})"
    return (
        f"no private socket here ({default.note}): {doing} {default.endpoint}, which other "
        "users of this machine can reach (set TRAINMON_SOCKET_DIR to a directory of your "
        "own, or use CURVE keys)"
    )


def endpoint_problem(endpoint: str) -> str:
    """Why ``endpoint`` cannot be a ZeroMQ endpoint ("" if it can): ZeroMQ takes many
    malformed ones without a word and then never delivers."""
    if not endpoint.startswith(SCHEMES):
        return (
            f"{endpoint!r} is not an endpoint: it must start with tcp://, ipc:// or "
            "inproc:// (tcp://HOST:PORT, ipc:///path/to/socket)"
        )
    if endpoint.startswith("inproc://"):
        return "" if len(endpoint) > len("inproc://") else f"{endpoint!r} has no name"
    path = ipc_path(endpoint)
    if path is not None:
        if not path:
            return f"{endpoint!r} has no path: use ipc:///path/to/socket"
        if len(os.fsencode(path)) > _IPC_PATH_MAX:
            return (
                f"{endpoint!r}: a local socket's path is at most {_IPC_PATH_MAX} bytes; "
                "use a shorter one"
            )
        return ""
    # ZeroMQ's source;destination form: the destination is what matters here.
    rest = endpoint[len("tcp://") :].rsplit(";", 1)[-1]
    if rest.startswith("[") and "]" in rest:  # [IPv6]:PORT: the port after the bracket
        host, _, after = rest.partition("]")
        host += "]"
        colon, port = after[:1], after[1:]
        if after and colon != ":":
            return f"{endpoint!r}: {after!r} after the address; {_TCP_FORM}"
    else:
        host, colon, port = rest.rpartition(":")
    if not colon:
        return f"{endpoint!r} has no port; {_TCP_FORM}"
    if port != "*" and not (port.isdigit() and 0 < int(port) < 65536):
        return f"{endpoint!r}: the port must be 1-65535 (or * for any free one); {_TCP_FORM}"
    why = _host_problem(host)
    return f"{endpoint!r}: {why}; {_TCP_FORM}" if why else ""


def _host_problem(host: str) -> str:
    """Why ``host`` is no address, host or interface name ("" if it is one)."""
    if not host:
        return "no host"
    if host.startswith("[") or host.endswith("]"):
        if not (host.startswith("[") and host.endswith("]")):
            return f"unbalanced brackets in {host!r}"
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return f"{host[1:-1]!r} in brackets is not an IPv6 address"
        return ""
    if ":" in host:
        return f"an IPv6 address goes in brackets ([{host}])"
    if host == "*":
        return ""
    if not _NAME.fullmatch(host):
        return f"{host!r} is not an address or a host name"
    if host.replace(".", "").isdigit():
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return f"{host!r} is not an IPv4 address"
    return ""


def needs_ipv6(endpoint: str) -> bool:
    """Whether a socket needs ZeroMQ's IPV6 option for ``endpoint`` (an address in
    brackets). Host names are left to IPv4, as before: with the option, ZeroMQ takes a
    name's first IPv6 address, and a monitor listening on 127.0.0.1 or 0.0.0.0 would not
    be found at ``localhost`` (::1 first on many systems) or a dual-stack host's name."""
    return endpoint.startswith("tcp://") and "[" in endpoint


def ipc_path(endpoint: str) -> str | None:
    """The socket file of an ``ipc://`` endpoint, else None."""
    return endpoint[len("ipc://") :] if endpoint.startswith("ipc://") else None


def ipc_in_use(path: str) -> bool:
    """Whether a process listens on the local socket ``path`` (binding there again would
    take the socket from it without a word: ZeroMQ removes the file first)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(path)
        except OSError as exc:
            # No file, or a file nobody listens on (left by a process that died).
            return exc.errno not in (errno.ENOENT, errno.ECONNREFUSED, errno.ENOTSOCK)
        return True


def nobody_watched_hint(endpoint: str, bind: bool) -> str:
    """What to do next time, for a run published on ``endpoint`` that no monitor
    heard: start one the right way, or reach the one that listens elsewhere."""
    if bind:
        return f"start `trainmon watch --connect {_reachable(endpoint)}` first"
    if endpoint == LEGACY_ENDPOINT and _private_monitor():
        return (
            f"a monitor listens on the default, {default_endpoint(create=False).endpoint}: "
            "unset TRAINMON_ENDPOINT to reach it"
        )
    if endpoint.startswith("ipc://") and _legacy_listener():
        return (  # (a newer monitor's watcher there takes nothing: hence "if")
            f"something listens on {LEGACY_ENDPOINT}, the default before 0.2: if it is "
            "an older trainmon watch, upgrade it (or, on a machine of your own, set "
            f"TRAINMON_ENDPOINT={LEGACY_ENDPOINT} for this script)"
        )
    return "start `trainmon watch` first to see it live"


def _legacy_listener() -> bool:
    """Whether something listens on the old default's port (an older monitor, maybe)."""
    host, _, port = LEGACY_ENDPOINT[len("tcp://") :].rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=0.2):
            return True
    except OSError:
        return False


def _private_monitor() -> bool:
    """Whether a monitor listens on this user's private default socket."""
    path = ipc_path(default_endpoint(create=False).endpoint)
    return path is not None and ipc_in_use(path)


def _reachable(endpoint: str) -> str:
    """A bound endpoint as another machine would name it: this host for a wildcard."""
    for wildcard in ("tcp://0.0.0.0:", "tcp://*:", "tcp://[::]:"):
        if endpoint.startswith(wildcard):
            host = clean_text(socket.gethostname()) or "THIS_HOST"
            return f"tcp://{host}:{endpoint[len(wildcard) :]}"
    return endpoint
