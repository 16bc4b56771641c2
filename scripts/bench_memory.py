"""Memory and speed of the monitor over a long run: does memory stay flat?

Two parts, run one after the other:

1. **state**: feeds N records (default 10 million; 8 workers, 5 metrics each) straight
   into ``RunState.apply_columns`` in this process, in batches as large as the client
   sends them (512 records), and prints the process RSS and the records/s
   every 10% of the way. Flat RSS after warm-up means the state is bounded: each series
   keeps a full-resolution window plus a bounded downsampled history.
2. **watch**: starts a real ``trainmon watch`` on a pseudo-terminal (so it draws the full
   dashboard at its normal refresh rate) and one process that sends N records as 8
   workers, flat out, in column batches as the client sends them; samples the monitor's
   RSS every second and prints what it received (and counted as missed) per second.

3. **flood**: what a hostile peer can make the monitor hold, with every limit filled
   and the longest names: 64 runs x 1024 workers, each with a hello carrying a large
   config, then metric series added in doublings up to the cap of 8192, each filled
   past its share of the point budget before more are added (windows shrink as series
   multiply). Prints the RSS after each step: the bound that holds whatever is sent.

4. **queues**: a real ``trainmon watch`` under attack from 4, then 16 connections, each
   sending messages as large as allowed (1 MiB) that are valid msgpack but slow to
   decode (nested arrays) and then rejected, flat out for 15 s; prints the monitor's
   peak RSS: what ZeroMQ's queues (64 messages per connection) hold meanwhile.

5. **peers**: what ZeroMQ does not bound, against a real ``trainmon watch`` and a real
   training process that binds (``Monitor(bind=True)``): a plain pyzmq PUB sending
   messages of 32 frames of 1 MiB flat out for 8 s, and a raw ZMTP peer (the greeting
   spoken by hand) sending one multipart message that never ends, for 8 s. Prints each
   process's RSS before, its peak, and 5 s after the peer left; and whether the
   monitor then receives a good run whole.

Run: ``python scripts/bench_memory.py`` (several minutes) or ``--quick`` (1 million).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

from _pty_watch import PtyWatch, summary_counts

from trainmon.state import Limits, RunState
from trainmon_client.ioloop import _MAX_BATCH_RECORDS as BATCH  # as the client sends

# Measured as before runs were kept by default, and nothing kept in the user's data
# directory (set TRAINMON_RECORD=1 to measure with keeping on; publishers inherit it).
os.environ.setdefault("TRAINMON_RECORD", "0")
from trainmon_client.protocol import MAX_NAME_CHARS, Columns, Record

ROOT = Path(__file__).resolve().parent.parent
WORKERS = 8
METRICS = ("loss", "accuracy", "grad_norm", "lr", "throughput")


def rss_mb(pid: int | str = "self") -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return math.nan


def bench_state(total: int) -> None:
    print(f"\n== state: {total:,} records, {WORKERS} workers x {len(METRICS)} metrics ==")
    print(f"{'records':>12} {'RSS MB':>8} {'records/s':>12}")
    state = RunState()
    now = time.time()
    for w in range(WORKERS):
        state.apply(Record("hello", "bench", f"w{w}", 0, now, info={"host": "h", "rank": w}), now)
    checkpoint = max(total // 10, 1)
    started = last = time.perf_counter()
    baseline = rss_mb()
    done, seq, batch = 0, 1, BATCH
    while done < total:
        # as the client sends them: consecutive records of a worker as columns
        steps: list[int | None] = list(range(seq - 1, seq - 1 + batch))
        times = [now + (seq + k) * 0.001 for k in range(batch)]
        values = [1.0 / (seq + k) for k in range(batch)]
        for w in range(WORKERS):
            columns = {name: list(values) for name in METRICS}
            state.apply_columns(
                # ordered: steps in order, as decode finds and says
                Columns("bench", f"w{w}", seq, times, steps, [0] * batch, columns, True),
                now,
            )
            done += batch
            if done % checkpoint < batch:
                t = time.perf_counter()
                print(f"{done:>12,} {rss_mb():>8.1f} {checkpoint / (t - last):>12,.0f}", flush=True)
                last = t
        seq += batch
    elapsed = time.perf_counter() - started
    print(
        f"state: {done / elapsed:,.0f} records/s overall; RSS {baseline:.1f} MB before, "
        f"{rss_mb():.1f} MB after (Python itself is part of both)"
    )


def _long(prefix: str, index: int) -> str:
    """A distinct name as long as the protocol allows (a new string object each time,
    as decoding makes them)."""
    return f"{prefix}{index}-".ljust(MAX_NAME_CHARS, "x")


def bench_flood() -> None:
    limits = Limits()
    print(
        f"\n== flood: every limit filled ({limits.runs} runs x {limits.workers} workers, "
        f"{limits.series:,} series sharing {limits.points:,} points) =="
    )
    state = RunState(limits)
    now = time.time()
    baseline = rss_mb()
    print(f"{'step':<44} {'RSS MB':>8} {'seconds':>8}")
    started = time.perf_counter()

    def report(step: str) -> None:
        print(f"{step:<44} {rss_mb():>8.1f} {time.perf_counter() - started:>8.1f}", flush=True)

    report("nothing received")
    config = {f"hyper_{i}": "v" * 900 for i in range(1000)}  # ~0.9 MB: a message's worth
    runs = [_long("run", r) for r in range(limits.runs)]
    workers = [[_long("worker", w) for w in range(limits.workers)] for _ in runs]
    for run, names in zip(runs, workers, strict=True):
        for w, worker in enumerate(names):
            info = {"host": _long("host", w), "rank": w, "world": limits.workers, "config": config}
            state.apply(Record("hello", run, worker, 0, now, info=info), now)
    report(f"{state.worker_count:,} workers kept of {limits.runs * limits.workers:,} said hello")
    # series in doublings, over the workers in order, 256 metrics each
    made: list[tuple[str, str, int]] = []  # run, worker, metrics
    seq: dict[tuple[str, str], int] = {}
    step = 0
    target = 256
    while target <= limits.series:
        while len(made) * limits.metrics < target:
            index = len(made)
            run = runs[index // limits.workers]
            made.append((run, workers[index // limits.workers][index % limits.workers], 0))
        window, buckets = state.share
        # enough points for every series to fill its window, spill and history
        points = window + window // 8 + 4 * buckets + 1
        for start in range(0, points, BATCH):
            count = min(BATCH, points - start)
            steps: list[int | None] = list(range(step, step + count))
            for run, worker, _ in made:
                first = seq.get((run, worker), 1)
                names = {_long("metric", m): [0.5] * count for m in range(limits.metrics)}
                state.apply_columns(
                    Columns(run, worker, first, [now] * count, steps, [0] * count, names, True),
                    now,
                )
                seq[(run, worker)] = first + count
            step += count
            # the share changes as series are made: fill to the new one
            window, buckets = state.share
            points = max(points, window + window // 8 + 4 * buckets + 1)
        report(f"{state.series_count:,} series, {state.share[0]:,} points each")
        target *= 2
    held = sum(
        len(series.steps) + len(series.older.pending_steps)
        for run in state.runs.values()
        for worker in run.workers.values()
        for series in worker.series.values()
    )
    print(
        f"flood: {state.worker_count:,} workers, {state.series_count:,} series holding {held:,} "
        f"full-resolution points; RSS {baseline:.1f} MB before, {rss_mb():.1f} MB after"
    )


def bench_queues(seconds: float = 15.0) -> None:
    import threading

    import msgpack
    import zmq

    from trainmon_client.protocol import MAX_PAYLOAD_BYTES

    payload = msgpack.packb([[0] * 4096] * (MAX_PAYLOAD_BYTES // 4100))
    print(
        f"\n== queues: connections sending {len(payload):,}-byte messages of nested arrays "
        f"flat out for {seconds:.0f} s at a real trainmon watch =="
    )
    for connections in (4, 16):
        endpoint = f"tcp://127.0.0.1:{free_port()}"
        monitor = PtyWatch(endpoint)
        stop = threading.Event()

        def attack(endpoint: str = endpoint, stop: threading.Event = stop) -> None:
            sock = zmq.Context.instance().socket(zmq.PUB)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(endpoint)
            while not stop.is_set():
                sock.send_multipart([b"evil", payload])
            sock.close()

        peak = 0.0
        try:
            time.sleep(1.0)
            threads = [threading.Thread(target=attack) for _ in range(connections)]
            for thread in threads:
                thread.start()
            started = time.monotonic()
            while time.monotonic() - started < seconds:
                peak = max(peak, rss_mb(monitor.proc.pid))
                time.sleep(0.25)
            stop.set()
            for thread in threads:
                thread.join()
        finally:
            stop.set()
            text = monitor.stop()
        rejected = re.findall(r"(\d+) messages were rejected", text)
        print(
            f"{connections:>3} connections: monitor peak RSS {peak:.0f} MB; "
            f"{int(rejected[-1]) if rejected else 0:,} messages read and rejected"
        )


HOSTILE = ROOT / "tests" / "hostile_peer.py"
PUBLISHER = ROOT / "tests" / "publisher_proc.py"


def _sample(pids: list[int], seconds: float, peak: dict[int, float]) -> None:
    """Sample the RSS of ``pids`` every 50 ms for ``seconds``, keeping each one's peak."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        for pid in pids:
            peak[pid] = max(peak.get(pid, 0.0), rss_mb(pid))
        time.sleep(0.05)


