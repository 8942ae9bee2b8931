"""The moves of create_before_destroy are rows: a key two repositories use is rotated, and the PUT moving each
repository onto the new key is a row approvers see in every view (the old key to the new one, its id known after
apply), bound by the plan's digest and carried by its own request in show --requests and in the journal. A plan
file that drops a move row, adds one no replace makes, or edits one is refused; an approval of the replace without
its moves is refused before anything is sent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import SEED, ProjectDir, assert_one_clean_error

from vboplan.planning.plan import plan_digest
from vboplan.state import StateStore, parse_journal

PASSWORD = "Kx9-moves-planted-1"
KEY = 'encryption_keys["Archive key"]'
EU, US = 'backup_repositories["Repo EU"].encryptionKey', 'backup_repositories["Repo US"].encryptionKey'
TEMPLATE = """\
encryption_keys:
  Archive key: {password: {{ secret("ARCHIVE_KEY_PASSWORD") }}}
backup_repositories:
  Repo EU: {proxy: proxy01.contoso.local, path: 'D:\\EU', retentionType: ItemLevel, encryptionKey: Archive key}
  Repo US: {proxy: proxy01.contoso.local, path: 'D:\\US', retentionType: ItemLevel, encryptionKey: Archive key}
lifecycle:
  'encryption_keys["Archive key"]': {allow_replace: true, create_before_destroy: true}
