"""YAML that remembers where each mapping key came from, so errors can name a file and a line.

Parsing goes through libyaml's C parser when PyYAML was built with it (marks, hence line numbers, come with its
nodes), and every document is measured before it is built: YAML aliases can make a few hundred bytes stand for a
billion values ("billion laughs"), and deep nesting exhausts the stack, so both are refused with the line where the
document grows past its bound. JSON files go through :mod:`json`, which is much faster for large variable files.

A rendered template's long lists are JSON already (``{{ names | tojson }}`` writes ``users: ["a", "b", ...]`` on
one line): such a line's array of strings is decoded by msgspec and the YAML parser sees one scalar in its place,
which is put back as the list once the document is built (a template of 100,000 names parses ~10x faster). Where
that scalar ends up anywhere but as that key's value (inside a block scalar, say), the text is parsed again as
written.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import yaml

from vboplan.errors import ProjectError
from vboplan.limits import FILE_ENV, bound, mib, raise_hint
from vboplan.shapes import NotRegularFile, read_regular

#: Largest file vboplan reads as configuration or variables by default (a 100,000-entry variable file is a few
#: MiB); ``VBOPLAN_MAX_FILE_MIB`` sets another (see :func:`max_bytes`).
MAX_BYTES = 32 * 1024 * 1024


def max_bytes() -> int:
    """The largest configuration, variable, data or rendered template file read: ``VBOPLAN_MAX_FILE_MIB`` or
    :data:`MAX_BYTES`."""
    return bound(FILE_ENV, MAX_BYTES)


def _too_large(limit: int) -> str:
    return f"larger than {mib(limit)} MiB; vboplan does not read files that big ({raise_hint(FILE_ENV, limit)})"
#: Most values a document may stand for once its aliases are expanded, beyond the values it spells out.
MAX_ALIAS_EXPANSION = 1_000_000
#: Deepest nesting of mappings and lists (settings are a handful of levels deep).
MAX_DEPTH = 100


class Located(dict):  # type: ignore[type-arg]
    """A mapping from a YAML file; ``line_of(key)`` is the 1-based line where ``key`` was written."""

    source: str = "?"
    line: int = 0
    lines: dict[Any, int]
    texts: dict[Any, str]  # each plain scalar value that YAML read as other than text, as it was written

    def line_of(self, key: Any) -> int:
        return getattr(self, "lines", {}).get(key, self.line)

    def where(self, key: Any | None = None) -> str:
        """``file:line`` of ``key`` (or of the mapping itself)."""
        return f"{self.source}:{self.line if key is None else self.line_of(key)}"


def where_of(value: Any, fallback: Callable[[Any], str]) -> Callable[[Any], str]:
    """``value.where`` for a mapping read from a file, else ``fallback``: ``file:line`` of a key of ``value``."""
    return value.where if isinstance(value, Located) else fallback


def located_like(kept: dict[Any, Any], fields: Any) -> dict[Any, Any]:
    """``kept`` (some of the mapping ``fields``) with the lines ``fields`` was read with."""
    if not isinstance(fields, Located):
        return kept
    out = Located(kept)
    out.source, out.line, out.lines = fields.source, fields.line, getattr(fields, "lines", {})
    return out


# PyYAML exports libyaml's parser as yaml.cyaml.CParser only (``yaml.CParser`` does not exist).
_CParser = getattr(getattr(yaml, "cyaml", None), "CParser", None)
#: Whether libyaml's C parser is used (PyYAML built with libyaml, as its wheels are).
C_PARSER = _CParser is not None

if _CParser is not None:
    class _Loader(_CParser, yaml.constructor.SafeConstructor, yaml.resolver.Resolver):  # type: ignore[misc,valid-type]
        source = "?"

        def __init__(self, stream: str) -> None:
            _CParser.__init__(self, stream)  # type: ignore[misc]
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)
else:  # pragma: no cover - PyYAML without libyaml: the same, in pure Python
    class _Loader(yaml.SafeLoader):  # type: ignore[no-redef]
        source = "?"


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> Located:
    loader.flatten_mapping(node)
    mapping = Located()
    mapping.source = loader.source
    mapping.line = node.start_mark.line + 1
    mapping.lines = {}
    mapping.texts = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise ProjectError(f"{loader.source}:{key_node.start_mark.line + 1}: a mapping key must be a plain value") \
                from None
        if key in mapping:
            raise ProjectError(f"{loader.source}:{key_node.start_mark.line + 1}: '{key}' is given twice")
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.lines[key] = key_node.start_mark.line + 1
        if isinstance(value_node, yaml.ScalarNode) and value_node.tag != _STR_TAG and not value_node.style:
            mapping.texts[key] = value_node.value  # as written: `no`, `010`, `1.10` (YAML 1.1 reads false, 8, 1.1)
    return mapping


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

_STR_TAG = "tag:yaml.org,2002:str"


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> Any:
    """A list of strings (100,000 names from ``tojson``) straight from its nodes; anything else as PyYAML builds
    it. A string node's value is the string (what SafeConstructor would return for each, one call at a time)."""
    if node.value and all(type(child) is yaml.ScalarNode and child.tag == _STR_TAG for child in node.value):
        return [child.value for child in node.value]
    return yaml.constructor.SafeConstructor.construct_yaml_seq(loader, node)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def _check_bounds(root: yaml.Node, source: str, context: str) -> None:
    """Refuse a document whose aliases expand to too many values or that nests too deeply, before building it.

    The composed graph shares an anchored node wherever it is aliased, so counting expanded values is a walk over
    distinct nodes with each one's expanded size remembered (never an expansion)."""
    size: dict[int, int] = {}
    distinct = 0
    # Iterative post-order walk: (node, depth, children_done).
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    on_path: set[int] = set()
    while stack:
        node, depth, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            if isinstance(node, yaml.MappingNode):
                children = [part for pair in node.value for part in pair]
            else:
                children = list(node.value)
            total = 1 + sum(size[id(child)] for child in children)
            size[key] = total
            if total - distinct > MAX_ALIAS_EXPANSION:
                raise ProjectError(
                    f"{source}:{node.start_mark.line + 1}: YAML error{context}: aliases here expand to more than "
                    f"{MAX_ALIAS_EXPANSION:,} values; write the values out or use fewer aliases")
            continue
        if key in size:
            continue
        if key in on_path:  # a recursive alias (possible through merge keys); the constructor cannot build it either
            raise ProjectError(f"{source}:{node.start_mark.line + 1}: YAML error{context}: an alias refers to itself")
        if depth > MAX_DEPTH:
            raise ProjectError(f"{source}:{node.start_mark.line + 1}: YAML error{context}: nested more than "
                               f"{MAX_DEPTH} levels deep")
        if not isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
            size[key] = 1
            distinct += 1
            continue
        distinct += 1
        if isinstance(node, yaml.SequenceNode) and all(type(child) is yaml.ScalarNode for child in node.value):
            # A list of plain values (often long): sized at once. An alias to a scalar is the scalar's node again;
            # counting it as one more value is what expanding it costs.
            if depth + 1 > MAX_DEPTH and node.value:
                raise ProjectError(f"{source}:{node.start_mark.line + 1}: YAML error{context}: nested more than "
                                   f"{MAX_DEPTH} levels deep")
            size[key] = 1 + len(node.value)
            distinct += len(node.value)
            continue
        on_path.add(key)
        stack.append((node, depth, True))
        if isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            children = list(node.value)
        for child in children:
            if id(child) not in size:
                stack.append((child, depth + 1, False))


_PlainLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_plain(text: str, source: str) -> Any:
    """``text`` as plain data (dicts, lists, scalars; no line numbers kept), under the same alias and depth bounds as
    :func:`parse_yaml` but no size bound: for data files that may be large, such as an emulated tenant's."""
    return _load(_PlainLoader, text, source, "")


def parse_yaml(text: str, source: str, context: str = "") -> Any:
    """Parse ``text``; a syntax error becomes a :class:`ProjectError` naming ``source`` and the line
    (``context`` is added to that message, e.g. which environment a template was rendered for)."""
    limit = max_bytes()
    if len(text) > limit:
        raise ProjectError(f"{source}: YAML error{context}: {_too_large(limit)}")
    lifted, lists = _lift_json_lists(text, source)
    if lists:
        try:
            document = _load(_Loader, lifted, source, context)
        except ProjectError:
            document = None  # the text as written says what is wrong, and where
        else:
            if _put_back(document, lists) == len(lists):
                return document
    return _load(_Loader, text, source, context)


# A key's value written as a JSON array of strings or of objects on the key's own line (what ``tojson`` writes):
# ``  users: ["a@x.com", "b@x.com"]``, ``  selectedItems: [{"user": "a@x.com", "mailbox": true}, ...]``.
_JSON_LIST_LINE = re.compile(r'^([ \t]*(?:- )?[A-Za-z_][\w.-]*:[ \t]+)(\[\{?"[^\n]*\])[ \t]*$', re.MULTILINE)
_STRINGS = msgspec.json.Decoder(list[str])
_LIFTED = f"vboplan-lifted-list-{secrets.token_hex(8)}-"