def _attack(mode: str, endpoint: str, seconds: float, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(HOSTILE), mode, endpoint, "--seconds", str(seconds), *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def _peer_row(what: str, before: float, peak: float, after: float, note: str) -> None:
    print(f"{what:<44} {before:>8.0f} {peak:>8.0f} {after:>8.0f}  {note}", flush=True)


def bench_peers(seconds: float = 8.0) -> None:
    print(
        f"\n== peers: what ZeroMQ does not bound, {seconds:.0f} s each "
        "(RSS MB before, peak, 5 s after the peer left) =="
    )
    print(f"{'peer -> target':<44} {'before':>8} {'peak':>8} {'after':>8}  then")
    attacks = (
        ("32 frames of 1 MiB -> trainmon watch", "multiframe", ()),
        ("endless multipart (raw ZMTP) -> trainmon watch", "endless", ("--reconnect",)),
    )
    for what, mode, extra in attacks:
        endpoint = f"tcp://127.0.0.1:{free_port()}"
        monitor = PtyWatch(endpoint)
        good: subprocess.Popen[str] | None = None
        try:
            time.sleep(1.5)
            pid = monitor.proc.pid
            before = rss_mb(pid)
            peak: dict[int, float] = {}
            attacker = _attack(mode, endpoint, seconds, *extra)
            _sample([pid], seconds, peak)
            attacker.wait(timeout=30)
            _sample([pid], 5.0, {})
            after = rss_mb(pid)
            good = subprocess.Popen(
                [sys.executable, str(PUBLISHER), endpoint, "--run", "good", "--count", "500"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            good.wait(timeout=60)
            time.sleep(1.0)
        finally:
            if good is not None and good.poll() is None:
                good.kill()
            text = monitor.stop()
        received, missed, _ = summary_counts(text)
        note = f"a good run of 500: received {received}, missed {missed}"
        _peer_row(what, before, peak.get(pid, 0.0), after, note)
    training_attacks = (
        ("32 frames of 1 MiB (XSUB) -> training", "multiframe", ("--as", "SUB")),
        ("endless multipart (raw ZMTP) -> training", "endless", ("--as", "SUB", "--reconnect")),
    )
    for what, mode, extra in training_attacks:
        endpoint = f"tcp://127.0.0.1:{free_port()}"
        training = subprocess.Popen(
            [
                sys.executable,
                str(PUBLISHER),
                endpoint,
                "--bind",
                "--count",
                "100000",
                "--delay",
                "0.001",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            time.sleep(1.5)
            before = rss_mb(training.pid)
            peak = {}
            attacker = _attack(mode, endpoint, seconds, *extra)
            _sample([training.pid], seconds, peak)
            attacker.wait(timeout=30)
            _sample([training.pid], 5.0, {})
            after = rss_mb(training.pid)
            alive = training.poll() is None
        finally:
            training.kill()
            _, err = training.communicate(timeout=10)
        said = [line for line in err.splitlines() if "trainmon" in line][:1]
        note = ("alive" if alive else "DEAD") + (f"; said: {said[0][:70]}" if said else "")
        _peer_row(what, before, peak.get(training.pid, 0.0), after, note)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


SENDER = """
import sys, time, msgpack, zmq
from trainmon_client.protocol import columns_wire
total, endpoint, workers = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
ctx = zmq.Context()
sock = ctx.socket(zmq.XPUB)
sock.setsockopt(zmq.SNDHWM, 2000)
sock.connect(endpoint)
sock.recv()  # wait for the monitor's subscription
now = time.time()
for w in range(workers):
    hello = {"v": 1, "k": "hello", "r": "bench", "w": f"w{w}", "s": 0, "t": now,
             "i": {"host": "bench", "pid": w, "rank": w, "world": workers}}
    sock.send_multipart([b"bench", msgpack.packb(hello)])
from trainmon_client.ioloop import _MAX_BATCH_RECORDS as batch  # as the client sends
sent, seq = 0, 1
names = ("loss", "accuracy", "grad_norm", "lr", "throughput")
while sent < total:
    for w in range(workers):
        values = [1.0 / (seq + k) for k in range(batch)]
        wire = columns_wire("bench", f"w{w}", seq, [now + (seq + k) * 0.001 for k in range(batch)],
                            list(range(seq - 1, seq - 1 + batch)), [0] * batch,
                            {n: values for n in names})
        try:
            sock.send_multipart([b"bench", msgpack.packb([wire])], flags=zmq.NOBLOCK)
        except zmq.Again:
            pass  # the monitor is behind: dropped here, counted there as missed
        sent += batch
    seq += batch
    time.sleep(0)
for w in range(workers):
    bye = {"v": 1, "k": "bye", "r": "bench", "w": f"w{w}", "s": seq, "t": time.time()}
    sock.send_multipart([b"bench", msgpack.packb(bye)])
time.sleep(0.5)
print(sent)
"""


def bench_watch(total: int) -> None:
    print(
        f"\n== trainmon watch (dashboard on a pty): {total:,} records as {WORKERS} workers, "
        "sent flat out by one process =="
    )
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    monitor = PtyWatch(endpoint)
    watch = monitor.proc
    sender: subprocess.Popen[str] | None = None
    samples: list[tuple[float, float]] = []
    try:
        time.sleep(1.0)
        started = time.monotonic()
        sender = subprocess.Popen(
            [sys.executable, "-c", SENDER, str(total), endpoint, str(WORKERS)],
            stdout=subprocess.PIPE,
            text=True,
        )
        while sender.poll() is None:
            samples.append((time.monotonic() - started, rss_mb(watch.pid)))
            time.sleep(1.0)
        elapsed = time.monotonic() - started
        sent = int((sender.stdout.read() if sender.stdout else "0").strip() or 0)
        time.sleep(1.0)
        samples.append((time.monotonic() - started, rss_mb(watch.pid)))
    finally:
        if sender is not None and sender.poll() is None:
            sender.kill()
        text = monitor.stop()
    received, missed, _ = summary_counts(text)
    print(f"{'seconds':>8} {'monitor RSS MB':>15}")
    step = max(len(samples) // 12, 1)
    for t, mb in [*samples[::step], samples[-1]]:
        print(f"{t:>8.1f} {mb:>15.1f}")
    print(
        f"sent {sent:,} metrics records in {elapsed:.1f} s; the monitor received {received:,} "
        f"({received / elapsed:,.0f} records/s while drawing the dashboard) and counted "
        f"{missed:,} missed"
    )
    warm = [mb for t, mb in samples if t >= elapsed * 0.2] or [mb for _, mb in samples]
    print(f"monitor RSS after warm-up: min {min(warm):.1f} MB, max {max(warm):.1f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--quick", action="store_true", help="1 million records")
    parser.add_argument("--only", choices=("state", "watch", "flood", "queues", "peers"))
    args = parser.parse_args()
    total = 1_000_000 if args.quick else args.records
    if args.only in (None, "state"):
        bench_state(total)
    if args.only in (None, "watch"):
        bench_watch(total)
    if args.only in (None, "flood"):
        bench_flood()
    if args.only in (None, "queues"):
        bench_queues()
    if args.only in (None, "peers"):
        bench_peers()


if __name__ == "__main__":
    main()
