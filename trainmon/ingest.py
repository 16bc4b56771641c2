"""Records in: a ZeroMQ SUB socket drained for a bounded slice of time."""

from __future__ import annotations

import contextlib
import ipaddress
import math
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, Protocol

import zmq
from zmq.utils.monitor import recv_monitor_message

from trainmon_client.endpoints import (
    LEGACY_ENDPOINT,
    endpoint_problem,
    ipc_in_use,
    ipc_path,
)
from trainmon_client.links import tune_link
from trainmon_client.memguard import MemoryGuard, megabytes, rebind
from trainmon_client.protocol import (
    MAX_PAYLOAD_BYTES,
    Columns,
    ProtocolError,
    Record,
    decode_items,
)
from trainmon_client.security import Curve, ZapHandler, is_loopback

__all__ = [
    "DEFAULT_ADDRESS",
    "EndpointError",
    "RecordSink",
    "RecordSource",
    "Subscriber",
    "bind_checked",
    "check_endpoint",
    "explain_error",
    "host_port",
    "old_default_notice",
    "unencrypted_warning",
]

# Loopback tcp: the default before 0.2, and where no private socket can be made (the
# default is endpoints.default_endpoint()).
DEFAULT_ADDRESS = LEGACY_ENDPOINT
_MAX_LOCAL_WORLD: Final = 64  # ports of one machine's ranks connected at most, per endpoint
# Memory grown this far past its low mark makes the monitor reopen its socket: what
# libzmq holds for a message without end (see memguard). The state itself can grow
# about 250 MB when every limit is filled: a reopening that frees nothing doubles it.
_MEMORY_ALLOWANCE: Final = 128 << 20


class RecordSink(Protocol):
    """Where drained records go: ``RunState`` is one."""

    def apply(self, record: Record, now: float) -> bool: ...

    def apply_columns(self, columns: Columns, now: float) -> int: ...

    def reject(self, reason: str, peer: str = "") -> None: ...

    def refuse(self, reason: str, count: int) -> None: ...

    def note_link(self, short: str, note: str) -> None:
        """How the connections made with ``--connect`` stand, when that changes: a few
        words and the whole story of what is wrong, or "" and "" once all are up."""
        ...


class RecordSource(Protocol):
    """Anything the app can drain records from: the subscriber, a recording."""

    def drain(self, sink: RecordSink, budget_s: float) -> int: ...

    def clock(self) -> float:
        """The time the records are shown at: now, or a replay's own time."""
        ...

    def set_paused(self, paused: bool) -> None:
        """The person paused the view: a replay stops, live ingest goes on."""
        ...

    @property
    def finished(self) -> bool:
        """Nothing more will come (the end of a recording); never for a live socket."""
        ...

    @property
    def backlog(self) -> bool:
        """The last drain ran out of time with records still waiting."""
        ...

    @property
    def idle_s(self) -> float:
        """Seconds spent so far waiting for records (the rest of the loop's time is work,
        or waiting for a CPU)."""
        ...

    def close(self) -> None: ...


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


