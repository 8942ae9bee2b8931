"""Backup jobs (v6, v7, v8) through the CLI against the emulator over real HTTP: one project, one server per API
version, shared by the steps of each version's test: plan and apply a job with selected and excluded principals
by name, converge, add and remove items (through the item endpoints, never by rewriting the job), change a flag,
disable and enable, move a user to another job (a warning: the next run is a full backup), remove a user from
every job (a warning naming it), an unknown principal (file and did-you-mean), import round trip, delete. No call
ever starts a job."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import API_SECRET, ProjectDir, api_client, listed, plan_rows

from vboplan.emulator import Store, start

ORG = "contoso.onmicrosoft.com"


def _archive(folder: str) -> dict[str, Any]:
    """An object-storage repository (what a copy job copies to)."""
    return {"proxy": "proxy01.contoso.local", "retentionType": "SnapshotBased", "objectStorage": {
        "account": "akiaexample01", "type": "AmazonS3", "s3Folder": folder,
        "amazonBucketS3Aws": {"name": "vb365-archive", "regionType": "Global", "regionId": "eu-west-1"}}}


SEED: dict[str, Any] = {
    "credentials": [{"username": "admin", "password": API_SECRET}],
    "organizations": [{
        "name": ORG,
        "users": [{"displayName": "Jane Doe", "name": "jane@contoso.com"},
                  {"displayName": "Chief Executive", "name": "ceo@contoso.com"},
                  {"displayName": "Test User", "name": "test@contoso.com"}],
        "groups": [{"displayName": "HR Department", "name": "hr@contoso.com"}],
        "sites": [{"url": "https://contoso.sharepoint.com/sites/hr", "title": "HR"}],
        "teams": [{"displayName": "Finance", "mail": "finance@contoso.com"}],
    }],
    "proxies": [{"hostName": "proxy01.contoso.local", "port": 9193, "description": ""}],
    "backup_repositories": {"Repo EU": {"proxy": "proxy01.contoso.local", "path": "D:\\EU", "retentionType": "ItemLevel"},
                            "Repo US": {"proxy": "proxy01.contoso.local", "path": "D:\\US",
                                        "retentionType": "ItemLevel"},
                            "Archive EU": _archive("eu"), "Archive US": _archive("us")},
    "cloud_accounts": [{"userName": "akiaexample01", "accountType": "amazonS3Account"}],
}
VERSIONS = ("v6", "v7", "v8")

MAIL = """\
  Contoso mail:
    organization: contoso.onmicrosoft.com
    repository: REPO
    backupType: SelectedItems
    description: Mail of the board
    selectedItems:
