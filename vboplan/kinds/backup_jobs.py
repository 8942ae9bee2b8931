"""``backup_jobs``: what each organization backs up, where and when (Veeam Backup for Microsoft 365 REST API
reference, helpcenter.veeam.com/docs/vbo365/rest/, "Backup Jobs"; OpenAPI documents v6, v7, v8), by name.

A job names its organization and repository by name, ``backupType`` (``EntireOrganization`` or ``SelectedItems``),
its ``selectedItems`` and ``excludedItems`` as principals by name with their workload flags (see
:mod:`vboplan.kinds.job_items`), ``schedulePolicy``, ``description`` and ``isEnabled``. What differs per version
stays here: v8 creates through ``POST /Jobs`` (201, ``RESTCreateBackupJob`` with ``organizationId``); v6/v7 through
``POST /Organizations/{organizationId}/Jobs`` (200, ``RESTJob``, the organization only in the path), and their
answers never say which organization a job has, so it is read from the organization's job list. Items change
through the job's item endpoints, never by rewriting the job; ``isEnabled`` through ``/Jobs/{jobId}/enable`` and
``/disable``. vboplan never starts a job: ``runNow`` is refused in templates and never sent. A job's organization
is fixed after creation (no version's PUT names it): a job moved to another organization is replaced, and the new job
gets every item of the template (the copy job of it is replaced with it, see :mod:`vboplan.kinds.copy_jobs`).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from vboplan.api.client import VboClient
from vboplan.api.rest import Operation
from vboplan.errors import PlanError, ProjectError, RenderError
from vboplan.kinds import job_items, refs
from vboplan.kinds.base import Basis, Export, Request, Write
from vboplan.kinds.collection import CollectionKind, Declared, object_address
from vboplan.kinds.job_items import ITEMS
from vboplan.kinds.principal_lists import (
    ListedScope,
    as_live_key,
    as_live_keys,
    bare_name,
    declared_objects,
    moving,
    org_name,
    organization_of,
)
from vboplan.kinds.spec import Api, CollectionSpec, Reference
from vboplan.planning.changes import Address, Change, make
from vboplan.sensitive import reveal
from vboplan.threads import ThreadPoolExecutor

_LISTS = tuple(job_items.LISTS)
#: Removing more than this many items of a job's list (and more than the guard's share of them) is a mass deletion,
#: as for audit items.
ITEMS_GUARDED = 10
# Fields of the job the template may not set: runNow starts the job; the rest are the server's.
#: What the server records of a job's runs (``RESTJob``, ``RESTCopyJob``): v6/v7 take the answer's component as the
#: request too, so the documents list these among the fields a PUT sends; they are never set, compared or imported.
RUN_STATUS = ("lastRun", "nextRun", "lastStatus", "lastBackup")
STATUS_WORDS = {name.lower(): f"{name} is the server's record of the job's runs, not a setting: it cannot be set"
                for name in RUN_STATUS}
_NEVER = {"runnow": "vboplan never starts a job: runNow cannot be set (start it in the console or with "
                    "POST /Jobs/{jobId}/start yourself)", **STATUS_WORDS}


def _api(version: str) -> Api:
    item = "Jobs/{jobId}"
    if version == "v8":
        return Api(list=Operation("GET", "Jobs", (200,), True), request="RESTCreateBackupJob", response="RESTJob",
                   get=Operation("GET", item), create=Operation("POST", "Jobs", (201,)),
                   update=Operation("PUT", item, (204,)), delete=Operation("DELETE", item, (204,)))
    return Api(list=Operation("GET", "Jobs", (200,)), request="RESTJob", response="RESTJob",
               get=Operation("GET", item), create=Operation("POST", "Organizations/{organizationId}/Jobs", (200,)),
               update=Operation("PUT", item, (204,)), delete=Operation("DELETE", item, (204,)))


class JobHooks:
    """v6/v7: a job's organization from the organizations' job lists (read once per client until it writes);
    the create goes under the organization, which its body does not name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: weakref.WeakKeyDictionary[Any, tuple[int, dict[str, str]]] = weakref.WeakKeyDictionary()

    def more(self, client: Any, version: str, item: dict[str, Any]) -> dict[str, Any]:
        """v6/v7: the job's organization. Any version: a name another organization's job has too is keyed
        ``ORGANIZATION/NAME`` (job names are unique per organization only)."""
        extra: dict[str, Any] = {}
        org_id = item.get("organizationId")
        if version != "v8":
            org_id = self._owners(client).get(str(item.get("id")).lower())
            if org_id:
                extra["organizationId"] = org_id
        name = str(item.get("name") or "")
        same = [j for j in refs.resolver(client).objects(SPEC.key).items if str(j.get("name") or "").lower()
                == name.lower()]
        if len(same) > 1 and org_id:
            org = next((str(o.get("name")) for o in client.organizations() if str(o.get("id")) == str(org_id)), "")
            extra["name"] = f"{org}/{name}"
        return extra

    def _owners(self, client: Any) -> dict[str, str]:
        with self._lock:
            held = self._held.get(client)
            if held is not None and held[0] == client.write_count:
                return held[1]
            writes = client.write_count
            owners = {str(job.get("id")).lower(): str(org["id"]) for org in client.organizations()
                      for job in client.list_objects(Operation("GET", "Organizations/{organizationId}/Jobs"),
                                                     organizationId=str(org["id"]))}
            self._held[client] = (writes, owners)
            return owners

    def place(self, version: str, path: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        if version == "v8":
            return path, body
        return path, {k: v for k, v in body.items() if k != "organizationId"}

    def kind(self, spec: CollectionSpec) -> Any:
        return BackupJobsKind(spec)


SPEC = CollectionSpec(
    key="backup_jobs", key_field="name",
    versions={version: _api(version) for version in ("v6", "v7", "v8")},
    references=(Reference("organizationId", "organizations"), Reference("repositoryId", "backup_repositories")),
    fixed=("organization",),
    extra_paths=("Organizations/{organizationId}/Jobs", "Jobs/{jobId}/enable", "Jobs/{jobId}/disable",
                 "Jobs/{jobId}/SelectedItems", "Jobs/{jobId}/SelectedItems/{itemId}", "Jobs/{jobId}/ExcludedItems",
                 "Jobs/{jobId}/ExcludedItems/{itemId}", "Jobs/{jobId}/CopyJob"),
    hooks=JobHooks(),
    summary="backup jobs by name: organization, repository, selected and excluded principals, schedule")


@dataclass(frozen=True)
class BackupJobsKind(ListedScope, CollectionKind):
    """The generic collection (job fields, references, create/update/delete) plus item lists and enable/disable."""

    LISTS = ITEMS
    SCOPE = "jobs"

    # -- templates ---------------------------------------------------------------------------------------------

    def normalise(self, version: str, raw: Any, where: Callable[[Any], str]) -> Declared:
        plain_raw: dict[Any, Any] = {}
        extra: dict[str, dict[str, Any]] = {}
        for key, text, fields, label, line in declared_objects(self.name, raw, where, plain_raw):
            never = next((n for n in fields if str(n).lower() in _NEVER), None)
            if never is not None:
                raise RenderError(f"{line(never)}: {label}: {_NEVER[str(never).lower()]}")
            named = next((n for n in fields if str(n).lower() == "organization"), None)
            if named is None:
                raise RenderError(f"{line(None)}: {label} needs organization: NAME (the organization it backs up)")
            if not isinstance(reveal(fields[named]), str) or not str(reveal(fields[named])).strip():
                raise RenderError(f"{line(named)}: {label}.organization must be an organization's name")
            organization = str(reveal(fields[named])).strip()
            kept, lists = ITEMS.take(version, fields, label, line, organization)
            kept.pop(named)
            mine: dict[str, Any] = {"organization": organization, **lists}
            plain_raw[key] = kept
            extra[text] = mine
        desired = super().normalise(version, plain_raw if isinstance(raw, dict) else raw, where)
        for key, fields in desired.items():
            mine = extra.get(key, {})
            fields["organization"] = mine["organization"]
            if "repository" not in fields:
                raise RenderError(f"{desired.where[key]}: {object_address(self.name, key)} needs repository: NAME")
            if fields.get("backupType") == "SelectedItems" and not mine.get("selectedItems"):
                raise RenderError(f"{desired.where[key]}: {object_address(self.name, key)} backs up SelectedItems "
                                  "but selects none: list selectedItems, or back up EntireOrganization")
            for which in _LISTS:
                fields[which] = mine.get(which, [])
        return desired

    # -- live --------------------------------------------------------------------------------------------------

    def read(self, client: VboClient, scope: Any) -> dict[str, Any]:
        resolver = refs.resolver(client)
        with ThreadPoolExecutor(max_workers=len(self.spec.references)) as pool:
            # What jobs refer to (organizations, repositories) is listed while the jobs are, not after them.
            ahead = [pool.submit(resolver.objects, ref.kind) for ref in self.spec.references]
            live = super().read(client, [])
            for listed in ahead:
                listed.result()
        api = self.spec.api(client.version)
        if api is None:
            return live
        objects = live["objects"]
        keys = list(objects)
        with ThreadPoolExecutor(max_workers=1) as pool:  # the copy jobs' list while the items are read
            copies = pool.submit(_copied_by, client, objects)
            lists = job_items.read_all(client, [objects[k]["id"] for k in keys], api.list.paged)
            live["copied_by"] = copies.result()
        orgs = {n.lower(): i for n, i in (live.get("refs") or {}).get("organizations", {}).items()}
        for key, items in zip(keys, lists, strict=True):
            values = objects[key]["values"]
            for name in ("runNow", *RUN_STATUS, *_LISTS):
                values.pop(name, None)
            org = str(values.get("organization") or "")
            for item in (i for which in _LISTS for i in items[which] if i["type"] in job_items.ORGANIZATION_TYPES):
                item["principal"] = {"id": str(orgs.get(org.lower(), "")), "name": org, "displayName": ""}
            objects[key]["items"] = items
            for which in _LISTS:
                values[which] = job_items.shown(items[which])
        live["principals"] = ITEMS.resolve(client, scope, objects)
        return live

    # -- plan --------------------------------------------------------------------------------------------------

    def diff(self, version: str, live: dict[str, Any], desired: Declared, recorded: Any | None) -> list[Change]:
        desired = as_live_keys(desired, live.get("objects") or {})
        # A replaced job (moved to another organization) is a new job: its items are all created with it, in the
        # new organization's directory; the old job's go with it.
        changes, replaced = self.diff_apart(version, live, desired, recorded, _LISTS)
        objects = live.get("objects") or {}
        by_lower = {k.lower(): k for k in objects}
        for key, fields in sorted(desired.items(), key=lambda i: i[0].lower()):
            found = by_lower.get(key.lower())
            obj = objects[found] if found and found.lower() not in replaced else None
            job = object_address(self.name, found or key)
            finder = _finder(live, str(fields["organization"]))
            for which in _LISTS:
                held = (obj or {}).get("items", {}).get(which, [])
                for change in job_items.diff(job, found or key, obj["id"] if obj else None, which, fields[which],
                                             held, finder):
                    if change.action == "delete":
                        parts = ITEMS.parts_of(change.address)
                        assert parts is not None
                        change = replace(change, detail={**change.detail, "elsewhere": _elsewhere(
                            objects, found, parts[2], parts[3])})
                    changes.append(change)
        return changes

    def derive(self, basis: Basis, address: Address, action: str, after: Any) -> Change:
        parts = ITEMS.parts_of(address)
        if parts is None:
            # A plan file's row is the author's text: what templates may not set, no row may either.
            named = [address.parts[1][1]] if len(address.parts) == 2 else list(after) if isinstance(after, dict) \
                else []
            never = next((n for n in named if str(n).lower() in _NEVER), None)
            if never is not None:
                raise PlanError(f"{address}: {_NEVER[str(never).lower()]}")
            listed = next((n for n in named if str(n).lower() in ("selecteditems", "excludeditems")), None)
            if listed is not None:  # each item is a row of its own, sent through the list's endpoints
                raise PlanError(f"{address}: {listed} is changed item by item (rows such as "
                                f"{object_address(self.name, address.parts[0][1])}.{listed}.user[\"NAME\"]), "
                                "never as a field of the job")
            return super().derive(basis, address, action, after)
        key, which, kind, name = parts
        live = basis.live if isinstance(basis.live, dict) else {}
        objects = live.get("objects") or {}
        found = next((k for k in objects if k.lower() == key.lower()), None)
        obj = objects.get(found) if found else None
        if obj is not None and moving(basis, found or key, str(obj["values"].get("organization") or "")):
            obj = None  # the job is replaced (see diff): an item of the new job, none of the old one's
        item = ITEMS.entries_by_key(obj, which).get((kind, name.lower()))
        detail: dict[str, Any] = {"key": found or key, "list": which, "type": kind,
                                  **({"job": obj["id"]} if obj else {})}
        if action == "delete":
            if item is None:
                raise PlanError(f"{address}: the job holds no such item")
            return make("delete", self.name, address, dict(item["flags"]), None, False,
                        {**detail, "item": item["id"], "elsewhere": _elsewhere(objects, found, kind, name)})
        if not job_items.check_fields(basis.version, kind, after):
            raise PlanError(f"{address}: the value of an item is its workload flags (true or false)")
        if action == "update":
            if item is None:
                raise PlanError(f"{address}: the job holds no such item")
            before = {n: item["flags"].get(n) for n in after}
            if before == after:
                raise PlanError(f"{address}: the live flags are already {after}; this is no change")
            return make("update", self.name, address, before, dict(after), False, {**detail, "item": item["id"]})
        if action != "create" or item is not None:
            raise PlanError(f"{address}: an item is created, updated or deleted (this one is {action}d, or is "
                            "there already)")
        org = organization_of(self.name, live, obj, basis, found or key)
        principal = ITEMS.known(live, org, kind, name)
        if principal is None:
            raise PlanError(f"{address}: the plan's recorded directory answers name no such {job_items.WORDS[kind]}")
        return make("create", self.name, address, None, dict(after), False, {**detail, "principal": principal["id"]})

    def severity(self, change: Change) -> Any:
        """Items: removing the last job's hold of a principal, or excluding one, is a warning; moves between jobs
        are rated by :func:`vboplan.policy.severity.moved`; job fields by the default rating."""
        from vboplan.policy.severity import Severity

        parts = ITEMS.parts_of(change.address)
        if parts is None:
            return None
        _key, which, kind, name = parts
        word = job_items.WORDS[kind]
        if which == "selectedItems" and change.action == "delete":
            others = change.detail.get("elsewhere") or []
            if not others:
                return Severity("warning", f"{word} {name} is in no other job: its data is no longer backed up")
            return Severity("info", f"removed from this job ({word} {name} stays in {', '.join(others)})")
        if which == "excludedItems" and change.action == "create":
            return Severity("warning", f"{word} {name} is excluded: this job no longer backs it up")
        if change.action == "update":
            dropped = [f for f, v in (change.before or {}).items() if v and not (change.after or {}).get(f)]
            if dropped:
                return Severity("warning", f"{word} {name}: {', '.join(dropped)} no longer backed up by this job")
        return None

    def users(self, live: Any, kind: str, key: str) -> list[tuple[Address, str]]:
        """What refers to ``kind``'s object ``key`` (as any collection), and for a job, its copy job (as
        ``copy_jobs`` keys it, by the job's name), which this kind reads even where no template declares copy
        jobs: the server refuses to delete a job a copy job copies."""
        found = super().users(live, kind, key)
        copied = (live or {}).get("copied_by") if isinstance(live, dict) and kind == self.name else None
        if copied:
            job = next((k for k in copied if k.lower() == key.lower()), None)
            if job is not None:
                obj = (live.get("objects") or {}).get(job) or {}
                name = bare_name(job, org_name((obj.get("values") or {}).get("organization")))
                found.append((object_address("copy_jobs", name), "backupJob"))
        return found

    def deletions(self, changes: list[Change], live: Any) -> list[tuple[str, int, int]]:
        """The jobs the changes delete (as any collection), and each item list they remove more than
        :data:`ITEMS_GUARDED` items of (the guard's share then applies, as to audit items)."""
        found = super().deletions(changes, live)
        objects = (live or {}).get("objects") or {} if isinstance(live, dict) else {}
        counts: dict[tuple[str, str], int] = {}
        for change in changes:
            parts = ITEMS.parts_of(change.address)
            if parts is not None and change.action == "delete":
                counts[(parts[0], parts[1])] = counts.get((parts[0], parts[1]), 0) + 1
        for (key, which), deleted in sorted(counts.items()):
            obj = next((v for k, v in objects.items() if k.lower() == key.lower()), None)
            total = len(((obj or {}).get("items") or {}).get(which) or [])
            if deleted > ITEMS_GUARDED:
                found.append((f"{object_address(self.name, key)}.{which}", deleted, max(total, deleted)))
        return found

    def policy_objects(self, desired: Any, live: Any) -> list[Any]:
        """Policy rules see each job as templates write it: items as ``{user: NAME, FLAG: value}`` (not the parsed
        form with its file and line), the live job without the item ids it is kept with."""
        from vboplan.policy.objects import PolicyObject

        def written(fields: Any) -> Any:
            if not isinstance(fields, dict):
                return fields
            return {name: [{job_items.WORDS[e["type"]]: True if e["type"] in job_items.ORGANIZATION_TYPES
                            else e["name"], **e["flags"]} if isinstance(e, dict)
                           and {"type", "name", "flags"} <= set(e) else e for e in value]
                    if name in _LISTS and isinstance(value, list) else value for name, value in fields.items()}

        objects = (live or {}).get("objects") if isinstance(live, dict) else None
        keys = list(dict.fromkeys([*(desired or {}), *(objects or {})]))
        return [PolicyObject(Address(self.name).entry(key), written((desired or {}).get(key)),
                             {k: v for k, v in objects[key].items() if k != "items"}
                             if isinstance(objects, dict) and key in objects else None) for key in keys]

    # -- apply -------------------------------------------------------------------------------------------------

    def object_write(self, basis: Basis, api: Api, key: str, mine: list[Change], live: dict[str, Any]) -> Write:
        requests = self._job_requests(basis, api, key, mine, live)
        return Write(f"{requests[0].method} /{basis.version}/{requests[0].path}", mine, requests=requests)

    def _job_requests(self, basis: Basis, api: Api, key: str, mine: list[Change],
                      live: dict[str, Any]) -> list[Request]:
        objects = live.get("objects") or {}
        obj = next((v for k, v in objects.items() if k.lower() == key.lower()), None)
        created = next((c for c in mine if c.action == "create" and len(c.address.parts) == 1), None)
        if any(c.action == "delete" and len(c.address.parts) == 1 for c in mine):
            return super().object_write(basis, api, key, [c for c in mine if len(c.address.parts) == 1], live).requests
        items = [c for c in mine if ITEMS.parts_of(c.address) is not None]
        if created is not None:
            return [self._create_request(basis, api, key, created, items, live)]
        if obj is None:
            raise PlanError(f"{object_address(self.name, key)}: not on the server")
        org = organization_of(self.name, live, obj, basis, key)
        job_id = str(obj["id"])
        requests = self._item_adds(basis.version, job_id, org, items, live)
        fields = [c for c in mine if len(c.address.parts) == 2 and c.address.parts[1][1] != "isEnabled"]
        if fields:
            requests.append(self._put(api, key, obj, fields, live))
        requests += ITEMS.removes(lambda which: job_items.item_path(job_id, which), items)
        for change in (c for c in items if c.action == "update"):
            parts = ITEMS.parts_of(change.address)
            assert parts is not None
            item = next(i for i in obj["items"][parts[1]] if i["id"] == change.detail.get("item"))
            body = job_items.body(basis.version, parts[2], item["principal"], {**item["flags"], **change.after})
            requests.append(Request("PUT", job_items.item_path(job_id, parts[1], item["id"]), body, (204,)))
        for change in (c for c in mine if len(c.address.parts) == 2 and c.address.parts[1][1] == "isEnabled"):
            action = "enable" if change.after is True else "disable"
            requests.append(Request("POST", f"Jobs/{job_id}/{action}", None, (204,)))
        return requests

    def _create_request(self, basis: Basis, api: Api, key: str, created: Change, items: list[Change],
                live: dict[str, Any]) -> Request:
        org = Address.parse(str(created.after.get("organization"))).parts[0][1]
        body: dict[str, Any] = {self.spec.key_field: bare_name(key, org),
                                **self._api_body(created.after, live, basis.replaced)}
        for which in _LISTS:
            body[which] = [self._item_body(basis.version, org, c, live) for c in items
                           if c.action == "create" and c.address.parts[1][1] == which]
        path, body = self._placed(basis.version, api, key, body)
        return Request("POST", path, body, api.create.status if api.create else (200, 201),
                       assigns=str(object_address(self.name, key)))

    def _item_body(self, version: str, org: str, change: Change, live: dict[str, Any]) -> dict[str, Any]:
        parts = ITEMS.parts_of(change.address)
        assert parts is not None
        principal = ITEMS.known(live, org, parts[2], parts[3])
        if principal is None:
            raise PlanError(f"{change.id} ({change.address}): the plan's recorded directory answers name no such "
                            f"principal in {org}, the organization of the job")
        return job_items.body(version, parts[2], principal, change.after or {})

    def _item_adds(self, version: str, job_id: str, org: str, items: list[Change],
                   live: dict[str, Any]) -> list[Request]:
        return ITEMS.adds(lambda which: job_items.item_path(job_id, which), items,
                          lambda change: self._item_body(version, org, change, live))

    def _put(self, api: Api, key: str, obj: dict[str, Any], fields: list[Change], live: dict[str, Any]) -> Request:
        """The whole job as the version's PUT takes it (v6/v7 ``RESTJob``, v8 ``RESTEditBackupJob``), from the
        recorded live values and the changes; never its items, ``runNow`` or ``isEnabled``."""
        values = obj["values"]
        body: dict[str, Any] = {"name": bare_name(key, str(values.get("organization") or ""))}
        for name in ("description", "backupType", "schedulePolicy"):
            if values.get(name) is not None:
                body[name] = values[name]
        body["repositoryId"] = self._live_api_value("repositoryId", obj, live)
        body.update(self._api_body({change.address.parts[1][1]: change.after for change in fields}, live))
        assert api.update is not None
        return Request("PUT", api.update.url(jobId=str(obj["id"])), body, api.update.status)

    def verify(self, change: Change, live: dict[str, Any]) -> bool:
        change = as_live_key(change, live)
        parts = ITEMS.parts_of(change.address)
        if parts is None:
            return super().verify(change, live)
        key, which, kind, name = parts
        obj = next((v for k, v in (live.get("objects") or {}).items() if k.lower() == key.lower()), None)
        item = ITEMS.entries_by_key(obj, which).get((kind, name.lower()))
        if change.action == "delete":
            return item is None
        return item is not None and all(item["flags"].get(k) == v for k, v in (change.after or {}).items())

    # -- import ------------------------------------------------------------------------------------------------

    def export(self, client: VboClient) -> Export:
        """The generic export (job fields, references by name), with each job's item lists as templates write
        them (principals by name and their flags)."""
        exported = super().export(client)
        if exported.unavailable:
            return exported
        lists = tuple(f".{which}:" for which in _LISTS)
        exported.warnings = [w for w in exported.warnings if not any(mark in w for mark in lists)]
        return self.with_lists(client, exported, _LISTS, drop=("runNow",))


# -- helpers -----------------------------------------------------------------------------------------------------

def _copied_by(client: VboClient, objects: dict[str, Any]) -> dict[str, str]:
    """The name of the copy job of each live job that has one, by the job's key: read whether or not a template
    declares ``copy_jobs`` (one list, shared with that kind's read through the resolver), because the server refuses
    to delete a job a copy job copies, and a plan that deletes or replaces the job must say so first."""
    by_id = {str(obj["id"]).lower(): key for key, obj in objects.items()}
    if not by_id:
        return {}
    return {by_id[str(c.get("backupJobId")).lower()]: str(c.get("name") or "")
            for c in refs.resolver(client).objects("copy_jobs").items
            if str(c.get("backupJobId")).lower() in by_id}


def _finder(live: dict[str, Any], org: str) -> Callable[[str, str, str], dict[str, Any]]:
    def find(kind: str, name: str, where: str) -> dict[str, Any]:
        found = ITEMS.known(live, org, kind, name)
        if found is None:  # read resolved every declared name, or raised naming it
            raise ProjectError(f"{where}: organization '{org}': no {job_items.WORDS[kind]} named '{name}'")
        return found
    return find


def _elsewhere(objects: dict[str, Any], key: str | None, kind: str, name: str) -> list[str]:
    """The other live jobs that back up the principal ``name``, by address: those whose selected items hold it,
    and those of its organization backing up the entire organization without excluding it."""
    here = next((obj for k, obj in objects.items() if key is not None and k.lower() == key.lower()), None)
    org = str(((here or {}).get("values") or {}).get("organization") or "").lower()
    found = []
    for other, obj in sorted(objects.items(), key=lambda i: i[0].lower()):
        if obj is here:
            continue
        holds = (kind, name.lower()) in ITEMS.entries_by_key(obj, "selectedItems")
        excluded = (kind, name.lower()) in ITEMS.entries_by_key(obj, "excludedItems")
        whole = obj["values"].get("backupType") == "EntireOrganization" and not excluded \
            and str(obj["values"].get("organization") or "").lower() == org
        if holds or whole:
            found.append(str(object_address("backup_jobs", other)))
    return found