class Subscriber:
    """A SUB socket bound and/or connected to endpoints, subscribed to a run prefix.

    Args:
        bind: endpoints to listen on (workers connect to them).
        connect: endpoints to connect to (training that binds, or a relay).
        run: subscribe to this run only; None subscribes to all.
        on_payload: called with each valid payload as received (to record it).
        old_default: also listen here, taking nothing: a publisher that connects (an
            older client, whose default this was) is said once, in the link note.
    """

    def __init__(
        self,
        bind: Iterable[str] = (),
        connect: Iterable[str] = (),
        *,
        run: str | None = None,
        on_payload: Callable[[bytes], None] | None = None,
        curve: Curve | None = None,
        context: zmq.Context[zmq.Socket[bytes]] | None = None,
        old_default: str | None = None,
    ) -> None:
        bind, connect = list(bind), list(connect)
        self._own_context = context is None
        self._ctx = context or zmq.Context()
        self._sock = self._ctx.socket(zmq.SUB)
        self._zap: ZapHandler | None = None
        self._events: zmq.Socket[bytes] | None = None
        self._old: _OldDefault | None = None
        self._refusals_seen = 0
        self.warnings: list[str] = []
        self._sock.setsockopt(zmq.LINGER, 0)
        # At most this many messages (batches of up to 512 records, 1 MiB at most) wait
        # in ZeroMQ's queue for each connected peer: 32,768 records, enough for bursts
        # and a history re-send, and at most 64 MiB a peer (500 of up to 4 MiB allowed
        # 2 GiB). ZeroMQ caps no number of peers: see README, "Hostile or broken input".
        self._sock.setsockopt(zmq.RCVHWM, 64)
        # Larger frames are cut off by ZeroMQ before they are read into memory. (A message
        # of many frames is not: drain() lets the extra ones go as it reads them, and the
        # memory guard reopens the socket should a message never end.)
        self._sock.setsockopt(zmq.MAXMSGSIZE, MAX_PAYLOAD_BYTES + 1024)
        self._guard = MemoryGuard(_MEMORY_ALLOWANCE)
        self.reopened = 0  # times the socket was reopened because memory ran away
        tune_link(self._sock, bind + connect)
        self._run = run
        self._backlog = False
        self._idle_s = 0.0
        self._on_payload = on_payload
        self._sock.setsockopt(zmq.SUBSCRIBE, run.encode() if run else b"")
        self.endpoints: list[str] = []
        self._links = _Links(connect, encrypted=curve is not None)
        self._given = [e for e in connect if e.startswith("tcp://")]  # (ranks found from)
        self._connected = set(connect)
        self._link_note: tuple[str, str] | None = None
        endpoint = ""
        try:
            if curve is not None:
                self._secure(curve, bind, connect)
            elif connect:
                self._events = self._sock.get_monitor_socket(_LINK_EVENTS)
            for endpoint in bind:
                self.endpoints.append(
                    bind_checked(self._sock, endpoint, curve is not None, self.warnings)
                )
            for endpoint in connect:
                self._sock.connect(check_endpoint(endpoint))
                self.endpoints.append(endpoint)
            self._links.look_up()
            if old_default is not None and self.endpoints:
                self._old = _OldDefault(self._ctx, old_default, self.endpoints[0])
        except zmq.ZMQError as exc:
            self.close()
            raise EndpointError(explain_error(exc, endpoint)) from exc
        except EndpointError:
            self.close()
            raise

    def _secure(self, curve: Curve, bind: list[str], connect: list[str]) -> None:
        if bind and connect:
            raise EndpointError("with encryption, a monitor either binds or connects, not both")
        try:
            allowed = curve.apply(self._sock, server=bool(bind))
        except ValueError as exc:
            raise EndpointError(str(exc)) from exc
        if bind:
            self._zap = ZapHandler(self._ctx, allowed)
        # Peers that do not speak CURVE at all fail before authentication: watch for it.
        self._events = self._sock.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
            | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
            | (_LINK_EVENTS | _CURVE_LINK_EVENTS if connect else 0)
        )

    @property
    def address(self) -> str:
        """The endpoints in one string, for the screen."""
        return ", ".join(self.endpoints)

    def drain(self, sink: RecordSink, budget_s: float) -> int:
        """Receive and apply messages for at most ``budget_s``; the number applied.

        Waits up to ``budget_s`` for the first message, so an idle loop sleeps here.
        """
        deadline = time.monotonic() + budget_s
        applied = 0
        sock = self._sock
        if self._zap is not None or self._events is not None or self._old is not None:
            self._report_events(sink)
        self._watch_memory(sink)
        self._backlog = False
        waiting_since = time.monotonic()
        ready = sock.poll(max(int(budget_s * 1000), 0))
        self._idle_s += time.monotonic() - waiting_since
        if not ready:
            return 0
        while True:
            try:
                first = sock.recv(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return applied
            now = time.time()
            frames = [first.bytes]
            if first.more:
                frame = sock.recv(copy=False)
                if frame.more:  # too many: let the rest go as read, never held together
                    extra = 1
                    while sock.recv(copy=False).more:
                        extra += 1
                    sink.reject(
                        f"expected 2 frames [topic, payload], got {2 + extra}", _peer(first)
                    )
                    frames = []
                else:
                    frames.append(frame.bytes)
            try:
                items = decode_items(frames) if frames else []
            except ProtocolError as exc:
                sink.reject(str(exc), _peer(first))
                items = []  # and on to the deadline: a stream of bad messages must
                # not keep the loop from drawing, reading keys and quitting
            if items and self._on_payload is not None:
                self._on_payload(frames[1])
            for item in items:
                if self._run is None or item.run == self._run:
                    if type(item) is Columns:
                        sink.apply_columns(item, now)
                        applied += len(item.times)
                    else:
                        record: Record = item  # type: ignore[assignment]
                        sink.apply(record, now)
                        applied += 1
                        if record.kind == "hello" and "local_world" in record.info:
                            self._connect_group(record.info)
            if time.monotonic() >= deadline:
                self._backlog = bool(sock.poll(0))
                return applied

    def _watch_memory(self, sink: RecordSink) -> None:
        """Reopen the socket when memory runs away (libzmq lets go of what it held for
        a connection with it), and say so."""
        if self._guard.ran_away():
            self._reopen(sink)

    def _reopen(self, sink: RecordSink) -> None:
        """Drop every connection and make them again: what was queued is lost (and
        counted as missed), the publishers send their history again."""
        self.reopened += 1
        sock = self._sock
        bound = [e for e in self.endpoints if e not in self._connected]
        for endpoint in bound:
            with contextlib.suppress(zmq.ZMQError):
                sock.unbind(endpoint)
        for endpoint in self._connected:
            with contextlib.suppress(zmq.ZMQError):
                sock.disconnect(endpoint)
        done = self._guard.reclaim()
        if done.false_alarm:
            sink.reject(
                f"memory grew to {megabytes(done.before)}: the socket was reopened, but "
                "little came back (the monitor's own): reopened again only at "
                f"{megabytes(self._guard.low + self._guard.allowance)}"
            )
        else:
            sink.reject(
                f"memory grew to {megabytes(done.before)} in ZeroMQ's queues (a message "
                f"without end?): the socket was reopened, {megabytes(done.freed)} came back"
            )
        for endpoint in bound:
            if not rebind(sock, endpoint):
                sink.reject(f"cannot listen on {endpoint} again after reopening the socket")
        for endpoint in self._connected:
            with contextlib.suppress(zmq.ZMQError):
                sock.connect(endpoint)

    def _connect_group(self, info: Mapping[str, Any]) -> None:
        """Several ranks of one machine bind consecutive ports, from ``port -
        local_rank``: a rank's hello says so. Connected to one of those ports, connect
        to the others on the same host too (each then has its link noted as usual)."""
        port, rank, size = info.get("port"), info.get("local_rank"), info.get("local_world")
        if type(port) is not int or type(rank) is not int or type(size) is not int:
            return
        base = port - rank
        if not (1 < size <= _MAX_LOCAL_WORLD and 0 <= rank < size and 0 < base <= 65536 - size):
            return
        for endpoint in self._given:
            head, _, given = endpoint.rpartition(":")
            if not (given.isdigit() and base <= int(given) < base + size):
                continue
            for other in range(base, base + size):
                peer = f"{head}:{other}"
                if peer in self._connected:
                    continue
                try:
                    self._sock.connect(peer)
                except zmq.ZMQError:
                    continue
                self._connected.add(peer)
                self.endpoints.append(peer)
                self._links.add(peer)

    def _report_events(self, sink: RecordSink) -> None:
        if self._old is not None and self._old.knocked():
            sink.note_link("old client", self._old.notice)
        while self._events is not None and self._events.poll(0):
            event = recv_monitor_message(self._events)
            endpoint = event["endpoint"].decode(errors="replace")
            if self._links.take(zmq.Event(event["event"]), endpoint):
                continue
            sink.refuse(
                f"handshake failed on {endpoint}: a peer without the right "
                "encryption (no keys, or not CURVE)",
                1,
            )
        if self._links.states:
            for endpoint in self._links.given_up():
                self._sock.disconnect(endpoint)
                self._sock.connect(endpoint)
                self._links.reconnecting(endpoint)
            note = self._links.note()
            if note != self._link_note:
                self._link_note = note
                sink.note_link(*note)
        if self._zap is None:
            return
        count, latest = self._zap.snapshot()
        if count > self._refusals_seen:
            last = latest[-1]
            key = f" (key {last.key[:12]}…)" if last.key else " (no key)"
            sink.refuse(
                f"handshake refused from {last.address}{key}: not an allowed key",
                count - self._refusals_seen,
            )
            self._refusals_seen = count

    def clock(self) -> float:
        return time.time()

    def set_paused(self, paused: bool) -> None:
        """Live records keep arriving while the view is paused."""

    @property
    def finished(self) -> bool:
        return False

    @property
    def backlog(self) -> bool:
        return self._backlog

    @property
    def idle_s(self) -> float:
        return self._idle_s

    def close(self) -> None:
        if self._events is not None:
            self._events.close(0)
        if self._old is not None:
            self._old.close()
        self._sock.close(0)
        if self._zap is not None:
            self._zap.close()
        if self._own_context:
            self._ctx.term()


class _OldDefault:
    """A SUB socket on the endpoint monitors listened on before 0.2, never subscribed, so
    nothing is sent to it: a publisher whose handshake succeeds there (an older client,
    on its default) is told, once, where this monitor listens now. Where the endpoint is
    taken (an older monitor, another user's) nothing is watched, and nothing said."""

    def __init__(self, ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str, new: str) -> None:
        self.notice = old_default_notice(endpoint, new)
        self.said = False
        self._sock: zmq.Socket[bytes] | None = ctx.socket(zmq.SUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        # Nothing is subscribed, so a publisher sends nothing; a peer that sends anyway
        # is cut off at the first large message, and little is queued.
        self._sock.setsockopt(zmq.MAXMSGSIZE, 1024)
        self._sock.setsockopt(zmq.RCVHWM, 1)
        self._events: zmq.Socket[bytes] | None = self._sock.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_SUCCEEDED
        )
        try:
            self._sock.bind(endpoint)
        except zmq.ZMQError:
            self.close()

    def knocked(self) -> bool:
        """Whether a publisher connected for the first time since the last look."""
        if self._events is None:
            return False
        knocked = False
        while self._events.poll(0):
            recv_monitor_message(self._events)
            knocked = True
        if knocked and not self.said:
            self.said = True
            return True
        return False

    def close(self) -> None:
        if self._events is not None:
            self._events.close(0)
            self._events = None
        if self._sock is not None:
            self._sock.close(0)
            self._sock = None


# A connection is up once ZeroMQ's handshake succeeds: a TCP connection alone may be
# another program on that port (a web server never answers the handshake; another
# monitor drops it).
_LINK_EVENTS: Final = (
    zmq.EVENT_CONNECTED
    | zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_CONNECT_RETRIED
    | zmq.EVENT_DISCONNECTED
)
# With encryption our key may be refused (ZeroMQ then stops trying).
_CURVE_LINK_EVENTS: Final = zmq.EVENT_HANDSHAKE_FAILED_AUTH
_LOOK_UP_AGAIN_S: Final = 10.0  # a failed host-name look-up is tried again this often
_RECONNECT_S: Final = 3.0  # a connection ZeroMQ gave up is made again after this


class _Lookup:
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


class _Links:
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
        self.lookups: dict[str, _Lookup] = {}
        for endpoint in endpoints:
            host, _ = host_port(endpoint)
            if host:
                try:
                    ipaddress.ip_address(host)
                except ValueError:  # a name, not an address: look it up
                    self.lookups[endpoint] = _Lookup(host)

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
        if event == zmq.EVENT_CONNECTED:
            state = "handshaking"
        elif event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            state = "connected"
        elif event == zmq.EVENT_HANDSHAKE_FAILED_AUTH and self.states:
            state = "refused"
        elif event == zmq.EVENT_CONNECT_RETRIED:
            state = "retrying"
        elif event == zmq.EVENT_DISCONNECTED:
            state = "disconnected"
        else:
            return False
        endpoint = self._endpoint(reported)
        if endpoint is None:
            return True
        before = self.states[endpoint]
        self.since[endpoint] = time.monotonic()
        # ZeroMQ retries at once after a dropped connection: only a retry after a failed
        # attempt says nothing answers there any more.
        if state == "connected" or (state == "retrying" and before != "disconnected"):
            self.turned_away.pop(endpoint, None)
        elif state == "refused":
            self.turned_away[endpoint] = "key"
        elif state == "disconnected" and before == "handshaking":
            self.turned_away[endpoint] = "handshake"
        if not (state == "disconnected" and before == "refused"):
            self.states[endpoint] = state
        lookup = self.lookups.get(endpoint)
        if (
            state == "retrying"
            and lookup is not None
            and lookup.error
            and time.monotonic() - lookup.started > _LOOK_UP_AGAIN_S
        ):
            lookup.start()
        return True

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
            lookup = self.lookups.get(endpoint)
            if state == "connected":
                continue
            if self.turned_away.get(endpoint) == "key":
                return (
                    "key refused",
                    f"{endpoint} refused this monitor's key: its public key must be in the "
                    "training's (or relay's) allowed keys (--curve-allow, curve_allow); "
                    "tried again every few seconds",
                )
            if lookup is not None and lookup.error:
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
            if state == "connecting":
                return "connecting…", f"connecting to {endpoint}…"
            if state == "handshaking":
                return (
                    "connecting…",
                    f"connected to {endpoint}, waiting for ZeroMQ's handshake (if this "
                    "stays, another kind of program listens on that port)",
                )
            if state == "retrying":
                return (
                    "down (retrying)",
                    f"not connected to {endpoint}: nothing answers there (retrying); is "
                    "the training (or a relay) listening on that port?",
                )
            return "down (retrying)", f"disconnected from {endpoint} (reconnecting)"
        return "", ""


def host_port(endpoint: str) -> tuple[str, str]:
    """The host (or address) and port of a tcp endpoint (of its destination, in
    ZeroMQ's ``source;destination`` form); empty strings for others."""
    if not endpoint.startswith("tcp://"):
        return "", ""
    rest = endpoint[len("tcp://") :].rsplit(";", 1)[-1]
    host, _, port = rest.rpartition(":")
    return host.strip("[]"), port


def _peer(frame: zmq.Frame) -> str:
    """The address a message came from, as ZeroMQ knows it (tcp only)."""
    try:
        return str(frame.get("Peer-Address"))
    except zmq.ZMQError:
        return "local"


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
