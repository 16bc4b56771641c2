"""A small real Lightning training run with ``TrainmonLogger``, for
tests/test_integration_lightning.py.

A two-layer MLP with random weights on synthetic regression data (nothing downloaded),
``self.log("train_loss")`` every step and ``self.log("val_loss")`` every epoch. Beside
trainmon's logger, a second logger keeps every ``log_metrics`` call Lightning makes, on
every rank, and writes them to ``OUT/rankN.json`` at the end, for the test to compare
with what the monitor received. The endpoint comes from ``$TRAINMON_ENDPOINT``.

    python tests/lightning_proc.py OUT [--devices 2] [--max-epochs 3] [--max-steps 125]
                                       [--fail-at STEP] [--no-autolog]

``--no-autolog``: ``enable_autolog_hparams=False``, with the logger also a callback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import Logger
from torch.utils.data import DataLoader, TensorDataset

from trainmon_client.integrations.lightning import TrainmonLogger


class Tiny(L.LightningModule):
    def __init__(self, lr: float = 0.05, hidden: int = 16, fail_at: int = -1) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["fail_at"])
        self.fail_at = fail_at
        self.net = torch.nn.Sequential(
            torch.nn.Linear(8, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1)
        )

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        if self.global_step == self.fail_at:
            raise RuntimeError(f"failing at step {self.fail_at}, as asked")
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


class Kept(Logger):
    """Every log_metrics call on this rank, as Lightning made it."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[dict[str, Any]] = []

    @property
    def name(self) -> str:
        return "kept"

    @property
    def version(self) -> str:
        return "0"

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.calls.append({"step": step, "metrics": dict(metrics)})

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--max-epochs", type=int, default=3)
    parser.add_argument("--max-steps", type=int, default=-1)
    parser.add_argument("--fail-at", type=int, default=-1)
    parser.add_argument("--no-autolog", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.randn(400, 8)
    y = x[:, :1] * 2 - x[:, 1:2] + 0.1 * torch.randn(400, 1)
    train = DataLoader(TensorDataset(x[:320], y[:320]), batch_size=4, shuffle=True)
    val = DataLoader(TensorDataset(x[320:], y[320:]), batch_size=16)
    kept = Kept()
    trainmon = TrainmonLogger()
    trainer = L.Trainer(
        logger=[trainmon, kept],
        enable_autolog_hparams=not args.no_autolog,
        callbacks=[trainmon] if args.no_autolog else None,
        max_epochs=args.max_epochs,
        max_steps=args.max_steps,
        log_every_n_steps=1,
        accelerator="cpu",
        devices=args.devices,
        strategy="ddp" if args.devices > 1 else "auto",
        default_root_dir=args.out,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(Tiny(fail_at=args.fail_at), train, val)
    (args.out / f"rank{trainer.global_rank}.json").write_text(json.dumps(kept.calls))
    print(f"rank {trainer.global_rank} done", file=sys.stderr)


if __name__ == "__main__":
    main()
