"""Ingest load: how many records a drawing ``trainmon watch`` takes in, and what it misses.

For each scenario, N real publisher processes (the trainmon client) log records with
5 metrics, flat out or paced, into:

* a bare SUB loop (receive, ``msgpack.unpackb`` and count the records, nothing else):
  the ceiling;
* a real ``trainmon watch`` drawing its dashboard on a pseudo-terminal at 10 frames/s.

Rates are records received per second from the first record to the last one taken in
(watch prints that span in its summary).
Each publisher reports what it logged and what its own full queue made it drop; the
receiver reports what it received and (for watch) what it counted as missed. The
accounting must close exactly: received + missed = sent (hello and bye included),
where sent = logged - dropped by the client. Also printed: the monitor's CPU, and the
time to render one frame with 64 workers and 20 metrics, measured in this process, and
"CPU wait": the share of the time the monitor was ready to run but every core was busy
(publishers flat out on a small machine starve it; /proc/PID/schedstat).

Each scenario runs the bare loop and watch in turn, 5 times (``--repeat``), and the
summary gives the median ratio and its range: on a shared machine one pair can move by
0.2 or more either way (4 publishers flat out: 0.62 to 1.07 in one run).

Run: ``python scripts/bench_ingest.py`` (about 12 minutes) or ``--quick``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import socket
import statistics
import subprocess
import sys
import time

from _pty_watch import PtyWatch, summary_counts
from bench_frame import LiveFeed, build_state
from bench_frame import frame_ms as render_ms

from trainmon.view import ViewOptions

# Measured as before runs were kept by default, and nothing kept in the user's data
# directory (set TRAINMON_RECORD=1 to measure with keeping on; publishers inherit it).
os.environ.setdefault("TRAINMON_RECORD", "0")

PUBLISHER = """
import sys, time
from trainmon_client import Monitor
endpoint, seconds, rate = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
mon = Monitor(endpoint, run="load", flush_timeout_s=10)
deadline = time.perf_counter() + seconds
logged = step = 0
interval = 1.0 / rate if rate else 0.0
next_at = time.perf_counter()
while True:
    now = time.perf_counter()
    if now >= deadline:
        break
    if interval:
        if now < next_at:
            time.sleep(min(next_at - now, 0.002))
            continue
        next_at += interval
    v = 1.0 / (step + 1)
    mon.log(loss=v, accuracy=v, grad_norm=v, lr=v, throughput=v, step=step)
    step += 1
    if not interval and step % 1024 == 0:
        time.sleep(0)
mon.close()
print(step, mon.dropped, flush=True)
"""

BARE = """
import sys, time, zmq, msgpack
ctx = zmq.Context()
sock = ctx.socket(zmq.SUB)
sock.setsockopt(zmq.RCVHWM, 2000)
sock.bind(sys.argv[1])
sock.subscribe(b"")
print("ready", flush=True)
received, idle_since, first, last = 0, None, 0.0, 0.0
while True:
    if sock.poll(100):
        frames = sock.recv_multipart()
        batch = msgpack.unpackb(frames[1])
        for item in batch if isinstance(batch, list) else [batch]:
            received += len(item["t"]) if item["k"] == "cols" else 1
        last = time.monotonic()
        first = first or last
        idle_since = None
    elif received:
        idle_since = idle_since or time.monotonic()
        if time.monotonic() - idle_since > float(sys.argv[2]):
            break
print(received, last - first, flush=True)
"""


SENDER = """
import sys, time, zmq
from trainmon_client.protocol import columns_wire, pack_payload
from trainmon_client.ioloop import _MAX_BATCH_RECORDS as batch  # as the client sends
endpoint, total = sys.argv[1], int(sys.argv[2])
names = ("loss", "accuracy", "grad_norm", "lr", "throughput")
def item(kind, seq, **fields):
    return {"v": 1, "k": kind, "r": "load", "w": "sender", "s": seq, "t": time.time(), **fields}
payloads = [pack_payload(item("hello", 0, i={"host": "h", "pid": 1}))]
for seq in range(1, total + 1, batch):
    n = min(batch, total + 1 - seq)
    steps = list(range(seq, seq + n))
    columns = {name: [1.0 / s for s in steps] for name in names}
    wire = columns_wire("load", "sender", seq, [time.time()] * n, steps, [0] * n, columns)
    payloads.append(pack_payload([wire]))
