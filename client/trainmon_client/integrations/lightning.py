"""Lightning: ``Trainer(logger=TrainmonLogger())`` publishes what Lightning logs, from
every rank, to ``trainmon watch`` (beside other loggers too: ``logger=[csv, TrainmonLogger()]``).

- Values: each ``log_metrics(metrics, step)`` call is one record at Lightning's step
  (its optimizer steps); the ``epoch`` Lightning adds to the metrics becomes the
  record's epoch, not a metric.
- Config: ``log_hyperparams`` (the module's and datamodule's ``save_hyperparameters()``,
  sent by Lightning at each start) becomes the run's config, each time it is called.
- Totals: a Lightning ``Logger`` is never handed the Trainer, but at the start of each
  fit, validate or test it is handed the LightningModule (``log_graph``, called
  whenever hyperparameters are logged, which is Lightning's default), and the module
  knows its Trainer: the total epochs and steps come from ``max_epochs``,
  ``max_steps`` and the training batches (2.5 epochs where ``max_steps`` ends one
  part-way), once the training data is loaded. The logger is a ``Callback`` too: with
  ``enable_autolog_hparams=False``, pass it in ``callbacks=[...]`` as well for totals.
- Ranks: nothing here is rank-zero-only (unlike Lightning's own loggers); every rank
  publishes its own values, and the ranks that Lightning's ``ddp`` launcher starts
  (told their local rank, not their rank) share the run and show their global ranks. (Across
  machines, each machine's ranks share a run: give all one, ``$TRAINMON_RUN``.)

Importing this module raises ImportError, saying what to install, when neither
``lightning`` nor ``pytorch_lightning`` is installed, and loads neither: TrainmonLogger
is made on first use, from ``lightning.pytorch`` or else ``pytorch_lightning`` (the one
the process has loaded already comes first).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import math
import os
import sys
import threading
import types
from argparse import Namespace
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from trainmon_client.arguments import _script_name, run_name
from trainmon_client.identity import _RANK_VARS, _started
from trainmon_client.monitor import Monitor
from trainmon_client.text import MAX_NAME_CHARS, clean_text

__all__ = ["TrainmonLogger"]

if TYPE_CHECKING:
    TrainmonLogger: Any  # (a subclass of Lightning's Logger, made by __getattr__ below)

_INSTALL = (
    "trainmon_client.integrations.lightning needs Lightning: "
    "pip install lightning (or pip install pytorch-lightning)"
)


def _lightning() -> Any:
    """``lightning.pytorch`` or ``pytorch_lightning``, the one already loaded first."""
    names = ["lightning.pytorch", "pytorch_lightning"]
    if "pytorch_lightning" in sys.modules and "lightning" not in sys.modules:
        names.reverse()
    for name in names:
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name not in (name, name.split(".")[0]):
                raise  # Lightning is there but something it needs is not: say that
    raise ImportError(_INSTALL, name="lightning")


if all(importlib.util.find_spec(name) is None for name in ("lightning", "pytorch_lightning")):
    raise ImportError(_INSTALL, name="lightning")

_made: list[type] = []  # TrainmonLogger, once made
_making = threading.Lock()


def __getattr__(name: str) -> Any:
    """``TrainmonLogger``, made on first use: Lightning (a few seconds to import, and
    whichever of its two packages the process uses) loads then, not with this module."""
    if name != "TrainmonLogger":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with _making:
        if not _made:
            pl = _lightning()
            bases = (_Logging, pl.loggers.Logger, pl.Callback)
            made = types.new_class("TrainmonLogger", bases, exec_body=_named)
            _made.append(made)
    return _made[0]


def _named(namespace: dict[str, Any]) -> None:
    namespace.update(__module__=__name__, __qualname__="TrainmonLogger", __doc__=_Logging.__doc__)


class _Logging:
    """A Lightning logger (and callback) that publishes to ``trainmon watch``.

    ``Trainer(logger=TrainmonLogger())`` is all it takes. The arguments are the
    :class:`~trainmon_client.Monitor`'s (``endpoint``, ``run``, ``bind``,
    ``record_to``, ``curve_secret`` ...), checked here; the Monitor itself starts on
    the first thing Lightning logs, in the process (rank) that logs it, and is
    :attr:`monitor` (also :attr:`experiment`) for alerts or anything else.

    :attr:`name` is ``"trainmon"`` and :attr:`version` the run name, so checkpoints go
    to ``DEFAULT_ROOT_DIR/trainmon/RUN/checkpoints`` when this is the first logger.
    """

    def __init__(
        self, endpoint: str | None = None, *, run: str | None = None, **monitor: Any
    ) -> None:
        super().__init__()  # (Lightning's Logger and Callback, in TrainmonLogger)
        inspect.signature(Monitor).bind(endpoint, **monitor)  # TypeError now, not mid-run
        self._run = run_name(run if run is not None else _launched_run(os.environ))
        self._endpoint = endpoint
        self._options = monitor
        self._monitor: Monitor | None = None
        self._trainer: Any = None
        self._config: dict[str, Any] = {}
        self._totals_known = False  # the final totals (the training data loaded) were set

    # -- what Lightning asks of a logger ----------------------------------------------

    @property
    def name(self) -> str:
        return "trainmon"

    @property
    def version(self) -> str:
        """The run name, as the monitor shows it."""
        return self._run

    @property
    def monitor(self) -> Monitor:
        """This process's Monitor (started now if nothing was logged yet)."""
        return self._monitor if self._monitor is not None else self._start()

    @property
    def experiment(self) -> Monitor:
        """The Monitor, on every rank (not a rank-zero-only dummy)."""
        return self.monitor

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """One record: the metrics at Lightning's ``step``, ``epoch`` as its epoch."""
        monitor = self.monitor
        if not self._totals_known and self._trainer is not None and _fitting(self._trainer):
            self._set_totals()  # once the training data is loaded
        values = dict(metrics)
        epoch = values.pop("epoch", None)
        monitor.log(values, step=step, epoch=epoch)

    def log_hyperparams(
        self, params: Mapping[str, Any] | Namespace, *args: Any, **kwargs: Any
    ) -> None:
        """The hyperparameters become (are added to) the run's config."""
        config = vars(params) if isinstance(params, Namespace) else dict(params)
        config = {str(key): value for key, value in config.items()}
        if self._monitor is None:
            self._config.update(config)  # sent in the Monitor's first hello
        else:
            self._monitor.set_config(config)

    def log_graph(self, model: Any, input_array: Any = None) -> None:
        """Called with the LightningModule at each start: it knows the Trainer."""
        trainer = getattr(model, "_trainer", None)  # (model.trainer raises if not attached)
        if trainer is not None:
            self._found(trainer)
        if self._monitor is None:
            self._start()  # the worker shows as soon as training starts

    def finalize(self, status: str) -> None:
        """At the end of a fit, validate or test; a failure is raised as an alert. The
        Monitor stays open for what follows (it closes at exit, or ``monitor.close()``)."""
        if status == "failed" and self._monitor is not None:
            self._monitor.alert("Lightning: training failed")

    # -- as a callback (only if also passed in callbacks=[...]) -----------------------

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        self._found(trainer)

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self._found(trainer)

    # -- internals --------------------------------------------------------------------

    def _found(self, trainer: Any) -> None:
        """The Trainer is known: at the start of a fit, its totals."""
        self._trainer = trainer
        if _fitting(trainer):
            self._totals_known = False
            if self._monitor is not None:
                self._set_totals()

    def _start(self) -> Monitor:
        """The Monitor of this process (Lightning asks for it, as ``experiment``, once the
        processes of a distributed run know their ranks), with the config so far."""
        with _ranks_in_environ():
            monitor = Monitor(
                self._endpoint, run=self._run, config=self._config or None, **self._options
            )
        self._monitor = monitor
        if self._trainer is not None and _fitting(self._trainer):
            self._set_totals()
        return monitor

    def _set_totals(self) -> None:
        epochs, steps, final = _totals(self._trainer)
        self._totals_known = final
        if epochs is not None or steps is not None:
            self.monitor.set_totals(total_epochs=epochs, total_steps=steps)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (``ddp_spawn``) without the Monitor and Trainer: each process that
        logs starts its own Monitor."""
        state = dict(self.__dict__)
        state.update(_monitor=None, _trainer=None)
        return state


def _fitting(trainer: Any) -> bool:
    state = getattr(trainer, "state", None)
    return getattr(state, "fn", None) == "fit"


def _totals(trainer: Any) -> tuple[float | None, int | None, bool]:
    """The epochs (fractional where ``max_steps`` ends one part-way) and optimizer steps
    the fit will do, as far as known; and whether they are final (the number of
    training batches is known once the training data is loaded)."""
    max_epochs = trainer.max_epochs
    epochs: float | None = max_epochs if max_epochs is not None and max_epochs > 0 else None
    steps: int | None = trainer.max_steps if trainer.max_steps > 0 else None
    if trainer.train_dataloader is None:
        return epochs, steps, False
    batches = trainer.num_training_batches
    if not math.isfinite(batches) or batches <= 0:
        return epochs, steps, True  # an iterable dataset: epochs of no known length
    per_epoch = math.ceil(batches / trainer.accumulate_grad_batches)
    if epochs is not None:
        whole = per_epoch * math.ceil(epochs)  # (max_epochs is whole)
        steps = whole if steps is None else min(steps, whole)
    if steps is not None:
        epochs = steps / per_epoch
    return epochs, steps, True


def _launched_run(env: Mapping[str, str]) -> str | None:
    """The run of a rank started by Lightning's own ``ddp`` launcher, which starts ranks
    1 and up as children of rank 0 and tells them only ``LOCAL_RANK`` (and
    ``NODE_RANK``): the name rank 0 gets by default (its script and start), so that
    all share one run. None for anything else (the Monitor's default knows it)."""
    others = ("TRAINMON_RUN", "TORCHELASTIC_RUN_ID", "GROUP_RANK", "SLURM_JOB_ID")
    local = env.get("LOCAL_RANK", "")
    if not local.isdigit() or "NODE_RANK" not in env or any(env.get(n) for n in others):
        return None
    if any(name in env for name in _RANK_VARS):
        return None  # a launcher that names ranks (MPI, PMI ...)
    launcher = os.getpid() if int(local) == 0 else os.getppid()
    script = clean_text(_script_name()).replace(" ", "_")
    suffix = clean_text(_started(launcher)).replace(" ", "_")[: MAX_NAME_CHARS // 2]
    return f"{script[: MAX_NAME_CHARS - len(suffix) - 1]}-{suffix}"


@contextlib.contextmanager
def _ranks_in_environ() -> Iterator[None]:
    """While the Monitor starts: the rank and world of torch.distributed's process group
    (Lightning starts it before anything is logged), in the launcher variables the
    Monitor reads, where no launcher set them (Lightning's ``ddp`` launcher sets only
    ``LOCAL_RANK`` and ``WORLD_SIZE``, ``ddp_spawn`` none)."""
    added: dict[str, str] = {}
    dist = getattr(sys.modules.get("torch"), "distributed", None)
    if (
        dist is not None
        and dist.is_available()
        and dist.is_initialized()
        and not any(name in os.environ for name in _RANK_VARS)
    ):
        added["RANK"] = str(dist.get_rank())
        if "WORLD_SIZE" not in os.environ:
            added["WORLD_SIZE"] = str(dist.get_world_size())
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)
