"""Colour schemes: the dashboard names its styles (``tm.*``) and a theme says what they are.

Three built in: ``dark`` (the default), ``light`` (for light terminal backgrounds) and
``mono`` (no colour: bold, dim, reverse and underline only). A theme file is a small
TOML table of style names to Rich styles, applied over a built-in theme::

    base = "dark"          # optional: dark, light or mono
    line = "bright_green"  # the main metric's line
    bad = "bold magenta"

``NO_COLOR`` in the environment turns colour off whatever the theme (Rich honours it).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Final

from rich.console import Console
from rich.errors import StyleSyntaxError
from rich.style import Style
from rich.theme import Theme

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the same parser, as a package before 3.11
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

__all__ = [
    "STATUS_STYLE",
    "STYLE_NAMES",
    "THEMES",
    "ThemeError",
    "console_for",
    "load_theme",
    "resolve",
]

_MAX_THEME_BYTES: Final = 1 << 20
_DARK: Final = {
    "title": "bold reverse",
    "heading": "bold",
    "dim": "dim",
    "key": "bold",
    "good": "green",
    "warn": "bold yellow",
    "bad": "bold red",
    "running": "green",
    "stalled": "yellow",
    "lost": "bold red",
    "finished": "blue",
    "waiting": "dim",
    "paused": "bold black on yellow",
    "notice": "bold black on cyan",
    "alert": "bold white on red",
    "bar": "green",
    "barback": "grey23",
    "line": "cyan",
    "smooth": "bold yellow",
    "overlay": "magenta",
    "overlay2": "green",
    "overlay3": "blue",
    "overlay4": "red",
    "mark": "bold red",
    "axis": "dim",
    "straggler": "bold magenta",
    "worker1": "cyan",
    "worker2": "green",
    "worker3": "yellow",
    "worker4": "magenta",
    "worker5": "blue",
    "worker6": "red",
    "worker7": "bright_cyan",
    "worker8": "bright_green",
}
_LIGHT: Final = {
    **_DARK,
    "good": "dark_green",
    "warn": "bold dark_orange3",
    "bad": "bold red3",
    "running": "dark_green",
    "stalled": "dark_orange3",
    "lost": "bold red3",
    "finished": "blue3",
    "paused": "bold white on dark_orange3",
    "notice": "bold white on blue3",
    "bar": "dark_green",
    "barback": "grey85",
    "line": "blue3",
    "smooth": "bold dark_orange3",
    "overlay": "magenta3",
    "overlay2": "dark_green",
    "overlay3": "navy_blue",
    "overlay4": "red3",
    "mark": "bold red3",
    "straggler": "bold magenta3",
    "worker1": "blue3",
    "worker2": "dark_green",
    "worker3": "dark_orange3",
    "worker4": "magenta3",
    "worker5": "deep_sky_blue4",
    "worker6": "red3",
    "worker7": "turquoise4",
    "worker8": "chartreuse4",
}
_MONO: Final = {name: "none" for name in _DARK} | {
    "title": "bold reverse",
    "heading": "bold",
    "dim": "dim",
    "key": "bold",
    "warn": "bold",
    "bad": "bold underline",
    "lost": "bold underline",
    "stalled": "underline",
    "waiting": "dim",
    "paused": "reverse",
    "notice": "reverse",
    "alert": "bold reverse",
    "smooth": "bold",
    "mark": "bold",
    "axis": "dim",
    "straggler": "bold underline",
    "overlay": "dim",
    "overlay2": "underline",
    "overlay3": "italic",
    "overlay4": "dim underline",
    "barback": "dim",
}
THEMES: Final = {"dark": _DARK, "light": _LIGHT, "mono": _MONO}
STYLE_NAMES: Final = tuple(_DARK)
STATUS_STYLE: Final = {  # a run's or a worker's status, in the order counts list them
    "running": "tm.running",
    "stalled": "tm.stalled",
    "lost": "tm.lost",
    "finished": "tm.finished",
    "waiting": "tm.waiting",
}


class ThemeError(ValueError):
    """A theme that cannot be used; the message says why."""


def load_theme(name: str = "dark", path: str | Path | None = None) -> Theme:
    """The Rich theme for built-in ``name``, with a theme file's styles over it."""
    if name not in THEMES:
        raise ThemeError(f"unknown theme {name!r}: choose dark, light or mono")
    styles = dict(THEMES[name])
    if path is not None:
        try:
            # At most a MiB: a theme is a few lines, and /dev/zero would never end.
            with open(path, "rb") as file:
                data = file.read(_MAX_THEME_BYTES + 1)
            if len(data) > _MAX_THEME_BYTES:
                raise ThemeError(f"theme file {path} is over 1 MiB: not a theme file")
            table = tomllib.loads(data.decode())
        except OSError as exc:
            raise ThemeError(f"cannot read theme file {path}: {exc.strerror}") from exc
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ThemeError(f"theme file {path} is not TOML: {exc}") from exc
        base = table.pop("base", None)
        if base is not None:
            if base not in THEMES:
                raise ThemeError(f"theme file {path}: base must be dark, light or mono")
            styles = dict(THEMES[base])
        for key, value in table.items():
            if key not in styles:
                raise ThemeError(
                    f"theme file {path}: unknown style {key!r}; known: {', '.join(STYLE_NAMES)}"
                )
            if not isinstance(value, str):
                raise ThemeError(f"theme file {path}: {key} must be a string like 'bold red'")
            try:
                Style.parse(value)
            except StyleSyntaxError as exc:
                raise ThemeError(f"theme file {path}: {key}: {exc}") from exc
            styles[key] = value
    return Theme({f"tm.{key}": value for key, value in styles.items()})


def console_for(theme: Theme | None = None, **kwargs: object) -> Console:
    """A console that knows the ``tm.*`` styles (the dark theme unless told).

    On a terminal that reports its size, COLUMNS and LINES in the environment are
    ignored (Rich would take them as a fixed size), so the dashboard follows the
    window as it is resized.
    """
    if "file" not in kwargs and "_environ" not in kwargs and _terminal_size() is not None:
        kwargs["_environ"] = {
            key: value for key, value in os.environ.items() if key not in ("COLUMNS", "LINES")
        }
    return Console(theme=theme or load_theme(), **kwargs)  # type: ignore[arg-type]


def _terminal_size() -> os.terminal_size | None:
    """The size standard output's terminal reports, if it is one and says."""
    try:
        size = os.get_terminal_size(sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        return None
    return size if size.columns > 0 and size.lines > 0 else None


def resolve(console: Console, style: str | Style) -> Style:
    """``style`` as a Style: a theme name (``tm.line``) or a literal (``bold red``)."""
    if isinstance(style, Style):
        return style
    return console.get_style(style, default=Style.null())
