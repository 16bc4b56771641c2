"""The client's parts on their own: the queue of calls and its bound, the history kept
for late monitors, the hello's info, and the port a local rank binds."""

from __future__ import annotations

import msgpack

from trainmon_client.calls import CallQueue
from trainmon_client.hello import InfoUpdates, hello_info
from trainmon_client.history import History
from trainmon_client.identity import Identity
from trainmon_client.sockets import rank_endpoint


def test_the_bound_follows_the_newest_call_and_is_told() -> None:
    """Large calls lower the bound at once (and the owner hears of it); small ones raise
    it again slowly; drops are counted."""
    told: list[int] = []
    queue = CallQueue(1000, 5000, told.append)
    assert queue.bound == 1000
    queue.append((0.0, None, None, None, {f"m{i}": 0.0 for i in range(50)}))
    queue.rebound()
    assert queue.bound == 100 and told == [100]
    queue.append((0.0, None, None, None, {"m": 0.0}))
    queue.rebound()
    assert 100 < queue.bound < 1000 and told[-1] == queue.bound
    queue.count_drop(3)
    assert queue.dropped == 3


def test_the_newest_value_not_yet_taken_is_found() -> None:
    queue = CallQueue(10, 10)
    queue.append((0.0, None, None, None, {"loss": 1.0}))
    queue.append((0.0, None, None, None, {"loss": 2.0}))
    assert queue.newest("loss") == 2.0 and queue.newest("accuracy") is None


def test_history_keeps_at_least_its_records() -> None:
    history = History(10)
    for seq in range(0, 40, 4):
        history.keep(msgpack.packb([seq] * 4), 4, seq)
    assert history.held >= 10 and history.held - history.batches[0][0] < 10
    assert history.first_seq() == 40 - 4 * len(history.batches)
    (joined,) = history.payloads()
    assert msgpack.unpackb(joined) == [s for _, first, _ in history.batches for s in [first] * 4]


def test_hello_info_keeps_the_known_facts_in_order() -> None:
    ident = Identity("h", 7, rank=1, world=None, local_rank=None)
    info = hello_info(ident, {"lr": object()}, epochs=3, epochs_f=None, steps=None, parent="p")
    assert list(info) == ["host", "pid", "rank", "epochs", "parent", "config"]
    assert isinstance(info["config"]["lr"], str)


def test_info_updates_ask_for_one_marker_at_a_time() -> None:
    updates = InfoUpdates()
    assert updates.put({"epochs": 3}) is True
    assert updates.put({"steps": 9}) is False
    assert updates.take() == {"epochs": 3, "steps": 9}
    assert updates.put({"epochs": 4}) is True


def test_local_ranks_bind_consecutive_ports() -> None:
    ident = Identity("h", 1, rank=3, world=8, local_rank=3, local_world=4)
    assert rank_endpoint("tcp://*:5555", ident) == ("tcp://*:5558", 5558, 4)
    assert rank_endpoint("ipc:///tmp/x", ident) == ("ipc:///tmp/x", None, None)
    alone = Identity("h", 1, rank=None, world=None, local_rank=None)
    assert rank_endpoint("tcp://*:5555", alone) == ("tcp://*:5555", None, None)
