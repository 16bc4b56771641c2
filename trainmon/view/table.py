"""Plain aligned tables as lines of text, far cheaper than Rich's Table (the workers and
the runs)."""

from __future__ import annotations

from rich.text import Text

__all__ = ["grid_lines"]


def grid_lines(
    columns: tuple[tuple[str, str], ...], rows: list[tuple[str | Text, ...]], width: int
) -> list[Text]:
    """A header and rows as aligned lines: a plain table, far cheaper than Rich's Table.

    Columns are as wide as their widest cell; spare width goes to the first
    left-aligned column, and that column is cut with an ellipsis when space is short.
    """
    cells = [[c if isinstance(c, Text) else Text(c) for c in row] for row in rows]
    widths = [len(name) for name, _ in columns]
    for row in cells:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], cell.cell_len)
    # spare width goes to the last left-aligned column (status), keeping hosts compact
    flexible = max((i for i, (_, justify) in enumerate(columns) if justify == "left"), default=0)
    spare = width - 1 - sum(widths) - 2 * (len(columns) - 1)
    widths[flexible] = max(widths[flexible] + spare, 4)
    lines = []
    header = Text(" ", style="tm.heading")
    for index, (name, justify) in enumerate(columns):
        header.append(_fit(Text(name), widths[index], justify))
        header.append("  " if index < len(columns) - 1 else "")
    lines.append(header)
    for row in cells:
        line = Text(" ")
        for index, cell in enumerate(row):
            line.append_text(_fit(cell, widths[index], columns[index][1]))
            if index < len(columns) - 1:
                line.append("  ")
        lines.append(line)
    return lines


def _fit(text: Text, width: int, justify: str) -> Text:
    text = text.copy()
    if text.cell_len > width:
        text.truncate(width, overflow="ellipsis")
    pad = " " * (width - text.cell_len)
    if justify == "right":
        text = Text(pad) + text
    else:
        text.append(pad)
    return text
