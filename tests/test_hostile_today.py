"""A hostile plan author against create_before_destroy, replaced jobs, copy jobs and roles, the organization's own
item types and references to a replaced object (v8, over real HTTP): each test takes a real plan file, edits it as
its author could after planning (checksum recomputed, author statement signed again with ssh-keygen), and checks
that apply refuses it with one message naming the change and that nothing at all was written to the server. One
server and one project are shared by the module; every attack is refused, so the baseline stays as it was."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ProjectDir, api_client, authored_server, one_server_project, reseal
from test_backup_jobs import SEED as JOBS_SEED

from vboplan.planning.plan import change_id

ORG = "contoso.onmicrosoft.com"
FABRIKAM = "fabrikam.onmicrosoft.com"
NORTHWIND = "northwind.onmicrosoft.com"
SEED: dict[str, Any] = {**{k: v for k, v in JOBS_SEED.items() if k != "backup_repositories"}, "organizations": [
    *JOBS_SEED["organizations"],
    {"name": FABRIKAM, "users": [{"displayName": "Bob", "name": "bob@fabrikam.com"}],
     "groups": [{"displayName": "Desk", "name": "desk@fabrikam.com"}]},
    {"name": NORTHWIND, "users": [{"displayName": "Nina", "name": "nina@northwind.com"}],
     "groups": [{"displayName": "Desk", "name": "desk@northwind.com"}]}]}
PASSWORD = "Kx9-hostile-today-planted-1"
KEY = 'encryption_keys["Archive key"]'
SOLO = 'backup_jobs["Solo"]'
WHOLE = 'backup_jobs["Whole"]'  # keyed ORGANIZATION/NAME by the templates, by its name on the server
COPY = 'copy_jobs["Solo"]'
ROLE = 'restore_operator_roles["Desk"]'

TEMPLATE = """\
encryption_keys:
  Archive key: {password: {{ secret("ARCHIVE_KEY_PASSWORD") }}}
  Spare key: {password: {{ secret("SPARE_KEY_PASSWORD") }}}
backup_repositories:
  Key EU: {proxy: proxy01.contoso.local, path: 'D:\\KEU', retentionType: ItemLevel, encryptionKey: Archive key}
  Key US: {proxy: proxy01.contoso.local, path: 'D:\\KUS', retentionType: RETENTION, encryptionKey: Archive key}
  Repo EU: {proxy: proxy01.contoso.local, path: 'D:\\EU', retentionType: ItemLevel}
  Repo US: {proxy: proxy01.contoso.local, path: 'D:\\US', retentionType: ItemLevel}
  Archive EU:
    proxy: proxy01.contoso.local
    retentionType: SnapshotBased
    objectStorage:
      account: akiaexample01
      type: AmazonS3
      amazonBucketS3Aws: {name: vb365-archive, regionType: Global, regionId: eu-west-1}
      s3Folder: eu
NEWREPObackup_jobs:
  Solo:
    organization: SOLOORG
    repository: Repo EU
    backupType: SelectedItems
    selectedItems: [{user: SOLOUSER, mailbox: true}]
  contoso.onmicrosoft.com/Whole:
    organization: contoso.onmicrosoft.com
    repository: Repo US
    backupType: SelectedItems
    selectedItems:
      - {partialOrganization: true, mailbox: true, oneDrive: ONEDRIVE}
      - {personalSites: true}
      - {oneDriveFolders: true, folders: [Documents]}
copy_jobs:
  Solo: {repository: Archive EU, schedulePolicy: {type: Immediate}, organization: SOLOORG}
restore_operator_roles:
  Desk:
    organization: ROLEORG
    roleType: EntireOrganization
    description: ROLEDESC
    operators: [{group: ROLEGROUP}]
