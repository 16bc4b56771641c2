"""CURVE encryption and authentication for trainmon sockets, and the loopback check.

The side that binds is the CURVE *server*: it holds a secret key and a directory of
the public keys it accepts. The side that connects is a CURVE *client*: it holds its
own key pair and the server's public key. Keys are ZeroMQ certificate files, as
``trainmon keygen`` (or ``zmq.auth.create_certificates``) writes them: ``NAME.key``
holds the public key, ``NAME.key_secret`` both keys and is readable by its owner only.

Who may connect is decided by a ZAP handler (ZeroMQ's authentication protocol, RFC 27)
running in a thread beside the socket; it remembers who it refused, and from where, so
a monitor can say "handshake refused from 10.0.0.7" rather than look like no data.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import stat
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import zmq
import zmq.auth
import zmq.utils.z85

__all__ = [
    "Curve",
    "Refusal",
    "ZapHandler",
    "check_key_name",
    "create_keypair",
    "is_loopback",
    "load_allowed",
]

_ZAP_ENDPOINT: Final = "inproc://zeromq.zap.01"
DOMAIN: Final = b"trainmon"


@dataclass(frozen=True, slots=True)
class Refusal:
    """One refused handshake."""

    time: float
    address: str
    key: str  # the peer's public key in Z85 text, or "" without one


_KEY_CHARS: Final = 40  # a CURVE key in Z85 text (32 bytes)


def check_key_name(name: str) -> str:
    """``name`` if it can name a key pair inside a directory, else ValueError saying why:
    a plain file name, no path separators, not hidden, no control characters."""
    if not name or name.strip() != name:
        raise ValueError(f"key name {name!r}: give a plain name such as 'monitor'")
    if name.startswith(".") or "/" in name or os.sep in name or (os.altsep or "/") in name:
        raise ValueError(
            f"key name {name!r}: a plain file name, without '/' and not starting with '.' "
            "(the keys are written inside the directory given)"
        )
    if not name.isprintable():
        raise ValueError(f"key name {name!r}: no control characters")
    return name


def create_keypair(directory: str | os.PathLike[str], name: str) -> tuple[Path, Path]:
    """Write ``NAME.key`` (public) and ``NAME.key_secret`` (mode 0600) in ``directory``.

    The pair is made in a private directory of its own beside them and renamed into
    place: a name that is a link (planted by someone who can write the directory) is
    replaced, never followed, so the secret key never lands in another user's file.
    """
    check_key_name(name)
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    old_umask = os.umask(0o077)  # the secret file is never readable by others, even briefly
    try:
        staging = Path(tempfile.mkdtemp(prefix=".keygen-", dir=folder))
        try:
            made_public, made_secret = zmq.auth.create_certificates(str(staging), name)
            os.chmod(made_secret, 0o600)
            os.chmod(made_public, 0o644)
            public, secret = folder / f"{name}.key", folder / f"{name}.key_secret"
            os.replace(made_secret, secret)  # (rename: a link in its place is replaced)
            os.replace(made_public, public)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    finally:
        os.umask(old_umask)
    return public, secret


def load_keypair(path: str | os.PathLike[str]) -> tuple[bytes, bytes]:
    """The (public, secret) keys of a ``.key_secret`` file that only its owner can read.

    ValueError says what is wrong: not a key file, a key cut short, no secret key in
    it, or a file other users can read (as ssh refuses such a key).
    """
    public, secret = _certificate(path)
    if secret is None:
        raise ValueError(f"{path} holds no secret key (use the .key_secret file)")
    _check_key(path, secret, "secret")
    mode = os.stat(path).st_mode
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ValueError(
            f"{path} can be read by other users (mode {stat.S_IMODE(mode):04o}): "
            f"a secret key must be yours alone; run chmod 600 {path}"
        )
    return public, secret


def load_public(path: str | os.PathLike[str]) -> bytes:
    """The public key in a ``.key`` (or ``.key_secret``) file."""
    return _certificate(path)[0]


def _certificate(path: str | os.PathLike[str]) -> tuple[bytes, bytes | None]:
    """The keys of a certificate file, checked; ValueError naming the file otherwise."""
    if not os.path.isfile(path):
        what = "a directory" if os.path.isdir(path) else "no such file"
        raise ValueError(f"{path} is not a key file ({what})")
    try:
        public, secret = zmq.auth.load_certificate(os.fspath(path))
    except (OSError, ValueError, UnicodeDecodeError) as exc:  # zmq's parser is terse
        raise ValueError(f"{path} is not a key file written by trainmon keygen ({exc})") from None
    _check_key(path, public, "public")
    return public, secret


def _check_key(path: str | os.PathLike[str], key: bytes, what: str) -> None:
    if len(key) != _KEY_CHARS:
        raise ValueError(
            f"{path}: its {what} key has {len(key)} characters, a CURVE key has "
            f"{_KEY_CHARS}: the file is cut short or was edited; write it again with "
            "trainmon keygen"
        )
    try:
        zmq.utils.z85.decode(key)
    except (ValueError, KeyError, IndexError):
        raise ValueError(f"{path}: its {what} key is not Z85 text (the file is damaged)") from None


def load_allowed(directory: str | os.PathLike[str]) -> set[bytes]:
    """The public keys of every ``.key`` file in ``directory`` (other entries, such as a
    folder that happens to end in .key, are not keys and are passed over)."""
    folder = Path(directory)
    if not folder.is_dir():
        raise ValueError(f"{directory} is not a directory of public keys")
    return {load_public(path) for path in sorted(folder.glob("*.key")) if path.is_file()}


@dataclass(frozen=True, slots=True)
class Curve:
    """What one socket needs for CURVE, from the options a person gave.

    Args:
        secret: this side's ``.key_secret`` file.
        server: the server's ``.key`` file (connecting side only).
        allow: a directory of accepted ``.key`` files (binding side only).
    """

    secret: str | None = None
    server: str | None = None
    allow: str | None = None

    @classmethod
    def from_env(
        cls, secret: str | None = None, server: str | None = None, allow: str | None = None
    ) -> Curve | None:
        """Options first, then ``TRAINMON_CURVE_SECRET``/``_SERVER``/``_ALLOW``."""
        curve = cls(
            secret or os.environ.get("TRAINMON_CURVE_SECRET") or None,
            server or os.environ.get("TRAINMON_CURVE_SERVER") or None,
            allow or os.environ.get("TRAINMON_CURVE_ALLOW") or None,
        )
        return curve if (curve.secret or curve.server or curve.allow) else None

    def apply(self, sock: zmq.Socket[bytes], *, server: bool) -> set[bytes]:
        """Set ``sock``'s CURVE options; the accepted client keys when ``server``.

        Raises ValueError saying which option is missing or which file is unusable.
        """
        if not self.secret:
            raise ValueError("encryption needs this side's secret key (curve secret)")
        try:
            public, secret = load_keypair(self.secret)
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read secret key {self.secret}: {exc}") from exc
        sock.curve_publickey = public
        sock.curve_secretkey = secret
        if server:
            if not self.allow:
                raise ValueError(
                    "the binding side needs a directory of allowed public keys (curve allow)"
                )
            sock.curve_server = True
            sock.zap_domain = DOMAIN
            return load_allowed(self.allow)
        if not self.server:
            raise ValueError("the connecting side needs the server's public key (curve server)")
        try:
            sock.curve_serverkey = load_public(self.server)
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read server key {self.server}: {exc}") from exc
        return set()


class ZapHandler:
    """Accepts CURVE clients whose public key is allowed; remembers whom it refused.

    One per ZeroMQ context: it answers the authentication requests of every socket of
    that context that has a ZAP domain.
    """

    def __init__(self, context: zmq.Context[zmq.Socket[bytes]], allowed: Iterable[bytes]):
        """``allowed``: public keys in Z85 text, as certificate files hold them."""
        self.allowed = set(allowed)
        self.refused: deque[Refusal] = deque(maxlen=64)
        self.refused_count = 0
        self._lock = threading.Lock()
        self._sock = context.socket(zmq.REP)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.bind(_ZAP_ENDPOINT)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="trainmon-zap", daemon=True)
        self._thread.start()

    def snapshot(self) -> tuple[int, list[Refusal]]:
        """How many handshakes were refused, and the latest ones."""
        with self._lock:
            return self.refused_count, list(self.refused)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if self._sock.poll(100):
                    self._answer(self._sock.recv_multipart())
        finally:
            self._sock.close(0)

    def _answer(self, request: list[bytes]) -> None:
        # RFC 27: version, request id, domain, address, identity, mechanism, credentials
        if len(request) < 6:
            self._sock.send_multipart([b"1.0", b"", b"500", b"malformed request", b"", b""])
            return
        request_id, address, mechanism = request[1], request[3], request[5]
        raw = request[6] if mechanism == b"CURVE" and len(request) > 6 else b""
        key = zmq.utils.z85.encode(raw) if len(raw) == 32 else b""  # certificates hold Z85
        if key and key in self.allowed:
            self._sock.send_multipart([b"1.0", request_id, b"200", b"OK", b"", b""])
            return
        with self._lock:
            self.refused_count += 1
            self.refused.append(
                Refusal(
                    time.time(),
                    address.decode(errors="replace"),
                    key.decode(),
                )
            )
        self._sock.send_multipart([b"1.0", request_id, b"400", b"key not allowed", b"", b""])

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


def is_loopback(endpoint: str) -> bool:
    """Whether a bound ``endpoint`` can only be reached from this machine."""
    if not endpoint.startswith("tcp://"):
        return True  # ipc and inproc never leave the machine
    host = endpoint[len("tcp://") :].rsplit(":", 1)[0].strip("[]")
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # "*", a host name or an interface name: reachable from outside
