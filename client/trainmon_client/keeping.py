"""Where a Monitor's recording goes: the file ``record_to`` names, or, by default, this
worker's file in its run's folder under the data directory (see store.py).

Everything that touches the disk for a run kept by default happens on the recording's
own thread (see framing.BackgroundWriter): choosing the run's folder, reading where the
run it continues left off, opening the file (0600, locked while written) and pruning
the oldest runs to the budget. A disk that is full, unwritable or hung stops the
recording there, said in one line; training and publishing never wait for it (the I/O
thread waits at most :data:`CONTINUE_WAIT_S`, once, to learn the step to continue from).

The rule for continuing: a process whose run name was given (``run=`` or
``$TRAINMON_RUN``) and matches a folder that is live or was written within
``store.CONTINUE_S`` continues that folder, and its automatic steps go on after the last
step recorded there by processes that have ended (a run restarted from a checkpoint);
ranks of one job, writing together, share the folder and leave each other's steps alone.
Continuing a kept run that no process is writing is never silent: one line says so at
the start (a name reused by mistake merges two experiments), and the closing line too.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import threading
import time
from typing import Final

from trainmon_client import store
from trainmon_client.framing import BackgroundWriter, FileFormatError, tail_frames
from trainmon_client.logs import say
from trainmon_client.protocol import ProtocolError, decode_payload

__all__ = [
    "CONTINUE_WAIT_S",
    "KeptRun",
    "child_record_to",
    "closing_fate",
    "keep_plan",
    "last_step",
    "make_writer",
]

CONTINUE_WAIT_S: Final = 0.5  # the longest the I/O thread waits for the step to continue from
_TAIL_BYTES: Final = 1024 * 1024  # bytes read from the end of each recording for its last step
_said_budget = False  # a bad $TRAINMON_BUDGET is said once per process


class KeptRun:
    """This worker's place in its run's folder, chosen by :meth:`open` on the
    recording's thread; ``folder`` given (a forked child's parent's) is used as it is."""

    def __init__(self, run: str, worker: str, *, explicit: bool, folder: str | None = None):
        self.run = run
        self.worker = worker
        self.explicit = explicit  # the run name was given: a restart continues its steps
        self.folder = folder
        self.continued = folder is not None
        self.resumed = False  # continues a kept run no process was writing (said at start)
        self.last_step: int | None = None  # where the run this one continues left off
        self.ready = threading.Event()  # set once the folder and the last step are known

    def open(self) -> tuple[str, int]:
        """(On the recording's thread.) Choose the folder, learn the step to continue
        from, open this worker's file and prune older runs to the budget."""
        own = ""
        try:
            if self.folder is None:
                self.folder, self.continued = store.choose_folder(self.run)
                own = store.worker_file(self.folder, self.worker)
                if self.continued and self.explicit:
                    self.last_step = last_step(self.folder, skip=own)
                if self.continued:
                    self._say_resumed(own)
        finally:
            self.ready.set()
        path = own or store.worker_file(self.folder, self.worker)
        fd = store.open_worker_file(path)
        _prune(self.folder)
        return path, fd

    def _say_resumed(self, own: str) -> None:
        """Say that this process continues a kept run, when no process writes its folder
        (a rank joining its job's live folder, or one just made, is said nothing)."""
        assert self.folder is not None
        written = _resumable(self.folder, own)
        if written is None:
            return
        self.resumed = True
        steps = "" if self.last_step is None else f"; steps go on from {self.last_step + 1}"
        say(
            f"continuing run {self.run!r} kept in {self.folder} (last written "
            f"{_ago(time.time() - written)}{steps}): give another name (run= or "
            "TRAINMON_RUN) for a new run"
        )

    def replay_hint(self) -> str:
        """How to see the run again."""
        return f"`trainmon replay {shlex.quote(self.run)}`"


def keep_plan(record: bool | None, given: str | None, run: str) -> KeptRun | None:
    """Whether a Monitor keeps its run by default (``record``, else
    ``$TRAINMON_RECORD``): a KeptRun without a worker yet, else None. ``given`` is the
    ``run=`` argument (a name given there or in ``$TRAINMON_RUN`` can continue a run)."""
    if not store.recording_wanted(record):
        return None
    explicit = given is not None or bool(os.environ.get("TRAINMON_RUN", "").strip())
    return KeptRun(run, "", explicit=explicit)


