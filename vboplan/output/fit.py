"""Terminal tables that fit: long addresses and values wrap so a table is never wider than the terminal.

Only the terminal view is folded; JSON, Markdown, HTML and the plan file always carry full values. Addresses break
after a ``.`` or before a ``[``, values at spaces, so a wrapped cell still reads naturally.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import textwrap
from collections.abc import Sequence

# tabulate's "simple" format puts two spaces between columns.
_GAP = 2
# A wrapped column never gets narrower than this, even on a very narrow terminal.
_MIN = 12
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def terminal_width() -> int | None:
    """The width to fit: COLUMNS when set, the terminal's when stdout is one, else None (a pipe: no folding)."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        if sys.stdout.isatty():
            return shutil.get_terminal_size((120, 24)).columns
    except (AttributeError, ValueError, OSError):
        pass
    return None


def fit_rows(rows: Sequence[Sequence[str]], headers: Sequence[str], width: int | None,
             address: int, values: Sequence[int]) -> list[list[str]]:
    """``rows`` with the address column and the ``values`` columns wrapped so the table fits ``width``."""
    table = [list(map(str, row)) for row in rows]
    if width is None or not table:
        return table
    # tabulate makes a column at least its header plus two wide (its MIN_PADDING), whatever its cells.
    natural = [max(_len(h) + 2, *(_len(row[i]) for row in table)) for i, h in enumerate(headers)]
    budget = width - 1  # never write into the last column: some terminals wrap there
    if sum(natural) + _GAP * (len(natural) - 1) <= budget:
        return table
    wrappable = [address, *values]
    fixed = sum(w for i, w in enumerate(natural) if i not in wrappable) + _GAP * (len(natural) - 1)
    left = max(budget - fixed, _MIN * len(wrappable))
    limits: dict[int, int] = {}
    # The address is what a reviewer reads first: it gets up to half of the room, the values share the rest, and
    # any room a narrow column does not need goes back to the others.
    want = {i: natural[i] for i in wrappable}
    limits[address] = max(min(want[address], max(left // 2, left - sum(want[i] for i in values)),
                              left - _MIN * len(values)), _MIN)  # the values keep at least their minimum
    rest = left - limits[address]
    pending = sorted(values, key=lambda i: want[i])
    while pending:
        i = pending.pop(0)
        limits[i] = max(min(want[i], rest // (len(pending) + 1)), _MIN)
        rest -= limits[i]
    if rest > 0 and want[address] > limits[address]:
        limits[address] += min(rest, want[address] - limits[address])
    for row in table:
        for i, limit in limits.items():
            row[i] = "\n".join(_wrap_address(row[i], limit) if i == address else _wrap_value(row[i], limit))
    return table


def _len(text: str) -> int:
    return max((len(_ANSI.sub("", line)) for line in str(text).splitlines()), default=0)


def _wrap_value(text: str, limit: int) -> list[str]:
    lines: list[str] = []
    for line in text.splitlines() or [""]:
        lines += textwrap.wrap(line, limit, break_on_hyphens=False, drop_whitespace=False) or [""]
    return [line.rstrip() for line in lines]


def _wrap_address(text: str, limit: int) -> list[str]:
    lines: list[str] = []
    current = ""
    for token in _address_parts(text):
        while len(token) > limit:  # a single name longer than the column: cut it
            if current:
                lines.append(current)
                current = ""
            lines.append(token[:limit])
            token = token[limit:]
        if len(current) + len(token) > limit:
            lines.append(current)
            current = token
        else:
            current += token
    if current:
        lines.append(current)
    return lines


def _address_parts(text: str) -> list[str]:
    """``audit_items``, ``["contoso.onmicrosoft.com"].``, ``user``...: break points after a ``.`` and before a
    ``[`` outside the quoted names."""
    parts: list[str] = []
    current = ""
    quoted = escaped = False
    for char in text:
        if quoted:
            current += char
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
            continue
        if char == "[" and current:
            parts.append(current)
            current = ""
        current += char
        if char == '"':
            quoted = True
        elif char == ".":
            parts.append(current)
            current = ""
    if current:
        parts.append(current)
    return parts
