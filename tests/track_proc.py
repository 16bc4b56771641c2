"""A real training loop for tests: ``for item in mon.track(dataset)`` over a dataset
whose ``__getitem__`` sleeps (a loader that is the bottleneck), as it is or in a torch
DataLoader (``--batch N``), logging a loss every other step without ``step=``; prints
each logged step and loss as a JSON line."""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from slow_items import SlowItems  # (run as a script: tests/ is on sys.path)

from trainmon_client import Monitor

parser = argparse.ArgumentParser()
parser.add_argument("endpoint")
parser.add_argument("--run", default="r")
parser.add_argument("--items", type=int, default=40)
parser.add_argument("--delay", type=float, default=0.005, help="seconds per item loaded")
parser.add_argument("--epochs", type=float, default=1.5, help="fractional allowed")
parser.add_argument("--batch", type=int, default=0, help="in a torch DataLoader, batches of N")
args = parser.parse_args()


def loader(items: SlowItems) -> Any:
    """The dataset as it is, or in a torch DataLoader of --batch items a batch."""
    if not args.batch:
        return items
    from torch.utils.data import DataLoader

    return DataLoader(items, batch_size=args.batch)


data = SlowItems(args.items, args.delay)
mon = Monitor(args.endpoint, run=args.run, total_epochs=args.epochs)
step = 0
for epoch in range(math.ceil(args.epochs)):
    mon.set_epoch(epoch)
    left = min(args.epochs - epoch, 1.0)  # the last epoch may be part of one
    part = data if left == 1.0 else SlowItems(round(args.items * left), args.delay)
    for index, _ in enumerate(mon.track(loader(part))):
        loss = 1.0 / (step + 1)  # (the body: quick next to loading)
        if index % 2 == 0:
            mon.log(loss=loss)
            print(json.dumps({"step": step, "loss": loss}), flush=True)
        step += 1
mon.close()
