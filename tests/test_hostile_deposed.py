"""A deposed object (the old one of a create_before_destroy replace cut short, see vboplan.kinds.refs.depose) is
named so only where the record of vboplan's own applies holds together, never because a state file or a write
journal says so alone (against the emulator, v8).

A hostile author who can write the state backend, with a second key of the same description made in the console,
must not turn the key the repositories use into a "deposed" one whose deletion the plan rates as routine clean-up:
the state must record another live object as that key's current one. A deposed entry for a kind whose server keeps
names unique, or one that is not a list of ids, is refused naming the state file. A journal's create that the server
refused deposes nothing. A real object whose key reads like a deposed name is not taken for one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import SEED, ProjectDir, assert_one_clean_error

PROXIES = [{"hostName": "proxy01.contoso.local", "port": 9193, "description": ""}]
KEY = 'encryption_keys["Archive key"]'
TEMPLATE = """\
encryption_keys:
  Archive key: {password: {{ secret("ARCHIVE_KEY_PASSWORD") }}}
backup_repositories:
  Repo EU: {proxy: proxy01.contoso.local, path: 'D:\\EU', retentionType: ItemLevel, encryptionKey: Archive key}
"""


@pytest.fixture
def rotated(project: ProjectDir, monkeypatch: pytest.MonkeyPatch) -> ProjectDir:
    """A project whose key and repository are applied (v8), and the state file's path as ``project.state``."""
    for path in (project.root / "templates").glob("*"):
        path.unlink()
    project.write("vboplan.yaml", "templates: [templates/*.yaml.j2]\nenvironments:\n  dev:\n    server: emulator:dev\n"
                  "    api_version: v8\n    username: admin\n    password_env: VBO_TEST_PASSWORD\n"
                  "    var_files: [environments/dev.yaml]\n")
    project.write("environments/dev.yaml", "{}\n")
    project.seed("dev", {**SEED, "proxies": PROXIES})
    monkeypatch.setenv("ARCHIVE_KEY_PASSWORD", "Kx9-hostile-deposed-1")
    project.write("templates/repos.yaml.j2", TEMPLATE)
    applied = project.run("apply", "--env", "dev", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    return project


def _keys(project: ProjectDir) -> list[dict[str, Any]]:
    return project.api("dev").get("/v8/EncryptionKeys").json()


def _state(project: ProjectDir) -> Path:
    return project.root / ".vboplan/state/dev.json"


def _edit_state(project: ProjectDir, edit: Any) -> None:
    path = _state(project)
    data = json.loads(path.read_text(encoding="utf-8"))
    edit(data["resources"])
    path.write_text(json.dumps(data), encoding="utf-8")


def test_a_state_that_names_the_current_key_deposed_is_not_honoured(rotated: ProjectDir) -> None:
    [current] = _keys(rotated)
    # A second key of the same description, made outside vboplan (its password known to whoever made it).
    rotated.api("dev").post("/v8/EncryptionKeys", json={"description": "Archive key", "password": "mallory-1"})
    _edit_state(rotated, lambda r: r["encryption_keys"].update(
        deposed={"Archive key": [{"id": current["id"], "journal": "forged"}]}))
    planned = rotated.run("plan", "--env", "dev")
    # The two keys are what they are: two of one description that no apply of vboplan's left.
    assert_one_clean_error(planned, f"{KEY}: the server holds two encryption_keys objects", current["id"])
    assert "deposed" not in planned.stdout
    assert [k["id"] for k in _keys(rotated) if k["id"] == current["id"]] == [current["id"]]


def test_a_state_whose_current_key_is_gone_deposes_nothing(rotated: ProjectDir) -> None:
    """The state records the key by an id the server no longer holds: the deposed entry has no current key to give
    way to, so the two live keys are twins, not a rotation cut short."""
    [current] = _keys(rotated)
    rotated.api("dev").post("/v8/EncryptionKeys", json={"description": "Archive key", "password": "mallory-2"})

    def edit(resources: dict[str, Any]) -> None:
        resources["encryption_keys"]["objects"]["Archive key"]["id"] = "00000000-0000-0000-0000-00000000dead"
        resources["encryption_keys"]["deposed"] = {"Archive key": [{"id": current["id"], "journal": "forged"}]}

    _edit_state(rotated, edit)
    assert_one_clean_error(rotated.run("plan", "--env", "dev"), "the server holds two encryption_keys objects")


@pytest.mark.parametrize("entry", [
    {"backup_repositories": {"Repo EU": [{"id": "ID", "journal": "x"}]}},
    {"encryption_keys": {"Archive key": "not a list"}},
    {"encryption_keys": {"Archive key": [{"journal": "no id"}]}},
])
def test_a_deposed_entry_that_vboplan_cannot_have_written_is_refused(rotated: ProjectDir,
                                                                     entry: dict[str, Any]) -> None:
    [(kind, held)] = entry.items()
    if kind == "backup_repositories":
        repo = rotated.api("dev").get("/v8/BackupRepositories").json()["results"][0]
        held = {"Repo EU": [{"id": repo["id"], "journal": "x"}]}
    _edit_state(rotated, lambda r: r[kind].update(deposed=held))
    result = rotated.run("plan", "--env", "dev")
    assert_one_clean_error(result, ".vboplan", "dev.json", f"{kind}")
    assert "deposed" in result.output


def test_a_refused_create_in_the_journal_deposes_nothing(rotated: ProjectDir) -> None:
    """An interrupted apply's journal whose create of a key replacing the current one the server refused (state
    "failed"): no new key was made, so the current key is not deposed, even with a console-made twin beside it."""
    [current] = _keys(rotated)
    rotated.api("dev").post("/v8/EncryptionKeys", json={"description": "Archive key", "password": "mallory-3"})
    snapshot = json.loads(_state(rotated).read_text(encoding="utf-8"))
    record = {"id": "C1", "address": KEY, "action": "create", "kind": "encryption_keys", "sensitive": False,
              "before": None, "after": None, "detail": {"replaces": current["id"]}}
    journal = {"format_version": 1, "id": "j-refused", "environment": "dev", "by": "ci", "started_at":
               snapshot["updated_at"], "checksum": "x", "scope": {}, "writes": [
                   {"n": 1, "description": "POST /v8/EncryptionKeys", "state": "failed", "changes": [record]}]}
    (_state(rotated).parent / "dev.journal.json").write_text(json.dumps(journal), encoding="utf-8")
    planned = rotated.run("plan", "--env", "dev")
    assert_one_clean_error(planned, f"{KEY}: the server holds two encryption_keys objects")


def test_a_key_described_like_a_deposed_one_is_not_taken_for_one(rotated: ProjectDir) -> None:
    """A key made in the console whose description reads like vboplan's name for a deposed key: the plan refuses
    it, naming it, rather than rating what uses it as finishing a rotation."""
    [current] = _keys(rotated)
    made = rotated.api("dev").post("/v8/EncryptionKeys", json={"description": f"Archive key (deposed {current['id']})",
                                                              "password": "mallory-4"}).json()
    repo = rotated.api("dev").get("/v8/BackupRepositories").json()["results"][0]
    moved = rotated.api("dev").put(f"/v8/BackupRepositories/{repo['id']}",
                                   json={**repo, "encryptionKeyId": made["id"]})
    assert moved.status_code < 300, moved.text
    result = rotated.run("plan", "--env", "dev")
    assert_one_clean_error(result, f"Archive key (deposed {current['id']})", "deposed")


@pytest.fixture
def deposed(rotated: ProjectDir) -> tuple[ProjectDir, dict[str, Any], dict[str, Any]]:
    """A rotation cut short as a refused apply records it: the new key made beside the old one (which the
    repository still uses), the snapshot naming the new one the key's current one and the old one deposed."""
    [old] = _keys(rotated)
    new = rotated.api("dev").post("/v8/EncryptionKeys", json={"description": "Archive key", "password": "n-1"}).json()

    def edit(resources: dict[str, Any]) -> None:
        resources["encryption_keys"]["objects"]["Archive key"]["id"] = new["id"]
        resources["encryption_keys"]["deposed"] = {"Archive key": [{"id": old["id"], "journal": "j-1"}]}

    _edit_state(rotated, edit)
    return rotated, old, new


def test_a_target_of_a_key_takes_in_its_deposed_object_and_the_moves_off_it(
        deposed: tuple[ProjectDir, dict[str, Any], dict[str, Any]]) -> None:
    project, old, new = deposed
    gone = f'encryption_keys["Archive key (deposed {old["id"]})"]'
    whole = project.run("plan", "--env", "dev", "--format", "json")
    assert whole.exit_code == 0, whole.output
    every = {c["address"]: c["action"] for c in json.loads(whole.stdout)["plans"][0]["changes"]}
    assert every == {gone: "delete", 'backup_repositories["Repo EU"].encryptionKey': "update"}, every
    planfile = project.root / "whole.json"
    assert project.run("plan", "--env", "dev", "--out", str(planfile)).exit_code == 0
    for fmt in ("table", "markdown", "html"):  # the key has no readable field: its row names it by its id
        view = project.run("show", "--format", fmt, str(planfile)).stdout
        assert f"(no readable fields; id {old['id']})" in view, (fmt, view)
    for target in (KEY, "Archive key"):
        planned = project.run("plan", "--env", "dev", "--format", "json", "--target", target)
        assert planned.exit_code == 0, planned.output
        rows = {c["address"]: c["action"] for c in json.loads(planned.stdout)["plans"][0]["changes"]}
        assert rows == every, (target, rows)
    planfile = project.root / "targeted.json"
    assert project.run("plan", "--env", "dev", "--target", KEY, "--out", str(planfile)).exit_code == 0
    applied = project.run("apply", str(planfile))
    assert applied.exit_code == 0, applied.output
    assert [k["id"] for k in _keys(project)] == [new["id"]]
    assert project.run("plan", "--env", "dev", "--detailed-exitcode").exit_code == 0


def test_import_of_a_server_holding_a_deposed_key_writes_the_current_one(
        deposed: tuple[ProjectDir, dict[str, Any], dict[str, Any]]) -> None:
    project, old, new = deposed
    imported = project.run("import", "--env", "dev", "--resource", "encryption_keys", "--dry-run")
    assert imported.exit_code == 0, imported.output
    text = imported.stdout
    assert "Archive key" in text and "deposed" not in text, text
    assert old["id"] not in text and new["id"] not in text, text


def test_a_delete_the_server_refuses_as_in_use_says_why(rotated: ProjectDir, tmp_path: Path) -> None:
    """A key deleted by a plan made while nothing used it, which a repository made since uses (of a kind the plan
    did not read: no template declares repositories any more): the server answers 409, and the apply's one error
    names the change and says what that means."""
    project = rotated
    project.write("templates/repos.yaml.j2", "encryption_keys:\n  Spare: {password: spare-1}\n")
    listed = project.api("dev").get("/v8/BackupRepositories").json()["results"]
    for repo in listed:
        assert project.api("dev").delete(f"/v8/BackupRepositories/{repo['id']}").status_code < 300
    planfile = tmp_path / "plan.json"
    planned = project.run("plan", "--env", "dev", "--out", str(planfile), "--format", "json")
    assert planned.exit_code == 0, planned.output
    [gone] = [c for c in json.loads(planned.stdout)["plans"][0]["changes"] if c["action"] == "delete"]
    [key] = [k for k in _keys(project) if k["description"] == "Archive key"]
    repo = {**listed[0], "encryptionKeyId": key["id"]}
    repo.pop("id")
    made = project.api("dev").post("/v8/BackupRepositories", json=repo)
    assert made.status_code < 300, made.text
    applied = project.run("apply", str(planfile))
    assert_one_clean_error(applied, gone["id"], "409", "came to use it since the plan")
    assert key["id"] in {k["id"] for k in _keys(project)}
