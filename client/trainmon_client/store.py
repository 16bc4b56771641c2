"""Where runs are kept: one folder per run under this user's data directory, holding one
recording per worker (the format of :mod:`trainmon_client.framing`).

The layout, shared by the publisher (which writes it) and the monitor (which lists,
reads, compares and prunes it)::

    $TRAINMON_DIR (default $XDG_DATA_HOME/trainmon, else ~/.local/share/trainmon)
      runs/
        20261206-184836_my-run/        a run: its start, then its name made safe
          run.json                     {"name": ..., "started": ..., "host": ...}
          host_4242.tmr                one worker's records (host:pid, made safe)

Folders are made 0700 and files 0600. A process writing a recording holds an
exclusive ``flock`` on it while it lives: a run with a locked file is running, and the
lock goes with the process however it ends (a SIGKILL included).

A run is more than its name: a process whose run name matches a folder whose files
were written within the last :data:`CONTINUE_S` seconds continues that folder (the ranks
of one job meet there, and so does a run restarted from a checkpoint under the same
name); later, the same name starts another run.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import socket
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "AmbiguousRun",
    "CONTINUE_S",
    "DEFAULT_BUDGET",
    "META",
    "RunFolder",
    "budget_bytes",
    "choose_folder",
    "data_dir",
    "find_runs",
    "is_live",
    "lock_file",
    "open_worker_file",
    "parse_size",
    "prune",
    "recording_wanted",
    "remove",
    "runs_dir",
    "safe",
    "scan",
    "worker_file",
]

ENV_DIR: Final = "TRAINMON_DIR"
ENV_RECORD: Final = "TRAINMON_RECORD"
ENV_BUDGET: Final = "TRAINMON_BUDGET"
DEFAULT_BUDGET: Final = 4 * 1024**3  # bytes the runs may take before the oldest go
CONTINUE_S: Final = 3600.0
META: Final = "run.json"
SUFFIX: Final = ".tmr"
_SAFE: Final = re.compile(r"[^A-Za-z0-9._-]+")
_STAMP: Final = "%Y%m%d-%H%M%S"
_UNITS: Final = {
    "": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2,
    "mib": 1024**2, "g": 1000**3, "gb": 1000**3, "gib": 1024**3, "t": 1000**4,
    "tb": 1000**4, "tib": 1024**4,
}  # fmt: skip
_OFF: Final = frozenset({"0", "false", "no", "off"})


def data_dir(environ: Mapping[str, str] | None = None) -> str:
    """This user's trainmon data directory: ``$TRAINMON_DIR``, else trainmon under the
    XDG data home (``$XDG_DATA_HOME``, else ``~/.local/share``)."""
    env = os.environ if environ is None else environ
    given = env.get(ENV_DIR, "").strip()
    if given:
        return os.path.abspath(os.path.expanduser(given))
    base = env.get("XDG_DATA_HOME", "").strip()
    if not base or not os.path.isabs(base):  # (the XDG rule: a relative one is ignored)
        base = os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "trainmon")


def runs_dir(environ: Mapping[str, str] | None = None) -> str:
    """The folder holding one folder per run."""
    return os.path.join(data_dir(environ), "runs")


def recording_wanted(record: bool | None, environ: Mapping[str, str] | None = None) -> bool:
    """Whether a run is kept: ``record`` when given, else not when ``$TRAINMON_RECORD``
    is 0, false, no or off, else yes."""
    if record is not None:
        return bool(record)
    env = os.environ if environ is None else environ
    return env.get(ENV_RECORD, "").strip().lower() not in _OFF


def budget_bytes(environ: Mapping[str, str] | None = None) -> tuple[int, str | None]:
    """The bytes runs may take (``$TRAINMON_BUDGET``, e.g. ``500MB``, ``4GiB``; 0 for no
    limit), and a problem to say if the variable could not be read (the default used)."""
    env = os.environ if environ is None else environ
    text = env.get(ENV_BUDGET, "").strip()
    if not text:
        return DEFAULT_BUDGET, None
    parsed = parse_size(text)
    if parsed is None:
        return DEFAULT_BUDGET, (
            f"{ENV_BUDGET}={text!r} is not a size (e.g. 500MB, 4GiB, 0 for no limit); "
            f"using {DEFAULT_BUDGET // 1024**3} GiB"
        )
    return parsed, None


def parse_size(text: str) -> int | None:
    """``text`` as bytes (``500MB``, ``4GiB``, ``1.5G``, ``1024``), or None."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([A-Za-z]*)\s*", text)
    if match is None or match.group(2).lower() not in _UNITS:
        return None
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def safe(text: str, limit: int = 80) -> str:
    """``text`` as a file name part: letters, digits, ``._-``, the rest as ``_``."""
    cleaned = _SAFE.sub("_", text).strip("._") or "run"
    return cleaned[:limit]


