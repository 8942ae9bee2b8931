"""Columns of text laid out as tabulate's "simple" format does, in one pass over the cells.

tabulate infers a type for every cell before it aligns anything; a plan of thousands of changes (printed again by
every apply) spent most of its table there. :func:`simple_table` gives the same text for rows of text, and hands any
cell it does not handle the same way (a line break other than ``\\n``, a character of no printable width) to
tabulate itself, so the output never differs.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_wcswidth: Callable[[str], int] | None = None


def _width(text: str) -> int:
    """The columns ``text`` takes, as tabulate measures it (wcwidth's wcswidth when installed): printable ASCII is
    one column a character, so wcwidth (a tenth of a second to import) is loaded only for other text."""
    global _wcswidth
    if text.isascii() and text.isprintable():
        return len(text)
    if _wcswidth is None:
        try:
            from wcwidth import wcswidth as _wcswidth
        except ImportError:  # pragma: no cover - wcwidth comes with tabulate's usual installs
            _wcswidth = len
    return _wcswidth(text)

_ANSI = re.compile(r"\x1b\[[\d;]*m")  # the colours click.style writes; any other escape goes to tabulate
_OTHER_BREAKS = re.compile("[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
_GAP = "  "
_MIN_PADDING = 2  # tabulate makes a column at least its header's width plus this


def _measure(fn: Callable[[str], int]) -> Callable[[str], int]:
    def visible(text: str) -> int:
        return fn(_ANSI.sub("", text) if "\x1b" in text else text)

    return visible


_visible = _measure(_width)


def simple_table(rows: list[list[str]], headers: list[str]) -> str:
    """``tabulate(rows, headers, tablefmt="simple", disable_numparse=True)`` for rows of strings."""
    cells = [[cell.strip() for cell in row] for row in rows]
    lines_of = [[cell.split("\n") if "\n" in cell else [cell] for cell in row] for row in cells]
    widths = [_visible(header) + _MIN_PADDING for header in headers]
    for row in lines_of:
        for column, lines in enumerate(row):
            for line in lines:
                width = _visible(line)
                if width < 0 or _OTHER_BREAKS.search(line) or "\x1b" in line and _ANSI.sub("", line).count("\x1b"):
                    return _tabulate(rows, headers)
                if width > widths[column]:
                    widths[column] = width
    out = [_row([_pad(header, width) for header, width in zip(headers, widths, strict=True)]),
           _row(["-" * width for width in widths])]
    for row in lines_of:
        height = max(len(lines) for lines in row)
        for index in range(height):
            out.append(_row([_pad(lines[index], width) if index < len(lines) else " " * width
                             for lines, width in zip(row, widths, strict=True)]))
    return "\n".join(out)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _visible(text))


def _row(cells: list[str]) -> str:
    return _GAP.join(cells).rstrip()


def _tabulate(rows: list[list[str]], headers: list[str]) -> str:
    from tabulate import tabulate

    return tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)
