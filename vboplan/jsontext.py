"""The JSON text of vboplan's own files (plan files, state snapshots): readable when small, and fast when large.

``json`` indents only in pure Python (seconds for a document of 100,000 entries) but encodes compact JSON in C. A
small document is indented throughout; a large one gets one line per top-level key and per element of a top-level
list or mapping, each line compact with sorted keys, so a diff of two files still shows which entries changed.

A large document is produced as a stream of pieces (each element encoded once, by json's C encoder), which the file
writer and the digest consume as they come: the whole text never has to exist as one string, let alone twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import msgspec

INDENT_UP_TO = 256 * 1024  # characters of compact JSON up to which a document is indented throughout
_CHUNK = 1024 * 1024  # characters handed on at a time

#: A top-level value encoded: its shape (``list``, ``dict`` or ``value``), its keys in order (a dict's), and the
#: canonical JSON of each element, of each value in key order, or of the value itself.
Parts = tuple[str, list[str], list[str]]
#: Encoded top-level values by key, each with the value object it was encoded from (see ``cache`` below).
Encodings = dict[str, tuple[Any, Parts]]


def canonical_digest(document: dict[str, Any], default: Callable[[Any], Any] | None = None,
                     cache: Encodings | None = None) -> str:
    """sha256 (hex) of the canonical JSON of ``document``: compact, keys sorted at every level; the bytes of
    ``json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` in UTF-8."""
    keys = sorted(document)
    parts = _parts_of(document, keys, default, cache)

    def pieces() -> Iterator[str]:
        yield "{"
        for index, key in enumerate(keys):
            yield f"{',' if index else ''}{_key(key)}:"
            yield from _compact(parts[key])
        yield "}"

    digest = hashlib.sha256()
    for chunk in _chunks(pieces()):
        digest.update(chunk.encode("utf-8"))
    return digest.hexdigest()


def document_chunks(document: dict[str, Any], default: Callable[[Any], Any] | None = None, *,
                    sort_keys: bool = False, indent_up_to: int = INDENT_UP_TO,
                    cache: Encodings | None = None) -> Iterator[str]:
    """``document`` as the text of a file, in pieces, ending in a newline; top-level keys in order, or sorted."""
    keys = sorted(document) if sort_keys else list(document)
    parts = _parts_of(document, keys, default, cache)
    if sum(len(piece) for _, _, inner in parts.values() for piece in inner) <= indent_up_to:
        yield json.dumps(document, indent=2, ensure_ascii=False, sort_keys=sort_keys, default=default) + "\n"
        return

    def pieces() -> Iterator[str]:
        yield "{\n"
        for index, key in enumerate(keys):
            shape, names, inner = parts[key]
            yield f"{',' if index else ''}\n  {_key(key)}: "[1 if not index else 0:]
            if shape == "list":
                yield "[\n"
                for at, piece in enumerate(inner):
                    yield f"{',' if at else ''}\n    "[1 if not at else 0:]
                    yield piece
                yield "\n  ]"
            elif shape == "dict":
                yield "{\n"
                for at, (name, piece) in enumerate(zip(names, inner, strict=True)):
                    yield f"{',' if at else ''}\n    {_key(name)}: "[1 if not at else 0:]
                    yield piece
                yield "\n  }"
            else:
                yield inner[0]
        yield "\n}\n"

    yield from _chunks(pieces())


def document_text(document: dict[str, Any], default: Callable[[Any], Any] | None = None, *, sort_keys: bool = False,
                  indent_up_to: int = INDENT_UP_TO, cache: Encodings | None = None) -> str:
    """:func:`document_chunks` as one string."""
    return "".join(document_chunks(document, default, sort_keys=sort_keys, indent_up_to=indent_up_to, cache=cache))


def _parts_of(document: dict[str, Any], keys: list[str], default: Callable[[Any], Any] | None,
              cache: Encodings | None) -> dict[str, Parts]:
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


def _compact(parts: Parts) -> Iterator[str]:
    """The canonical JSON of an encoded value, in pieces."""
    shape, names, inner = parts
    if shape == "list":
        yield "["
        for at, piece in enumerate(inner):
            if at:
                yield ","
            yield piece
        yield "]"
    elif shape == "dict":
        yield "{"
        for at, (name, piece) in enumerate(zip(names, inner, strict=True)):
            yield f"{',' if at else ''}{_key(name)}:"
            yield piece
        yield "}"
    else:
        yield inner[0]


def _chunks(pieces: Iterable[str]) -> Iterator[str]:
    """``pieces`` joined into strings of about a mebibyte (few calls, little memory)."""
    batch: list[str] = []
    size = 0
    for piece in pieces:
        batch.append(piece)
        size += len(piece)
        if size >= _CHUNK:
            yield "".join(batch)
            batch, size = [], 0
    if batch:
        yield "".join(batch)


def _key(key: Any) -> str:
    return json.dumps(str(key), ensure_ascii=False)


#: Canonical JSON of strings, lists and str-keyed mappings in C: for these, msgspec writes the very text of
#: ``json.dumps(part, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` (the same escapes, keys in code
#: point order; tests/test_jsontext.py compares them), 4x faster for a plan's 100,000 declared names.
_STRINGS = msgspec.json.Encoder(order="sorted")


def _strings_only(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` is strings, lists and mappings with string keys only (a list of names looked at in C)."""
    if type(value) is str:
        return True
    if depth > 16:
        return False
    if type(value) is list:
        return set(map(type, value)) <= {str} or all(_strings_only(item, depth + 1) for item in value)
    if type(value) is dict:
        return all(type(key) is str and _strings_only(item, depth + 1) for key, item in value.items())
    return False


def _encode_parts(value: Any, default: Callable[[Any], Any] | None) -> Parts:
    def encode(part: Any) -> str:
        if isinstance(part, (list, dict)) and _strings_only(part):
            try:
                return _STRINGS.encode(part).decode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate, which UTF-8 cannot hold: json writes it escaped
                pass
        return json.dumps(part, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=default)

    if isinstance(value, list) and value:
        return "list", [], [encode(item) for item in value]
    if isinstance(value, dict) and value and all(isinstance(k, str) for k in value):
        names = sorted(value)
        return "dict", names, [encode(value[k]) for k in names]
    return "value", [], [encode(value)]
