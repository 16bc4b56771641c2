"""Saving the screen: the frame shown written as an SVG picture, and what the footer
says about it."""

from __future__ import annotations

import os
import re
import time

from rich.console import Console, RenderableType
from rich.theme import Theme

from trainmon.app.settings import AppSettings
from trainmon.escape import escaped
from trainmon.sources.export import dashboard_picture
from trainmon.state import RunState
from trainmon.view import ViewOptions, shown_run

__all__ = ["export_notice", "save_screen"]


def export_notice(
    frame: RenderableType,
    state: RunState,
    opts: ViewOptions,
    console: Console,
    settings: AppSettings,
) -> str:
    """Save ``frame`` the size of the console; the notice that says where, or why not."""
    try:
        width, height = console.size
        path = save_screen(frame, state, opts, width, height, settings.export_dir, settings.theme)
    except OSError as exc:
        return f"could not save the screen: {exc.strerror or exc}"
    return f"screen saved to {escaped(path)}"


def save_screen(
    frame: RenderableType,
    state: RunState,
    opts: ViewOptions,
    width: int,
    height: int,
    directory: str = ".",
    theme: Theme | None = None,
) -> str:
    """Write ``frame`` as an SVG picture in ``directory``; the file's path."""
    run = shown_run(state, opts)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", run.name if run else "waiting")[:60]
    path = os.path.join(directory, f"trainmon-{name}-{time.strftime('%Y%m%d-%H%M%S')}.svg")
    svg = dashboard_picture(
        frame,
        "svg",
        width=width,
        height=height,
        title=f"trainmon · {run.name if run else 'waiting'}",
        theme=theme,
    )
    with open(path, "w", encoding="utf-8") as file:
        file.write(svg)
    return path
