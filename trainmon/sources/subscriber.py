"""Records in: a ZeroMQ SUB socket drained for a bounded slice of time."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import zmq
from zmq.utils.monitor import recv_monitor_message

from trainmon.sources import RecordSink
from trainmon.sources.endpoints import (
    EndpointError,
    bind_checked,
    check_endpoint,
    explain_error,
    old_default_notice,
)
from trainmon.sources.links import CURVE_LINK_EVENTS, LINK_EVENTS, Links
from trainmon_client.links import tune_link
from trainmon_client.memguard import MemoryGuard, megabytes, rebind
from trainmon_client.protocol import (
    MAX_PAYLOAD_BYTES,
    Columns,
    ProtocolError,
    Record,
    decode_items,
)
from trainmon_client.security import Curve, ZapHandler

__all__ = ["MAX_FRAME_BYTES", "Subscriber", "limit_intake"]

_MAX_LOCAL_WORLD: Final = 64  # ports of one machine's ranks connected at most, per endpoint
# Memory grown this far past its low mark makes the monitor reopen its socket: what
# libzmq holds for a message without end (see memguard). The state itself can grow
# about 250 MB when every limit is filled: a reopening that frees nothing doubles it.
_MEMORY_ALLOWANCE: Final = 128 << 20
# At most this many messages (batches of up to 512 records, 1 MiB at most) wait in
# ZeroMQ's queue for each connected peer: 32,768 records, enough for bursts and a
# history re-send, and at most 64 MiB a peer (500 of up to 4 MiB allowed 2 GiB). ZeroMQ
# caps no number of peers: see README, "Hostile or broken input".
_PEER_QUEUE: Final = 64
# Larger frames are cut off by ZeroMQ before they are read into memory. (A message of
# many frames is not: drain() lets the extra ones go as it reads them, and the memory
# guard reopens the socket should a message never end.)
MAX_FRAME_BYTES: Final = MAX_PAYLOAD_BYTES + 1024


def limit_intake(sock: zmq.Socket[bytes], max_frame: int = MAX_FRAME_BYTES) -> None:
    """Bound what ``sock`` takes in as a monitor does: frames of ``max_frame`` bytes at
    most, and a queue of a few dozen messages for each peer."""
    sock.setsockopt(zmq.RCVHWM, _PEER_QUEUE)
    sock.setsockopt(zmq.MAXMSGSIZE, max_frame)


class Subscriber:
    """A SUB socket bound and/or connected to endpoints, subscribed to a run prefix.

    Args:
        bind: endpoints to listen on (workers connect to them).
        connect: endpoints to connect to (training that binds, or a relay).
        run: subscribe to this run only; None subscribes to all.
        on_payload: called with each valid payload as received, and the run name it
            is of (its topic), to record it.
        old_default: also listen here, taking nothing: a publisher that connects (an
            older client, whose default this was) is said once, in the link note.
    """

    def __init__(
        self,
        bind: Iterable[str] = (),
        connect: Iterable[str] = (),
        *,
        run: str | None = None,
        on_payload: Callable[[bytes, str], None] | None = None,
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
        limit_intake(self._sock)
        self._guard = MemoryGuard(_MEMORY_ALLOWANCE)
        self.reopened = 0  # times the socket was reopened because memory ran away
        tune_link(self._sock, bind + connect)
        self._run = run
        self._backlog = False
        self._idle_s = 0.0
        self._on_payload = on_payload
        self._sock.setsockopt(zmq.SUBSCRIBE, run.encode() if run else b"")
        self.endpoints: list[str] = []
        self._links = Links(connect, encrypted=curve is not None)
        self._given = [e for e in connect if e.startswith("tcp://")]  # (ranks found from)
        self._connected = set(connect)
        self._link_note: tuple[str, str] | None = None
        self._open(bind, connect, curve, old_default)

    def _open(
        self, bind: list[str], connect: list[str], curve: Curve | None, old_default: str | None
    ) -> None:
        """Listen and connect as asked; on failure close everything and say why."""
        endpoint = ""
        try:
            if curve is not None:
                self._secure(curve, bind, connect)
            elif connect:
                self._events = self._sock.get_monitor_socket(LINK_EVENTS)
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
            | (LINK_EVENTS | CURVE_LINK_EVENTS if connect else 0)
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
            items = self._message(first, sink)
            if items:
                applied += self._apply(items, sink, now)
            if time.monotonic() >= deadline:
                self._backlog = bool(sock.poll(0))
                return applied

    def _message(self, first: zmq.Frame, sink: RecordSink) -> list[Record | Columns]:
        """The items of the message ``first`` begins (its other frames read), passed on
        to be recorded; none, and the reason said to ``sink``, for a malformed one."""
        frames = [first.bytes]
        if first.more:
            frame = self._sock.recv(copy=False)
            if frame.more:  # too many: let the rest go as read, never held together
                extra = 1
                while self._sock.recv(copy=False).more:
                    extra += 1
                sink.reject(f"expected 2 frames [topic, payload], got {2 + extra}", _peer(first))
                return []
            frames.append(frame.bytes)
        try:
            items = decode_items(frames)
        except ProtocolError as exc:
            sink.reject(str(exc), _peer(first))
            return []  # and on to the deadline: a stream of bad messages must not keep
            # the loop from drawing, reading keys and quitting
        if items and self._on_payload is not None:
            self._on_payload(frames[1], items[0].run)  # (every item's run is the topic)
        return items

    def _apply(self, items: list[Record | Columns], sink: RecordSink, now: float) -> int:
        """Apply the items of the run watched to ``sink``; the number of records."""
        applied = 0
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
        """Say what the socket's events, the links and the ZAP handler tell."""
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
            self._report_links(sink)
        if self._zap is not None:
            self._report_refusals(self._zap, sink)

    def _report_links(self, sink: RecordSink) -> None:
        """Make again the connections ZeroMQ gave up; note how the links stand if that
        changed."""
        for endpoint in self._links.given_up():
            self._sock.disconnect(endpoint)
            self._sock.connect(endpoint)
            self._links.reconnecting(endpoint)
        note = self._links.note()
        if note != self._link_note:
            self._link_note = note
            sink.note_link(*note)

    def _report_refusals(self, zap: ZapHandler, sink: RecordSink) -> None:
        """Count the handshakes refused since the last look, naming the latest."""
        count, latest = zap.snapshot()
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


def _peer(frame: zmq.Frame) -> str:
    """The address a message came from, as ZeroMQ knows it (tcp only)."""
    try:
        return str(frame.get("Peer-Address"))
    except zmq.ZMQError:
        return "local"
