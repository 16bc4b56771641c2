"""The wire protocol: encode and decode are inverses, and decode rejects the rest."""

from __future__ import annotations

import contextlib
import math

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trainmon_client.protocol import (
    MAX_BATCH,
    MAX_METRICS,
    MAX_PAYLOAD_BYTES,
    ProtocolError,
    Record,
    decode,
    encode,
    to_wire,
)

HELLO = Record(
    "hello",
    "run",
    "h:1",
    0,
    1.5,
    info={"host": "h", "pid": 1, "rank": 0, "world": 2, "epochs": 3, "config": {"lr": 0.1}},
)
METRICS = Record(
    "metrics", "run", "h:1", 1, 2.0, step=5, epoch=0, metrics={"loss": 0.5, "acc": 1.0}
)
BEAT = Record("heartbeat", "run", "h:1", 1, 3.0, counters={"logged": 1, "dropped": 0, "queued": 0})
BYE = Record("bye", "run", "h:1", 2, 4.0)


def _frames(*items: object, topic: bytes = b"run") -> list[bytes]:
    return [topic, msgpack.packb(list(items) if len(items) != 1 else items[0])]


def _good(**changes: object) -> dict[str, object]:
    wire = to_wire(METRICS)
    wire.update(changes)
    return wire


@pytest.mark.parametrize("record", [HELLO, METRICS, BEAT, BYE], ids=lambda r: r.kind)
def test_round_trip(record: Record) -> None:
    """Every kind decodes to the record it was encoded from."""
    assert decode(encode([record])) == [record]


def test_batch_round_trip() -> None:
    """A batch keeps its records and their order."""
    assert decode(encode([HELLO, METRICS, BYE])) == [HELLO, METRICS, BYE]


def test_nan_and_inf_survive() -> None:
    """NaN and ±Inf are metric values like any other."""
    record = Record(
        "metrics",
        "run",
        "w",
        1,
        1.0,
        step=1,
        metrics={"a": math.nan, "b": math.inf, "c": -math.inf},
    )
    values = decode(encode([record]))[0].metrics
    assert math.isnan(values["a"]) and values["b"] == math.inf and values["c"] == -math.inf


def test_unknown_keys_are_ignored() -> None:
    """A newer client's extra keys do not stop an older monitor."""
    assert decode(_frames(_good(future="x")))[0] == METRICS


def test_ints_and_bools_become_floats() -> None:
    """Metric values arrive as floats whatever number type was sent."""
    values = decode(_frames(_good(m={"a": 3, "b": True})))[0].metrics
    assert values == {"a": 3.0, "b": 1.0} and all(type(v) is float for v in values.values())


