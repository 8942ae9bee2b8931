"""YAML that remembers where each mapping key came from, so errors can name a file and a line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import ProjectError


class Located(dict):  # type: ignore[type-arg]
    """A mapping from a YAML file; ``line_of(key)`` is the 1-based line where ``key`` was written."""

    source: str = "?"
    line: int = 0
    lines: dict[Any, int]

    def line_of(self, key: Any) -> int:
        return getattr(self, "lines", {}).get(key, self.line)

    def where(self, key: Any | None = None) -> str:
        """``file:line`` of ``key`` (or of the mapping itself)."""
        return f"{self.source}:{self.line if key is None else self.line_of(key)}"


class _Loader(yaml.SafeLoader):
    source = "?"


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> Located:
    loader.flatten_mapping(node)
    mapping = Located()
    mapping.source = loader.source
    mapping.line = node.start_mark.line + 1
    mapping.lines = {}
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
    return mapping


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_yaml(text: str, source: str, context: str = "") -> Any:
    """Parse ``text``; a syntax error becomes a :class:`ProjectError` naming ``source`` and the line
    (``context`` is added to that message, e.g. which environment a template was rendered for)."""
    loader = _Loader(text)
    loader.source = source
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise ProjectError(f"{source}{line}: YAML error{context}: {problem}") from None
    except yaml.YAMLError as exc:
        raise ProjectError(f"{source}: YAML error{context}: {exc}") from None
    finally:
        loader.dispose()


def load_yaml(path: Path, display: str | None = None) -> Any:
    """Read and parse a YAML (or JSON) file; a missing or unreadable file is a :class:`ProjectError`."""
    name = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProjectError(f"{name}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProjectError(f"{name}: cannot read: {exc}") from None
    return parse_yaml(text, name)
