"""A backup job's item lists (``selectedItems``, ``excludedItems``): principals by name with the workload flags the
API names, kept through the job's item endpoints (Veeam Backup for Microsoft 365 REST API reference,
helpcenter.veeam.com/docs/vbo365/rest/, "Backup Job Items": ``GET/POST/DELETE /Jobs/{jobId}/SelectedItems``,
``PUT /Jobs/{jobId}/SelectedItems/{itemId}``, the same under ``ExcludedItems``).

Templates write an item as ``{user: ceo@contoso.com, mailbox: true}`` (or ``group``, ``site`` by URL, ``team``;
the organization's own items as ``{partialOrganization: true, mailbox: true}``, ``{personalSites: true}``,
``{oneDriveFolders: true, folders: [Documents]}``, addressed by the organization's name);
the flags are those of the item type's schema in the version's document (``RESTJobUserItem`` and the like). An item
is addressed by its principal's name as the directory holds it (a user's e-mail, a group's name, a site's URL):
``backup_jobs["Mail"].selectedItems.user["ceo@contoso.com"]``, so the same principal has the same address in every
job and a move between jobs shows as one delete and one create of it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from vboplan import schema
from vboplan.api.client import VboClient
from vboplan.api.rest import Operation
from vboplan.errors import PlanError, RenderError
from vboplan.kinds import principals
from vboplan.kinds.principal_lists import Lists, label_of
from vboplan.planning.changes import Address, Change, make
from vboplan.sensitive import reveal
from vboplan.threads import ThreadPoolExecutor

LISTS = {"selectedItems": "SelectedItems", "excludedItems": "ExcludedItems"}
#: The template key naming an item's type (RESTJobBackupItemType): a principal's, or one of the organization's own.
WORDS = {"User": "user", "Group": "group", "Site": "site", "Team": "team",
         "PartialOrganization": "partialOrganization", "PersonalSites": "personalSites",
         "OneDriveFolders": "oneDriveFolders"}
TYPES = {word.lower(): kind for kind, word in WORDS.items()}
#: Item types that name no principal: the organization's mailboxes, OneDrives, sites and teams
#: (RESTJobOrganizationItem), its personal sites, its OneDrive folders. A template writes ``{personalSites: true}``;
#: such an item is addressed by the job's organization (``selectedItems.personalSites["contoso.onmicrosoft.com"]``).
ORGANIZATION_TYPES = ("PartialOrganization", "PersonalSites", "OneDriveFolders")
PRINCIPAL_TYPES = ("User", "Group", "Site", "Team")
_VARIANT = {"User": "RESTJobUserItem", "Group": "RESTJobGroupItem", "Site": "RESTJobSiteItem",
            "Team": "RESTJobTeamItem", "PartialOrganization": "RESTJobOrganizationItem",
            "PersonalSites": "RESTJobPersonalSitesItem", "OneDriveFolders": "RESTJobOneDriveFoldersItem"}
_PRINCIPAL_COMPONENT = {"User": "RESTUser", "Group": "RESTGroup", "Site": "RESTJobSite", "Team": "RESTTeam"}
_NOT_FLAGS = {"type", "id", "_links", "user", "group", "site", "team"}


@functools.lru_cache(maxsize=64)
def _properties(version: str, kind: str) -> dict[str, dict[str, Any]]:
    """The resolved properties of a ``kind`` item's component (asked for each flag of every item of a job: the
    documents do not change while the process runs)."""
    return schema.properties(version, _VARIANT[kind])


@functools.lru_cache(maxsize=64)
def flag_names(version: str, kind: str) -> tuple[str, ...]:
    """The workload flags an item of ``kind`` has in ``version`` (``mailbox``, ``oneDrive``...; v6 teams:
    ``chats``)."""
    return tuple(name for name in _properties(version, kind) if name not in _NOT_FLAGS)


@functools.lru_cache(maxsize=256)
def _is_list(version: str, kind: str, name: str) -> bool:
    return schema.resolve(version, field_schema(version, kind, name)).get("type") == "array"


def field_schema(version: str, kind: str, name: str) -> dict[str, Any]:
    """The schema of field ``name`` (a workload flag, or a OneDrive folders item's ``folders``) of a ``kind`` item."""
    return _properties(version, kind).get(name) or {"type": "boolean"}


def check_fields(version: str, kind: str, values: Any) -> bool:
    """Whether ``values`` (a plan row's) holds only fields of a ``kind`` item, each of its type."""
    if not isinstance(values, dict) or set(values) - set(flag_names(version, kind)):
        return False
    for name, value in values.items():
        if _is_list(version, kind, name):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                return False
        elif not isinstance(value, bool):
            return False
    return True


_BOOLEAN = {"type": "boolean"}


def _bind(version: str, kind: str, flag: str, value: Any, where: str) -> Any:
    plain, listed = reveal(value), _is_list(version, kind, flag)
    if not listed and (plain is True or plain is False):  # a flag as templates mostly write it: nothing to read
        return plain
    try:
        return schema.bind(version, field_schema(version, kind, flag) if listed else _BOOLEAN, plain, where)
    except schema.SchemaError as exc:
        raise RenderError(f"{exc.where}: {exc.message}") from None


#: The job's lists as :mod:`vboplan.kinds.principal_lists` keeps them: every item type in either list, with the
#: fields of its type's schema; the organization's own items named by the job's organization.
ITEMS = Lists(kind="backup_jobs", names=tuple(LISTS), held="items", words=WORDS, entry_id="item",
              types=lambda version, which: tuple(WORDS), fields=lambda version, kind: flag_names(version, kind),
              bind=_bind, by_organization=ORGANIZATION_TYPES, noun="item")
parts_of = ITEMS.parts_of
label = label_of


def item_address(job: Address, which: str, kind: str, key: str) -> Address:
    return ITEMS.address(job, which, kind, key)


# -- live --------------------------------------------------------------------------------------------------------

def read(client: VboClient, job_id: str, paged: bool) -> dict[str, list[dict[str, Any]]]:
    """A job's items by list, each ``{"id", "type", "principal", "flags"}``."""
    found: dict[str, list[dict[str, Any]]] = {}
    for which, path in LISTS.items():
        raw = client.list_objects(Operation("GET", f"Jobs/{{jobId}}/{path}", (200,), paged), jobId=job_id)
        found[which] = [one for one in (_item(client.version, r) for r in raw) if one is not None]
    return found


def read_all(client: VboClient, job_ids: list[str], paged: bool) -> list[dict[str, list[dict[str, Any]]]]:
    if not job_ids:
        return []
    with ThreadPoolExecutor(max_workers=min(len(job_ids), 8)) as pool:
        return list(pool.map(lambda job_id: read(client, job_id, paged), job_ids))


def _item(version: str, raw: dict[str, Any]) -> dict[str, Any] | None:
    kind = raw.get("type")
    if kind in ORGANIZATION_TYPES:  # the organization's own: its name and id are filled in with the job's
        keep: dict[str, Any] = {"id": "", "name": "", "displayName": ""}
    elif kind not in WORDS or not isinstance(raw.get(WORDS[kind]), dict):
        return None  # an item of a type no document of vboplan's names
    else:
        keep = principals.compact(str(kind), raw[WORDS[kind]])
    flags = {name: raw[name] for name in flag_names(version, kind) if raw.get(name) is not None}
    return {"id": str(raw.get("id")), "type": kind, "principal": keep, "flags": flags}


def shown(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Items as a template writes them (state, drift, import): ``{user: NAME, FLAG: value...}``, sorted."""
    rows = [{WORDS[i["type"]]: True if i["type"] in ORGANIZATION_TYPES else principals.key(i["principal"]),
             **dict(sorted(i["flags"].items()))} for i in items]
    return sorted(rows, key=lambda r: (next(iter(r)), str(next(iter(r.values()))).lower()))


# -- plan --------------------------------------------------------------------------------------------------------

def diff(job: Address, key_name: str, job_id: str | None, which: str, desired: list[dict[str, Any]],
         held: list[dict[str, Any]], find: Callable[[str, str, str], dict[str, Any]]) -> list[Change]:
    """Rows turning the live items ``held`` of one list into ``desired``; ``find(kind, name, where)`` gives the
    principal a declared name resolves to."""
    live = {(i["type"], principals.key(i["principal"]).lower()): i for i in held}
    changes: list[Change] = []
    wanted: set[tuple[str, str]] = set()
    for entry in desired:
        principal = find(entry["type"], entry["name"], entry["where"])
        ident = (entry["type"], principals.key(principal).lower())
        if ident in wanted:
            raise PlanError(f"{entry['where']}: {WORDS[entry['type']]} '{entry['name']}' names "
                            f"'{principals.key(principal)}', which the list names already")
        wanted.add(ident)
        address = item_address(job, which, entry["type"], principals.key(principal))
        found = live.get(ident)
        detail = {"key": key_name, "list": which, "type": entry["type"], **({"job": job_id} if job_id else {})}
        if found is None:
            changes.append(make("create", job.kind, address, None, dict(entry["flags"]), False,
                                {**detail, "principal": principal["id"]}))
            continue
        seen = {name: found["flags"].get(name) for name in entry["flags"]}
        if seen != entry["flags"]:
            changes.append(make("update", job.kind, address, seen, dict(entry["flags"]), False,
                                {**detail, "item": found["id"]}))
    for ident, item in sorted(live.items()):
        if ident not in wanted:
            address = item_address(job, which, item["type"], principals.key(item["principal"]))
            changes.append(make("delete", job.kind, address, dict(item["flags"]), None, False,
                                {"key": key_name, "list": which, "type": item["type"], "item": item["id"],
                                 **({"job": job_id} if job_id else {})}))
    return changes


# -- requests ----------------------------------------------------------------------------------------------------

def body(version: str, kind: str, principal: dict[str, Any], flags: dict[str, Any]) -> dict[str, Any]:
    """A ``RESTJobItemComposed`` naming ``principal`` (its fields the version's component has) with ``flags``; an
    organization's own item names none."""
    if kind in ORGANIZATION_TYPES:
        return {"type": kind, **flags}
    props = schema.properties(version, _PRINCIPAL_COMPONENT[kind])
    carried = {name: value for name, value in principal.items() if name in props and value not in (None, "")}
    if kind == "Site":
        carried.setdefault("title", principal.get("displayName") or principal.get("url"))
        carried.setdefault("isCloud", True)
        carried.setdefault("isPersonal", False)
    return {"type": kind, WORDS[kind]: carried, **flags}


def item_path(job_id: str, which: str, item_id: str = "") -> str:
    path = f"Jobs/{job_id}/{LISTS[which]}"
    return f"{path}/{quote(item_id, safe='')}" if item_id else path
