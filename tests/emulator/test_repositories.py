"""Backup repositories and their object storage as the emulator serves them (v6-v8), every request and answer
validated against Veeam's document of its version (helpers.py): v8 embeds the object storage (its id assigned by
the server and kept across a PUT), v6/v7 keep it in /objectstoragerepositories (absent from v8); references checked
(400, nested ones too), objects in use not removable (409), a PUT changing a fixed field refused (400), a folder
unique per proxy (400), v8 pages, no secret in any answer."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from vboplan.emulator import Store

from .helpers import Api, seed_data

UNKNOWN = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
BUCKET = {"name": "vb365-archive", "regionType": "Global", "regionId": "eu-west-1"}


@pytest.fixture
def store() -> Store:
    return Store.from_data({**seed_data(), "proxies": [{"hostName": "proxy01.contoso.local", "port": 9193}]})


def _listed(api: Api, path: str) -> list[dict[str, Any]]:
    body = api.get(path).json()
    return body["results"] if isinstance(body, dict) else body


def _made(response: httpx.Response, version: str) -> dict[str, Any]:
    assert response.status_code == (201 if version == "v8" else 200), response.text
    return response.json()


@pytest.mark.parametrize("version", ["v6", "v7", "v8"])
def test_repositories_and_object_storage(client: httpx.Client, version: str) -> None:
    api = Api(client, version).login()
    proxy = _listed(api, "/Proxies")[0]["id"]
    account = api.post("/Accounts", json={"accountType": "amazonS3Account", "userName": "akiaexample01",
                                          "password": "emulator-secret-key"})
    assert account.status_code == 201 and "password" not in account.json()
    key = _made(api.post("/EncryptionKeys", json={"description": "Archive key", "password": "key-pw-emulator"}),
                version)
    storage = {"type": "AmazonS3", "accountId": account.json()["id"], "amazonBucketS3Aws": BUCKET, "s3Folder": "eu"}
    repository = {"name": "Archive S3", "proxyId": proxy, "retentionType": "SnapshotBased",
                  "objectStorageEncryptionEnabled": True, "encryptionKeyId": key["id"]}
    if version == "v8":
        refused = api.post("/BackupRepositories", json={**repository, "objectStorage": {**storage, "accountId": UNKNOWN}})
        assert refused.status_code == 400 and UNKNOWN in refused.json()["message"]
        made = _made(api.post("/BackupRepositories", json={**repository, "objectStorage": storage}), version)
        storage_id = made["objectStorage"]["id"]
        assert storage_id and made["objectStorage"]["accountId"] == account.json()["id"]
        assert api.get("/objectstoragerepositories", lenient=True).status_code == 404
        moved = api.put(f"/BackupRepositories/{made['id']}", json={
            "name": "Archive S3", "retentionType": "SnapshotBased", "objectStorage": {**storage, "s3Folder": "us"}})
        assert moved.status_code == 400 and "s3Folder" in moved.json()["message"]
        grown = api.put(f"/BackupRepositories/{made['id']}", json={
            "name": "Archive S3", "retentionType": "SnapshotBased", "objectStorage": {**storage, "sizeLimitGB": 10}})
        assert grown.status_code == 204
        assert api.get(f"/BackupRepositories/{made['id']}").json()["objectStorage"]["id"] == storage_id
    else:
        assert api.post("/objectstoragerepositories", json={**storage, "name": "S", "accountId": UNKNOWN}
                        ).status_code == 400
        kept = _made(api.post("/objectstoragerepositories", json={**storage, "name": "Archive S3"}), version)
        assert api.post("/BackupRepositories", json={**repository, "objectStorageId": UNKNOWN}).status_code == 400
        made = _made(api.post("/BackupRepositories", json={**repository, "objectStorageId": kept["id"]}), version)
        assert api.delete(f"/objectstoragerepositories/{kept['id']}").status_code == 409
        moved = api.put(f"/objectstoragerepositories/{kept['id']}", json={"name": "Archive S3", "s3Folder": "us"})
        assert moved.status_code == 400 and "s3Folder" in moved.json()["message"]
        assert api.put(f"/objectstoragerepositories/{kept['id']}", json={"name": "Archive S3", "sizeLimitGB": 10}
                       ).status_code == 200
        other = _made(api.post("/objectstoragerepositories", json={**storage, "name": "Other", "s3Folder": "x"}),
                      version)
        relinked = api.put(f"/BackupRepositories/{made['id']}", json={
            "name": "Archive S3", "retentionType": "SnapshotBased", "objectStorageId": other["id"]})
        assert relinked.status_code == 400 and "objectStorageId" in relinked.json()["message"]
    assert api.delete(f"/Accounts/{account.json()['id']}").status_code == 409
    assert api.delete(f"/EncryptionKeys/{key['id']}").status_code == 409

    # A local repository: its folder is unique per proxy and fixed, like its retention type.
    local = _made(api.post("/BackupRepositories", json={"name": "Repo EU", "proxyId": proxy, "path": "D:\\EU",
                                                         "retentionType": "ItemLevel"}), version)
    twin = api.post("/BackupRepositories", json={"name": "Twin", "proxyId": proxy, "path": "d:\\eu\\",
                                                 "retentionType": "ItemLevel"})
    assert twin.status_code == 400 and "Repo EU" in twin.json()["message"]
    assert api.post("/BackupRepositories", json={"name": "No retention", "proxyId": proxy, "path": "D:\\N"},
                    lenient=True).status_code == 400  # not through the document's check: it requires the field
    for fixed in ({"retentionType": "SnapshotBased"}, {"retentionType": "ItemLevel", "path": "E:\\EU"}):
        changed = api.put(f"/BackupRepositories/{local['id']}", json={"name": "Repo EU", **fixed})
        assert changed.status_code == 400, changed.text
    described = api.put(f"/BackupRepositories/{local['id']}", json={"name": "Repo EU", "retentionType": "ItemLevel",
                                                                    "description": "EU"})
    assert described.status_code == (204 if version == "v8" else 200)
    if version == "v8":
        page = api.get("/BackupRepositories", params={"limit": 1, "offset": 1}).json()
        assert (page["offset"], page["limit"], len(page["results"])) == (1, 1, 1) and "next" not in page["_links"]

    # Removed in order: the repository, then what it used.
    assert api.delete(f"/BackupRepositories/{made['id']}").status_code == 204
    if version != "v8":
        assert api.delete(f"/objectstoragerepositories/{kept['id']}").status_code == 204
    assert api.delete(f"/EncryptionKeys/{key['id']}").status_code == 204
    if version != "v8":
        assert api.delete(f"/objectstoragerepositories/{other['id']}").status_code == 204
    assert api.delete(f"/Accounts/{account.json()['id']}").status_code == 204
    for path in ("/Accounts", "/EncryptionKeys"):
        assert all("password" not in item for item in _listed(api, path))
