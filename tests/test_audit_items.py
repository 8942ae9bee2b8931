"""audit_items: users and groups named per organization, resolved to ids, planned, applied, converged."""

from __future__ import annotations

import json

import pytest
from conftest import ProjectDir, assert_one_clean_error

AUDIT_ITEMS = """\
audit_items:
  contoso.onmicrosoft.com:
    users: {{ audited_users | tojson }}
    groups: {{ audited_groups | tojson }}
"""


def _use(project: ProjectDir, version: str, users: list[str], groups: list[str]) -> None:
    config = (project.root / "vboplan.yaml").read_text().replace("api_version: v8", f"api_version: {version}", 1)
    project.write("vboplan.yaml", config)
    project.write("templates/audit_items.yaml.j2", AUDIT_ITEMS)
    project.write("environments/dev.yaml", "domain: dev.contoso.com\nsmtp:\n  host: smtp.dev.local\n"
                  f"audited_users: {json.dumps(users)}\naudited_groups: {json.dumps(groups)}\n")


def _plan_json(project: ProjectDir) -> dict:
    result = project.run("plan", "--env", "dev", "--format", "json", "--target", "audit_items")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["plans"][0]


def _audited(project: ProjectDir) -> set[tuple[str, str]]:
    """(type, name) of every audit item the emulated server holds for contoso."""
    http = project.api("dev")
    org = next(o for o in http.get("/v8/Organizations").json()["results"] if o["name"] == "contoso.onmicrosoft.com")
    items = http.get(f"/v8/Organizations/{org['id']}/AuditItems").json()
    return {(i["type"], (i.get("user") or i.get("group"))["name"]) for i in items}


@pytest.mark.parametrize("version", ["v5", "v6", "v7", "v8"])
def test_add_remove_and_converge(project: ProjectDir, version: str) -> None:
    _use(project, version, ["ceo@contoso.com", "Chief Financial Officer"], ["HR Department"])
    plan = _plan_json(project)
    rows = {(c["action"], c["address"]) for c in plan["changes"]}
    # Principals are addressed by their own user or group name, whichever name the template used, so the address
    # (and id) of a principal is the same when it is added and when it is removed.
    assert rows == {
        ("create", 'audit_items["contoso.onmicrosoft.com"].user["ceo@contoso.com"]'),
        ("create", 'audit_items["contoso.onmicrosoft.com"].user["cfo@contoso.com"]'),
        ("create", 'audit_items["contoso.onmicrosoft.com"].group["hr@contoso.com"]'),
    }
    created = {c["address"]: c["id"] for c in plan["changes"]}
    applied = project.run("apply", "--env", "dev", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert _audited(project) == {("User", "ceo@contoso.com"), ("User", "cfo@contoso.com"),
                                 ("Group", "hr@contoso.com")}
    assert _plan_json(project)["changes"] == []

    # Drop the CFO, add Finance: one removal (through the version's remove call), one addition.
    _use(project, version, ["ceo@contoso.com"], ["HR Department", "finance@contoso.com"])
    changes = _plan_json(project)["changes"]
    rows = {(c["action"], c["address"]) for c in changes}
    assert rows == {
        ("delete", 'audit_items["contoso.onmicrosoft.com"].user["cfo@contoso.com"]'),
        ("create", 'audit_items["contoso.onmicrosoft.com"].group["finance@contoso.com"]'),
    }
    removal_of_cfo = next(c for c in changes if c["action"] == "delete")
    assert removal_of_cfo["id"] == created[removal_of_cfo["address"]]
    emulator = project.emulator("dev")
    emulator.stats.reset()
    assert project.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
    removal = "/AuditItems/action" if version == "v5" else "/AuditItems/remove"
    assert any(key.startswith("POST") and key.endswith(removal) for key in emulator.stats), dict(emulator.stats)
    assert _audited(project) == {("User", "ceo@contoso.com"), ("Group", "hr@contoso.com"),
                                 ("Group", "finance@contoso.com")}
    assert _plan_json(project)["changes"] == []


def test_table_shows_who_is_added(project: ProjectDir) -> None:
    _use(project, "v8", ["ceo@contoso.com"], [])
    out = project.run("plan", "--env", "dev", "--target", "audit_items").stdout
    row = next(line for line in out.splitlines() if "ceo@contoso.com" in line)
    assert "create" in row and "Chief Executive <ceo@contoso.com>" in row


def test_ambiguous_display_name_lists_both(project: ProjectDir) -> None:
    _use(project, "v8", ["Alex Twin"], [])
    result = project.run("plan", "--env", "dev")
    assert_one_clean_error(result, "contoso.onmicrosoft.com", "'Alex Twin' matches 2 users",
                           "alex1@contoso.com", "alex2@contoso.com")


def test_unknown_name_names_the_organization(project: ProjectDir) -> None:
    _use(project, "v8", ["nobody@contoso.com"], [])
    assert_one_clean_error(project.run("plan", "--env", "dev"), "contoso.onmicrosoft.com",
                           "no user named 'nobody@contoso.com'")


def test_unknown_organization(project: ProjectDir) -> None:
    project.write("templates/audit_items.yaml.j2", "audit_items:\n  northwind.onmicrosoft.com:\n    users: [a@b.c]\n")
    assert_one_clean_error(project.run("plan", "--env", "dev"), "northwind.onmicrosoft.com", "not on the server",
                           "contoso.onmicrosoft.com")


def test_teams_are_refused(project: ProjectDir) -> None:
    project.write("templates/audit_items.yaml.j2",
                  "audit_items:\n  contoso.onmicrosoft.com:\n    teams: [Sales]\n")
    assert_one_clean_error(project.run("validate", "--env", "dev"), "templates/audit_items.yaml.j2:3",
                           "users and groups only", "group")


def test_unlisted_organizations_are_untouched(project: ProjectDir) -> None:
    _use(project, "v8", [], [])
    project.write("templates/audit_items.yaml.j2",
                  "audit_items:\n  fabrikam.onmicrosoft.com:\n    users: [bob@fabrikam.com]\n")
    assert project.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
    # contoso is not listed: an empty contoso audit list would have been planned for removal, this must not be.
    _use(project, "v8", ["ceo@contoso.com"], [])
    assert project.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
    project.write("templates/audit_items.yaml.j2",
                  "audit_items:\n  fabrikam.onmicrosoft.com:\n    users: [bob@fabrikam.com]\n")
    assert _plan_json(project)["changes"] == []
    assert ("User", "ceo@contoso.com") in _audited(project)
