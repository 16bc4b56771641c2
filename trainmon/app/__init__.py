"""The monitor's loops, which put the parts together: records drained from a source
into the state, keys turned into view options, and frames drawn or lines printed.

:mod:`.live` draws the dashboard and takes keys; :mod:`.plain` prints status lines where
there is no terminal; :mod:`.done` knows when every worker has ended; :mod:`.pacing`
spaces the frames; :mod:`.screen` saves the screen as a picture; :mod:`.settings` holds
how the loops run and when they stop.
"""

from trainmon.app.done import DONE_GRACE_S, DoneWatch, is_done, lost_workers
from trainmon.app.live import run_dashboard
from trainmon.app.pacing import frame_interval
from trainmon.app.plain import run_plain
from trainmon.app.screen import save_screen
from trainmon.app.settings import AppSettings

__all__ = [
    "AppSettings",
    "DONE_GRACE_S",
    "DoneWatch",
    "frame_interval",
    "is_done",
    "lost_workers",
    "run_dashboard",
    "run_plain",
    "save_screen",
]
