"""Audit items' outputs pinned byte for byte, against the emulator over real HTTP: a small project with users and
groups to add and items to remove in two organizations, in v8 and v5 (whose remove request has a form of its own).
Each output is compared with a reviewed file under tests/data/audit_pins/VERSION/: the plan as a table, Markdown,
JSON and HTML, ``show --requests`` of the saved plan (table and JSON), the snapshot's ``resources.audit_items`` after
the apply, ``state show`` (table and JSON), ``check`` of policy rules over them, the drift a ``plan --refresh-only``
shows after the server changed, and what ``import --dry-run`` would write.

What differs from run to run is replaced before comparing, and only that: the emulator's URL (a free port), times,
the plan's checksum, the state's lineage and the apply's journal (random ids of vboplan's), and salted hashes (none
of which audit items make). The server's ids are the emulator's own, derived from the seed, so they are the same
each run and are compared as they are.

Regenerate the files deliberately with ``VBOPLAN_UPDATE_AUDIT_PINS=1 pytest tests/test_audit_pins.py`` and review
the diff."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import API_SECRET, ProjectDir, api_client, one_server_project

from vboplan.emulator import RunningServer, start

PINS = Path(__file__).resolve().parent / "data" / "audit_pins"
UPDATE = os.environ.get("VBOPLAN_UPDATE_AUDIT_PINS") == "1"
CONTOSO, FABRIKAM = "contoso.onmicrosoft.com", "fabrikam.onmicrosoft.com"

SEED: dict[str, Any] = {
    "credentials": [{"username": "admin", "password": API_SECRET}],
    "organizations": [{
        "name": CONTOSO,
        "users": [{"displayName": "Jane Doe", "name": "jane@contoso.com"},
                  {"displayName": "Chief Executive", "name": "ceo@contoso.com"},
                  {"displayName": "Chief Financial Officer", "name": "cfo@contoso.com"},
                  {"displayName": "Alex Twin", "name": "alex1@contoso.com"},
                  {"displayName": "Alex Twin", "name": "alex2@contoso.com"}],
        "groups": [{"displayName": "HR Department", "name": "hr@contoso.com"},
                   {"displayName": "Finance", "name": "finance@contoso.com"}],
        "audit_items": [{"user": "jane@contoso.com"}, {"user": "cfo@contoso.com"}, {"group": "HR Department"}],
    }, {
        "name": FABRIKAM,
        "users": [{"displayName": "Bob Boss", "name": "bob@fabrikam.com"},
                  {"displayName": "Eve Ops", "name": "eve@fabrikam.com"}],
        "groups": [{"displayName": "Ops", "name": "ops@fabrikam.com"}],
    }],
}

# cfo is declared by display name and audited already; ceo, Finance, bob and Ops are added; jane and HR removed.
TEMPLATE = f"""\
audit_items:
  {CONTOSO}:
    users: [ceo@contoso.com, Chief Financial Officer]
    groups: [Finance]
  {FABRIKAM}:
    users: [bob@fabrikam.com]
    groups: [Ops]
"""

# Policy rules over audit items, as `check` evaluates them on each organization's declared and audited principals.
RULES = """\
rules:
  - id: ceo-audited
    level: warn
    resource: audit_items
    expr: '"ceo@contoso.com" in live.users || live.count == 0 || size(live.groups) > 1'
    message: the CEO is audited
  - id: groups-declared
    level: advisory
    resource: audit_items
    expr: size(desired.groups) > 0
    message: some group is declared
