"""Object-storage repositories against the emulator over real HTTP, one project per API version shared by the
steps: one plan creates a cloud account, an encryption key, a local repository and an object-storage repository
(the account and key by name, their ids known after apply) in dependency order; converge; import round trip; a raw
id is refused naming the field to write; encryption without a key is refused; an update in place of the object
storage; a change of the object-storage target is a replace, refused unless lifecycle allows it; the server's own
rules (400 for a changed fixed field or a folder taken on a proxy, 409 for an account in use); deletes in reverse
order. No planted secret in any output or file. On v6/v7 the same template's object storage is an object of
/objectstoragerepositories: created before the repository (one left by an apply cut short is taken up), edited
with its own PUT, removed after it."""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import API_SECRET, SEED, ProjectDir, assert_one_clean_error, reseal

from vboplan.emulator import start

S3_SECRET = "s3-secret-planted-objstore"
KEY_PASSWORD = "key-password-planted-objstore"
PROXIES = [{"hostName": "proxy01.contoso.local", "port": 9193, "description": ""}]

ACCOUNTS_AND_KEYS = """\
cloud_accounts:
  akiaexample01: {accountType: amazonS3Account, description: S3 archive, password: {{ secret("S3_SECRET_KEY") }}}
encryption_keys:
  Archive key 2026: {password: {{ secret("ARCHIVE_KEY_PASSWORD") }}}
"""

REPOSITORIES = """\
backup_repositories:
  Repo EU: {proxy: proxy01.contoso.local, path: 'D:\\Backups\\EU', retentionType: ItemLevel}
  Archive S3:
    proxy: proxy01.contoso.local
    retentionType: SnapshotBased
    objectStorageEncryptionEnabled: true
    encryptionKey: Archive key 2026
    objectStorage:
      ACCOUNT
      type: AmazonS3
      amazonBucketS3Aws: {name: vb365-archive, regionType: Global, regionId: eu-west-1}
      s3Folder: FOLDER
      sizeLimitEnabled: true
      sizeLimitGB: SIZE
"""


def _repositories(account: str = "account: akiaexample01", folder: str = "eu", size: int = 1024) -> str:
    return REPOSITORIES.replace("ACCOUNT", account).replace("FOLDER", folder).replace("SIZE", str(size))


def _rows(result: Any) -> dict[str, tuple[str, Any, Any]]:
    assert result.exit_code in (0, 2), result.output
    return {c["address"]: (c["action"], c["before"], c["after"])
            for c in json.loads(result.stdout)["plans"][0]["changes"]}


def _listed(http: httpx.Client, version: str, path: str) -> list[dict[str, Any]]:
    body = http.get(f"/{version}/{path}").json()
    return body["results"] if isinstance(body, dict) else body


def _object_storage(http: httpx.Client, version: str, repository: dict[str, Any]) -> dict[str, Any]:
    """A repository's object storage as the server holds it: embedded in v8, its own object in v6/v7."""
    if version == "v8":
        return repository["objectStorage"]
    return http.get(f"/{version}/objectstoragerepositories/{repository['objectStorageId']}").json()


