"""A replace and what refers to the replaced object, against the emulator (v7 and v8): a repository the same plan
creates on a key it replaces, and one it points at that key, are sent after the key's new create, with the new
key's id (``(known after apply)`` until then); the plan converges. The planted passwords are in no output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import SEED, ProjectDir

PASSWORD = "Kx9-replace-order-planted-1"
PROXIES = [{"hostName": "proxy01.contoso.local", "port": 9193, "description": ""}]

KEY = """\
encryption_keys:
  Archive key: {password: {{ secret("ARCHIVE_KEY_PASSWORD") }}}
lifecycle:
  'encryption_keys["Archive key"]': {allow_replace: true}
backup_repositories:
  Repo plain: {proxy: proxy01.contoso.local, path: 'D:\\Plain', retentionType: ItemLevel}
"""

MORE = """\
  Repo new: {proxy: proxy01.contoso.local, path: 'D:\\New', retentionType: ItemLevel, encryptionKey: Archive key}
"""


def _list(project: ProjectDir, version: str, path: str) -> list[dict[str, Any]]:
    body = project.api("dev").get(f"/{version}/{path}").json()
    return body["results"] if isinstance(body, dict) else body


@pytest.mark.parametrize("version", ["v7", "v8"])
def test_objects_referring_to_a_replaced_key_follow_its_create(project: ProjectDir, version: str, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    for path in (project.root / "templates").glob("*"):
        path.unlink()
    project.write("vboplan.yaml", "templates: [templates/*.yaml.j2]\nenvironments:\n  dev:\n    server: emulator:dev\n"
                  f"    api_version: {version}\n    username: admin\n    password_env: VBO_TEST_PASSWORD\n")
    project.seed("dev", {**SEED, "proxies": PROXIES})
    monkeypatch.setenv("ARCHIVE_KEY_PASSWORD", PASSWORD)
    project.write("templates/repos.yaml.j2", KEY)
    first = project.run("apply", "--env", "dev", "--auto-approve")
    assert first.exit_code == 0, first.output
    [old] = _list(project, version, "EncryptionKeys")

    # A new password replaces the key; in the same plan a new repository uses the key and an existing one is
    # pointed at it. Both wait for the key's new create and carry its new id.
    monkeypatch.setenv("ARCHIVE_KEY_PASSWORD", PASSWORD + "-new")
    project.write("templates/repos.yaml.j2", KEY.replace("retentionType: ItemLevel}",
                                                         "retentionType: ItemLevel, encryptionKey: Archive key}")
                  + MORE)
    planfile = tmp_path / "plan.json"
    planned = project.run("plan", "--env", "dev", "--out", str(planfile))
    assert planned.exit_code == 0, planned.output
    assert "1 to replace" in planned.stdout and "1 to create" in planned.stdout, planned.stdout
    shown = project.run("show", "--requests", "--format", "json", str(planfile))
    requests = json.loads(shown.stdout)["plans"][0]["requests"]
    assert [(r["method"], r["path"].split("/")[2]) for r in requests] == [
        ("DELETE", "EncryptionKeys"), ("POST", "EncryptionKeys"), ("POST", "BackupRepositories"),
        ("PUT", "BackupRepositories")], requests
    assert requests[2]["body"]["encryptionKeyId"] == requests[3]["body"]["encryptionKeyId"] == "(known after apply)"
    applied = project.run("apply", str(planfile))
    assert applied.exit_code == 0, applied.output
    [key] = _list(project, version, "EncryptionKeys")
    assert key["id"] != old["id"]
    assert {r["name"]: r.get("encryptionKeyId") for r in _list(project, version, "BackupRepositories")} == {
        "Repo plain": key["id"], "Repo new": key["id"]}
    again = project.run("plan", "--env", "dev", "--detailed-exitcode")
    assert again.exit_code == 0, again.output
    for text in (planned.output, shown.output, applied.output, again.output):
        assert PASSWORD not in text
