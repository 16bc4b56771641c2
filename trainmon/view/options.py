"""How the dashboard is shown: the options keys change, never records."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ViewOptions"]


@dataclass(frozen=True, slots=True)
class ViewOptions:
    """How to show the state; changed by keys, never by records."""

    history: int = 100  # values in the loss sparkline
    run: str | None = None  # show this run, else the most recently active
    paused: bool = False
    paused_records: int = 0  # records received since the view was paused
    stall_after_s: float = 60.0
    address: str = ""  # where the monitor listens or connects, for the waiting screen
    connecting: bool = False  # it connects (--connect): training listens at the address
    warnings: tuple[str, ...] = ()  # said at start (listening unencrypted beyond this host)
    interactive: bool = True
    notice: str = ""  # a passing message in the footer, e.g. where a screenshot went
    chart: bool = False  # the main metric as a line chart of the whole run (key c)
    smoothing: float = 0.6  # EMA weight of the chart's smoothed line (key s cycles)
    help: bool = False  # the keys overlay (key ?)
    grid: bool = False  # every metric's chart, a page at a time (key g)
    page: int = 0  # the grid's page (keys ] and [)
    metric: str | None = None  # the main metric; None: loss, else the first logged
    zoom: int = 0  # each level halves the steps shown (keys + and -)
    window: tuple[float, float] | None = None  # steps panned to; None follows (arrows, f)
    log_y: bool = False  # logarithmic y axis (key y)
    robust: bool = False  # y range from the 5th-95th percentile (key i)
    worker: str | None = None  # the worker whose curves are shown; None: the lead (key w)
    workers_mode: str = "one"  # one, band (min/mean/max over workers) or lines (key b)
    overlay: str | None = None  # a run whose main metric is drawn over this one's (key o)
    runs_list: bool = False  # the list of runs (key R)
    # Runs drawn under the shown one, each in its own colour (trainmon compare, watch
    # --compare); one of them is shown only when chosen (--run, the r key).
    compared: tuple[str, ...] = ()
    time_axis: bool = False  # the x axis can be seconds (trainmon compare): the footer says t
    seconds: bool = False  # x axis: seconds since each run's first record (key t), not steps
    # Every run shown had ended before the dashboard began (trainmon compare): "ago"
    # would count from the newest run's last record, so times are told from each
    # run's end or not at all.
    ended: bool = False
