"""A tiny training loop written for TensorBoard, as its users write one.

tests/test_tensorboard_shim.py runs it as it is (event files in LOG_DIR) and as a copy
whose import line alone is changed to ``trainmon_client.tensorboard``, and compares.

Usage: python tensorboard_train.py LOG_DIR
"""

import sys

import torch
from torch import nn
from torch.utils.tensorboard import SummaryWriter

BATCH = 4
STEPS_PER_EPOCH = 64
EPOCHS = 2.5  # 160 steps


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    x = torch.randn(BATCH * STEPS_PER_EPOCH, 8)
    y = x @ torch.randn(8, 1) + 0.1 * torch.randn(len(x), 1)
    x_val, y_val = x[:32] + 0.05, y[:32]
    model = nn.Linear(8, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=STEPS_PER_EPOCH, gamma=0.5)
    loss_fn = nn.MSELoss()
    total_steps = int(EPOCHS * STEPS_PER_EPOCH)

    with SummaryWriter(sys.argv[1]) as writer:
        writer.add_text("about", "a linear model on random data")
        val_loss = torch.zeros(())
        for step in range(total_steps):
            start = (step % STEPS_PER_EPOCH) * BATCH
            loss = loss_fn(model(x[start : start + BATCH]), y[start : start + BATCH])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            writer.add_scalar("loss/train", loss, step)  # a tensor that requires grad
            writer.add_scalar("lr", schedule.get_last_lr()[0], step)
            writer.add_scalar("epoch", step / STEPS_PER_EPOCH, step)
            schedule.step()
            if step % 32 == 31:
                with torch.no_grad():
                    val_loss = loss_fn(model(x_val), y_val)
                writer.add_scalars("losses", {"train": loss.item(), "val": val_loss}, step)
                writer.add_histogram("weight", model.weight, step)
                writer.flush()
        writer.add_hparams(
            {"lr": 0.05, "batch_size": BATCH, "optimizer": "SGD"},
            {"hparam/val_loss": val_loss.item()},
            run_name="hparams",
            global_step=total_steps,
        )
        writer.add_graph(model, x[:BATCH])
    writer.close()  # (a second close, as scripts do)


if __name__ == "__main__":
    main()
