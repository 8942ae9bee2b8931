"""``--var KEY=VALUE``: variables set on the command line, over every variable file of an environment.

A key is dotted (``smtp.host`` sets ``host`` inside the mapping ``smtp``); a value is read as a YAML plain scalar,
as it would be in a variable file (``25`` is a number, ``true`` a boolean, ``[a, b]`` and ``x: y`` stay text). The
pairs a plan was made with are recorded in its plan file, so that ``apply PLANFILE`` renders the same templates.
"""

from __future__ import annotations

import math
import re
from typing import Any

from vboplan.errors import ProjectError

_KEY_PART = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
MAX_VARS = 1000
MAX_VALUE = 64 * 1024
_TYPED = {f"tag:yaml.org,2002:{name}" for name in ("int", "float", "bool", "null")}


def scalar(text: str) -> Any:
    """``text`` as YAML reads a plain scalar: a number, a boolean, null or the text itself."""
    import yaml

    tag = yaml.resolver.Resolver().resolve(yaml.ScalarNode, text, (True, False))
    # A date stays text: a plan file records the value as JSON.
    if tag not in _TYPED:
        return text
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    # Infinity and NaN have no JSON spelling: they stay text too.
    return text if isinstance(value, float) and not math.isfinite(value) else value


def parse_vars(given: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs, in the order given (a key given twice: the last one wins)."""
    if len(given) > MAX_VARS:
        raise ProjectError(f"--var: at most {MAX_VARS} variables")
    found: dict[str, Any] = {}
    for item in given:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep:
            raise ProjectError(f"--var {item}: expected KEY=VALUE (e.g. --var smtp.host=smtp.lab.local)")
        check_key(key, f"--var {item}")
        if len(value) > MAX_VALUE or "\x00" in value:
            raise ProjectError(f"--var {key}: the value is too long or holds a NUL character")
        found.pop(key, None)
        found[key] = scalar(value)
    return found


def check_key(key: str, where: str) -> None:
    """A dotted key of names (``smtp.host``); anything else names the mistake."""
    if not key or not all(_KEY_PART.fullmatch(part) for part in key.split(".")):
        raise ProjectError(f"{where}: '{key}' is not a variable name; use names joined by dots, like smtp.host")


def apply_vars(variables: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``variables`` (merged from the variable files) with each override set at its dotted key; a mapping on the
    way is created, or replaces a value that is not one."""
    merged = dict(variables)
    for key, value in overrides.items():
        *path, last = key.split(".")
        here = merged
        for part in path:
            inner = here.get(part)
            inner = dict(inner) if isinstance(inner, dict) else {}
            here[part] = inner
            here = inner
        here[last] = value
    return merged
