"""Hostile and broken peers: the monitor keeps running, keeps the good, stays bounded."""

from __future__ import annotations

import math
import os
import random
import time

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import drain_until, free_endpoint, raw_peer, start_publisher, stop
from trainmon.report import summary
from trainmon.sources.subscriber import Subscriber
from trainmon.state import Limits, RunState
from trainmon.view import ViewOptions
from trainmon_client.protocol import Record, decode


def _wire(worker: str, seq: int, run: str = "evil", **changes: object) -> dict[str, object]:
    wire: dict[str, object] = {
        "v": 1,
        "k": "metrics",
        "r": run,
        "w": worker,
        "s": seq,
        "t": 1000.0 + seq,
        "st": seq,
        "ep": 0,
        "m": {"loss": 1.0},
    }
    wire.update(changes)
    return wire


def _attack() -> tuple[list[list[bytes]], int]:
    """Messages of every hostile kind, and how many of them must be rejected."""
    rng = random.Random(7)
    bad: list[list[bytes]] = [
        [b"evil", os.urandom(200)],
        [b"evil", os.urandom(3)],
        [b"evil"],
        [b"evil", b"x", b"y", b"z"],
        [b"evil", msgpack.packb({"not": "a record"})],
        [b"evil", msgpack.packb(_wire("w", 1, v=7))],
        [b"evil", msgpack.packb(_wire("w", 1, m={"x" * 60_000: 1.0}))],
        [b"evil", msgpack.packb(_wire("w", 1, m={str(i): 1.0 for i in range(5000)}))],
        [b"evil", b"\x91" * 100_000],
        [b"evil", msgpack.packb(_wire("w", 1, st=-5))],
        [b"evil", msgpack.packb(_wire("w", 1, st=2**62))],
        [b"evil", msgpack.packb(_wire("w" * 500, 1))],
    ]
    bad += [
        [b"evil", bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 64)))] for _ in range(100)
    ]
    # Valid in shape but abusive in number: many metric names, many fake workers,
    # NaN/Inf values, time going backwards. These are accepted up to the limits.
    flood: list[list[bytes]] = []
    for start in range(0, 100_000, 250):
        names = {f"metric_{i}": float(i) for i in range(start, start + 250)}
        flood.append([b"evil", msgpack.packb(_wire("many-metrics", start // 250 + 1, m=names))])
    for start in range(0, 10_000, 1000):
        batch = [
            _wire(f"fake-{i}", 1, t=1000.0 - i, m={"loss": math.nan, "g": math.inf})
            for i in range(start, start + 1000)
        ]
        flood.append([b"evil", msgpack.packb(batch)])
    # a handful of the hostile messages could be valid by chance: count what decode says
    rejected = 0
    for message in bad:
        try:
            decode(message)
        except Exception:
            rejected += 1
    return bad + flood, rejected


def test_hostile_peer_cannot_hurt_the_monitor() -> None:
    """Under every kind of bad input the monitor counts, caps, and keeps the real run."""
    endpoint = free_endpoint()
    source = Subscriber([endpoint])
    limits = Limits(window=1000, points=100_000)  # the flood makes 2,305 series
    state = RunState(limits)
    messages, must_reject = _attack()
    good = start_publisher(endpoint, run="good", count=500, delay_s=0.002)
    try:
        with raw_peer(endpoint, source, state) as evil:
            for message in messages:
                evil.send_multipart(message)
                source.drain(state, budget_s=0)
            drain_until(
                source,
                state,
                lambda: (
                    state.rejected >= must_reject
                    and "good" in state.runs
                    and state.runs["good"].finished
                ),
                timeout_s=30,
            )
            # the good run is whole
            good_run = state.runs["good"]
            assert good_run.series("loss").count == 500 and good_run.missed == 0
            # every bad message was counted, and against its sender
            assert state.rejected == must_reject
            assert sum(state.rejected_by_peer.values()) == must_reject
            assert list(state.rejected_by_peer) == ["127.0.0.1"]
            # the flood is capped: bounded workers and metrics, with counts of the rest
            evil_run = state.runs["evil"]
            assert len(evil_run.workers) == limits.workers
            assert evil_run.untracked_workers == 10_000 + 1 - limits.workers
            flooded = evil_run.workers["many-metrics"]
            assert len(flooded.series) == limits.metrics and flooded.untracked_metrics > 0
            # and the series share one budget of points: each window shrank as they came
            assert 2048 < state.series_count <= 4096  # 256 + 2 * 1023 + the good run's
            window, buckets = state.share
            assert window == limits.points // 4096 and buckets == 64
            series = [
                s
                for run in state.runs.values()
                for w in run.workers.values()
                for s in w.series.values()
            ]
            assert sum(len(s.steps) + len(s.older.pending_steps) for s in series) <= limits.points
            assert all(len(s.older.buckets) <= buckets for s in series)
            report = summary(state, ViewOptions(), time.time())
            assert "limits reached" in report and "from 127.0.0.1" in report
    finally:
        stop(good)
        source.close()


records = st.builds(
    Record,
    kind=st.sampled_from(["hello", "metrics", "heartbeat", "bye"]),
    run=st.sampled_from(["a", "b"]),
    worker=st.sampled_from(["w0", "w1", "w2"]),
    seq=st.integers(0, 200),
    time=st.floats(-1e12, 1e12, allow_nan=False),
    step=st.none() | st.integers(0, 2**53),
    epoch=st.none() | st.integers(0, 1000),
    metrics=st.dictionaries(st.sampled_from(["loss", "acc", "x"]), st.floats(), max_size=3),
    counters=st.fixed_dictionaries(
        {
            "logged": st.integers(0, 10**6),
            "dropped": st.integers(0, 10**6),
            "queued": st.integers(0, 10**6),
        }
    ),
    info=st.fixed_dictionaries(
        {"host": st.just("h")},
        optional={
            "rank": st.integers(0, 8),
            "epochs": st.integers(1, 10),
            "from": st.integers(1, 300),
        },
    ),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(records, max_size=80), st.lists(st.floats(0, 1e4), min_size=80, max_size=80))
def test_state_survives_any_record_sequence(batch: list[Record], times: list[float]) -> None:
    """Any order of valid records keeps the state consistent and renderable."""
    state = RunState(Limits(window=16, workers=2, metrics=2, runs=1))
    for record, now in zip(batch, times, strict=False):
        state.apply(record, now)
    for run in state.runs.values():
        assert len(run.workers) <= 2
        for worker in run.workers.values():
            assert worker.missed >= 0 and len(worker.series) <= 2
            assert worker.missed == sum(hi - lo + 1 for lo, hi in worker.gaps) or (
                len(worker.gaps) == 64
            )
            for series in worker.series.values():
                steps = [s for s, _ in series.points]
                assert steps == sorted(steps) and len(steps) <= 16
    summary(state, ViewOptions(), 1e4)
