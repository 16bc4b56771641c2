"""The subscriber: hostile input is counted and survived, filters and errors are clear."""

from __future__ import annotations

import math
import time

import msgpack
import pytest
import zmq

from tests.helpers import drain_until, free_endpoint, raw_peer, start_publisher, stop
from trainmon.sources.endpoints import EndpointError
from trainmon.sources.subscriber import Subscriber
from trainmon.state import RunState
from trainmon_client.protocol import Record, encode

GOOD = [
    Record("hello", "r", "w", 0, 1.0, info={"host": "h"}),
    Record("metrics", "r", "w", 1, 2.0, step=0, metrics={"loss": 0.5}),
]


def _publish(
    endpoint: str, messages: list[list[bytes]], source: Subscriber, state: RunState, until: int
) -> None:
    """Connect a raw XPUB to ``source``, wait for its subscription, send, drain."""
    with raw_peer(endpoint, source, state) as pub:
        for message in messages:
            pub.send_multipart(message)
        drain_until(source, state, lambda: state.records + state.rejected >= until)


def test_garbage_is_counted_and_good_records_kept() -> None:
    """Random bytes, wrong frames, wrong shapes and versions are rejected; the rest lands."""
    endpoint = free_endpoint()
    source = Subscriber([endpoint])
    state = RunState()
    bad = [
        [b"r", b"\xc1\x00\xff"],
        [b"r"],
        [b"r", b"a", b"b"],
        [b"r", msgpack.packb([1, 2, 3])],
        [b"r", msgpack.packb({"v": 99, "k": "metrics"})],
        [
            b"r",
            msgpack.packb(
                {"v": 1, "k": "metrics", "r": "r", "w": "w", "s": 5, "t": 1.0, "m": {"loss": "NaN"}}
            ),
        ],
        [b"r", b"\x91" * 10_000],
    ]
    try:
        _publish(
            endpoint, [encode(GOOD[:1]), *bad, encode(GOOD[1:])], source, state, until=2 + len(bad)
        )
        assert state.rejected == len(bad) and state.records == 2
        assert state.current().series("loss").last == 0.5
    finally:
        source.close()


def test_giant_message_is_cut_off_by_the_socket() -> None:
    """A message over the size limit never reaches decode; later good ones still do."""
    endpoint = free_endpoint()
    source = Subscriber([endpoint])
    state = RunState()
    try:
        _publish(endpoint, [[b"r", b"x" * (8 * 1024 * 1024)]], source, state, until=0)
        _publish(endpoint, [encode(GOOD)], source, state, until=2)
        assert state.records == 2 and state.rejected == 0
    finally:
        source.close()


def test_nan_and_inf_metrics_are_kept() -> None:
    """NaN and ±Inf are data, not errors."""
    endpoint = free_endpoint()
    source = Subscriber([endpoint])
    state = RunState()
    record = Record("metrics", "r", "w", 1, 2.0, step=0, metrics={"loss": math.nan, "g": math.inf})
    try:
        _publish(endpoint, [encode([record])], source, state, until=1)
        assert math.isnan(state.current().series("loss").last)
        assert state.rejected == 0
    finally:
        source.close()


def test_run_filter() -> None:
    """--run shows one run, even when another run's name starts the same way."""
    endpoint = free_endpoint()
    source = Subscriber([endpoint], run="a")
    state = RunState()
    procs = [start_publisher(endpoint, run=name, count=20) for name in ("a", "ab", "b")]
    try:
        drain_until(source, state, lambda: "a" in state.runs and state.runs["a"].finished)
        time.sleep(0.2)
        source.drain(state, budget_s=0.2)
        assert list(state.runs) == ["a"]
    finally:
        for proc in procs:
            stop(proc)
        source.close()


def test_address_in_use_is_explained() -> None:
    """A second monitor on the same port gets a sentence with a hint, not a traceback."""
    endpoint = free_endpoint()
    first = Subscriber([endpoint])
    try:
        with pytest.raises(EndpointError, match=r"already in use.*another port"):
            Subscriber([endpoint])
    finally:
        first.close()


@pytest.mark.parametrize("endpoint", ["localhost:5555", "tcp://127.0.0.1", "http://x:1"])
def test_malformed_endpoints(endpoint: str) -> None:
    """Endpoints that are not ZeroMQ addresses are refused with the expected form."""
    with pytest.raises(EndpointError, match="tcp://HOST:PORT"):
        Subscriber([endpoint])


def test_idle_time_is_the_time_spent_waiting_for_records() -> None:
    """The loop slows its frames when it is rarely idle: idle_s grows by the time a
    drain waits with nothing to read, and by no more than the wait when records come."""
    endpoint = free_endpoint()
    source = Subscriber([endpoint])
    state = RunState()
    ctx = zmq.Context()
    pub = ctx.socket(zmq.XPUB)
    pub.setsockopt(zmq.LINGER, 0)
    try:
        before = source.idle_s
        assert source.drain(state, budget_s=0.2) == 0
        assert source.idle_s - before >= 0.15, "an empty wait is idle time"
        pub.connect(endpoint)
        deadline = time.monotonic() + 10
        while not pub.poll(10):  # the subscription arrives while the SUB is serviced
            source.drain(state, budget_s=0.01)
            assert time.monotonic() < deadline, "no subscription"
        pub.recv()
        before, started = source.idle_s, time.monotonic()
        pub.send_multipart(encode(GOOD))
        assert source.drain(state, budget_s=5.0) == 2
        elapsed = time.monotonic() - started
        assert elapsed < 5.0, "a drain returns once the records are in, not at its budget"
        assert source.idle_s - before <= elapsed
    finally:
        pub.close()
        source.close()
        ctx.term()