counters = {"logged": total, "dropped": 0, "queued": 0}
payloads.append(pack_payload(item("bye", total + 1, c=counters)))
sock = zmq.Context().socket(zmq.XPUB)
sock.setsockopt(zmq.SNDHWM, 0)  # no limit: nothing is dropped, the receiver sets the pace
sock.connect(endpoint)
sock.recv()  # the receiver's subscription
for payload in payloads:
    sock.send_multipart([b"load", payload])
time.sleep(60)  # keep the queue alive until the receiver has it all (killed then)
"""


def free_endpoint() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{sock.getsockname()[1]}"


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def waited_s(pid: int) -> float:
    """Seconds the process's main thread was ready to run but waiting for a CPU."""
    with open(f"/proc/{pid}/schedstat") as stat:
        return int(stat.read().split()[1]) / 1e9


def run_publishers(
    endpoint: str, count: int, seconds: float, rate: float
) -> tuple[int, int, float]:
    """Logged and client-dropped records of ``count`` publishers, and their wall time."""
    started = time.monotonic()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", PUBLISHER, endpoint, str(seconds), str(rate)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    logged = dropped = 0
    try:
        for proc in procs:
            out, _ = proc.communicate(timeout=seconds + 60)
            a, b = out.split()
            logged, dropped = logged + int(a), dropped + int(b)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    return logged, dropped, time.monotonic() - started