"""


@pytest.fixture
def rotated(project: ProjectDir, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[ProjectDir, Path]:
    """A project whose key is in use by two repositories, and a saved plan that rotates it (one approval needed)."""
    for path in (project.root / "templates").glob("*"):
        path.unlink()
    project.write("vboplan.yaml", "templates: [templates/*.yaml.j2]\nenvironments:\n  dev:\n    server: emulator:dev\n"
                  "    username: admin\n    password_env: VBO_TEST_PASSWORD\n"
                  "    approvals: {required: 1, allowed_signers: approvers/prod.allowed_signers}\n")
    project.seed("dev", {**SEED, "proxies": [{"hostName": "proxy01.contoso.local", "port": 9193, "description": ""}]})
    monkeypatch.setenv("ARCHIVE_KEY_PASSWORD", PASSWORD)
    project.write("templates/repos.yaml.j2", TEMPLATE)
    first = tmp_path / "first.json"
    assert project.run("plan", "--env", "dev", "--out", str(first)).exit_code == 0
    assert project.run("approve", str(first), "--key", str(project.keys["alice"])).exit_code == 0
    assert project.run("apply", str(first)).exit_code == 0
    monkeypatch.setenv("ARCHIVE_KEY_PASSWORD", PASSWORD + "-new")
    planfile = tmp_path / "rotate.json"
    planned = project.run("plan", "--env", "dev", "--out", str(planfile))
    assert planned.exit_code == 0, planned.output
    return project, planfile


def _rows(planfile: Path) -> dict[str, dict[str, Any]]:
    return {c["address"]: c for c in json.loads(planfile.read_text(encoding="utf-8"))["changes"]}


def _resealed(planfile: Path, tmp_path: Path, edit: Any) -> Path:
    forged = json.loads(planfile.read_text(encoding="utf-8"))
    edit(forged)
    forged.update(author_signature=None, author_key=None, approvals=[])
    forged["checksum"] = plan_digest(forged)
    path = tmp_path / "forged.json"
    path.write_text(json.dumps(forged), encoding="utf-8")
    return path


def test_each_move_is_a_row_in_every_view_and_its_own_request(rotated: tuple[ProjectDir, Path]) -> None:
    project, planfile = rotated
    rows = _rows(planfile)
    assert {a: r["action"] for a, r in rows.items()} == {KEY: "replace", f"{KEY}.password": "update",
                                                          EU: "update", US: "update"}
    for address in (EU, US):
        assert (rows[address]["before"], rows[address]["after"]) == (KEY, KEY)
        assert rows[address]["detail"]["moves_to"] == KEY
    table = project.run("show", str(planfile)).stdout
    moved = f'{KEY} (the old one)'
    for address in (EU, US):
        line = next(line for line in table.splitlines() if address in line)
        assert moved in line and "(the new one, id known after apply)" in line, line
    assert "1 to replace" in table and "3 to update" in table, table
    for fmt in ("markdown", "html"):
        view = project.run("show", "--format", fmt, str(planfile)).stdout
        assert EU.replace('"', "&quot;") in view or EU in view, (fmt, view)
        assert "the new one, id known after apply" in view, (fmt, view)
    shown = json.loads(project.run("show", "--format", "json", str(planfile)).stdout)["plans"][0]["changes"]
    assert {c["address"]: c["detail"].get("moves_to") for c in shown if c["address"] in (EU, US)} == {EU: KEY, US: KEY}
    requests = json.loads(project.run("show", "--requests", "--format", "json", str(planfile)).stdout)["plans"][0][
        "requests"]
    # Each moving PUT carries its row's change id (and the journal records it so).
    assert [(r["method"], r["changes"]) for r in requests] == [
        ("POST", [rows[KEY]["id"], rows[f"{KEY}.password"]["id"]]), ("PUT", [rows[EU]["id"]]),
        ("PUT", [rows[US]["id"]]), ("DELETE", [rows[KEY]["id"]])], requests

    assert project.run("approve", str(planfile), "--key", str(project.keys["alice"])).exit_code == 0
    journals: list[str] = []
    real_append = StateStore.append_journal
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(StateStore, "append_journal", lambda store, added, whole: (journals.append(whole),
                                                                                   real_append(store, added, whole))[1])
        applied = project.run("apply", str(planfile))
    assert applied.exit_code == 0, applied.output
    assert project.run("plan", "--env", "dev", "--detailed-exitcode").exit_code == 0
    # The journal (removed once the snapshot holds it) said each move by its row, and which key the server created.
    writes = parse_journal(journals[-1])["writes"]
    assert [[c["id"] for c in w["changes"]] for w in writes] == [r["changes"] for r in requests]
    [new] = [k["id"] for k in project.api("dev").get("/v8/EncryptionKeys").json()]
    assert writes[0]["assigned"] == {KEY: new} and writes[-1]["changes"][0]["detail"]["id"] != new
    last = json.loads((project.root / ".vboplan/state/dev.json").read_text())["last_apply"]
    assert {c["address"] for c in last["applied"]} >= {EU, US}


def test_a_plan_file_that_drops_adds_or_edits_a_move_row_is_refused(rotated: tuple[ProjectDir, Path],
                                                                     tmp_path: Path) -> None:
    project, planfile = rotated
    eu = _rows(planfile)[EU]["id"]

    def dropped(plan: dict[str, Any]) -> None:
        plan["changes"] = [c for c in plan["changes"] if c["address"] != EU]
        plan["summary"]["update"] -= 1

    assert_one_clean_error(project.run("apply", str(_resealed(planfile, tmp_path, dropped))), EU, "has no row for "
                           "that move")

    def edited(plan: dict[str, Any]) -> None:
        row = next(c for c in plan["changes"] if c["address"] == EU)
        row["before"] = 'encryption_keys["Other key"]'

    assert_one_clean_error(project.run("apply", str(_resealed(planfile, tmp_path, edited))), eu, "live value")

    def stray(plan: dict[str, Any]) -> None:
        plan["changes"] = [c for c in plan["changes"] if c["action"] == "update" and "moves_to" in c["detail"]]
        plan["summary"].update(replace=0, update=2)

    assert_one_clean_error(project.run("apply", str(_resealed(planfile, tmp_path, stray))), "no replace of this "
                           "plan moves this object")


def test_an_approval_of_the_replace_without_its_moves_sends_nothing(rotated: tuple[ProjectDir, Path]) -> None:
    project, planfile = rotated
    rows = _rows(planfile)
    keys_before = project.api("dev").get("/v8/EncryptionKeys").json()
    partial = [rows[KEY]["id"], rows[f"{KEY}.password"]["id"], rows[EU]["id"]]
    args = [a for i in partial for a in ("--change", i)]
    assert project.run("approve", str(planfile), "--key", str(project.keys["alice"]), *args).exit_code == 0
    refused = project.run("apply", str(planfile))
    assert_one_clean_error(refused, rows[KEY]["id"], US, "is not part of this apply")
    assert project.api("dev").get("/v8/EncryptionKeys").json() == keys_before  # nothing was sent
