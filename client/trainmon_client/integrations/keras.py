"""Keras 3: ``model.fit(..., callbacks=[TrainmonCallback()])`` publishes to ``trainmon watch``.

What is sent, each record with the global step (batches done since epoch 0, across
epochs: the last batch of epoch ``e`` of ``s`` steps is step ``(e + 1) * s``) and the
epoch as Keras numbers it (from 0):

- after every training batch, the batch's logs: ``loss`` and each compiled metric, as
  Keras 3 gives them to callbacks and its progress bar shows them, running means since
  the start of the epoch (not the batch's own loss);
- at the end of each epoch, what the epoch's logs add to the last batch's: ``val_*``
  from ``validation_data`` (and anything other callbacks put there, e.g.
  ``learning_rate``);
- totals from ``fit``'s arguments (``epochs``, and ``epochs`` times the steps per epoch
  when Keras knows them) and a little config (optimizer, backend, parameters).

The Monitor is opened when ``fit`` starts and closed when it ends (the monitor shows the
run finished); one given with ``monitor=`` is used as it is and left open. Batches of
``evaluate`` and ``predict`` are not sent (validation arrives as ``val_*``).

Importing this module loads neither Keras nor a backend (that waits for the first use
of ``TrainmonCallback``); without Keras installed it raises ImportError.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

from trainmon_client.arguments import config_arg

if TYPE_CHECKING:
    from trainmon_client.monitor import Monitor

__all__ = ["TrainmonCallback"]

if importlib.util.find_spec("keras") is None:
    raise ImportError(
        "trainmon_client.integrations.keras needs Keras 3 and a backend: "
        "pip install keras torch (or jax, or tensorflow)"
    )


class TrainmonPublisher:
    """The callback's work, apart from Keras's Callback class (see ``TrainmonCallback``).

    Args:
        monitor: a Monitor to publish with, left open at the end of ``fit``; by
            default the callback opens its own when ``fit`` starts and closes it when
            ``fit`` ends.
        **monitor_args: for the Monitor it opens (``endpoint=``, ``run=``,
            ``config=``, ``record_to=``... as ``Monitor`` takes them).
    """

    # Set by Keras (set_params, set_model) before training starts.
    params: Any
    model: Any

    def __init__(self, *, monitor: Monitor | None = None, **monitor_args: Any) -> None:
        super().__init__()
        if monitor is not None and monitor_args:
            raise TypeError("give either monitor= or Monitor arguments, not both")
        if "config" in monitor_args:
            config_arg(monitor_args["config"])  # (a wrong one raises here, not in fit)
        self.monitor = monitor
        self._own = monitor is None
        self._monitor_args = monitor_args
        self._steps: int | None = None  # per epoch, when Keras knows it
        self._epoch = 0
        self._base = 0  # the global step before this epoch's first batch
        self._step = 0  # the global step of the last batch
        self._batch_keys: frozenset[str] = frozenset()

    @property
    def step(self) -> int:
        """The global step of the last training batch published (0 before any)."""
        return self._step

    def on_train_begin(self, logs: Any = None) -> None:
        params = self.params or {}
        epochs, steps = params.get("epochs"), params.get("steps")
        self._steps = steps if isinstance(steps, int) and steps > 0 else None
        self._epoch = self._base = self._step = 0
        if self._own:
            from trainmon_client.monitor import Monitor

            self.monitor = Monitor(**self._monitor_args)
        monitor = self._publishing()
        total_steps = epochs * self._steps if epochs is not None and self._steps else None
        monitor.set_totals(total_epochs=epochs, total_steps=total_steps)
        monitor.set_config(self._config(epochs))

    def _config(self, epochs: Any) -> dict[str, Any]:
        """What the monitor shows of this fit: epochs and steps, optimizer, backend."""
        keras = importlib.import_module("keras")
        config: dict[str, Any] = {"epochs": epochs, "steps_per_epoch": self._steps}
        config["keras_backend"] = str(keras.backend.backend())
        model: Any = getattr(self, "model", None)
        optimizer = getattr(model, "optimizer", None)
        if optimizer is not None:
            config["optimizer"] = type(optimizer).__name__
        with contextlib.suppress(Exception):  # (no model, or one not built: no count)
            config["parameters"] = int(model.count_params())
        return {key: value for key, value in config.items() if value is not None}

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self._epoch = epoch
        # From the epoch's number where the steps per epoch are known (fit's
        # initial_epoch, a restored backup), else on from the last step.
        self._base = epoch * self._steps if self._steps else self._step

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        # ``batch`` is the index in the epoch of the last batch run (with
        # steps_per_execution > 1 Keras calls this once for several batches).
        self._step = self._base + batch + 1
        logs = dict(logs or {})
        self._batch_keys = frozenset(logs)
        self._publishing().log(logs, step=self._step, epoch=self._epoch)

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        added = {k: v for k, v in (logs or {}).items() if k not in self._batch_keys}
        if added:
            self._publishing().log(added, step=self._step, epoch=epoch)

    def on_train_end(self, logs: Any = None) -> None:
        if self._own and self.monitor is not None:
            self.monitor.close()
            self.monitor = None

    def _publishing(self) -> Monitor:
        """The Monitor to log with (one is opened if fit's start was missed)."""
        if self.monitor is None:
            from trainmon_client.monitor import Monitor

            self.monitor = Monitor(**self._monitor_args)
        return self.monitor


def _callback_class() -> type:
    """``TrainmonPublisher`` as a ``keras.callbacks.Callback`` (Keras is imported here)."""
    callback = importlib.import_module("keras.callbacks").Callback
    cls = type("TrainmonCallback", (TrainmonPublisher, callback), {})
    cls.__module__ = __name__
    cls.__doc__ = """A Keras 3 callback that publishes ``fit``'s batches and epochs, ``val_*``
    included, to ``trainmon watch``: ``model.fit(..., callbacks=[TrainmonCallback()])``.

    Args as :class:`TrainmonPublisher`'s: ``monitor=`` a Monitor of yours, or the
    arguments of the Monitor it opens (``endpoint=``, ``run=``, ...).
    """
    return cls


if TYPE_CHECKING:  # (for type checkers: Keras's Callback has no type information)
    TrainmonCallback = TrainmonPublisher


def __getattr__(name: str) -> Any:
    # The class is made on first use, so importing this module loads no Keras.
    if name == "TrainmonCallback":
        cls = _callback_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