lifecycle:
  'encryption_keys["Archive key"]': {allow_replace: true, create_before_destroy: true}
  'backup_repositories["Key US"]': {allow_replace: true}
  'backup_jobs["Solo"]': {allow_replace: true}
  'copy_jobs["Solo"]': {allow_replace: true}
  'restore_operator_roles["Desk"]': {allow_replace: true}
"""


class Shared:
    def __init__(self, project: ProjectDir, writes: list[tuple[str, str]], http: Any,
                 patch: pytest.MonkeyPatch) -> None:
        self.project, self.writes, self.http, self.patch = project, writes, http, patch

    def templates(self, solo_org: str = ORG, role_org: str = ORG, onedrive: str = "false",
                  retention: str = "ItemLevel", new_repo: str = "", role: str = "Desk restores",
                  password: str = PASSWORD) -> None:
        self.patch.setenv("ARCHIVE_KEY_PASSWORD", password)
        self.patch.setenv("SPARE_KEY_PASSWORD", PASSWORD + "-spare")
        users = {ORG: "jane@contoso.com", FABRIKAM: "bob@fabrikam.com", NORTHWIND: "nina@northwind.com"}
        groups = {ORG: "HR Department", FABRIKAM: "Desk", NORTHWIND: "Desk"}
        text = (TEMPLATE.replace("SOLOORG", solo_org).replace("SOLOUSER", users[solo_org])
                .replace("ROLEORG", role_org).replace("ROLEGROUP", groups[role_org]).replace("ROLEDESC", role)
                .replace("ONEDRIVE", onedrive).replace("RETENTION", retention).replace("NEWREPO", new_repo))
        self.project.write("templates/all.yaml.j2", text)

    def plan(self, tmp_path: Path, *args: str, **values: str) -> dict[str, Any]:
        self.templates(**values)
        out = tmp_path / "plan.json"
        planned = self.project.run("plan", "--env", "dev", "--out", str(out), *args)
        assert planned.exit_code in (0, 2), planned.output
        return dict(json.loads(out.read_text()))

    def state(self) -> dict[str, Any]:
        return {path: self.http.get(f"/v8/{path}").json() for path in (
            "EncryptionKeys", "BackupRepositories", "Jobs", "CopyJobs", "RbacRoles")}

    def refused(self, tmp_path: Path, document: dict[str, Any], *fragments: str) -> str:
        """Apply ``document`` as its author resealed it: refused with ``fragments``, and no write sent. Its rows'
        recorded severities are dropped first (a plan file without them is rated afresh), so that an attack meets
        the derivation, not the check that a row's rating is its kind's."""
        for row in document["changes"]:
            row.pop("severity", None)
            row.pop("severity_reason", None)
        edited = tmp_path / "hostile.json"
        reseal(edited, document, self.project.keys["ann"])
        before, held = len(self.writes), self.state()
        result = self.project.run("apply", str(edited))
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.output and PASSWORD not in result.output, result.output
        for fragment in fragments:
            assert fragment in result.output, result.output
        assert self.writes[before:] == [], f"the hostile plan reached the server: {self.writes[before:]}"
        assert self.state() == held
        return result.output

    def requests(self, document: dict[str, Any], tmp_path: Path) -> list[tuple[str, str]]:
        shown_file = tmp_path / "shown.json"
        reseal(shown_file, document, self.project.keys["ann"])
        shown = self.project.run("show", "--requests", "--format", "json", str(shown_file))
        assert shown.exit_code == 0, shown.output
        return [(r["method"], r["path"]) for r in json.loads(shown.stdout)["plans"][0]["requests"]]


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, keys: dict[str, Path]) -> Iterator[Shared]:
    with authored_server(SEED, keys) as (server, writes, patch):
        project = one_server_project(tmp_path_factory.mktemp("today") / "project", server.url, "v8", env="dev")
        project.keys = keys
        state = Shared(project, writes, api_client(server.url, "v8"), patch)
        state.templates()
        applied = project.run("apply", "--env", "dev", "--auto-approve")
        assert applied.exit_code == 0, applied.output
        yield state


def _row(document: dict[str, Any], address: str) -> dict[str, Any]:
    return next(r for r in document["changes"] if r["address"] == address)


def _id_of(document: dict[str, Any], kind: str, key: str) -> str:
    return str(document["live"][kind]["objects"][key]["id"])


# -- create_before_destroy -----------------------------------------------------------------------------------------

def test_the_create_before_destroy_flag_dropped_or_added_is_refused(shared: Shared, tmp_path: Path) -> None:
    """The rotation's row without its flag (old key deleted first, while repositories use it); the flag added to a
    repository's replace (its plan's rules too), which the templates do not give and the server cannot hold."""
    rotation = shared.plan(tmp_path, password=PASSWORD + "-new")
    row = _row(rotation, KEY)
    assert row["action"] == "replace" and row["detail"]["create_before_destroy"] is True, row
    row["detail"].pop("create_before_destroy")
    # And its moves, rows of their own that only a create_before_destroy replace makes (refused on their own too).
    rotation["changes"] = [c for c in rotation["changes"] if "moves_to" not in (c.get("detail") or {})]
    rules = rotation["scope"]["lifecycle"]
    rules[KEY] = {"allow_replace": True}
    shared.refused(tmp_path, rotation, row["id"])

    replaced = shared.plan(tmp_path, retention="SnapshotBased")
    row = _row(replaced, 'backup_repositories["Key US"]')
    assert row["action"] == "replace", row
    row["detail"]["create_before_destroy"] = True
    replaced["scope"]["lifecycle"]['backup_repositories["Key US"]'] = {"allow_replace": True,
                                                                      "create_before_destroy": True}
    shared.refused(tmp_path, replaced, row["id"])


def test_a_rotation_reordered_or_its_moves_edited_is_refused(shared: Shared, tmp_path: Path) -> None:
    """Rows in another order send the same requests in the same order; a recorded repository's values pointed
    at the spare key or given another path (what the moving PUT would carry) are not the server's."""
    rotation = shared.plan(tmp_path, password=PASSWORD + "-new")
    order = shared.requests(copy.deepcopy(rotation), tmp_path)
    assert [m for m, _ in order] == ["POST", "PUT", "PUT", "DELETE"], order
    reordered = copy.deepcopy(rotation)
    reordered["changes"].reverse()
    assert shared.requests(reordered, tmp_path) == order

    edited = copy.deepcopy(rotation)
    edited["live"]["backup_repositories"]["objects"]["Key US"]["values"]["path"] = "D:\\Elsewhere"
    shared.refused(tmp_path, edited, "stale")
    edited = copy.deepcopy(rotation)
    values = edited["live"]["backup_repositories"]["objects"]["Key US"]["values"]
    assert values["encryptionKey"] == "Archive key", values
    values["encryptionKey"] = "Spare key"
    # Its move row then moves nothing the recorded values hold: refused as it is loaded.
    shared.refused(tmp_path, edited, 'backup_repositories["Key US"].encryptionKey', "no replace of this plan moves")


