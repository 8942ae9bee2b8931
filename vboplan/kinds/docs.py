"""The README's table of resources, made from the registry: one row per kind, its template key, what it is and its
endpoint per API version. ``python -m vboplan.kinds.docs README.md`` rewrites the table between its markers; a
test fails when the README's table and the registry differ.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from vboplan.api.versions import VERSIONS
from vboplan.kinds import catalog
from vboplan.kinds.registry import collection_specs

BEGIN = "<!-- resources: generated from the registry by `python -m vboplan.kinds.docs README.md` -->"
END = "<!-- end of resources -->"


def _versions(versions: list[str]) -> str:
    if versions == list(VERSIONS):
        return "v5-v8"
    return ", ".join(versions)


def _endpoints(paths: dict[str, str]) -> str:
    """``/Path (v6, v7, v8)``, several paths joined with ``; `` in the order of their first version."""
    by_path: dict[str, list[str]] = {}
    for version in VERSIONS:
        if version in paths:
            by_path.setdefault(paths[version], []).append(version)
    return "; ".join(f"`/{path.replace('{organizationId}', '{id}')}` ({_versions(versions)})"
                     for path, versions in by_path.items())


def table() -> str:
    rows = ["| template key | what | endpoint (API versions) |", "|---|---|---|"]
    for spec in catalog.settings():
        rows.append(f"| `{spec.key}` | {spec.summary} | "
                    f"{_endpoints({v: e.path for v, e in spec.endpoints.items()})} |")
    for collection in collection_specs():
        endpoints = [_endpoints({v: api.list.path for v, api in collection.versions.items()})]
        endpoints += [_endpoints({v: api.list.path for v, api in apart.versions.items()}) + f" (its {apart.field})"
                      for apart in collection.separate]
        rows.append(f"| `{collection.key}` | {collection.summary} | {'; '.join(endpoints)} |")
    return "\n".join(rows) + "\n"


def replaced(text: str) -> str:
    """``text`` (the README) with its table between the markers made anew."""
    pattern = re.compile(re.escape(BEGIN) + r"\n.*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise ValueError(f"the README has no {BEGIN!r} ... {END!r} markers")
    return pattern.sub(lambda _: f"{BEGIN}\n{table()}{END}", text)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 1
    path = Path(argv[0])
    path.write_text(replaced(path.read_text(encoding="utf-8")), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
