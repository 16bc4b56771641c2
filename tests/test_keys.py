"""The key table: every action has a row, and the maps, help and footers follow it."""

from __future__ import annotations

from trainmon.keys import ESCAPES, FOOTER, HELP, KEYMAP, KEYS, PAUSED_FOOTER, Action, parse_keys


def test_every_action_has_a_row_with_help_text() -> None:
    for action in Action:
        rows = [key for key in KEYS if key.action is action]
        assert len(rows) == 1, action
        assert rows[0].help and rows[0].label, action
        assert rows[0].chars or rows[0].escapes, action


def test_the_key_maps_are_the_table() -> None:
    """Each character and escape sequence of a row sends its action; nothing else does,
    and no key is bound twice."""
    chars = [char for key in KEYS for char in key.chars]
    escapes = [seq for key in KEYS for seq in key.escapes]
    assert len(chars) == len(set(chars)) and len(escapes) == len(set(escapes))
    assert {char: key.action for key in KEYS for char in key.chars} == KEYMAP
    assert {seq: key.action for key in KEYS for seq in key.escapes} == ESCAPES
    for key in KEYS:
        for char in key.chars:
            assert parse_keys(char) == [key.action]
        for seq in key.escapes:
            assert parse_keys(seq) == [key.action]


def test_help_and_footers_come_from_the_table() -> None:
    """A help line for each row not paired with the one before, naming its keys; the
    footers name the rows placed in them, in their places."""
    assert len(HELP) == sum(not key.paired for key in KEYS)
    shown = "  ".join(keys for keys, _ in HELP).split("  ")
    assert shown == [key.label for key in KEYS]
    placed = sorted((key.footer, key.label) for key in KEYS if key.footer)
    assert tuple((label, place[1]) for place, label in placed) == FOOTER
    paused = sorted((key.paused, key.label) for key in KEYS if key.paused)
    assert tuple((label, place[1]) for place, label in paused) == PAUSED_FOOTER


def test_help_and_footers_read_as_they_did() -> None:
    """Derived from the rows, the help screen and the footers say what they always said."""
    assert HELP == (
        ("q", "quit (training goes on)"),
        ("space", "pause / resume the view"),
        ("?  Esc", "this help / close it"),
        ("c", "chart of the whole run / sparkline"),
        ("g", "grid of every metric's chart"),
        ("]  [", "next / previous page of the grid (PgDn PgUp)"),
        ("m  M", "next / previous main metric"),
        ("+  -", "zoom the steps shown in / out"),
        ("←  →", "pan back / forward (h l)"),
        ("f", "follow the live tail again (End)"),
        ("y", "log-scale y axis"),
        ("i", "ignore outliers in the y range (5-95%)"),
        ("s", "smoothing weight (off, 0.6 ... 0.99)"),
        ("w", "next worker (rank) shown"),
        ("b", "workers: one / min-mean-max band / lines"),
        ("r", "next run"),
        ("R", "list of runs, and the shown run's config"),
        ("o", "overlay another run's main metric"),
        ("t", "x axis: steps / seconds since each run's start (compare)"),
        ("e", "save the screen as an SVG picture"),
        ("Ctrl-Z", "suspend; fg in the shell resumes"),
    )
    assert FOOTER == (
        ("?", "keys"),
        ("q", "quit"),
        ("space", "pause"),
        ("c", "chart"),
        ("s", "smoothing"),
        ("e", "save svg"),
    )
    assert PAUSED_FOOTER == (("space", "resume"), ("e", "save svg"), ("q", "quit"))
    assert KEYMAP["Q"] is KEYMAP["\x03"] is Action.QUIT and KEYMAP["="] is Action.ZOOM_IN


def test_every_key_but_the_loops_own_has_a_handler() -> None:
    """Quit, pause and export act on the loop; every other action changes the view."""
    from trainmon.controls.reducer import HANDLERS

    loops_own = {Action.QUIT, Action.TOGGLE_PAUSE, Action.EXPORT}
    assert set(HANDLERS) == set(Action) - loops_own


def test_the_key_table_is_a_leaf() -> None:
    """The key module needs nothing of trainmon, nor a terminal, socket or screen."""
    import subprocess
    import sys

    code = "import sys, trainmon.keys; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(out.stdout.split())
    assert {m for m in loaded if m.startswith("trainmon")} == {"trainmon", "trainmon.keys"}
    assert not loaded & {"termios", "tty", "zmq", "click", "rich"}