class _NotAsYaml(ValueError):
    """A JSON value YAML would read otherwise (a float: YAML 1.1 reads ``1e3`` as a string; NaN, Infinity)."""


def _not_as_yaml(text: str) -> Any:
    raise _NotAsYaml(text)


def _lift_json_lists(text: str, source: str = "?") -> tuple[str, dict[str, list[Any]]]:
    """``text`` with each JSON array of strings or objects that is a key's whole value on one line replaced by a
    scalar, and the lists by those scalars. Objects become :class:`Located` mappings of that line (a key given
    twice is left to YAML, which names it); an array holding a float is left to YAML too."""
    lists: dict[str, list[Any]] = {}
    if '["' not in text and '[{"' not in text:
        return text, lists
    lines = _LineCounter(text)

    def lift(match: re.Match[str]) -> str:
        try:
            if match.group(2).startswith('["'):
                values: list[Any] = _STRINGS.decode(match.group(2))
            else:
                line = lines.at(match.start())

                def located(pairs: list[tuple[str, Any]]) -> Located:
                    mapping = Located(_reject_duplicates(pairs))
                    mapping.source, mapping.line, mapping.lines = source, line, dict.fromkeys(mapping, line)
                    return mapping

                values = json.loads(match.group(2), object_pairs_hook=located, parse_float=_not_as_yaml,
                                    parse_constant=_not_as_yaml)
                if not isinstance(values, list):
                    return match.group(0)
        except (msgspec.DecodeError, ValueError, RecursionError):  # not such a list, or not as YAML reads it
            return match.group(0)
        token = f"{_LIFTED}{len(lists)}"
        lists[token] = values
        return match.group(1) + token

    return _JSON_LIST_LINE.sub(lift, text), lists


class _LineCounter:
    """1-based line numbers of positions in a text, asked for in increasing order."""

    def __init__(self, text: str) -> None:
        self.text, self.position, self.line = text, 0, 1

    def at(self, position: int) -> int:
        self.line += self.text.count("\n", self.position, position)
        self.position = position
        return self.line


def _put_back(value: Any, lists: dict[str, list[Any]]) -> int:
    """Put each lifted list back where its scalar is a mapping's value; how many were."""
    count = 0
    if isinstance(value, dict):
        for key, inner in value.items():
            if type(inner) is str and inner in lists:
                value[key] = lists[inner]
                count += 1
            elif isinstance(inner, (dict, list)):
                count += _put_back(inner, lists)
    elif isinstance(value, list):
        for inner in value:
            if isinstance(inner, (dict, list)):
                count += _put_back(inner, lists)
    return count


