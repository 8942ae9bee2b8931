"""Encryption keys and backup repositories (v6-v8) against the emulator, one project per version shared by the
steps: one plan creates a key and a repository that uses it (the key's id, assigned by the server, filled in
during the apply); --target of the repository takes the key in; converge; an
update; a fixed field (retentionType) and a key's new password plan a replace (-/+), refused unless lifecycle allows
it and while something uses the object, then DELETE and POST in dependency order; a key in use is neither deleted by
a plan nor by the server (409); prevent_destroy; deletes in reverse order. The planted password is in no output or
file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import SEED, ProjectDir, assert_one_clean_error

from vboplan.planning.plan import plan_digest

KEY_PASSWORD = "Kx9-archive-key-planted-1"
PROXIES = [{"hostName": "proxy01.contoso.local", "port": 9193, "description": ""}]

TEMPLATE = """\
encryption_keys:
  Archive key 2026: {password: {{ secret("ARCHIVE_KEY_PASSWORD") }}}
backup_repositories:
  Repo EU:
    proxy: proxy01.contoso.local
    path: 'D:\\Backups\\EU'
    description: DESCRIPTION
    retentionType: RETENTION
    retentionPeriodType: Yearly
    yearlyRetentionPeriod: Years3
    encryptionKey: Archive key 2026
