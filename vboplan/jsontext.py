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


def document_text(document: dict[str, Any], default: Callable[[Any], Any] | None = None, *, sort_keys: bool = False,
                  indent_up_to: int = INDENT_UP_TO) -> str:
    """``document`` as the text of a file, ending in a newline; its top-level keys in their order, or sorted."""
    keys = sorted(document) if sort_keys else list(document)
    parts = {key: _encode_parts(document[key], default) for key in keys}
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
