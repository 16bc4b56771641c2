"""What the wire carries, decoded: :class:`Record` and :class:`Columns`, the
:class:`ProtocolError` for what is not valid, and the protocol's limits (see protocol.py
for the wire itself)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final, NamedTuple

__all__ = [
    "COUNTER_KEYS",
    "Columns",
    "INFO_KEYS",
    "KINDS",
    "MAX_ALERT_TEXT",
    "MAX_ALERT_TITLE",
    "MAX_BATCH",
    "MAX_MAP",
    "MAX_METRICS",
    "MAX_PAYLOAD_BYTES",
    "MAX_SEQ",
    "MAX_STEP",
    "MAX_STR",
    "MAX_TOPIC_BYTES",
    "NEWER_COUNTER_KEYS",
    "PROTOCOL_VERSION",
    "ProtocolError",
    "Record",
]

PROTOCOL_VERSION: Final = 1
KINDS: Final = frozenset({"hello", "metrics", "heartbeat", "bye", "alert"})
MAX_ALERT_TITLE: Final = 200
MAX_ALERT_TEXT: Final = 2000

MAX_PAYLOAD_BYTES: Final = 1024 * 1024  # a batch of 512 records of 200 metrics fits
MAX_BATCH: Final = 4096
MAX_METRICS: Final = 256
MAX_TOPIC_BYTES: Final = 256
MAX_STEP: Final = 2**53
MAX_SEQ: Final = 2**63
MAX_STR: Final = 64 * 1024
MAX_MAP: Final = 1024
INFO_KEYS: Final = (
    "host",
    "pid",
    "rank",
    "world",
    "local_rank",
    "epochs",
    "steps",
    "from",
    "port",
    "local_world",
)
COUNTER_KEYS: Final = ("logged", "dropped", "queued")
NEWER_COUNTER_KEYS: Final = ("unrecorded",)  # given only where the client sent them


class ProtocolError(ValueError):
    """A message that is not a valid trainmon v1 message."""


_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})


class Record(NamedTuple):
    """One decoded record; see the module docstring for the meaning of each field.

    A NamedTuple rather than a frozen dataclass: just as immutable, and several times
    cheaper to build, which matters at hundreds of thousands of records a second.
    """

    kind: str
    run: str
    worker: str
    seq: int
    time: float
    step: int | None = None
    epoch: int | float | None = None  # a float only where not whole (wire key ``ef``)
    metrics: Mapping[str, float] = _EMPTY
    info: Mapping[str, Any] = _EMPTY
    counters: Mapping[str, int] = _EMPTY


class Columns(NamedTuple):
    """Consecutive metrics records of one worker, as columns (wire kind ``cols``).

    Record ``i`` has sequence number ``seq + i``, time ``times[i]``, step ``steps[i]``,
    epoch ``epochs[i]`` and the value ``column[i]`` of each ``metrics`` column.
    """

    run: str
    worker: str
    seq: int
    times: list[float]
    steps: list[int | None]
    epochs: list[int | float | None]  # floats only where not whole (wire key ``ef``)
    metrics: dict[str, list[float]]
    ordered: bool = False  # every step is an int and they do not go down (checked)
    finite: bool = False  # every metric value is a finite number (checked)

    @property
    def size(self) -> int:
        """How many records the columns hold."""
        return len(self.times)

    def records(self) -> list[Record]:
        """The same records, one by one (every metric value a float)."""
        names = list(self.metrics)
        rows = zip(*self.metrics.values(), strict=True) if names else itertools.repeat(())
        return [
            Record(
                "metrics",
                self.run,
                self.worker,
                self.seq + i,
                self.times[i],
                step=self.steps[i],
                epoch=self.epochs[i],
                metrics=dict(zip(names, map(float, row), strict=True)),
            )
            for i, row in zip(range(len(self.times)), rows, strict=False)
        ]
