"""RunState: everything received, grouped by run and worker, and the methods that write it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Final

from trainmon.names import system_only
from trainmon.state.alerts import Alert
from trainmon.state.config import config_items
from trainmon.state.limits import LOST_AFTER_S, MAX_BUCKETS, MIN_BUCKETS, Limits
from trainmon.state.run import Run
from trainmon.state.series import Downsampled, Series
from trainmon.state.worker import Worker, worker_label
from trainmon_client.protocol import Columns, Record

__all__ = ["RunState"]

_MAX_PEERS: Final = 64
_MAX_CLIENT_ALERTS: Final = 1000
_MAX_ALERTS: Final = 200  # alerts kept (AlertWatch finds them)


@dataclass(slots=True, eq=False, repr=False)
class RunState:
    """Everything received, grouped by run and worker; an undeclared attribute cannot be
    set (slots), so nothing but these methods writes the state.

    Its writers, all methods here: the apply path (:meth:`apply` for one record,
    :meth:`apply_columns` for a batch of metrics records in columns, which takes the
    same steps in a few passes or falls back to ``apply``); the sources' counters
    (:meth:`reject`, :meth:`refuse`, :meth:`note_link`, :meth:`note_recording`,
    :meth:`note_end`); the
    alerts :class:`~trainmon.state.alerts.AlertWatch` finds (:meth:`note_alerts`); and
    which run the dashboard shows (:meth:`choose` for the r key, :meth:`settle` once
    a turn of the dashboard's loops). The view only reads (the memos some reads keep,
    as ``Run.lead`` and ``Series.best`` do, change nothing the state says).
    """

    limits: Limits = field(default_factory=Limits)
    _: KW_ONLY  # a state starts empty: only its limits are given
    runs: dict[str, Run] = field(default_factory=dict)
    records: int = 0  # accepted records
    rejected: int = 0  # messages that failed to decode
    # Records of kinds this monitor does not know (a newer client's): skipped, their
    # sequence numbers counted as received. kind -> count, a few kinds at most.
    skipped: dict[str, int] = field(default_factory=dict)
    last_reject: str | None = None
    rejected_by_peer: dict[str, int] = field(default_factory=dict)
    refused: int = 0  # encrypted handshakes refused (a key not allowed)
    last_refusal: str | None = None
    link_short: str = ""  # what is wrong with the connections made, in a few words
    link_note: str = ""  # and the whole story
    recording_note: str = ""  # why `watch --record` stopped recording, once it has
    duplicates: int = 0
    untracked_runs: int = 0
    forgotten_runs: int = 0  # finished runs let go to make room for new ones
    worker_count: int = 0  # workers across all runs (at most limits.all_workers)
    series_count: int = 0  # series across all runs (at most limits.series)
    # What each series keeps (full-resolution points, buckets), for series_count
    # up to _planned_for (see _plan).
    share: tuple[int, int] = (0, MAX_BUCKETS)
    _planned_for: int = 0
    alerts: list[Alert] = field(default_factory=list)  # raised so far, newest last
    client_alerts: list[Alert] = field(default_factory=list)  # sent by scripts (the latest)
    client_alerts_total: int = 0
    first_record_at: float | None = None  # monitor time of the first record
    last_record_at: float | None = None  # and of the latest
    _shown: str | None = None  # the run shown, as settle() kept it
    _pinned: bool = False  # it was chosen when it had already ended: it stays
    chosen: str | None = None  # the run chosen last (choose())

    def __post_init__(self) -> None:
        self.share = (self.limits.window, MAX_BUCKETS)

    def apply(self, record: Record, now: float) -> bool:
        """Fold one record in; ``now`` is the monitor's clock when it arrived.

        Returns False for a record not taken: a repeat, a heartbeat, or one past a limit.
        """
        found = self._worker(record.run, record.worker, now)
        if found is None:
            return False
        run, worker = found
        kind = record.kind
        if kind == "heartbeat":
            self._counts(worker, record)
            worker.expect_through(record.seq)  # a heartbeat carries the last number used
            return False
        if kind == "hello":
            self._hello_time(run, worker, record)
        if not worker.accept(record.seq):
            self.duplicates += 1
            return False
        self._took(run, worker, 1, record.time, now)
        if kind == "metrics":
            self._metrics(run, worker, record, now)
        else:
            _KINDS.get(kind, RunState._other_kind)(self, run, worker, record, now)
        return True

    def apply_columns(self, columns: Columns, now: float) -> int:
        """Fold in consecutive metrics records given as columns; how many were taken.

        The same result as applying ``columns.records()`` one by one, in a few passes
        per column when the records are all new and their steps do not go down;
        otherwise it does exactly that. Each step is that of :meth:`apply` and
        :meth:`_metrics` for a batch: :meth:`Worker.accept_batch`, :meth:`_took`,
        :meth:`Worker.note_epochs`, :meth:`Worker.advance_batch`, :meth:`Series.extend`.
        """
        count = len(columns.times)
        found = self._worker(columns.run, columns.worker, now, count)
        if found is None:
            return 0
        run, worker = found
        steps = columns.steps
        if columns.seq <= worker.seen_max or not (
            columns.ordered or (None not in steps and steps == sorted(steps))  # type: ignore[type-var]
        ):
            return sum(self.apply(record, now) for record in columns.records())
        worker.accept_batch(columns.seq, count)
        self._took(run, worker, count, min(columns.times), now)
        numbers: list[int] = steps  # type: ignore[assignment]  # no None, checked above
        worker.note_epochs(columns.epochs, numbers, columns.times, not columns.metrics)
        if columns.metrics:
            if not system_only(columns.metrics):  # (sampled, not trained: no progress)
                worker.last_metrics_at = now
                worker.advance_batch(numbers, columns.times)
            for name, values in columns.metrics.items():
                series = worker.series.get(name) or self._new_series(run, worker, name, count)
                if series is not None:
                    series.extend(numbers, values, sorted_steps=True, finite=columns.finite)
        return count

    def _took(self, run: Run, worker: Worker, count: int, earliest: float, now: float) -> None:
        """``count`` records of ``worker`` taken at ``now``, the earliest sent at ``earliest``."""
        self.records += count
        worker.records += count
        run.updated = now
        if self.first_record_at is None:
            self.first_record_at = now
        self.last_record_at = now
        if run.started is None or earliest < run.started:
            run.started = earliest

    def _metrics(self, run: Run, worker: Worker, record: Record, now: float) -> None:
        """A metrics record (a ``set_epoch`` marker if it has no metrics): the steps of
        :meth:`apply_columns` for one record."""
        if record.epoch is not None and record.epoch != worker.epoch:
            worker.note_epoch(record.epoch, record.step, record.time, not record.metrics)
        if not record.metrics:
            return
        step = record.step if record.step is not None else record.seq
        if not system_only(record.metrics):
            worker.last_metrics_at = now
            worker.advance(step, record.time)
        for name, value in record.metrics.items():
            series = worker.series.get(name) or self._new_series(run, worker, name, 1)
            if series is not None:
                series.add(step, value)

    def _hello_time(self, run: Run, worker: Worker, record: Record) -> None:
        """A hello, before its number is checked: when its process started. The same
        host:pid again, started later, is a restarted process (a container's PID 1, a
        requeued job): its numbering starts over."""
        started = worker.hello_time
        if record.seq == 0 and started is not None and record.time > started:
            worker.seen_max, worker.gaps, worker.missed, worker.finished = -1, [], 0, False
            self._parent_ended(run, worker, False)
        worker.hello_time = max(started or record.time, record.time)

    def _hello(self, run: Run, worker: Worker, record: Record, now: float) -> None:
        """A hello taken: who the worker is, its totals, its parent, the run's config
        and summary."""
        info = record.info
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
        summary = info.get("summary")
        if summary is not None and record.time >= run.summary_at:
            run.summary, run.summary_at = summary, record.time
        first_held = info.get("from")
        if first_held is not None:
            worker.not_held_before(first_held)

    def _client_alert(self, run: Run, worker: Worker, record: Record, now: float) -> None:
        """An alert a training script raised (``Monitor.alert()``): kept, the latest 1000."""
        title, text = record.info.get("title", "alert"), record.info.get("text", "")
        said = f"{worker_label(worker)}: {title}" + (f" — {text}" if text else "")
        self.client_alerts.append(Alert(now, run.name, "client", said))
        self.client_alerts_total += 1
        del self.client_alerts[:-_MAX_CLIENT_ALERTS]

    def _bye(self, run: Run, worker: Worker, record: Record, now: float) -> None:
        worker.finished = True
        self._parent_ended(run, worker, True)
        self._counts(worker, record)

    def _other_kind(self, run: Run, worker: Worker, record: Record, now: float) -> None:
        """A newer client's kind of record: counted (a few kinds), not applied."""
        kind = record.kind
        if kind in self.skipped or len(self.skipped) < _MAX_PEERS:
            self.skipped[kind] = self.skipped.get(kind, 0) + 1

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

    def note_end(self) -> None:
        """No more records come (a recording played to its end, its run no longer
        written): the workers that did not say bye are lost, not running nor stalled,
        whatever the clock says (see :attr:`Worker.cut_off`)."""
        for run in self.runs.values():
            run.changes += 1
            run.ended = True
            for worker in run.workers.values():
                worker.cut_off = not worker.finished

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
        return self._to_show()[0]

    def settle(self, wanted: str | None = None) -> Run | None:
        """Keep the run :meth:`current` names as the one shown, from frame to frame: the
        write the dashboard's loops make once a turn, after taking records in. A run
        ``wanted`` (``--run``) that was not chosen yet is chosen once it is known."""
        if wanted is not None and wanted != self.chosen and wanted in self.runs:
            self.choose(wanted)
        run, self._pinned = self._to_show()
        if run is not None:
            self._shown = run.name
        return run

    def _to_show(self) -> tuple[Run | None, bool]:
        """The run to show now (see :meth:`current`) and whether it is pinned there
        (chosen after it had ended); reads only."""
        if not self.runs:
            return None, self._pinned
        latest = max(run.heard for run in self.runs.values())
        shown = self.runs.get(self._shown) if self._shown is not None else None
        if shown is None:
            return self._first_shown(latest), False
        if _live(shown, latest):
            return shown, False
        if self._pinned:
            return shown, True
        others = [r for r in self.runs.values() if r is not shown and _live(r, latest)]
        if not others:
            return shown, False
        return max(others, key=lambda run: run.created), False

    def _first_shown(self, latest: float) -> Run:
        """The run shown first: the newest live run, else the newest not finished, else
        the one heard from last."""
        runs = self.runs.values()
        going = [r for r in runs if _live(r, latest)] or [
            r for r in runs if r.workers and not r.finished
        ]
        if going:
            return max(going, key=lambda run: run.created)
        heard = [r for r in runs if r.workers] or runs
        return max(heard, key=lambda run: run.updated)

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
        run.ended = False  # (heard again after all)
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
        worker.cut_off = False  # (heard again after all)
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

    @staticmethod
    def _counts(worker: Worker, record: Record) -> None:
        """What the client says it dropped and did not record (heartbeat, bye)."""
        counters = record.counters
        worker.client_dropped = max(worker.client_dropped, counters.get("dropped", 0))
        worker.client_unrecorded = max(worker.client_unrecorded, counters.get("unrecorded", 0))

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


# What each kind of record but metrics (the common one) and heartbeat does, once taken.
_KINDS: Final[dict[str, Callable[[RunState, Run, Worker, Record, float], None]]] = {
    "hello": RunState._hello,
    "alert": RunState._client_alert,
    "bye": RunState._bye,
}
