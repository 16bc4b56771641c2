"""How long `trainmon runs` takes with many kept runs, interpreter start included.

Makes RUNS runs (default 1,000) in a temporary TRAINMON_DIR, one folder a run as the
client keeps it (run.json, a recording of a hello, STEPS metrics records of a loss and an
accuracy, and a bye), their starts an hour apart; then runs ``python -m trainmon runs``
(its output piped, as a script reads it) as a subprocess: once cold (no summary cached:
every recording read, the caches written) and REPEAT times warm (each run's small
``.summary.json`` read). Prints the wall times, median and max. The target is under
0.5 s warm. With --json the command is ``runs --json --all`` (every run, not the 50
newest the table shows).

Run: ``python scripts/bench_runs.py [--runs 1000] [--repeat 10] [--json]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from trainmon_client import store
from trainmon_client.framing import FrameWriter
from trainmon_client.protocol import Record, encode

T0 = 1.7e9


def make_run(root: str, index: int, steps: int) -> None:
    """One kept run, written as the client writes it (a frame a batch of records)."""
    name = f"bench-{index % 37}-{index}"
    started = T0 + index * 3600.0
    folder, _ = store.choose_folder(name, now=started, root=root)
    worker = f"{socket.gethostname()}:{10_000 + index}"
    records = [Record("hello", name, worker, 0, started, info={"steps": steps})]
    for step in range(steps):
        metrics = {"loss": 1.0 / (step + 1), "accuracy": step / steps}
        records.append(Record("metrics", name, worker, step + 1, started + step, step, 0, metrics))
    records.append(Record("bye", name, worker, steps + 1, started + steps))
    with FrameWriter(store.worker_file(folder, worker)) as writer:
        for start in range(0, len(records), 64):
            writer.write(encode(records[start : start + 64])[1])
    os.chmod(store.worker_file(folder, worker), 0o600)


def timed(args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=200, help="metrics records a run")
    parser.add_argument("--repeat", type=int, default=10, help="warm runs timed")
    parser.add_argument("--json", action="store_true", help="time `runs --json --all`")
    args = parser.parse_args()
    where = tempfile.mkdtemp(prefix="tm-bench-runs-")
    try:
        env = {**os.environ, "TRAINMON_DIR": where}
        root = store.runs_dir(env)
        made = time.perf_counter()
        for index in range(args.runs):
            make_run(root, index, args.steps)
        size = sum(run.size for run in store.scan(root))
        print(
            f"{args.runs:,} runs of {args.steps} steps made in "
            f"{time.perf_counter() - made:.1f} s ({size / 1e6:.1f} MB)"
        )
        command = [sys.executable, "-m", "trainmon", "runs"]
        command += ["--json", "--all"] if args.json else []
        start = timed([sys.executable, "-c", "pass"], env)
        print(f"interpreter start alone: {start * 1000:.0f} ms")
        cold = timed(command, env)
        print(f"`{' '.join(command[1:])}` cold (no summaries cached): {cold * 1000:.0f} ms")
        warm = [timed(command, env) for _ in range(args.repeat)]
        print(
            f"warm, {args.repeat} runs: median {statistics.median(warm) * 1000:.0f} ms, "
            f"max {max(warm) * 1000:.0f} ms (target < 500 ms)"
        )
    finally:
        shutil.rmtree(where, ignore_errors=True)


if __name__ == "__main__":
    main()
