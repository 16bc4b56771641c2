"""The metric names the dashboard knows: losses, accuracies, gradient norms and learning
rates, for training and for held-out data, as training code commonly logs them, and the
samples and tokens of a step; and how a value that is not a finite number is marked
(:func:`mark_of`).

A name is a base (``loss``, ``accuracy``/``acc``, ``grad_norm``, ``lr``/``learning_rate``)
with an optional phase in front (``train_``, ``val_``, ``eval_`` as the Hugging Face
Trainer writes it, ``test_``; ``/`` may stand for ``_``) and, for losses and
accuracies, an optional ``_step`` or ``_epoch`` behind (Lightning's ``on_step`` and
``on_epoch``). Matching ignores case.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Final

__all__ = [
    "ACCURACY_NAMES",
    "DATA_WAIT_NAME",
    "GRAD_NAMES",
    "HELD_OUT_LOSS_NAMES",
    "HELD_OUT_NAMES",
    "INPUT_BOUND_SHARE",
    "LOSS_NAMES",
    "LR_NAMES",
    "SAMPLE_NAMES",
    "TOKEN_NAMES",
    "TRAIN_ACCURACY_NAMES",
    "SYSTEM_PREFIX",
    "is_accuracy",
    "is_loss",
    "first_trained",
    "mark_of",
    "system_only",
]

_TRAIN: Final = ("", "train", "training")
_HELD_OUT: Final = ("val", "eval", "valid", "validation", "test")
_SUFFIXES: Final = ("", "_step", "_epoch")


def _names(
    phases: tuple[str, ...], bases: tuple[str, ...], suffixes: tuple[str, ...] = _SUFFIXES
) -> tuple[str, ...]:
    """Every spelling of ``bases`` under ``phases``, the most usual first (the order
    ``Run.find_metric`` prefers them in)."""
    out = []
    for suffix in suffixes:
        for phase in phases:
            for sep in ("_", "/") if phase else ("",):
                out += [f"{phase}{sep}{base}{suffix}" for base in bases]
    # and TensorBoard's habit, the metric then the phase: loss/train, Loss/test
    out += [f"{base}/{phase}" for phase in phases if phase for base in bases]
    return tuple(dict.fromkeys(out))


# The training loss: the main metric, the "loss" row and the best loss.
LOSS_NAMES: Final = _names(_TRAIN, ("loss",))
HELD_OUT_LOSS_NAMES: Final = _names(_HELD_OUT, ("loss",))  # eval_loss: a validation loss
TRAIN_ACCURACY_NAMES: Final = _names(_TRAIN, ("accuracy", "acc"))
# Any accuracy, the training one first (the plain line's "acc").
ACCURACY_NAMES: Final = TRAIN_ACCURACY_NAMES + _names(_HELD_OUT, ("accuracy", "acc"))
GRAD_NAMES: Final = _names(_TRAIN, ("grad_norm", "gradient_norm", "gradient", "grad"), ("",))
LR_NAMES: Final = _names(_TRAIN, ("lr", "learning_rate"), ("",))
# Held-out losses and accuracies: shown beside the training ones, under their own names.
HELD_OUT_NAMES: Final = HELD_OUT_LOSS_NAMES + ACCURACY_NAMES[len(TRAIN_ACCURACY_NAMES) :]
# Logged per step, they give samples/s and tokens/s from steps/s: the first one logged.
SAMPLE_NAMES: Final = ("samples", "batch_size")
TOKEN_NAMES: Final = ("tokens",)
# The share of step time spent waiting for the next batch (Monitor.track() sends it);
# from INPUT_BOUND_SHARE on, the dashboard says the run is input-bound.
DATA_WAIT_NAME: Final = "loop/data_wait"
INPUT_BOUND_SHARE: Final = 0.3

_ACCURACIES: Final = frozenset(ACCURACY_NAMES)
_LOSSES: Final = frozenset(LOSS_NAMES + HELD_OUT_LOSS_NAMES)


def is_accuracy(name: str) -> bool:
    """An accuracy of any phase: shown as a percentage."""
    return name.lower() in _ACCURACIES


def is_loss(name: str) -> bool:
    """A loss of any phase: lower is better, so its best value is worth showing."""
    return name.lower() in _LOSSES


def mark_of(value: float) -> str:
    """How a value is marked where it cannot be drawn: ``"nan"``, ``"+inf"`` or
    ``"-inf"``, and ``""`` for a finite number."""
    if math.isfinite(value):
        return ""
    if math.isnan(value):
        return "nan"
    return "+inf" if value > 0 else "-inf"


# System metrics a client samples by itself (CPU, memory, GPU: the client's system.py):
# charted and exported like others, left out of the stats panel, and no training progress.
SYSTEM_PREFIX: Final = "sys/"


def system_only(names: Iterable[str]) -> bool:
    """Whether every one of ``names`` is a system metric (``sys/...``)."""
    return all(name.startswith(SYSTEM_PREFIX) for name in names)


def first_trained(names: list[str]) -> str | None:
    """The first of ``names`` that is no system metric (the first of all if none is):
    the main metric of a run that logs no loss."""
    return next((name for name in names if not name.startswith(SYSTEM_PREFIX)), None) or (
        names[0] if names else None
    )
