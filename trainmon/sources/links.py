"""How the connections a monitor made stand: ZeroMQ's socket events, host-name look-ups,
and the note that tells the person what is wrong with a link."""

from __future__ import annotations

import ipaddress
import math
import socket
import threading
import time
from typing import Final

import zmq

from trainmon.sources.endpoints import host_port

__all__ = ["CURVE_LINK_EVENTS", "LINK_EVENTS", "Links", "Lookup"]

# A connection is up once ZeroMQ's handshake succeeds: a TCP connection alone may be
# another program on that port (a web server never answers the handshake; another
# monitor drops it).
LINK_EVENTS: Final = (
    zmq.EVENT_CONNECTED
    | zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_CONNECT_RETRIED
    | zmq.EVENT_DISCONNECTED
)
# With encryption our key may be refused (ZeroMQ then stops trying).
CURVE_LINK_EVENTS: Final = zmq.EVENT_HANDSHAKE_FAILED_AUTH
# What each of those events makes of a link (a key refused counts only for links made).
_STATES: Final = {
    zmq.EVENT_CONNECTED: "handshaking",
    zmq.EVENT_HANDSHAKE_SUCCEEDED: "connected",
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: "refused",
    zmq.EVENT_CONNECT_RETRIED: "retrying",
    zmq.EVENT_DISCONNECTED: "disconnected",
}
# The note of a link in each state, when nothing more is known of it.
_STATE_NOTES: Final = {
    "connecting": ("connecting…", "connecting to {endpoint}…"),
    "handshaking": (
        "connecting…",
        "connected to {endpoint}, waiting for ZeroMQ's handshake (if this stays, another "
        "kind of program listens on that port)",
    ),
    "retrying": (
        "down (retrying)",
        "not connected to {endpoint}: nothing answers there (retrying); is the training "
        "(or a relay) listening on that port?",
    ),
}
_DISCONNECTED_NOTE: Final = ("down (retrying)", "disconnected from {endpoint} (reconnecting)")
_LOOK_UP_AGAIN_S: Final = 10.0  # a failed host-name look-up is tried again this often
_RECONNECT_S: Final = 3.0  # a connection ZeroMQ gave up is made again after this


