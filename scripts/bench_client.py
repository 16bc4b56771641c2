"""Benchmark ``Monitor.log()`` against two baselines; prints two tables and exits 0.

Run ``python scripts/bench_client.py [--calls N] [--quick]``. Each call
``fn(loss=x, accuracy=y, grad_norm=z)`` is timed alone with ``perf_counter_ns``, gc off,
nothing subtracted (the first row is the timer's own back-to-back cost). (a) is an empty
function with ``log``'s signature; (b) builds the record the client sends, packs it with
``msgpack.packb`` and sends it with ``send_multipart(NOBLOCK)``, one message per record,
to the reading monitor (an XPUB used as a PUB, only to wait for the subscription). Each
log() row has a fresh Monitor: (i) connected to a free port nobody binds; (ii) a real
``python -m trainmon watch --plain`` subprocess reading; (iii) another, SIGSTOPped 1 s
after it subscribed; (iv) 4 threads logging into one Monitor, calls split evenly, times
merged (the 4-thread empty call shows the GIL's part). Before each row the script waits
for the monitors to be idle. Pacings: "paced" busy-waits 5 us after each call holding the
GIL, as pure-Python code does, so the I/O thread only gets it by a forced switch;
"bursts" makes 100 calls then sleeps 0.5 ms with the GIL free, as a step in C/CUDA code
does; "flat" never pauses. drops = ``Monitor.dropped`` (queue full); backlog = records
still queued after the last call (how far behind the I/O thread was); CPU =
``time.process_time()`` (all threads: caller, I/O thread, ZeroMQ's) over the row,
``close()`` included, per call, and net of the empty call with the same pacing.
Targets per log() row, vs the baselines of the same pacing: median <= 3x empty call,
median <= 0.5x bare pack+send, p99.9 < 50 us, max < 2 ms; net CPU per call below bare
pack+send's. On a shared machine medians move by up to 2x between runs, and p99.9 and
max are single samples of scheduler and GIL noise (compare the timer and empty-call
rows): re-run before trusting a MISS.

Table 3 (also alone with ``--ab``) is a same-run A/B of ``log()`` against the client
of commit 34b172e or ``--ab-base COMMIT`` (taken with ``git archive`` and imported
under another name, so both run in this process): blocks of calls alternate A B B A,
so the machine's load falls on both alike; nobody listening, "bursts" pacing. Rows:
three Python floats (target: B - A <= +0.1 us median), a 0-d numpy array and a 0-d
CPU torch tensor as ``loss`` (where installed; the new client reads these at the
call, the old one read them later on its I/O thread, which could publish a later value).

Table 5 (also alone with ``--track``): what ``for item in mon.track(items)`` costs
per step against the same loop without it, with an empty body and with a ``log()`` in
it; nobody listening, blocks alternating A B B A, a fresh Monitor each; wall time per
step on the loop's thread, and CPU per step of every thread with ``close()`` included.

Table 4 (also alone with ``--record``): log() with and without ``record_to``, in the
same run, rows alternating, a monitor reading: latency percentiles, drops, CPU per
call (every thread) and the frames written.

Table 6 (also alone with ``--keep``): log() with the run kept by default (as every
Monitor now does unless ``record=False``) and without, in the same run, rows
alternating off, kept, kept, off, nobody listening (the case keeping is for): latency
percentiles, drops, CPU per call of every thread (``close()`` included), and the CPU
per record of the I/O thread and of the recording's thread, read from each thread's
own CPU clock (``time.pthread_getcpuclockid``) once all is written.

Runs are kept in a temporary data directory of the script's own (never the user's),
and tables 1 to 5 run with keeping off (``TRAINMON_RECORD=0``), as they were measured
before it was the default: table 6 is the difference.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import zmq

from trainmon_client import Monitor

X, Y, Z = 0.4321, 0.8765, 1.2345
SPIN_NS, BURST, BURST_SLEEP_S, THREADS = 5_000, 100, 0.0005, 4
PACINGS = {
    "paced": "5 us busy-wait after each call (GIL held)",
    "bursts": f"{BURST} calls, then {BURST_SLEEP_S * 1e3:g} ms sleep (GIL free)",
    "flat": "back to back",
}
VERDICT = {True: "PASS", False: "MISS"}
LogFn = Callable[..., None]
WATCHERS: list[subprocess.Popen[bytes]] = []  # running `trainmon watch`es, for settle()


def empty(
    metrics: Any = None, /, *, step: int | None = None, epoch: int | None = None, **named: Any
) -> None:
    """Baseline (a): the shape of ``Monitor.log``, doing nothing."""


class BareSender:
    """Baseline (b): the record ``log()`` would produce, packed and sent inline."""

    def __init__(self, endpoint: str) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.XPUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        if not self.sock.poll(15_000):  # the monitor's subscription: now sends are delivered
            print("warning: bare sender saw no subscription; sends may be dropped")
        self.seq = 0

    def __call__(
        self,
        metrics: Any = None,
        /,
        *,
        step: int | None = None,
        epoch: int | None = None,
        **named: Any,
    ) -> None:
        self.seq += 1
        record = {
            "v": 1,
            "k": "metrics",
            "r": "bench-bare",
            "w": "bench-bare-w",
            "s": self.seq,
            "t": time.time(),
            "st": self.seq,
            "ep": epoch,
            "m": named,
        }
        with suppress(zmq.Again):
            self.sock.send_multipart(
                (b"bench-bare", msgpack.packb(record, use_bin_type=True)), flags=zmq.NOBLOCK
            )

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()


def free_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


@contextmanager
def watch_process() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A real ``trainmon watch --plain`` bound to a free port; always stopped after."""
    endpoint = free_endpoint()
    cmd = [sys.executable, "-m", "trainmon", "watch", "--plain", "--bind", endpoint]
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    WATCHERS.append(proc)
    try:
        yield endpoint, proc
    finally:
        WATCHERS.remove(proc)
        with suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)  # harmless if it was not stopped
            proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def settle(timeout_s: float = 20.0) -> None:
    """Wait until the monitors are idle (<= 1 tick of CPU in 0.1 s), done with the last row."""

    def ticks() -> list[int]:  # utime + stime of each, from /proc/PID/stat
        stats = (Path(f"/proc/{p.pid}/stat").read_text().rsplit(")", 1)[1] for p in WATCHERS)
        return [sum(map(int, stat.split()[11:13])) for stat in stats]

    deadline = time.monotonic() + timeout_s
    with suppress(OSError, ValueError):  # no /proc: do not wait
        while time.monotonic() < deadline:
            before = ticks()
            time.sleep(0.1)
            if all(after - b <= 1 for after, b in zip(ticks(), before, strict=True)):
                return


