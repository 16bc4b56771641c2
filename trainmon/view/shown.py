"""What the dashboard shows of the state: the run, its main metric, the worker whose
curves are drawn, and the worker a metric is read from."""

from __future__ import annotations

from trainmon.names import HELD_OUT_LOSS_NAMES, LOSS_NAMES, first_trained
from trainmon.state import Run, RunState, Series, Worker
from trainmon.view.options import ViewOptions

__all__ = ["main_metric", "metric_source", "shown_run", "shown_worker"]


def shown_run(state: RunState, opts: ViewOptions) -> Run | None:
    """The run on screen: the one asked for (``--run``, the r key) once it is known and
    until the state has it chosen, then ``RunState.current`` (the run being looked at
    stays unless it ends while another is live). Reads only: the dashboard's loops
    keep the choice with ``RunState.settle``."""
    if opts.run is not None and opts.run != state.chosen and opts.run in state.runs:
        return state.runs[opts.run]
    return state.current()


def main_metric(run: Run, opts: ViewOptions) -> str | None:
    """The metric shown large: the chosen one, else the training loss, else a held-out
    loss (a run may log only ``val_loss``), else the first logged."""
    if opts.metric is not None and opts.metric in run.metric_names:
        return opts.metric
    return (
        run.find_metric(LOSS_NAMES)
        or run.find_metric(HELD_OUT_LOSS_NAMES)
        or first_trained(run.metric_names)
    )


def shown_worker(run: Run, opts: ViewOptions) -> Worker | None:
    """The worker whose curves are drawn: the chosen one, else the lead."""
    if opts.worker is not None and opts.worker in run.workers:
        return run.workers[opts.worker]
    return run.lead


def metric_source(run: Run, name: str) -> tuple[Series, Worker] | None:
    """Metric ``name`` of ``run`` and the worker it is read from: the lead, else the
    first worker that logs it (rank 1's data loading time; a pool's parent, whose
    children log no loss), so no worker's metric is left out."""
    lead = run.lead
    if lead is not None:
        series = lead.series.get(name)
        if series is not None:
            return series, lead
    holders = [w for w in run.workers.values() if name in w.series]
    if not holders:
        return None
    worker = min(holders, key=lambda w: (w.sort_key()[:2], w.first_seen))
    return worker.series[name], worker