def test_an_extra_put_smuggled_into_a_rotation_is_refused(shared: Shared, tmp_path: Path) -> None:
    """A third repository (on the server, not in the templates) recorded as using the key, so that the rotation
    moves it too: refused. A row of its own pointing a repository the rotation moves at the spare key is not
    hidden: the table rates and shows it, and the requests list its PUT."""
    rotation = shared.plan(tmp_path, password=PASSWORD + "-new")
    held = {r["name"]: r for r in shared.http.get("/v8/BackupRepositories").json()["results"]}
    edited = copy.deepcopy(rotation)
    objects = edited["live"]["backup_repositories"]["objects"]
    objects["Repo EU"] = {**copy.deepcopy(objects["Key EU"]), "id": held["Repo EU"]["id"]}
    objects["Repo EU"]["values"]["path"] = held["Repo EU"]["path"]
    scope = edited["scope"]["backup_repositories"]
    if isinstance(scope, list):
        scope.append("Repo EU")
    shared.refused(tmp_path, edited)

    edited = copy.deepcopy(rotation)
    address = 'backup_repositories["Key EU"].encryptionKey'
    # In place of the row moving it onto the new key (one row per address).
    edited["changes"] = [c for c in edited["changes"] if c["address"] != address]
    edited["changes"].append({
        "id": change_id(address), "address": address, "action": "update", "before": KEY,
        "after": 'encryption_keys["Spare key"]', "sensitive": False, "kind": "backup_repositories",
        "severity": "info", "severity_reason": "",
        "detail": {"key": "Key EU", "id": _id_of(rotation, "backup_repositories", "Key EU")}})
    # Not hidden: a row of its own, which the table, its rating and the requests show as apply would send it.
    out = tmp_path / "smuggled.json"
    for row in edited["changes"]:
        row.pop("severity", None)
        row.pop("severity_reason", None)
    reseal(out, edited, shared.project.keys["ann"])
    shown = shared.project.run("show", str(out))
    assert shown.exit_code == 0 and 'encryption_keys["Spare key"]' in shown.stdout, shown.output
    assert f"{change_id(address)} warning: encryption key changes" in shown.stdout, shown.stdout
    assert ("PUT", f"/v8/BackupRepositories/{_id_of(rotation, 'backup_repositories', 'Key EU')}") in \
        shared.requests(edited, tmp_path)


