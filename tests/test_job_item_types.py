"""A backup job's items of the organization's own (RESTJobBackupItemType ``PartialOrganization``, ``PersonalSites``,
``OneDriveFolders``: RESTJobOrganizationItem, RESTJobPersonalSitesItem, RESTJobOneDriveFoldersItem in the v6, v7
and v8 documents), written by type name with their fields, against the emulator over real HTTP: plan, apply (the
items the server then holds), converge, a flag changed through the item's PUT, an item removed, import round trip,
and a bad entry refused with its line."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import API_SECRET, ProjectDir, api_client, listed, one_server_project, plan_rows
from test_backup_jobs import SEED

from vboplan.emulator import Store, start

JOB = """\
backup_jobs:
  Whole tenant:
    organization: contoso.onmicrosoft.com
    repository: Repo EU
    backupType: SelectedItems
    selectedItems:
      - {partialOrganization: true, mailbox: true, oneDrive: ONEDRIVE, archiveMailbox: true}
PERSONAL      - {oneDriveFolders: true, folders: [Documents, Desktop]}
      - {user: jane@contoso.com, mailbox: true}
"""
WHOLE = 'backup_jobs["Whole tenant"]'
ORG = "contoso.onmicrosoft.com"


def _write(project: ProjectDir, onedrive: str = "false", personal: bool = True) -> None:
    project.write("templates/jobs.yaml.j2", JOB.replace("ONEDRIVE", onedrive).replace(
        "PERSONAL", "      - {personalSites: true}\n" if personal else ""))


@pytest.mark.parametrize("version", ["v6", "v7", "v8"])
def test_the_organizations_own_items(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version: str) -> None:
    monkeypatch.setenv("VBO_TEST_PASSWORD", API_SECRET)
    monkeypatch.setenv("VBOPLAN_USER", "ann")
    with start(Store.from_data(SEED)) as server:
        http = api_client(server.url, version)
        project = one_server_project(tmp_path / "p", server.url, version)
        _write(project)
        rows = plan_rows(project.run("plan", "--env", "e", "--format", "json"))
        partial = f'{WHOLE}.selectedItems.partialOrganization["{ORG}"]'
        assert {a: r["action"] for a, r in rows.items()} == {
            WHOLE: "create", partial: "create", f'{WHOLE}.selectedItems.personalSites["{ORG}"]': "create",
            f'{WHOLE}.selectedItems.oneDriveFolders["{ORG}"]': "create",
            f'{WHOLE}.selectedItems.user["jane@contoso.com"]': "create"}, rows
        assert rows[partial]["after"] == {"mailbox": True, "oneDrive": False, "archiveMailbox": True}
        applied = project.run("apply", "--env", "e", "--auto-approve")
        assert applied.exit_code == 0, applied.output
        job = next(j for j in listed(http, version, "Jobs") if j["name"] == "Whole tenant")
        held = {i["type"]: i for i in listed(http, version, f"Jobs/{job['id']}/SelectedItems")}
        assert set(held) == {"PartialOrganization", "PersonalSites", "OneDriveFolders", "User"}, held
        assert held["PartialOrganization"]["mailbox"] is True and held["PartialOrganization"]["oneDrive"] is False
        assert held["OneDriveFolders"]["folders"] == ["Documents", "Desktop"]
        assert project.run("plan", "--env", "e", "--detailed-exitcode").exit_code == 0

        # A flag turned on (the item's PUT), personal sites removed (the list's DELETE).
        _write(project, onedrive="true", personal=False)
        rows = plan_rows(project.run("plan", "--env", "e", "--format", "json"))
        assert {a: r["action"] for a, r in rows.items()} == {
            partial: "update", f'{WHOLE}.selectedItems.personalSites["{ORG}"]': "delete"}, rows
        assert project.run("apply", "--env", "e", "--auto-approve").exit_code == 0
        held = {i["type"]: i for i in listed(http, version, f"Jobs/{job['id']}/SelectedItems")}
        assert "PersonalSites" not in held and held["PartialOrganization"]["oneDrive"] is True, held
        assert project.run("plan", "--env", "e", "--detailed-exitcode").exit_code == 0

        # Import writes them by type name; the next plan is clean.
        other = ProjectDir(tmp_path / "imported")
        other.write("vboplan.yaml", project.root.joinpath("vboplan.yaml").read_text())
        done = other.run("import", "--env", "e", "--resource", "backup_jobs", "--resource", "backup_repositories")
        assert done.exit_code == 0, done.output
        written = "".join(p.read_text() for p in other.root.rglob("*.y*ml*") if p.name != "vboplan.yaml")
        assert "partialOrganization" in written and "oneDriveFolders" in written, written
        assert other.run("plan", "--env", "e", "--detailed-exitcode").exit_code == 0


def test_an_organization_item_with_a_name_or_a_foreign_flag_is_refused(tmp_path: Path) -> None:
    project = ProjectDir(tmp_path / "p")
    project.write("vboplan.yaml", "templates: [templates/*.yaml.j2]\nenvironments:\n  e:\n"
                                  "    server: https://vbo.invalid:4443\n    api_version: v8\n")
    for entry, fragment in (("{personalSites: contoso}", "write personalSites: true"),
                            ("{personalSites: true, mailbox: true}", "'mailbox' is not a flag"),
                            ("{oneDriveFolders: true, folders: Documents}", "folders")):
        project.write("templates/jobs.yaml.j2", JOB.replace("PERSONAL", f"      - {entry}\n")
                      .replace("ONEDRIVE", "true"))
        result = project.run("validate", "--env", "e")
        assert result.exit_code == 1 and fragment in result.stderr and "jobs.yaml.j2:" in result.stderr, result.output
        assert "Traceback" not in result.output