def wait_subscribed(mon: Monitor, timeout_s: float = 15.0) -> None:
    """Benchmark-only peek at the I/O thread: wait until a monitor has subscribed."""
    loop = getattr(getattr(mon._thread, "_target", None), "__self__", None)
    deadline = time.monotonic() + (timeout_s if loop is not None else 1.0)
    while time.monotonic() < deadline:
        with suppress(RuntimeError):  # RuntimeError: the set changed while we looked
            if loop is not None and loop.subscribed:
                return
        time.sleep(0.02)
    print(f"warning: cannot tell that {mon.run} has a subscriber; timing anyway")


@contextmanager
def gc_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def time_calls(fn: LogFn, n: int, pacing: str) -> list[int]:
    """Nanoseconds of each of ``n`` calls, paced as ``pacing`` says (outside the timing)."""
    pc, sleep = time.perf_counter_ns, time.sleep
    spin_ns = SPIN_NS if pacing == "paced" else 0
    burst = BURST if pacing == "bursts" else 0
    out = [0] * n
    for i in range(n):
        t0 = pc()
        fn(loss=X, accuracy=Y, grad_norm=Z)
        t1 = pc()
        out[i] = t1 - t0
        if spin_ns:
            until = t1 + spin_ns
            while pc() < until:
                pass
        elif burst and i % burst == burst - 1:
            sleep(BURST_SLEEP_S)
    return out


