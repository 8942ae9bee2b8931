"""Restore operator roles (v6, v7, v8) through the CLI against the emulator over real HTTP, one server per API
version: plan and apply a role with operators, selected and excluded principals by name; converge; add and remove
an operator (through the role's sub-endpoints, never by rewriting the role); widening the scope is critical with
its reason (a new operator, an exclusion removed, EntireOrganization); an unknown principal (the template file and
a did-you-mean); import round trip; delete."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import API_SECRET, ProjectDir, api_client, plan_rows

from vboplan.emulator import Store, start

ORG = "contoso.onmicrosoft.com"
SEED: dict[str, Any] = {
    "credentials": [{"username": "admin", "password": API_SECRET}],
    "organizations": [{
        "name": ORG,
        "users": [{"displayName": "Jane Doe", "name": "jane@contoso.com"},
                  {"displayName": "Chief Executive", "name": "ceo@contoso.com"},
                  {"displayName": "IT Lead", "name": "it.lead@contoso.com"}],
        "groups": [{"displayName": "Helpdesk", "name": "helpdesk@contoso.com"},
                   {"displayName": "Sales", "name": "sales@contoso.com"}],
        "sites": [{"url": "https://contoso.sharepoint.com/sites/hr", "title": "HR"}],
    }],
}
VERSIONS = ("v6", "v7", "v8")
ROLE = 'restore_operator_roles["Helpdesk EU"]'


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, Any]]:
    running = {v: start(Store.from_data(SEED)) for v in VERSIONS}
    try:
        yield running
    finally:
        for server in running.values():
            server.stop()


@pytest.fixture
def roles_project(tmp_path: Path, servers: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> ProjectDir:
    monkeypatch.setenv("VBO_TEST_PASSWORD", API_SECRET)
    monkeypatch.setenv("VBOPLAN_USER", "ann")
    project = ProjectDir(tmp_path / "project")
    envs = "".join(f"  {v}:\n    server: {servers[v].url}\n    api_version: {v}\n    username: admin\n"
                   f"    password_env: VBO_TEST_PASSWORD\n    var_files: [environments/{v}.yaml]\n" for v in VERSIONS)
    project.write("vboplan.yaml", f"templates: [templates/*.yaml.j2]\nenvironments:\n{envs}")
    for v in VERSIONS:
        project.write(f"environments/{v}.yaml", "{}\n")
    return project


def _template(project: ProjectDir, operators: str = "[{group: Helpdesk}]", role_type: str = "SpecificObjects",
              excluded: str = "[{user: ceo@contoso.com}]") -> None:
    project.write("templates/roles.yaml.j2", f"""\
