"""How each trainmon socket that links to a peer is tuned, for the client and the monitor
alike: reconnect pacing, TCP keepalive and IPv6."""

from __future__ import annotations

from collections.abc import Iterable

import zmq

from trainmon_client.endpoints import needs_ipv6

__all__ = ["tune_link"]


def tune_link(sock: zmq.Socket[bytes], endpoints: Iterable[str] = ()) -> None:
    """Reconnect after 0.1 s, backing off to 2 s; TCP keepalive, which notices a dead
    peer on an idle link and makes ZeroMQ reconnect (ZeroMQ's own heartbeats are not
    used: under a flood their pings queue behind the data, time out, and tear down a
    healthy connection again and again); IPv6 where one of ``endpoints`` needs it."""
    sock.setsockopt(zmq.RECONNECT_IVL, 100)
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
    sock.setsockopt(zmq.TCP_KEEPALIVE, 1)
    sock.setsockopt(zmq.TCP_KEEPALIVE_IDLE, 10)
    sock.setsockopt(zmq.TCP_KEEPALIVE_INTVL, 2)
    sock.setsockopt(zmq.TCP_KEEPALIVE_CNT, 3)
    if any(needs_ipv6(endpoint) for endpoint in endpoints):
        sock.setsockopt(zmq.IPV6, 1)  # without it, ZeroMQ cannot use [::1]
