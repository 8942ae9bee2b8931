"""The emulator's backup jobs and backup copy jobs, with the rules Veeam's server keeps (Veeam Backup for Microsoft
365 REST API reference, helpcenter.veeam.com/docs/vbo365/rest/, "Backup Jobs" and "Backup Copy Jobs"; the OpenAPI
documents of v6, v7 and v8 give the paths, bodies and statuses).

Jobs live in the registry's generic table (``backup_jobs``, so they persist and load like any collection) with their
items inside; these handlers serve them as the documents do:

* v6/v7 create a job under ``/Organizations/{organizationId}/Jobs`` (200, body ``RESTJob``, no ``organizationId``
  in any answer), v8 through ``POST /Jobs`` (201, ``RESTCreateBackupJob``); PUT answers 204 in every version and
  takes ``RESTJob`` (v6/v7) or ``RESTEditBackupJob`` (v8, no ``organizationId``: a job stays in its organization).
* A job's repository must exist and be within the organization's reach (a v8 repository that names an
  organization serves that one only); its name is unique in its organization; a ``SelectedItems`` job has items.
* Items (``/Jobs/{jobId}/SelectedItems`` and ``/ExcludedItems``) are read only through those paths (the job's
  own answer never embeds them); they name a user, group, site or team of the job's organization by the id its
  directory answers with; a principal cannot be in the same list of a job twice (400). Item ids are composite:
  the item type's GUID the documents list, then the principal's id. The organization's own items
  (``PartialOrganization``, ``PersonalSites``, ``OneDriveFolders``) name no principal: one of each per list, its id
  the type's GUID and the organization's id.
* ``enable``/``disable`` set ``isEnabled`` (204, no body). Nothing here starts a job: ``runNow: true`` in a body
  is recorded as a run (``lastRun``), so a test can prove a client never sends it.
* A job a copy job copies cannot be deleted (409, v8's ``OperationConflict``; the status is not documented).
* Copy jobs (``/CopyJobs``): one per backup job (``GET /Jobs/{jobId}/CopyJob`` answers one object), on an
  existing object-storage repository (the documents: of an archive tier; the tier is not checked); the server names
  them after the backup job.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from functools import partial
from typing import TYPE_CHECKING, Any

from vboplan.emulator import collections as named
from vboplan.emulator.wire import ApiError, Response
from vboplan.schema import component

if TYPE_CHECKING:
    from vboplan.emulator.resources import Call
    from vboplan.emulator.store import Organization

JOBS = "backup_jobs"
COPY_JOBS = "copy_jobs"
LISTS = {"SelectedItems": "selectedItems", "ExcludedItems": "excludedItems"}
# The item types' GUIDs, as the v7/v8 documents describe RESTJobItemComposed.id.
TYPE_GUIDS = {"User": "2b38d840-8098-4614-b369-ebce33f9b2c7", "Group": "9592732d-22d8-426a-8167-d9635158e945",
              "Site": "e1fa728c-4150-4724-ab3b-5deda33db0cf", "Team": "7b985334-bc0e-4791-b30c-d03a1fecc840",
              "PartialOrganization": "c37da450-6c4b-48c4-87e2-cc557ef5d897",
              "PersonalSites": "9a01bcb3-d2de-4271-96bb-95611ddc70b3",
              "OneDriveFolders": "7f07820e-9e77-4beb-92a3-b31f30bc192c"}
# Item types that name no principal (RESTJobOrganizationItem, RESTJobPersonalSitesItem, RESTJobOneDriveFoldersItem):
# the organization's own, one of each per list, its id the type's GUID and the organization's id.
ORGANIZATION_VARIANT = {"PartialOrganization": "RESTJobOrganizationItem", "PersonalSites": "RESTJobPersonalSitesItem",
                        "OneDriveFolders": "RESTJobOneDriveFoldersItem"}
PRINCIPAL_FIELD = {"User": "user", "Group": "group", "Site": "site", "Team": "team"}
DIRECTORY = {"User": "users", "Group": "groups", "Site": "sites", "Team": "teams"}
PRINCIPAL_COMPONENT = {"User": "RESTUser", "Group": "RESTGroup", "Site": "RESTJobSite", "Team": "RESTTeam"}


def routes(version: str, route: named.RouteMaker) -> list[Any]:
    """The job and copy-job routes of ``version`` (served before the generic collection routes)."""
    made = [
        route("/Jobs", {"GET": list_jobs, **({"POST": create_job} if version == "v8" else {})}, writes=True),
        route("/Jobs/{jobId}", {"GET": get_job, "PUT": update_job, "DELETE": delete_job}, writes=True),
        route("/Jobs/{jobId}/enable", {"POST": partial(enable, key=JOBS, on=True)}, writes=True),
        route("/Jobs/{jobId}/disable", {"POST": partial(enable, key=JOBS, on=False)}, writes=True),
        route("/Jobs/{jobId}/CopyJob", {"GET": copy_job_of}),
        route("/CopyJobs", {"GET": list_copy_jobs, "POST": create_copy_job}, writes=True),
        route("/CopyJobs/{id}", {"GET": get_copy_job, "PUT": update_copy_job, "DELETE": delete_copy_job},
              writes=True),
        route("/CopyJobs/{id}/enable", {"POST": partial(enable, key=COPY_JOBS, on=True)}, writes=True),
        route("/CopyJobs/{id}/disable", {"POST": partial(enable, key=COPY_JOBS, on=False)}, writes=True),
        route("/CopyJobs/{id}/BackupJob", {"GET": backup_job_of}),
    ]
    if version != "v8":
        made.append(route("/Organizations/{organizationId}/Jobs", {"GET": list_jobs, "POST": create_job},
                          writes=True))
    for path in LISTS:
        made.append(route(f"/Jobs/{{jobId}}/{path}", {"GET": partial(list_items, which=path),
                                                      "POST": partial(add_items, which=path),
                                                      "DELETE": partial(remove_items, which=path)}, writes=True))
        made.append(route(f"/Jobs/{{jobId}}/{path}/{{itemId}}", {"GET": partial(get_item, which=path),
                                                                 "PUT": partial(edit_item, which=path)},
                          writes=True))
    return made


# -- tables ------------------------------------------------------------------------------------------------------

def _table(call: Call, key: str) -> list[dict[str, Any]]:
    return call.store.collections.setdefault(key, [])


def _find(call: Call, key: str, object_id: str) -> dict[str, Any]:
    found = next((o for o in _table(call, key) if o["id"].lower() == str(object_id).lower()), None)
    if found is None:
        noun = "Job" if key == JOBS else "Copy job"
        raise ApiError(404, f"{noun} with ID '{object_id}' was not found.")
    return found


def _save(call: Call, key: str, obj: dict[str, Any] | None, object_id: str) -> None:
    call.store.collection_change({"op": "collection", "key": key, "id": object_id, "object": obj})


def _page(call: Call, views: list[dict[str, Any]], path: str, paged: bool) -> Response:
    if not paged:
        return Response(200, views)
    offset, limit = named._paging(call)
    links = {"self": {"href": call.href(f"{path}?offset={offset}&limit={limit}")}}
    if offset + limit < len(views):
        links["next"] = {"href": call.href(f"{path}?offset={offset + limit}&limit={limit}")}
    set_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{call.store.installation_id}/{path}"))
    return Response(200, {"offset": offset, "limit": limit, "setId": set_id, "results": views[offset:offset + limit],
                          "_links": links})


def _body(call: Call, schema_name: str) -> dict[str, Any]:
    body = call.bound(component(call.version, schema_name))
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    return {k: v for k, v in body.items() if v is not None and k not in ("id", "_links")}


def _organization(call: Call, org_id: str) -> Organization:
    org = call.store.organization(str(org_id))
    if org is None:
        raise ApiError(400, f"Organization with ID '{org_id}' was not found.")
    return org


def _ran(obj: dict[str, Any]) -> dict[str, Any]:
    """A job asked to run (``runNow: true``): the run is recorded, as a session would be."""
    return {**obj, "lastRun": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.0000000Z"),
            "lastStatus": "Success"}


# -- jobs --------------------------------------------------------------------------------------------------------

def job_view(call: Call, obj: dict[str, Any]) -> dict[str, Any]:
    links = {"self": {"href": call.href(f"/Jobs/{obj['id']}")},
             "repository": {"href": call.href(f"/BackupRepositories/{obj.get('repositoryId')}")},
             "selectedItems": {"href": call.href(f"/Jobs/{obj['id']}/SelectedItems")},
             "excludedItems": {"href": call.href(f"/Jobs/{obj['id']}/ExcludedItems")}}
    shown = {k: v for k, v in obj.items() if k not in ("selectedItems", "excludedItems", "runNow")}
    if call.version == "v8":
        shown.setdefault("eTag", 1)
    return named.shaped(call.version, component(call.version, "RESTJob"), {**shown, "_links": links})


def list_jobs(call: Call) -> Response:
    """GET /Jobs (v8: a page, filtered by ``organizationId`` and ``repositoryId``) and v6/v7's
    GET /Organizations/{organizationId}/Jobs."""
    wanted = {name: str(call.params.get(name) or call.query.get(name) or "").lower()
              for name in ("organizationId", "repositoryId")}
    if "organizationId" in call.params:
        call.organization()
    jobs = [o for o in _table(call, JOBS)
            if all(not value or str(o.get(name, "")).lower() == value for name, value in wanted.items())]
    path = f"/Organizations/{call.params['organizationId']}/Jobs" if "organizationId" in call.params else "/Jobs"
    return _page(call, [job_view(call, o) for o in jobs], path, call.version == "v8")


def get_job(call: Call) -> Response:
    return Response(200, job_view(call, _find(call, JOBS, call.params["jobId"])))


def _check_job(call: Call, org: Organization, obj: dict[str, Any]) -> None:
    """The rules a job's fields keep (see the module docstring)."""
    name = obj.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ApiError(400, "The request is invalid: name is required.")
    clash = [o for o in _table(call, JOBS) if o["id"] != obj.get("id") and str(o.get("organizationId")) == org.id
             and str(o.get("name", "")).lower() == name.lower()]
    if clash:
        raise ApiError(400, f"Job '{name}' already exists in organization '{org.name}'.")
    repository = next((r for r in _table(call, "backup_repositories")
                       if r["id"].lower() == str(obj.get("repositoryId", "")).lower()), None)
    if repository is None:
        raise ApiError(400, f"Backup repository with ID '{obj.get('repositoryId')}' was not found.")
    owner = repository.get("organizationId")
    if owner and str(owner).lower() != org.id:
        raise ApiError(400, f"Backup repository '{repository.get('name')}' cannot be used by organization "
                            f"'{org.name}'.")
    if obj.get("backupType") == "SelectedItems" and not obj.get("selectedItems"):
        raise ApiError(400, "The request is invalid: a job of the SelectedItems type needs selected items.")


