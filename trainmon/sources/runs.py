"""What each kept run was: a summary read from its recordings (status, workers, last
step, main metric), kept beside them in ``.summary.json`` once the run is no longer
running, so that listing a thousand runs reads a thousand small files, not their
recordings.

A run's status is one of :data:`STATUSES`: ``running`` while a process writes one of
its recordings (holds its lock); ``finished`` when every worker said bye and, where
the totals are known (total steps or epochs), reached them; ``ended early`` when every
worker said bye short of its totals; ``crashed/lost`` when a worker never said bye and
no process writes the run any more (killed, crashed, or its machine went down). A
worker superseded by a restart (one that ended before another worker of the run, of
its rank, began: :meth:`~trainmon.state.Run.superseded`, the dashboard's rule) is left
out of that count: a run killed and restarted from a checkpoint under its name is as
its restart ended.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final

from trainmon.names import is_accuracy
from trainmon.sources.recording import load
from trainmon.state import Run, RunState, Worker
from trainmon_client.framing import FileFormatError, tail_frames
from trainmon_client.protocol import ProtocolError, Record, decode_payload
from trainmon_client.store import RunFolder

__all__ = [
    "CACHE",
    "LIVE_READ_BYTES",
    "STATUSES",
    "TAIL_BYTES",
    "MainMetric",
    "RunSummary",
    "summarise",
    "summary_of",
]

CACHE: Final = ".summary.json"
STATUSES: Final = ("running", "finished", "ended early", "crashed/lost")
_VERSION: Final = 2  # a cache written by another version of this module is read again
# A running run is read whole up to this size; past it, only the end of each recording
# (its last step and values, not its best: listing never reads gigabytes).
LIVE_READ_BYTES: Final = 16 * 1024 * 1024
TAIL_BYTES: Final = 1024 * 1024

# The dashboard's choice of a run's main metric, given by the caller (the view is a
# layer of its own): the metric's name and the worker it is read from, or None.
MainMetric = Callable[[Run], "tuple[str, str] | None"]


@dataclass(slots=True)
class RunSummary:
    """One kept run, in the words ``trainmon runs`` prints (see the module docstring)."""

    name: str
    id: str
    path: str
    started: float  # seconds since the epoch
    duration_s: float  # from its first record to its last
    status: str
    workers: int
    last_step: int | None
    metric: str | None  # the main metric, as the dashboard chooses it
    last: float | None  # its last value (None: none; nan or inf as logged)
    best: float | None  # its lowest (a loss, most metrics) or highest (an accuracy)
    higher_is_better: bool
    records: int
    bytes: int

    def as_json(self) -> dict[str, Any]:
        """The summary as ``trainmon runs --json`` gives it: a last value that is not a
        finite number as the dashboard writes it ("nan", "inf", "-inf"; JSON has none)."""
        data = asdict(self)
        if self.last is not None and not math.isfinite(self.last):
            data["last"] = str(self.last)  # (as format_metric writes it)
        return data


def _key(files: Sequence[str]) -> list[list[Any]] | None:
    """What the cache of these recordings is valid for: each one's name, size and
    modification time; None if one cannot be read."""
    try:
        return [
            [os.path.basename(path), info.st_size, info.st_mtime_ns]
            for path in files
            for info in (os.stat(path),)
        ]
    except OSError:
        return None


def summary_of(folder: RunFolder, main_metric: MainMetric) -> RunSummary:
    """The summary of ``folder``'s run: from its cache when the recordings are as they
    were when it was written, else read from them (and cached, the run not running)."""
    live = folder.live()
    key = None if live else _key(folder.files)
    if key is not None:
        cached = _read_cache(folder, key)
        if cached is not None:
            return cached
    summary = summarise(folder, main_metric, live)
    if key is not None and summary.status != "running":
        _write_cache(folder, key, summary)
    return summary


def _read_cache(folder: RunFolder, key: list[list[Any]]) -> RunSummary | None:
    with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
        with open(os.path.join(folder.path, CACHE), encoding="utf-8") as file:
            data = json.load(file)
        if data["version"] == _VERSION and data["key"] == key:
            summary = RunSummary(**data["summary"])
            # the folder may have moved, or its run.json been read since
            summary.path, summary.id, summary.name = folder.path, folder.id, folder.name
            return summary
    return None


def _write_cache(folder: RunFolder, key: list[list[Any]], summary: RunSummary) -> None:
    """Write the cache (0600) beside the recordings; where that fails (a read-only or
    full disk), the run is read again next time, nothing more."""
    temporary = os.path.join(folder.path, f"{CACHE}.{os.getpid()}")
    data = {"version": _VERSION, "key": key, "summary": asdict(summary)}  # (NaN kept)
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(data, file)
        os.replace(temporary, os.path.join(folder.path, CACHE))
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temporary)


def summarise(folder: RunFolder, main_metric: MainMetric, live: bool) -> RunSummary:
    """Read ``folder``'s recordings (what can be read of them) into a summary."""
    partial = live and folder.size > LIVE_READ_BYTES
    records = _read(folder.files, partial)
    state = RunState()
    for record in records:
        state.apply(record, record.time)
    if not live:
        state.note_end()  # a worker without a bye is lost, not running
    run = state.runs.get(folder.name) or max(
        state.runs.values(), key=lambda r: r.records, default=None
    )
    summary = RunSummary(
        name=folder.name,
        id=folder.id,
        path=folder.path,
        started=folder.started,
        duration_s=records[-1].time - records[0].time if records else 0.0,
        status="running" if live else "crashed/lost",
        workers=0,
        last_step=None,
        metric=None,
        last=None,
        best=None,
        higher_is_better=False,
        records=len(records),
        bytes=folder.size,
    )
    if run is not None:
        _fill(summary, run, records, main_metric, live)
    if partial:
        summary.best = None  # (of the end read only: not the run's best)
    return summary


