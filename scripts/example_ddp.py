"""Distributed data-parallel training on the CPU (gloo), every rank publishing to trainmon.

A small MLP learns a noisy linear function; each rank trains on its own shard and
DistributedDataParallel averages the gradients. Every rank logs its loss and gradient
norm (0-d tensors, passed as they are); the monitor shows one worker per rank.

    trainmon watch                                                    # terminal 1
    torchrun --standalone --nproc-per-node 4 scripts/example_ddp.py   # terminal 2

Needs torch (pip install '.[torch]').
"""

from __future__ import annotations

import argparse

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from trainmon_client import Monitor

BATCH = 64


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--endpoint", default=None, help="where the monitor listens")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument(
        "--bind",
        action="store_true",
        help="listen on --endpoint (each local rank on the port + its local rank); "
        "watch with trainmon watch --connect ENDPOINT",
    )
    args = parser.parse_args()

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.set_num_threads(1)
    data = torch.Generator().manual_seed(1234)  # the same data set on every rank
    inputs = torch.randn(4096, 16, generator=data)
    targets = inputs @ torch.randn(16, 1, generator=data) + 0.1 * torch.randn(
        4096, 1, generator=data
    )
    inputs, targets = inputs[rank::world], targets[rank::world]  # this rank's shard
    torch.manual_seed(0)  # the same initial weights on every rank
    model = DistributedDataParallel(
        torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    steps_per_epoch = len(inputs) // BATCH
    with Monitor(
        args.endpoint,
        bind=True if args.bind else None,
        total_epochs=args.epochs,
        total_steps=args.epochs * steps_per_epoch,
        config={"lr": 0.05, "batch": BATCH, "world": world},
    ) as mon:
        for epoch in range(args.epochs):
            mon.set_epoch(epoch)
            order = torch.randperm(len(inputs), generator=torch.Generator().manual_seed(epoch))
            for i in range(steps_per_epoch):
                index = order[i * BATCH : (i + 1) * BATCH]
                loss = torch.nn.functional.mse_loss(model(inputs[index]), targets[index])
                optimizer.zero_grad()
                loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf"))
                optimizer.step()
                mon.log(loss=loss.detach(), grad_norm=grad_norm)
            if rank == 0:
                print(f"epoch {epoch + 1}/{args.epochs} loss {loss.item():.4f}", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
