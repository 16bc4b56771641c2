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

import errno
import os
import socket
import stat
from dataclasses import dataclass
from typing import Final

__all__ = [
    "LEGACY_ENDPOINT",
    "SCHEMES",
    "Default",
    "default_endpoint",
    "ipc_in_use",
    "ipc_path",
    "private_dir",
]

SCHEMES: Final = ("tcp://", "ipc://", "inproc://")
LEGACY_ENDPOINT: Final = "tcp://127.0.0.1:5555"  # the default before 0.2, and the fallback
_SOCKET_NAME: Final = "monitor"
_IPC_PATH_MAX: Final = 107  # sun_path holds 108 bytes with the final NUL (Linux; macOS 104)


@dataclass(frozen=True, slots=True)
class Default:
    """The default endpoint, and why it is not the private one ("" when it is)."""

    endpoint: str
    note: str = ""


def private_dir(create: bool = True) -> tuple[str | None, str]:
    """This user's private socket directory and "", or None and the reason it cannot be.

    Made (mode 0700) when missing and ``create``; one that exists must belong to this user,
    be a real directory (not a link) and let nobody else in.
    """
    getuid = getattr(os, "getuid", None)
    if getuid is None or not hasattr(socket, "AF_UNIX"):
        return None, "this system has no private local sockets"
    path = os.environ.get("TRAINMON_SOCKET_DIR") or f"/tmp/trainmon-{getuid()}"
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
    if not stat.S_ISDIR(info.st_mode):
        return None, f"{path} is not a directory"
    if info.st_uid != getuid():
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
    return Default(f"ipc://{path}/{_SOCKET_NAME}")


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