def _read(files: Sequence[str], partial: bool) -> list[Record]:
    """The records of ``files`` in time order (only those in the last
    :data:`TAIL_BYTES` of each when ``partial``); a file just made (no header yet) or
    unreadable is left out."""
    records: list[Record] = []
    for path in files:
        try:
            if partial:
                for payload in tail_frames(path, TAIL_BYTES):
                    with contextlib.suppress(ProtocolError):
                        records += decode_payload(payload)
            else:
                records += load([path]).records
        except (OSError, FileFormatError):
            continue
    records.sort(key=lambda r: r.time)  # (stable: a worker's order is kept)
    return records


def _fill(
    summary: RunSummary,
    run: Run,
    records: list[Record],
    main_metric: MainMetric,
    live: bool,
) -> None:
    """Status, workers, last step and main metric of ``run`` into ``summary``."""
    if not live:
        summary.status = _status(run)
    ranks = run.ranks()
    summary.workers = len(ranks)
    summary.last_step = max((w.step for w in ranks if w.step is not None), default=None)
    chosen = main_metric(run)
    if chosen is None:
        return
    name, worker = chosen
    line = _restarts(run, run.workers[worker])
    if line[-1].step is not None:
        summary.last_step = line[-1].step
    _metric(summary, run.name, name, {w.id for w in line}, records)


def _restarts(run: Run, worker: Worker) -> list[Worker]:
    """``worker`` and the workers that are it killed or restarted (the same rank, or
    both without one; no forked child), by their first record."""
    same = [
        w
        for w in run.workers.values()
        if w.rank == worker.rank and (w.parent is None) == (worker.parent is None)
    ]
    return sorted(same, key=lambda w: w.first_seen)


def _status(run: Run) -> str:
    """``finished``, ``ended early`` or ``crashed/lost``: whether every worker said bye
    (or its parent did), and where the totals are known, reached them. Workers
    superseded by a restart are left out (:meth:`Run.superseded`, the dashboard's
    rule): a process killed and restarted from a checkpoint under the same name is as
    its restart ended."""
    if not run.finished:
        return "crashed/lost"
    progress = run.progress()
    return "finished" if progress is None or progress >= 1.0 else "ended early"


def _metric(
    summary: RunSummary, run: str, name: str, workers: set[str], records: list[Record]
) -> None:
    """The main metric's last and best value, from the records of ``workers`` (every
    value: the state keeps only so many)."""
    values = [
        float(r.metrics[name])
        for r in records
        if r.run == run and r.worker in workers and isinstance(r.metrics.get(name), (int, float))
    ]
    finite = [v for v in values if math.isfinite(v)]
    summary.metric = name
    summary.higher_is_better = is_accuracy(name)
    if values:
        summary.last = values[-1]  # nan or inf too: shown as the dashboard shows it
    if finite:
        summary.best = max(finite) if summary.higher_is_better else min(finite)
