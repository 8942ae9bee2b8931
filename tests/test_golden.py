"""The table, Markdown and JSON of a plan touching every resource kind, compared with reviewed files in tests/data/,
so a change of output is one reviewable diff. Regenerate them with ``VBOPLAN_UPDATE_GOLDEN=1 pytest
tests/test_golden.py`` and review the diff."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import SEED, ProjectDir
from test_settings_kinds import TEMPLATES

from vboplan.kinds import catalog
from vboplan.kinds.registry import KINDS, collection_specs

DATA = Path(__file__).resolve().parent / "data"
UPDATE = os.environ.get("VBOPLAN_UPDATE_GOLDEN") == "1"


@pytest.fixture
def every_kind(project: ProjectDir) -> ProjectDir:
    for key, template in TEMPLATES.items():
        project.write(f"templates/{key}.yaml.j2", template)
    project.write("templates/audit_items.yaml.j2",
                  "audit_items:\n  contoso.onmicrosoft.com:\n    users: [ceo@contoso.com]\n    groups: [HR Department]\n")
    project.write("environments/dev.yaml", "domain: dev.contoso.com\nsmtp:\n  host: smtp.dev.local\n"
                                           "notify_success: true\n")
    seed = json.loads(json.dumps(SEED))
    seed["organizations"][0]["audit_items"] = [{"user": "jane@contoso.com"}, {"group": "HR Department"}]
    project.seed("dev", seed)
    return project


def _stable(value: Any) -> Any:
    """The plan document without what differs between runs: times, salts and the checksum over them."""
    if isinstance(value, dict):
        if value.get("algorithm") == "pbkdf2-sha256":
            return "<salted hash>"
        return {k: "<varies>" if k in ("created_at", "expires_at", "checksum") else _stable(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def _compare(name: str, text: str) -> None:
    path = DATA / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} is missing: run with VBOPLAN_UPDATE_GOLDEN=1 to write it"
    expected = path.read_text(encoding="utf-8")
    assert text == expected, f"{name} differs from the reviewed output; if the change is intended, regenerate " \
                             "with VBOPLAN_UPDATE_GOLDEN=1 and review the diff"


def test_plan_of_every_kind_matches_the_golden_files(every_kind: ProjectDir) -> None:
    outputs = {}
    for fmt in ("table", "markdown", "json"):
        result = every_kind.run("plan", "--env", "dev", "--format", fmt)
        assert result.exit_code == 0, result.output
        outputs[fmt] = result.stdout
    document = json.loads(outputs["json"])
    planned = document["plans"][0]
    kinds = {change["kind"] for change in planned["changes"]}
    # Every kind but the named collections (their plans have their own tests, test_collections.py) and lifecycle
    # rules (which make no rows).
    assert kinds == {spec.key for spec in catalog.settings()} | {"audit_items"}
    assert set(KINDS) == kinds | {spec.key for spec in collection_specs()} | {"lifecycle"}
    assert {change["action"] for change in planned["changes"]} == {"create", "update", "delete"}

    _compare("plan_every_kind.txt", outputs["table"])
    markdown = re.sub(r"Planned by (\S+) at \S+; checksum `[0-9a-f]{64}`", r"Planned by \1 at <varies>; checksum "
                      r"`<varies>`", outputs["markdown"])
    _compare("plan_every_kind.md", markdown)
    _compare("plan_every_kind.json", json.dumps(_stable(document), indent=2, ensure_ascii=False) + "\n")


def test_requests_of_every_kind_match_the_golden_files(every_kind: ProjectDir) -> None:
    """`show --requests`: the requests apply would send for the plan of every kind, as the table and Markdown list
    them (a reviewed file each: a change of what is sent is one reviewable diff)."""
    path = every_kind.root / "plan.json"
    assert every_kind.run("plan", "--env", "dev", "--out", str(path)).exit_code == 0
    for fmt, name in (("table", "requests_every_kind.txt"), ("markdown", "requests_every_kind.md")):
        result = every_kind.run("show", str(path), "--requests", "--format", fmt)
        assert result.exit_code == 0, result.output
        text = result.stdout[result.stdout.index("Requests apply sends" if fmt == "table" else "<details><summary>"
                                                 "Requests apply sends"):]
        # Without the lines about the author and approvals under them.
        text = text[:text.index("\ncreated: ") + 1 if fmt == "table" else text.index("\n**Provenance and approvals**")]
        _compare(name, text)
    listed = json.loads(every_kind.run("show", str(path), "--requests", "--format", "json").stdout)
    requests = listed["plans"][0]["requests"]
    # Every change is carried out by exactly one request, and the secret is masked.
    carried = [i for r in requests for i in r["changes"]]
    assert sorted(carried) == sorted(c["id"] for c in listed["plans"][0]["changes"])
    assert '"userPassword": "(sensitive)"' in json.dumps(requests)
    page = every_kind.run("show", str(path), "--requests", "--format", "html").stdout
    folded = page[page.index('<details class="requests">'):page.index("</details>")]
    assert folded.count("<li>") == len(requests) and "&quot;userPassword&quot;: &quot;(sensitive)&quot;" in folded
