"""Records in: a ZeroMQ SUB socket drained for a bounded slice of time."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Protocol

import zmq

from trainmon_client.protocol import MAX_PAYLOAD_BYTES, ProtocolError, Record, decode

__all__ = ["DEFAULT_ADDRESS", "EndpointError", "RecordSink", "RecordSource", "Subscriber"]

DEFAULT_ADDRESS = "tcp://127.0.0.1:5555"
_SCHEMES = ("tcp://", "ipc://", "inproc://")


class RecordSink(Protocol):
    """Where drained records go: ``RunState`` is one."""

    def apply(self, record: Record, now: float) -> bool: ...

    def reject(self, reason: str) -> None: ...


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

    def close(self) -> None: ...


class EndpointError(Exception):
    """An endpoint that cannot be used; the message says why and what to try."""


def check_endpoint(endpoint: str) -> str:
    """``endpoint`` if its form is one ZeroMQ takes, else :class:`EndpointError`."""
    if not endpoint.startswith(_SCHEMES):
        raise EndpointError(
            f"{endpoint!r} is not an endpoint; use tcp://HOST:PORT or ipc:///path/to/socket"
        )
    if endpoint.startswith("tcp://") and ":" not in endpoint[len("tcp://") :]:
        raise EndpointError(f"{endpoint!r} has no port; use tcp://HOST:PORT")
    return endpoint


class Subscriber:
    """A SUB socket bound and/or connected to endpoints, subscribed to a run prefix.

    Args:
        bind: endpoints to listen on (workers connect to them).
        connect: endpoints to connect to (training that binds, or a relay).
        run: subscribe to this run only; None subscribes to all.
        on_payload: called with each valid payload as received (to record it).
    """

    def __init__(
        self,
        bind: Iterable[str] = (),
        connect: Iterable[str] = (),
        *,
        run: str | None = None,
        on_payload: Callable[[bytes], None] | None = None,
        context: zmq.Context[zmq.Socket[bytes]] | None = None,
    ) -> None:
        self._own_context = context is None
        self._ctx = context or zmq.Context()
        self._sock = self._ctx.socket(zmq.SUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        # At most this many messages (batches of up to a few hundred records) wait in
        # ZeroMQ's queue: enough for bursts and history re-sends, bounded in memory.
        self._sock.setsockopt(zmq.RCVHWM, 2_000)
        # Larger messages are cut off by ZeroMQ before they are read into memory.
        self._sock.setsockopt(zmq.MAXMSGSIZE, MAX_PAYLOAD_BYTES + 1024)
        self._sock.setsockopt(zmq.RECONNECT_IVL, 100)
        self._sock.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
        self._run = run
        self._on_payload = on_payload
        self._sock.setsockopt(zmq.SUBSCRIBE, run.encode() if run else b"")
        self.endpoints: list[str] = []
        try:
            for endpoint in bind:
                self._sock.bind(check_endpoint(endpoint))
                self.endpoints.append(self._sock.getsockopt_string(zmq.LAST_ENDPOINT))
            for endpoint in connect:
                self._sock.connect(check_endpoint(endpoint))
                self.endpoints.append(endpoint)
        except zmq.ZMQError as exc:
            self.close()
            raise EndpointError(_explain(exc, endpoint)) from exc
        except EndpointError:
            self.close()
            raise

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
        if not sock.poll(max(int(budget_s * 1000), 0)):
            return 0
        while True:
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return applied
            now = time.time()
            try:
                records = decode(frames)
            except ProtocolError as exc:
                sink.reject(str(exc))
                continue
            if self._on_payload is not None:
                self._on_payload(frames[1])
            for record in records:
                if self._run is None or record.run == self._run:
                    sink.apply(record, now)
                    applied += 1
            if time.monotonic() >= deadline:
                return applied

    def clock(self) -> float:
        return time.time()

    def set_paused(self, paused: bool) -> None:
        """Live records keep arriving while the view is paused."""

    @property
    def finished(self) -> bool:
        return False

    def close(self) -> None:
        self._sock.close(0)
        if self._own_context:
            self._ctx.term()


def _explain(exc: zmq.ZMQError, endpoint: str) -> str:
    if exc.errno == zmq.EADDRINUSE:
        return (
            f"cannot listen on {endpoint}: address already in use; another monitor may "
            "hold it: stop it, or pick another port with --bind"
        )
    if exc.errno == zmq.EADDRNOTAVAIL:
        return f"cannot listen on {endpoint}: no such local address; use 127.0.0.1 or 0.0.0.0"
    return f"cannot use {endpoint}: {exc.strerror}"
