"""What a worker has sent, kept to send again to a monitor that subscribes later: the
encoded batches, at least the newest ``records`` records of them, and the packing that
joins them into few messages."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from typing import Final

import msgpack

from trainmon_client.protocol import MAX_BATCH, MAX_PAYLOAD_BYTES

__all__ = ["History", "array_of"]

_JOIN_BYTES: Final = MAX_PAYLOAD_BYTES - 16  # history batches joined up to this (see _joined)


class History:
    """Sent batches as (records, first sequence number, payload), oldest first."""

    def __init__(self, records: int) -> None:
        self.records = records  # kept at least (and less than one batch more)
        self.batches: deque[tuple[int, int, bytes]] = deque()
        self.held = 0  # records in ``batches``

    def keep(self, payload: bytes, records: int, first_seq: int) -> None:
        """Keep a batch; let the oldest go while the rest still hold ``records``."""
        self.batches.append((records, first_seq, payload))
        self.held += records
        # Keep at least the last `records` records: the oldest batch goes only if the
        # rest still hold that many (so up to a batch more are kept).
        limit, batches = self.records, self.batches
        while len(batches) > 1 and self.held - batches[0][0] >= limit:
            self.held -= batches.popleft()[0]

    def first_seq(self) -> int | None:
        """The first sequence number still held (None while nothing is)."""
        return self.batches[0][1] if self.batches else None

    def payloads(self) -> Iterator[bytes]:
        """Everything held, as few messages as fit (see :func:`_joined`)."""
        return _joined(payload for _, _, payload in self.batches)


def array_of(parts: list[bytes]) -> bytes:
    """Packed items as one packed array of them, nothing packed again."""
    return _array_header(len(parts)) + b"".join(parts)


def _joined(
    payloads: Iterable[bytes], max_items: int = MAX_BATCH, max_bytes: int = _JOIN_BYTES
) -> Iterator[bytes]:
    """Consecutive batches as few messages as fit (``max_items``, ``max_bytes``):
    their msgpack arrays' items laid end to end under one header, nothing decoded.

    A history logged slowly is thousands of small batches; re-sent as they are, they
    overflow the queues on the way (a relay's, the monitor's) and are lost."""
    parts: list[bytes] = []
    items = size = 0
    for payload in payloads:
        count, start = _array_head(payload)
        if items and (not count or items + count > max_items or size + len(payload) > max_bytes):
            yield _array_header(items) + b"".join(parts)
            parts, items, size = [], 0, 0
        if not count:  # not an array of items (or an empty one): as it is, in its place
            yield payload
            continue
        parts.append(payload[start:])
        items += count
        size += len(payload)
    if parts:
        yield _array_header(items) + b"".join(parts)


def _array_head(payload: bytes) -> tuple[int, int]:
    """A msgpack array's length and where its items start; (0, 0) if not an array."""
    reader = msgpack.Unpacker()
    reader.feed(payload[:5])  # an array's header is at most 5 bytes
    try:
        return reader.read_array_header(), reader.tell()
    except (ValueError, msgpack.OutOfData):  # not an array (or too short for one)
        return 0, 0


def _array_header(count: int) -> bytes:
    return msgpack.Packer().pack_array_header(count)  # type: ignore[no-any-return]
