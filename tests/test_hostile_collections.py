"""A hostile plan author against the named collections (v8, one v7 case, over real HTTP): each test takes a real plan file,
edits it as its author could after planning (the checksum recomputed, the author statement signed again with
ssh-keygen), and checks that apply refuses it and that nothing at all was written to the server. One server and
one project are shared by the module: a baseline (two repositories, a job, a role, a prevent_destroy rule) is
applied once, and every attack is refused, so the baseline stays as it was."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import API_SECRET, ProjectDir, api_client, authored_server, one_server_project, reseal

from vboplan.planning.plan import change_id

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
    }],
    "proxies": [{"hostName": "proxy01.contoso.local", "port": 9193, "description": ""}],
    "cloud_accounts": [{"userName": "akiaexample01", "accountType": "amazonS3Account"}],
}
REPOS = """\
backup_repositories:
  Repo EU: {proxy: proxy01.contoso.local, path: 'D:\\Backups\\EU', retentionType: ItemLevel, description: DESC}
  Repo US: {proxy: proxy01.contoso.local, path: 'D:\\Backups\\US', retentionType: RETENTION}
  Archive EU:
    proxy: proxy01.contoso.local
    retentionType: SnapshotBased
    objectStorage:
      account: akiaexample01
      type: AmazonS3
      amazonBucketS3Aws: {name: vb365-archive, regionType: Global, regionId: eu-west-1}
      s3Folder: eu
      sizeLimitEnabled: true
      sizeLimitGB: SIZE
  Archive US:
    proxy: proxy01.contoso.local
    retentionType: SnapshotBased
    objectStorage:
      account: akiaexample01
      type: AmazonS3
      amazonBucketS3Aws: {name: vb365-archive, regionType: Global, regionId: eu-west-1}
      s3Folder: us
NEWREPOlifecycle:
  'backup_repositories["Repo EU"]': {prevent_destroy: true}
  'backup_repositories["Repo US"]': {allow_replace: true}
"""
JOBS = """\
backup_jobs:
  Contoso mail:
    organization: contoso.onmicrosoft.com
    repository: Repo EU
    backupType: SelectedItems
    description: JOBDESC
    selectedItems: [{user: ceo@contoso.com, mailbox: true}]
    schedulePolicy: {type: Daily, dailyType: Everyday, dailyTime: "22:00:00"}
    isEnabled: true
  Contoso rest: {organization: contoso.onmicrosoft.com, repository: Repo EU, backupType: EntireOrganization}
"""
ROLES = """\
restore_operator_roles:
  Helpdesk EU:
    organization: contoso.onmicrosoft.com
    roleType: SpecificObjects
    description: ROLEDESC
    operators: [{group: Helpdesk}OPERATORS]
    selectedItems: [{group: Sales}]