BAD = [
    pytest.param([b"run"], id="one frame"),
    pytest.param([b"run", b"x", b"y"], id="three frames"),
    pytest.param([b"run", b"\xc1\xff\x00"], id="random bytes"),
    pytest.param([b"run", b""], id="empty payload"),
    pytest.param(_frames(7), id="not a map"),
    pytest.param(_frames([]), id="empty batch"),
    pytest.param([b"run", msgpack.packb([1, 2])], id="batch of ints"),
    pytest.param(_frames(_good(v=2)), id="future version"),
    pytest.param(_frames(_good(v=None)), id="no version"),
    pytest.param(_frames(_good(k="ev\x1bil")), id="unknown kind with an escape"),
    pytest.param(_frames(_good(k="later", s=None)), id="unknown kind without a seq"),
    pytest.param(_frames(_good(k={"a": 1})), id="kind is a map (found by the fuzzer)"),
    pytest.param(_frames(_good(k=[1])), id="kind is a list"),
    pytest.param(_frames(_good(s=-1)), id="negative seq"),
    pytest.param(_frames(_good(s="1")), id="string seq"),
    pytest.param(_frames(_good(t=math.nan)), id="nan time"),
    pytest.param(_frames(_good(st=-5)), id="negative step"),
    pytest.param(_frames(_good(st=2**60)), id="enormous step"),
    pytest.param(_frames(_good(ep=1.5)), id="float epoch (fractions go in ef)"),
    pytest.param(_frames(_good(ef=math.nan)), id="nan ef"),
    pytest.param(_frames(_good(ef="2.5")), id="string ef"),
    pytest.param(_frames(_good(m={"loss": "high"})), id="string value"),
    pytest.param(_frames(_good(m={"loss": [1]})), id="list value"),
    pytest.param(_frames(_good(m={"": 1.0})), id="empty metric name"),
    pytest.param(_frames(_good(m={"x" * 200: 1.0})), id="long metric name"),
    pytest.param(_frames(_good(m={"evil\x1b[2J": 1.0})), id="escape in metric name"),
    pytest.param(_frames(_good(m={"a\u009bb": 1.0})), id="C1 control in metric name"),
    pytest.param(_frames(_good(w="w\x07")), id="bell in worker"),
    pytest.param(_frames(_good(m={"gnil\u202eloss": 1.0})), id="bidi override in metric name"),
    pytest.param(_frames(_good(m={"a\u2028b": 1.0})), id="line separator in metric name"),
    pytest.param(
        [
            b"run",
            msgpack.packb(
                {"v": 1, "k": "hello", "r": "run", "w": "w", "s": 0, "t": 1.0, "i": {"host": "h\n"}}
            ),
        ],
        id="newline in host",
    ),
    pytest.param(
        _frames(_good(m={f"m{i}": 1.0 for i in range(MAX_METRICS + 1)})), id="too many metrics"
    ),
    pytest.param(_frames(_good(m=[1.0])), id="metrics not a map"),
    pytest.param(_frames(_good(r="other")), id="run differs from topic"),
    pytest.param(_frames(_good(w="")), id="empty worker"),
    pytest.param(_frames(_good(w=5)), id="int worker"),
    pytest.param([b"run", b"\x91" * 5000 + b"\xc0"], id="deep nesting"),
    pytest.param([b"run", msgpack.packb([_good()] * (MAX_BATCH + 1))], id="batch too large"),
    pytest.param([b"run", b"\x00" * (MAX_PAYLOAD_BYTES + 1)], id="payload too large"),
    pytest.param([b"x" * 1000, msgpack.packb(_good())], id="topic too long"),
    pytest.param(
        [
            b"run",
            msgpack.packb(
                {"v": 1, "k": "hello", "r": "run", "w": "w", "s": 0, "t": 1.0, "i": {"pid": -3}}
            ),
        ],
        id="negative pid",
    ),
    pytest.param(
        [
            b"run",
            msgpack.packb(
                {
                    "v": 1,
                    "k": "heartbeat",
                    "r": "run",
                    "w": "w",
                    "s": 0,
                    "t": 1.0,
                    "c": {"dropped": "many"},
                }
            ),
        ],
        id="bad counters",
    ),
    pytest.param([b"\xff\xfe", msgpack.packb(_good())], id="topic not utf-8"),
    pytest.param([b"run", msgpack.packb({1: 2})], id="int keys"),
]


@pytest.mark.parametrize("frames", BAD)
def test_rejects(frames: list[bytes]) -> None:
    """Malformed messages raise ProtocolError and nothing else."""
    with pytest.raises(ProtocolError):
        decode(frames)


def test_alert_text_control_characters_become_spaces() -> None:
    """Alert text is free text shown on a terminal: no escape sequence, no reordering."""
    wire = {"v": 1, "k": "alert", "r": "run", "w": "w", "s": 1, "t": 1.0}
    wire["a"] = {"title": "val\x1b]0;x\x07 up", "text": "line 1\nline 2\u009b\u202e!\u2028é"}
    [record] = decode([b"run", msgpack.packb(wire)])
    assert record.info == {"title": "val ]0;x  up", "text": "line 1 line 2  ! é"}


@pytest.mark.parametrize(
    "name",
    [
        "val\u00a0loss",
        "损失\u3000值",
        "👩\u200d💻",
        "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
        "\U0001fae8",
    ],
    ids=[
        "no-break space",
        "ideographic space",
        "emoji with joiner",
        "zero-width non-joiner",
        "newer emoji",
    ],
)
def test_names_in_any_language_and_emoji_are_taken(name: str) -> None:
    """Only characters unsafe on a terminal make a name invalid, not every character
    Python calls unprintable (joiners, no-break spaces, emoji its tables do not know)."""
    [record] = decode(_frames(_good(m={name: 1.0, "loss": 0.5})))
    assert record.metrics == {name: 1.0, "loss": 0.5}


def test_huge_string_rejected_before_building_it() -> None:
    """A 10 MB string inside a payload under the size limit is refused by msgpack's bounds."""
    payload = msgpack.packb(_good(w="x" * 100_000))
    with pytest.raises(ProtocolError):
        decode([b"run", payload])


