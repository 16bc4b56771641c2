"""The key table: each key binding one row, and every key map, help line and footer
entry derived from it.

A row gives the characters a key sends (and its escape sequences), the ``Action`` it
asks for, how the help screen names and explains it, and the word the footer (and the
paused footer) gives it. Adding a key is adding a row. The raw terminal that delivers
the keys is :mod:`trainmon.controls.terminal`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

__all__ = [
    "Action",
    "ESCAPES",
    "FOOTER",
    "HELP",
    "KEYMAP",
    "KEYS",
    "Key",
    "PAUSED_FOOTER",
    "parse_keys",
]


class Action(enum.Enum):
    """What a key asks the app to do."""

    QUIT = "quit"
    TOGGLE_PAUSE = "pause"
    EXPORT = "export"
    TOGGLE_CHART = "chart"
    CYCLE_SMOOTHING = "smoothing"
    HELP = "help"
    CLOSE = "close"
    GRID = "grid"
    NEXT_PAGE = "next page"
    PREV_PAGE = "previous page"
    NEXT_METRIC = "next metric"
    PREV_METRIC = "previous metric"
    NEXT_WORKER = "next worker"
    WORKERS_MODE = "workers mode"
    NEXT_RUN = "next run"
    RUNS_LIST = "runs list"
    OVERLAY = "overlay"
    TIME_AXIS = "time axis"
    ZOOM_IN = "zoom in"
    ZOOM_OUT = "zoom out"
    PAN_LEFT = "pan left"
    PAN_RIGHT = "pan right"
    FOLLOW = "follow"
    TOGGLE_LOG = "log scale"
    TOGGLE_ROBUST = "ignore outliers"


@dataclass(frozen=True, slots=True)
class Key:
    """One key binding: a row of :data:`KEYS`.

    ``label`` names the key on the help screen and in the footer; ``also`` names other
    keys that do the same, in brackets after the help text. A row with ``paired`` shares
    the help line of the row before it: labels side by side, and the words the two help
    texts have in common said once ("next main metric" and "previous main metric" read
    "next / previous main metric"). ``footer`` and ``paused`` place the key in the
    footer, and in the footer while paused: (position, word).
    """

    action: Action | None  # None: the terminal's own key (Ctrl-Z), listed for help only
    label: str
    help: str
    chars: str = ""  # the characters that send it
    escapes: tuple[str, ...] = ()  # the escape sequences that send it
    also: str = ""
    paired: bool = False
    footer: tuple[int, str] | None = None
    paused: tuple[int, str] | None = None


# Escape sequences (xterm and most terminals) of the keys that send them.
_LEFT, _RIGHT = ("\x1b[D", "\x1bOD"), ("\x1b[C", "\x1bOC")
_END, _PAGE_UP, _PAGE_DOWN = ("\x1b[F", "\x1bOF", "\x1b[4~"), ("\x1b[5~",), ("\x1b[6~",)

# Every key, in the order the help screen lists them.
KEYS: Final = (
    Key(
        Action.QUIT,
        "q",
        "quit (training goes on)",
        "qQ\x03",  # Ctrl-C too, should the terminal deliver it as a byte
        footer=(2, "quit"),
        paused=(3, "quit"),
    ),
    Key(
        Action.TOGGLE_PAUSE,
        "space",
        "pause / resume the view",
        " ",
        footer=(3, "pause"),
        paused=(1, "resume"),
    ),
    Key(Action.HELP, "?", "this help", "?", footer=(1, "keys")),
    Key(Action.CLOSE, "Esc", "close it", "\x1b", paired=True),
    Key(Action.TOGGLE_CHART, "c", "chart of the whole run / sparkline", "c", footer=(4, "chart")),
    Key(Action.GRID, "g", "grid of every metric's chart", "g"),
    Key(Action.NEXT_PAGE, "]", "next page of the grid", "]", _PAGE_DOWN, also="PgDn"),
    Key(
        Action.PREV_PAGE, "[", "previous page of the grid", "[", _PAGE_UP, also="PgUp", paired=True
    ),
    Key(Action.NEXT_METRIC, "m", "next main metric", "m"),
    Key(Action.PREV_METRIC, "M", "previous main metric", "M", paired=True),
    Key(Action.ZOOM_IN, "+", "zoom the steps shown in", "+="),
    Key(Action.ZOOM_OUT, "-", "zoom the steps shown out", "-", paired=True),
    Key(Action.PAN_LEFT, "←", "pan back", "h", _LEFT, also="h"),
    Key(Action.PAN_RIGHT, "→", "pan forward", "l", _RIGHT, also="l", paired=True),
    Key(Action.FOLLOW, "f", "follow the live tail again", "f", _END, also="End"),
    Key(Action.TOGGLE_LOG, "y", "log-scale y axis", "y"),
    Key(Action.TOGGLE_ROBUST, "i", "ignore outliers in the y range (5-95%)", "i"),
    Key(
        Action.CYCLE_SMOOTHING,
        "s",
        "smoothing weight (off, 0.6 ... 0.99)",
        "s",
        footer=(5, "smoothing"),
    ),
    Key(Action.NEXT_WORKER, "w", "next worker (rank) shown", "w"),
    Key(Action.WORKERS_MODE, "b", "workers: one / min-mean-max band / lines", "b"),
    Key(Action.NEXT_RUN, "r", "next run", "r"),
    Key(Action.RUNS_LIST, "R", "list of runs, and the shown run's config", "R"),
    Key(Action.OVERLAY, "o", "overlay another run's main metric", "o"),
    Key(Action.TIME_AXIS, "t", "x axis: steps / seconds since each run's start (compare)", "t"),
    Key(
        Action.EXPORT,
        "e",
        "save the screen as an SVG picture",
        "eE",
        footer=(6, "save svg"),
        paused=(2, "save svg"),
    ),
    Key(None, "Ctrl-Z", "suspend; fg in the shell resumes"),
)


def _keymap(keys: Iterable[Key]) -> dict[str, Action]:
    """Each character a key sends, to its action."""
    return {char: key.action for key in keys if key.action is not None for char in key.chars}


def _escapes(keys: Iterable[Key]) -> dict[str, Action]:
    """Each escape sequence a key sends, to its action."""
    return {seq: key.action for key in keys if key.action is not None for seq in key.escapes}


def _help(keys: Iterable[Key]) -> tuple[tuple[str, str], ...]:
    """(keys, what they do) a help line each: a paired row joins the line before it."""
    lines: list[tuple[list[str], list[str], list[str]]] = []  # labels, helps, also
    for key in keys:
        if not (key.paired and lines):
            lines.append(([], [], []))
        labels, helps, also = lines[-1]
        labels.append(key.label)
        helps.append(key.help)
        also.extend([key.also] if key.also else [])
    return tuple(
        ("  ".join(labels), _joined(helps) + (f" ({' '.join(also)})" if also else ""))
        for labels, helps, also in lines
    )


def _joined(helps: list[str]) -> str:
    """Help texts on one line, the words they begin and end with in common said once:
    "zoom the steps shown in" and "zoom the steps shown out" give "zoom the steps shown
    in / out"."""
    if len(helps) == 1:
        return helps[0]
    words = [text.split(" ") for text in helps]
    shortest = min(len(w) for w in words)
    head = 0
    while head < shortest - 1 and all(w[head] == words[0][head] for w in words):
        head += 1
    tail = 0
    while tail < shortest - 1 - head and all(w[-1 - tail] == words[0][-1 - tail] for w in words):
        tail += 1
    middles = " / ".join(" ".join(w[head : len(w) - tail]) for w in words)
    return " ".join([*words[0][:head], middles, *words[0][len(words[0]) - tail :]])


