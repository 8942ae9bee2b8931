"""Veeam's OpenAPI documents, as the slices vboplan ships, and a binder that reads JSON the way the server does.

The server is an ASP.NET service using JSON.NET defaults, so on input it accepts property names and enum values in
any case and strings such as ``"true"`` or ``"587"`` where a boolean or a number is declared. :func:`bind` does the
same, driven by the schema, and returns canonical values; it is used both to normalise what templates render and by
the emulator to read request bodies. No v5 document exists publicly; v5 uses the v6 document (see ``document``).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any, TypeVar

VERSIONS = ("v5", "v6", "v7", "v8")


class SchemaError(ValueError):
    """A value does not fit the schema. ``where`` is a dotted path to it (empty for the root)."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where
        self.message = message


@cache
def document(version: str) -> dict[str, Any]:
    """The OpenAPI slice for ``version``. v5 has no published document: its schemas are taken as v6's, with paths
    renamed to ``/v5``; the differences Veeam's v5 Help Center pages document (status codes, the remove form:
    https://helpcenter.veeam.com/archive/vbo365/50/rest/put_audititems.html, .../delete_audititems.html) live in the
    callers."""
    source = "v6" if version == "v5" else version
    text = resources.files(__package__).joinpath(f"vb365_{source}.json").read_text(encoding="utf-8")
    doc = json.loads(text)
    if version == "v5":
        doc["paths"] = {"/v5" + p[3:]: ops for p, ops in doc["paths"].items()}
    return doc


def component(version: str, name: str) -> dict[str, Any]:
    """A named component schema of ``version``."""
    return document(version)["components"]["schemas"][name]


T = TypeVar("T")

# Schemas merged from single-element ``allOf`` wrappers, and the lower-cased property names of object schemas, by
# the id of the document-owned schema they come from (kept with it, so an id is never reused while cached): the
# emulator binds every request body, item by item.
_merged: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}
_lower_names: dict[int, tuple[dict[str, Any], dict[str, str]]] = {}


def _held(cache: dict[int, tuple[dict[str, Any], T]], schema: dict[str, Any],
          build: Callable[[dict[str, Any]], T]) -> T:
    """``build(schema)``, kept in ``cache`` while ``schema`` is the same object."""
    held = cache.get(id(schema))
    if held is None or held[0] is not schema:
        if len(cache) > 4096:  # a caller's own schema made per call must not pile up
            cache.clear()
        held = cache[id(schema)] = (schema, build(schema))
    return held[1]


def resolve(version: str, schema: dict[str, Any]) -> dict[str, Any]:
    """Follow ``$ref`` (and single-element ``allOf`` wrappers) to the schema they name."""
    while True:
        if "$ref" in schema:
            schema = component(version, schema["$ref"].rsplit("/", 1)[1])
        elif "allOf" in schema and len(schema["allOf"]) == 1:
            return _held(_merged, schema, lambda wrapper: {
                **resolve(version, wrapper["allOf"][0]), **{k: v for k, v in wrapper.items() if k != "allOf"}})
        else:
            return schema


def _by_lower(schema: dict[str, Any]) -> dict[str, str]:
    return _held(_lower_names, schema, lambda object_schema: {
        name.lower(): name for name in object_schema.get("properties", {})})


def properties(version: str, name: str) -> dict[str, dict[str, Any]]:
    """The properties of component ``name``, each resolved to its own schema."""
    props = component(version, name).get("properties", {})
    return {prop: resolve(version, schema) for prop, schema in props.items()}


def operation(version: str, method: str, path: str) -> dict[str, Any] | None:
    """The operation object for ``method`` on ``path`` (``/vN/...`` as the document spells it), if documented."""
    for doc_path, ops in document(version)["paths"].items():
        if doc_path.lower() == path.lower():
            return ops.get(method.lower())
    return None


def nearest(name: str, candidates: list[str]) -> str | None:
    """The candidate that looks most like ``name`` (for "did you mean" hints)."""
    lowered = {c.lower(): c for c in candidates}
    match = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[match[0]] if match else None


_INT = re.compile(r"[+-]?\d+")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_INT_RANGE = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}