def test_a_stream_of_bad_messages_keeps_to_the_budget() -> None:
    """drain() returns after its time budget however many rejected messages wait: a
    stream of bad messages kept the loop in drain(), so the monitor neither drew nor
    quit on SIGTERM (found with 16 connections of 1 MiB nested arrays)."""
    endpoint = free_endpoint()
    source = Subscriber([endpoint])
    state = RunState()
    slow = msgpack.packb([[0] * 4096] * 250)  # valid msgpack, ~10 ms to unpack, refused
    try:
        with raw_peer(endpoint, source, state) as pub:
            for _ in range(60):
                pub.send_multipart([b"evil", slow])
            deadline = time.monotonic() + 10
            while not source._sock.poll(10):  # the first has arrived
                assert time.monotonic() < deadline
            time.sleep(0.2)  # let more pile up, so the old drain() would take them all
            source.drain(state, budget_s=0.02)
            first = state.rejected
            assert 1 <= first < 20, f"{first} messages in one drain of 0.02 s"
            drain_until(source, state, lambda: state.rejected == 60)
    finally:
        source.close()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_connecting_monitor_says_how_its_link_stands(host: str) -> None:
    """With --connect, "no data" is never silent: the monitor says nothing answers yet,
    nothing once connected, that the link went down when training stops, and nothing
    again when it is back (ZeroMQ names a host by its address after the first
    connection: the note must follow it)."""
    endpoint = free_endpoint().replace("127.0.0.1", host)
    source = Subscriber(connect=[endpoint])
    state = RunState()
    ctx = zmq.Context()
    try:
        drain_until(source, state, lambda: "nothing answers there" in state.link_note)
        assert endpoint in state.link_note and state.link_short == "down (retrying)"
        for _ in range(2):  # training that binds, after the monitor; stopped; started again
            training = ctx.socket(zmq.XPUB)
            training.bind(endpoint)
            drain_until(source, state, lambda: (state.link_short, state.link_note) == ("", ""))
            training.close(0)
            drain_until(source, state, lambda: endpoint in state.link_note)  # down again
            assert state.link_short == "down (retrying)"
    finally:
        source.close()
        ctx.term()


def test_a_host_name_that_does_not_resolve_is_said() -> None:
    """ZeroMQ retries an unknown host name forever without a word; the monitor says it."""
    source = Subscriber(connect=["tcp://no-such-host.invalid:5556"])
    state = RunState()
    try:
        drain_until(source, state, lambda: "no host named" in state.link_note, timeout_s=30)
        assert "'no-such-host.invalid'" in state.link_note
        assert state.link_short == "unknown host"
    finally:
        source.close()


def test_links_to_several_endpoints_are_told_apart() -> None:
    """Two --connect endpoints, one by host name: after a reconnect ZeroMQ names it by
    address, and the note still says which one is down."""
    named, other = free_endpoint().replace("127.0.0.1", "localhost"), free_endpoint()
    source = Subscriber(connect=[named, other])
    state = RunState()
    ctx = zmq.Context()
    sockets = {}
    try:
        for endpoint in (named, other):
            sockets[endpoint] = ctx.socket(zmq.XPUB)
            sockets[endpoint].bind(endpoint)
        source.drain(state, 0.01)  # the note now says how the links stand
        drain_until(source, state, lambda: state.link_note == "")
        sockets[named].close(0)
        drain_until(source, state, lambda: state.link_short == "down (retrying)")
        assert named in state.link_note
        sockets[named] = ctx.socket(zmq.XPUB)
        sockets[named].bind(named)
        drain_until(source, state, lambda: state.link_note == "")
        sockets[other].close(0)
        drain_until(source, state, lambda: state.link_short == "down (retrying)")
        assert other in state.link_note
    finally:
        for sock in sockets.values():
            sock.close(0)
        source.close()
        ctx.term()


def test_another_program_on_the_port_is_not_called_connected() -> None:
    """A TCP connection alone is not training: a program that never answers ZeroMQ's
    handshake (a web server) leaves the link 'connecting', with a hint; another
    monitor, which drops the handshake, reads 'turned away'."""
    import socket

    with socket.socket() as web:
        web.bind(("127.0.0.1", 0))
        web.listen()
        endpoint = f"tcp://127.0.0.1:{web.getsockname()[1]}"
        source = Subscriber(connect=[endpoint])
        state = RunState()
        try:
            drain_until(source, state, lambda: "waiting for ZeroMQ's handshake" in state.link_note)
            assert state.link_short == "connecting…"
        finally:
            source.close()
    endpoint = free_endpoint()
    other_monitor = Subscriber([endpoint])  # a monitor listening where training should
    source = Subscriber(connect=[endpoint])
    state = RunState()
    ctx = zmq.Context()
    training = ctx.socket(zmq.XPUB)
    try:
        drain_until(source, state, lambda: state.link_short == "turned away")
        assert "another monitor" in state.link_note
        shown = set()
        until = time.monotonic() + 1.0
        while time.monotonic() < until:  # ZeroMQ retries at once: still turned away
            source.drain(state, 0.02)
            shown.add(state.link_short)
        assert shown == {"turned away"}
        # ZeroMQ gives up after such a handshake; the monitor does not: when training
        # listens there instead, it connects
        other_monitor.close()
        training.bind(endpoint)
        drain_until(source, state, lambda: state.link_note == "", timeout_s=15)
    finally:
        training.close(0)
        ctx.term()
        source.close()
        other_monitor.close()