"""


def _config(version: str) -> str:
    return (f"templates: [templates/*.yaml.j2]\nenvironments:\n  dev:\n    server: emulator:dev\n"
            f"    api_version: {version}\n    username: admin\n    password_env: VBO_TEST_PASSWORD\n")


def _template(description: str = "EU", retention: str = "ItemLevel") -> str:
    return TEMPLATE.replace("DESCRIPTION", description).replace("RETENTION", retention)


def _rows(result: Any) -> dict[str, tuple[str, Any, Any]]:
    assert result.exit_code in (0, 2), result.output
    return {c["address"]: (c["action"], c["before"], c["after"]) for c in json.loads(result.stdout)["plans"][0]["changes"]}


def _list(project: ProjectDir, version: str, path: str) -> list[dict[str, Any]]:
    body = project.api("dev").get(f"/{version}/{path}").json()
    return body["results"] if isinstance(body, dict) else body


@pytest.mark.parametrize("version", ["v6", "v7", "v8"])
def test_keys_and_repositories(project: ProjectDir, version: str, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    for path in (project.root / "templates").glob("*"):
        path.unlink()
    project.write("vboplan.yaml", _config(version))
    project.seed("dev", {**SEED, "proxies": PROXIES})
    monkeypatch.setenv("ARCHIVE_KEY_PASSWORD", KEY_PASSWORD)
    project.write("templates/repos.yaml.j2", _template())
    outputs: list[str] = []

    # --target of the repository takes in the key it refers to.
    planfile = tmp_path / "plan.json"
    planned = project.run("plan", "--env", "dev", "--format", "json", "--out", str(planfile),
                          "--target", 'backup_repositories["Repo EU"]')
    assert _rows(planned) == {
        'encryption_keys["Archive key 2026"]': ("create", None, {}),
        'encryption_keys["Archive key 2026"].password': ("update", None, None),
        'backup_repositories["Repo EU"]': ("create", None, {
            "description": "EU", "encryptionKey": 'encryption_keys["Archive key 2026"]', "path": "D:\\Backups\\EU",
            "proxy": 'backup_proxies["proxy01.contoso.local"]', "retentionPeriodType": "Yearly",
            "retentionType": "ItemLevel", "yearlyRetentionPeriod": "Years3"})}
    shown = project.run("show", "--requests", str(planfile))
    assert shown.exit_code == 0, shown.output
    assert "(known after apply)" in shown.stdout and "(sensitive)" in shown.stdout, shown.stdout
    applied = project.run("apply", str(planfile))
    assert applied.exit_code == 0, applied.output
    outputs += [planned.output, shown.output, applied.output]
    keys, repos = _list(project, version, "EncryptionKeys"), _list(project, version, "BackupRepositories")
    assert [k["description"] for k in keys] == ["Archive key 2026"] and "password" not in keys[0]
    assert [(r["name"], r["encryptionKeyId"]) for r in repos] == [("Repo EU", keys[0]["id"])]
    assert project.run("plan", "--env", "dev", "--detailed-exitcode").exit_code == 0

    # The server refuses to remove a key in use; so does a plan.
    assert project.api("dev").delete(f"/{version}/EncryptionKeys/{keys[0]['id']}").status_code == 409
    project.write("templates/repos.yaml.j2", "encryption_keys: {}\nbackup_repositories:"
                  + _template().split("backup_repositories:")[1])
    assert_one_clean_error(project.run("plan", "--env", "dev"), 'encryption_keys["Archive key 2026"] cannot be '
                           'deleted', 'backup_repositories["Repo EU"] uses it')

    # A proxy pool holds repositories in v8 only.
    on_pool = _template() + "  Repo pool: {proxyPool: EU pool, path: 'D:\\\\P', retentionType: ItemLevel}\n"
    if version == "v8":
        project.write("templates/repos.yaml.j2", on_pool + "proxy_pools:\n  EU pool: {description: EU, "
                      "proxies: [proxy01.contoso.local]}\n")
        assert project.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
        pool = _list(project, version, "ProxyPools")[0]
        assert {r["name"]: r.get("proxyPoolId") for r in _list(project, version, "BackupRepositories")}["Repo pool"] \
            == pool["id"]
        project.write("templates/repos.yaml.j2", _template() + "proxy_pools: {}\n")
        assert project.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
    else:
        project.write("templates/repos.yaml.j2", on_pool)
        assert_one_clean_error(project.run("plan", "--env", "dev"), "templates/repos.yaml.j2:12", "proxyPool is not in")

    # An update in place; a fixed field and a key's new password cannot change in place.
    project.write("templates/repos.yaml.j2", _template("EU mail"))
    assert _rows(project.run("plan", "--env", "dev", "--format", "json")) == {
        'backup_repositories["Repo EU"].description': ("update", "EU", "EU mail")}
    assert project.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
    # A fixed field plans a replace (-/+ with its reason), refused unless the lifecycle allows it.
    replacing = _template("EU mail", "SnapshotBased")
    project.write("templates/repos.yaml.j2", replacing)
    assert_one_clean_error(project.run("plan", "--env", "dev"), "templates/repos.yaml.j2:4", 'backup_repositories["Repo '
                           'EU"]: retentionType cannot change after creation', "allow_replace: true")
    allow = "lifecycle:\n  'backup_repositories[\"Repo EU\"]': {allow_replace: true}\n"
    project.write("templates/repos.yaml.j2", replacing + allow)
    replan = tmp_path / "replace.json"
    planned = project.run("plan", "--env", "dev", "--out", str(replan))
    assert planned.exit_code == 0, planned.output
    assert "-/+ replace" in planned.stdout and "1 to replace" in planned.stdout, planned.stdout
    assert "retentionType cannot change after creation" in planned.stdout, planned.stdout
    shown = project.run("show", "--requests", "--format", "json", str(replan))
    assert [(r["method"], r["path"].split("/")[2]) for r in json.loads(shown.stdout)["plans"][0]["requests"]] == [
        ("DELETE", "BackupRepositories"), ("POST", "BackupRepositories")], shown.stdout
    for fmt in ("markdown", "html"):  # every view says it, with the reason
        view = project.run("show", "--format", fmt, str(replan)).stdout
        assert "-/+ replace" in view and "retentionType cannot change after creation" in view, view
    [row] = json.loads(project.run("show", "--format", "json", str(replan)).stdout)["plans"][0]["changes"]
    assert (row["action"], row["detail"]["reason"]) == ("replace", "retentionType cannot change after creation"), row
    old = _list(project, version, "BackupRepositories")[0]
    assert project.run("apply", str(replan)).exit_code == 0
    [new] = _list(project, version, "BackupRepositories")
    assert new["id"] != old["id"] and (new["retentionType"], new["encryptionKeyId"]) == ("SnapshotBased",
                                                                                       keys[0]["id"]), new
    assert project.run("plan", "--env", "dev", "--detailed-exitcode").exit_code == 0

    # A key's new password means a new key (no PUT): refused while a repository keeps using the old one; allowed
    # when the repository is replaced too: its DELETE first, then the key's, then the new key, then the repository
    # with the new key's id.
    monkeypatch.setenv("ARCHIVE_KEY_PASSWORD", KEY_PASSWORD + "-new")
    both = allow + "  'encryption_keys[\"Archive key 2026\"]': {allow_replace: true}\n"
    project.write("templates/repos.yaml.j2", replacing + both)
    assert_one_clean_error(project.run("plan", "--env", "dev"), 'encryption_keys["Archive key 2026"]: encryption_keys '
                           "cannot be updated", 'backup_repositories["Repo EU"] (encryptionKey) uses it')
    project.write("templates/repos.yaml.j2", _template("EU mail") + both)
    assert_one_clean_error(project.run("plan", "--env", "dev", "--target", 'encryption_keys["Archive key 2026"].password'),
                           'only part of the replace of encryption_keys["Archive key 2026"]', "as a whole")
    shown = project.run("plan", "--env", "dev", "--out", str(replan))
    assert shown.exit_code == 0 and "2 to replace" in shown.stdout, shown.output
    requests = json.loads(project.run("show", "--requests", "--format", "json", str(replan)).stdout)["plans"][0]["requests"]
    assert [(r["method"], r["path"].split("/")[2]) for r in requests] == [
        ("DELETE", "BackupRepositories"), ("DELETE", "EncryptionKeys"), ("POST", "EncryptionKeys"),
        ("POST", "BackupRepositories")], requests
    assert requests[-1]["body"]["encryptionKeyId"] == "(known after apply)", requests
    # The key's replace without its new password (the row cut out of the file, the file resealed) would delete the
    # key and fail to create it: refused before anything is sent.
    forged = json.loads(replan.read_text())
    forged["changes"] = [c for c in forged["changes"] if not c["address"].endswith(".password")]
    forged.update(author_signature=None, author_key=None)
    forged["checksum"] = plan_digest(forged)
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    assert_one_clean_error(project.run("apply", str(tmp_path / "forged.json")), 'encryption_keys["Archive key 2026"]: '
                           "the replace carries no new password")
    assert len(_list(project, version, "EncryptionKeys")) == 1
    assert project.run("apply", str(replan)).exit_code == 0
    [key] = _list(project, version, "EncryptionKeys")
    [repo] = _list(project, version, "BackupRepositories")
    assert key["id"] != keys[0]["id"] and repo["encryptionKeyId"] == key["id"], (key, repo)
    assert project.run("plan", "--env", "dev", "--detailed-exitcode").exit_code == 0
    outputs += [shown.output, planned.output]

    # prevent_destroy refuses a replace as it refuses a delete.
    project.write("templates/repos.yaml.j2", replacing + "lifecycle:\n  'backup_repositories[\"Repo EU\"]': "
                  "{allow_replace: true, prevent_destroy: true}\n")
    assert_one_clean_error(project.run("plan", "--env", "dev"), 'backup_repositories["Repo EU"]: retentionType',
                           "prevent_destroy: true")

    # prevent_destroy protects the repository; without it, the repository goes first, then the key.
    project.write("templates/repos.yaml.j2", "encryption_keys: {}\nbackup_repositories: {}\nlifecycle:\n"
                  "  'backup_repositories[\"Repo EU\"]': {prevent_destroy: true}\n")
    assert_one_clean_error(project.run("apply", "--env", "dev", "--auto-approve"), 'backup_repositories["Repo EU"]',
                           "prevent_destroy: true")
    assert len(_list(project, version, "BackupRepositories")) == 1
    project.write("templates/repos.yaml.j2", "encryption_keys: {}\nbackup_repositories: {}\n")
    deleted = project.run("apply", "--env", "dev", "--auto-approve")
    assert deleted.exit_code == 0, deleted.output
    applied_lines = deleted.output.split("Plan:")[1]
    assert applied_lines.index("backup_repositories") < applied_lines.index("encryption_keys"), deleted.output
    assert _list(project, version, "BackupRepositories") == [] and _list(project, version, "EncryptionKeys") == []
    for text in outputs:
        assert KEY_PASSWORD not in text
    for path in project.root.rglob("*"):
        if path.is_file():
            assert KEY_PASSWORD.encode() not in path.read_bytes(), path
