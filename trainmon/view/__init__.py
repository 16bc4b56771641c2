"""The dashboard, drawn from ``RunState`` and ``ViewOptions`` alone, a frame at a time.

No widget keeps data of its own: every frame is rebuilt from the state, so what a person
sees can be tested by rendering to a ``Console`` writing into a ``StringIO``. The view
reads the state and assigns nothing in it, not even which run is shown: ``shown.shown_run``
reads ``RunState.current``, and the dashboard's loops keep the choice with
``RunState.settle``.

The modules: ``options`` (ViewOptions); ``frame`` (render: the panels laid out); a
module per panel (``header``, ``progress``, ``main_panel`` with its ``lines``,
``grid``, ``stats``, ``workers``, ``runs``, ``waiting``, ``help``); the drawing parts
(``chart``, ``fold``, ``sparkline``, ``table``); ``theme``; ``cache`` (what the view
keeps between frames); ``compare`` (runs drawn together, and what is kept beside a state
for them); ``shown`` (which run, metric and worker are on screen) and
``format`` (values as words, shared with ``trainmon.report``).
"""

from __future__ import annotations

from trainmon.view.chart import Line, LineChart, Point, ema, y_range
from trainmon.view.format import format_duration, format_percent, format_rate, format_value
from trainmon.view.frame import Frame, render
from trainmon.view.header import header
from trainmon.view.help import footer
from trainmon.view.options import ViewOptions
from trainmon.view.shown import main_metric, shown_run, shown_worker
from trainmon.view.sparkline import Sparkline, columns
from trainmon.view.stats import stats_panel
from trainmon.view.theme import ThemeError, console_for, load_theme

__all__ = [
    "Frame",
    "Line",
    "LineChart",
    "Point",
    "Sparkline",
    "ThemeError",
    "ViewOptions",
    "columns",
    "console_for",
    "ema",
    "footer",
    "format_duration",
    "format_percent",
    "format_rate",
    "format_value",
    "header",
    "load_theme",
    "main_metric",
    "render",
    "shown_run",
    "shown_worker",
    "stats_panel",
    "y_range",
]
