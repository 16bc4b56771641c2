"""A real Hugging Face Trainer run with TrainmonCallback, for the integration tests: a
tiny BERT made from a config (random weights, nothing downloaded) learns a synthetic
task on the CPU. Writes the Trainer's own ``state.log_history`` as JSON (one file per
rank: OUT.RANK.json) for the test to compare with what the monitor received.

    python tests/hf_train_proc.py OUT [--epochs 2.5 | --max-steps 200] [--evaluate-only]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from typing import Any

import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

from trainmon_client.integrations.transformers import TrainmonCallback

VOCAB, LENGTH = 32, 8


class Synthetic(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    """Token sequences labelled by whether token 1 is among them."""

    def __init__(self, size: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(2, VOCAB, (size, LENGTH), generator=generator)
        marked = torch.rand(size, generator=generator) < 0.5
        self.ids[marked, torch.randint(0, LENGTH, (int(marked.sum()),), generator=generator)] = 1
        self.labels = marked.long()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.labels[i]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--epochs", type=float, default=2.5)
    parser.add_argument("--max-steps", type=int, default=-1)
    parser.add_argument("--train-size", type=int, default=640)
    parser.add_argument("--evaluate-only", action="store_true")
    options = parser.parse_args()
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=LENGTH,
        num_labels=2,
    )
    with tempfile.TemporaryDirectory() as output_dir:
        args = TrainingArguments(
            output_dir=output_dir,
            num_train_epochs=options.epochs,
            max_steps=options.max_steps,
            per_device_train_batch_size=8,
            per_device_eval_batch_size=32,
            learning_rate=3e-3,
            logging_steps=5,
            eval_strategy="steps",
            eval_steps=50,
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            use_cpu=True,
            dataloader_num_workers=0,
            hub_token="hf_not_a_real_token_0123456789",
            seed=0,
        )
        trainer = Trainer(
            model=BertForSequenceClassification(config),
            args=args,
            train_dataset=Synthetic(options.train_size, 1),
            eval_dataset=Synthetic(64, 2),
            callbacks=[TrainmonCallback()],
        )
        if not options.evaluate_only:
            trainer.train()
        trainer.evaluate()
        history: list[dict[str, Any]] = trainer.state.log_history
    rank = os.environ.get("RANK", "0")
    with open(f"{options.out}.{rank}.json", "w") as out:
        json.dump(history, out)


if __name__ == "__main__":
    main()