restore_operator_roles:
  Helpdesk EU:
    organization: {ORG}
    roleType: {role_type}
    description: Helpdesk restores
    operators: {operators}
    selectedItems: [{{group: Sales}}, {{site: https://contoso.sharepoint.com/sites/hr}}]
    excludedItems: {excluded}
""")


def _role(http: httpx.Client, version: str) -> dict[str, Any]:
    return next(r for r in http.get(f"/{version}/RbacRoles").json() if r["name"] == "Helpdesk EU")


def _names(http: httpx.Client, version: str, role: dict[str, Any], which: str) -> set[str]:
    entries = http.get(f"/{version}/RbacRoles/{role['id']}/{which}").json()
    return {(e.get("user") or e.get("group") or {}).get("name") or (e.get("site") or {}).get("url") for e in entries}


def _converged(project: ProjectDir, env: str) -> None:
    again = project.run("plan", "--env", env, "--detailed-exitcode")
    assert again.exit_code == 0, again.output


@pytest.mark.parametrize("version", VERSIONS)
def test_restore_operator_roles(roles_project: ProjectDir, servers: dict[str, Any], version: str,
                                tmp_path: Path) -> None:
    project, env = roles_project, version
    http = api_client(servers[version].url, version)
    _template(project)

    # Plan: the role, each principal one row by its directory name; a new role is critical.
    rows = plan_rows(project.run("plan", "--env", env, "--format", "json"))
    assert rows[ROLE]["action"] == "create" and rows[ROLE]["severity"] == "critical"
    assert rows[ROLE]["after"]["organization"] == f'organizations["{ORG}"]'
    assert {a for a in rows if a != ROLE} == {
        f'{ROLE}.operators.group["helpdesk@contoso.com"]', f'{ROLE}.selectedItems.group["sales@contoso.com"]',
        f'{ROLE}.selectedItems.site["https://contoso.sharepoint.com/sites/hr"]',
        f'{ROLE}.excludedItems.user["ceo@contoso.com"]'}
    saved = tmp_path / "plan.json"
    assert project.run("plan", "--env", env, "--out", str(saved)).exit_code == 0
    shown = project.run("show", "--requests", str(saved)).stdout
    assert f"POST /{version}/Organizations/" in shown and "/RbacRoles" in shown, shown
    applied = project.run("apply", str(saved))
    assert applied.exit_code == 0, applied.output
    role = _role(http, version)
    assert (role["roleType"], role["description"]) == ("SpecificObjects", "Helpdesk restores")
    assert _names(http, version, role, "operators") == {"helpdesk@contoso.com"}
    assert _names(http, version, role, "selectedItems") == {"sales@contoso.com",
                                                            "https://contoso.sharepoint.com/sites/hr"}
    assert _names(http, version, role, "excludedItems") == {"ceo@contoso.com"}
    _converged(project, env)

    # A new operator and an exclusion removed: critical, each with its reason; through the sub-endpoints only.
    _template(project, operators="[{group: Helpdesk}, {user: IT Lead}]", excluded="[]")
    rows = plan_rows(project.run("plan", "--env", env, "--format", "json"))
    lead, ceo = f'{ROLE}.operators.user["it.lead@contoso.com"]', f'{ROLE}.excludedItems.user["ceo@contoso.com"]'
    assert {a: r["action"] for a, r in rows.items()} == {lead: "create", ceo: "delete"}
    assert rows[lead]["severity"] == rows[ceo]["severity"] == "critical"
    assert "scope widened: new operator user it.lead@contoso.com" in rows[lead]["severity_reason"]
    assert "ceo@contoso.com is no longer excluded" in rows[ceo]["severity_reason"]
    saved = tmp_path / "widen.json"
    assert project.run("plan", "--env", env, "--out", str(saved)).exit_code == 0
    shown = project.run("show", "--requests", str(saved)).stdout
    assert f"/RbacRoles/{role['id']}/operators" in shown and f"/RbacRoles/{role['id']}/excludedItems" in shown, shown
    assert f"PUT /{version}/RbacRoles" not in shown, shown
    assert project.run("apply", str(saved)).exit_code == 0
    assert _names(http, version, role, "operators") == {"helpdesk@contoso.com", "it.lead@contoso.com"}
    assert _names(http, version, role, "excludedItems") == set()
    _converged(project, env)

    # The operator removed again (narrowing: info), and the whole organization in scope (critical).
    _template(project, role_type="EntireOrganization", excluded="[]")
    rows = plan_rows(project.run("plan", "--env", env, "--format", "json"))
    assert rows[lead]["action"] == "delete" and rows[lead]["severity"] == "info"
    assert rows[f"{ROLE}.roleType"]["severity"] == "critical"
    assert "entire organization" in rows[f"{ROLE}.roleType"]["severity_reason"]
    assert project.run("apply", "--env", env, "--auto-approve").exit_code == 0
    role = _role(http, version)
    assert role["roleType"] == "EntireOrganization"
    assert _names(http, version, role, "operators") == {"helpdesk@contoso.com"}
    _converged(project, env)

    # An unknown principal: the template file and a did-you-mean.
    _template(project, operators="[{group: Helpdesk}, {user: Jane Do}]", role_type="EntireOrganization",
              excluded="[]")
    unknown = project.run("plan", "--env", env)
    errors = [line for line in unknown.stderr.splitlines() if line.startswith("Error")]
    assert unknown.exit_code == 1 and len(errors) == 1 and "Traceback" not in unknown.output, unknown.output
    assert all(part in errors[0] for part in ("roles.yaml.j2:", "'Jane Do'", "did you mean 'Jane Doe")), errors

    # Import writes the role by name; the next plan shows no changes.
    other = ProjectDir(tmp_path / "imported")
    other.write("vboplan.yaml", project.root.joinpath("vboplan.yaml").read_text())
    done = other.run("import", "--env", env, "--resource", "restore_operator_roles")
    assert done.exit_code == 0, done.output
    written = "\n".join(p.read_text() for p in other.root.rglob("*.y*ml*") if p.name != "vboplan.yaml")
    assert "Helpdesk EU" in written and "helpdesk@contoso.com" in written and role["id"] not in written, written
    again = other.run("plan", "--env", env, "--detailed-exitcode")
    assert again.exit_code == 0, again.output

    # Delete: the role goes, a warning.
    project.write("templates/roles.yaml.j2", "restore_operator_roles: {}\n")
    rows = plan_rows(project.run("plan", "--env", env, "--format", "json"))
    assert {a: (r["action"], r["severity"]) for a, r in rows.items()} == {ROLE: ("delete", "warning")}
    assert project.run("apply", "--env", env, "--auto-approve").exit_code == 0
    assert http.get(f"/{version}/RbacRoles").json() == []


def test_operators_selected_items_and_raw_ids_checked_at_render(roles_project: ProjectDir) -> None:
    roles_project.write("templates/roles.yaml.j2", f"restore_operator_roles:\n  R:\n    organization: {ORG}\n"
                                                   "    operators: [{site: https://contoso.sharepoint.com/sites/hr}]\n")
    result = roles_project.run("validate", "--env", "v8")
    assert result.exit_code == 1 and "roles.yaml.j2:" in result.stderr and "user or group" in result.stderr, \
        result.output
    roles_project.write("templates/roles.yaml.j2", f"restore_operator_roles:\n  R:\n    organization: {ORG}\n"
                                                   "    roleType: SpecificObjects\n    operators: [{group: Helpdesk}]\n")
    result = roles_project.run("validate", "--env", "v8")
    assert result.exit_code == 1 and "roles.yaml.j2:4" in result.stderr and "needs selectedItems" in result.stderr, \
        result.output
    roles_project.write("templates/roles.yaml.j2", "restore_operator_roles:\n  R:\n"
                                                   "    organizationId: f79f0069-e6a7-5202-bf51-cf19cdaa5f20\n")
    result = roles_project.run("validate", "--env", "v8")
    assert result.exit_code == 1 and "roles.yaml.j2:3" in result.stderr and "write organization" in result.stderr, \
        result.output


def test_a_name_two_organizations_share_is_keyed_by_organization(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # Role names are unique per organization only: import keys such roles ORGANIZATION/NAME, the plan after it is
    # clean, and a change to one of them is sent under its own name.
    fabrikam = {"name": "fabrikam.onmicrosoft.com", "groups": [{"displayName": "Desk", "name": "desk@fabrikam.com"}]}
    seed = {**SEED, "organizations": [*SEED["organizations"], fabrikam]}
    monkeypatch.setenv("VBO_TEST_PASSWORD", API_SECRET)
    with start(Store.from_data(seed)) as server:
        http = api_client(server.url, "v8")
        for org in http.get("/v8/Organizations").json()["results"]:
            made = http.post(f"/v8/Organizations/{org['id']}/RbacRoles",
                             json={"name": "Desk", "organizationId": org["id"], "roleType": "EntireOrganization"})
            assert made.status_code == 201, made.text
        project = ProjectDir(tmp_path / "p")
        project.write("vboplan.yaml", f"templates: [templates/*.yaml.j2]\nenvironments:\n  v8:\n    server: {server.url}\n"
                                      "    api_version: v8\n    username: admin\n    password_env: VBO_TEST_PASSWORD\n"
                                      "    var_files: [environments/v8.yaml]\n")
        done = project.run("import", "--env", "v8", "--resource", "restore_operator_roles")
        assert done.exit_code == 0, done.output
        written = "".join(p.read_text() for p in project.root.rglob("*.y*ml*") if p.name != "vboplan.yaml")
        assert f"{ORG}/Desk" in written and "fabrikam.onmicrosoft.com/Desk" in written, written
        assert project.run("plan", "--env", "v8", "--detailed-exitcode").exit_code == 0
        project.write("templates/restore_operator_roles.yaml.j2", "restore_operator_roles:\n"
                      f"  {ORG}/Desk: {{organization: {ORG}, roleType: EntireOrganization}}\n"
                      "  fabrikam.onmicrosoft.com/Desk: {organization: fabrikam.onmicrosoft.com,"
                      " roleType: EntireOrganization, description: Fabrikam desk}\n")
        for other in project.root.joinpath("templates").glob("*.j2"):
            if other.name != "restore_operator_roles.yaml.j2":
                other.unlink()
        rows = plan_rows(project.run("plan", "--env", "v8", "--format", "json"))
        assert {a: r["action"] for a, r in rows.items()} == {
            'restore_operator_roles["fabrikam.onmicrosoft.com/Desk"].description': "update"}
        assert project.run("apply", "--env", "v8", "--auto-approve").exit_code == 0
        assert sorted((r["name"], r.get("description", "")) for r in http.get("/v8/RbacRoles").json()) == [
            ("Desk", ""), ("Desk", "Fabrikam desk")]
        # A bare name names the role of the organization the template gives: no delete, no second role.
        project.write("templates/restore_operator_roles.yaml.j2", "restore_operator_roles:\n"
                      f"  Desk: {{organization: {ORG}, roleType: EntireOrganization, description: Contoso desk}}\n"
                      "  fabrikam.onmicrosoft.com/Desk: {organization: fabrikam.onmicrosoft.com,"
                      " roleType: EntireOrganization, description: Fabrikam desk}\n")
        rows = plan_rows(project.run("plan", "--env", "v8", "--format", "json"))
        assert {a: r["action"] for a, r in rows.items()} == {
            f'restore_operator_roles["{ORG}/Desk"].description': "update"}
        # --target by the bare name: refused naming both where two organizations have it; mapped to the
        # ORGANIZATION/NAME key where one has it (a role the plan creates, keyed so in the template).
        both = project.run("plan", "--env", "v8", "--target", 'restore_operator_roles["Desk"]')
        assert both.exit_code == 1 and "Traceback" not in both.output, both.output
        assert f'restore_operator_roles["{ORG}/Desk"]' in both.stderr, both.stderr
        assert 'restore_operator_roles["fabrikam.onmicrosoft.com/Desk"]' in both.stderr, both.stderr
        templates = project.root / "templates" / "restore_operator_roles.yaml.j2"
        templates.write_text(templates.read_text() + f"  {ORG}/Solo: {{organization: {ORG}, roleType: "
                             "EntireOrganization}\n")
        rows = plan_rows(project.run("plan", "--env", "v8", "--format", "json", "--target",
                                 'restore_operator_roles["Solo"]'))
        assert {a: r["action"] for a, r in rows.items()} == {f'restore_operator_roles["{ORG}/Solo"]': "create"}, rows
        assert project.run("apply", "--env", "v8", "--auto-approve").exit_code == 0
        # Now the server holds one Solo, keyed by its name: the template's ORGANIZATION/NAME targets it.
        templates.write_text(templates.read_text().replace("EntireOrganization}\n", "EntireOrganization, "
                                                           "description: solo}\n"))
        rows = plan_rows(project.run("plan", "--env", "v8", "--format", "json", "--target",
                                 f'restore_operator_roles["{ORG}/Solo"]'))
        assert {a: r["action"] for a, r in rows.items()} == {'restore_operator_roles["Solo"].description': "update"}, \
            rows