"""
JOB_NOTE = "job-note-planted-hostile"
ROLE_NOTE = "role-note-planted-hostile"
JOB = 'backup_jobs["Contoso mail"]'
ROLE = 'restore_operator_roles["Helpdesk EU"]'


class Shared:
    def __init__(self, project: ProjectDir, writes: list[tuple[str, str]], http: Any) -> None:
        self.project, self.writes, self.http = project, writes, http

    def templates(self, repo: str = "EU repository", job: str = "Mail of the board",
                  role: str = "Helpdesk restores", operators: str = "", new_job: str = "",
                  retention: str = "ItemLevel", new_repo: str = "", size: int = 1024, copy_to: str = "") -> None:
        added = f"  {new_repo}: {{proxy: proxy01.contoso.local, path: 'D:\\\\N', retentionType: ItemLevel}}\n" \
            if new_repo else ""
        text = REPOS.replace("DESC", repo).replace("RETENTION", retention).replace("SIZE", str(size))
        self.project.write("templates/repos.yaml.j2", text.replace("NEWREPO", added))
        more = JOBS.split("\n", 1)[1].split("  Contoso rest")[0].replace("Contoso mail", new_job).replace(
            "JOBDESC", "new") if new_job else ""
        more += f"copy_jobs:\n  Contoso mail: {{repository: {copy_to}}}\n" if copy_to else ""
        self.project.write("templates/jobs.yaml.j2", JOBS.replace("JOBDESC", job) + more)
        self.project.write("templates/roles.yaml.j2", ROLES.replace("ROLEDESC", role).replace("OPERATORS", operators))

    def plan(self, tmp_path: Path, **descriptions: str) -> dict[str, Any]:
        self.templates(**descriptions)
        out = tmp_path / "plan.json"
        planned = self.project.run("plan", "--env", "dev", "--out", str(out))
        assert planned.exit_code in (0, 2), planned.output
        return dict(json.loads(out.read_text()))

    def refused(self, tmp_path: Path, document: dict[str, Any], *fragments: str) -> str:
        """Apply ``document`` as its author resealed it: refused with ``fragments``, and no write sent."""
        edited = tmp_path / "hostile.json"
        reseal(edited, document, self.project.keys["ann"])
        before = len(self.writes)
        result = self.project.run("apply", str(edited))
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.output
        for fragment in fragments:
            assert fragment in result.output, result.output
        assert self.writes[before:] == [], f"the hostile plan reached the server: {self.writes[before:]}"
        return result.output

    def jobs(self) -> list[dict[str, Any]]:
        return list(self.http.get("/v8/Jobs").json()["results"])


@contextmanager
def _serving(folder: Path, keys: dict[str, Path], version: str = "v8") -> Iterator[Shared]:
    """A fresh server and a project against it (API ``version``), the baseline applied."""

    with authored_server(SEED, keys) as (server, writes, patch):
        patch.setenv("JOB_NOTE", JOB_NOTE)
        patch.setenv("ROLE_NOTE", ROLE_NOTE)
        project = one_server_project(folder / "project", server.url, version, env="dev")
        project.keys = keys
        http = api_client(server.url, version)
        state = Shared(project, writes, http)
        state.templates()
        applied = project.run("apply", "--env", "dev", "--auto-approve")
        assert applied.exit_code == 0, applied.output
        yield state


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, keys: dict[str, Path]) -> Iterator[Shared]:
    with _serving(tmp_path_factory.mktemp("hostile"), keys) as state:
        yield state


def _row(document: dict[str, Any], address: str) -> dict[str, Any]:
    return next(r for r in document["changes"] if r["address"] == address)


def _readdress(row: dict[str, Any], address: str) -> None:
    """What an author does to make a row of another address look derived: the id that address has."""
    row["address"], row["id"] = address, change_id(address)


def test_an_update_turned_into_a_replace_is_refused(shared: Shared, tmp_path: Path) -> None:
    """A description edit rewritten as -/+ replace of the repository (which would delete it, prevent_destroy
    lifted in the plan's own rules), and as a replace with another reason."""
    document = shared.plan(tmp_path, repo="EU repository (edited)")
    row = _row(document, 'backup_repositories["Repo EU"].description')
    live = next(o for k, o in document["live"]["backup_repositories"]["objects"].items() if k == "Repo EU")
    _readdress(row, 'backup_repositories["Repo EU"]')
    row.update(action="replace", before=None, after={"proxy": 'backup_proxies["proxy01.contoso.local"]',
                                                     "path": "D:\\Backups\\EU", "retentionType": "ItemLevel",
                                                     "description": "EU repository (edited)"},
               detail={"key": "Repo EU", "id": live["id"], "reason": "retentionType cannot change after creation"})
    document["scope"]["lifecycle"] = {'backup_repositories["Repo EU"]': {"allow_replace": True}}
    shared.refused(tmp_path, document, "nothing about this object needs a replace")

    # A real replace (allowed by the templates' lifecycle) whose shown reason the author rewords.
    replaced = shared.plan(tmp_path, retention="SnapshotBased")
    row = _row(replaced, 'backup_repositories["Repo US"]')
    assert row["action"] == "replace" and "retentionType" in row["detail"]["reason"], row
    row["detail"]["reason"] = "the description changes"
    shared.refused(tmp_path, replaced, row["id"])

    # A create turned into a replace of an object that is not there (a DELETE of whatever id the author picks).
    created = shared.plan(tmp_path, new_repo="Repo APAC")
    row = _row(created, 'backup_repositories["Repo APAC"]')
    row.update(action="replace", before=row["after"],
               detail={"key": "Repo APAC", "id": replaced["live"]["backup_repositories"]["objects"]["Repo EU"]["id"],
                       "reason": "retentionType cannot change after creation"})
    shared.refused(tmp_path, created, "cannot replace this object")
    held = shared.http.get("/v8/BackupRepositories").json()
    assert sorted(r["name"] for r in held["results"]) == ["Archive EU", "Archive US", "Repo EU", "Repo US"]


def test_smuggled_run_now_is_refused(shared: Shared, tmp_path: Path) -> None:
    """runNow added to a job's update, as a field of its own and inside an edited description's row."""
    document = shared.plan(tmp_path, job="Mail of the board, edited")
    row = _row(document, f"{JOB}.description")
    _readdress(row, f"{JOB}.runNow")
    row.update(before=None, after=True)
    shared.refused(tmp_path, document, "vboplan never starts a job")

    created = shared.plan(tmp_path, new_job="Contoso copy")
    row = _row(created, 'backup_jobs["Contoso copy"]')
    row["after"]["runNow"] = True
    shared.refused(tmp_path, created, "vboplan never starts a job")
    assert not any(j.get("lastRun") for j in shared.jobs())


def test_a_new_operator_shown_as_info_is_refused(shared: Shared, tmp_path: Path) -> None:
    """A role widened by a new operator (critical) whose row the author rates info with a harmless reason; and
    the same row smuggled into a plan of a mere description edit."""
    widened = shared.plan(tmp_path, operators=", {user: it.lead@contoso.com}")
    address = f'{ROLE}.operators.user["it.lead@contoso.com"]'
    row = _row(widened, address)
    assert row["severity"] == "critical", row
    row.update(severity="info", severity_reason="description wording")
    shared.refused(tmp_path, widened, row["id"])

    edit = shared.plan(tmp_path, role="Helpdesk restores, edited")
    edit["changes"].append({**row, "severity": "critical"})
    shared.refused(tmp_path, edit)


def test_recorded_live_ids_pointing_at_another_object_are_refused(shared: Shared, tmp_path: Path) -> None:
    """The recorded live job's id swapped for the other repository's id (a PUT to another path), and the
    directory answer's principal id of a held item swapped: the server's answers at apply say otherwise."""
    document = shared.plan(tmp_path, job="Mail of the board, edited")
    objects = document["live"]["backup_jobs"]["objects"]
    other = document["live"]["backup_repositories"]["objects"]["Repo US"]["id"]
    objects["Contoso mail"]["id"] = other
    _row(document, f"{JOB}.description")["detail"]["id"] = other
    shared.refused(tmp_path, document)
    assert [j["description"] for j in shared.jobs() if j["name"] == "Contoso mail"] == ["Mail of the board"]


def test_a_raw_id_in_a_jobs_reference_is_refused(shared: Shared, tmp_path: Path) -> None:
    """The job's repository update sent as a raw repositoryId of the author's choosing."""
    document = shared.plan(tmp_path, job="Mail of the board, edited")
    row = _row(document, f"{JOB}.description")
    other = document["live"]["backup_repositories"]["objects"]["Repo US"]["id"]
    _readdress(row, f"{JOB}.repositoryId")
    row.update(before=None, after=other)
    shared.refused(tmp_path, document, "must name repository, not hold repositoryId")
    assert [j["repositoryId"] for j in shared.jobs() if j["name"] == "Contoso mail"] != [other]


def test_secrets_in_job_and_role_descriptions_stay_secret(tmp_path: Path, keys: dict[str, Path]) -> None:
    """A job's and a role's description filled from secret(): in no output, plan file, request listing, state
    snapshot or journal; the server holds it; the next plan converges without printing it."""
    with _serving(tmp_path, keys) as state:
        project = state.project
        outputs = []
        state.templates(job='{{ secret("JOB_NOTE") }}', role='{{ secret("ROLE_NOTE") }}')
        out = tmp_path / "plan.json"
        for args in (("plan", "--env", "dev", "--out", str(out)), ("plan", "--env", "dev", "--format", "json"),
                     ("show", "--requests", str(out)), ("apply", str(out)), ("plan", "--env", "dev",
                                                                              "--detailed-exitcode")):
            result = project.run(*args)
            assert result.exit_code in (0, 2), result.output
            outputs.append(result.output)
        assert result.exit_code == 0, result.output  # converged
        assert [j["description"] for j in state.jobs() if j["name"] == "Contoso mail"] == [JOB_NOTE]
        assert [r["description"] for r in state.http.get("/v8/RbacRoles").json()] == [ROLE_NOTE]
        files = [p for p in project.root.rglob("*") if p.is_file()] + [out]
        for text in outputs + [p.read_text(errors="replace") for p in files]:
            assert JOB_NOTE not in text and ROLE_NOTE not in text, text[:2000]


def test_a_nested_object_pointed_at_another_objects_storage_is_refused(shared: Shared, tmp_path: Path) -> None:
    """An object-storage edit whose row carries the server's id of the other repository's object storage (v8
    keeps the id a PUT sends), or a field the templates cannot write."""
    http = shared.http
    held = {r["name"]: r for r in http.get("/v8/BackupRepositories").json()["results"]}
    document = shared.plan(tmp_path, size=2048)
    row = _row(document, 'backup_repositories["Archive EU"].objectStorage')
    row["after"]["id"] = held["Archive US"]["objectStorage"]["id"]
    row["before"]["id"] = None  # as the recorded live value, projected on the edited one, reads
    shared.refused(tmp_path, document, "no field 'objectStorage.id'")
    document = shared.plan(tmp_path, size=2048)
    row = _row(document, 'backup_repositories["Archive EU"].objectStorage')
    row["after"]["secretKey"] = "planted"
    row["before"]["secretKey"] = None
    shared.refused(tmp_path, document, "no field 'objectStorage.secretKey'")
    now = {r["name"]: r for r in http.get("/v8/BackupRepositories").json()["results"]}
    assert now["Archive EU"]["objectStorage"] == held["Archive EU"]["objectStorage"]


@pytest.mark.parametrize(("address", "which"), [(f"{JOB}.excludedItems", "excludedItems"),
                                                (f"{ROLE}.operators", "operators"),
                                                (f"{ROLE}.selectedItems", "selectedItems")])
def test_a_list_rewritten_as_a_field_is_refused(shared: Shared, tmp_path: Path, address: str, which: str) -> None:
    """A job's or role's item list sent as one field of the object's PUT (principals by raw id, rated as a plain
    field edit) instead of through the list's own endpoints and rows."""
    document = shared.plan(tmp_path, job="Mail of the board (edited)", role="Helpdesk restores (edited)")
    row = _row(document, f"{address.rsplit('.', 1)[0]}.description")
    _readdress(row, address)
    row.update(before=None, after=[{"type": "User", "user": {"id": "00000000-0000-0000-0000-000000000001"}}],
               severity="info", severity_reason="")
    shared.refused(tmp_path, document, f"{which} is changed")


def test_a_copy_job_pointed_at_another_backup_job_is_refused(shared: Shared, tmp_path: Path) -> None:
    """copy_jobs["Contoso mail"] created, its row's backupJob edited to name another backup job (its key still
    says which job approvers think it copies)."""
    document = shared.plan(tmp_path, copy_to="Archive EU")
    row = _row(document, 'copy_jobs["Contoso mail"]')
    assert row["after"]["backupJob"] == JOB, row
    row["after"]["backupJob"] = 'backup_jobs["Contoso rest"]'
    shared.refused(tmp_path, document, "copies backup_jobs[\"Contoso mail\"], not")
    assert shared.http.get("/v8/CopyJobs").json()["results"] == []


def test_a_copy_job_replaced_without_its_backup_job_is_refused(shared: Shared, tmp_path: Path) -> None:
    """A copy job's -/+ replace row added to a plan that leaves its backup job as it is (the copy job deleted and
    made again for nothing): only the replace of its backup job brings one."""
    shared.templates(copy_to="Archive EU")
    assert shared.project.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
    try:
        document = shared.plan(tmp_path, job="Mail of the board (edited)", copy_to="Archive EU")
        values = document["live"]["copy_jobs"]["objects"]["Contoso mail"]["values"]
        kinds = {"backupJob": "backup_jobs", "repository": "backup_repositories", "organization": "organizations"}
        shown = {k: f'{kinds[k]}["{v}"]' if k in kinds else v for k, v in values.items()}
        address = 'copy_jobs["Contoso mail"]'
        copy = document["live"]["copy_jobs"]["objects"]["Contoso mail"]
        reason = ('its backup job backup_jobs["Contoso mail"] is replaced: the copy job is deleted before it and '
                  'created after it, copying the new job')
        document["changes"].append({
            "id": change_id(address), "address": address, "action": "replace", "before": shown, "after": shown,
            "sensitive": False, "kind": "copy_jobs", "severity": "warning",
            "severity_reason": f"replaced: the object is deleted, then created again, because {reason}",
            "detail": {"key": "Contoso mail", "id": copy["id"], "reason": reason}})
        document["scope"]["lifecycle"] = {address: {"allow_replace": True}}
        repos = shared.project.root / "templates" / "repos.yaml.j2"  # the templates allow it too
        repos.write_text(repos.read_text() + f"  '{address}': {{allow_replace: true}}\n")
        shared.refused(tmp_path, document, "replaced with its backup job only")
    finally:
        shared.templates()
        for copy in shared.http.get("/v8/CopyJobs").json()["results"]:
            assert shared.http.delete(f"/v8/CopyJobs/{copy['id']}").status_code == 204


def test_v7_a_raw_object_storage_id_is_refused(tmp_path: Path, keys: dict[str, Path]) -> None:
    """v6/v7 keep a repository's object storage in /objectstoragerepositories: a row setting the repository's
    objectStorageId to the other repository's object storage is refused."""
    with _serving(tmp_path, keys, "v7") as state:
        held = {r["name"]: r for r in state.http.get("/v7/BackupRepositories").json()}
        document = state.plan(tmp_path, size=2048)
        row = _row(document, 'backup_repositories["Archive EU"].objectStorage')
        _readdress(row, 'backup_repositories["Archive EU"].objectStorageId')
        row.update(before=held["Archive EU"]["objectStorageId"], after=held["Archive US"]["objectStorageId"])
        state.refused(tmp_path, document, "objectStorageId")
        now = {r["name"]: r for r in state.http.get("/v7/BackupRepositories").json()}
        assert now["Archive EU"]["objectStorageId"] == held["Archive EU"]["objectStorageId"]


def test_a_delete_the_templates_protect_is_refused_whatever_the_plan_files_rules(shared: Shared, tmp_path: Path) -> None:
    """A plan made from a local edit that dropped a repository and its prevent_destroy rule, applied where the
    templates protect it: the plan file's own rules allow the delete, the templates' refuse it."""
    shared.templates()
    text = REPOS.replace("DESC", "EU repository").replace("RETENTION", "ItemLevel").replace("SIZE", "1024")
    protected = text.replace("NEWREPO", "").replace('"Repo US"]\': {allow_replace: true}',
                                                    '"Repo US"]\': {prevent_destroy: true}')
    assert "'backup_repositories[\"Repo US\"]': {prevent_destroy: true}" in protected
    local_edit = "\n".join(line for line in protected.splitlines()
                           if "Repo US" not in line) + "\n"
    shared.project.write("templates/repos.yaml.j2", local_edit)
    out = tmp_path / "plan.json"
    planned = shared.project.run("plan", "--env", "dev", "--out", str(out))
    assert planned.exit_code == 0, planned.output
    document = dict(json.loads(out.read_text()))
    row = _row(document, 'backup_repositories["Repo US"]')
    assert row["action"] == "delete", row
    assert 'backup_repositories["Repo US"]' not in document["scope"]["lifecycle"]
    shared.project.write("templates/repos.yaml.j2", protected)
    shared.refused(tmp_path, document, "lifecycle rules of the templates", row["id"], "prevent_destroy")
