"""Where records come from and go to: the seam between record sources and the state.

A source (the ZeroMQ subscriber in :mod:`trainmon.sources.subscriber`, a recording
replayed by :mod:`trainmon.sources.recording`) drains records into a sink (the state).
Only the protocols live here, so that importing this package loads no sockets: a
recording is replayed or exported without ZeroMQ.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from trainmon_client.protocol import Columns, Record

__all__ = ["RecordSink", "RecordSource"]


class RecordSink(Protocol):
    """Where drained records go: ``RunState`` is one."""

    def apply(self, record: Record, now: float) -> bool: ...

    def apply_columns(self, columns: Columns, now: float) -> int: ...

    def reject(self, reason: str, peer: str = "") -> None: ...

    def refuse(self, reason: str, count: int) -> None: ...

    def note_link(self, short: str, note: str) -> None:
        """How the connections made with ``--connect`` stand, when that changes: a few
        words and the whole story of what is wrong, or "" and "" once all are up."""
        ...


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

    @property
    def backlog(self) -> bool:
        """The last drain ran out of time with records still waiting."""
        ...

    @property
    def idle_s(self) -> float:
        """Seconds spent so far waiting for records (the rest of the loop's time is work,
        or waiting for a CPU)."""
        ...

    def close(self) -> None: ...
