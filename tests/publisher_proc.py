"""A real publishing process for tests: logs COUNT records through trainmon_client."""

from __future__ import annotations

import argparse
import math
import time

from trainmon_client import Monitor

parser = argparse.ArgumentParser()
parser.add_argument("endpoint")
parser.add_argument("--run", default="r")
parser.add_argument("--count", type=int, default=100)
parser.add_argument("--delay", type=float, default=0.0)
parser.add_argument("--hold", type=float, default=0.0, help="seconds to wait before closing")
parser.add_argument("--bind", action="store_true")
parser.add_argument("--epochs", type=int)
parser.add_argument("--metrics", type=int, default=0, help="extra metrics metric_0 ...")
parser.add_argument("--alert-at", type=int, help="call alert() at this step")
parser.add_argument("--nan-at", type=int, help="log a NaN loss at this step")
args = parser.parse_args()

mon = Monitor(
    args.endpoint,
    run=args.run,
    bind=args.bind,
    total_epochs=args.epochs,
    total_steps=args.count,
    config={"lr": 0.01, "optim": {"name": "sgd"}},
)
print(mon.worker, flush=True)
per_epoch = max(args.count // (args.epochs or 1), 1)
for step in range(args.count):
    extra = {f"metric_{i}": math.sin(step / (10 + i)) for i in range(args.metrics)}
    mon.log(
        extra,
        loss=math.nan if step == args.nan_at else 1.0 / (step + 1),
        accuracy=min(step / args.count, 1.0),
        grad_norm=math.sqrt(step + 1),
        epoch=step // per_epoch,
        step=step,
    )
    if step == args.alert_at:
        mon.alert("custom title from training", f"at step {step}")
    if args.delay:
        time.sleep(args.delay)
time.sleep(args.hold)
mon.close()
print("closed", flush=True)
