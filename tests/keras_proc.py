"""A real Keras 3 training for the integration's tests: a tiny Dense model on random
data, fit with validation_data and TrainmonCallback publishing to ENDPOINT.

Writes to OUT (JSON) what Keras itself logged: fit's params, every training batch's
logs as a second callback received them, and the History.
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # (after the backend is chosen)
import numpy as np

from trainmon_client import Monitor
from trainmon_client.integrations.keras import TrainmonCallback

parser = argparse.ArgumentParser()
parser.add_argument("endpoint")
parser.add_argument("out")
parser.add_argument("--run", default="keras")
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--initial-epoch", type=int, default=0)
parser.add_argument("--batches", type=int, default=100, help="batches per epoch")
parser.add_argument("--own-monitor", action="store_true", help="pass monitor=Monitor(...)")
args = parser.parse_args()


class Collector(keras.callbacks.Callback):  # type: ignore[misc]
    """What Keras hands every callback: fit's params and each batch's logs."""

    def __init__(self) -> None:
        super().__init__()
        self.params_seen: dict[str, object] = {}
        self.batches: list[dict[str, object]] = []
        self.epoch = 0

    def on_train_begin(self, logs: object = None) -> None:
        self.params_seen = dict(self.params)

    def on_epoch_begin(self, epoch: int, logs: object = None) -> None:
        self.epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None:
        self.batches.append({"epoch": self.epoch, "batch": batch, "logs": dict(logs or {})})


keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
batch_size = 16
x = rng.normal(size=(args.batches * batch_size, 8)).astype("float32")
y = (x[:, :4].sum(axis=1) > 0).astype("float32")
x_val = rng.normal(size=(64, 8)).astype("float32")
y_val = (x_val[:, :4].sum(axis=1) > 0).astype("float32")

model = keras.Sequential(
    [
        keras.Input((8,)),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(1, activation="sigmoid"),
    ]
)
model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])

mon = Monitor(args.endpoint, run=args.run) if args.own_monitor else None
if mon is not None:
    publisher = TrainmonCallback(monitor=mon)
else:
    publisher = TrainmonCallback(endpoint=args.endpoint, run=args.run)
collector = Collector()
history = model.fit(
    x,
    y,
    batch_size=batch_size,
    epochs=args.epochs,
    initial_epoch=args.initial_epoch,
    validation_data=(x_val, y_val),
    callbacks=[publisher, collector],
    verbose=0,
)
after = {}
if mon is not None:  # left open by the callback: the script logs on after fit
    after = model.evaluate(x_val, y_val, verbose=0, return_dict=True)
    mon.log({f"test_{k}": v for k, v in after.items()}, step=publisher.step)
    mon.close()
with open(args.out, "w") as out:
    json.dump(
        {
            "params": collector.params_seen,
            "batches": collector.batches,
            "history": history.history,
            "epochs": history.epoch,
            "after": after,
        },
        out,
    )