CEO      - {group: HR Department, HR}
      - {site: https://contoso.sharepoint.com/sites/hr}
      - {team: Finance}
ITEMS    excludedItems: [{user: test@contoso.com}]
    schedulePolicy: {type: Daily, dailyType: Everyday, dailyTime: "22:00:00", retryEnabled: true, retryNumber: 3}
    isEnabled: ENABLED
"""
OTHER = """\
  Contoso rest:
    organization: contoso.onmicrosoft.com
    repository: Repo US
    backupType: SelectedItems
    selectedItems: [MOVED]
"""


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    running = {v: start(Store.from_data(SEED)) for v in VERSIONS}
    try:
        yield running
    finally:
        for server in running.values():
            server.stop()


@pytest.fixture
def jobs_project(tmp_path: Path, servers: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> ProjectDir:
    monkeypatch.setenv("VBO_TEST_PASSWORD", API_SECRET)
    monkeypatch.setenv("VBOPLAN_USER", "ann")
    project = ProjectDir(tmp_path / "project")
    envs = "".join(f"  {v}:\n    server: {servers[v].url}\n    api_version: {v}\n    username: admin\n"
                   f"    password_env: VBO_TEST_PASSWORD\n    var_files: [environments/{v}.yaml]\n" for v in VERSIONS)
    project.write("vboplan.yaml", f"templates: [templates/*.yaml.j2]\nenvironments:\n{envs}")
    for v in VERSIONS:
        project.write(f"environments/{v}.yaml", "{}\n")
    return project


CEO = "      - {user: Chief Executive, mailbox: true, archiveMailbox: true}\n"


def _template(project: ProjectDir, repo: str = "Repo EU", enabled: str = "true", excluded: bool = True,
              moved: str = "{user: jane@contoso.com, mailbox: true}", ceo: str = CEO, extra: str = "",
              hr: str = "mailbox: true", copy: str = "") -> None:
    mail = MAIL.replace("REPO", repo).replace("ENABLED", enabled).replace("CEO", ceo).replace("HR}", hr + "}").replace(
        "ITEMS", "" if excluded else "#").replace("      - {team: Finance}\n", "      - {team: Finance}\n" + extra)
    text = "backup_jobs:\n" + mail + OTHER.replace("MOVED", moved) + (f"copy_jobs:\n  Contoso mail: {copy}\n" if copy
                                                                      else "")
    project.write("templates/jobs.yaml.j2", text)


def _job(http: httpx.Client, version: str, name: str) -> dict[str, Any]:
    return next(j for j in listed(http, version, "Jobs") if j["name"] == name)


def _names(http: httpx.Client, version: str, job: dict[str, Any], which: str) -> set[str]:
    items = listed(http, version, f"Jobs/{job['id']}/{which}")
    return {(i.get("user") or i.get("group") or i.get("team") or {}).get("displayName")
            or (i.get("site") or {}).get("url") for i in items}


@pytest.mark.parametrize("version", VERSIONS)
def test_backup_jobs(jobs_project: ProjectDir, servers: dict[str, Any], version: str, tmp_path: Path) -> None:
    project, env = jobs_project, version
    http = api_client(servers[version].url, version)
    _template(project)
    mail = 'backup_jobs["Contoso mail"]'

    # Plan: the jobs, each principal one row by its directory name (a display name becomes the e-mail).
    planned = project.run("plan", "--env", env, "--format", "json")
    rows = plan_rows(planned)
    assert rows[mail]["action"] == "create"
    assert rows[mail]["after"]["organization"] == f'organizations["{ORG}"]'
    assert rows[mail]["after"]["repository"] == 'backup_repositories["Repo EU"]'
    assert {a for a in rows if a.startswith(mail + ".")} == {
        f'{mail}.selectedItems.user["ceo@contoso.com"]', f'{mail}.selectedItems.group["hr@contoso.com"]',
        f'{mail}.selectedItems.site["https://contoso.sharepoint.com/sites/hr"]', f'{mail}.selectedItems.team["Finance"]',
        f'{mail}.excludedItems.user["test@contoso.com"]'}
    assert rows[f'{mail}.selectedItems.user["ceo@contoso.com"]']["after"] == {"mailbox": True, "archiveMailbox": True}
    excluded = rows[f'{mail}.excludedItems.user["test@contoso.com"]']
    assert excluded["severity"] == "warning" and "test@contoso.com is excluded" in excluded["severity_reason"]
    shown = project.run("show", "--requests", _saved(project, env, tmp_path / "plan.json"))
    assert shown.exit_code == 0, shown.output
    assert ("POST /v8/Jobs" if version == "v8" else f"POST /{version}/Organizations/") in shown.stdout, shown.stdout
    assert "runNow" not in shown.stdout

    applied = project.run("apply", str(tmp_path / "plan.json"))
    assert applied.exit_code == 0, applied.output
    job = _job(http, version, "Contoso mail")
    assert job["isEnabled"] is True and job["description"] == "Mail of the board" and job.get("lastRun") is None
    assert job["schedulePolicy"]["dailyTime"] == "22:00:00"
    assert _names(http, version, job, "SelectedItems") == {"Chief Executive", "HR Department", "Finance",
                                                           "https://contoso.sharepoint.com/sites/hr"}
    assert _names(http, version, job, "ExcludedItems") == {"Test User"}
    _converged(project, env)

    # Item add and remove through the item endpoints, a flag turned off (a warning), the job disabled (a warning);
    # a copy job of it.
    copy = '{repository: Archive US, schedulePolicy: {type: DailyAtTime, dailyTime: "03:00:00"}, isEnabled: true}'
    _template(project, enabled="false", excluded=False, extra="      - {user: jane@contoso.com, oneDrive: true}\n",
              hr="mailbox: false", copy=copy)
    planned = project.run("plan", "--env", env, "--format", "json")
    rows = plan_rows(planned)
    hr = f'{mail}.selectedItems.group["hr@contoso.com"]'
    assert {a: r["action"] for a, r in rows.items()} == {
        f"{mail}.isEnabled": "update", f'{mail}.excludedItems.user["test@contoso.com"]': "delete",
        f'{mail}.selectedItems.user["jane@contoso.com"]': "create", hr: "update", 'copy_jobs["Contoso mail"]': "create"}
    assert rows[hr]["severity"] == rows[f"{mail}.isEnabled"]["severity"] == "warning"
    saved = _saved(project, env, tmp_path / "items.json")
    requests = project.run("show", "--requests", saved).stdout
    assert f"/{version}/Jobs/{job['id']}/SelectedItems" in requests and "/disable" in requests, requests
    assert f"PUT /{version}/Jobs/{job['id']}\n" not in requests + "\n", requests
    assert f"POST /{version}/CopyJobs" in requests, requests
    done = project.run("apply", saved)
    assert done.exit_code == 0, done.output
    job = _job(http, version, "Contoso mail")
    assert job["isEnabled"] is False and _names(http, version, job, "ExcludedItems") == set()
    assert "Jane Doe" in _names(http, version, job, "SelectedItems")
    group = next(i for i in listed(http, version, f"Jobs/{job['id']}/SelectedItems") if i["type"] == "Group")
    assert group["mailbox"] is False
    copied = listed(http, version, "CopyJobs")
    assert [(c["name"], c["backupJobId"], c["isEnabled"]) for c in copied] == [("Contoso mail copy", job["id"], True)]
    _converged(project, env)

    # Move Jane to the other job: a warning on both rows; the repository change too.
    copy = '{repository: Archive EU, schedulePolicy: {type: DailyAtTime, dailyTime: "04:00:00"}, isEnabled: false}'
    _template(project, repo="Repo US", excluded=False, ceo="", moved="{user: ceo@contoso.com, mailbox: true}",
              extra="      - {user: jane@contoso.com, oneDrive: true}\n", hr="mailbox: false", copy=copy)
    planned = project.run("plan", "--env", env, "--format", "json")
    rows = plan_rows(planned)
    moved = [r for a, r in rows.items() if "ceo@contoso.com" in a]
    assert {r["action"] for r in moved} == {"create", "delete"}
    assert all(r["severity"] == "warning" and "full backup" in r["severity_reason"] for r in moved), moved
    assert rows[f"{mail}.repository"]["severity"] == "warning"
    assert "full backup" in rows[f"{mail}.repository"]["severity_reason"]
    jane = rows['backup_jobs["Contoso rest"].selectedItems.user["jane@contoso.com"]']
    assert jane["action"] == "delete" and jane["severity"] == "info" and "stays in" in jane["severity_reason"], jane
    assert rows['copy_jobs["Contoso mail"].isEnabled']["after"] is False
    assert rows['copy_jobs["Contoso mail"].schedulePolicy']["after"]["dailyTime"] == "04:00:00"
    assert project.run("apply", "--env", env, "--auto-approve").exit_code == 0
    assert [c["isEnabled"] for c in listed(http, version, "CopyJobs")] == [False]
    _converged(project, env)

    # Jane removed from the one job left holding her: a warning naming her.
    _template(project, repo="Repo US", excluded=False, ceo="", moved="{user: ceo@contoso.com, mailbox: true}",
              hr="mailbox: false", copy=copy)
    rows = plan_rows(project.run("plan", "--env", env, "--format", "json"))
    jane = rows[f'{mail}.selectedItems.user["jane@contoso.com"]']
    assert jane["action"] == "delete" and jane["severity"] == "warning" and "jane@contoso.com" in \
        jane["severity_reason"] and "no other job" in jane["severity_reason"], jane
    assert project.run("apply", "--env", env, "--auto-approve").exit_code == 0

    # An unknown principal: the template file and a did-you-mean.
    _template(project, repo="Repo US", excluded=False, ceo="", moved="{user: ceo@contoso.com, mailbox: true}",
              extra="      - {user: Jane Do}\n", hr="mailbox: false", copy=copy)
    unknown = project.run("plan", "--env", env)
    errors = [line for line in unknown.stderr.splitlines() if line.startswith("Error")]
    assert unknown.exit_code == 1 and len(errors) == 1 and "Traceback" not in unknown.output, unknown.output
    assert all(part in errors[0] for part in ("jobs.yaml.j2:", "'Jane Do'", "did you mean 'Jane Doe")), errors

    # Import writes the jobs by name; the next plan shows no changes.
    imported = tmp_path / "imported"
    _import_round_trip(project, env, imported)

    # Delete: a job its copy job still copies is not; with the copy job, both are (the copy job first).
    project.write("templates/jobs.yaml.j2", f"backup_jobs: {{}}\ncopy_jobs:\n  Contoso mail: {copy}\n")
    refused = project.run("plan", "--env", env)
    assert refused.exit_code == 1 and "copy_jobs" in refused.stderr and "Contoso mail" in refused.stderr, refused.output
    project.write("templates/jobs.yaml.j2", "backup_jobs: {}\ncopy_jobs: {}\n")
    planned = project.run("plan", "--env", env, "--format", "json")
    assert {r["action"] for r in plan_rows(planned).values()} == {"delete"}
    assert project.run("apply", "--env", env, "--auto-approve").exit_code == 0
    assert listed(http, version, "Jobs") == []
    assert all(j.get("lastRun") is None for j in listed(http, version, "Jobs"))


def _saved(project: ProjectDir, env: str, path: Path) -> str:
    done = project.run("plan", "--env", env, "--out", str(path))
    assert done.exit_code == 0, done.output
    return str(path)


def _converged(project: ProjectDir, env: str) -> None:
    again = project.run("plan", "--env", env, "--detailed-exitcode")
    assert again.exit_code == 0, again.output


def _import_round_trip(project: ProjectDir, env: str, folder: Path) -> None:
    other = ProjectDir(folder)
    other.write("vboplan.yaml", project.root.joinpath("vboplan.yaml").read_text())
    done = other.run("import", "--env", env, "--resource", "backup_jobs", "--resource", "copy_jobs")
    assert done.exit_code == 0, done.output
    written = "\n".join(p.read_text() for p in folder.rglob("*.y*ml*") if p.name != "vboplan.yaml")
    assert "Contoso mail" in written and "ceo@contoso.com" in written and "organization" in written, written
    assert "Id:" not in written and "runNow" not in written and "copy_jobs" in written, written
    again = other.run("plan", "--env", env, "--detailed-exitcode")
    assert again.exit_code == 0, again.output
    assert os.path.exists(folder)


def test_a_name_two_organizations_share_is_keyed_by_organization(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # Job names are unique per organization only: import keys such jobs ORGANIZATION/NAME, the plan after it is
    # clean, and a change to one of them is sent under its own name.
    fabrikam = {"name": "fabrikam.onmicrosoft.com", "users": [{"displayName": "Bob", "name": "bob@fabrikam.com"}]}
    seed = {**SEED, "organizations": [*SEED["organizations"], fabrikam]}
    monkeypatch.setenv("VBO_TEST_PASSWORD", API_SECRET)
    with start(Store.from_data(seed)) as server:
        http = api_client(server.url, "v8")
        repo = listed(http, "v8", "BackupRepositories")[0]["id"]
        for org in listed(http, "v8", "Organizations"):
            made = http.post("/v8/Jobs", json={"name": "Mail", "backupType": "EntireOrganization", "repositoryId": repo,
                                               "organizationId": org["id"]})
            assert made.status_code == 201, made.text
        project = ProjectDir(tmp_path / "p")
        project.write("vboplan.yaml", f"templates: [templates/*.yaml.j2]\nenvironments:\n  v8:\n    server: {server.url}\n"
                                      "    api_version: v8\n    username: admin\n    password_env: VBO_TEST_PASSWORD\n"
                                      "    var_files: [environments/v8.yaml]\n")
        done = project.run("import", "--env", "v8", "--resource", "backup_jobs")
        assert done.exit_code == 0, done.output
        written = (project.root / "templates" / "backup_jobs.yaml.j2").read_text() + \
            (project.root / "environments" / "v8.yaml").read_text()
        assert "contoso.onmicrosoft.com/Mail" in written and "fabrikam.onmicrosoft.com/Mail" in written, written
        project.write("templates/backup_jobs.yaml.j2", "backup_jobs:\n"
                      "  contoso.onmicrosoft.com/Mail: {organization: contoso.onmicrosoft.com, repository: Repo EU,"
                      " backupType: EntireOrganization}\n"
                      "  fabrikam.onmicrosoft.com/Mail: {organization: fabrikam.onmicrosoft.com, repository: Repo EU,"
                      " backupType: EntireOrganization, description: Fabrikam}\n")
        rows = plan_rows(project.run("plan", "--env", "v8", "--format", "json"))
        assert {a: r["action"] for a, r in rows.items()} == {'backup_jobs["fabrikam.onmicrosoft.com/Mail"].description':
                                                             "update"}
        assert project.run("apply", "--env", "v8", "--auto-approve").exit_code == 0
        assert sorted((j["name"], j.get("description", "")) for j in listed(http, "v8", "Jobs")) == [
            ("Mail", ""), ("Mail", "Fabrikam")]
        # A principal removed from a job while a job backing up its entire organization stays: no warning.
        both = project.root.joinpath("templates/backup_jobs.yaml.j2").read_text()
        project.write("templates/backup_jobs.yaml.j2", both + "  Jane: {organization: contoso.onmicrosoft.com, "
                      "repository: Repo EU, backupType: SelectedItems, selectedItems: [{user: jane@contoso.com}]}\n")
        assert project.run("apply", "--env", "v8", "--auto-approve").exit_code == 0
        project.write("templates/backup_jobs.yaml.j2", both + "  Jane: {organization: contoso.onmicrosoft.com, "
                      "repository: Repo EU, backupType: SelectedItems, selectedItems: [{user: ceo@contoso.com}]}\n")
        rows = plan_rows(project.run("plan", "--env", "v8", "--format", "json"))
        jane = rows['backup_jobs["Jane"].selectedItems.user["jane@contoso.com"]']
        assert jane["severity"] == "info" and "contoso.onmicrosoft.com/Mail" in jane["severity_reason"], jane
        project.write("templates/backup_jobs.yaml.j2", both + "  Jane: {organization: contoso.onmicrosoft.com, "
                      "repository: Repo EU, backupType: SelectedItems}\n")
        empty = project.run("plan", "--env", "v8")
        assert empty.exit_code == 1 and "selects none" in empty.stderr and "backup_jobs.yaml.j2:" in empty.stderr
        # A job moved to another organization is a new job: replaced where lifecycle allows it.
        project.write("templates/backup_jobs.yaml.j2", "backup_jobs:\n  Solo: {organization: fabrikam.onmicrosoft.com, "
                      "repository: Repo EU, backupType: EntireOrganization}\n"
                      "lifecycle:\n  'backup_jobs[\"Solo\"]': {allow_replace: true}\n")
        assert project.run("apply", "--env", "v8", "--auto-approve", "--allow-mass-delete").exit_code == 0
        project.write("templates/backup_jobs.yaml.j2", "backup_jobs:\n  Solo: {organization: contoso.onmicrosoft.com, "
                      "repository: Repo EU, backupType: EntireOrganization}\n"
                      "lifecycle:\n  'backup_jobs[\"Solo\"]': {allow_replace: true}\n")
        moved = project.run("plan", "--env", "v8")
        assert moved.exit_code == 0 and "-/+ replace" in moved.stdout, moved.output
        assert "organization cannot change after creation" in moved.stdout, moved.stdout


@pytest.mark.parametrize("version", ["v7", "v8"])
def test_a_job_and_its_copy_job_in_one_plan(jobs_project: ProjectDir, servers: dict[str, Any], version: str,
                                            tmp_path: Path) -> None:
    # The copy job names the job's id the create answers with; v8's create needs the organization, which the server
    # cannot name for a job it does not hold yet: the template writes it (and v7 has no such field).
    project, http = jobs_project, api_client(servers[version].url, version)
    job = ("backup_jobs:\n  New: {organization: contoso.onmicrosoft.com, repository: Repo EU, "
           "backupType: EntireOrganization}\n")
    copy = "copy_jobs:\n  New: {repository: Archive EU, schedulePolicy: {type: Immediate}ORG}\n"
    project.write("templates/jobs.yaml.j2", job + copy.replace("ORG", ""))
    if version == "v8":
        refused = project.run("plan", "--env", version)
        assert refused.exit_code == 1 and "write organization: NAME" in refused.stderr, refused.output
        project.write("templates/jobs.yaml.j2", job + copy.replace("ORG", ", organization: contoso.onmicrosoft.com"))
    shown = project.run("show", "--requests", _saved(project, version, tmp_path / "plan.json"))
    assert "(known after apply)" in shown.stdout, shown.stdout
    assert project.run("apply", str(tmp_path / "plan.json")).exit_code == 0
    made = _job(http, version, "New")
    assert [c["backupJobId"] for c in listed(http, version, "CopyJobs")] == [made["id"]]
    _converged(project, version)
    project.write("templates/jobs.yaml.j2", "backup_jobs: {}\ncopy_jobs: {}\n")
    assert project.run("apply", "--env", version, "--auto-approve").exit_code == 0
    assert listed(http, version, "Jobs") == [] and listed(http, version, "CopyJobs") == []


def test_a_principal_dropped_by_every_job_holding_it_is_a_warning() -> None:
    # Rated alone, each removal sees the other job still holding the user; rated with the plan, neither does.
    from vboplan.planning.changes import Address, make
    from vboplan.policy.severity import rate_all

    def removal(job: str, other: str, user: str, change_id: str) -> Any:
        address = Address("backup_jobs").entry(job).field("selectedItems").field("user").entry(user)
        return make("delete", "backup_jobs", address, {}, None, False,
                    {"key": job, "list": "selectedItems", "type": "User", "item": "i",
                     "elsewhere": [str(Address("backup_jobs").entry(other))]}, id=change_id)

    both = rate_all([removal("A", "B", "jane@contoso.com", "c1"), removal("B", "A", "jane@contoso.com", "c2")])
    assert both["c1"].level == both["c2"].level == "warning" and "no job after this plan" in both["c1"].reason
    one = rate_all([removal("A", "B", "jane@contoso.com", "c1")])
    assert one["c1"].level == "info" and "stays in" in one["c1"].reason


def test_removing_most_of_a_jobs_items_is_a_mass_deletion() -> None:
    from vboplan.kinds.registry import KINDS
    from vboplan.planning.changes import Address, make
    from vboplan.planning.guard import mass_deletions

    held = [{"id": f"i{n}", "type": "User", "principal": {"id": f"p{n}", "name": f"u{n}@contoso.com"}, "flags": {}}
            for n in range(30)]
    live = {"backup_jobs": {"objects": {"Mail": {"id": "j", "values": {}, "items": {"selectedItems": held}}}}}

    def removals(count: int) -> list[Any]:
        return [make("delete", "backup_jobs", Address("backup_jobs").entry("Mail").field("selectedItems").field("user")
                     .entry(f"u{n}@contoso.com"), {}, None, False, {"item": f"i{n}"}) for n in range(count)]

    assert KINDS["backup_jobs"].deletions(removals(10), live["backup_jobs"]) == []
    found = mass_deletions(removals(11), live)
    assert found == ['11 of the 30 objects of backup_jobs["Mail"].selectedItems'], found


def test_policy_rules_see_items_as_templates_write_them(jobs_project: ProjectDir) -> None:
    project = jobs_project
    text = project.root.joinpath("vboplan.yaml").read_text()
    project.write("vboplan.yaml", "policies: [policies/*.yaml]\n" + text)
    project.write("policies/jobs.yaml", "rules:\n  - id: ceo-mail-archived\n    level: block\n    resource: backup_jobs\n"
                  "    expr: desired.selectedItems.all(i, !has(i.user) || i.user != 'ceo@contoso.com' || "
                  "(has(i.archiveMailbox) && i.archiveMailbox))\n    message: the CEO's archive is backed up\n")
    _template(project, ceo="      - {user: ceo@contoso.com, mailbox: true}\n")
    checked = project.run("check", "--env", "v8", "--offline")
    assert checked.exit_code == 1 and "ceo-mail-archived" in checked.output, checked.output
    _template(project, ceo="      - {user: ceo@contoso.com, mailbox: true, archiveMailbox: true}\n")
    checked = project.run("check", "--env", "v8", "--offline")
    assert checked.exit_code == 0, checked.output


def test_a_job_keyed_by_organization_and_name_is_created_and_targeted_by_its_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The template keys it ORGANIZATION/NAME, the server (one organization has the name) by its name: the apply
    # verifies it under the server's key, --target takes either spelling, and the next plan is clean.
    from conftest import one_server_project

    monkeypatch.setenv("VBO_TEST_PASSWORD", API_SECRET)
    with start(Store.from_data(SEED)) as server:
        project = one_server_project(tmp_path / "p", server.url, "v8")
        project.write("templates/jobs.yaml.j2", f"backup_jobs:\n  {ORG}/Solo: {{organization: {ORG}, "
                      "repository: Repo EU, backupType: EntireOrganization}\n  Other: {organization: "
                      f"{ORG}, repository: Repo EU, backupType: EntireOrganization}}\n")
        rows = plan_rows(project.run("plan", "--env", "e", "--format", "json", "--target", 'backup_jobs["Solo"]'))
        assert list(rows) == [f'backup_jobs["{ORG}/Solo"]'], rows
        applied = project.run("apply", "--env", "e", "--auto-approve")
        assert applied.exit_code == 0, applied.output
        assert sorted(j["name"] for j in listed(api_client(server.url, "v8"), "v8", "Jobs")) == ["Other", "Solo"]
        assert project.run("plan", "--env", "e", "--detailed-exitcode").exit_code == 0