def worker_file(folder: str, worker: str) -> str:
    """The recording of ``worker`` in the run folder ``folder``."""
    return os.path.join(folder, safe(worker, 120) + SUFFIX)


@dataclass(slots=True)
class RunFolder:
    """One kept run, as its folder tells: name, start, recordings, bytes, last write."""

    path: str
    name: str
    started: float
    host: str = ""
    files: list[str] = field(default_factory=list)
    size: int = 0
    written: float = 0.0  # the newest modification time of its recordings

    @property
    def id(self) -> str:
        """The folder's name: unique, where the run's name may be shared."""
        return os.path.basename(self.path)

    def live(self) -> bool:
        """Whether a process is writing one of its recordings now."""
        return any(is_live(path) for path in self.files)


def scan(root: str | None = None) -> list[RunFolder]:
    """Every run kept under ``root`` (default :func:`runs_dir`), newest first. A folder
    that is not a run's is left out."""
    root = runs_dir() if root is None else root
    try:
        with os.scandir(root) as found:
            entries = list(found)
    except OSError:
        return []
    runs = [run for entry in entries if (run := _read_folder(entry)) is not None]
    runs.sort(key=lambda run: (run.started, run.id), reverse=True)
    return runs


def _read_folder(entry: os.DirEntry[str]) -> RunFolder | None:
    if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
        return None
    stamp, _, rest = entry.name.partition("_")
    try:
        started = time.mktime(time.strptime(stamp, _STAMP))
    except ValueError:
        return None
    run = RunFolder(entry.path, rest or entry.name, started)
    with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
        with open(os.path.join(entry.path, META), encoding="utf-8") as file:
            meta = json.load(file)
        run.name = str(meta["name"])
        run.started = float(meta["started"])
        run.host = str(meta.get("host", ""))
    with contextlib.suppress(OSError), os.scandir(entry.path) as found:
        for item in found:
            if item.name.endswith(SUFFIX) and item.is_file(follow_symlinks=False):
                info = item.stat(follow_symlinks=False)
                run.files.append(item.path)
                run.size += info.st_size
                run.written = max(run.written, info.st_mtime)
    run.files.sort()
    run.written = run.written or run.started
    return run


def is_live(path: str) -> bool:
    """Whether a process holds the lock of the recording at ``path`` (is writing it)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
    return False


def lock_file(fd: int) -> None:
    """Mark the recording open on ``fd`` as being written (until the process ends or
    closes it). Where locks are not supported, the run shows as not running."""
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def open_worker_file(path: str) -> int:
    """Open (or create, 0600) a recording to append to, locked as being written."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    lock_file(fd)
    return fd


