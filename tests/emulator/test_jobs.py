"""Backup jobs and copy jobs as the emulator serves them (v6, v7, v8), every request and answer validated against
Veeam's document of its version (helpers.py): creates where each version creates (v8 POST /Jobs 201, v6/v7 under
the organization 200), the repository checked (it must exist, and a repository of another organization is
refused), items only through the item endpoints (never in the job's answer), a principal twice in a list refused,
enable/disable, a job its copy job copies not deletable (409), one copy job per backup job, and no call starting
a job."""

from __future__ import annotations

from typing import Any

import pytest

from vboplan.emulator import Store

from .helpers import Api, seed_data

REPOS = {"Repo EU": {"proxy": "proxy01.contoso.local", "path": "D:\\EU", "retentionType": "ItemLevel"},
         "Archive": {"proxy": "proxy01.contoso.local", "retentionType": "SnapshotBased", "objectStorage": {
                "account": "akiaexample01", "type": "AmazonS3", "s3Folder": "eu",
                "amazonBucketS3Aws": {"name": "vb365-archive", "regionType": "Global", "regionId": "eu-west-1"}}}}


@pytest.fixture
def store() -> Store:
    data = {**seed_data(), "proxies": [{"hostName": "proxy01.contoso.local", "port": 9193}],
            "cloud_accounts": [{"userName": "akiaexample01", "accountType": "amazonS3Account"}],
            "backup_repositories": REPOS}
    return Store.from_data(data)


def _listed(api: Api, path: str) -> list[dict[str, Any]]:
    body = api.get(path).json()
    return body["results"] if api.version == "v8" else body


def _create(api: Api, org_id: str, body: dict[str, Any], lenient: bool = False) -> Any:
    if api.version == "v8":
        return api.post("/Jobs", json={**body, "organizationId": org_id}, lenient=lenient)
    return api.post(f"/Organizations/{org_id}/Jobs", json=body, lenient=lenient)


@pytest.mark.parametrize("job_version", ["v6", "v7", "v8"])
def test_jobs_items_enable_and_copy_jobs(client: Any, job_version: str) -> None:
    api = Api(client, job_version).login()
    org_id = api.org_id()
    repo_id = _listed(api, "/BackupRepositories")[0]["id"]
    ceo, hr = api.user(org_id, "ceo@contoso.com"), api.group(org_id, "HR Department")
    job = {"name": "Mail", "backupType": "SelectedItems", "repositoryId": repo_id, "description": "board",
           "selectedItems": [{"type": "User", "user": ceo, "mailbox": True}],
           "schedulePolicy": {"type": "Daily", "dailyType": "Everyday", "dailyTime": "22:00:00"}}
    made = _create(api, org_id, job)
    assert made.status_code == (201 if api.version == "v8" else 200), made.text
    created = made.json()
    assert created["name"] == "Mail" and created["isEnabled"] is True and created.get("lastRun") is None
    assert "selectedItems" not in created and ("organizationId" in created) == (api.version == "v8")
    job_id = created["id"]
    assert [j["name"] for j in _listed(api, "/Jobs")] == ["Mail"]
    if api.version != "v8":
        assert [j["id"] for j in _listed(api, f"/Organizations/{org_id}/Jobs")] == [job_id]

    # The same name in the organization, an unknown repository: 400.
    assert _create(api, org_id, job, lenient=True).status_code == 400
    unknown = {**job, "name": "Other", "repositoryId": "3f2504e0-4f89-11d3-9a0c-0305e82c3301"}
    assert _create(api, org_id, unknown, lenient=True).status_code == 400

    # Items: listed at their own path; added and removed there; the same principal twice is refused.
    items = _listed(api, f"/Jobs/{job_id}/SelectedItems")
    assert [(i["type"], i["user"]["name"], i["mailbox"]) for i in items] == [("User", "ceo@contoso.com", True)]
    assert api.post(f"/Jobs/{job_id}/SelectedItems", json=[{"type": "Group", "group": hr, "groupSite": True}]
                    ).status_code == 204
    again = api.post(f"/Jobs/{job_id}/SelectedItems", json=[{"type": "User", "user": ceo}], lenient=True)
    assert again.status_code == 400, again.text
    items = _listed(api, f"/Jobs/{job_id}/SelectedItems")
    assert sorted(i["type"] for i in items) == ["Group", "User"]
    group_item = next(i for i in items if i["type"] == "Group")
    assert api.put(f"/Jobs/{job_id}/SelectedItems/{group_item['id']}",
                   json={"type": "Group", "group": hr, "groupSite": False, "members": True}).status_code == 204
    shown = api.get(f"/Jobs/{job_id}/SelectedItems/{group_item['id']}").json()
    assert shown["groupSite"] is False and shown["members"] is True
    # v8 takes the ids as a JSON array body too (its document's request body); v6/v7 only in ?ids=.
    removal = {"json": [group_item["id"]]} if api.version == "v8" else {"params": {"ids": group_item["id"]}}
    assert api.request("DELETE", f"/Jobs/{job_id}/SelectedItems", **removal).status_code == 204
    assert [i["type"] for i in _listed(api, f"/Jobs/{job_id}/SelectedItems")] == ["User"]
    assert api.delete(f"/Jobs/{job_id}/SelectedItems", params={"ids": "nope"}, lenient=True).status_code == 404

    # Enable/disable change isEnabled and nothing else; a PUT keeps the items.
    assert api.post(f"/Jobs/{job_id}/disable").status_code == 204
    assert api.get(f"/Jobs/{job_id}").json()["isEnabled"] is False
    assert api.post(f"/Jobs/{job_id}/enable").status_code == 204
    edited = {k: v for k, v in job.items() if k != "selectedItems"} | {"description": "the board"}
    assert api.put(f"/Jobs/{job_id}", json=edited).status_code == 204
    after = api.get(f"/Jobs/{job_id}").json()
    assert after["description"] == "the board" and after["isEnabled"] is True and after.get("lastRun") is None
    assert len(_listed(api, f"/Jobs/{job_id}/SelectedItems")) == 1

    # A copy job: one per backup job; the job it copies cannot be deleted (409) until the copy job is.
    archive = next(r["id"] for r in _listed(api, "/BackupRepositories") if r["name"] == "Archive")
    plain = {"backupJobId": job_id, "repositoryId": repo_id, **({"organizationId": org_id} if api.version == "v8" else {})}
    assert api.post("/CopyJobs", json=plain, lenient=True).status_code == 400  # not object storage
    copy = {"backupJobId": job_id, "repositoryId": archive,
            "schedulePolicy": {"type": "DailyAtTime", "dailyTime": "03:00:00"}}
    if api.version == "v8":
        copy["organizationId"] = org_id
    made = api.post("/CopyJobs", json=copy)
    assert made.status_code == (201 if api.version == "v8" else 200), made.text
    copy_id = made.json()["id"]
    assert made.json()["name"] == "Mail copy" and made.json()["backupJobId"] == job_id
    assert api.post("/CopyJobs", json=copy, lenient=True).status_code == 400
    assert api.get(f"/Jobs/{job_id}/CopyJob").json()["id"] == copy_id
    assert api.get(f"/CopyJobs/{copy_id}/BackupJob").json()["id"] == job_id
    assert api.post(f"/CopyJobs/{copy_id}/disable").status_code == 204
    assert api.get(f"/CopyJobs/{copy_id}").json()["isEnabled"] is False
    refused = api.delete(f"/Jobs/{job_id}", lenient=True)
    assert refused.status_code == 409 and "copy job" in refused.json()["message"]
    assert api.delete(f"/CopyJobs/{copy_id}").status_code == 204
    assert api.delete(f"/Jobs/{job_id}").status_code == 204
    assert _listed(api, "/Jobs") == []


