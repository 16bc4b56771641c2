"""Simulated training workers for ``trainmon demo``, one process each (run as
``python -m trainmon.cli.demo_worker``).

Each worker publishes through the real client, so the demo exercises the same path as
a training script: loss falls with noise (with one spike on rank 0, which the monitor
raises as an alert), accuracy rises, the gradient norm varies, and batch_size and
tokens per step give samples/s and tokens/s.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import random
import time

from trainmon_client import Monitor

STEPS_PER_EPOCH = 40


def simulate(endpoint: str, run: str, rank: int, world: int, epochs: int, step_s: float) -> None:
    """One worker's run: ``epochs`` epochs of ``STEPS_PER_EPOCH`` steps."""
    rng = random.Random(rank)
    slowdown = 1.0 + 0.15 * rank / max(world - 1, 1)  # the last rank is a little slower
    total = epochs * STEPS_PER_EPOCH
    with Monitor(
        endpoint,
        run=run,
        total_epochs=epochs,
        total_steps=total,
        config={"lr": 3e-4, "batch_size": 64, "model": "demo-mlp"},
        record=False,  # a demo's runs are not kept (q leaves no run behind)
    ) as mon:
        step = 0
        for epoch in range(epochs):
            mon.set_epoch(epoch)
            for _ in range(STEPS_PER_EPOCH):
                progress = step / total
                loss = 2.3 * math.exp(-4.0 * progress) + 0.08 + rng.gauss(0, 0.04)
                accuracy = min(0.99, 0.1 + 0.88 * (1 - math.exp(-5.0 * progress)))
                accuracy += rng.gauss(0, 0.01)
                grad_norm = abs(1.5 * math.exp(-3.0 * progress) + rng.gauss(0, 0.15))
                if rank == 0 and step == total * 3 // 5:
                    loss *= 5  # one bad batch: the monitor raises a loss-spike alert
                mon.log(
                    loss=max(loss, 0.01),
                    accuracy=accuracy,
                    grad_norm=grad_norm,
                    lr=3e-4 * 0.5 * (1 + math.cos(math.pi * progress)),
                    batch_size=64,  # per step: the dashboard shows samples/s
                    tokens=64 * 512,  # and tokens/s
                    step=step,
                )
                step += 1
                time.sleep(step_s * slowdown)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--run", required=True)
    parser.add_argument("--rank", type=int, required=True)
    parser.add_argument("--world", type=int, required=True)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--step-s", type=float, default=0.06)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        simulate(args.endpoint, args.run, args.rank, args.world, args.epochs, args.step_s)


if __name__ == "__main__":
    main()