@pytest.mark.parametrize("version", ["v6", "v7", "v8"])
def test_object_storage_repositories(project: ProjectDir, version: str, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3_SECRET_KEY", S3_SECRET)
    monkeypatch.setenv("ARCHIVE_KEY_PASSWORD", KEY_PASSWORD)
    for path in (project.root / "templates").glob("*"):
        path.unlink()
    outputs: list[str] = []
    with start({**SEED, "proxies": PROXIES}, tls=True) as server:
        project.write("vboplan.yaml", f"templates: [templates/*.yaml.j2]\nenvironments:\n  dev:\n    server: "
                      f"{server.url}\n    api_version: {version}\n    username: admin\n"
                      f"    password_env: VBO_TEST_PASSWORD\n    verify: '{server.ca_path}'\n")
        http = httpx.Client(base_url=server.url, verify=ssl.create_default_context(cafile=server.ca_path))
        token = http.post("/v8/token", data={"grant_type": "password", "username": "admin",
                                             "password": API_SECRET}).json()["access_token"]
        http.headers["Authorization"] = f"Bearer {token}"
        project.write("templates/accounts.yaml.j2", ACCOUNTS_AND_KEYS)
        project.write("templates/repos.yaml.j2", _repositories())

        if version != "v8":  # what an apply cut short between the object storage's POST and the repository's leaves
            left = http.post(f"/{version}/objectstoragerepositories", json={
                "name": "Archive S3", "type": "AmazonS3", "s3Folder": "eu",
                "amazonBucketS3Aws": {"name": "vb365-archive", "regionType": "Global", "regionId": "eu-west-1"}})
            assert left.status_code == 200, left.text

        # --target of the object-storage repository takes in its account (a nested reference) and its key.
        targeted = _rows(project.run("plan", "--env", "dev", "--format", "json", "--target",
                                     'backup_repositories["Archive S3"]'))
        assert {a for a, r in targeted.items() if r[0] == "create"} == {
            'cloud_accounts["akiaexample01"]', 'encryption_keys["Archive key 2026"]',
            'backup_repositories["Archive S3"]'}, targeted

        # One plan creates all four; the repository's account and key are known after apply.
        planfile = tmp_path / "plan.json"
        planned = project.run("plan", "--env", "dev", "--format", "json", "--out", str(planfile))
        rows = _rows(planned)
        assert rows['backup_repositories["Archive S3"]'] == ("create", None, {
            "encryptionKey": 'encryption_keys["Archive key 2026"]', "objectStorageEncryptionEnabled": True,
            "proxy": 'backup_proxies["proxy01.contoso.local"]', "retentionType": "SnapshotBased",
            "objectStorage": {"account": 'cloud_accounts["akiaexample01"]', "type": "AmazonS3",
                              "amazonBucketS3Aws": {"name": "vb365-archive", "regionType": "Global",
                                                    "regionId": "eu-west-1"},
                              "s3Folder": "eu", "sizeLimitEnabled": True, "sizeLimitGB": 1024}})
        assert {a for a, r in rows.items() if r[0] == "create"} == {
            'cloud_accounts["akiaexample01"]', 'encryption_keys["Archive key 2026"]', 'backup_repositories["Repo EU"]',
            'backup_repositories["Archive S3"]'}
        shown = project.run("show", "--requests", str(planfile))
        assert shown.exit_code == 0, shown.output
        archive = shown.stdout[shown.stdout.index('"name": "Archive S3"') - 600:]
        assert '"accountId": "(known after apply)"' in archive and '"encryptionKeyId": "(known after apply)"' \
            in shown.stdout, shown.stdout
        outputs += [planned.output, shown.output]
        # A hostile author's edit: the row sends a raw account id of its choosing; apply derives it and refuses.
        hostile = json.loads(planfile.read_text())
        row = next(c for c in hostile["changes"] if c["address"] == 'backup_repositories["Archive S3"]')
        row["after"]["objectStorage"]["accountId"] = row["after"]["objectStorage"].pop("account")
        edited = tmp_path / "hostile.json"
        reseal(edited, hostile, project.keys["ann"])
        refused = project.run("apply", str(edited))
        assert refused.exit_code == 1 and "objectStorage must name account, not hold accountId" in refused.output, \
            refused.output
        assert _listed(http, version, "BackupRepositories") == []
        applied = project.run("apply", str(planfile))
        assert applied.exit_code == 0, applied.output
        outputs.append(applied.output)
        order = applied.output.split("Plan:")[-1]
        assert order.index("cloud_accounts") < order.index('backup_repositories["Archive S3"]'), applied.output
        account = _listed(http, version, "Accounts")[0]
        key = _listed(http, version, "EncryptionKeys")[0]
        repos = {r["name"]: r for r in _listed(http, version, "BackupRepositories")}
        assert set(repos) == {"Repo EU", "Archive S3"}
        assert repos["Archive S3"]["encryptionKeyId"] == key["id"]
        storage = _object_storage(http, version, repos["Archive S3"])
        assert storage["accountId"] == account["id"] and storage["s3Folder"] == "eu"
        if version != "v8":  # the one left behind was taken up, not doubled
            assert [s["id"] for s in _listed(http, version, "objectstoragerepositories")] == [left.json()["id"]]
        converged = project.run("plan", "--env", "dev", "--detailed-exitcode")
        assert converged.exit_code == 0, converged.output

        _import_round_trip(project, version, server.url, str(server.ca_path), monkeypatch,
                           [account["id"], key["id"], repos["Archive S3"]["id"], local_proxy := repos["Repo EU"]["proxyId"]])
        assert local_proxy

        # A raw id is refused with the field to write instead; so is encryption without a key.
        project.write("templates/repos.yaml.j2", _repositories(f"accountId: {account['id']}"))
        assert_one_clean_error(project.run("plan", "--env", "dev"), "templates/repos.yaml.j2:",
                               "objectStorage.accountId", "write account: NAME")
        project.write("templates/repos.yaml.j2", _repositories().replace("    encryptionKey: Archive key 2026\n", ""))
        assert_one_clean_error(project.run("validate", "--env", "dev"), "templates/repos.yaml.j2:",
                               'backup_repositories["Archive S3"]', "no encryptionKey")
        project.write("templates/repos.yaml.j2", _repositories() + "  Repo twin: {proxy: proxy01.contoso.local, "
                      "path: 'd:\\backups\\eu\\', retentionType: ItemLevel}\n")
        assert_one_clean_error(project.run("validate", "--env", "dev"), "templates/repos.yaml.j2:15",
                               'backup_repositories["Repo twin"] has the same proxy and path as '
                               'backup_repositories["Repo EU"]')

        # The size limit changes in place; the folder (the object-storage target) plans a replace. On v6/v7 the
        # object storage keeps the name it has (one made in the console may have its own).
        if version != "v8":
            assert http.put(f"/{version}/objectstoragerepositories/{storage['id']}",
                            json={"name": "Console name"}).status_code == 200
        project.write("templates/repos.yaml.j2", _repositories(size=2048))
        rows = _rows(project.run("plan", "--env", "dev", "--format", "json"))
        assert list(rows) == ['backup_repositories["Archive S3"].objectStorage'], rows
        assert rows['backup_repositories["Archive S3"].objectStorage'][2]["sizeLimitGB"] == 2048
        assert project.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
        storage = _object_storage(http, version, {r["name"]: r for r in _listed(
            http, version, "BackupRepositories")}["Archive S3"])
        assert storage["sizeLimitGB"] == 2048 and storage.get("name", "Console name") == "Console name"
        assert project.run("plan", "--env", "dev", "--detailed-exitcode").exit_code == 0
        project.write("templates/repos.yaml.j2", _repositories(folder="us", size=2048))
        assert_one_clean_error(project.run("plan", "--env", "dev"), 'backup_repositories["Archive S3"]: '
                               "objectStorage.s3Folder cannot change after creation", "allow_replace: true")
        project.write("templates/repos.yaml.j2", _repositories(folder="us", size=2048) + "lifecycle:\n"
                      "  'backup_repositories[\"Archive S3\"]': {allow_replace: true}\n")
        rows = _rows(project.run("plan", "--env", "dev", "--format", "json"))
        assert [(a, r[0]) for a, r in rows.items()] == [('backup_repositories["Archive S3"]', "replace")], rows
        replaced = project.run("apply", "--env", "dev", "--auto-approve")
        assert replaced.exit_code == 0, replaced.output
        repos = {r["name"]: r for r in _listed(http, version, "BackupRepositories")}
        storage = _object_storage(http, version, repos["Archive S3"])
        assert (storage["s3Folder"], storage["accountId"], repos["Archive S3"]["encryptionKeyId"]) == (
            "us", account["id"], key["id"])
        if version != "v8":  # the old object storage went with the old repository
            assert [s["id"] for s in _listed(http, version, "objectstoragerepositories")] == [storage["id"]]
        assert project.run("plan", "--env", "dev", "--detailed-exitcode").exit_code == 0

        # The server's own rules: a fixed field's PUT, a folder another repository has on the proxy, an account
        # in use.
        local = repos["Repo EU"]
        moved = http.put(f"/{version}/BackupRepositories/{local['id']}",
                         json={"name": "Repo EU", "retentionType": "ItemLevel", "path": "E:\\Elsewhere"})
        assert moved.status_code == 400 and "path" in moved.json()["message"], moved.text
        twin = http.post(f"/{version}/BackupRepositories", json={
            "name": "Repo twin", "retentionType": "ItemLevel", "proxyId": local["proxyId"], "path": "d:\\backups\\eu\\"})
        assert twin.status_code == 400, twin.text
        assert http.delete(f"/{version}/Accounts/{account['id']}").status_code == 409
        if version != "v8":  # v6/v7: the object storage is its own object, named by id from the repository
            storage_id = repos["Archive S3"]["objectStorageId"]
            assert http.delete(f"/{version}/objectstoragerepositories/{storage_id}").status_code == 409
            retargeted = http.put(f"/{version}/objectstoragerepositories/{storage_id}",
                                  json={"name": "Archive S3", "s3Folder": "elsewhere"})
            assert retargeted.status_code == 400 and "s3Folder" in retargeted.json()["message"], retargeted.text
            project.write("templates/repos.yaml.j2", _repositories(size=2048).replace(
                "    objectStorage:\n", f"    objectStorageId: {storage_id}\n    objectStorage:\n"))
            assert_one_clean_error(project.run("validate", "--env", "dev"), "templates/repos.yaml.j2:",
                                   "write objectStorage: {...}", "instead of objectStorageId")

        # Deletes run in reverse order: repositories, then the key and the account.
        project.write("templates/accounts.yaml.j2", "cloud_accounts: {}\nencryption_keys: {}\n")
        project.write("templates/repos.yaml.j2", "backup_repositories: {}\n")
        deleted = project.run("apply", "--env", "dev", "--auto-approve")
        assert deleted.exit_code == 0, deleted.output
        order = deleted.output.split("Plan:")[-1]
        assert order.index('backup_repositories["Archive S3"]') < order.index("cloud_accounts"), deleted.output
        assert order.index('backup_repositories["Archive S3"]') < order.index("encryption_keys"), deleted.output
        for path in ("BackupRepositories", "Accounts", "EncryptionKeys") + (
                ("objectstoragerepositories",) if version != "v8" else ()):
            assert _listed(http, version, path) == []
        outputs.append(deleted.output)
    for text in outputs:
        assert S3_SECRET not in text and KEY_PASSWORD not in text
    for path in project.root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert S3_SECRET.encode() not in data and KEY_PASSWORD.encode() not in data, path


def _import_round_trip(project: ProjectDir, version: str, url: str, ca: str, monkeypatch: pytest.MonkeyPatch,
                       ids: list[str]) -> None:
    """vboplan import of the accounts, keys and repositories into a new project: names, never ids; the secrets as
    secret() placeholders, one variable each, named in the message; the next plan shows only those secrets, and
    once applied, no changes."""
    imported = ProjectDir(project.root.parent / "imported")
    imported.write("vboplan.yaml", f"templates: [templates/*.yaml.j2]\nenvironments:\n  dev:\n    server: {url}\n"
                   f"    api_version: {version}\n    username: admin\n    password_env: VBO_TEST_PASSWORD\n"
                   f"    verify: '{ca}'\n    var_files: [environments/dev.yaml]\n")
    kinds = ("--resource", "cloud_accounts", "--resource", "encryption_keys", "--resource", "backup_repositories")
    variables = {"CLOUD_ACCOUNTS_AKIAEXAMPLE01_PASSWORD": S3_SECRET,
                 "ENCRYPTION_KEYS_ARCHIVE_KEY_2026_PASSWORD": KEY_PASSWORD}
    for name in variables:
        monkeypatch.delenv(name, raising=False)
    done = imported.run("import", "--env", "dev", *kinds)
    assert done.exit_code == 1, done.output  # the secrets are not set yet: the plan after the import cannot render
    for name in variables:
        assert name in done.stdout, done.output
    written = {path.name: path.read_text() for path in imported.root.rglob("*") if path.is_file()}
    for text in written.values():
        assert not any(i in text for i in ids), text
        assert S3_SECRET not in text and KEY_PASSWORD not in text
    assert "password:\n      secret: CLOUD_ACCOUNTS_AKIAEXAMPLE01_PASSWORD\n" in written["dev.yaml"], written["dev.yaml"]
    assert "account: akiaexample01" in written["dev.yaml"] and "encryptionKey: Archive key 2026" \
        in written["dev.yaml"], written["dev.yaml"]
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    rows = _rows(imported.run("plan", "--env", "dev", "--format", "json"))
    assert rows == {'cloud_accounts["akiaexample01"].password': ("update", None, None)}, rows
    assert imported.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
    assert imported.run("plan", "--env", "dev", "--detailed-exitcode").exit_code == 0
    for path in imported.root.rglob("*"):
        if path.is_file():
            assert S3_SECRET.encode() not in path.read_bytes() and KEY_PASSWORD.encode() not in path.read_bytes()
