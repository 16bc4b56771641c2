"""Train a tiny MLP on synthetic spirals and publish its metrics to ``trainmon watch``.

A real (if small) model: a 2 -> 16 -> 3 tanh network, trained with mini-batch SGD and
softmax cross-entropy on a seeded three-arm spiral, written with the standard library
only, so it runs right after ``pip install ./client``. Run it beside the monitor:

    # terminal 1                      # terminal 2
    trainmon watch                    python scripts/example_train.py

Each step logs ``loss``, ``accuracy`` (on the batch), ``grad_norm`` and ``lr``; each
epoch ends with ``val_loss`` and ``val_accuracy`` on a held-out split and a summary line
on stdout. ``--delay`` (seconds per step) paces the run so it can be watched; ``--delay 0``
trains as fast as possible. ``--endpoint`` defaults to ``$TRAINMON_ENDPOINT``, else
the monitor's default (a socket private to this user). For remote attach, listen
instead and connect the monitor to it:

    python scripts/example_train.py --bind --endpoint tcp://0.0.0.0:5556
    trainmon watch --connect tcp://HOST:5556          # on the other machine
"""

from __future__ import annotations

import argparse
import math
import random
import time
from dataclasses import dataclass

from trainmon_client import Monitor

CLASSES = 3
POINTS = 600  # 200 per class
VAL_FRACTION = 0.2
HIDDEN = 16
BATCH_SIZE = 16
LR = 1.0

Example = tuple[tuple[float, float], int]


def make_spirals(n_points: int, rng: random.Random, noise: float = 0.15) -> list[Example]:
    """``n_points`` 2-D points on ``CLASSES`` interleaved spiral arms, labelled by arm."""
    data: list[Example] = []
    per_class = n_points // CLASSES
    for label in range(CLASSES):
        for i in range(per_class):
            radius = (i + 1) / per_class
            angle = label * 2 * math.pi / CLASSES + 1.5 * math.pi * radius
            angle += rng.gauss(0.0, noise)
            data.append(((radius * math.cos(angle), radius * math.sin(angle)), label))
    rng.shuffle(data)
    return data


@dataclass
class Params:
    """The MLP's weights (``w1``: hidden x 2, ``w2``: classes x hidden) and biases."""

    w1: list[list[float]]
    b1: list[float]
    w2: list[list[float]]
    b2: list[float]

    @classmethod
    def init(cls, hidden: int, rng: random.Random) -> Params:
        # Inputs lie in the unit disc: wide first-layer weights give the tanh units
        # steep, varied boundaries to start from.
        w1 = [[rng.gauss(0.0, 3.0) for _ in range(2)] for _ in range(hidden)]
        w2 = [
            [rng.gauss(0.0, 1.0 / math.sqrt(hidden)) for _ in range(hidden)] for _ in range(CLASSES)
        ]
        return cls(w1, [0.0] * hidden, w2, [0.0] * CLASSES)

    @classmethod
    def zeros(cls, hidden: int) -> Params:
        return cls(
            [[0.0, 0.0] for _ in range(hidden)],
            [0.0] * hidden,
            [[0.0] * hidden for _ in range(CLASSES)],
            [0.0] * CLASSES,
        )

    def flat(self) -> list[float]:
        """Every parameter (or gradient) in one list, for the global L2 norm."""
        return (
            [v for row in self.w1 for v in row]
            + self.b1
            + [v for row in self.w2 for v in row]
            + self.b2
        )


def forward(p: Params, x: tuple[float, float]) -> tuple[list[float], list[float]]:
    """The hidden activations and the class probabilities for one point."""
    hidden = [math.tanh(w[0] * x[0] + w[1] * x[1] + b) for w, b in zip(p.w1, p.b1, strict=True)]
    logits = [
        sum(wi * hi for wi, hi in zip(w, hidden, strict=True)) + b
        for w, b in zip(p.w2, p.b2, strict=True)
    ]
    top = max(logits)
    exps = [math.exp(z - top) for z in logits]
    total = sum(exps)
    return hidden, [e / total for e in exps]


def nll(probs: list[float], label: int) -> float:
    return -math.log(max(probs[label], 1e-12))


def predicted(probs: list[float]) -> int:
    return max(range(len(probs)), key=probs.__getitem__)