def _footer(places: Iterable[tuple[tuple[int, str] | None, str]]) -> tuple[tuple[str, str], ...]:
    """(key, word) for each key placed, in the order of their positions."""
    placed = sorted((place, label) for place, label in places if place is not None)
    return tuple((label, word) for (_, word), label in placed)


KEYMAP: Final[dict[str, Action]] = _keymap(KEYS)
ESCAPES: Final[dict[str, Action]] = _escapes(KEYS)
# What the help overlay lists, in order: keys, then what they do.
HELP: Final = _help(KEYS)
# What the footer names, in order: a key, then a word for what it does; and while paused.
FOOTER: Final = _footer((key.footer, key.label) for key in KEYS)
PAUSED_FOOTER: Final = _footer((key.paused, key.label) for key in KEYS)


def parse_keys(data: str) -> list[Action]:
    """The actions in a chunk of terminal input, escape sequences included."""
    actions: list[Action] = []
    index = 0
    while index < len(data):
        char = data[index]
        if char == "\x1b" and index + 1 < len(data) and data[index + 1] in "[O":
            end = index + 2
            while end < len(data) and not (data[end].isalpha() or data[end] == "~"):
                end += 1
            sequence = data[index : end + 1]
            action = ESCAPES.get(sequence)
            if action is not None:
                actions.append(action)
            index = end + 1
            continue
        action = KEYMAP.get(char)
        if action is not None:
            actions.append(action)
        index += 1
    return actions