"""


@pytest.fixture(params=["v8", "v5"])
def day(request: pytest.FixtureRequest, tmp_path: Path, secrets_env: None) -> Iterator[tuple[ProjectDir,
                                                                                              RunningServer, str]]:
    version = request.param
    with start(SEED, profile="vbo5" if version == "v5" else "vb365-8") as running:
        project = one_server_project(tmp_path / "project", running.url, version, env="dev")
        project.write("templates/audit_items.yaml.j2", TEMPLATE)
        project.write("vboplan.yaml", (project.root / "vboplan.yaml").read_text() + "policies: [policies/*.yaml]\n")
        project.write("policies/audit.yaml", RULES)
        yield project, running, version


def _stable(text: str, url: str) -> str:
    """``text`` without what differs between runs (see the module docstring)."""
    text = text.replace(url, "<server>").replace(url.replace("http://", ""), "<server>")
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?", "<time>", text)
    text = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d(:\d\d)?( UTC)?", "<time>", text)
    text = re.sub(r"\b[0-9a-f]{64}\b", "<sha256>", text)
    text = re.sub(r'("?(?:lineage|journal)"?:? "?)[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}',
                  r"\1<uuid4>", text)
    return re.sub(r'"(salt|hash)": "[^"]*"', r'"\1": "<varies>"', text)


def _compare(version: str, name: str, text: str) -> None:
    path = PINS / version / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} is missing: run with VBOPLAN_UPDATE_AUDIT_PINS=1 to write it"
    expected = path.read_text(encoding="utf-8")
    assert text == expected, f"{version}/{name} differs from the pinned output; if the change is intended, " \
                             "regenerate with VBOPLAN_UPDATE_AUDIT_PINS=1 and review the diff"


def _out(project: ProjectDir, url: str, *args: str, codes: tuple[int, ...] = (0,)) -> str:
    result = project.run(*args)
    assert result.exit_code in codes, result.output
    return _stable(result.stdout, url)


def test_audit_item_outputs_are_pinned(day: tuple[ProjectDir, RunningServer, str]) -> None:
    project, running, version = day
    url = running.url
    pins: dict[str, str] = {}
    for fmt, suffix in (("table", "txt"), ("markdown", "md"), ("json", "json"), ("html", "html")):
        pins[f"plan.{suffix}"] = _out(project, url, "plan", "--env", "dev", "--format", fmt)
    pins["check.json"] = _out(project, url, "check", "--env", "dev", "--format", "json")
    saved = project.root / "plan.json"
    _out(project, url, "plan", "--env", "dev", "--out", str(saved))
    pins["requests.txt"] = _out(project, url, "show", str(saved), "--requests")
    pins["requests.json"] = _out(project, url, "show", str(saved), "--requests", "--format", "json")
    _out(project, url, "apply", str(saved))
    snapshot = json.loads((project.root / ".vboplan/state/dev.json").read_text(encoding="utf-8"))
    pins["snapshot.json"] = _stable(json.dumps(snapshot["resources"]["audit_items"], indent=2) + "\n", url)
    pins["state.txt"] = _out(project, url, "state", "show", "--env", "dev")
    pins["state.json"] = _out(project, url, "state", "show", "--env", "dev", "--format", "json")
    assert "No changes" in _out(project, url, "plan", "--env", "dev")  # converged

    # Changed on the server outside vboplan: alex1 audited in contoso, bob no longer audited in fabrikam.
    http = api_client(url, version)
    orgs = {o["name"]: o for o in _listed(http, version, "Organizations")}
    contoso, fabrikam = orgs[CONTOSO]["id"], orgs[FABRIKAM]["id"]
    alex = next(u for u in _listed(http, version, f"Organizations/{contoso}/Users") if u["name"] == "alex1@contoso.com")
    added = http.post(f"/{version}/Organizations/{contoso}/AuditItems",
                      json=[{"type": "User", "user": {"id": alex["id"], "name": alex["name"],
                                                      "displayName": alex["displayName"]}}])
    assert added.status_code < 300, added.text
    bob = next(i for i in http.get(f"/{version}/Organizations/{fabrikam}/AuditItems").json()
               if i["type"] == "User" and i["user"]["name"] == "bob@fabrikam.com")
    removed = http.post(f"/{version}/Organizations/{fabrikam}/AuditItems/action", json={"remove": {"itemIds": [
        bob["id"]]}}) if version == "v5" else \
        http.post(f"/{version}/Organizations/{fabrikam}/AuditItems/remove", json={"itemIds": [bob["id"]]})
    assert removed.status_code < 300, removed.text
    pins["refresh.txt"] = _out(project, url, "plan", "--env", "dev", "--refresh-only")
    pins["refresh.json"] = _out(project, url, "plan", "--env", "dev", "--refresh-only", "--format", "json")
    for written in ("templates/audit_items.yaml.j2", "environments/dev.yaml"):  # import never overwrites a file
        (project.root / written).unlink()
    pins["import.txt"] = _out(project, url, "import", "--env", "dev", "--resource", "audit_items", "--dry-run")

    for name, text in pins.items():
        _compare(version, name, text)


def _listed(http: Any, version: str, path: str) -> list[dict[str, Any]]:
    body = http.get(f"/{version}/{path}").json()
    return list(body["results"] if isinstance(body, dict) else body)


def test_audit_items_are_a_registered_collection_with_typed_hooks() -> None:
    """Audit items are one entry of the registry's collections like the others (the emulator serves them with
    handlers of its own, not a generic table), and their kind takes what is irregular from the spec's hooks: a spec
    whose hooks cannot write in bulk is refused when the kind first needs them, naming what is missing."""
    from dataclasses import replace

    from vboplan.emulator.collections import specs as emulated
    from vboplan.kinds import audit_items, hooks
    from vboplan.kinds.base import Basis
    from vboplan.kinds.registry import KINDS, SPECS
    from vboplan.planning.changes import make

    assert audit_items.SPEC in SPECS and KINDS["audit_items"].spec is audit_items.SPEC  # type: ignore[attr-defined]
    assert audit_items.SPEC not in emulated()
    assert all(isinstance(audit_items.SPEC.hooks, capability) for capability in (
        hooks.MakesKind, hooks.InParent, hooks.ResolvesNames, hooks.WritesInBulk))

    class NoBulk:
        def parent(self, client: Any, key: str) -> dict[str, Any]:
            return {"id": key, "name": key}

        def resolve(self, client: Any, parent: dict[str, Any], kind: str, names: list[str]) -> dict[str, Any]:
            return {}

    kind = audit_items.AuditItemsKind(replace(audit_items.SPEC, hooks=NoBulk()))
    add = make("create", "audit_items", audit_items.address(CONTOSO, "User", "ceo@contoso.com"), None,
               "Chief Executive <ceo@contoso.com>", False,
               {"org": CONTOSO, "orgId": "1", "type": "User", "principal": {"id": "p1"}})
    with pytest.raises(TypeError, match="write in bulk"):
        kind.writes(Basis("v8", None, None), [add])
    written = KINDS["audit_items"].writes(Basis("v8", None, None), [add])
    assert [(r.method, r.path, r.body) for w in written for r in w.requests] == [
        ("POST", "Organizations/1/AuditItems", [{"type": "User", "user": {"id": "p1"}}])]