def bare(count: int, seconds: float, rate: float) -> dict[str, float]:
    endpoint = free_endpoint()
    sink = subprocess.Popen(
        [sys.executable, "-c", BARE, endpoint, "3"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert sink.stdout is not None
        sink.stdout.readline()
        logged, dropped, _ = run_publishers(endpoint, count, seconds, rate)
        out, _ = sink.communicate(timeout=120)
    finally:
        if sink.poll() is None:
            sink.kill()
    received, span = int(out.split()[-2]), float(out.split()[-1])  # first to last record
    return {
        "sent": logged - dropped,
        "client_dropped": dropped,
        "received": received,
        "rate": received / max(span, 1e-9),
    }


def watch(count: int, seconds: float, rate: float) -> dict[str, float]:
    endpoint = free_endpoint()
    monitor = PtyWatch(endpoint, "--exit-when-done")
    proc = monitor.proc
    try:
        time.sleep(1.0)
        cpu0, wait0, started = cpu_s(proc.pid), waited_s(proc.pid), time.monotonic()
        logged, dropped, elapsed = run_publishers(endpoint, count, seconds, rate)
        # The monitor is busy ingesting while it uses more than 40% of a core (drawing
        # alone takes far less); it exits 2 s after the last bye (--exit-when-done).
        samples = [(time.monotonic(), cpu0, wait0)]
        while proc.poll() is None and time.monotonic() - started < elapsed + 30:
            try:
                samples.append((time.monotonic(), cpu_s(proc.pid), waited_s(proc.pid)))
            except OSError:  # it has just exited
                break
            time.sleep(0.1)
        busy_until = max(
            (
                t
                for (t0, c0, _), (t, c, _) in itertools.pairwise(samples)
                if (c - c0) / (t - t0) > 0.4
            ),
            default=started + elapsed,
        )
        busy = max(busy_until - started, 1e-9)
        cpu1 = max(c for t, c, _ in samples if t <= busy_until)
        wait1 = max(w for t, _, w in samples if t <= busy_until)
        if proc.poll() is None:
            print("(no bye from some worker within 30 s: stopping the monitor)", flush=True)
    finally:
        text = monitor.stop()
    received, missed, span = summary_counts(text)
    return {
        "sent": logged - dropped + 2 * count,
        "client_dropped": dropped,
        "received": received,
        "missed": missed,
        "rate": received / max(span, 1e-9),
        "cpu": (cpu1 - cpu0) / busy,
        "waited": (wait1 - wait0) / busy,
    }


def monitor_bound(total: int) -> tuple[float, float]:
    """Records/s of the bare loop and of watch, fed ``total`` pre-encoded records by one
    sender that does nothing else: what the receiving side alone can take."""
    sender_args = [sys.executable, "-c", SENDER]
    # the bare loop
    endpoint = free_endpoint()
    sink = subprocess.Popen(
        [sys.executable, "-c", BARE, endpoint, "3"], stdout=subprocess.PIPE, text=True
    )
    sender = None
    try:
        assert sink.stdout is not None
        sink.stdout.readline()
        sender = subprocess.Popen([*sender_args, endpoint, str(total)])
        out, _ = sink.communicate(timeout=300)
    finally:
        for proc in (sink, sender):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    received, span = int(out.split()[-2]), float(out.split()[-1])
    bare_rate = received / max(span, 1e-9)
    # a drawing watch
    endpoint = free_endpoint()
    monitor = PtyWatch(endpoint, "--exit-when-done")
    sender = None
    try:
        time.sleep(1.0)
        sender = subprocess.Popen([*sender_args, endpoint, str(total)])
        monitor.proc.wait(timeout=300)
    finally:
        text = monitor.stop()
        if sender is not None:
            sender.kill()
            sender.wait()
    received, _, span = summary_counts(text)
    if received != total + 2:
        print(f"(watch received {received:,} of {total + 2:,})")
    return bare_rate, received / max(span, 1e-9)


def frame_ms(width: int = 120, height: int = 40) -> float:
    """One frame of the default view, 64 workers x 20 metrics, records arriving."""
    state = build_state(64, 20, 2_000)
    return render_ms(state, ViewOptions(), width, height, LiveFeed(state, 64, 20, 2_000))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer, shorter scenarios")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument(
        "--repeat", type=int, default=5, help="bare/watch pairs per scenario (1 with --quick)"
    )
    parser.add_argument(
        "--scenarios",
        help="only these, as PUBLISHERSxPACE (0 = flat out), e.g. 16x0,16x10000; "
        "then the monitor-bound and frame parts are left out",
    )
    args = parser.parse_args()
    seconds = 3.0 if args.quick else args.seconds
    if args.quick:
        args.repeat = 1
    scenarios = [(1, 0.0), (4, 0.0), (16, 0.0), (16, 2000.0), (16, 10000.0)]
    if args.quick:
        scenarios = [(1, 0.0), (16, 2000.0)]
    if args.scenarios:
        try:
            scenarios = [
                (int(count), float(pace))
                for count, pace in (item.split("x") for item in args.scenarios.split(","))
            ]
        except ValueError:
            parser.error(f"--scenarios: expected e.g. 16x0,16x10000, not {args.scenarios!r}")
    print(
        f"trainmon ingest benchmark: {seconds:g} s per run, {args.repeat} bare/watch pairs per "
        f"scenario, {os.cpu_count()} CPUs, 5 metrics per record\n"
    )
    print(
        f"{'publishers':>10} {'pace/s each':>11} | {'bare rec/s':>11} | {'watch rec/s':>11} "
        f"{'ratio':>6} {'sent':>10} {'received':>10} {'missed':>9} {'r+m=sent':>8} "
        f"{'client drop':>11} {'watch CPU':>9} {'CPU wait':>8}"
    )
    summary = []
    for count, rate in scenarios:
        ratios = []
        for _ in range(args.repeat):  # bare and watch in turn: drift hits both alike
            ceiling = bare(count, seconds, rate)
            result = watch(count, seconds, rate)
            closes = result["received"] + result["missed"] == result["sent"]
            ratios.append(result["rate"] / ceiling["rate"])
            print(
                f"{count:>10} {('flat' if not rate else f'{rate:,.0f}'):>11} | "
                f"{ceiling['rate']:>11,.0f} | {result['rate']:>11,.0f} "
                f"{ratios[-1]:>6.2f} {result['sent']:>10,.0f} "
                f"{result['received']:>10,.0f} {result['missed']:>9,.0f} "
                f"{'yes' if closes else 'NO':>8} {result['client_dropped']:>11,.0f} "
                f"{result['cpu'] * 100:>8.0f}% {result['waited'] * 100:>7.0f}%",
                flush=True,
            )
        summary.append((count, rate, ratios))
    if args.repeat > 1:
        print(f"\nratio watch/bare, median of {args.repeat} pairs (lowest-highest):")
        for count, rate, ratios in summary:
            pace = "flat out" if not rate else f"at {rate:,.0f}/s each"
            print(
                f"  {count:>2} publishers {pace:<16} {statistics.median(ratios):.2f} "
                f"({min(ratios):.2f}-{max(ratios):.2f})"
            )
    if args.scenarios:
        return
    total = 200_000 if args.quick else 1_000_000
    bare_rate, watch_rate = monitor_bound(total)
    print(
        f"\none sender of {total:,} pre-encoded records (monitor-bound): bare {bare_rate:,.0f}/s, "
        f"watch {watch_rate:,.0f}/s, ratio {watch_rate / bare_rate:.2f}"
    )
    print(f"\nframe render, 64 workers x 20 metrics, 120x40: {frame_ms():.1f} ms (median of 30)")
    print(
        f"frame render, 64 workers x 20 metrics, 200x60: "
        f"{frame_ms(width=200, height=60):.1f} ms (median of 30)"
    )


if __name__ == "__main__":
    main()