def create_job(call: Call) -> Response:
    """v8 POST /Jobs (201) and v6/v7 POST /Organizations/{organizationId}/Jobs (200)."""
    body = _body(call, "RESTCreateBackupJob" if call.version == "v8" else "RESTJob")
    org_id = call.params.get("organizationId") or body.get("organizationId")
    if not org_id:
        raise ApiError(400, "The request is invalid: organizationId is required.")
    org = _organization(call, str(org_id))
    if call.version == "v8" and not body.get("backupType"):
        raise ApiError(400, "The request is invalid: backupType is required.")
    job_id = str(uuid.uuid4())
    obj: dict[str, Any] = {"id": job_id, "isEnabled": True, "lastStatus": "NotConfigured",
                           **{k: v for k, v in body.items() if k not in LISTS.values() and k != "runNow"},
                           "organizationId": org.id}
    for which in LISTS.values():
        obj[which] = _new_items(call, org, body.get(which) or [], [])
    _check_job(call, org, obj)
    if body.get("runNow"):
        obj = _ran(obj)
    _save(call, JOBS, obj, job_id)
    return Response(201 if call.version == "v8" else 200, job_view(call, obj))


def update_job(call: Call) -> Response:
    """PUT /Jobs/{jobId} (204): the fields given replace the stored ones; items only when given."""
    obj = _find(call, JOBS, call.params["jobId"])
    body = _body(call, "RESTEditBackupJob" if call.version == "v8" else "RESTJob")
    org = _organization(call, str(obj["organizationId"]))
    updated = {**obj, **{k: v for k, v in body.items() if k not in LISTS.values() and k != "runNow"}}
    for which in LISTS.values():
        if which in body and not call.query.get("skipItemUpdate"):
            updated[which] = _new_items(call, org, body[which], [])
    _check_job(call, org, updated)
    if body.get("runNow"):
        updated = _ran(updated)
    _save(call, JOBS, updated, obj["id"])
    return Response(204)