def test_a_repository_of_another_organization_is_refused_v8(client: Any, store: Store) -> None:
    api = Api(client, "v8").login()
    fabrikam, contoso = api.org_id("fabrikam.onmicrosoft.com"), api.org_id()
    repo = _listed(api, "/BackupRepositories")[0]
    store.collections["backup_repositories"][0]["organizationId"] = fabrikam
    job = {"name": "Mail", "backupType": "EntireOrganization", "repositoryId": repo["id"]}
    refused = _create(api, contoso, job, lenient=True)
    assert refused.status_code == 400 and "cannot be used" in refused.json()["message"], refused.text
    assert _create(api, fabrikam, job).status_code == 201


def test_run_now_is_a_run_that_a_client_would_see(client: Any) -> None:
    # The emulator records a run when asked for one, so the CLI tests' "lastRun stays empty" means something.
    api = Api(client, "v8").login()
    repo = _listed(api, "/BackupRepositories")[0]
    made = _create(api, api.org_id(), {"name": "Run", "backupType": "EntireOrganization",
                                       "repositoryId": repo["id"], "runNow": True})
    assert made.status_code == 201 and made.json()["lastRun"] is not None


def test_jobs_and_items_persist_through_the_data_file(client: Any, store: Store) -> None:
    from vboplan.emulator import Emulator

    from .helpers import wsgi_client

    api = Api(client, "v7").login()
    org_id = api.org_id()
    repo = _listed(api, "/BackupRepositories")[0]
    fabrikam = api.org_id("fabrikam.onmicrosoft.com")
    team = {"type": "Team", "team": api.get(f"/Organizations/{fabrikam}/Teams").json()["results"][0]}
    job = {"name": "Mail", "backupType": "SelectedItems", "repositoryId": repo["id"],
           "selectedItems": [{"type": "User", "user": api.user(org_id, "jane@contoso.com"), "oneDrive": True}]}
    assert _create(api, org_id, job).status_code == 200
    assert _create(api, fabrikam, {**job, "selectedItems": [{**team, "teamsChats": True}]}).status_code == 200
    reloaded = Store.from_data(store.to_data())
    with wsgi_client(Emulator(reloaded, versions=("v6", "v7", "v8"))) as other:
        again = Api(other, "v6").login()
        jobs = {j["name"] + str(i): j for i, j in enumerate(_listed(again, "/Jobs"))}
        items = [_listed(again, f"/Jobs/{j['id']}/SelectedItems")[0] for j in jobs.values()]
    assert [(i["type"], i.get("oneDrive"), i.get("chats")) for i in items] == [("User", True, None),
                                                                             ("Team", None, True)]


