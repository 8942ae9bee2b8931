"""Regenerate the OpenAPI extracts vboplan ships (``vboplan/schema/vb365_v*.json``).

Veeam publishes one large OpenAPI document per API version. vboplan needs only the operations it
calls (and the emulator serves) plus the component schemas they reference, so this script copies
exactly that slice. The installed package reads the extracts, never the full documents.

    python -m vboplan.schema.extract ../shared/vbo-api
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

# Operations vboplan uses, as path patterns after the version prefix (case-insensitive); every settings object of
# the catalog is added with its actions (test mail, OAuth sign-in), and every named collection of the registry with
# the paths its operations name.
WANTED = [
    r"token",
    r"token/logout",
    r"token/AuthCode",
    r"ServiceInstance",
    r"Organizations",
    r"Organizations/\{organizationId\}",
    r"Organizations/\{organizationId\}/(Users|Groups|Sites|Teams)",
    r"Organizations/\{organizationId\}/(Users|Groups|Sites|Teams)/\{(userId|groupId|siteId|teamId)\}",
]


def _refs(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            found.add(ref.rsplit("/", 1)[1])
        for value in node.values():
            found |= _refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= _refs(value)
    return found


def _strip(node: Any, names: bool = False) -> Any:
    """Drop prose (descriptions, summaries) so the extract stays small; keep every constraint. ``names``: ``node``
    maps names to schemas (``properties``), so a property called ``description`` is kept."""
    if isinstance(node, dict):
        return {k: _strip(v, k == "properties" and not names) for k, v in node.items()
                if names or k not in ("description", "summary", "example")}
    if isinstance(node, list):
        return [_strip(v) for v in node]
    return node


def wanted() -> list[str]:
    """The path patterns to keep: :data:`WANTED`, each settings object's paths in any version and each collection's
    operations."""
    from vboplan.kinds.catalog import settings
    from vboplan.kinds.registry import collection_specs

    paths = sorted({endpoint.path for spec in settings() for endpoint in spec.endpoints.values()})
    operations = sorted({path for spec in collection_specs() for path in spec.paths()})
    return WANTED + [re.escape(path) + "(/.*)?" for path in paths] + [re.escape(path) for path in operations]


def extract(document: dict[str, Any], version: str) -> dict[str, Any]:
    pattern = re.compile(rf"/{version}/({'|'.join(wanted())})", re.IGNORECASE)
    paths = {p: ops for p, ops in document["paths"].items() if pattern.fullmatch(p)}
    schemas = document["components"]["schemas"]
    needed: set[str] = set()
    pending = _refs(paths)
    while pending:
        name = pending.pop()
        if name in needed:
            continue
        needed.add(name)
        pending |= _refs(schemas[name]) - needed
    return {
        "openapi": document["openapi"],
        "info": {"title": document["info"]["title"], "version": document["info"]["version"]},
        "paths": _strip(paths),
        "components": {"schemas": _strip({name: schemas[name] for name in sorted(needed)})},
    }


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 1
    source = Path(argv[0])
    for version in ("v6", "v7", "v8"):
        document = json.loads((source / f"vb365_rest_{version}.json").read_text(encoding="utf-8"))
        out = HERE / f"vb365_{version}.json"
        out.write_text(json.dumps(extract(document, version), indent=1, sort_keys=True) + "\n", encoding="utf-8")
        print(f"{out.name}: {len(document['paths'])} paths -> {len(extract(document, version)['paths'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