def train_step(p: Params, batch: list[Example], lr: float) -> tuple[float, float, float]:
    """One SGD step on ``batch``; returns its mean loss, accuracy and gradient norm."""
    g = Params.zeros(len(p.b1))
    loss = 0.0
    correct = 0
    scale = 1.0 / len(batch)
    for x, label in batch:
        hidden, probs = forward(p, x)
        loss += nll(probs, label)
        correct += predicted(probs) == label
        dlogits = [(q - (k == label)) * scale for k, q in enumerate(probs)]
        dhidden = [0.0] * len(hidden)
        for k, d in enumerate(dlogits):
            g.b2[k] += d
            for j, h in enumerate(hidden):
                g.w2[k][j] += d * h
                dhidden[j] += d * p.w2[k][j]
        for j, h in enumerate(hidden):
            dz = dhidden[j] * (1.0 - h * h)  # tanh'
            g.b1[j] += dz
            g.w1[j][0] += dz * x[0]
            g.w1[j][1] += dz * x[1]
    for weights, grads in ((p.w1, g.w1), (p.w2, g.w2)):
        for row, grow in zip(weights, grads, strict=True):
            for i, gv in enumerate(grow):
                row[i] -= lr * gv
    for biases, grads_b in ((p.b1, g.b1), (p.b2, g.b2)):
        for i, gv in enumerate(grads_b):
            biases[i] -= lr * gv
    grad_norm = math.sqrt(sum(v * v for v in g.flat()))
    return loss * scale, correct * scale, grad_norm


def evaluate(p: Params, data: list[Example]) -> tuple[float, float]:
    """Mean loss and accuracy over ``data``."""
    loss = 0.0
    correct = 0
    for x, label in data:
        probs = forward(p, x)[1]
        loss += nll(probs, label)
        correct += predicted(probs) == label
    return loss / len(data), correct / len(data)


def cosine_lr(step: int, total: int, base: float) -> float:
    """``base`` decayed along a half cosine to 5% of it at the last step."""
    return base * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * step / max(total - 1, 1))))


def train(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    data = make_spirals(POINTS, rng)
    n_val = int(len(data) * VAL_FRACTION)
    val, train_set = data[:n_val], data[n_val:]
    params = Params.init(HIDDEN, rng)
    steps_per_epoch = math.ceil(len(train_set) / BATCH_SIZE)
    total_steps = args.epochs * steps_per_epoch
    config = {
        "lr": LR,
        "hidden": HIDDEN,
        "batch_size": BATCH_SIZE,
        "seed": args.seed,
        "model": f"mlp-2-{HIDDEN}-{CLASSES}",
        "data": f"spirals-{POINTS}",
    }
    with Monitor(
        args.endpoint,
        run=args.run,
        bind=args.bind,
        total_epochs=args.epochs,
        total_steps=total_steps,
        config=config,
    ) as mon:
        print(
            f"publishing run {mon.run!r} ({'bind' if args.bind else 'connect'} "
            f"{mon.endpoint}): {args.epochs} epochs x {steps_per_epoch} steps",
            flush=True,
        )
        step = 0
        for epoch in range(args.epochs):
            mon.set_epoch(epoch)
            rng.shuffle(train_set)
            epoch_loss = 0.0
            for start in range(0, len(train_set), BATCH_SIZE):
                lr = cosine_lr(step, total_steps, LR)
                batch = train_set[start : start + BATCH_SIZE]
                loss, accuracy, grad_norm = train_step(params, batch, lr)
                mon.log(step=step, loss=loss, accuracy=accuracy, grad_norm=grad_norm, lr=lr)
                epoch_loss += loss
                step += 1
                if args.delay > 0:
                    time.sleep(args.delay)
            val_loss, val_accuracy = evaluate(params, val)
            mon.log(step=step - 1, val_loss=val_loss, val_accuracy=val_accuracy)
            print(
                f"epoch {epoch + 1:3d}/{args.epochs}  loss {epoch_loss / steps_per_epoch:.4f}"
                f"  val_loss {val_loss:.4f}  val_acc {val_accuracy:.3f}",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Train a tiny MLP on synthetic spirals, publishing to trainmon."
    )
    parser.add_argument("--epochs", type=int, default=20, help="epochs to train (default 20)")
    parser.add_argument(
        "--endpoint",
        default=None,
        help="where to publish (default $TRAINMON_ENDPOINT, else the monitor's private default)",
    )
    parser.add_argument("--run", default=None, help="run name (default: script name and time)")
    parser.add_argument(
        "--bind",
        action="store_true",
        help="listen on the endpoint for monitors to connect (remote attach)",
    )
    parser.add_argument(
        "--delay",
        type=float,
        default=0.06,
        help="seconds to sleep per step so the run can be watched "
        "(default 0.06, ~40 s in all; 0 = full speed)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args()
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    try:
        train(args)
    except KeyboardInterrupt:
        print("interrupted", flush=True)


if __name__ == "__main__":
    main()
