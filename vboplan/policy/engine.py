"""CEL, from ``common-expression-language`` (Python bindings to the Rust ``cel`` crate).

Only the compiled extension is loaded: the package's ``__init__`` also imports its interactive command line (typer,
rich, prompt_toolkit), which costs seconds of start-up that vboplan never uses. Loaded once, on first use, so a
project without policies never pays for it.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import re
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

_lock = threading.Lock()
_module: ModuleType | None = None


def cel() -> ModuleType:
    """The ``cel`` extension module (``compile``, ``Context``)."""
    global _module
    with _lock:
        if _module is not None:
            return _module
        found = sys.modules.get("cel.cel") or getattr(sys.modules.get("cel"), "cel", None)
        if found is None:
            spec = importlib.util.find_spec("cel")
            if spec is None or not spec.submodule_search_locations:
                raise ImportError("the CEL library is not installed (pip install common-expression-language)")
            where = Path(next(iter(spec.submodule_search_locations)))
            path = next((where / f"cel{suffix}" for suffix in importlib.machinery.EXTENSION_SUFFIXES
                         if (where / f"cel{suffix}").exists()), None)
            if path is None:
                raise ImportError(f"the CEL library in {where} has no compiled extension")
            extension = importlib.util.spec_from_file_location("cel.cel", path)
            assert extension is not None and extension.loader is not None
            found = importlib.util.module_from_spec(extension)
            sys.modules["cel.cel"] = found  # the package's own import finds it, so it is never initialised twice
            extension.loader.exec_module(found)
        _module = found
        return found


class ExpressionError(ValueError):
    """An expression that does not parse; ``line`` and ``column`` are 1-based within the expression."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(message)
        self.line = line
        self.column = column


_POSITION = re.compile(r"<input>:(\d+):(\d+): (.*)")


def compile_expression(source: str) -> Any:
    """A compiled program for ``source``; raises :class:`ExpressionError` with the first error's position."""
    try:
        return cel().compile(source)
    except (ValueError, RuntimeError, TypeError) as exc:
        found = _POSITION.search(str(exc))
        if found is None:
            raise ExpressionError(str(exc).splitlines()[0], 1, 1) from None
        return_message = found.group(3).strip()
        raise ExpressionError(return_message, int(found.group(1)), int(found.group(2)) + 1) from None


def context(variables: dict[str, Any]) -> Any:
    """A CEL evaluation context holding ``variables`` (converted once, reused by every rule run over it)."""
    return cel().Context(variables)


# -- what an expression names -------------------------------------------------------------------------------------

_STRING = re.compile(r"""[rR]?[bB]?("(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*')""")
_BOUND = re.compile(r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(\s*([A-Za-z_]\w*)\s*,")
_FIELD = re.compile(r"(?<![\w.])(desired|live|change)\s*\.\s*([A-Za-z_]\w*)")
_INDEX = re.compile(r"""(?<![\w.])(desired|live|change)\s*\[\s*("[^"]*"|'[^']*')\s*\]""")


def without_strings(source: str) -> str:
    """``source`` with every string literal blanked (same length), so names inside quotes are not read as names."""
    return _STRING.sub(lambda m: '"' + " " * (len(m.group()) - 2) + '"', source)


def bound_names(source: str) -> set[str]:
    """Names the comprehension macros bind (the ``u`` of ``desired.users.exists(u, ...)``)."""
    return set(_BOUND.findall(without_strings(source)))


def fields_named(source: str) -> list[tuple[str, str, int]]:
    """``(variable, field, offset)`` for every ``desired.F``, ``live.F`` and ``change.F`` (or ``x["F"]``)."""
    plain = without_strings(source)
    found = [(m.group(1), m.group(2), m.start(2)) for m in _FIELD.finditer(plain)]
    for m in _INDEX.finditer(plain):
        found.append((m.group(1), source[m.start(2) + 1:m.end(2) - 1], m.start(2)))
    return sorted(found, key=lambda f: f[2])


def position(source: str, offset: int) -> tuple[int, int]:
    """1-based (line, column) of ``offset`` in ``source``."""
    before = source[:offset]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1
