"""The socket a Monitor publishes on: an XPUB socket made, tuned, bound or connected
(CURVE wired in where asked), and what it hears: subscriptions (whether a monitor is
listening), handshakes and refusals."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

import zmq
from zmq.utils.monitor import recv_monitor_message

from trainmon_client.endpoints import ipc_in_use, ipc_path, needs_ipv6
from trainmon_client.identity import Identity
from trainmon_client.links import tune_link
from trainmon_client.logs import log
from trainmon_client.protocol import MAX_TOPIC_BYTES
from trainmon_client.security import Curve, ZapHandler, is_loopback

__all__ = ["PubSocket", "rank_endpoint"]

_EVENTS: Final = (
    zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_DISCONNECTED
    | zmq.EVENT_CONNECT_RETRIED
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
)
_MAX_LOCAL_WORLD: Final = 64  # ranks of one machine that bind consecutive ports at most
# What comes in is only subscriptions (a byte and a topic): a larger frame, CURVE's
# handshake and box included, is a peer to drop (ZeroMQ does it before reading it in).
_MAX_INBOUND_BYTES: Final = 1024 + 2 * MAX_TOPIC_BYTES
_MAX_INBOUND_MESSAGES: Final = 256  # read per wake-up at most: publishing goes on meanwhile


class PubSocket:
    """The XPUB socket, its event monitor and its context; the topic's subscribers,
    peers that completed a handshake, and whether a peer refused us."""

    def __init__(self, topic: bytes) -> None:
        self.topic = topic
        self.ctx = zmq.Context()
        self.sock = sock = self.ctx.socket(zmq.XPUB)
        sock.setsockopt(zmq.XPUB_VERBOSE, 1)
        sock.setsockopt(zmq.SNDHWM, 500)  # messages; each a batch of up to 512 records
        # Monitors only subscribe: little comes in, each frame small (see memguard for
        # what these options cannot bound).
        sock.setsockopt(zmq.RCVHWM, 64)
        sock.setsockopt(zmq.MAXMSGSIZE, _MAX_INBOUND_BYTES)
        sock.setsockopt(zmq.LINGER, 0)
        # A connection that breaks takes its queue with it: batches queued for a monitor
        # that died would otherwise reach the next one ahead of its hello and history
        # (and could fill the pipe the history is re-sent into).
        sock.setsockopt(zmq.IMMEDIATE, 1)
        tune_link(sock)
        self.events = sock.get_monitor_socket(_EVENTS)
        self.zap: ZapHandler | None = None
        self.prefixes: set[bytes] = set()
        self.peers = 0
        self.refused = False
        self.poller = zmq.Poller()
        self.poller.register(sock, zmq.POLLIN)
        self.poller.register(self.events, zmq.POLLIN)

    def open(self, endpoint: str, bind: bool, curve: Curve | None) -> str:
        """Bind or connect; the problem ("" if none: then it is open)."""
        verb = "bind" if bind else "connect"
        path = ipc_path(endpoint)
        if bind and path is not None and _listened_on(path):
            # Binding would take the socket from whoever listens there, without a word.
            return (
                f"cannot bind {endpoint}: a monitor or another process listens there "
                "(binding would take its socket from it); not publishing"
            )
        sock = self.sock
        if needs_ipv6(endpoint):
            sock.setsockopt(zmq.IPV6, 1)
        try:
            if curve is not None:
                allowed = curve.apply(sock, server=bind)
                if bind:
                    self.zap = ZapHandler(self.ctx, allowed)
            (sock.bind if bind else sock.connect)(endpoint)
            if curve is None and bind and not is_loopback(endpoint):
                # (said once bound: a port that cannot be bound exposes nothing)
                log.warning(
                    "trainmon: %s is reachable from other machines and not encrypted; "
                    "pass curve_secret and curve_allow (see trainmon keygen)",
                    endpoint,
                )
        except (zmq.ZMQError, ValueError) as exc:
            if self.zap is not None:
                self.zap.close()
                self.zap = None
            return f"cannot {verb} {endpoint}: {_why(exc)}; not publishing"
        return ""

    @property
    def subscribed(self) -> bool:
        """Whether a monitor subscribes to this socket's topic."""
        return any(self.topic.startswith(p) for p in self.prefixes)

    def poll(
        self, timeout_ms: int, on_subscribed: Callable[[], None], on_refused: Callable[[], None]
    ) -> None:
        """Wait for socket events (releasing the GIL) and handle them: ``on_subscribed``
        for each subscription that makes the topic heard, ``on_refused`` for each
        handshake that failed (keys, or encryption on one side only)."""
        ready = dict(self.poller.poll(timeout_ms))
        if self.events in ready:
            while self.events.poll(0):
                event = recv_monitor_message(self.events)["event"]
                if event == zmq.EVENT_CONNECT_RETRIED:
                    self.refused = True
                elif event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                    self.peers += 1
                elif event in (
                    zmq.EVENT_HANDSHAKE_FAILED_AUTH,
                    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
                ):
                    self.refused = True
                    on_refused()
                else:
                    self.peers = max(self.peers - 1, 0)
        if self.sock in ready:
            self._take_subscriptions(on_subscribed)

    def _take_subscriptions(self, on_subscribed: Callable[[], None]) -> None:
        """Subscriptions and unsubscriptions (one frame each); anything else a peer sent
        is read and let go frame by frame (a continuation frame is never taken for a
        subscription), a bounded number per call."""
        for _ in range(_MAX_INBOUND_MESSAGES):
            try:
                frame = self.sock.recv(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            if frame.more:
                while self.sock.recv(copy=False).more:
                    pass
                continue
            message = frame.bytes
            if message[:1] == b"\x01":
                self.prefixes.add(message[1:])
                if self.subscribed:
                    on_subscribed()
            elif message[:1] == b"\x00":
                self.prefixes.discard(message[1:])

    def send(self, payload: bytes, deadline: float) -> None:
        """Send without blocking; a full pipe drops the batch and the monitor counts the
        gap. Before ``deadline`` (while closing) a full pipe is waited on instead."""
        while True:
            try:
                self.sock.send_multipart((self.topic, payload), flags=zmq.NOBLOCK)
                return
            except zmq.Again:
                if time.monotonic() >= deadline:
                    return
                time.sleep(0.005)

    def close(self) -> None:
        """Close everything, the socket honouring the LINGER set for the last records."""
        if self.zap is not None:
            self.zap.close()
        self.events.close(0)
        self.sock.close()
        self.ctx.term()


def rank_endpoint(endpoint: str, ident: Identity) -> tuple[str, int | None, int | None]:
    """The tcp port + local rank, where several ranks of this machine bind; with the
    port and the number of local ranks then (else ``endpoint``, None, None)."""
    k, n = ident.local_rank, ident.local_world
    head, _, port = endpoint.rpartition(":")
    if not (endpoint.startswith("tcp://") and port.isdigit()):
        return endpoint, None, None
    if k is None or n is None or not 1 < n <= _MAX_LOCAL_WORLD or not 0 <= k < n:
        return endpoint, None, None
    return f"{head}:{int(port) + k}", int(port) + k, n


def _why(exc: Exception) -> str:
    if not isinstance(exc, zmq.ZMQError):
        return str(exc)
    why = exc.strerror
    if exc.errno == zmq.EADDRINUSE:
        why += " (another training process or monitor holds it: use another port)"
    return why


def _listened_on(path: str) -> bool:
    """Whether a process listens on the local socket ``path`` (False if it cannot be told)."""
    try:
        return ipc_in_use(path)
    except OSError:
        return False
