"""The keys on screen: the help overlay (key ?) and the footer line, both read from the
key table."""

from __future__ import annotations

from rich.console import Console, ConsoleOptions, RenderResult
from rich.panel import Panel
from rich.text import Text

from trainmon.keys import FOOTER, HELP, PAUSED_FOOTER
from trainmon.view.options import ViewOptions

__all__ = ["footer", "help_panel"]


def help_panel() -> Panel:
    """Every key and what it does."""
    return Panel(_HelpLines(), title="Keys · ? or Esc closes", title_align="left")


class _HelpLines:
    """The keys a line each; in two columns when one does not fit the height (80x24),
    descriptions cut with an ellipsis if need be, so no key is left out."""

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        key_width = max(len(keys) for keys, _ in HELP) + 2
        rows = [
            Text(keys.ljust(key_width), style="tm.key", no_wrap=True).append(what, style="")
            for keys, what in HELP
        ]
        height = options.height or len(rows)
        if len(rows) <= height or width < 2 * (key_width + 12):
            for row in rows[:height]:
                row.truncate(width, overflow="ellipsis")
                yield row
            return
        # as many as fit down the left, the rest beside them, the left as wide as it
        # needs while the right keeps a third of the width
        half = max(height, (len(rows) + 1) // 2)
        left_rows, right_rows = rows[:half], rows[half:]
        column = min(max(row.cell_len for row in left_rows), width - 2 - width // 3)
        for index, left in enumerate(left_rows):
            left.truncate(column, overflow="ellipsis", pad=True)
            right = right_rows[index] if index < len(right_rows) else Text("")
            right.truncate(width - column - 2, overflow="ellipsis")
            yield Text.assemble(left, "  ", right)


def footer(opts: ViewOptions) -> Text:
    """The keys, or the pause notice, and any passing notice."""
    text = Text()
    if opts.notice:
        text.append(f" {opts.notice} ", style="tm.notice")
        text.append(" ")
    if opts.paused:
        text.append(" PAUSED ", style="tm.paused")
        text.append(f" view frozen · {opts.paused_records:,} records arrived since · ")
        _keys(text, *PAUSED_FOOTER)
    elif opts.interactive:
        text.append(" ")
        axis = ("t", "x in steps" if opts.seconds else "x in seconds") if opts.time_axis else None
        _keys(text, *FOOTER, *([axis] if axis else []))
    else:
        text.append(" Ctrl-C quits · training is never affected by this window")
    return text


def _keys(text: Text, *pairs: tuple[str, str]) -> None:
    """Append ``key what · key what ...`` with the keys in bold."""
    for index, (key, what) in enumerate(pairs):
        text.append(key, style="tm.heading")
        text.append(f" {what}" + (" · " if index < len(pairs) - 1 else ""))