def time_timer(n: int) -> list[int]:
    pc = time.perf_counter_ns
    out = [0] * n
    for i in range(n):
        t0 = pc()
        t1 = pc()
        out[i] = t1 - t0
    return out


def time_threads(fn: LogFn, n: int, pacing: str) -> list[int]:
    """``time_calls`` in THREADS threads started together, n calls in all, merged."""
    barrier = threading.Barrier(THREADS)

    def work(_: int) -> list[int]:
        barrier.wait()
        return time_calls(fn, n // THREADS, pacing)

    with ThreadPoolExecutor(THREADS) as pool:
        return [d for part in pool.map(work, range(THREADS)) for d in part]


@dataclass
class Row:
    label: str
    group: str  # the pacing, with " x4 threads" for (iv): rows compare within a group
    kind: str  # "timer", "empty", "bare" or "log"
    samples: list[int]
    cpu_ns: float | None = None  # process CPU per call, every thread, close() included
    drops: int | None = None
    backlog: int | None = None

    def __post_init__(self) -> None:
        self.samples.sort()

    def q(self, frac: float) -> float:
        """The ``frac`` quantile in microseconds."""
        return self.samples[min(len(self.samples) - 1, int(frac * len(self.samples)))] / 1000


def measure(
    label: str,
    kind: str,
    fn: LogFn,
    n: int,
    pacing: str,
    *,
    threads: bool = False,
    mon: Monitor | None = None,
    close_timeout_s: float | None = None,
) -> Row:
    """Time n calls of ``fn``; with ``mon``, read its counters and close it (timed CPU)."""
    settle()
    with gc_off():
        cpu0 = time.process_time_ns()
        samples = (time_threads if threads else time_calls)(fn, n, pacing)
        drops = backlog = None
        if mon is not None:
            drops, backlog = mon.dropped, len(getattr(mon, "_queue", ()))  # private
            mon.close(close_timeout_s)
        cpu = (time.process_time_ns() - cpu0) / len(samples)
    group = f"{pacing} x{THREADS} threads" if threads else pacing
    return Row(label, group, kind, samples, cpu, drops, backlog)


def run_log(
    label: str,
    endpoint: str,
    n: int,
    pacing: str,
    *,
    listened: bool = True,
    threads: bool = False,
    freeze: subprocess.Popen[bytes] | None = None,
) -> Row:
    """One log() condition on a fresh Monitor, closed when measured."""
    if freeze is not None:
        os.kill(freeze.pid, signal.SIGCONT)  # one frozen monitor serves every pacing
    with Monitor(endpoint, run=f"bench-{label.split(')')[0][1:]}-{pacing}") as mon:
        if listened:
            wait_subscribed(mon)
        if freeze is not None:
            time.sleep(1.0)
            os.kill(freeze.pid, signal.SIGSTOP)
        # Frozen: nothing can be delivered, so do not wait close()'s full 2 s for it.
        return measure(
            label,
            "log",
            mon.log,
            n,
            pacing,
            threads=threads,
            mon=mon,
            close_timeout_s=0.5 if freeze is not None else None,
        )


AB_BASELINE = "34b172e"  # the client before values were taken at the call
ROOT = Path(__file__).resolve().parent.parent
AB_BLOCK = 500  # calls timed on one side before the other side's turn


def baseline_client(tmp: str, base: str = AB_BASELINE) -> Any:
    """The client of ``base``, from git, imported as ``trainmon_client_ab`` (its own
    imports renamed) so that both clients run in this one process; None if git cannot
    give it."""
    try:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", base, "client/trainmon_client"],
            capture_output=True,
            check=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"A/B skipped: cannot take the client of {base} from git ({exc})")
        return None
    package = Path(tmp) / "trainmon_client_ab"
    (Path(tmp) / "client" / "trainmon_client").rename(package)
    for source in package.glob("*.py"):
        source.write_text(source.read_text().replace("trainmon_client", "trainmon_client_ab"))
    sys.path.insert(0, tmp)
    import importlib

    try:
        return importlib.import_module("trainmon_client_ab.monitor")
    except ImportError:  # a client from before the Monitor had a module of its own
        return importlib.import_module("trainmon_client_ab.publisher")