def test_a_new_object_referring_to_the_rotated_key_keeps_its_reference(shared: Shared, tmp_path: Path) -> None:
    """A new repository using the rotated key is created after the new key (named by its new id); its row
    rewritten to hold the old key's raw id, or to name the spare key while the table says the rotated one."""
    new_repo = "  Key APAC: {proxy: proxy01.contoso.local, path: 'D:\\\\KAP', retentionType: ItemLevel, " \
               "encryptionKey: Archive key}\n"
    plan = shared.plan(tmp_path, password=PASSWORD + "-new", new_repo=new_repo)
    order = shared.requests(copy.deepcopy(plan), tmp_path)
    posts = [p for m, p in order if m == "POST"]
    assert posts[0].endswith("/EncryptionKeys") and posts[1].endswith("/BackupRepositories"), order
    row = _row(plan, 'backup_repositories["Key APAC"]')
    assert row["after"]["encryptionKey"] == KEY, row
    raw = copy.deepcopy(plan)
    created = _row(raw, 'backup_repositories["Key APAC"]')
    created["after"].pop("encryptionKey")
    created["after"]["encryptionKeyId"] = _id_of(plan, "encryption_keys", "Archive key")
    shared.refused(tmp_path, raw, created["id"])


# -- replaced jobs, copy jobs, roles --------------------------------------------------------------------------------

def test_a_job_replaced_without_its_copy_job_is_refused(shared: Shared, tmp_path: Path) -> None:
    """The job's move to fabrikam with the copy job's replace row dropped (the job's DELETE would meet the copy job
    still copying it, or leave it copying nothing)."""
    plan = shared.plan(tmp_path, solo_org=FABRIKAM)
    assert _row(plan, COPY)["action"] == "replace" and _row(plan, SOLO)["action"] == "replace"
    plan["changes"] = [c for c in plan["changes"] if c["address"] != COPY]
    shared.refused(tmp_path, plan, _row(plan, SOLO)["id"])


def test_a_job_replaced_into_an_organization_the_templates_do_not_name_is_refused(shared: Shared,
                                                                                 tmp_path: Path) -> None:
    """The job's move to fabrikam rewritten to northwind (its replace row, its copy job's, its item and the
    scope's organization), with northwind's user as its item."""
    plan = shared.plan(tmp_path, solo_org=FABRIKAM)
    text = json.dumps(plan).replace(FABRIKAM, NORTHWIND).replace("bob@fabrikam.com", "nina@northwind.com")
    edited = json.loads(text)
    for change in edited["changes"]:
        change["id"] = change_id(change["address"])
    shared.refused(tmp_path, edited, _row(edited, SOLO)["id"])