def test_encode_refuses_mixed_runs() -> None:
    """One message carries one run, since the topic names it."""
    with pytest.raises(ProtocolError):
        encode([METRICS, Record("bye", "other", "w", 1, 1.0)])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512), st.binary(max_size=64))
def test_decode_only_raises_protocol_error(payload: bytes, topic: bytes) -> None:
    """Arbitrary bytes either decode or raise ProtocolError: never another exception."""
    with contextlib.suppress(ProtocolError):
        decode([topic, payload])


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
names = st.text(min_size=1, max_size=20).filter(str.isprintable)


@settings(max_examples=200, deadline=None)
@given(
    run=names,
    worker=names,
    seq=st.integers(0, 2**62),
    t=finite,
    step=st.none() | st.integers(0, 2**53),
    epoch=st.none() | st.integers(0, 10**6),
    metrics=st.dictionaries(names, st.floats(width=64), max_size=10),
)
def test_metrics_round_trip_property(
    run: str,
    worker: str,
    seq: int,
    t: float,
    step: int | None,
    epoch: int | None,
    metrics: dict[str, float],
) -> None:
    """Any valid metrics record survives encode then decode (NaN compared as NaN)."""
    record = Record("metrics", run, worker, seq, t, step=step, epoch=epoch, metrics=metrics)
    [back] = decode(encode([record]))
    assert (back.run, back.worker, back.seq, back.time, back.step, back.epoch) == (
        run,
        worker,
        seq,
        t,
        step,
        epoch,
    )
    assert back.metrics.keys() == metrics.keys()
    for name, value in metrics.items():
        assert back.metrics[name] == value or (math.isnan(value) and math.isnan(back.metrics[name]))


def test_alert_round_trip_and_bad_alerts() -> None:
    """An alert from the training script carries a title and a text, both bounded."""
    alert = Record("alert", "run", "w1", 7, 5.0, info={"title": "val loss up", "text": "0.4"})
    assert decode(encode([alert])) == [alert]
    base = {"v": 1, "k": "alert", "r": "run", "w": "w1", "s": 7, "t": 5.0}
    for bad, reason in (
        ({}, "alert must be a map"),
        ({"a": {"text": "x"}}, "title"),
        ({"a": {"title": ""}}, "title"),
        ({"a": {"title": "x" * 201}}, "title"),
        ({"a": {"title": "t", "text": 3}}, "text"),
        ({"a": {"title": "t", "text": "x" * 2001}}, "text"),
    ):
        with pytest.raises(ProtocolError, match=reason):
            decode(_frames({**base, **bad}))


def test_unknown_kind_is_skipped_not_the_batch() -> None:
    """A kind from a newer client comes back as a record of that kind, and the records
    beside it in the batch are kept (the growth rule in the protocol's docstring)."""
    later = dict(to_wire(METRICS), k="later", s=2, x={"anything": [1, 2]})
    records = decode(_frames(to_wire(HELLO), later, dict(to_wire(METRICS), s=3)))
    assert [(r.kind, r.seq) for r in records] == [("hello", 0), ("later", 2), ("metrics", 3)]


def test_fractional_epoch_round_trip() -> None:
    """A fractional epoch travels as ep (its whole part, for older monitors) and ef."""
    record = METRICS._replace(epoch=2.5)
    wire = to_wire(record)
    assert (wire["ep"], wire["ef"]) == (2, 2.5)
    assert decode(encode([record])) == [record]


def test_fractional_epochs_in_columns() -> None:
    """A cols item with some fractional epochs keeps whole ones as ints."""
    from trainmon_client.protocol import columns_wire, decode_payload, pack_payload

    wire = columns_wire("run", "w", 0, [1.0, 2.0, 3.0], [1, 2, 3], [0.5, 1, None], {"l": [1, 2, 3]})
    assert wire["ep"] == [0, 1, None] and wire["ef"] == [0.5, None, None]
    assert [r.epoch for r in decode_payload(pack_payload(wire))] == [0.5, 1, None]


def test_total_epochs_fraction_in_hello() -> None:
    """A hello may say total epochs are 2.5 (epochs_f) beside the rounded-up epochs, and
    name the worker it was forked from."""
    hello = HELLO._replace(info={**HELLO.info, "epochs": 3, "epochs_f": 2.5, "parent": "h:0"})
    assert decode(encode([hello])) == [hello]