def bind(version: str, schema: dict[str, Any], value: Any, where: str = "", *, unknown: str = "ignore",
         read_only: str = "ignore") -> Any:
    """Read ``value`` against ``schema`` leniently and return it in canonical form.

    ``unknown`` says what to do with a property the schema does not declare: ``"ignore"`` drops it (the server's
    behaviour), ``"error"`` raises with the nearest known name. ``read_only`` does the same for ``readOnly``
    properties. Raises :class:`SchemaError` for a value of the wrong type or outside an enum.
    """
    schema = resolve(version, schema)
    if value is None:
        if schema.get("nullable") or schema.get("type") in (None, "object", "array", "string"):
            return None
        raise SchemaError(where, f"must not be null (expected {schema.get('type')})")
    kind = schema.get("type")
    if "enum" in schema:
        return _bind_enum(schema["enum"], value, where)
    if kind == "boolean":
        return _bind_bool(value, where)
    if kind == "integer":
        return _bind_int(value, where, schema.get("format"))
    if kind == "number":
        return _bind_number(value, where)
    if kind == "string":
        return _bind_string(value, where, schema.get("format"))
    if kind == "array":
        if not isinstance(value, list):
            raise SchemaError(where, f"expected a list, got {_describe(value)}")
        item = schema.get("items", {})
        return [bind(version, item, v, f"{where}[{i}]", unknown=unknown, read_only=read_only)
                for i, v in enumerate(value)]
    if kind == "object" or "properties" in schema or "additionalProperties" in schema:
        if not isinstance(value, dict):
            raise SchemaError(where, f"expected a mapping, got {_describe(value)}")
        return _bind_object(version, schema, value, where, unknown, read_only)
    return value


def _bind_object(version: str, schema: dict[str, Any], value: dict[str, Any], where: str, unknown: str,
                 read_only: str) -> dict[str, Any]:
    declared = schema.get("properties", {})
    by_lower = _by_lower(schema)
    extra = schema.get("additionalProperties")
    out: dict[str, Any] = {}
    for key, item in value.items():
        key_where = f"{where}.{key}" if where else str(key)
        name = by_lower.get(str(key).lower())
        if name is None:
            if isinstance(extra, dict):
                out[str(key)] = bind(version, extra, item, key_where, unknown=unknown, read_only=read_only)
                continue
            if unknown == "error":
                hint = nearest(str(key), list(declared))
                raise SchemaError(key_where, "unknown field" + (f"; did you mean '{hint}'?" if hint else ""))
            continue
        prop = resolve(version, declared[name])
        if prop.get("readOnly") or declared[name].get("readOnly"):
            if read_only == "error":
                raise SchemaError(f"{where}.{name}" if where else name, "is read-only and cannot be set")
            continue
        out[name] = bind(version, prop, item, f"{where}.{name}" if where else name, unknown=unknown,
                         read_only=read_only)
    return out


def _bind_enum(allowed: list[Any], value: Any, where: str) -> Any:
    if isinstance(value, str):
        for option in allowed:
            if isinstance(option, str) and option.lower() == value.lower():
                return option
    elif value in allowed:
        return value
    raise SchemaError(where, f"{value!r} is not one of {', '.join(map(str, allowed))}")


def _bind_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise SchemaError(where, f"expected true or false, got {_describe(value)}")


def _bind_int(value: Any, where: str, fmt: str | None) -> int:
    if isinstance(value, bool):
        raise SchemaError(where, f"expected a whole number, got {_describe(value)}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and _INT.fullmatch(value.strip()):
        value = int(value.strip())
    if not isinstance(value, int):
        raise SchemaError(where, f"expected a whole number, got {_describe(value)}")
    low, high = _INT_RANGE.get(fmt or "", (None, None))
    if low is not None and not low <= value <= high:  # type: ignore[operator]
        raise SchemaError(where, f"{value} is out of range for {fmt}")
    return value


def _bind_number(value: Any, where: str) -> float | int:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        return float(value)
    raise SchemaError(where, f"expected a number, got {_describe(value)}")


def _bind_string(value: Any, where: str, fmt: str | None) -> str:
    # JSON.NET turns scalars into strings where a string is declared; containers are an error.
    if isinstance(value, bool):
        value = "true" if value else "false"
    elif isinstance(value, (int, float)):
        value = str(value)
    if not isinstance(value, str):
        raise SchemaError(where, f"expected a string, got {_describe(value)}")
    if fmt == "date-time" and value:
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise SchemaError(where, f"{value!r} is not a date-time") from None
    return value


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    return repr(value)
