"""Hugging Face transformers: the Trainer's training, published to ``trainmon watch``.

    from trainmon_client.integrations.transformers import TrainmonCallback

    trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=dev,
                      callbacks=[TrainmonCallback()])

What the Trainer logs goes out as it logs it (``on_log``), under its own names
(``loss``, ``grad_norm``, ``learning_rate``, ``eval_loss``, ``eval_accuracy``, ...), with
the record's step ``state.global_step`` and its (fractional) epoch ``state.epoch``: the
``epoch`` in the Trainer's logs is never a metric. Numbers known once, at the end of
training or of an evaluation (``train_runtime``, ``total_flos``, ``train_loss``,
``*_per_second``, ``*_runtime``, memory deltas), go to the run's summary
(``Monitor.set_summary``), printed when the monitor exits, never charted. The totals
(steps, and epochs, 2.5 too) are sent when training begins; the config is the
``TrainingArguments``' ``to_dict()``, those set to other than their defaults first.
Every rank publishes, with its rank. Metrics of ``trainer.predict()`` (``test_*``) go
out too. Nothing here ever stops training: a problem is said once on stderr and the
Trainer goes on.

The Trainer's ``report_to`` takes only the names of integrations it ships, so trainmon
is never named there: it is this callback, beside whatever ``report_to`` turns on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import math
from collections.abc import Mapping
from typing import Any, Final

from trainmon_client.logs import Warnings
from trainmon_client.monitor import Monitor
from trainmon_client.records import MAX_STEP

try:  # (looked up by name: type checking never reads into transformers and torch)
    _TrainerCallback: Any = importlib.import_module("transformers").TrainerCallback
except ImportError as exc:  # not installed, or installed without what it needs
    raise ImportError(
        "trainmon_client.integrations.transformers needs Hugging Face transformers "
        f"with torch ({exc}): pip install 'transformers[torch]'"
    ) from exc

__all__ = ["TrainmonCallback", "arguments_config", "split_logs"]

# End-of-run numbers: the run's summary, not a chart's one point.
_FINAL_NAMES: Final = frozenset({"total_flos", "train_loss"})
_FINAL_ENDINGS: Final = ("_runtime", "_per_second", "_preparation_time")


class TrainmonCallback(_TrainerCallback):  # type: ignore[misc]
    """Publishes a ``transformers.Trainer``'s logs to ``trainmon watch``:
    ``Trainer(..., callbacks=[TrainmonCallback()])``.

    Keyword arguments go to :class:`~trainmon_client.Monitor` (``run=``,
    ``endpoint=``, ``record_to=``, ...); the Monitor is made at the first event (the
    Trainer's construction) and is :attr:`monitor`. It closes when the process ends
    (or with :meth:`close`), so a ``trainer.evaluate()`` after training is published too.
    """

    def __init__(self, **monitor_args: Any) -> None:
        self.monitor_args = monitor_args
        self.monitor: Monitor | None = None
        self._warnings = Warnings()

    def on_init_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """The Trainer is made: make the Monitor, with the arguments as the config."""
        self._guarded("init", self._start, args)

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Training starts: the totals are known (max steps, epochs)."""
        self._guarded("train begin", self._totals, args, state)

    def on_log(
        self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any
    ) -> None:
        """The Trainer logged (training, evaluation, the end of training)."""
        self._guarded("log", self._publish, args, state, logs)

    def on_predict(
        self, args: Any, state: Any, control: Any, metrics: Any = None, **kwargs: Any
    ) -> None:
        """``trainer.predict()``'s metrics, which the Trainer does not log."""
        self._guarded("predict", self._publish, args, state, metrics)

    def close(self) -> None:
        """Deliver what is queued and say the run is done (else at the process's end)."""
        if self.monitor is not None:
            self.monitor.close()

    # -- internals ------------------------------------------------------------------

    def _guarded(self, event: str, action: Any, *args: Any) -> None:
        """``action(*args)``; anything it raises is said once and training goes on."""
        try:
            action(*args)
        except Exception as exc:
            self._warnings.once(event, f"TrainmonCallback on {event}: {exc!r}", dropped=False)

    def _start(self, args: Any) -> Monitor:
        """The Monitor, made on first use, the arguments sent as its config."""
        if self.monitor is None:
            self.monitor = Monitor(**self.monitor_args)
            if hasattr(args, "to_dict"):
                self.monitor.set_config(arguments_config(args))
        return self.monitor

    def _totals(self, args: Any, state: Any) -> None:
        """The steps the run will do and its epochs: ``num_train_epochs`` as given (2.5),
        or with ``max_steps`` the epochs the Trainer counts (whole)."""
        monitor = self._start(args)
        steps = _total(getattr(state, "max_steps", None))
        if (getattr(args, "max_steps", 0) or 0) > 0:
            epochs = _total(getattr(state, "num_train_epochs", None))
        else:
            epochs = _total(getattr(args, "num_train_epochs", None))
        if steps is not None or epochs is not None:
            monitor.set_totals(total_epochs=epochs, total_steps=steps)

    def _publish(self, args: Any, state: Any, logs: Any) -> None:
        """One record of the metrics in ``logs`` at the Trainer's step and epoch; the
        end-of-run numbers into the summary."""
        metrics, final = split_logs(logs)
        monitor = self._start(args)
        if final:
            monitor.set_summary(final)
        if metrics:
            monitor.log(metrics, step=state.global_step, epoch=state.epoch)


def split_logs(logs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Trainer's ``logs`` as the metrics to chart and the end-of-run numbers; the
    ``epoch`` (the record's own) and what is not a number (a text) left out."""
    metrics: dict[str, Any] = {}
    final: dict[str, Any] = {}
    if not isinstance(logs, Mapping):
        return metrics, final
    for name, value in logs.items():
        if name == "epoch" or not isinstance(name, str) or not _is_number(value):
            continue
        if name in _FINAL_NAMES or name.endswith(_FINAL_ENDINGS) or _is_memory(name):
            final[name] = value
        else:
            metrics[name] = value
    return metrics, final


def arguments_config(args: Any) -> dict[str, Any]:
    """``TrainingArguments.to_dict()`` (which masks every ``*_token``), the arguments
    set to other than their defaults first: the monitor keeps and shows the first 64
    of the hundred and more."""
    values: dict[str, Any] = args.to_dict()
    if not dataclasses.is_dataclass(args):
        return values
    changed = {}
    for field in dataclasses.fields(args):
        name, default = field.name, field.default
        if name in values and default is not dataclasses.MISSING and not name.endswith("_token"):
            with contextlib.suppress(Exception):  # (a value that cannot be compared)
                if values[name] != default:
                    changed[name] = values[name]
    return {**changed, **values}


def _is_number(value: Any) -> bool:
    return not isinstance(value, (str, bytes)) and hasattr(value, "__float__")


def _is_memory(name: str) -> bool:
    """The Trainer's memory deltas (``train_mem_cpu_alloc_delta``; with
    ``skip_memory_metrics=False``): measured once per call."""
    return "_mem_" in name and name.endswith("_delta")


def _total(value: Any) -> float | None:
    """A total the Monitor takes, or None: the Trainer says ``sys.maxsize`` epochs for a
    dataset of unknown length, and 0 where it does not know."""
    if not _is_number(value):
        return None
    number = float(value)
    return number if 0 < number <= MAX_STEP and math.isfinite(number) else None
