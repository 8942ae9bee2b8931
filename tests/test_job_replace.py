"""A backup job moved to another organization is replaced (its organization is fixed after creation: no version's
PUT of a job carries it), and so is the copy job of it (the server refuses to delete a job a copy job copies, and
the new job has a new id), on v6, v7 and v8 against the emulator over real HTTP: the plan shows both as
``-/+ replace`` with the reason, refuses them without ``lifecycle`` allow_replace and under prevent_destroy, and
apply deletes the copy job, then the job, creates the job in the new organization with its items, then the copy
job naming the new job's id; the next plan shows no changes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import API_SECRET, ProjectDir, api_client, listed, one_server_project, plan_rows
from test_backup_jobs import SEED

from vboplan.emulator import Store, start

FABRIKAM = {"name": "fabrikam.onmicrosoft.com", "users": [{"displayName": "Bob", "name": "bob@fabrikam.com"}]}

JOB = """\
backup_jobs:
  Solo:
    organization: ORG
    repository: Repo EU
    backupType: SelectedItems
    selectedItems: [{user: USER, mailbox: true}]
copy_jobs:
  Solo: {repository: Archive EU, schedulePolicy: {type: Immediate}COPYORG}
LIFECYCLE"""


def _write(project: ProjectDir, version: str, org: str, user: str, lifecycle: str = "") -> None:
    copy_org = f", organization: {org}" if version == "v8" else ""
    project.write("templates/jobs.yaml.j2", JOB.replace("ORG", org, 1).replace("USER", user)
                  .replace("COPYORG", copy_org).replace("LIFECYCLE", lifecycle))


BOTH = "lifecycle:\n  'backup_jobs[\"Solo\"]': {allow_replace: true}\n  'copy_jobs[\"Solo\"]': {allow_replace: true}\n"


@pytest.mark.parametrize("version", ["v6", "v7", "v8"])
def test_a_job_moved_to_another_organization_is_replaced_with_its_copy_job(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version: str) -> None:
    monkeypatch.setenv("VBO_TEST_PASSWORD", API_SECRET)
    monkeypatch.setenv("VBOPLAN_USER", "ann")
    seed = {**SEED, "organizations": [*SEED["organizations"], FABRIKAM]}
    with start(Store.from_data(seed)) as server:
        http = api_client(server.url, version)
        project = one_server_project(tmp_path / "p", server.url, version)
        _write(project, version, "contoso.onmicrosoft.com", "jane@contoso.com")
        assert project.run("apply", "--env", "e", "--auto-approve").exit_code == 0
        old_job = next(j for j in listed(http, version, "Jobs") if j["name"] == "Solo")

        # Moved: both are replaced, each with its reason; refused until lifecycle allows both.
        _write(project, version, "fabrikam.onmicrosoft.com", "bob@fabrikam.com")
        refused = project.run("plan", "--env", "e")
        assert refused.exit_code == 1 and "allow_replace" in refused.stderr, refused.output
        assert "organization cannot change after creation" in refused.stderr, refused.stderr
        only_job = "lifecycle:\n  'backup_jobs[\"Solo\"]': {allow_replace: true}\n"
        _write(project, version, "fabrikam.onmicrosoft.com", "bob@fabrikam.com", only_job)
        refused = project.run("plan", "--env", "e")
        assert refused.exit_code == 1 and 'copy_jobs["Solo"]' in refused.stderr, refused.output
        _write(project, version, "fabrikam.onmicrosoft.com", "bob@fabrikam.com",
               BOTH.replace("{allow_replace: true}\n  'copy", "{prevent_destroy: true}\n  'copy"))
        refused = project.run("plan", "--env", "e")
        assert refused.exit_code == 1 and "prevent_destroy" in refused.stderr, refused.output

        _write(project, version, "fabrikam.onmicrosoft.com", "bob@fabrikam.com", BOTH)
        plan_file = tmp_path / "plan.json"
        planned = project.run("plan", "--env", "e", "--out", str(plan_file), "--format", "json")
        assert planned.exit_code == 0, planned.output
        rows = plan_rows(planned)
        assert {a: r["action"] for a, r in rows.items()} == {
            'backup_jobs["Solo"]': "replace", 'backup_jobs["Solo"].selectedItems.user["bob@fabrikam.com"]': "create",
            'copy_jobs["Solo"]': "replace"}, rows
        table = project.run("show", str(plan_file))
        # v8's copy job names its organization, fixed too; v6/v7's follows its backup job alone.
        reason = "organization cannot change" if version == "v8" else 'its backup job backup_jobs["Solo"] is replaced'
        assert "-/+" in table.stdout and reason in table.stdout, table.stdout
        shown = project.run("show", "--requests", "--format", "json", str(plan_file))
        assert shown.exit_code == 0, shown.output
        requests = [(r["method"], r["path"]) for r in json.loads(shown.stdout)["plans"][0]["requests"]]
        copy_path = next(p for m, p in requests if m == "DELETE" and "CopyJobs" in p)
        job_path = next(p for m, p in requests if m == "DELETE" and "/Jobs/" in p)
        assert requests.index(("DELETE", copy_path)) < requests.index(("DELETE", job_path)), requests
        posts = [p for m, p in requests if m == "POST"]
        assert len(posts) == 2 and "CopyJobs" in posts[1] and "CopyJobs" not in posts[0], requests

        applied = project.run("apply", str(plan_file))
        assert applied.exit_code == 0, applied.output
        new_job = next(j for j in listed(http, version, "Jobs") if j["name"] == "Solo")
        assert new_job["id"] != old_job["id"]
        fabrikam = next(o for o in listed(http, version, "Organizations") if o["name"] == FABRIKAM["name"])
        if version == "v8":
            assert new_job["organizationId"] == fabrikam["id"]
        else:  # v6/v7 answers name no organization: its job list does
            held = http.get(f"/{version}/Organizations/{fabrikam['id']}/Jobs").json()
            assert [j["id"] for j in held] == [new_job["id"]], held
        items = listed(http, version, f"Jobs/{new_job['id']}/SelectedItems")
        assert [i["user"]["name"] for i in items] == ["bob@fabrikam.com"], items
        assert [c["backupJobId"] for c in listed(http, version, "CopyJobs")] == [new_job["id"]]
        again = project.run("plan", "--env", "e", "--detailed-exitcode")
        assert again.exit_code == 0, again.output


def test_a_role_moved_to_another_organization_is_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A role's organization is fixed too (its PUT names it, and the server keeps the first): a new role, with its
    # operators from the new organization's directory and none of the old one's.
    monkeypatch.setenv("VBO_TEST_PASSWORD", API_SECRET)
    monkeypatch.setenv("VBOPLAN_USER", "ann")
    seed = {**SEED, "organizations": [*SEED["organizations"], FABRIKAM]}
    role = ("restore_operator_roles:\n  Desk: {organization: ORG, roleType: EntireOrganization, "
            "operators: [{user: USER}]}\nlifecycle:\n  'restore_operator_roles[\"Desk\"]': {allow_replace: true}\n")
    with start(Store.from_data(seed)) as server:
        http = api_client(server.url, "v8")
        project = one_server_project(tmp_path / "p", server.url, "v8")
        project.write("templates/roles.yaml.j2", role.replace("ORG", "contoso.onmicrosoft.com")
                      .replace("USER", "jane@contoso.com"))
        assert project.run("apply", "--env", "e", "--auto-approve").exit_code == 0
        old = listed(http, "v8", "RbacRoles")[0]
        project.write("templates/roles.yaml.j2", role.replace("ORG", "fabrikam.onmicrosoft.com")
                      .replace("USER", "bob@fabrikam.com"))
        planned = project.run("plan", "--env", "e", "--format", "json")
        assert planned.exit_code == 0, planned.output
        rows = {a: r["action"] for a, r in plan_rows(planned).items()}
        assert rows == {'restore_operator_roles["Desk"]': "replace",
                        'restore_operator_roles["Desk"].operators.user["bob@fabrikam.com"]': "create"}, rows
        assert project.run("apply", "--env", "e", "--auto-approve").exit_code == 0
        new = listed(http, "v8", "RbacRoles")
        assert len(new) == 1 and new[0]["id"] != old["id"], new
        operators = listed(http, "v8", f"RbacRoles/{new[0]['id']}/operators")
        assert [o["user"]["name"] for o in operators] == ["bob@fabrikam.com"], operators
        assert project.run("plan", "--env", "e", "--detailed-exitcode").exit_code == 0
