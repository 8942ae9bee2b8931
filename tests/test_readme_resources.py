"""The README's table of resources is the registry's: regenerate it with ``python -m vboplan.kinds.docs README.md``
when a kind is added or changes."""

from __future__ import annotations

import re
from pathlib import Path

from vboplan.kinds import docs
from vboplan.kinds.registry import KINDS

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_table_is_generated_from_the_registry() -> None:
    text = README.read_text(encoding="utf-8")
    assert docs.replaced(text) == text, "README.md's resource table differs from the registry: run " \
                                        "'python -m vboplan.kinds.docs README.md'"
    # Every kind templates can name is in it (lifecycle rules are no resource of the server).
    listed = set(re.findall(r"^\| `(\w+)` \|", docs.table(), re.M))
    assert listed == set(KINDS) - {"lifecycle"}


def test_a_registered_collection_changes_the_table() -> None:
    from throwaway_collection import SPEC

    from vboplan.kinds.registry import registered_collection

    with registered_collection(SPEC):
        assert "| `throwaway_hosts` | hosts of a throwaway collection | `/ThrowawayHosts` (v8) |" in docs.table()
        assert docs.replaced(README.read_text(encoding="utf-8")) != README.read_text(encoding="utf-8")