def test_jobs_and_copy_jobs_seeded_by_name() -> None:
    from vboplan.emulator import Emulator

    from .helpers import wsgi_client

    data = {**seed_data(), "proxies": [{"hostName": "proxy01.contoso.local", "port": 9193}],
            "cloud_accounts": [{"userName": "akiaexample01", "accountType": "amazonS3Account"}],
            "backup_repositories": REPOS,
            "backup_jobs": {"Mail": {"organization": "contoso.onmicrosoft.com", "repository": "Repo EU",
                                     "backupType": "SelectedItems", "isEnabled": False,
                                     "selectedItems": [{"user": "Chief Executive", "mailbox": True},
                                                       {"group": "hr@contoso.com"}],
                                     "excludedItems": [{"user": "cfo@contoso.com"}]}},
            "copy_jobs": {"Mail": {"repository": "Archive", "schedulePolicy": {"type": "Immediate"}}}}
    store = Store.from_data(data)
    with wsgi_client(Emulator(store, versions=("v6", "v7", "v8"))) as http:
        api = Api(http, "v8").login()
        job = _listed(api, "/Jobs")[0]
        assert (job["name"], job["isEnabled"], job["organizationId"]) == ("Mail", False, api.org_id())
        items = _listed(api, f"/Jobs/{job['id']}/SelectedItems")
        assert sorted((i["type"], (i.get("user") or i.get("group"))["name"]) for i in items) == [
            ("Group", "hr@contoso.com"), ("User", "ceo@contoso.com")]
        assert [i["user"]["name"] for i in _listed(api, f"/Jobs/{job['id']}/ExcludedItems")] == ["cfo@contoso.com"]
        copy = _listed(api, "/CopyJobs")[0]
        assert (copy["name"], copy["backupJobId"], copy["isEnabled"]) == ("Mail copy", job["id"], True)
    with pytest.raises(Exception, match="no user named 'Nobody'"):
        Store.from_data({**data, "backup_jobs": {"Mail": {"organization": "contoso.onmicrosoft.com",
                                                          "repository": "Repo EU", "backupType": "SelectedItems",
                                                          "selectedItems": [{"user": "Nobody"}]}}, "copy_jobs": {}})


@pytest.mark.parametrize("job_version", ["v6", "v7", "v8"])
def test_the_organizations_own_items(client: Any, job_version: str) -> None:
    # PartialOrganization, PersonalSites and OneDriveFolders name no principal: one of each per list, id from the
    # type's GUID and the organization's id; answers validated against the version's document by the client.
    api = Api(client, job_version).login()
    org_id = api.org_id()
    repo_id = _listed(api, "/BackupRepositories")[0]["id"]
    job = {"name": "Tenant", "backupType": "SelectedItems", "repositoryId": repo_id,
           "selectedItems": [{"type": "PartialOrganization", "mailbox": True, "oneDrive": False},
                             {"type": "OneDriveFolders", "folders": ["Documents"]}]}
    made = _create(api, org_id, job)
    assert made.status_code in (200, 201), made.text
    job_id = made.json()["id"]
    items = {i["type"]: i for i in _listed(api, f"/Jobs/{job_id}/SelectedItems")}
    assert set(items) == {"PartialOrganization", "OneDriveFolders"}, items
    assert items["PartialOrganization"]["id"].lower() == "c37da450-6c4b-48c4-87e2-cc557ef5d897" + org_id.lower()
    assert items["OneDriveFolders"]["folders"] == ["Documents"]
    assert api.post(f"/Jobs/{job_id}/SelectedItems", json=[{"type": "PersonalSites"}]).status_code == 204
    again = api.post(f"/Jobs/{job_id}/SelectedItems", json=[{"type": "PersonalSites"}], lenient=True)
    assert again.status_code == 400, again.text
    partial = items["PartialOrganization"]["id"]
    assert api.put(f"/Jobs/{job_id}/SelectedItems/{partial}",
                   json={"type": "PartialOrganization", "mailbox": True, "oneDrive": True}).status_code == 204
    assert api.get(f"/Jobs/{job_id}/SelectedItems/{partial}").json()["oneDrive"] is True
    removed = api.request("DELETE", f"/Jobs/{job_id}/SelectedItems", json=[partial]) if api.version == "v8" else \
        api.delete(f"/Jobs/{job_id}/SelectedItems?ids={partial}")  # v8's document: the ids as a JSON body
    assert removed.status_code == 204, removed.text
    left = sorted(i["type"] for i in _listed(api, f"/Jobs/{job_id}/SelectedItems"))
    assert left == ["OneDriveFolders", "PersonalSites"], left
