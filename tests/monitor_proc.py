"""A real monitor process for tests: binds ENDPOINT, prints one JSON line of each
worker's counts every 0.1 s (and the first items it took), for SECONDS."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from trainmon.sources.subscriber import Subscriber
from trainmon.state import RunState
from trainmon_client.protocol import Columns, Record

endpoint, seconds = sys.argv[1], float(sys.argv[2])
state = RunState()
first: list[tuple[str, int]] = []


class FirstNoted:
    """Feeds the state, noting the first three items taken (a record or a batch)."""

    def apply(self, record: Record, now: float) -> bool:
        if len(first) < 3:
            first.append((record.kind, record.seq))
        return state.apply(record, now)

    def apply_columns(self, columns: Columns, now: float) -> int:
        if len(first) < 3:
            first.append(("cols", columns.seq))
        return state.apply_columns(columns, now)

    def reject(self, reason: str, peer: str = "") -> None:
        state.reject(reason, peer)

    def refuse(self, reason: str, count: int) -> None:
        state.refuse(reason, count)

    def note_link(self, short: str, note: str) -> None:
        state.note_link(short, note)


sink = FirstNoted()
source = Subscriber([endpoint])
print("listening", flush=True)
until = time.monotonic() + seconds
next_line = 0.0
while time.monotonic() < until:
    source.drain(sink, 0.02)
    if time.monotonic() >= next_line:
        next_line = time.monotonic() + 0.1
        workers: dict[str, Any] = {
            w.id: {
                "records": w.records,
                "seen_max": w.seen_max,
                "missed": w.missed,
                "not_resent": w.not_resent,
                "unrecorded": getattr(w, "client_unrecorded", 0),
                "dropped": w.client_dropped,
                "finished": w.finished,
            }
            for run in state.runs.values()
            for w in run.workers.values()
        }
        print(json.dumps({"workers": workers, "first": first}), flush=True)
source.close()
