"""The JSON text of vboplan's own files (plan files, state snapshots): readable when small, and fast when large.

``json`` indents only in pure Python (seconds for a document of 100,000 entries) but encodes compact JSON in C. A
small document is indented throughout; a large one gets one line per top-level key and per element of a top-level
list or mapping, each line compact with sorted keys, so a diff of two files still shows which entries changed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

INDENT_UP_TO = 256 * 1024  # characters of compact JSON up to which a document is indented throughout


#: Encoded top-level values by key, each with the value object it was encoded from (see ``cache`` below).
Encodings = dict[str, tuple[Any, tuple[str, list[str], str]]]


def _parts_of(document: dict[str, Any], keys: list[str], default: Callable[[Any], Any] | None,
              cache: Encodings | None) -> dict[str, tuple[str, list[str], str]]:
    """The encoded parts of ``document[key]`` for each key, reusing those ``cache`` holds for the very same value
    object (a plan's checksum and its file encode the same large ``live`` values once)."""
    parts = {}
    for key in keys:
        value = document[key]
        held = cache.get(key) if cache is not None else None
        if held is not None and held[0] is value:
            parts[key] = held[1]
        else:
            parts[key] = _encode_parts(value, default)
            if cache is not None and isinstance(value, (dict, list)):
                cache[key] = (value, parts[key])
    return parts


def canonical_text(document: dict[str, Any], default: Callable[[Any], Any] | None = None,
                   cache: Encodings | None = None) -> str:
    """The canonical JSON of ``document``: compact, keys sorted at every level; the same bytes as ``json.dumps(
    document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``."""
    keys = sorted(document)
    parts = _parts_of(document, keys, default, cache)
    return "{" + ",".join(f"{_key(k)}:{parts[k][2]}" for k in keys) + "}"


def document_text(document: dict[str, Any], default: Callable[[Any], Any] | None = None, *, sort_keys: bool = False,
                  indent_up_to: int = INDENT_UP_TO, cache: Encodings | None = None) -> str:
    """``document`` as the text of a file, ending in a newline; its top-level keys in their order, or sorted."""
    keys = sorted(document) if sort_keys else list(document)
    parts = _parts_of(document, keys, default, cache)
    if sum(len(whole) for _, _, whole in parts.values()) <= indent_up_to:
        return json.dumps(document, indent=2, ensure_ascii=False, sort_keys=sort_keys, default=default) + "\n"
    lines = []
    for key, (shape, inner, whole) in parts.items():
        if shape == "list":
            text = "[\n" + ",\n".join(f"    {item}" for item in inner) + "\n  ]"
        elif shape == "dict":
            text = "{\n" + ",\n".join(f"    {_key(k)}: {part}" for k, part in
                                       zip(sorted(document[key]), inner, strict=True)) + "\n  }"
        else:
            text = whole
        lines.append(f"  {_key(key)}: {text}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def _key(key: Any) -> str:
    return json.dumps(str(key), ensure_ascii=False)


def _encode_parts(value: Any, default: Callable[[Any], Any] | None) -> tuple[str, list[str], str]:
    """(``"list"``, ``"dict"`` or ``"value"``; the canonical JSON of each element, or of each value in key order;
    the canonical JSON of ``value``): json's C encoder does the work, and the pieces lay out a large document
    without encoding it twice."""
    def encode(part: Any) -> str:
        return json.dumps(part, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=default)

    if isinstance(value, list) and value:
        inner = [encode(item) for item in value]
        return "list", inner, "[" + ",".join(inner) + "]"
    if isinstance(value, dict) and value and all(isinstance(k, str) for k in value):
        keys = sorted(value)
        inner = [encode(value[k]) for k in keys]
        return "dict", inner, "{" + ",".join(f"{_key(k)}:{text}" for k, text in zip(keys, inner, strict=True)) + "}"
    return "value", [], encode(value)