def make_writer(
    record_to: str | None, plan: KeptRun | None, worker: str
) -> tuple[BackgroundWriter | None, KeptRun | None]:
    """The recording's writer and the run it keeps: to ``record_to`` when given (it
    wins; nothing is kept then), else into the run's folder when kept (a forked child's
    plan is its parent's run: the same folder), else none."""
    if record_to is not None:
        # Opened and written on a thread of its own: a full, slow or hung disk
        # holds up neither training nor publishing (see BackgroundWriter).
        return BackgroundWriter(os.path.abspath(record_to), say), None
    if plan is None:
        return None, None
    kept = KeptRun(plan.run, worker, explicit=plan.explicit, folder=plan.folder)
    return BackgroundWriter(store.runs_dir(), say, opener=kept.open), kept


def child_record_to(record_to: str | None) -> str | None:
    """A forked child's ``record_to``: its parent's with ``.PID`` before the suffix."""
    if record_to is None:
        return None
    stem, suffix = os.path.splitext(record_to)
    return f"{stem}.{os.getpid()}{suffix}"


def last_step(folder: str, skip: str = "") -> int | None:
    """The last step recorded in ``folder`` by workers that have ended (a bounded read
    of the end of each recording; ``skip``, this worker's own, is left out)."""
    best: int | None = None
    with contextlib.suppress(OSError), os.scandir(folder) as found:
        for entry in found:
            path = entry.path
            if not entry.name.endswith(store.SUFFIX) or path == skip or store.is_live(path):
                continue
            step = _file_last_step(path)
            if step is not None and (best is None or step > best):
                best = step
    return best


def _resumable(folder: str, own: str) -> float | None:
    """When the recordings of ``folder`` (``own`` left out) were last written, if it has
    some and no process writes any of them; else None."""
    newest: float | None = None
    with contextlib.suppress(OSError), os.scandir(folder) as found:
        for entry in found:
            if not entry.name.endswith(store.SUFFIX) or entry.path == own:
                continue
            if store.is_live(entry.path):
                return None
            written = entry.stat(follow_symlinks=False).st_mtime
            newest = written if newest is None else max(newest, written)
    return newest


def _ago(seconds: float) -> str:
    """A time past in short words: ``40 s ago``, ``2 min ago``, ``3 h ago``."""
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.0f} s ago"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def closing_fate(writer: BackgroundWriter | None, kept: KeptRun | None) -> str | None:
    """What became of a run's records, for the closing nobody-watched line: kept (in a
    run continued, or not), not kept and why; None when ``record_to`` recorded them."""
    recorded = writer is not None and writer.opened and not writer.unrecorded
    if recorded and kept is not None:
        if kept.resumed:
            return (
                f"were kept in {kept.folder} with the run they continued "
                f"({kept.replay_hint()} shows both)"
            )
        return f"were kept in {kept.folder} ({kept.replay_hint()} shows them)"
    if writer is None:
        return "were not kept (keeping runs is off: Monitor(record=False) or TRAINMON_RECORD=0)"
    if not recorded:
        some = "all " if writer.opened else ""
        return f"were not {some}kept (keeping them failed, as said above)"
    return None


def _file_last_step(path: str) -> int | None:
    """The highest step among the records at the end of one recording."""
    best: int | None = None
    with contextlib.suppress(OSError, FileFormatError):
        for payload in tail_frames(path, _TAIL_BYTES):
            try:
                records = decode_payload(payload)
            except (ProtocolError, ValueError, TypeError):
                continue
            for record in records:
                if record.kind == "metrics" and record.step is not None:
                    best = record.step if best is None else max(best, record.step)
    return best


def _prune(folder: str) -> None:
    """Remove the oldest finished runs past the budget, this one kept; say what went."""
    global _said_budget
    budget, problem = store.budget_bytes()
    if problem and not _said_budget:
        _said_budget = True
        say(problem)
    try:
        removed = store.prune(budget, root=os.path.dirname(folder), keep=[folder])
    except OSError as exc:
        say(f"cannot prune old runs in {os.path.dirname(folder)}: {exc}")
        return
    if removed:
        names = ", ".join(f"{run.name} ({run.id})" for run in removed[:5])
        more = f" and {len(removed) - 5} more" if len(removed) > 5 else ""
        say(
            f"removed {len(removed)} old run(s) from {os.path.dirname(folder)} to keep it "
            f"within its budget of {_size(budget)} ($TRAINMON_BUDGET): {names}{more}"
        )


def _size(count: int) -> str:
    """Bytes in a short human form."""
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{count} bytes"