def _load(loader_class: Any, text: str, source: str, context: str) -> Any:
    """Compose ``text`` with ``loader_class``, measure it against the bounds, then build it; every way it fails is
    one :class:`ProjectError` naming ``source`` (and the line, where known)."""
    loader: Any = None
    try:
        loader = loader_class(text)
        loader.source = source
        node = loader.get_single_node()
        if node is None:
            return None
        _check_bounds(node, source, context)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise ProjectError(f"{source}{line}: YAML error{context}: {problem}") from None
    except yaml.reader.ReaderError as exc:
        at = text[:exc.position].count("\n") + 1 if isinstance(exc.position, int) else "?"
        raise ProjectError(f"{source}:{at}: YAML error{context}: {exc.reason} (character {exc.character!r})"
                           ) from None
    except yaml.YAMLError as exc:
        raise ProjectError(f"{source}: YAML error{context}: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise ProjectError(f"{source}: YAML error{context}: nested too deeply") from None
    except (ValueError, TypeError, OverflowError) as exc:  # a tagged value that does not parse, e.g. !!int x
        raise ProjectError(f"{source}: YAML error{context}: {' '.join(str(exc).split())}") from None
    finally:
        if loader is not None:
            loader.dispose()


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    mapping: dict[str, Any] = {}
    for key, value in pairs:
        if key in mapping:
            raise _DuplicateKey(key)
        mapping[key] = value
    return mapping


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def parse_json(text: str, source: str) -> Any:
    """Parse JSON text; errors name ``source`` and the line. Keys given twice are an error, as in YAML."""
    limit = max_bytes()
    if len(text) > limit:
        raise ProjectError(f"{source}: {_too_large(limit)}")
    try:
        return json.loads(text, object_pairs_hook=_reject_duplicates)
    except _DuplicateKey as exc:
        raise ProjectError(f"{source}: JSON error: '{exc.key}' is given twice") from None
    except json.JSONDecodeError as exc:
        raise ProjectError(f"{source}:{exc.lineno}: JSON error: {exc.msg} (column {exc.colno})") from None
    except RecursionError:
        raise ProjectError(f"{source}: JSON error: nested too deeply") from None


def read_text(path: Path, display: str | None = None, limit: int | None = None) -> str:
    """The UTF-8 text of ``path``, refused when larger than ``limit`` (default :func:`max_bytes`); errors are
    :class:`ProjectError`."""
    name = display or str(path)
    limit = max_bytes() if limit is None else limit
    try:
        data = read_regular(path, limit)
    except FileNotFoundError:
        raise ProjectError(f"{name}: file not found") from None
    except IsADirectoryError:
        raise ProjectError(f"{name}: is a directory, not a file") from None
    except NotRegularFile as exc:
        raise ProjectError(f"{name}: {exc.strerror}") from None
    except OSError as exc:
        raise ProjectError(f"{name}: cannot read: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise ProjectError(f"{name}: {_too_large(limit)}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ProjectError(f"{name}:{line}: not UTF-8 text (byte {exc.start})") from None
    if "\x00" in text:
        line = text[:text.index("\x00")].count("\n") + 1
        raise ProjectError(f"{name}:{line}: contains a NUL character; not a text file")
    return text


def load_yaml(path: Path, display: str | None = None) -> Any:
    """Read and parse a YAML file (a ``.json`` file as JSON); a missing or unreadable file is a
    :class:`ProjectError`."""
    name = display or str(path)
    text = read_text(path, name)
    if path.suffix.lower() == ".json":
        return parse_json(text, name)
    return parse_yaml(text, name)


def plain(value: Any) -> Any:
    """``value`` with every parsed mapping and list as a plain dict and list (no line numbers attached)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        if set(map(type, value)) <= _SCALARS:
            return list(value)  # a list of plain values (100,000 names): no call per value
        return [plain(v) for v in value]
    return value


_SCALARS = frozenset({str, int, float, bool, type(None)})
