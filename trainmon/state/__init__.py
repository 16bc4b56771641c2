"""What the monitor knows: runs, workers and metric series, built from the records.

Records flow one way: the sources hand them to :class:`RunState` (``runstate``), whose
methods are the only writers of the state; the alerts module derives alerts from it and
hands them back through :meth:`RunState.note_alerts`; the view reads it. Plain Python
with no I/O and no clock of its own: time comes from the records and from the ``now``
the caller passes, so tests step time by hand. Every collection is bounded (``limits``).

Modules, leaves first: ``limits`` (the bounds), ``config`` (a run's hyperparameters as
text), ``series`` (one metric over time), ``worker`` (one process), ``run`` (its
workers together: lead, progress, ETA), ``alerts`` (what to tell the person watching),
``runstate`` (the apply path).
"""

from __future__ import annotations

from trainmon.state.alerts import SPIKE_FACTOR, Alert, AlertWatch
from trainmon.state.config import config_items
from trainmon.state.limits import DONE_GRACE_S, LOST_AFTER_S, RATE_WINDOW_S, WARMUP_RECORDS, Limits
from trainmon.state.run import Run
from trainmon.state.runstate import RunState
from trainmon.state.series import Bucket, BucketColumns, Downsampled, Series
from trainmon.state.worker import Worker, worker_label

__all__ = [
    "Alert",
    "AlertWatch",
    "Bucket",
    "BucketColumns",
    "DONE_GRACE_S",
    "Downsampled",
    "LOST_AFTER_S",
    "Limits",
    "RATE_WINDOW_S",
    "Run",
    "RunState",
    "SPIKE_FACTOR",
    "Series",
    "WARMUP_RECORDS",
    "Worker",
    "config_items",
    "worker_label",
]
