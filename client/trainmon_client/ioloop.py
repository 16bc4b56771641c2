"""The I/O thread of a Monitor: it takes the queued calls into numbered records (see
numbering.py), batches and encodes them, sends them (and heartbeats) on the socket, keeps
a history that it sends again with a hello to each monitor that subscribes later,
records to a file where asked, and at close delivers what is left and says bye.

It is given what it works with: the queue of calls, the dict of latest values it
notes, the hello updates, close()'s request, the socket and the recording's writer;
everything else here is touched by this thread only.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Any, Final

import zmq

from trainmon_client.calls import HELLO, CallQueue, Closing
from trainmon_client.endpoints import nobody_watched_hint
from trainmon_client.framing import FRAME_RECORDS, FRAME_VALUES, BackgroundWriter
from trainmon_client.hello import InfoUpdates, plain
from trainmon_client.history import History, array_of
from trainmon_client.keeping import CONTINUE_WAIT_S, KeptRun, closing_fate
from trainmon_client.logs import Warnings, log
from trainmon_client.memguard import MemoryGuard, megabytes, rebind
from trainmon_client.numbering import Records, Row
from trainmon_client.protocol import (
    MAX_PAYLOAD_BYTES,
    Record,
    columns_wire,
    cut_columns,
    pack_payload,
    to_wire,
)
from trainmon_client.sockets import PubSocket
from trainmon_client.system import SystemSampler

__all__ = ["IOLoop", "LoopSettings"]

_TICK_S: Final = 0.02  # the I/O thread's sleep when idle: at most this much latency
# Longest stretch of Python work the I/O thread does before it lets go of the GIL.
_SLICE_S: Final = 0.001
# Then it sleeps this long, so a training thread waiting for the GIL really gets it: a
# release that is taken straight back (a 0-timeout poll) looks to CPython like a switch
# and can keep the other thread waiting for as long as the backlog lasts.
_YIELD_S: Final = 0.0002
# Records per message at most: under load, fewer and larger messages cost the monitor
# less per record (it pays for each message, and for each metric of each message).
_MAX_BATCH_RECORDS: Final = 512
# A recording's frame holds at most this many records, and about this many values
# (a few KiB): damage in the middle of a file costs one frame.
_MAX_HELLO_BYTES: Final = MAX_PAYLOAD_BYTES // 4  # a larger config is not sent
_CLOCK_EVERY: Final = 64  # records taken between looks at the clock (the slice's end)
_HEARTBEAT_S: Final = 1.0
# Memory grown this far past its low mark makes the I/O thread reopen its socket: an
# endless multipart message accumulates inside libzmq (see memguard); a reopening that
# frees nothing doubles it, so training that grows for its own reasons is left alone.
_MEMORY_ALLOWANCE: Final = 512 << 20

_now = time.time


@dataclass(slots=True)
class LoopSettings:
    """What the I/O thread is told once, at the start."""

    run: str
    worker: str
    endpoint: str  # where it publishes (for what it says)
    bind: bool
    history: int  # records kept to send again to a monitor that attaches later
    info: dict[str, Any]  # the hello's info at the start
    offline: bool  # no socket to send on: records go nowhere
    system: bool = False  # sample system metrics (see system.py)


class IOLoop:
    """The I/O thread's state: what it shares with training's thread (the queue, the
    latest values, the hello updates, close()'s request) is handed to it; everything
    else here is touched by that thread only."""

    def __init__(
        self,
        settings: LoopSettings,
        calls: CallQueue,
        latest: dict[str, float],
        updates: InfoUpdates,
        closing: Closing,
        out: PubSocket,
        writer: BackgroundWriter | None = None,
        kept: KeptRun | None = None,
    ):
        self.settings = settings
        self.calls = calls
        self.updates = updates
        self.closing = closing
        self.out = out
        self.writer = writer
        self.kept = kept  # where the run is kept by default (written by the writer)
        self.warnings = Warnings()
        self.records = Records(settings.run, settings.worker, latest, self.warnings)
        self.dropped_at_close = 0  # calls left in the queue when close() ran out of time
        self.reopened = 0  # times the socket was reopened because memory ran away
        self.offline = settings.offline
        self.ever_subscribed = False
        self.deadline = 0.0  # while closing: how long a full pipe may be waited on
        self.history = History(settings.history)
        self.row_cost_s = 2e-6  # seconds to publish one row (measured as it goes)
        self.guard = MemoryGuard(_MEMORY_ALLOWANCE)
        self.sampler: SystemSampler | None = None  # made by this thread (NVML starts there)
        self.info = settings.info
        self.hello_record = self.records.record("hello", _now(), info=self.info)
        self.hello = self._hello_payload()
        if writer is not None:
            writer.put(self.hello, 0)  # (not a record the user logged: not counted)

    def _hello_payload(self) -> bytes:
        """The packed hello; a config too large for a monitor to take is left out."""
        hello = pack_payload(to_wire(self.hello_record))
        if len(hello) > _MAX_HELLO_BYTES:  # a monitor would refuse the whole hello
            self.warnings.once(
                "<config>",
                f"config of {len(hello):,} bytes packed not sent (at most "
                f"{_MAX_HELLO_BYTES:,}; the monitor shows 64 short items of it)",
                dropped=False,
            )
            self.info.pop("config", None)
            self.hello_record = self.hello_record._replace(info=self.info)  # (the same number)
            hello = pack_payload(to_wire(self.hello_record))
        return hello

    def _new_hello(self, t: float) -> Record:
        """Totals or config changed: the hello with the new info, as a new record (the
        next sequence number); the hello re-sent to late monitors says it too."""
        for key, value in self.updates.take().items():
            if value is None:
                self.info.pop(key, None)
            else:
                self.info[key] = plain(value) if key == "config" else value
        self.hello_record = self.hello_record._replace(info=self.info)
        self.hello = self._hello_payload()
        return self.records.record("hello", t, info=dict(self.hello_record.info))

    @property
    def subscribed(self) -> bool:
        """Whether a monitor subscribes to this run."""
        return self.out.subscribed

    def run(self) -> None:
        """The thread's body: publish until close() asks, then finish."""
        next_beat = time.monotonic() + _HEARTBEAT_S
        try:
            self._continue_steps()
            while not self.closing.requested():
                if self._drain(time.monotonic() + _SLICE_S):
                    time.sleep(_YIELD_S)
                    self._poll(0)
                else:
                    self._poll(int(_TICK_S * 1000))
                if not self.offline:
                    self._watch_memory()
                if self.settings.system:
                    self._sample_system()
                if time.monotonic() >= next_beat:
                    self._heartbeat()
                    next_beat = time.monotonic() + _HEARTBEAT_S
            self._finish()
        except Exception:  # the thread must never take the training down
            log.exception("trainmon: publisher stopped")
        finally:
            if self.writer is not None:
                self.writer.close(self.closing.deadline)
            self.out.close()  # honours the LINGER _finish set for the last records

    def _continue_steps(self) -> None:
        """A run continued (restarted under its name): number the steps on from where
        it left off, if the recording's thread learns that in time (see keeping.py)."""
        if self.kept is None:
            return
        until = time.monotonic() + CONTINUE_WAIT_S
        while not self.kept.ready.is_set() and time.monotonic() < until:
            self.calls.rebound()  # (the queue's bound in values holds while it waits)
            self.kept.ready.wait(_TICK_S)
        last = self.kept.last_step
        if last is not None and self.records.step < last:
            self.records.step = last

    def _sample_system(self) -> None:
        """System metrics, once a second at most while a monitor watches or a recording
        is made: a record of their own, with the last step logged (0 before any), no
        epoch, and not counted as logged; the monitor moves no step on for it."""
        sampler = self.sampler
        try:
            if sampler is None:
                self.sampler = SystemSampler()
                return
            watched = self.subscribed or self.writer is not None
            if not watched or not sampler.due(time.monotonic()):
                return
            values = sampler.sample()
        except Exception as exc:  # (never expected) publishing goes on without them
            self.settings.system = False
            self.warnings.once("<system>", f"system metrics stopped ({exc!r})", dropped=False)
            return
        records = self.records
        row: Row = (records.seq, _now(), max(records.step, 0), None, values)
        records.seq += 1
        self._publish_rows([row])

    def _poll(self, timeout_ms: int) -> None:
        """Wait for socket events (releasing the GIL) and handle them."""
        self.out.poll(timeout_ms, self._subscribed, self._refused)

    def _subscribed(self) -> None:
        self.ever_subscribed = True
        self._resend()

    def _refused(self) -> None:
        self.warnings.once(
            "<handshake>",
            f"the handshake with {self.settings.endpoint} failed: the keys "
            "do not match, or only one side encrypts (curve_* options)",
            dropped=False,
        )

    def _watch_memory(self) -> None:
        """Reopen the socket when memory runs away (libzmq lets go of what it held for
        a connection with it), and say so once."""
        if not self.guard.ran_away():
            return
        sock, bind = self.out.sock, self.settings.bind
        where = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        if not where:
            return
        self.reopened += 1
        with contextlib.suppress(zmq.ZMQError):  # (already gone: made again all the same)
            (sock.unbind if bind else sock.disconnect)(where)
        done = self.guard.reclaim()
        if not done.false_alarm:  # (training that grew by itself is not told about it)
            self.warnings.once(
                "<memory>",
                f"memory grew to {megabytes(done.before)}: the socket was reopened in case a "
                f"peer was sending a message without end ({megabytes(done.freed)} came "
                "back; said once, counted in Monitor.reopened)",
                dropped=False,
            )
        if not bind:
            sock.connect(where)
        elif not rebind(sock, where):
            self.warnings.once("<rebind>", f"cannot listen on {where} again; not publishing")
            self.offline = True

    def _resend(self) -> None:
        """A monitor subscribed: send hello and the whole history (it drops repeats)."""
        hello = self.hello
        first = self.history.first_seq()
        if first is not None and first > 1:
            # Older records were let go: say where the history starts, so a late
            # monitor does not count them as lost on the way.
            record = self.hello_record._replace(info={**self.info, "from": first})
            hello = pack_payload(to_wire(record))
        self._send(hello)
        for payload in self.history.payloads():
            self._send(payload)

    def _send(self, payload: bytes) -> None:
        """Send without blocking; a full pipe drops the batch and the monitor counts the gap.

        While closing (``deadline`` set) a full pipe is waited on instead, up to it.
        """
        self.out.send(payload, self.deadline)

    def _drain(self, until: float) -> bool:
        """Turn queued calls into records and send them; True if more are waiting."""
        self.calls.rebound()
        queue, take = self.calls, self.records.take
        rows: list[Row] = []
        taken = 0
        while queue:
            taken += 1
            try:
                # Taken, then let go: a call is always in the queue or in what the
                # I/O thread has seen, for current_loss() to find.
                call = queue[0]
                row = self._new_hello(call[0]) if call[3] is HELLO else take(*call)
            except Exception as exc:  # whatever was logged, the thread goes on
                self.warnings.once("<record>", f"cannot publish a record ({exc!r})")
                queue.count_drop()
                row = None
            queue.popleft()
            if isinstance(row, Record):  # an alert or hello: after the rows before it
                if rows:
                    self._publish_rows(rows)
                    rows = []
                self._publish([to_wire(row)], 1, row.seq)
            elif isinstance(row, list):  # one call, several records
                rows.extend(row)
            elif row is not None:
                rows.append(row)
            if len(rows) >= _MAX_BATCH_RECORDS:
                self._publish_timed(rows)
                rows = []
            # Stop in time for the rows taken so far to go out before the slice ends
            # (a smaller batch), so the GIL is held about a slice whatever the batch size.
            if (
                taken % _CLOCK_EVERY == 0
                and time.monotonic() + len(rows) * self.row_cost_s >= until
            ):
                break
        if rows:
            self._publish_timed(rows)
        return bool(queue)

    def _publish_timed(self, rows: list[Row]) -> None:
        """Publish ``rows`` and keep an average of what one row costs to publish."""
        started = time.perf_counter()
        self._publish_rows(rows)
        cost = (time.perf_counter() - started) / len(rows)
        self.row_cost_s += 0.2 * (cost - self.row_cost_s)

    def _publish_rows(self, rows: list[Row]) -> None:
        """Send consecutive records as ``cols`` items: one per run of the same names."""
        items: list[dict[str, Any]] = []
        start = 0
        names = tuple(rows[0][4])
        for index in range(1, len(rows)):
            these = tuple(rows[index][4])
            if these != names:
                items.append(self._columns(rows[start:index], names))
                start, names = index, these
        items.append(self._columns(rows[start:], names))
        frames = None
        if self.writer is None:
            payload = self._pack(items, len(rows))
        else:
            frames = self._frames(items)
            payload = None if frames is None else array_of([part for part, _ in frames])
        if payload is None:
            return
        if len(payload) > MAX_PAYLOAD_BYTES and len(rows) > 1:
            # Too large for a monitor to take (many long metric names, changing from
            # record to record, each change repeating them): two halves instead.
            half = len(rows) // 2
            self._publish_rows(rows[:half])
            self._publish_rows(rows[half:])
            return
        self._keep_and_send(payload, len(rows), rows[0][0], frames)

    def _frames(self, items: list[dict[str, Any]]) -> list[tuple[bytes, int]] | None:
        """The ``cols`` items cut to at most FRAME_RECORDS records and about
        FRAME_VALUES values each, each packed: the frames of a recording, where damage
        then costs a few records; sent joined as one batch. None if they cannot be."""
        parts: list[tuple[bytes, int]] = []
        for item in items:
            count = len(item["t"])
            step = max(1, min(FRAME_RECORDS, FRAME_VALUES // max(len(item["m"]), 1)))
            for start in range(0, count, step) if count > step else (0,):
                part = item if count <= step else cut_columns(item, start, start + step)
                packed = self._pack(part, 0)
                if packed is None:
                    self.calls.count_drop(sum(len(i["t"]) for i in items))
                    return None
                parts.append((packed, len(part["t"])))
        return parts

    def _columns(self, rows: list[Row], names: tuple[str, ...]) -> dict[str, Any]:
        seqs, times, steps, epochs, values = zip(*rows, strict=True)
        columns = zip(*(v.values() for v in values), strict=True) if names else ()
        return columns_wire(
            self.settings.run,
            self.settings.worker,
            seqs[0],
            times,
            steps,
            epochs,
            dict(zip(names, columns, strict=True)),
        )

    def _publish(self, items: list[dict[str, Any]], records: int, first_seq: int) -> None:
        payload = self._pack(items, records)
        if payload is not None:
            self._keep_and_send(payload, records, first_seq)

    def _pack(self, items: list[dict[str, Any]] | dict[str, Any], records: int) -> bytes | None:
        """The encoded batch; None (its records counted as dropped) if it cannot be."""
        try:
            return pack_payload(items)
        except (ValueError, OverflowError, TypeError) as exc:  # defensive: never expected
            self.warnings.once("<pack>", f"cannot encode a batch ({exc})")
            self.calls.count_drop(records)
            return None

    def _keep_and_send(
        self,
        payload: bytes,
        records: int,
        first_seq: int,
        frames: list[tuple[bytes, int]] | None = None,
    ) -> None:
        """Record, keep in the history and send an encoded batch; ``frames``, the
        same records as smaller payloads to record (else the batch is recorded)."""
        if self.writer is not None:
            self.writer.put_all(frames or ((payload, records),))
        elif self.offline:
            self.calls.count_drop(records)  # nothing can carry them anywhere
        self.history.keep(payload, records, first_seq)
        if self.subscribed:
            self._send(payload)

    def _counters(self) -> dict[str, int]:
        return {
            "logged": self.records.logged,
            "dropped": self.calls.dropped,
            "queued": len(self.calls),
            "unrecorded": 0 if self.writer is None else self.writer.unrecorded,
        }

    def _heartbeat(self) -> None:
        if not self.subscribed:
            return
        beat = self.records.last("heartbeat", _now(), counters=self._counters())
        self._send(pack_payload(to_wire(beat)))

    def _finish(self) -> None:
        """Flush the queue and say bye, within the close deadline."""
        deadline = self.closing.deadline
        self._await_subscriber(deadline)
        if self.subscribed:
            # From here a full pipe makes send() say so (rather than drop silently), so
            # the last records and the bye wait for a slow monitor, up to the deadline.
            self.out.sock.setsockopt(zmq.XPUB_NODROP, 1)
        # Keep the last quarter of the budget for the bye, which carries the final counts.
        flush_until = (
            deadline - (deadline - time.monotonic()) / 4 if deadline < math.inf else deadline
        )
        self.deadline = flush_until
        while self.calls and time.monotonic() < flush_until:
            self._drain(flush_until)
        if self.calls:  # out of time: these are dropped, and counted as such
            self.dropped_at_close = len(self.calls)
            self.calls.count_drop(len(self.calls))
            self.calls.clear()
        self.deadline = deadline
        # Everything before the bye recorded (or counted as not): the bye says so.
        writer = self.writer
        if writer is not None and not writer.settle(_midway(deadline)):
            writer.abandon()
        self._nobody_watched()
        self.offline = False  # (the bye is no record the user logged: not counted)
        bye = self.records.record("bye", _now(), counters=self._counters())
        self._publish([to_wire(bye)], 1, bye.seq)
        if self.subscribed:
            remaining_s = max(deadline - time.monotonic(), 0)
            self.out.sock.setsockopt(
                zmq.LINGER, -1 if remaining_s == math.inf else int(remaining_s * 1000)
            )

    def _await_subscriber(self, deadline: float) -> None:
        """A monitor may be connecting, its subscription on the way: wait for it (up to
        ``deadline``), unless nobody can be there (nothing connected to us, or refused)."""
        self._poll(0)
        while not self.subscribed and time.monotonic() < deadline:
            if self.out.peers == 0 and (self.settings.bind or self.out.refused):
                break
            self._poll(10)

    def _nobody_watched(self) -> None:
        """At close, if no monitor ever subscribed: where the run was kept (continuing a
        kept one, or not) and how to see it, or that it was not kept; what was dropped;
        and how to watch next time. (Nothing when ``record_to`` recorded it.)"""
        if self.ever_subscribed or self.offline or not self.records.logged:
            return
        fate = closing_fate(self.writer, self.kept)
        if fate is None:
            return
        dropped, late = self.calls.dropped, self.dropped_at_close
        whys = [
            *(["the queue was full"] if dropped > late else []),
            *(["close() ran out of time"] if late else []),
        ]
        more = f"; {dropped:,} more were dropped: {' and '.join(whys)}" if dropped else ""
        settings = self.settings
        log.warning(
            "trainmon: nobody watched run %r on %s: its %d records %s%s; next time %s",
            *(settings.run, settings.endpoint, self.records.logged, fate, more),
            nobody_watched_hint(settings.endpoint, settings.bind),
        )


def _midway(deadline: float) -> float:
    """Halfway from now to ``deadline`` (``inf`` stays ``inf``)."""
    now = time.monotonic()
    return deadline if deadline == math.inf else now + (deadline - now) / 2