def delete_job(call: Call) -> Response:
    obj = _find(call, JOBS, call.params["jobId"])
    copying = [c for c in _table(call, COPY_JOBS) if str(c.get("backupJobId", "")).lower() == obj["id"].lower()]
    if copying:
        raise ApiError(409, f"Job '{obj.get('name')}' is in use by copy job '{copying[0].get('name')}' and cannot be "
                            "removed.")
    _save(call, JOBS, None, obj["id"])
    return Response(204)


def enable(call: Call, key: str, on: bool) -> Response:
    """POST /Jobs/{jobId}/enable|disable and /CopyJobs/{id}/enable|disable (204): ``isEnabled``, nothing run."""
    obj = _find(call, key, call.params.get("jobId") or call.params["id"])
    _save(call, key, {**obj, "isEnabled": on}, obj["id"])
    return Response(204)


# -- items -------------------------------------------------------------------------------------------------------

def _new_items(call: Call, org: Organization, given: Any, held: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``given`` (RESTJobItemComposed objects) as stored items after ``held``: each names a principal of ``org``'s
    directory by id; one already held, or given twice, is refused (400)."""
    if not isinstance(given, list):
        raise ApiError(400, "The request is invalid: items must be an array.")
    items = list(held)
    for raw in given:
        if not isinstance(raw, dict) or raw.get("type") not in TYPE_GUIDS:
            raise ApiError(400, f"The request is invalid: item type must be one of {', '.join(TYPE_GUIDS)}.")
        kind = str(raw["type"])
        if kind in ORGANIZATION_VARIANT:
            items.append(_organization_item(call, org, kind, raw, items))
            continue
        principal = raw.get(PRINCIPAL_FIELD[kind])
        principal_id = principal.get("id") if isinstance(principal, dict) else None
        from vboplan.emulator.resources import find_principal

        entry = find_principal(call, org, DIRECTORY[kind], str(principal_id)) if principal_id else None
        if entry is None:
            raise ApiError(400, f"{kind} with ID '{principal_id}' was not found in organization '{org.name}'.")
        item_id = TYPE_GUIDS[kind] + str(entry["id"])
        if any(i["id"] == item_id for i in items):
            raise ApiError(400, f"{kind} '{entry.get('name') or entry.get('displayName') or entry.get('url')}' is "
                                "already in the job.")
        flags = {k: v for k, v in raw.items() if k not in ("type", "id", "_links", *PRINCIPAL_FIELD.values())}
        # Stored in the item schema's own shape (the data file is loaded against it): the principal by its
        # directory id only, its names read from the directory when shown.
        items.append({"id": item_id, "type": kind, PRINCIPAL_FIELD[kind]: {"id": str(entry["id"])},
                      **_stored_flags(flags)})
    return items


def _organization_item(call: Call, org: Organization, kind: str, raw: dict[str, Any],
                       held: list[dict[str, Any]]) -> dict[str, Any]:
    """An item of the organization's own (no principal), with the fields its variant of the document has."""
    item_id = TYPE_GUIDS[kind] + str(org.id)
    if any(i["id"] == item_id for i in held):
        raise ApiError(400, f"The organization's {kind} item is already in the job.")
    props = component(call.version, ORGANIZATION_VARIANT[kind]).get("properties") or {}
    fields = {k: v for k, v in raw.items() if k in props and k not in ("type", "id", "_links")}
    folders = fields.get("folders")
    if folders is not None and (not isinstance(folders, list) or not all(isinstance(f, str) for f in folders)):
        raise ApiError(400, "The request is invalid: folders must be an array of strings.")
    return {"id": item_id, "type": kind, **fields}


def _stored_flags(flags: dict[str, Any]) -> dict[str, Any]:
    """Workload flags as stored: v6's ``chats`` of a team is v7/v8's ``teamsChats``."""
    out = dict(flags)
    if "chats" in out:
        out.setdefault("teamsChats", out.pop("chats"))
    return out


def item_view(call: Call, org: Organization, item: dict[str, Any]) -> dict[str, Any] | None:
    from vboplan.emulator.resources import principal_view

    kind = item["type"]
    if kind in ORGANIZATION_VARIANT:
        return named.shaped(call.version, component(call.version, "RESTJobItemComposed"), dict(item))
    entry = org.directory(DIRECTORY[kind]).get(str((item.get(PRINCIPAL_FIELD[kind]) or {}).get("id")))
    if entry is None:
        return None  # gone from the directory: the server keeps no such item either
    principal = named.shaped(call.version, component(call.version, PRINCIPAL_COMPONENT[kind]),
                             principal_view(call, org, DIRECTORY[kind], entry))
    flags = {k: v for k, v in item.items() if k not in ("id", "type", *PRINCIPAL_FIELD.values())}
    if call.version == "v6" and "teamsChats" in flags and kind == "Team":
        flags["chats"] = flags.pop("teamsChats")
    return named.shaped(call.version, component(call.version, "RESTJobItemComposed"),
                        {"id": item["id"], "type": kind, PRINCIPAL_FIELD[kind]: principal, **flags})


def _job_and_org(call: Call) -> tuple[dict[str, Any], Organization]:
    obj = _find(call, JOBS, call.params["jobId"])
    return obj, _organization(call, str(obj["organizationId"]))


def list_items(call: Call, which: str) -> Response:
    obj, org = _job_and_org(call)
    views = [v for v in (item_view(call, org, i) for i in obj.get(LISTS[which]) or []) if v is not None]
    return _page(call, views, f"/Jobs/{obj['id']}/{which}", call.version == "v8")


def add_items(call: Call, which: str) -> Response:
    """POST /Jobs/{jobId}/SelectedItems|ExcludedItems: an array of items (204)."""
    obj, org = _job_and_org(call)
    given = call.json()
    updated = {**obj, LISTS[which]: _new_items(call, org, given, obj.get(LISTS[which]) or [])}
    _save(call, JOBS, updated, obj["id"])
    return Response(204)


def remove_items(call: Call, which: str) -> Response:
    """DELETE /Jobs/{jobId}/SelectedItems|ExcludedItems?ids=a,b (v8's SelectedItems also takes the ids as a JSON
    array body) (204)."""
    obj, _org = _job_and_org(call)
    raw = call.query.get("ids") or (call.raw_query.get("ids") or [""])[0]
    ids = [i for i in str(raw).split(",") if i] if raw else []
    if not ids and call.body:
        body = call.json()
        ids = [str(i) for i in body] if isinstance(body, list) else []
    if not ids:
        raise ApiError(400, "The request is invalid: ids is required.")
    held = obj.get(LISTS[which]) or []
    unknown = [i for i in ids if i.lower() not in {h["id"].lower() for h in held}]
    if unknown:
        raise ApiError(404, f"Job item with ID '{unknown[0]}' was not found.")
    wanted = {i.lower() for i in ids}
    _save(call, JOBS, {**obj, LISTS[which]: [h for h in held if h["id"].lower() not in wanted]}, obj["id"])
    return Response(204)


def _item(call: Call, obj: dict[str, Any], which: str) -> dict[str, Any]:
    item_id = str(call.params["itemId"]).lower()
    found = next((i for i in obj.get(LISTS[which]) or [] if i["id"].lower() == item_id), None)
    if found is None:
        raise ApiError(404, f"Job item with ID '{call.params['itemId']}' was not found.")
    return found


def get_item(call: Call, which: str) -> Response:
    obj, org = _job_and_org(call)
    shown = item_view(call, org, _item(call, obj, which))
    if shown is None:
        raise ApiError(404, f"Job item with ID '{call.params['itemId']}' was not found.")
    return Response(200, shown)


def edit_item(call: Call, which: str) -> Response:
    """PUT /Jobs/{jobId}/SelectedItems/{itemId}: the item's workload flags (204)."""
    obj, _org = _job_and_org(call)
    item = _item(call, obj, which)
    if which == "ExcludedItems" and item["type"] in ("Site", "Team"):
        raise ApiError(400, "You cannot edit properties for an excluded item of the Team or Site type.")
    body = _body(call, "RESTJobItemComposed")
    flags = _stored_flags({k: v for k, v in body.items() if k not in ("type", *PRINCIPAL_FIELD.values())})
    items = [{**i, **flags} if i is item else i for i in obj[LISTS[which]]]
    _save(call, JOBS, {**obj, LISTS[which]: items}, obj["id"])
    return Response(204)


# -- copy jobs ---------------------------------------------------------------------------------------------------

def copy_view(call: Call, obj: dict[str, Any]) -> dict[str, Any]:
    links = {"self": {"href": call.href(f"/CopyJobs/{obj['id']}")},
             "backupJob": {"href": call.href(f"/CopyJobs/{obj['id']}/BackupJob")}}
    shown = dict(obj)
    if call.version == "v8":
        shown.setdefault("eTag", 1)
    return named.shaped(call.version, component(call.version, "RESTCopyJob"), {**shown, "_links": links})


def list_copy_jobs(call: Call) -> Response:
    wanted = {name: str(call.query.get(name) or "").lower() for name in ("organizationId", "repositoryId")}
    found = [o for o in _table(call, COPY_JOBS)
             if all(not value or str(o.get(name, "")).lower() == value for name, value in wanted.items())]
    return _page(call, [copy_view(call, o) for o in found], "/CopyJobs", call.version == "v8")


def get_copy_job(call: Call) -> Response:
    return Response(200, copy_view(call, _find(call, COPY_JOBS, call.params["id"])))


def _check_copy(call: Call, obj: dict[str, Any]) -> None:
    job = next((j for j in _table(call, JOBS) if j["id"].lower() == str(obj.get("backupJobId", "")).lower()), None)
    if job is None:
        raise ApiError(400, f"Job with ID '{obj.get('backupJobId')}' was not found.")
    other = [c for c in _table(call, COPY_JOBS) if c["id"] != obj.get("id")
             and str(c.get("backupJobId", "")).lower() == job["id"].lower()]
    if other:
        raise ApiError(400, f"Job '{job.get('name')}' already has a copy job ('{other[0].get('name')}').")
    repository = next((r for r in _table(call, "backup_repositories")
                       if r["id"].lower() == str(obj.get("repositoryId", "")).lower()), None)
    if repository is None:
        raise ApiError(400, f"Backup repository with ID '{obj.get('repositoryId')}' was not found.")
    if not (repository.get("objectStorage") or repository.get("objectStorageId")):
        # v7/v8 documents: repositoryId is "ID of one of the following object storage repositories" (archive tiers).
        raise ApiError(400, f"Backup repository '{repository.get('name')}' is not an object storage repository: "
                            "a backup copy job copies to object storage.")
    if obj.get("organizationId") and str(obj["organizationId"]).lower() != str(job.get("organizationId")).lower():
        raise ApiError(400, "The request is invalid: organizationId is not the backup job's organization.")


def create_copy_job(call: Call) -> Response:
    """POST /CopyJobs (v8 ``RESTCreateCopyJob``, 201; v6/v7 ``RESTCopyJob``, 200): named by the server after the
    backup job."""
    body = _body(call, "RESTCreateCopyJob" if call.version == "v8" else "RESTCopyJob")
    for name in (component(call.version, "RESTCreateCopyJob").get("required") or []) if call.version == "v8" else ():
        if not body.get(name):
            raise ApiError(400, f"The request is invalid: {name} is required.")
    copy_id = str(uuid.uuid4())
    obj: dict[str, Any] = {"id": copy_id, "isEnabled": True, "lastStatus": "NotConfigured",
                           **{k: v for k, v in body.items() if k != "name"}}
    _check_copy(call, obj)
    job = _find(call, JOBS, str(obj["backupJobId"]))
    obj.update(name=f"{job.get('name')} copy", organizationId=job.get("organizationId"))
    _save(call, COPY_JOBS, obj, copy_id)
    return Response(201 if call.version == "v8" else 200, copy_view(call, obj))


def update_copy_job(call: Call) -> Response:
    obj = _find(call, COPY_JOBS, call.params["id"])
    body = _body(call, "RESTEditCopyJob" if call.version == "v8" else "RESTCopyJob")
    updated = {**obj, **{k: v for k, v in body.items() if k not in ("name", "organizationId")}}
    _check_copy(call, updated)
    _save(call, COPY_JOBS, updated, obj["id"])
    return Response(204)


def delete_copy_job(call: Call) -> Response:
    obj = _find(call, COPY_JOBS, call.params["id"])
    _save(call, COPY_JOBS, None, obj["id"])
    return Response(204)


def copy_job_of(call: Call) -> Response:
    """GET /Jobs/{jobId}/CopyJob: the one copy job of a backup job (404 when it has none)."""
    job = _find(call, JOBS, call.params["jobId"])
    found = next((c for c in _table(call, COPY_JOBS) if str(c.get("backupJobId", "")).lower() == job["id"].lower()),
                 None)
    if found is None:
        raise ApiError(404, f"Job '{job.get('name')}' has no copy job.")
    return Response(200, copy_view(call, found))


def backup_job_of(call: Call) -> Response:
    obj = _find(call, COPY_JOBS, call.params["id"])
    return Response(200, job_view(call, _find(call, JOBS, str(obj.get("backupJobId")))))


# -- seeds ------------------------------------------------------------------------------------------------------

def seeded(data: dict[str, Any], organizations: list[Organization], where: str,
           new_id: Any) -> dict[str, Any]:
    """``data`` with template-shaped ``backup_jobs`` and ``copy_jobs`` (by name, as templates write them: the
    organization, repository and principals by name; copy jobs by their backup job's name) in the stored shape; a
    list of API objects (a data file the emulator wrote) is left as it is. ``new_id(kind, key)`` gives ids."""
    jobs, copies = data.get(JOBS), data.get(COPY_JOBS)
    if not isinstance(jobs, dict) and not isinstance(copies, dict):
        return data
    out = dict(data)
    ids: dict[str, tuple[str, str]] = {}
    if isinstance(jobs, dict):
        # Still keyed by name, so that the generic loader turns the repository's name into its id.
        out[JOBS] = {str(key): _seeded_job(str(key), fields or {}, organizations, f"{where}: {JOBS}[{key!r}]",
                                           new_id, ids) for key, fields in jobs.items()}
    else:
        ids = {str(j.get("name", "")).lower(): (str(j.get("id")), str(j.get("organizationId")))
               for j in jobs or [] if isinstance(j, dict)}
    if isinstance(copies, dict):
        out[COPY_JOBS] = {}
        for key, fields in copies.items():
            found = ids.get(str(key).lower())
            if found is None:
                raise named.SeedError(f"{where}: {COPY_JOBS}[{key!r}]: no backup job named {key!r}")
            out[COPY_JOBS][f"{key} copy"] = {"backupJobId": found[0], "organizationId": found[1], "isEnabled": True,
                                             **(fields or {})}
    return out


def _seeded_job(key: str, fields: dict[str, Any], organizations: list[Organization], where: str, new_id: Any,
                ids: dict[str, tuple[str, str]]) -> dict[str, Any]:
    if not isinstance(fields, dict):
        raise named.SeedError(f"{where} must be a mapping of the job's fields")
    org = next((o for o in organizations if o.name.lower() == str(fields.get("organization", "")).lower()), None)
    if org is None:
        raise named.SeedError(f"{where}.organization: no organization named {fields.get('organization')!r}")
    job: dict[str, Any] = {"id": new_id(JOBS, f"{org.name}/{key}"), "organizationId": org.id,
                           "isEnabled": True, "lastStatus": "NotConfigured",
                           **{k: v for k, v in fields.items() if k not in ("organization", *LISTS.values())}}
    for which in LISTS.values():
        job[which] = [_seeded_item(org, entry, f"{where}.{which}[{n}]") for n, entry in
                      enumerate(fields.get(which) or [])]
    ids[key.lower()] = (job["id"], org.id)
    return job


def _seeded_item(org: Organization, entry: Any, where: str) -> dict[str, Any]:
    words = {field: kind for kind, field in PRINCIPAL_FIELD.items()}
    named_as = [k for k in entry if k in words] if isinstance(entry, dict) else []
    if len(named_as) != 1:
        raise named.SeedError(f"{where} must name one of user, group, site or team")
    kind, name = words[named_as[0]], str(entry[named_as[0]])
    directory = org.directory(DIRECTORY[kind])
    if kind == "Site":
        found = [i for i in directory.items if str(i.get("url", "")).rstrip("/").lower() == name.rstrip("/").lower()]
    else:
        found = directory.by_name.get(name.lower()) or directory.by_display_name.get(name.lower()) or []
    if len(found) != 1:
        raise named.SeedError(f"{where}: {'no' if not found else 'more than one'} {named_as[0]} named {name!r} in "
                              f"organization {org.name!r}")
    flags = {k: v for k, v in entry.items() if k != named_as[0]}
    return {"id": TYPE_GUIDS[kind] + str(found[0]["id"]), "type": kind, PRINCIPAL_FIELD[kind]: {"id": str(found[0]["id"])},
            **_stored_flags(flags)}
