"""Coverage-guided fuzzing of the wire decoder with atheris, for a bounded time.

decode() must turn any two frames into records or raise ProtocolError: any other
exception, a hang or a crash is a bug. The corpus starts from valid messages of every
kind so the fuzzer reaches deep into the record checks quickly.

    pip install atheris
    python scripts/fuzz_decode.py              # 60 s
    python scripts/fuzz_decode.py -max_total_time=600 -print_final_stats=1

Arguments are passed to libFuzzer; ``-max_total_time`` defaults to 60 seconds.
"""

from __future__ import annotations

import os
import sys
import tempfile

import atheris

with atheris.instrument_imports():
    from trainmon_client.protocol import ProtocolError, Record, decode, decode_payload, encode

SEEDS = [
    [Record("hello", "r", "w", 0, 1.0, info={"host": "h", "pid": 1, "rank": 0, "epochs": 3})],
    [Record("metrics", "r", "w", 1, 2.0, step=0, epoch=0, metrics={"loss": 0.5, "acc": 1.0})],
    [Record("heartbeat", "r", "w", 1, 3.0, counters={"logged": 1, "dropped": 0, "queued": 0})],
    [Record("bye", "r", "w", 2, 4.0, counters={"logged": 1, "dropped": 0, "queued": 0})],
]


def one_input(data: bytes) -> None:
    # first byte: topic length; then the topic; the rest is the payload
    length = data[0] % 9 if data else 0
    topic, payload = data[1 : 1 + length], data[1 + length :]
    for call in (lambda: decode([topic, payload]), lambda: decode_payload(payload)):
        try:
            records = call()
        except ProtocolError:
            continue
        for record in records:  # what decodes must be usable as a Record
            assert isinstance(record, Record) and isinstance(record.seq, int)


def main() -> None:
    corpus = tempfile.mkdtemp(prefix="trainmon-fuzz-")
    for index, records in enumerate(SEEDS):
        topic, payload = encode(records)
        with open(os.path.join(corpus, f"seed{index}"), "wb") as seed:
            seed.write(bytes([len(topic)]) + topic + payload)
    args = [sys.argv[0], *sys.argv[1:]]
    if not any(arg.startswith("-max_total_time") for arg in args):
        args.append("-max_total_time=60")
    args.append(corpus)
    atheris.Setup(args, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
