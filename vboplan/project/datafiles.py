"""Data files: a long list kept in its own file and named from a variable file, ``users: {data_file: data/users.csv}``.

A variable file's value that is a mapping with the one key ``data_file`` stands for the file's content: a CSV file
is a list of names (the column ``name``, or the only column; a header row first), a JSON file the value it holds.
Names are checked row by row, as a template's list would be: an empty name or a name given twice (case does not
count) is an error naming the data file and its line. Paths are relative to the project directory and stay inside
it (the project's git history is the record of what was planned).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path, PurePosixPath
from typing import Any

from vboplan.errors import ProjectError
from vboplan.project.yamlfile import Located, parse_json, read_text

KEY = "data_file"
_SCALARS = frozenset({str, int, float, bool, type(None)})


def resolve_data_files(value: Any, root: Path, display: Any) -> Any:
    """``value`` (a parsed variable file) with each ``{data_file: PATH}`` replaced by that file's content;
    ``display(path)`` names a file in messages."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if isinstance(inner, dict) and len(inner) == 1 and KEY in inner:
                where = value.where(key) if isinstance(value, Located) else "?"
                value[key] = read_data_file(inner[KEY], root, display, where)
            elif isinstance(inner, (dict, list)):
                resolve_data_files(inner, root, display)
    elif isinstance(value, list) and not set(map(type, value)) <= _SCALARS:  # a list of names: nothing to look at
        for inner in value:
            if isinstance(inner, (dict, list)):
                resolve_data_files(inner, root, display)
    return value


def read_data_file(given: Any, root: Path, display: Any, where: str) -> Any:
    """The content of the data file ``given`` names (see the module's docstring); ``where`` is the reference's
    ``file:line``."""
    if not isinstance(given, str) or not given.strip():
        raise ProjectError(f"{where}: {KEY} must be the path of a .csv or .json file in the project")
    relative = PurePosixPath(given.replace("\\", "/"))
    if relative.is_absolute() or ".." in relative.parts or (relative.parts and ":" in relative.parts[0]):
        raise ProjectError(f"{where}: {KEY} '{given}' must be a path inside the project (relative, without '..')")
    path = root.joinpath(*relative.parts)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise ProjectError(f"{where}: {KEY} '{given}': a data file is .csv (one name a row) or .json")
    if not path.exists() and not path.is_symlink():
        raise ProjectError(f"{where}: {KEY} '{given}' not found")
    name = display(path)
    text = read_text(path, name)
    if suffix == ".csv":
        return _csv_names(text, name)
    data = parse_json(text, name)
    if isinstance(data, list) and all(type(item) is str for item in data):
        _check_names(data, name, lambda index: _json_line(text, index))
    return data


def _csv_names(text: str, name: str) -> list[str]:
    """The names of a CSV data file: a header row, then one name a row in the column ``name`` (or the only one)."""
    lines = text.splitlines()
    if lines and lines[0] and '"' not in text and "," not in text:
        # One column and no quoting (the usual list of names): each line is its row, read without csv's per-row
        # Python steps (10x faster for a million names); line numbers are worked out only for a message.
        rows_at = [index for index, line in enumerate(lines) if not line] if "" in lines else []
        kept = [line.strip() for line in lines[1:] if line] if rows_at else _stripped(lines[1:])
        _check_names(kept, name, lambda index: _line_skipping(rows_at, index))
        return kept
    rows = csv.reader(lines)
    header = next(rows, None)
    if header is None:
        raise ProjectError(f"{name}:1: an empty data file; write a header row (name), then one name a row")
    columns = [column.strip().lower() for column in header]
    if len(columns) == 1:
        at = 0
    elif "name" in columns:
        at = columns.index("name")
    else:
        raise ProjectError(f"{name}:1: the header names {len(columns)} columns and none is 'name'")
    names: list[str] = []
    lines: list[int] = []
    for line, row in enumerate(rows, start=2):
        if not row:
            continue  # a blank line
        if len(row) != len(columns):
            raise ProjectError(f"{name}:{line}: {len(row)} fields where the header has {len(columns)}")
        names.append(row[at].strip())
        lines.append(line)
    _check_names(names, name, lambda index: lines[index])
    return names


def _stripped(lines: list[str]) -> list[str]:
    """Each of ``lines`` stripped: ``lines`` itself where none has surrounding whitespace (one look at them all:
    within a line of ASCII text, what str.strip() removes is a space, a tab or \\x1f; the rest ends a line)."""
    joined = "\n".join(lines)
    if joined.isascii() and not (joined[:1].isspace() or joined[-1:].isspace()) \
            and not any(f"{space}\n" in joined or f"\n{space}" in joined for space in " \t\x1f" if space in joined):
        return lines
    return [line.strip() for line in lines]


def _line_skipping(blank: list[int], index: int) -> int:
    """The file line of name ``index`` (0-based, after the header), where the lines ``blank`` (0-based) hold none."""
    line = index + 1  # 0-based, past the header
    for at in blank:
        if at <= line:
            line += 1
    return line + 1


def _check_names(names: list[str], name: str, line_of: Any) -> None:
    """Refuse an empty name or one given twice (case does not count), naming the data file's line."""
    joined = "\n".join(names)
    lowered_all = joined.lower()
    if lowered_all == joined and joined.count("\n") == max(len(names) - 1, 0):
        lowered = names  # lower case already (the usual): no copy of each name
    else:
        lowered = lowered_all.split("\n") if names else []
        if len(lowered) != len(names):
            lowered = [text.lower() for text in names]
    seen = set(lowered)
    if len(seen) == len(names) and "" not in seen:
        return
    first: dict[str, int] = {}
    for index, label in enumerate(lowered):
        if not label.strip():
            raise ProjectError(f"{name}:{line_of(index)}: an empty name")
        if label in first:
            raise ProjectError(f"{name}:{line_of(index)}: '{names[index]}' is given twice (first on line "
                               f"{line_of(first[label])})")
        first[label] = index


def _json_line(text: str, index: int) -> int:
    """The line of element ``index`` of the JSON array ``text`` (only for a message: json's scanner, element by
    element)."""
    decoder = json.JSONDecoder()
    at = text.index("[") + 1
    for _ in range(index + 1):
        while text[at] in " \t\r\n,":
            at += 1
        start = at
        _, at = decoder.raw_decode(text, at)
    return text.count("\n", 0, start) + 1