def test_item_rows_of_a_replaced_job_from_another_scope_organization_are_refused(shared: Shared,
                                                                                 tmp_path: Path) -> None:
    """The job's move to fabrikam with its item rows (and the scope's organization) pointing at northwind's user
    while the replace row still says fabrikam; and a job the plan does not replace declared in fabrikam by the
    scope, so that an item of fabrikam's looks like the new job's."""
    northwind = shared.plan(tmp_path, solo_org=NORTHWIND)  # the directory answers a northwind plan records
    plan = shared.plan(tmp_path, solo_org=FABRIKAM)
    edited = copy.deepcopy(plan)
    edited["scope"]["backup_jobs"]["names"] = northwind["scope"]["backup_jobs"]["names"]
    edited["live"]["backup_jobs"]["principals"] = northwind["live"]["backup_jobs"]["principals"]
    item = _row(edited, f'{SOLO}.selectedItems.user["bob@fabrikam.com"]')
    item["address"] = f'{SOLO}.selectedItems.user["nina@northwind.com"]'
    item["id"] = change_id(item["address"])
    item["detail"] = _row(northwind, item["address"])["detail"]
    edited["scope"]["backup_jobs"]["organizations"]["Solo"] = NORTHWIND
    text = json.dumps(edited).replace('"bob@fabrikam.com"', '"nina@northwind.com"')
    shared.refused(tmp_path, json.loads(text), item["id"], f"templates declare it in {FABRIKAM}")

    # Not replaced at all: a description edit of the role, and an item row for the unchanged job Solo of fabrikam.
    edit = shared.plan(tmp_path, role="Desk restores, edited")
    address = f'{SOLO}.selectedItems.user["bob@fabrikam.com"]'
    edit["changes"].append({**_row(plan, address), "address": address, "id": change_id(address)})
    edit["scope"]["backup_jobs"]["organizations"]["Solo"] = FABRIKAM
    edit["scope"]["backup_jobs"]["names"] = plan["scope"]["backup_jobs"]["names"]
    edit["live"]["backup_jobs"]["principals"] = plan["live"]["backup_jobs"]["principals"]
    shared.refused(tmp_path, edit, change_id(address), f"templates declare it in {ORG}")


def test_a_role_replaced_with_rows_of_another_organization_is_refused(shared: Shared, tmp_path: Path) -> None:
    """The role's move to fabrikam with its operator row pointed at northwind's group."""
    plan = shared.plan(tmp_path, role_org=FABRIKAM)
    assert _row(plan, ROLE)["action"] == "replace", plan["changes"]
    text = json.dumps(plan).replace("desk@fabrikam.com", "desk@northwind.com")
    edited = json.loads(text)
    edited["scope"]["restore_operator_roles"]["organizations"]["Desk"] = NORTHWIND
    rows = [c for c in edited["changes"] if "desk@northwind.com" in c["address"]]
    assert rows, edited["changes"]
    for change in rows:
        change["id"] = change_id(change["address"])
    shared.refused(tmp_path, edited, rows[0]["id"])


# -- the organization's own item types ------------------------------------------------------------------------------

