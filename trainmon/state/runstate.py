"""RunState: everything received, grouped by run and worker, and the methods that write it."""

from __future__ import annotations

import bisect
from collections.abc import Callable
from typing import Any, Final

from trainmon.state.alerts import Alert
from trainmon.state.config import config_items
from trainmon.state.limits import (
    LOST_AFTER_S,
    MAX_BUCKETS,
    MIN_BUCKETS,
    WARMUP_RECORDS,
    Limits,
)
from trainmon.state.run import Run
from trainmon.state.series import Downsampled, Series
from trainmon.state.worker import RATE_SLOT_S, Worker, worker_label
from trainmon_client.protocol import Columns, Record

__all__ = ["RunState"]

_MAX_PEERS: Final = 64
_MAX_CLIENT_ALERTS: Final = 1000
_MAX_ALERTS: Final = 200  # alerts kept (AlertWatch finds them)


class RunState:
    """Everything received, grouped by run and worker. ``apply`` is the only writer of
    what came; :meth:`current` and :meth:`choose` keep which run the dashboard shows."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.runs: dict[str, Run] = {}
        self.records = 0  # accepted records
        self.rejected = 0  # messages that failed to decode
        # Records of kinds this monitor does not know (a newer client's): skipped, their
        # sequence numbers counted as received. kind -> count, a few kinds at most.
        self.skipped: dict[str, int] = {}
        self.last_reject: str | None = None
        self.rejected_by_peer: dict[str, int] = {}
        self.refused = 0  # encrypted handshakes refused (a key not allowed)
        self.last_refusal: str | None = None
        self.link_short = ""  # what is wrong with the connections made, in a few words
        self.link_note = ""  # and the whole story
        self.recording_note = ""  # why `watch --record` stopped recording, once it has
        self.duplicates = 0
        self.untracked_runs = 0
        self.forgotten_runs = 0  # finished runs let go to make room for new ones
        self.worker_count = 0  # workers across all runs (at most limits.all_workers)
        self.series_count = 0  # series across all runs (at most limits.series)
        # What each series keeps (full-resolution points, buckets), for series_count
        # up to _planned_for (see _plan).
        self.share = (self.limits.window, MAX_BUCKETS)
        self._planned_for = 0
        self.alerts: list[Alert] = []  # raised so far, newest last (see note_alerts)
        self.client_alerts: list[Alert] = []  # sent by training scripts (the latest)
        self.client_alerts_total = 0
        self.first_record_at: float | None = None  # monitor time of the first record
        self.last_record_at: float | None = None  # and of the latest
        self._shown: str | None = None  # the run current() gave last
        self._pinned = False  # it was chosen when it had already ended: it stays
        self.chosen: str | None = None  # the run chosen last (choose())

    def apply(self, record: Record, now: float) -> bool:
        """Fold one record in; ``now`` is the monitor's clock when it arrived.

        Returns False for a record not taken: a repeat, a heartbeat, or one past a limit.
        """
        found = self._worker(record.run, record.worker, now)
        if found is None:
            return False
        run, worker = found
        if record.kind == "heartbeat":
            self._heartbeat(worker, record)
            return False
        if (
            record.kind == "hello"
            and record.seq == 0
            and worker.hello_time is not None
            and (record.time > worker.hello_time)
        ):
            # The same host:pid again, started later: a restarted process (a container's
            # PID 1, a requeued job). Its numbering starts over.
            worker.seen_max, worker.gaps, worker.missed, worker.finished = -1, [], 0, False
            self._parent_ended(run, worker, False)
        if record.kind == "hello":
            worker.hello_time = max(worker.hello_time or record.time, record.time)
        if not worker.accept(record.seq):
            self.duplicates += 1
            return False
        self.records += 1
        worker.records += 1
        run.updated = now
        if self.first_record_at is None:
            self.first_record_at = now
        self.last_record_at = now
        if run.started is None or record.time < run.started:
            run.started = record.time
        if record.kind == "metrics":
            self._metrics(run, worker, record, now)
        elif record.kind == "hello":
            self._hello(run, worker, record.info)
        elif record.kind == "alert":
            title, text = record.info.get("title", "alert"), record.info.get("text", "")
            said = f"{worker_label(worker)}: {title}" + (f" — {text}" if text else "")
            self.client_alerts.append(Alert(now, run.name, "client", said))
            self.client_alerts_total += 1
            del self.client_alerts[:-_MAX_CLIENT_ALERTS]
        elif record.kind == "bye":
            worker.finished = True
            self._parent_ended(run, worker, True)
            self._counts(worker, record)
        elif record.kind != "metrics" and (  # a newer client's kind: counted, not applied
            record.kind in self.skipped or len(self.skipped) < _MAX_PEERS
        ):
            self.skipped[record.kind] = self.skipped.get(record.kind, 0) + 1
        return True

    def apply_columns(self, columns: Columns, now: float) -> int:
        """Fold in consecutive metrics records given as columns; how many were taken.

        The same result as applying ``columns.records()`` one by one, in a few passes
        per column when the records are all new and their steps do not go down;
        otherwise it does exactly that.
        """
        found = self._worker(columns.run, columns.worker, now, len(columns.times))
        if found is None:
            return 0
        run, worker = found
        seq, count = columns.seq, len(columns.times)
        steps = columns.steps
        if seq <= worker.seen_max or not (
            columns.ordered or (None not in steps and steps == sorted(steps))  # type: ignore[type-var]
        ):
            return sum(self.apply(record, now) for record in columns.records())
        worker.expect_through(seq - 1)
        worker.seen_max = seq + count - 1
        self.records += count
        worker.records += count
        run.updated = now
        if self.first_record_at is None:
            self.first_record_at = now
        self.last_record_at = now
        times = columns.times
        started = min(times)
        if run.started is None or started < run.started:
            run.started = started
        epochs = columns.epochs
        numbers: list[int] = steps  # type: ignore[assignment]  # no None, checked above
        if epochs.count(worker.epoch) != count:
            marker = not columns.metrics
            for epoch, step, t in zip(epochs, numbers, times, strict=True):
                if epoch is not None and epoch != worker.epoch:
                    worker.note_epoch(epoch, step, t, marker)
        if not columns.metrics:
            return count
        worker.last_metrics_at = now
        first = -1
        if worker.step is None or numbers[0] >= worker.step:
            first = 0
        elif numbers[-1] >= worker.step:
            first = bisect.bisect_left(numbers, worker.step)
        if first >= 0:  # records from `first` on move the step forward
            last = numbers[-1]
            same = bisect.bisect_left(numbers, last, first)  # the first record at `last`
            if same > first:
                worker.step_gap = last - numbers[same - 1]
            elif worker.step is not None and last > worker.step:
                worker.step_gap = last - worker.step
            worker.step = last
            skip = first + max(WARMUP_RECORDS - worker.forward_records, 0)
            worker.forward_records += count - first
            if skip < count:
                _rate_points(worker, times, numbers, skip)
        for name, values in columns.metrics.items():
            series = worker.series.get(name) or self._new_series(run, worker, name, count)
            if series is not None:
                series.extend(numbers, values, sorted_steps=True, finite=columns.finite)
        return count

    def reject(self, reason: str, peer: str = "") -> None:
        """Count a message that could not be decoded, and who sent it."""
        self.rejected += 1
        self.last_reject = reason
        if peer:
            if peer in self.rejected_by_peer or len(self.rejected_by_peer) < _MAX_PEERS:
                self.rejected_by_peer[peer] = self.rejected_by_peer.get(peer, 0) + 1
            else:
                self.rejected_by_peer["others"] = self.rejected_by_peer.get("others", 0) + 1

    def refuse(self, reason: str, count: int = 1) -> None:
        """Count handshakes refused by authentication."""
        self.refused += count
        self.last_refusal = reason

    def note_recording(self, note: str) -> None:
        """The recording (``watch --record``) stopped or falls behind: ``note`` says why."""
        self.recording_note = note

    def note_link(self, short: str, note: str) -> None:
        """How the monitor's connections stand ("" and "" when all are up)."""
        self.link_short, self.link_note = short, note

    def note_alerts(self, alerts: list[Alert]) -> None:
        """Keep ``alerts`` (found by :class:`~trainmon.state.alerts.AlertWatch` from
        this state) after those raised before: the newest 200."""
        self.alerts += alerts
        del self.alerts[:-_MAX_ALERTS]

    def current(self, name: str | None = None) -> Run | None:
        """The run named ``name``; else the run the dashboard shows.

        That is the run given last (the one the user is looking at) while it is live,
        or while no other is; when it has finished or is lost (its workers silent for
        ``LOST_AFTER_S`` while others are heard) and another run is live, the newest
        live one. A run chosen (:meth:`choose`) when it had already ended stays until it
        is live again. The first time: the newest live run, else the newest not
        finished, else the one heard from last. So a run started later, or another
        user's script publishing to the same port, never takes the view from a run
        being watched: the header says other runs exist, and r switches.
        """
        if name is not None:
            return self.runs.get(name)
        if not self.runs:
            return None
        latest = max(run.heard for run in self.runs.values())
        shown = self.runs.get(self._shown) if self._shown is not None else None
        if shown is not None:
            if _live(shown, latest):
                self._pinned = False
                return shown
            if self._pinned:
                return shown
            others = [r for r in self.runs.values() if r is not shown and _live(r, latest)]
            if not others:
                return shown
            shown = max(others, key=lambda run: run.created)
        else:
            live = [run for run in self.runs.values() if _live(run, latest)]
            going = live or [r for r in self.runs.values() if r.workers and not r.finished]
            if going:
                shown = max(going, key=lambda run: run.created)
            else:
                heard = [r for r in self.runs.values() if r.workers] or self.runs.values()
                shown = max(heard, key=lambda run: run.updated)
        self._shown, self._pinned = shown.name, False
        return shown

    def choose(self, name: str) -> None:
        """Show run ``name`` (the r key, or ``--run``) from now on, as :meth:`current`
        keeps a run shown; one that has already ended stays until it is live again."""
        self.chosen = name
        run = self.runs.get(name)
        if run is not None:
            latest = max(r.heard for r in self.runs.values())
            self._shown, self._pinned = name, not _live(run, latest)

    def _worker(
        self, run_name: str, worker_id: str, now: float, records: int = 1
    ) -> tuple[Run, Worker] | None:
        """The run and worker ``records`` records belong to (made if new and within the
        limits), with the worker's silence (an outage if long) ended at ``now``."""
        run = self._run(run_name, now, records)
        if run is None:
            return None
        run.changes += 1  # whatever the record does to its worker happens after this
        worker = run.workers.get(worker_id)
        if worker is None:
            limits = self.limits
            self._make_room(lambda: self.worker_count >= limits.all_workers, keep=run)
            if len(run.workers) >= limits.workers or self.worker_count >= limits.all_workers:
                run.untracked_workers += records
                return None
            worker = run.workers[worker_id] = Worker(worker_id, now, now)
            self.worker_count += 1
        silence = now - worker.last_seen
        if silence > LOST_AFTER_S and not worker.finished:
            worker.outages += 1
            worker.longest_outage_s = max(worker.longest_outage_s, silence)
        worker.last_seen = max(worker.last_seen, now)
        if now > run.heard:
            run.heard = now
        return run, worker

    def _run(self, name: str, now: float, records: int = 1) -> Run | None:
        run = self.runs.get(name)
        if run is None:
            if len(self.runs) >= self.limits.runs and not self._forget_a_run():
                self.untracked_runs += records
                return None
            run = self.runs[name] = Run(name, updated=now, created=now, heard=now)
        return run

    def _make_room(self, full: Callable[[], bool], keep: Run) -> None:
        """Let runs go (see :meth:`_forget_a_run`) while ``full()`` says a cap in all is
        reached and there is one to let go."""
        while full() and self._forget_a_run(keep=keep):
            pass

    def _forget_a_run(self, keep: Run | None = None) -> bool:
        """Make room (runs, workers and series in all) by letting go of the run that
        finished longest ago, or one that never had a worker; False if there is none.

        A monitor left running for days, across job after job, always has room for the
        newest run."""
        done = [r for r in self.runs.values() if r is not keep and (r.finished or not r.workers)]
        if not done:
            return False
        gone = self.runs.pop(min(done, key=lambda r: r.updated).name)
        self.forgotten_runs += 1
        self.worker_count -= len(gone.workers)
        self.series_count -= sum(len(w.series) for w in gone.workers.values())
        if self.series_count <= self._planned_for // 2:
            self._plan()  # the rest may keep more
        return True

    def _heartbeat(self, worker: Worker, record: Record) -> None:
        self._counts(worker, record)
        worker.expect_through(record.seq)  # a heartbeat carries the last number used

    @staticmethod
    def _counts(worker: Worker, record: Record) -> None:
        """What the client says it dropped and did not record (heartbeat, bye)."""
        counters = record.counters
        worker.client_dropped = max(worker.client_dropped, counters.get("dropped", 0))
        worker.client_unrecorded = max(worker.client_unrecorded, counters.get("unrecorded", 0))

    def _hello(self, run: Run, worker: Worker, info: dict[str, Any] | Any) -> None:
        worker.host = info.get("host", worker.host)
        worker.pid = info.get("pid", worker.pid)
        worker.rank = info.get("rank", worker.rank)
        worker.world = info.get("world", worker.world)
        if "epochs" in info:  # (epochs_f goes with it: a hello again may drop it)
            worker.total_epochs, worker.total_epochs_f = info["epochs"], info.get("epochs_f")
        worker.total_steps = info.get("steps", worker.total_steps)
        parent = info.get("parent")
        if parent is not None and parent != worker.id:
            worker.parent, run.forked = parent, True
            father = run.workers.get(parent)
            worker.parent_ended = father is not None and father.finished
        config = info.get("config")
        sender = run.config_from
        if (
            isinstance(config, dict)
            and (  # a restarted rank 0 is newer than the one gone
                sender is None or sender.finished or worker.sort_key()[:2] <= sender.sort_key()[:2]
            )
        ):
            (run.config, run.config_more), run.config_from = config_items(config), worker
        first_held = info.get("from")
        if first_held is not None:
            worker.not_held_before(first_held)

    def _metrics(self, run: Run, worker: Worker, record: Record, now: float) -> None:
        if record.epoch is not None and record.epoch != worker.epoch:
            worker.note_epoch(record.epoch, record.step, record.time, not record.metrics)
        step = record.step if record.step is not None else record.seq
        if not record.metrics:
            return
        worker.last_metrics_at = now
        last = worker.step
        if last is None or step >= last:
            if last is not None and step > last:
                worker.step_gap = step - last
            worker.step = step
            worker.forward_records += 1
            if worker.forward_records > WARMUP_RECORDS:  # Worker.rate_point, inlined
                t = record.time
                if worker.rate_from <= t < worker.rate_until:
                    worker.rate_points[-1] = (t, step)
                else:
                    worker.rate_points.append((t, step))
                    worker.rate_from = t // RATE_SLOT_S * RATE_SLOT_S
                    worker.rate_until = worker.rate_from + RATE_SLOT_S
        for name, value in record.metrics.items():
            series = worker.series.get(name) or self._new_series(run, worker, name, 1)
            if series is not None:
                series.add(step, value)

    @staticmethod
    def _parent_ended(run: Run, parent: Worker, ended: bool) -> None:
        """Tell the forked children of ``parent`` whether it has said bye."""
        if run.forked:
            for worker in run.workers.values():
                if worker.parent == parent.id:
                    worker.parent_ended = ended

    def _new_series(self, run: Run, worker: Worker, name: str, count: int) -> Series | None:
        """A series for metric ``name`` of ``worker``, if the limits allow; else None,
        with the ``count`` values that came for it counted as untracked."""
        limits = self.limits
        self._make_room(lambda: self.series_count >= limits.series, keep=run)
        if len(worker.series) >= limits.metrics or self.series_count >= limits.series:
            worker.untracked_metrics += count
            return None
        self.series_count += 1
        if self.series_count > self._planned_for:
            self._plan()
        window, buckets = self.share
        series = worker.series[name] = Series(window, older=Downsampled(max_buckets=buckets))
        if name not in run.metric_names and len(run.metric_names) < limits.metrics:
            run.metric_names.append(name)
        return series

    def _plan(self) -> None:
        """Share the point budget out: each series keeps ``points / n`` points at full
        resolution (``window`` at most) and 512 buckets of history, or an eighth as
        many as its points (at least 64) when the window is cut; ``n`` is the number of
        series rounded up to a power of two, so this runs only when that number doubles
        or halves. Held points beyond a smaller share go to the history at once."""
        limits = self.limits
        planned = 1 << max(self.series_count - 1, 0).bit_length()
        window = max(1, min(limits.window, limits.points // planned))
        buckets = MAX_BUCKETS
        if window < limits.window:
            buckets = max(MIN_BUCKETS, min(MAX_BUCKETS, window // 8))
        share = (window, buckets)
        if share != self.share:
            for run in self.runs.values():
                for worker in run.workers.values():
                    for series in worker.series.values():
                        series.resize(*share)
        self.share, self._planned_for = share, planned


def _live(run: Run, latest: float) -> bool:
    """``run`` has workers, not all finished, one heard within ``LOST_AFTER_S`` of
    ``latest`` (the monitor time anything was heard last)."""
    return bool(run.workers) and not run.finished and latest - run.heard <= LOST_AFTER_S


def _rate_points(worker: Worker, times: list[float], steps: list[int], start: int) -> None:
    """:meth:`Worker.rate_point` for records ``start`` on of a batch, as if one by one:
    the last record of each quarter second, found by bisection when the times do not
    go down (almost always), so a batch costs a few steps rather than one per record."""
    if start > 0:
        times, steps = times[start:], steps[start:]
    if times != sorted(times):
        for t, step in zip(times, steps, strict=True):
            worker.rate_point(t, step)
        return
    index, end = 0, len(times)
    while index < end:
        slot = times[index] // RATE_SLOT_S
        index = bisect.bisect_left(times, (slot + 1) * RATE_SLOT_S, index, end)
        worker.rate_point(times[index - 1], steps[index - 1])