def ab_samples(mon: Any, loss: Any, n: int, out: list[int]) -> None:
    """Time ``n`` calls of ``mon.log`` (bursts pacing) into ``out``; ``mon.log`` looked
    up at each call, as in a training loop."""
    pc, sleep = time.perf_counter_ns, time.sleep
    for i in range(n):
        t0 = pc()
        mon.log(loss=loss, accuracy=Y, grad_norm=Z)
        t1 = pc()
        out.append(t1 - t0)
        if i % BURST == BURST - 1:
            sleep(BURST_SLEEP_S)


def ab_table(n: int, base: str = AB_BASELINE) -> None:
    """Table 3: log() of this client (B) against the baseline's (A), in one process,
    blocks of calls alternating A B B A so that the machine's load falls on both."""
    losses: dict[str, Any] = {"3 Python floats": X}
    with suppress(ImportError):
        import numpy

        losses["loss a 0-d numpy array"] = numpy.array(X)
    with suppress(ImportError):
        import torch

        losses["loss a 0-d CPU torch tensor"] = torch.tensor(X)
    with tempfile.TemporaryDirectory() as tmp:
        old = baseline_client(tmp, base)
        if old is None:
            return
        print(
            f"\n3. A/B: log() in us, A = client of {base}, B = this one; {n:,} calls "
            f"each, in alternating blocks of {AB_BLOCK}, nobody listening, bursts pacing"
        )
        print(f"{'':<30}{'A med':>8}{'B med':>8}{'B-A':>8}{'A p99':>8}{'B p99':>8}  target")
        for label, loss in losses.items():
            # Fresh Monitors per row: the B side switches to looking at each value once
            # it has seen a tensor, as a training process logging tensors would.
            a_mon = old.Monitor(free_endpoint(), run="ab-a", flush_timeout_s=0)
            b_mon = Monitor(free_endpoint(), run="ab-b", flush_timeout_s=0)
            a: list[int] = []
            b: list[int] = []
            settle()
            with gc_off():
                for block in range(max(n // AB_BLOCK, 1)):
                    sides = [(a_mon, a), (b_mon, b)]
                    for mon, out in sides if block % 2 == 0 else sides[::-1]:
                        ab_samples(mon, loss, AB_BLOCK, out)
            quiet = logging.getLogger("trainmon_client_ab"), logging.getLogger("trainmon_client")
            for logger in quiet:  # (neither needs to say that nobody watched)
                logger.setLevel(logging.ERROR)
            a_mon.close(0)
            b_mon.close(0)
            for logger in quiet:
                logger.setLevel(logging.NOTSET)
            ra = Row("A", "ab", "log", a)
            rb = Row("B", "ab", "log", b)
            diff = rb.q(0.5) - ra.q(0.5)
            target = f"{VERDICT[diff <= 0.1]} (<= +0.1 us)" if loss is X else ""
            print(
                f"{label:<30}{ra.q(0.5):>8.3f}{rb.q(0.5):>8.3f}{diff:>+8.3f}"
                f"{ra.q(0.99):>8.3f}{rb.q(0.99):>8.3f}  {target}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=200_000, help="calls per row")
    parser.add_argument("--quick", action="store_true", help="~10 s smoke run (20k calls)")
    parser.add_argument("--ab", action="store_true", help="only table 3, the A/B")
    parser.add_argument(
        "--ab-base", default=AB_BASELINE, metavar="COMMIT", help="the A side of table 3"
    )
    parser.add_argument(
        "--record", action="store_true", help="only table 4, log() with and without record_to"
    )
    parser.add_argument("--track", action="store_true", help="only table 5, track() vs a loop")
    parser.add_argument("--keep", action="store_true", help="only table 6, runs kept or not")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks
    with tempfile.TemporaryDirectory(prefix="trainmon-bench-") as data:
        os.environ["TRAINMON_DIR"] = data  # (inherited by the monitors started)
        os.environ["TRAINMON_RECORD"] = "0"  # tables 1-5 as before; table 6 says each
        run_tables(args)


def run_tables(args: argparse.Namespace) -> None:
    """The tables ``args`` ask for (all by default)."""
    n = 20_000 if args.quick else max(args.calls, 1000)
    if args.ab:
        ab_table(n, args.ab_base)
        return
    if args.record:
        record_table(n)
        return
    if args.track:
        track_table(n)
        return
    if args.keep:
        keep_table(n)
        return
    started = time.monotonic()
    with gc_off():
        rows = [Row("perf_counter_ns overhead", "timer", "timer", time_timer(n))]
    with watch_process() as (reader, reader_proc), watch_process() as (frozen, frozen_proc):
        bare = BareSender(reader)
        try:
            for pacing in PACINGS:
                rows.append(measure("(a) empty call", "empty", empty, n, pacing))
                rows.append(measure("(b) bare pack+send", "bare", bare, n, pacing))
                rows.append(
                    run_log("(i) log, nobody listening", free_endpoint(), n, pacing, listened=False)
                )
                rows.append(run_log("(ii) log, monitor reading", reader, n, pacing))
                rows.append(
                    run_log("(iii) log, monitor frozen", frozen, n, pacing, freeze=frozen_proc)
                )
            for pacing in ("paced", "bursts"):
                rows.append(measure("(a) empty call", "empty", empty, n, pacing, threads=True))
                rows.append(run_log("(iv) log, monitor reading", reader, n, pacing, threads=True))
            for proc in (reader_proc, frozen_proc):
                if proc.poll() is not None:
                    print(f"warning: a monitor exited early (status {proc.returncode})")
        finally:
            bare.close()
    report(rows, n, time.monotonic() - started)
    ab_table(n, args.ab_base)
    record_table(n)
    track_table(n)
    keep_table(n)


def _thread_clock(thread: threading.Thread | None) -> Callable[[], float]:
    """The CPU seconds ``thread`` has used so far, as a function (0 where unknown)."""
    if thread is None or thread.ident is None or not hasattr(time, "pthread_getcpuclockid"):
        return lambda: 0.0
    clock = time.pthread_getcpuclockid(thread.ident)
    return lambda: time.clock_gettime(clock)


def keep_row(n: int, pacing: str, keep: bool, index: int) -> tuple[Row, float, float]:
    """One row of table 6: a fresh Monitor, nobody listening, kept or not; the row,
    and the I/O thread's and the recording thread's CPU per record in ns (measured
    once the queue is empty and all is written, before close())."""
    mon = Monitor(free_endpoint(), run=f"bench-keep-{pacing}-{index}", record=keep)
    loop = mon._io  # private: the benchmark reads its threads' clocks
    writer = loop.writer
    io_cpu = _thread_clock(mon._thread)
    rec_cpu = _thread_clock(None if writer is None else writer._thread)
    settle()
    with gc_off():
        cpu0, io0, rec0 = time.process_time_ns(), io_cpu(), rec_cpu()
        samples = time_calls(mon.log, n, pacing)
        deadline = time.monotonic() + 60
        while mon._queue and time.monotonic() < deadline:
            time.sleep(0.01)
        if writer is not None:
            writer.settle(time.monotonic() + 30)
        io_ns, rec_ns = (io_cpu() - io0) * 1e9 / n, (rec_cpu() - rec0) * 1e9 / n
        drops = mon.dropped
        mon.close()
        cpu = (time.process_time_ns() - cpu0) / n
    return Row("", pacing, "log", samples, cpu, drops), io_ns, rec_ns


def keep_table(n: int) -> None:
    """Table 6: log() with the run kept by default and without (see the docstring)."""
    print(
        f"\n6. runs kept by default: log() in us, {n:,} calls per row, nobody listening, "
        f"rows off, kept, kept, off\n{'':<22}{'median':>8}{'p99':>9}{'p99.9':>9}{'max':>10}"
        f"{'drops':>8}{'CPU ns':>8}{'I/O ns':>8}{'rec ns':>8}"
    )
    quiet = logging.getLogger("trainmon_client")
    quiet.setLevel(logging.ERROR)  # (nobody watched: said at each close)
    try:
        for pacing in ("bursts", "flat"):
            for index, keep in enumerate((False, True, True, False)):
                row, io_ns, rec_ns = keep_row(n, pacing, keep, index)
                label = f"{'kept' if keep else 'not kept'}, {pacing}"
                print(
                    f"{label:<22}{row.q(0.5):>8.3f}{row.q(0.99):>9.3f}{row.q(0.999):>9.2f}"
                    f"{row.samples[-1] / 1000:>10.1f}{row.drops or 0:>8,}{row.cpu_ns or 0:>8.0f}"
                    f"{io_ns:>8.0f}{rec_ns:>8.0f}"
                )
    finally:
        quiet.setLevel(logging.NOTSET)


def _steps(mon: Monitor, items: range, tracked: bool, logged: bool, paced: bool) -> None:
    """A loop over ``items``: tracked or not, a log() in its body or not, the body
    busy-waiting SPIN_NS (GIL held) or not."""
    clock = time.perf_counter_ns
    for _ in mon.track(items) if tracked else items:
        if logged:
            mon.log(loss=X)
        if paced:
            end = clock() + SPIN_NS
            while clock() < end:
                pass


def track_table(n: int) -> None:
    """Table 5: a loop with and without Monitor.track(), per step (see the docstring)."""
    print(
        f"\n5. track(): per step in ns, {n:,} steps per block, blocks A B B A, nobody "
        f"listening\n{'':<40}{'wall':>8}{'CPU':>8}{'drops':>9}"
    )
    bodies = {
        "empty body": (False, False),
        "log(loss=x)": (True, False),
        f"{SPIN_NS // 1000} us body": (False, True),
        f"log(loss=x), {SPIN_NS // 1000} us body": (True, True),
    }
    for label, (logged, paced) in bodies.items():
        found: dict[bool, list[tuple[float, float, int]]] = {False: [], True: []}
        for tracked in (False, True, True, False):
            with gc_off():
                mon = Monitor(free_endpoint(), run="bench-track")
                cpu, started = time.process_time(), time.perf_counter_ns()
                _steps(mon, range(n), tracked, logged, paced)
                wall = (time.perf_counter_ns() - started) / n
                mon.close()
                found[tracked].append((wall, (time.process_time() - cpu) * 1e9 / n, mon.dropped))
        means = {
            side: [sum(x[i] for x in rows) / 2 for i in (0, 1, 2)] for side, rows in found.items()
        }
        for tracked, name in ((False, "loop"), (True, "track(loop)")):
            wall, cpu, drops = means[tracked]
            print(f"{label + ', ' + name:<40}{wall:>8.0f}{cpu:>8.0f}{drops * 2:>9,.0f}")
        added = [means[True][i] - means[False][i] for i in (0, 1)]
        print(f"{label + ', track() adds':<40}{added[0]:>+8.0f}{added[1]:>+8.0f}")


def record_table(n: int) -> None:
    """Table 4: log() with and without ``record_to``, in one run, a monitor reading.

    Rows alternate plain, recording, recording, plain (the machine's load falls on
    both alike); each has a fresh Monitor, closed and its CPU counted per call as in
    table 1. The recording's writes are on a thread of their own; what it costs the
    training process shows in the CPU column (every thread), its frames (at most 64
    records) are cut on the I/O thread."""
    print(
        f"\n4. record_to: log() in us, {n:,} calls per row, a monitor reading, bursts and "
        f"flat pacing\n{'':<34}{'median':>8}{'p99':>9}{'p99.9':>9}{'max':>10}{'drops':>8}"
        f"{'CPU ns':>8}{'frames':>8}"
    )
    with watch_process() as (reader, _), tempfile.TemporaryDirectory() as tmp:
        for pacing in ("bursts", "flat"):
            for index, recording in enumerate((False, True, True, False)):
                path = Path(tmp) / f"run-{pacing}-{index}.tmrec"
                with Monitor(
                    reader,
                    run=f"bench-record-{pacing}-{index}",
                    record_to=str(path) if recording else None,
                ) as mon:
                    wait_subscribed(mon)
                    row = measure("", "log", mon.log, n, pacing, mon=mon)
                frames = _frames_in(path) if recording else None
                label = f"{'record_to' if recording else 'no recording'}, {pacing}"
                print(
                    f"{label:<34}{row.q(0.5):>8.3f}{row.q(0.99):>9.3f}{row.q(0.999):>9.2f}"
                    f"{row.samples[-1] / 1000:>10.1f}{row.drops or 0:>8,}{row.cpu_ns or 0:>8.0f}"
                    f"{'' if frames is None else f'{frames:,}':>8}"
                )


def _frames_in(path: Path) -> int:
    """How many frames a recording holds."""
    from trainmon_client.framing import ReadReport, read_frames

    report = ReadReport()
    for _ in read_frames(path, report):
        pass
    return report.frames


def report(rows: list[Row], n: int, elapsed: float) -> None:
    print(
        f"\ntrainmon client benchmark: {n:,} calls per row, Python {sys.version.split()[0]}, "
        f"pyzmq {zmq.__version__}, {os.cpu_count()} CPUs, {elapsed:.0f} s"
    )
    print("(b) sends one message per record to the running `trainmon watch` (subscribed)")
    by = {(r.label.split()[0], r.group): r for r in rows}  # ("(ii)", "flat"): row

    def net(row: Row) -> float:
        return (row.cpu_ns or 0.0) - (by["(a)", row.group].cpu_ns or 0.0)

    print(
        f"\n1. per call: latency in us (nothing subtracted), CPU in ns\n{'':<28}"
        f"{'median':>8}{'p99':>9}{'p99.9':>9}{'max':>10}{'drops':>9}{'backlog':>9}"
        f"{'CPU':>8}{'net':>8}"
    )
    for i, row in enumerate(rows):
        if i and row.group != rows[i - 1].group:
            pacing, _, threads = row.group.partition(" ")
            print(f"-- {pacing}: {PACINGS[pacing]}{', ' + threads if threads else ''}")
        counts = "".join(f"{'' if c is None else f'{c:,}':>9}" for c in (row.drops, row.backlog))
        cpu = "" if row.cpu_ns is None else f"{row.cpu_ns:>8.0f}{net(row):>8.0f}"
        print(
            f"{row.label:<28}{row.q(0.5):>8.3f}{row.q(0.99):>9.3f}{row.q(0.999):>9.2f}"
            f"{row.samples[-1] / 1000:>10.1f}{counts}{cpu}"
        )

    print(
        f"\n2. targets\n{'log() row':<44}{'med/empty<=3':>14}{'med/bare<=0.5':>16}"
        f"{'p99.9<50us':>13}{'max<2ms':>13}"
    )
    for row in (r for r in rows if r.kind == "log"):
        r_empty = row.q(0.5) / by["(a)", row.group].q(0.5)
        r_bare = row.q(0.5) / by["(b)", row.group.split()[0]].q(0.5)
        p999, worst = row.q(0.999), row.samples[-1] / 1000
        print(
            f"{row.label + ', ' + row.group:<44}{r_empty:>8.2f}x {VERDICT[r_empty <= 3]}"
            f"{r_bare:>10.2f}x {VERDICT[r_bare <= 0.5]}"
            f"{p999:>8.1f} {VERDICT[p999 < 50]}{worst:>8.0f} {VERDICT[worst < 2000]}"
        )
    for pacing in PACINGS:
        log_net, bare_net = net(by["(ii)", pacing]), net(by["(b)", pacing])
        print(
            f"net CPU per call, (ii) log() vs (b) bare pack+send, {pacing:<6}: "
            f"{log_net:>6.0f} / {bare_net:>6.0f} ns = {log_net / bare_net:5.2f}x ",
            end="",
        )
        dropped = by["(ii)", pacing].drops
        print(
            f"{VERDICT[log_net < bare_net]} (target < 1x)"
            if not dropped
            else f"n/a: {dropped:,} records dropped, so never encoded or sent"
        )


if __name__ == "__main__":
    main()
