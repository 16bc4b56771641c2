"""A training process for the tests of runs kept by default: it logs COUNT steps (loss
1/(i+1), accuracy i/COUNT) on the default endpoint, where nobody watches, and says on
stdout how many it logged, how long that took and what was dropped."""

from __future__ import annotations

import argparse
import os
import time

from trainmon_client import Monitor

parser = argparse.ArgumentParser()
parser.add_argument("--run", help="the run name (default: the script's and its launch)")
parser.add_argument("--count", type=int, default=100)
parser.add_argument("--delay", type=float, default=0.0, help="seconds between steps")
parser.add_argument("--metrics", type=int, default=0, help="extra metrics metric_0 ...")
parser.add_argument("--no-record", action="store_true", help="Monitor(record=False)")
parser.add_argument("--record-to", help="Monitor(record_to=...)")
parser.add_argument("--forever", action="store_true", help="log until killed")
parser.add_argument("--max-queue", type=int, default=100_000, help="Monitor(max_queue=...)")
parser.add_argument("--fork-at", type=int, help="fork a child at this step: it logs 10 steps")
args = parser.parse_args()

mon = Monitor(
    run=args.run,
    record=False if args.no_record else None,
    record_to=args.record_to,
    max_queue=args.max_queue,
)
print("started", mon.worker, flush=True)
started = time.monotonic()
step = 0
while args.forever or step < args.count:
    extra = {f"metric_{i}": float(step + i) for i in range(args.metrics)}
    mon.log(extra, loss=1.0 / (step + 1), accuracy=step / max(args.count, 1))
    if step == args.fork_at:
        child = os.fork()
        if child == 0:
            for index in range(10):
                mon.log(child_loss=float(index))
            mon.close()
            os._exit(0)
        os.waitpid(child, 0)
    step += 1
    if args.delay:
        time.sleep(args.delay)
print(f"logged {step} in {time.monotonic() - started:.3f}", flush=True)
mon.close()
print("closed", mon.dropped, flush=True)
