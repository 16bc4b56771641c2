"""One run (every worker publishing under one name) and what follows from its workers:
the lead worker, progress, ETA, throughput, the straggler, the status."""

from __future__ import annotations

from dataclasses import dataclass, field

from trainmon.names import HELD_OUT_LOSS_NAMES, LOSS_NAMES, first_trained
from trainmon.state.limits import LOST_AFTER_S
from trainmon.state.series import Series
from trainmon.state.worker import Worker

__all__ = ["Run"]


@dataclass(slots=True)
class Run:
    """All workers publishing under one run name."""

    name: str
    workers: dict[str, Worker] = field(default_factory=dict)
    metric_names: list[str] = field(default_factory=list)
    started: float | None = None  # earliest record time
    updated: float = 0.0  # monitor time of the last record
    created: float = 0.0  # monitor time of the first record
    heard: float = 0.0  # monitor time of the last record or heartbeat
    untracked_workers: int = 0
    forked: bool = False  # some worker names a parent (see Worker.parent)
    # The hyperparameters one worker sent (see config_items): the lowest rank's, else
    # the first; one per run, as every rank sends the same (and memory stays bounded).
    config: dict[str, str] = field(default_factory=dict)
    config_more: int = 0  # items left out (a map past the limit counts as one)
    config_from: Worker | None = None
    # End-of-run numbers (a hello's summary, from Monitor.set_summary): those of the
    # newest hello of any worker that sent one, by its time; for the exit summary only.
    summary: dict[str, float] = field(default_factory=dict)
    summary_at: float = float("-inf")  # the time of the hello they came in
    ended: bool = False  # its records ended: nothing more comes (RunState.note_end)
    changes: int = 0  # counts records taken (their workers may have changed)
    _lead: tuple[int, Worker | None] = (-1, None)  # lead, as of changes
    _superseded: tuple[int, frozenset[str]] = (-1, frozenset())  # as of changes

    @property
    def lead(self) -> Worker | None:
        """The worker whose curves the dashboard shows. Never a forked child while its
        parent is in the run (a pool process is not the training loop); of the rest,
        those that log the main metric (the loss, else the first metric logged) if any
        do; of those, the ones still going (so a finished process never hides a live
        one, nor does one silent while the run's others are heard: a killed process,
        and its restart under the same run name), else the finished ones; and of those
        the lowest rank, else the first seen. A worker :meth:`superseded` by its
        restart is never the lead. Found again only after a record came (a frame asks
        dozens of times)."""
        if self._lead[0] == self.changes:
            return self._lead[1]
        lead = None
        if self.workers:
            ranks = self.current(self.ranks())
            main = (  # as the view's main metric picks it, short of a choice
                self.find_metric(LOSS_NAMES)
                or self.find_metric(HELD_OUT_LOSS_NAMES)
                or first_trained(self.metric_names)
            )
            if main is not None:
                ranks = [w for w in ranks if main in w.series] or ranks
            going = [
                w for w in ranks if not w.finished and self.updated - w.last_seen <= LOST_AFTER_S
            ]  # else the finished ones (a killed process never outranks its restart)
            going = going or [w for w in ranks if w.finished] or ranks
            lead = min(going, key=lambda w: (w.sort_key()[:2], w.first_seen))
        self._lead = (self.changes, lead)
        return lead

    def superseded(self) -> frozenset[str]:
        """The ids of the workers restarted since: a worker that ended (said bye, went
        silent for ``LOST_AFTER_S``, or its records ended) before another worker of the
        run first appeared, of the same rank where ranks are given (ranks running
        together never supersede each other), is superseded by it. A worker given a
        rank is superseded as soon as another of its rank appears after its last
        record (torchrun elastic restarts every rank: the new one leads at once); a
        forked child with its parent, or by a later child once it ended. A superseded
        worker is not the lead and decides neither the run's progress nor its status:
        a run killed and restarted from a checkpoint under its name is as its restart
        is. Found again only after a record came."""
        if self._superseded[0] == self.changes:
            return self._superseded[1]
        newest: dict[tuple[int | None, bool], float] = {}  # latest first record, by group
        for worker in self.workers.values():
            group = (worker.rank, worker.parent is None)
            newest[group] = max(newest.get(group, worker.first_seen), worker.first_seen)
        gone = set()
        for worker in self.workers.values():
            ended = (
                (worker.rank is not None and worker.parent is None)  # (a pool child: no)
                or worker.finished
                or worker.cut_off
                or self.heard - worker.last_seen > LOST_AFTER_S
            )
            if ended and newest[(worker.rank, worker.parent is None)] > worker.last_seen:
                gone.add(worker.id)
        if gone and self.forked:
            gone |= {w.id for w in self.workers.values() if w.parent in gone}
        found = frozenset(gone)
        self._superseded = (self.changes, found)
        return found

    def current(self, workers: list[Worker]) -> list[Worker]:
        """``workers`` but those :meth:`superseded` (all of them if every one is)."""
        gone = self.superseded()
        if not gone:
            return workers
        return [w for w in workers if w.id not in gone] or workers

    def ranks(self) -> list[Worker]:
        """The workers but forked children whose parent is in the run."""
        workers = self.workers
        if not self.forked:
            return list(workers.values())
        out = [w for w in workers.values() if w.parent is None or w.parent not in workers]
        return out or list(workers.values())

    def _current(self) -> list[Worker]:
        """The workers but those a restart superseded: whose totals count."""
        return self.current(list(self.workers.values()))

    @property
    def total_epochs(self) -> int | None:
        return max((w.total_epochs for w in self._current() if w.total_epochs), default=None)

    @property
    def epochs_total(self) -> int | float | None:
        """The total epochs as sent: fractional where a worker's is (hello epochs_f)."""
        return max(
            (w.total_epochs_f or w.total_epochs for w in self._current() if w.total_epochs),
            default=None,
        )

    @property
    def total_steps(self) -> int | None:
        """The total steps sent, by the workers a restart did not supersede (a run
        restarted with new totals goes by them)."""
        return max((w.total_steps for w in self._current() if w.total_steps), default=None)

    @property
    def finished(self) -> bool:
        """Every worker has said bye (a forked child, or its parent has), but those
        superseded by a restart (see :meth:`superseded`)."""
        return bool(self.workers) and all(
            w.finished or w.parent_ended for w in self.current(list(self.workers.values()))
        )

    @property
    def missed(self) -> int:
        return sum(w.missed for w in self.workers.values())

    @property
    def records(self) -> int:
        """Records taken in for this run."""
        return sum(w.records for w in self.workers.values())

    @property
    def client_dropped(self) -> int:
        return sum(w.client_dropped for w in self.workers.values())

    @property
    def client_unrecorded(self) -> int:
        return sum(w.client_unrecorded for w in self.workers.values())

    @property
    def not_resent(self) -> int:
        return sum(w.not_resent for w in self.workers.values())

    @property
    def outages(self) -> tuple[int, float]:
        """How many times workers went silent and came back, and the longest silence."""
        workers = self.workers.values()
        return (
            sum(w.outages for w in workers),
            max((w.longest_outage_s for w in workers), default=0.0),
        )

    def throughput(self, now: float, stall_after_s: float) -> dict[str, float]:
        """Summed over the running workers (forked children left out): steps/s (of the
        lead), samples/s, tokens/s."""
        total: dict[str, float] = {}
        for worker in self.ranks():
            if worker.status(now, stall_after_s) != "running":
                continue
            for unit, rate in worker.throughput().items():
                total[unit] = total.get(unit, 0.0) + rate
        lead = self.lead
        if "steps" in total and lead is not None:
            lead_rate = lead.steps_per_s
            if lead_rate is None:
                del total["steps"]
            else:
                total["steps"] = lead_rate  # steps are shared by data-parallel ranks
        return total

    def straggler(self, now: float, stall_after_s: float) -> Worker | None:
        """The running worker furthest behind the others, if it is clearly behind: more
        than a few seconds of steps behind the median, or under 80% of the median rate
        (forked children, which do other work, left out)."""
        running = [
            w
            for w in self.ranks()
            if w.step is not None and w.status(now, stall_after_s) == "running"
        ]
        if len(running) < 2:
            return None
        steps = sorted(w.step for w in running if w.step is not None)
        median_step = steps[len(steps) // 2]
        rates = sorted(r for w in running if (r := w.steps_per_s))
        median_rate = rates[len(rates) // 2] if rates else None
        slowest = min(running, key=lambda w: (w.step or 0, w.steps_per_s or 0.0))
        behind = median_step - (slowest.step or 0)
        return slowest if _clearly_behind(slowest, behind, median_rate) else None

    def status(self, now: float, stall_after_s: float) -> str:
        """The run's status: the most hopeful of its workers' statuses (but those
        superseded by a restart: a killed process restarted is not lost)."""
        workers = self.current(list(self.workers.values()))
        statuses = {w.status(now, stall_after_s) for w in workers}
        for status in ("running", "stalled", "lost", "finished"):
            if status in statuses:
                return status
        return "waiting"

    def series(self, name: str) -> Series | None:
        lead = self.lead
        return None if lead is None else lead.series.get(name)

    def find_metric(self, names: tuple[str, ...]) -> str | None:
        """The first of ``names`` this run logs (matching case-insensitively)."""
        lowered = {n.lower(): n for n in self.metric_names}
        for name in names:
            if name in lowered:
                return lowered[name]
        return None

    def epoch_label(self) -> str | None:
        """The lead's epoch as the screen shows it (– if not known yet) over the total
        epochs, or None if neither is known.

        Whole epochs come counted from 0 (``set_epoch(0)`` starts the first) and are
        shown counted from 1: epoch 1 of 3 is "1/3" from its first step to its last. A
        fractional epoch (the Hugging Face Trainer's) is the number of epochs done so
        far and is shown as it is: 2.5 of 3 is "2.5/3", halfway through the third; once
        a worker has sent one, its whole epochs are read the same way (the Trainer's
        2.0 travels as 2). A total may be fractional too (hello ``epochs_f``)."""
        lead, total = self.lead, self.epochs_total
        if lead is None or lead.epoch is None:
            return f"–/{_number(total)}" if total else None
        shown = _number(lead.epoch) if lead.fractional else f"{lead.epoch + 1:,}"
        return f"{shown}/{_number(total)}" if total else shown

    def past_total(self) -> bool:
        """The lead's epoch is past the total epochs ("epoch 3/2": epochs counted from
        1 by ``set_epoch``, or a total that is too small)."""
        lead, total = self.lead, self.epochs_total
        if lead is None or lead.epoch is None or not total:
            return False
        return lead.epoch > total if lead.fractional else lead.epoch >= total

    def progress(self) -> float | None:
        """The fraction of the run done, or None if not known.

        From the steps where the total steps are known. Else from the epochs done
        (:meth:`Worker.epochs_done`: whole epochs and the share of the current one from
        the steps per epoch seen) over the total epochs: not known in the first epoch
        seen, before any epoch has ended, nor past the total (see :meth:`past_total`).
        """
        lead = self.lead
        if lead is None:
            return None
        fraction: float | None = None
        if self.total_steps and lead.step is not None:
            fraction = min((lead.step + 1) / self.total_steps, 1.0)
            if self.finished and self.total_steps - lead.step - 1 < max(lead.step_gap, 1):
                return 1.0  # the last step was logged (steps logged every N: within N)
        elif self.epochs_total and lead.epoch is not None:
            total = self.epochs_total
            if self.finished and self._last_epoch_ended(lead, total):
                return 1.0
            done = lead.epochs_done()
            if self.finished and done is None and not lead.fractional:
                done = float(lead.epoch)  # whole epochs done: all that is known
            if done is not None and not self.past_total():
                fraction = min(done / total, 1.0)
        if self.finished:  # done; or ended early (stopped, or crashed with a bye)
            return 1.0 if fraction is None else fraction
        return fraction

    @staticmethod
    def _last_epoch_ended(lead: Worker, total: float) -> bool:
        """The lead's records reached the end of the last epoch (within the steps
        between two records, for fractional epochs logged every N steps)."""
        if lead.epoch is None:
            return False
        if not lead.fractional:
            return lead.epoch + 1 >= total
        per_epoch = lead.steps_per_epoch()
        left = total - lead.epoch
        return left <= 0 or (per_epoch is not None and left * per_epoch < lead.step_gap + 1)

    def eta_s(self) -> float | None:
        """Seconds left: the steps left at the recent step rate (see
        :attr:`Worker.steps_per_s`). The steps left come from the total steps, else
        from the epochs left and the steps per epoch seen; not known before an epoch
        has ended, nor while an epoch runs longer than the ones before (it would say
        00:00 for as long as that lasts)."""
        lead = self.lead
        if lead is None or self.finished:
            return None
        rate = lead.steps_per_s
        if not rate:
            return None
        if self.total_steps and lead.step is not None:
            return max(self.total_steps - lead.step - 1, 0) / rate
        total, per_epoch = self.epochs_total, lead.steps_per_epoch()
        if not total or not per_epoch or lead.epoch is None or self.past_total():
            return None
        if lead.fractional:
            return max(total - lead.epoch, 0.0) * per_epoch / rate
        share = lead.epoch_share()
        if share is None or share > 1.0:
            return None
        return max(total - lead.epoch - share, 0.0) * per_epoch / rate


def _clearly_behind(worker: Worker, behind: int, median_rate: float | None) -> bool:
    """``worker``, ``behind`` steps behind the median, is clearly behind: by more than
    three seconds of steps at the median rate (and 2), or at all while under 80% of
    that rate; by more than 10 steps while no rate is known."""
    if not median_rate:
        return behind > 10
    rate = worker.steps_per_s
    slow = rate is not None and rate < 0.8 * median_rate
    return behind > max(3 * median_rate, 2) or (slow and behind > 0)


def _number(value: float) -> str:
    """A count of epochs as a person writes it: 3, 2.5, 0.33."""
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:.2f}".rstrip("0").rstrip(".")