def test_the_organizations_own_items_widened_in_rows_are_refused(shared: Shared, tmp_path: Path) -> None:
    """A partialOrganization update (oneDrive on) widened in its row to teams; a personalSites row given a
    workload flag it has no such field for; a oneDriveFolders item given folders the templates do not name."""
    plan = shared.plan(tmp_path, onedrive="true")
    address = f'{WHOLE}.selectedItems.partialOrganization["{ORG}"]'
    assert address in [c["address"] for c in plan["changes"]], [c["address"] for c in plan["changes"]]
    row = _row(plan, address)
    assert row["action"] == "update" and row["after"] == {"mailbox": True, "oneDrive": True}, row
    widened = copy.deepcopy(plan)
    _row(widened, address)["after"]["teams"] = True
    _row(widened, address)["before"]["teams"] = False
    shared.refused(tmp_path, widened, row["id"])

    for kind, after in (("personalSites", {"mailbox": True}), ("oneDriveFolders", {"folders": ["Documents", "Desktop"]}),
                        ("oneDriveFolders", {"oneDrive": True})):
        edited = copy.deepcopy(plan)
        other = f'{WHOLE}.selectedItems.{kind}["{ORG}"]'
        moved = _row(edited, address)
        moved.update(address=other, id=change_id(other), after=after, before={k: None for k in after})
        shared.refused(tmp_path, edited, change_id(other))


# -- --target / --exclude by a bare name ----------------------------------------------------------------------------

def test_a_targeted_plan_given_rows_outside_its_target_is_refused(shared: Shared, tmp_path: Path) -> None:
    """Plans made with --target of a job's ORGANIZATION/NAME key and --exclude of its bare name, given
    back a row the selection left out."""
    values = {"onedrive": "true", "role": "Desk restores, targeted"}
    full = shared.plan(tmp_path, **values)
    item = f'{WHOLE}.selectedItems.partialOrganization["{ORG}"]'
    targeted = shared.plan(tmp_path, "--target", f'backup_jobs["{ORG}/Whole"]', **values)
    assert {c["address"] for c in targeted["changes"]} == {item}, targeted["changes"]
    targeted["changes"].append(_row(full, f"{ROLE}.description"))
    shared.refused(tmp_path, targeted, _row(full, f"{ROLE}.description")["id"], "--target")
    excluded = shared.plan(tmp_path, "--exclude", WHOLE, **values)
    assert {c["address"] for c in excluded["changes"]} == {f"{ROLE}.description"}, excluded["changes"]
    excluded["changes"].append(_row(full, item))
    shared.refused(tmp_path, excluded, _row(full, item)["id"], "--exclude")


def test_a_rotation_for_an_unchanged_password_is_refused(shared: Shared, tmp_path: Path) -> None:
    """The rotation's rows (replace, password) put into a plan of a mere role edit, the password's hash made by the
    author from the password the templates still hold: the key would be replaced (a new key, both repositories
    moved, the old key deleted) for nothing the templates change."""
    from vboplan.sensitive import digest

    rotation = shared.plan(tmp_path, password=PASSWORD + "-new")
    edit = shared.plan(tmp_path, role="Desk restores, rotated")
    moves = [c["address"] for c in rotation["changes"] if "moves_to" in (c.get("detail") or {})]
    assert len(moves) == 2, moves  # the rows moving both repositories onto the new key
    for address in (KEY, f"{KEY}.password", *moves):
        row = copy.deepcopy(_row(rotation, address))
        if row.get("sensitive"):
            row["after_digest"] = digest(PASSWORD)
        edit["changes"].append(row)
    edit["scope"]["lifecycle"] = rotation["scope"]["lifecycle"]
    shared.refused(tmp_path, edit, f'{_row(rotation, f"{KEY}.password")["id"]} ({KEY}.password): the secret is the '
                   "one vboplan last set")


def test_a_rotation_without_its_password_row_is_refused(shared: Shared, tmp_path: Path) -> None:
    """The rotation's password row dropped: the new key would be posted without the new password (or the old key
    deleted with nothing to replace it)."""
    rotation = shared.plan(tmp_path, password=PASSWORD + "-new")
    rotation["changes"] = [c for c in rotation["changes"] if c["address"] != f"{KEY}.password"]
    shared.refused(tmp_path, rotation, KEY, "carries no new password")