class Lookup:
    """One host name looked up on a thread (a look-up can take seconds): its addresses,
    or why it failed."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.addresses: frozenset[str] = frozenset()
        self.error = ""  # why the last look-up failed
        self.unknown = False  # and whether it said there is no such host
        self.started = -math.inf
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self.started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="trainmon-lookup", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            found = socket.getaddrinfo(self.host, None, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            self.unknown = isinstance(exc, socket.gaierror) and exc.errno == socket.EAI_NONAME
            self.error = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            return
        self.addresses = frozenset(str(info[4][0]) for info in found)
        self.error, self.unknown = "", False


class Links:
    """How the connections a monitor made (``--connect``) stand: from ZeroMQ's socket
    events, and a look-up of each host name (ZeroMQ retries an unknown host forever
    without a word)."""

    def __init__(self, endpoints: list[str], *, encrypted: bool) -> None:
        self.states = dict.fromkeys(endpoints, "connecting")
        self.encrypted = encrypted
        # endpoints whose peer ended the handshake, and how: "handshake" (dropped it)
        # or "key" (refused ours); until a handshake works or nothing answers there
        self.turned_away: dict[str, str] = {}
        self.since = dict.fromkeys(endpoints, time.monotonic())  # the last event's time
        self.lookups: dict[str, Lookup] = {}
        for endpoint in endpoints:
            host, _ = host_port(endpoint)
            if host:
                try:
                    ipaddress.ip_address(host)
                except ValueError:  # a name, not an address: look it up
                    self.lookups[endpoint] = Lookup(host)

    def look_up(self) -> None:
        for lookup in self.lookups.values():
            lookup.start()

    def add(self, endpoint: str) -> None:
        """Another endpoint connected to (another rank's port on a host given)."""
        self.states[endpoint] = "connecting"
        self.since[endpoint] = time.monotonic()
        host, _ = host_port(endpoint)
        for lookup in list(self.lookups.values()):
            if lookup.host == host:  # the same host: its look-up serves both
                self.lookups[endpoint] = lookup
                break

    def take(self, event: zmq.Event, reported: str) -> bool:
        """Take a socket event; whether it was one about a link."""
        state = _STATES.get(event)
        if state is None or (state == "refused" and not self.states):
            return False
        endpoint = self._endpoint(reported)
        if endpoint is None:
            return True
        before = self.states[endpoint]
        self.since[endpoint] = time.monotonic()
        self._note_turned_away(endpoint, before, state)
        if not (state == "disconnected" and before == "refused"):
            self.states[endpoint] = state
        if state == "retrying":
            self._look_up_again(endpoint)
        return True

    def _note_turned_away(self, endpoint: str, before: str, state: str) -> None:
        """Whether the peer at ``endpoint`` ended the handshake, and how, after an event
        that took its link from ``before`` to ``state``."""
        # ZeroMQ retries at once after a dropped connection: only a retry after a failed
        # attempt says nothing answers there any more.
        if state == "connected" or (state == "retrying" and before != "disconnected"):
            self.turned_away.pop(endpoint, None)
        elif state == "refused":
            self.turned_away[endpoint] = "key"
        elif state == "disconnected" and before == "handshaking":
            self.turned_away[endpoint] = "handshake"

    def _look_up_again(self, endpoint: str) -> None:
        """Look the host of ``endpoint`` up again if the last look-up failed a while ago."""
        lookup = self.lookups.get(endpoint)
        if (
            lookup is not None
            and lookup.error
            and time.monotonic() - lookup.started > _LOOK_UP_AGAIN_S
        ):
            lookup.start()

    def given_up(self) -> list[str]:
        """Endpoints ZeroMQ stopped trying: after a handshake that failed on the socket
        type or the security mechanism (another monitor there, CURVE on one side only),
        or our key refused, it does not reconnect by itself; whatever listens there
        later would never be reached."""
        now = time.monotonic()
        return [
            endpoint
            for endpoint, state in self.states.items()
            if state in ("refused", "disconnected")
            and endpoint in self.turned_away
            and now - self.since[endpoint] > _RECONNECT_S
        ]

    def reconnecting(self, endpoint: str) -> None:
        self.states[endpoint] = "connecting"
        self.since[endpoint] = time.monotonic()

    def _endpoint(self, reported: str) -> str | None:
        """The endpoint given that an event names: ZeroMQ names it as given until it
        first connects, then by the address it found for the host."""
        if reported in self.states:
            return reported
        if len(self.states) == 1:
            return next(iter(self.states))
        host, port = host_port(reported)
        for endpoint, lookup in self.lookups.items():
            if host_port(endpoint)[1] == port and host in lookup.addresses:
                return endpoint
        return None

    def note(self) -> tuple[str, str]:
        """A few words for the stats and the whole story, of the first connection that
        is not up; ("", "") when all are."""
        for endpoint, state in self.states.items():
            if state != "connected":
                return self._trouble(endpoint, state)
        return "", ""

    def _trouble(self, endpoint: str, state: str) -> tuple[str, str]:
        """A few words and the whole story of ``endpoint``, a connection not up."""
        lookup = self.lookups.get(endpoint)
        if self.turned_away.get(endpoint) == "key":
            return (
                "key refused",
                f"{endpoint} refused this monitor's key: its public key must be in the "
                "training's (or relay's) allowed keys (--curve-allow, curve_allow); "
                "tried again every few seconds",
            )
        if lookup is not None and lookup.error:
            return _lookup_failed(endpoint, lookup)
        if endpoint in self.turned_away:
            other_side = (
                "is the training without encryption, or with another key"
                if self.encrypted
                else "does the training want encryption (--curve-server)"
            )
            return (
                "turned away",
                f"{endpoint} answers but drops the connection in ZeroMQ's handshake: is "
                f"another monitor listening there instead of training or a relay, or "
                f"{other_side}? (tried again every few seconds)",
            )
        short, story = _STATE_NOTES.get(state, _DISCONNECTED_NOTE)
        return short, story.format(endpoint=endpoint)


def _lookup_failed(endpoint: str, lookup: Lookup) -> tuple[str, str]:
    """The note of a connection whose host name could not be looked up."""
    if lookup.unknown:
        return (
            "unknown host",
            f"cannot connect to {endpoint}: no host named {lookup.host!r} is "
            f"known here ({lookup.error}); check the name",
        )
    return (
        "host look-up failed",
        f"cannot look up {lookup.host!r} for {endpoint} ({lookup.error}); trying again",
    )