def choose_folder(run: str, now: float | None = None, root: str | None = None) -> tuple[str, bool]:
    """The folder where this process keeps run ``run``, made if new, and whether it
    continues a folder already there (see the module's rule)."""
    now = time.time() if now is None else now
    root = runs_dir() if root is None else root
    _private_dirs(root)
    for kept in scan(root):
        if kept.name == run and (kept.live() or now - kept.written < CONTINUE_S):
            return kept.path, True
    base = f"{time.strftime(_STAMP, time.localtime(now))}_{safe(run)}"
    for attempt in range(100):
        path = os.path.join(root, base if attempt == 0 else f"{base}-{attempt + 1}")
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            if _named(path) == run and _fresh(path, now):  # another rank, the same second
                return path, True
            continue
        _write_meta(path, run, now)
        return path, False
    raise OSError(errno.EEXIST, f"no free folder name for run {run!r} in {root}")


def _private_dirs(root: str) -> None:
    """Make ``root`` and the data directory above it, 0700, where they are missing (one
    that exists is left as it is: the run folders in it are 0700 themselves)."""
    data = os.path.dirname(root)
    if not os.path.isdir(data):
        os.makedirs(os.path.dirname(data), exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.mkdir(data, 0o700)
    with contextlib.suppress(FileExistsError):
        os.mkdir(root, 0o700)


def _fresh(path: str, now: float) -> bool:
    """Whether a folder may be continued: no recording yet (just made), one being
    written, or one written within :data:`CONTINUE_S`."""
    newest = 0.0
    with contextlib.suppress(OSError), os.scandir(path) as found:
        for item in found:
            if item.name.endswith(SUFFIX):
                if is_live(item.path):
                    return True
                newest = max(newest, item.stat(follow_symlinks=False).st_mtime)
    return not newest or now - newest < CONTINUE_S


def _named(path: str) -> str | None:
    """The run name a folder's meta file gives (waiting briefly for a new one)."""
    for _ in range(20):
        with (
            contextlib.suppress(OSError, ValueError, TypeError, KeyError),
            open(os.path.join(path, META), encoding="utf-8") as file,
        ):
            return str(json.load(file)["name"])
        time.sleep(0.01)
    return None


def _write_meta(folder: str, run: str, started: float) -> None:
    meta = {"name": run, "started": started, "host": socket.gethostname()}
    temporary = os.path.join(folder, f".{META}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        json.dump(meta, file)
    os.replace(temporary, os.path.join(folder, META))


class AmbiguousRun(LookupError):
    """A run named by a prefix several runs share; ``matches`` are those runs."""

    def __init__(self, query: str, matches: Sequence[RunFolder]) -> None:
        super().__init__(query)
        self.query = query
        self.matches = list(matches)


def find_runs(query: str, runs: Iterable[RunFolder]) -> list[RunFolder]:
    """The runs ``query`` names, newest first: a folder's name (one run); else a run
    name (every run of that name: the newest is the one meant); else the runs whose
    name or folder name starts with it. Empty if none; :class:`AmbiguousRun` if a
    prefix fits runs of several names."""
    every = list(runs)
    for run in every:
        if run.id == query:
            return [run]
    named = [run for run in every if run.name == query]
    if named:
        return named
    prefixed = [run for run in every if run.name.startswith(query) or run.id.startswith(query)]
    if len({run.name for run in prefixed}) > 1:
        raise AmbiguousRun(query, prefixed)
    return prefixed


def prune(
    budget: int, root: str | None = None, keep: Sequence[str] = (), *, dry_run: bool = False
) -> list[RunFolder]:
    """Remove the oldest runs that are not running until the runs fit ``budget`` bytes
    (0: no limit); the runs removed (with ``dry_run``, those that would be, none
    removed). Folders in ``keep`` stay."""
    if budget <= 0:
        return []
    runs = scan(root)
    total = sum(run.size for run in runs)
    removed: list[RunFolder] = []
    kept = {os.path.abspath(path) for path in keep}
    for run in reversed(runs):  # oldest first
        if total <= budget:
            break
        if os.path.abspath(run.path) in kept or run.live():
            continue
        if dry_run or remove(run):
            total -= run.size
            removed.append(run)
    return removed


def remove(run: RunFolder) -> bool:
    """Delete a run's folder; whether it is gone."""
    shutil.rmtree(run.path, ignore_errors=True)
    return not os.path.exists(run.path)
