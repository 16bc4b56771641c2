"""A relay: workers publish into it, any number of monitors attach to it.

ZeroMQ's own XSUB/XPUB proxy does the forwarding. The XPUB side is verbose, so every
new monitor's subscription reaches every worker, and each worker sends its history
again: late join works through the relay as it does directly.

A relay has no default endpoints: it is there to reach beyond one user's private socket
(other machines, several monitors), so where it listens is always said. Its ipc
endpoints are checked like a monitor's (never one another process listens on), and an
IPv6 address in brackets works on either side.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence

import zmq

from trainmon.sources.endpoints import EndpointError, bind_checked, explain_error
from trainmon.sources.subscriber import limit_intake
from trainmon_client.endpoints import needs_ipv6
from trainmon_client.protocol import MAX_TOPIC_BYTES
from trainmon_client.security import Curve, ZapHandler

__all__ = ["Relay"]


class Relay:
    """Binds both sides and forwards in a background thread until :meth:`close`."""

    def __init__(
        self, sub_bind: Sequence[str], pub_bind: Sequence[str], curve: Curve | None = None
    ) -> None:
        self._ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self._xsub = self._ctx.socket(zmq.XSUB)
        self._xpub = self._ctx.socket(zmq.XPUB)
        self._control = self._ctx.socket(zmq.PAIR)
        self._zap: ZapHandler | None = None
        self.warnings: list[str] = []
        self.endpoints: dict[str, list[str]] = {"workers": [], "monitors": []}
        self._xpub.setsockopt(zmq.XPUB_VERBOSE, 1)
        # As a monitor takes them: frames of up to 1 MiB, 64 messages queued per worker.
        limit_intake(self._xsub)
        # Monitors only subscribe (a byte and a topic): larger frames drop the peer.
        limit_intake(self._xpub, max_frame=1024 + 2 * MAX_TOPIC_BYTES)
        for sock in (self._xsub, self._xpub, self._control):
            sock.setsockopt(zmq.LINGER, 0)
        for sock, endpoints in ((self._xsub, sub_bind), (self._xpub, pub_bind)):
            if any(needs_ipv6(endpoint) for endpoint in endpoints):
                sock.setsockopt(zmq.IPV6, 1)
        self._bind(sub_bind, pub_bind, curve)
        self._control.bind(f"inproc://trainmon-relay-{id(self)}")
        steer = self._ctx.socket(zmq.PAIR)
        steer.connect(f"inproc://trainmon-relay-{id(self)}")
        self._steer = steer
        self._thread = threading.Thread(target=self._forward, name="trainmon-relay", daemon=True)
        self._thread.start()

    def _bind(self, sub_bind: Sequence[str], pub_bind: Sequence[str], curve: Curve | None) -> None:
        """Listen on both sides (encrypted if ``curve``); on failure close and say why."""
        endpoint = ""
        try:
            if curve is not None:
                allowed = curve.apply(self._xsub, server=True)
                curve.apply(self._xpub, server=True)
                self._zap = ZapHandler(self._ctx, allowed)
            for side, sock, endpoints in (
                ("workers", self._xsub, sub_bind),
                ("monitors", self._xpub, pub_bind),
            ):
                for endpoint in endpoints:
                    self.endpoints[side].append(
                        bind_checked(sock, endpoint, curve is not None, self.warnings)
                    )
        except ValueError as exc:
            self.close()
            raise EndpointError(str(exc)) from exc
        except zmq.ZMQError as exc:
            self.close()
            raise EndpointError(explain_error(exc, endpoint)) from exc
        except EndpointError:
            self.close()
            raise

    def _forward(self) -> None:
        with contextlib.suppress(zmq.ContextTerminated):
            zmq.proxy_steerable(self._xsub, self._xpub, None, self._steer)

    def refused(self) -> int:
        """Handshakes refused so far (0 without encryption)."""
        return 0 if self._zap is None else self._zap.snapshot()[0]

    def close(self) -> None:
        thread = getattr(self, "_thread", None)
        if thread is not None:
            self._control.send(b"TERMINATE")
            thread.join(timeout=5)
            self._steer.close(0)
        if self._zap is not None:
            self._zap.close()
        for sock in (self._xsub, self._xpub, self._control):
            sock.close(0)
        self._ctx.term()
