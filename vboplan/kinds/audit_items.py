"""Audit items: per organization, the users and groups whose backed-up data triggers an audit mail when touched.

A named collection like the others (:data:`SPEC`, one line of the registry), keyed by the organization's name; what
is irregular about its API is said by typed hooks (:class:`AuditItemHooks`): the items are kept under each
organization, name principals of its directory, and are added in one request and removed in another. Its kind
(:class:`AuditItemsKind`) plans lists of principals rather than objects of fields.

Templates name principals (e-mail, display name or group name); the API wants opaque ids. Resolution stays cheap:
names already in the organization's audit items need no lookup (each item carries its principal's names); a few new
names use the API's own filters; many new names page the directory once with the largest page the API allows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property, partial
from operator import attrgetter, itemgetter
from typing import Any, Literal, NamedTuple, Protocol, TypeVar, runtime_checkable

import msgspec
from msgspec.structs import asdict

from vboplan import progress
from vboplan.api.client import VboClient
from vboplan.api.rest import Operation
from vboplan.api.streaming import NotOfShape, Shape
from vboplan.api.versions import TRAITS, VERSIONS
from vboplan.errors import PlanError, ProjectError, RenderError
from vboplan.kinds import principals, refs
from vboplan.kinds.base import Basis, Export, Request, Write, named_organizations
from vboplan.kinds.collection import SpecKind
from vboplan.kinds.hooks import InParent, ResolvesNames, WritesInBulk
from vboplan.kinds.spec import Api, CollectionSpec, Reference
from vboplan.planning.changes import Address, Change, Drift, make
from vboplan.project.yamlfile import Located
from vboplan.schema import nearest
from vboplan.sensitive import Sensitive
from vboplan.threads import ThreadPoolExecutor

PRINCIPALS = {"users": "User", "groups": "Group"}
T = TypeVar("T")

_SINGULAR = {"User": "user", "Group": "group"}
_PLURAL = {"User": "users", "Group": "groups"}
#: Removing at most this many audit items of one organization is never a mass deletion (see vboplan.planning.guard).
ITEMS_GUARDED = 10
#: Names and principals: the directory machinery audit items share with jobs and roles.
PAGE_THRESHOLD = principals.PAGE_THRESHOLD
_LOOKUP_WORKERS = principals.LOOKUP_WORKERS
describe = principals.describe
_key = principals.key


_ITEMS_PATH = "Organizations/{organizationId}/AuditItems"


def address(org: str, kind: str, name: str) -> Address:
    return Address("audit_items").entry(org).field(_SINGULAR[kind]).entry(name)


class AuditItemHooks:
    """What is irregular about audit items' API (:mod:`vboplan.kinds.hooks`): kept under each organization
    (:class:`~vboplan.kinds.hooks.InParent`), naming principals of its directory (:class:`~vboplan.kinds.hooks.
    ResolvesNames`), added in one request and removed in another (:class:`~vboplan.kinds.hooks.WritesInBulk`: v5
    removes through its ``action`` form), planned by a kind of their own (:class:`~vboplan.kinds.hooks.MakesKind`)."""

    def kind(self, spec: CollectionSpec) -> AuditItemsKind:
        return AuditItemsKind(spec)

    def parent(self, client: VboClient, key: str) -> dict[str, Any]:
        return refs.resolver(client).organization(key)

    def resolve(self, client: VboClient, parent: dict[str, Any], kind: str, names: list[str]) -> dict[str, Any]:
        return principals.resolve(client, parent, kind, names)

    def added(self, version: str, objects: list[dict[str, Any]]) -> Any:
        return objects

    def removed(self, version: str, ids: list[str]) -> Any:
        return {"remove": {"itemIds": ids}} if TRAITS[version].audit_remove_v5_form else {"itemIds": ids}


@runtime_checkable
class _Hooks(InParent, ResolvesNames, WritesInBulk, Protocol):
    """The hooks :class:`AuditItemsKind` needs of its spec."""


def _api(version: str) -> Api:
    """Audit items' calls in ``version``: one unpaged list, a POST of many items, a POST removing many (statuses
    from Veeam's documents; v5's from a real server, see :mod:`vboplan.api.versions`)."""
    traits = TRAITS[version]
    remove = Operation("POST", f"{_ITEMS_PATH}/action", (200, 204)) if traits.audit_remove_v5_form else \
        Operation("POST", f"{_ITEMS_PATH}/remove", (traits.audit_remove_status, 200, 204))
    return Api(list=Operation("GET", _ITEMS_PATH), request="RESTAuditUserOrGroup", response="RESTAuditUserOrGroup",
               create=Operation("POST", _ITEMS_PATH, (traits.audit_add_status, 200, 201, 204)), delete=remove)


SPEC = CollectionSpec(
    key="audit_items", key_field="name", versions={version: _api(version) for version in VERSIONS},
    references=(Reference("organizationId", "organizations"),), guard="organization",
    summary="which users and groups of each organization are audited, by name", emulated=False,
    hooks=AuditItemHooks())


@dataclass(frozen=True)
class AuditItemsKind(SpecKind):
    """``audit_items``: the declared list is the whole truth for each organization it names."""

    @cached_property
    def _hooks(self) -> _Hooks:
        hooks = self.spec.hooks
        if not isinstance(hooks, _Hooks):
            raise TypeError(f"{self.name}: the spec's hooks must find the parent, resolve names and write in bulk")
        return hooks

    # -- templates ---------------------------------------------------------------------------------------------

    def normalise(self, version: str, raw: Any, where: Callable[[Any], str]) -> dict[str, dict[str, list[str]]]:
        if not isinstance(raw, dict):
            raise RenderError(f"{where(None)}: audit_items must map organization names to users and groups")
        desired: dict[str, dict[str, list[str]]] = {}
        for org, spec in raw.items():
            org_name = str(org)
            here = str(Address("audit_items").entry(org_name))  # as addresses spell it, double quotes
            if spec is None:
                spec = {}
            if not isinstance(spec, dict):
                raise RenderError(f"{where(org)}: {here} must be a mapping with users and groups")
            entry: dict[str, list[str]] = {"users": [], "groups": []}
            for key, names in spec.items():
                line = spec.where(key) if isinstance(spec, Located) else where(org)
                if str(key).lower() in ("sites", "teams", "site", "team"):
                    raise RenderError(f"{line}: {here}.{key}: Veeam audits users and groups only; "
                                      "audit the team's or site's group instead (under groups)")
                if str(key) not in PRINCIPALS:
                    hint = nearest(str(key), list(PRINCIPALS))
                    raise RenderError(f"{line}: {here}: unknown key '{key}' (use users, groups)"
                                      + (f"; did you mean '{hint}'?" if hint else ""))
                if names is None:
                    names = []
                if not isinstance(names, list):
                    raise RenderError(f"{line}: {here}.{key} must be a list of names")
                kinds = set(map(type, names))  # the types of the names, found at C speed
                if kinds == {str}:
                    # A long list of plain names (often generated): checked in bulk; the loop below names the
                    # first empty or repeated one when there is one.
                    stripped = _stripped(names)
                    lowered = set(_lowered(stripped))
                    if len(lowered) == len(stripped) and "" not in lowered:
                        entry[str(key)] = stripped
                        continue
                elif not all(isinstance(n, (str, Sensitive)) for n in names):
                    raise RenderError(f"{line}: {here}.{key} must be a list of names")
                seen: dict[str, str] = {}
                for name in names:
                    text = str(name.reveal() if isinstance(name, Sensitive) else name).strip()
                    if not text:
                        raise RenderError(f"{line}: {here}.{key} has an empty name")
                    if text.lower() in seen:
                        raise RenderError(f"{line}: {here}.{key} names '{text}' twice")
                    seen[text.lower()] = text
                entry[str(key)] = list(seen.values())
            if org_name.lower() in (o.lower() for o in desired):
                raise RenderError(f"{where(org)}: organization '{org_name}' is listed twice")
            desired[org_name] = entry
        return desired

    def scope(self, desired: dict[str, dict[str, list[str]]]) -> dict[str, dict[str, list[str]]]:
        return {org: {k: sorted(v) for k, v in spec.items()} for org, spec in sorted(desired.items())}

    def addresses(self, scope: dict[str, dict[str, list[str]]]) -> set[Address]:
        found = {Address(self.name)}
        for org, declared in scope.items():
            found |= {Address(self.name).entry(org)}
            for key, kind in PRINCIPALS.items():
                found |= {address(org, kind, name) for name in declared.get(key, [])}
        return found

    def severity(self, change: Change) -> Any:
        """Removing an audit item is a warning (see :mod:`vboplan.policy.severity`)."""
        from vboplan.policy.severity import audit_item_severity

        return audit_item_severity(change)

    def desired_value(self, desired: Any, change: Change) -> Any:
        return None  # nothing sensitive: principals are named, not secret

    def policy_objects(self, desired: Any, live: Any) -> list[Any]:
        """Policy rules see one object per organization (:class:`~vboplan.policy.objects.HasPolicyObjects`): the
        declared users and groups, and the audited ones by name with how many items there are (a plan keeps only
        the count and a digest of a long list, so the names are then absent)."""
        from vboplan.policy.objects import PolicyObject, keys_of, masked

        organizations = live.get("organizations") if isinstance(live, dict) else None
        return [PolicyObject(Address(self.name).entry(org), masked((desired or {}).get(org)),
                             _audited(held) if isinstance(held := (organizations or {}).get(org), dict) else None)
                for org in keys_of(desired, organizations)]

    def policy_fields(self) -> set[str]:
        """The fields rules may name (:class:`~vboplan.policy.objects.HasPolicyFields`)."""
        return {"users", "groups", "count"}

    # -- live --------------------------------------------------------------------------------------------------

    def read(self, client: VboClient, scope: dict[str, dict[str, list[str]]]) -> dict[str, Any]:
        """Audit items of each organization in scope, and the principals the declared names resolve to."""
        if not scope:
            return {"organizations": {}}
        orgs = {org.lower(): self._hooks.parent(client, org) for org in scope}
        with ThreadPoolExecutor(max_workers=min(len(scope), _LOOKUP_WORKERS)) as pool:
            results = pool.map(lambda org: (org, self._read_org(client, orgs[org.lower()], scope[org])), scope)
            return {"organizations": dict(results)}

    def refresh(self, client: VboClient, scope: dict[str, dict[str, list[str]]], live: dict[str, Any]) -> dict[str, Any]:
        """The audit items of the organizations in ``live`` (an earlier read of ``scope``), fetched again by
        organization id; the principals the names resolved to are kept from ``live``. An approved change names its
        principal by id, so an apply needs the items, never the directory."""
        known = live.get("organizations", {}) if isinstance(live, dict) else {}
        if set(known) != set(scope) or not all(isinstance(known[org], dict) and "id" in known[org] for org in known):
            return self.read(client, scope)

        def one(org: str) -> dict[str, Any]:
            return {"id": known[org]["id"], "items": _items(client, str(known[org]["id"])),
                    "resolved": known[org].get("resolved", {})}

        if not scope:
            return {"organizations": {}}
        with ThreadPoolExecutor(max_workers=min(len(scope), _LOOKUP_WORKERS)) as pool:
            return {"organizations": dict(zip(scope, pool.map(one, scope), strict=True))}

    def _read_org(self, client: VboClient, org: dict[str, Any], declared: dict[str, list[str]]) -> dict[str, Any]:
        """The organization's audit items, and the principals of the declared names that are not among them
        (``resolved``, by lower-cased name): a name an audited item carries is resolved from the items themselves,
        here and in :meth:`diff`, so a converged organization keeps no second copy of its principals."""
        org_id = str(org["id"])
        items = _items(client, org_id)
        resolved: dict[str, dict[str, Any]] = {}
        for key, kind in PRINCIPALS.items():
            names = declared.get(key, [])
            if _covered(items, kind, _lowered(names)):
                unresolved = []  # every name is an audited item's own (the usual case): nothing to look up
            else:
                by_name = _audited_by_name(items, kind)
                unresolved = [n for n in names if by_name.get(n.lower()) is None]
            if unresolved:
                progress.phase(f"resolving {len(unresolved)} {key[:-1]} name{'s' if len(unresolved) != 1 else ''} "
                               f"in {org.get('name')}", client.settings.name)
            found = self._hooks.resolve(client, org, kind, unresolved)
            resolved[key] = {n.lower(): found[n] for n in unresolved}
        return {"id": org_id, "items": items, "resolved": resolved}

    # -- plan --------------------------------------------------------------------------------------------------

    def diff(self, version: str, live: dict[str, Any], desired: dict[str, dict[str, list[str]]],
             recorded: Any | None) -> list[Change]:
        changes: list[Change] = []
        for org, declared in sorted(desired.items()):
            org_live = live["organizations"][org]
            for key, kind in PRINCIPALS.items():
                if not org_live["resolved"].get(key) and _all_named(org_live["items"], kind,
                                                                    _lowered(declared.get(key, []))):
                    continue  # every audited item declared by its own name, and nothing else: no change
                audited = {i.principalId: i for i in org_live["items"] if i.type == kind}
                wanted = _wanted(org_live, key, kind, declared.get(key, []))
                for principal_id, principal in wanted.items():
                    if principal_id not in audited and principal is not None:
                        # Addressed by the principal's own name, as its removal will be: one address from
                        # create to delete, whichever name (e-mail or display name) the template used.
                        changes.append(make("create", self.name, address(org, kind, _key(principal)), None,
                                            describe(principal), False,
                                              {"org": org, "orgId": org_live["id"], "type": kind,
                                               "principal": principal}))
                gone = [(pid, item) for pid, item in audited.items() if pid not in wanted]
                for principal_id, item in sorted(gone, key=lambda p: p[1].name):
                    changes.append(make("delete", self.name, address(org, kind, _key(item)), describe(item), None,
                                        False, {"org": org, "orgId": org_live["id"], "type": kind,
                                                "itemId": item.id, "principalId": principal_id}))
        _indexes.clear()  # the indexes were for this diff; large ones should not outlive it
        return changes

    def derive(self, basis: Basis, address: Address, action: str, after: Any) -> Change:
        """An audit item's change from its address alone: the organization and the principal it names, found in the
        recorded audit items (a delete) or in the recorded directory answer for the names the templates declare (a
        create); never an id the row carries."""
        org, kind, name = self._target(address)
        declared = ((basis.scope or {}).get(org) or {}).get(_PLURAL[kind]) if isinstance(basis.scope, dict) else None
        data = ((basis.live or {}).get("organizations") or {}).get(org) if isinstance(basis.live, dict) else None
        if not isinstance(declared, list) or not isinstance(data, dict) or not isinstance(data.get("id"), str):
            raise PlanError(f"{address}: no template of the plan declares the audit items of '{org}'")
        # Lowered once per declared list, not once per change (an apply derives thousands of changes from it).
        names = _index("declared", declared, lambda d: {n.lower() for n in d if isinstance(n, str)})
        where = {"org": org, "orgId": data["id"], "type": kind}
        items = data.get("items")
        known = items if isinstance(items, list) else data.get("items_kept")
        if action == "create":
            principal = _principal_named(data, kind, name, names, address)
            if isinstance(items, list) and str(principal["id"]) in _ids_of(items)[0]:
                raise PlanError(f"{address}: {describe(principal)} is audited already")
            return make("create", self.name, address, None, describe(principal), False,
                        {**where, "principal": principal})
        if action != "delete":
            raise PlanError(f"{address}: an audit item is created or deleted, not {action}d")
        found = _items_by_key(known if isinstance(known, list) else [], kind).get(name, [])
        if len(found) != 1:
            raise PlanError(f"{address}: the plan's recorded audit items of '{org}' hold "
                            + ("no" if not found else f"{len(found)}") + f" {_SINGULAR[kind]} item(s) named '{name}'")
        item = found[0]
        if {str(item.get("name")).lower(), str(item.get("displayName")).lower()} & names:
            raise PlanError(f"{address}: the templates declare {describe(item)}; removing its audit item is no change "
                            "they ask for")
        return make("delete", self.name, address, describe(item), None, False,
                    {**where, "itemId": str(item["id"]), "principalId": str(item["principalId"])})

    @staticmethod
    def _target(address: Address) -> tuple[str, str, str]:
        """(organization, "User" or "Group", principal name) of an item's address."""
        parts = address.parts
        if address.kind == "audit_items" and len(parts) == 3 and [p[0] for p in parts] == ["[", ".", "["] \
                and parts[1][1] in ("user", "group"):
            return parts[0][1], parts[1][1].capitalize(), parts[2][1]
        raise PlanError(f'{address}: not an address of an audit item (audit_items["ORGANIZATION"].user["NAME"] or '
                        '.group["NAME"])')

    # -- apply -------------------------------------------------------------------------------------------------

    def writes(self, basis: Basis, changes: list[Change]) -> list[Write]:
        """Per organization one request of the spec's create adding the new items and one of its delete removing
        the old ones (:class:`~vboplan.kinds.hooks.WritesInBulk` says their bodies)."""
        api = self.spec.api(basis.version)
        if api is None or api.create is None or api.delete is None:
            raise PlanError(f"{self.name} is not in API {basis.version}")
        writes: list[Write] = []
        for org in sorted({c.detail["org"] for c in changes}):
            creates = [c for c in changes if c.detail["org"] == org and c.action == "create"]
            deletes = [c for c in changes if c.detail["org"] == org and c.action == "delete"]
            if creates:
                org_id = creates[0].detail["orgId"]
                body = self._hooks.added(basis.version, [{"type": c.detail["type"],
                                                          _SINGULAR[c.detail["type"]]: c.detail["principal"]}
                                                         for c in creates])
                path = api.create.url(organizationId=org_id)
                request = Request(api.create.method, path, body, expect=api.create.status)
                writes.append(Write(f"{api.create.method} /{basis.version}/{path} ({len(creates)} to add in {org})",
                                    creates, requests=[request], learn=partial(_new_ids, org_id, creates),
                                    learns=[c.address for c in creates]))
            if deletes:
                org_id = deletes[0].detail["orgId"]
                body = self._hooks.removed(basis.version, [c.detail["itemId"] for c in deletes])
                request = Request(api.delete.method, api.delete.url(organizationId=org_id), body,
                                  expect=api.delete.status)
                writes.append(Write(f"remove {len(deletes)} audit items of {org}", deletes, requests=[request]))
        return writes

    def deletions(self, changes: list[Change], live: Any) -> list[tuple[Any, ...]]:
        """For the mass-delete guard (:class:`~vboplan.kinds.hooks.Guarded`): per organization whose items the
        changes remove more than :data:`ITEMS_GUARDED` of, how many of how many (a plan file keeps a large
        organization's items by their count)."""
        deleting: dict[str, int] = {}
        for change in changes:
            if change.kind == self.name and change.action == "delete":
                org = str(change.detail.get("org", ""))
                deleting[org] = deleting.get(org, 0) + 1
        organizations = (live.get("organizations") or {}) if isinstance(live, dict) else {}
        found: list[tuple[Any, ...]] = []
        for org, count in sorted(deleting.items()):
            data = organizations.get(org) if isinstance(organizations.get(org), dict) else {}
            total = data.get("item_count") or len(data.get("items") or []) or count
            if count > ITEMS_GUARDED:
                found.append((org, count, max(int(total), count), "audit items"))
        return found

    def confirm(self, client: VboClient, changes: list[Change]) -> None:
        """Each principal a create adds is, on the server, the one its row shows: the recorded directory answer it
        was derived from is the plan author's to edit. One GET by id each (a directory walk for more than
        :data:`PAGE_THRESHOLD` of one kind in one organization), before anything is sent."""
        groups: dict[tuple[str, str], list[Change]] = {}
        for change in changes:
            if change.action == "create":
                groups.setdefault((str(change.detail["orgId"]), change.detail["type"]), []).append(change)
        for (org_id, kind), group in groups.items():
            held = principals.by_ids(client, org_id, kind, [str(c.detail["principal"]["id"]) for c in group])
            for change in group:
                shown = change.detail["principal"]
                found = held.get(str(shown["id"]))
                if found is None or (found["name"], found["displayName"]) != (shown.get("name") or "",
                                                                              shown.get("displayName") or ""):
                    really = describe(found) if found else "nobody"
                    raise PlanError(f"{change.id} ({change.address}): the server's directory says the "
                                    f"{_SINGULAR[kind]} with id {shown['id']} is {really}, not {describe(shown)}; "
                                    "the plan file was edited; run 'vboplan plan' again")

    def verify(self, change: Change, live: dict[str, Any]) -> bool:
        principals, ids = _ids_of(live["organizations"].get(change.detail["org"], {}).get("items", []))
        if change.action == "create":
            return str(change.detail["principal"]["id"]) in principals
        return str(change.detail["itemId"]) not in ids

    def condense(self, live: Any, changes: list[Change] | None = None) -> Any:
        """``live`` as a plan file keeps it: an organization with more than :data:`KEEP_ITEMS_UP_TO` audit items by
        their count and a SHA-256 digest instead of the items (what an apply compares them by; the items are read
        again anyway), so a plan over 100,000 audited users is not tens of megabytes of copies of the server. The
        items ``changes`` delete are kept (``items_kept``), so each delete is derived from the file alone; apply
        derives it again from the items it re-reads. Without ``changes`` (what a stale check compares) none are."""
        removed = {str(c.detail.get("itemId")) for c in changes or [] if c.action == "delete"}
        if not isinstance(live, dict) or not isinstance(live.get("organizations"), dict):
            return live
        organizations = {}
        for org, data in live["organizations"].items():
            if not isinstance(data, dict) or not isinstance(data.get("items"), list):
                # Condensed already (compared without the items it kept), or not this kind's shape: as it is.
                organizations[org] = {k: v for k, v in data.items() if k != "items_kept"} \
                    if isinstance(data, dict) else data
                continue
            items = data["items"]
            kept: dict[str, Any] = {"id": data.get("id")}
            if len(items) <= KEEP_ITEMS_UP_TO:
                kept["items"] = [_plain(item) for item in items]
            else:
                kept["item_count"] = len(items)
                kept["items_sha256"] = _items_digest(items)
                if removed:
                    kept["items_kept"] = [_plain(item) for item in items if item["id"] in removed]
            kept["resolved"] = data.get("resolved", {})
            organizations[org] = kept
        return {"organizations": organizations}

    def snapshot(self, live: dict[str, Any], applied: list[Change], recorded: Any | None) -> dict[str, Any]:
        organizations = dict((recorded or {}).get("organizations", {}))
        for org, data in live["organizations"].items():
            organizations[org] = {"id": data["id"], "items": [_plain(item) for item in data["items"]]}
        return {"organizations": organizations}

    def state_rows(self, recorded: Any) -> list[tuple[str, Any]]:
        rows: list[tuple[str, Any]] = []
        for org, data in sorted(((recorded or {}).get("organizations") or {}).items()):
            for item in data.get("items", []):
                rows.append((str(address(org, item["type"], item["name"] or item["displayName"])),
                             item.get("displayName")))
        return rows

    def forget(self, record: Any, address: Address) -> Any:
        """``state rm`` (:class:`~vboplan.kinds.hooks.Forgets`): ``record`` without an organization, or without the
        items whose rows lie at or under ``address``."""
        organizations = record.get("organizations") if isinstance(record, dict) else None
        parts = address.parts
        if not isinstance(organizations, dict) or parts[0][0] != "[" or parts[0][1] not in organizations:
            return None
        org, kept = parts[0][1], dict(organizations)
        if len(parts) == 1:
            del kept[org]
            return {**record, "organizations": kept}
        data = organizations[org]
        if not isinstance(data, dict) or not isinstance(data.get("items"), list) or parts[1][0] != ".":
            return None
        kept[org] = {**data, "items": [item for item in data["items"] if not self._covered(address, org, item)]}
        return {**record, "organizations": kept}

    def _covered(self, address: Address, org: str, item: Any) -> bool:
        rows = self.state_rows({"organizations": {org: {"items": [item]}}})
        return bool(rows) and all(address.covers(Address.parse(a)) for a, _ in rows)

    def drift(self, recorded: Any, live: dict[str, Any]) -> list[Drift]:
        drifts: list[Drift] = []
        for org, data in live["organizations"].items():
            before = (recorded or {}).get("organizations", {}).get(org)
            if before is None:
                continue
            was = dict(zip(_column(before.get("items", []), "principalId"), before.get("items", []), strict=True))
            now = dict(zip(_column(data["items"], "principalId"), data["items"], strict=True))
            for pid in sorted(set(was) ^ set(now), key=str):
                item = was.get(pid) or now[pid]
                drifts.append(Drift(address(org, item["type"], item["name"] or item["displayName"]),
                                    "audited" if pid in was else "not audited",
                                    "audited" if pid in now else "not audited"))
        return drifts


    # -- import ------------------------------------------------------------------------------------------------

    def export(self, client: VboClient) -> Export:
        """Each audited organization's users and groups, by the name that picks each one out among the
        organization's audit items (users by e-mail, groups by display name, the other name when the first is
        shared); a principal no name picks out is an error, as a list the plan cannot match is no adoption."""
        exported = Export({}, ("organization",), "audited users and groups of each organization")
        organizations = named_organizations(client, exported.warnings)
        with ThreadPoolExecutor(max_workers=max(1, min(len(organizations), _LOOKUP_WORKERS))) as pool:
            found = list(pool.map(lambda org: (org, client.audit_items(str(org["id"]), _item, ITEM_SHAPE)),
                                  organizations.values()))
        checks: list[tuple[dict[str, Any], str, str]] = []
        for org, items in found:
            if not items:
                # Nothing audited is declared as such: the list is the whole truth from the start, so someone
                # audited later (in the console) is planned for removal, as in every other organization imported.
                exported.values[str(org["name"])] = {"users": [], "groups": []}
                continue
            entry: dict[str, list[str]] = {}
            for key, kind in PRINCIPALS.items():
                audited = [i for i in items if i["type"] == kind]
                names = sorted((_label(org, kind, item, audited) for item in audited), key=str.lower)
                if names:
                    entry[key] = names
                displayed = {i["displayName"].lower() for i in audited if i["displayName"]}
                checks += [(org, kind, name) for name in names if name.lower() in displayed and "@" not in name]
            exported.values[str(org["name"])] = entry
        if checks:
            # Display names other principals of the directory share: the plan still matches the audited one, but
            # adding such a name again (after it was removed) would be ambiguous. All organizations at once.
            with ThreadPoolExecutor(max_workers=min(len(checks), _LOOKUP_WORKERS)) as pool:
                counts = list(pool.map(lambda check: principals.count_named(client, *check), checks))
            exported.warnings += [f"organization '{org.get('name')}': {n} {_SINGULAR[kind]}s are named '{name}'; "
                                  "the audited one is matched through the audit items, but its e-mail or group name "
                                  "would say which one is meant"
                                  for (org, kind, name), n in zip(checks, counts, strict=True) if n > 1]
        return exported


def _audited(held: dict[str, Any]) -> dict[str, Any]:
    """An organization's audit items as policy rules see them (:meth:`AuditItemsKind.policy_objects`)."""
    items = held.get("items")
    if not isinstance(items, list):
        return {"count": held.get("item_count", 0)}
    view: dict[str, Any] = {"count": len(items), "users": [], "groups": []}
    for item in items:
        key = _PLURAL.get(str(item.get("type")))
        if key:
            view[key].append(str(item.get("name") or ""))
    return view


def _new_ids(org_id: str, creates: list[Change], client: VboClient) -> dict[str, str]:
    """The ids the server gave the items ``creates`` added (the POST answers without a body), by address."""
    by_principal = {item["principalId"]: item["id"] for item in client.audit_items(org_id, _item, ITEM_SHAPE)}
    return {str(c.address): by_principal[str(c.detail["principal"]["id"])] for c in creates
            if str(c.detail["principal"]["id"]) in by_principal}


def _principal_named(data: dict[str, Any], kind: str, name: str, declared: set[str],
                     address: Address) -> dict[str, Any]:
    """The principal of the recorded directory answer ``address`` names: one the templates declare (by a name the
    plan resolved) whose own name (:func:`_key`) is ``name``."""
    resolved = (data.get("resolved") or {}).get(_PLURAL[kind]) or {}
    found = {str(p.get("id")): p for label, p in _resolved_by_key(resolved).get(name, []) if label in declared}
    if len(found) != 1:
        raise PlanError(f"{address}: the plan's recorded directory answer holds "
                        + ("no" if not found else f"{len(found)}") + f" declared {_SINGULAR[kind]}(s) named '{name}'")
    return next(iter(found.values()))


#: Up to this many audit items of one organization, a plan file keeps the items themselves (a stale plan then names
#: the items that changed); above it, their count and digest (see AuditItemsKind.condense).
KEEP_ITEMS_UP_TO = 1_000


def _items_digest(items: list[Any]) -> str:
    """SHA-256 over ``items`` in their order (``_items`` sorts them fully), a thousand at a time, each batch as
    compact JSON with sorted keys: msgspec encodes it in C (a batch it cannot encode, such as one holding a lone
    surrogate, is json's ASCII form of it). JSON text decodes to one value only, so no two lists read the same; it
    is 2x faster than joining each item's fields by hand, and scans the text once, not three times. An
    :class:`AuditItem` is encoded as the mapping of its fields (sorted too), twice as fast as that mapping."""
    digest = hashlib.sha256()
    for start in range(0, len(items), 1000):
        batch = items[start:start + 1000]
        try:
            digest.update(_DIGEST_ENCODER.encode(batch))
        except (TypeError, UnicodeEncodeError, msgspec.EncodeError):
            digest.update(json.dumps([_plain(item) for item in batch], sort_keys=True,
                                     separators=(",", ":")).encode("ascii"))
    return f"sha256:{digest.hexdigest()}"


_DIGEST_ENCODER = msgspec.json.Encoder(order="sorted")

# Indexes of a list of audit items, kept for the last list each was built for (by identity): a plan indexes the same
# items when reading and when diffing, and an apply verifies each change against the same read-back.
_indexes: dict[str, tuple[Any, Any]] = {}


def _index(name: str, items: Any, build: Callable[[Any], T]) -> T:
    """``build(items)``, built once for the last list asked about under ``name``."""
    held = _indexes.get(name)
    if held is None or held[0] is not items:
        held = _indexes[name] = (items, build(items))
    return held[1]  # type: ignore[no-any-return]


def _lower(text: str) -> str:
    return text if text.islower() else text.lower()  # most names are lower case already: no copy of them


_ASCII_SPACE = " \t\r\x0b\x0c\x1c\x1d\x1e\x1f"  # what str.strip() removes from ASCII text, newline aside


def _stripped(texts: list[str]) -> list[str]:
    """Each of ``texts`` stripped of surrounding whitespace: ``texts`` itself where none has any (a few substring
    searches over ASCII names joined), else one call each."""
    joined = "\n".join(texts)
    if joined.isascii() and joined.count("\n") == max(len(texts) - 1, 0) \
            and not (joined[:1].isspace() or joined[-1:].isspace()) \
            and not any(f"{space}\n" in joined or f"\n{space}" in joined for space in _ASCII_SPACE
                        if space in joined):
        return texts
    return [text.strip() for text in texts]


def _lowered(texts: list[str]) -> list[str]:
    """Each of ``texts`` lower-cased, in one C call over them all (the original strings where all are lower case
    already). A newline (the separator) in one of them falls back to one call each."""
    joined = "\n".join(texts)
    lowered_all = joined.lower()  # ASCII text (the usual) is lower-cased by a C loop over bytes
    if lowered_all == joined:
        return texts if joined.count("\n") == max(len(texts) - 1, 0) else [text.lower() for text in texts]
    lowered = lowered_all.split("\n")
    return lowered if len(lowered) == len(texts) and texts else [text.lower() for text in texts]


def _wanted(org_live: dict[str, Any], key: str, kind: str, names: list[str]) -> dict[str, Any]:
    """The principal ids the declared ``names`` of ``kind`` point at, each with the principal looked up in the
    directory (a name no audited item carries), or None (a name an audited item carries: no more is needed)."""
    looked_up = org_live["resolved"].get(key, {})
    labels = _lowered(names)
    wanted: dict[str, Any] = {}
    if looked_up:
        for label in labels:
            if label in looked_up:
                wanted.setdefault(str(looked_up[label]["id"]), looked_up[label])
        labels = [label for label in labels if label not in looked_up]
    own = _named_by_own_names(org_live["items"], kind, labels)
    if own is not None:
        # Every other name is an audited item's own name, and no other item's: the usual case, in C-speed steps.
        wanted.update(dict.fromkeys(item.principalId for item in own if item.principalId not in wanted))
        return wanted
    by_name = _audited_by_name(org_live["items"], kind)
    for label in labels:
        wanted.setdefault(by_name[label].principalId, None)  # type: ignore[union-attr]
    return wanted


def _named_by_own_names(items: list[AuditItem], kind: str, labels: list[str]) -> list[AuditItem] | None:
    """The audited item of ``kind`` each lower-cased label is the own name (``name``) of, or None unless every
    label is the own name of exactly one item and the display name of no other: what :func:`_audited_by_name`
    would answer for each, without building it."""
    if not _covered(items, kind, labels):
        return None
    own = _own_names(items, kind)
    assert own is not None  # covered
    by_name = dict(zip(own.names, own.items, strict=True))
    return [by_name[label] for label in labels]


def _covered(items: list[AuditItem], kind: str, labels: list[str]) -> bool:
    """Whether each lower-cased label is the own name of exactly one audited item of ``kind`` and the display name
    of no other (then no name needs looking up)."""
    own = _own_names(items, kind)
    return own is not None and own.unique.issuperset(labels) and own.clash.isdisjoint(labels)


def _all_named(items: list[AuditItem], kind: str, labels: list[str]) -> bool:
    """Whether the lower-cased ``labels`` are the own names of all the audited items of ``kind``, each of exactly
    one and the display name of no other item: then they want every item and no other principal (converged)."""
    own = _own_names(items, kind)
    if own is None:
        return False
    wanted = set(labels)
    return wanted == own.unique and own.clash.isdisjoint(wanted)


class _OwnNames(NamedTuple):
    items: list[AuditItem]  # the audited items of one kind
    names: list[str]  # their own names, lower-cased, in the same order
    unique: set[str]  # those names (as many as there are items)
    clash: set[str]  # those that are also another item's display name


def _own_names(items: list[AuditItem], kind: str) -> _OwnNames | None:
    """The audited items of ``kind`` with their lower-cased own names, and the names that are also another item's
    display name; None where two items share a name. Sets and lists built at C speed (no mapping of names to
    items: a converged organization needs none), once per list of items (the read and the diff)."""
    def build(items: list[AuditItem]) -> _OwnNames | None:
        of_kind = [item for item in items if item.type == kind]
        names = _lowered(list(map(_NAME, of_kind)))
        unique = set(names)
        if len(unique) != len(of_kind):
            return None
        displays = _lowered(list(map(_DISPLAY, of_kind)))
        clash = unique.intersection(displays)
        if clash:  # rare: keep only the names some other item displays (an item may display its own name)
            clash = {display for display, name in zip(displays, names, strict=True)
                     if display != name and display in clash}
        return _OwnNames(of_kind, names, unique, clash)

    return _index(f"own names: {kind}: {id(items)}", items, build)


def _audited_by_name(items: list[AuditItem], kind: str) -> dict[str, AuditItem | None]:
    """The audited item of ``kind`` each lower-cased name and display name points at, or None where it points at
    more than one (:meth:`AuditItemsKind.diff` lets the index go)."""
    def build(items: list[AuditItem]) -> dict[str, AuditItem | None]:
        by_name: dict[str, AuditItem | None] = {}
        for item in items:
            if item.type == kind:
                name, display = _lower(item.name), _lower(item.displayName)
                for label in (name, display) if display != name else (name,):
                    if label:
                        by_name[label] = item if label not in by_name else None
        return by_name

    return _index(f"by name: {kind}", items, build)


def _items_by_key(items: list[Any], kind: str) -> dict[str, list[dict[str, Any]]]:
    """The items of ``kind`` by the name their addresses use (:func:`_key`)."""
    def build(items: list[Any]) -> dict[str, list[dict[str, Any]]]:
        by_key: dict[str, list[dict[str, Any]]] = {}
        for item in items:
            if isinstance(item, (dict, AuditItem)) and item.get("type") == kind:
                by_key.setdefault(_key(item), []).append(item)
        return by_key

    return _index(f"by key: {kind}", items, build)


def _resolved_by_key(resolved: Any) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """A recorded directory answer (declared name -> principal) by the name addresses use: (declared name,
    principal) pairs."""
    def build(resolved: Any) -> dict[str, list[tuple[str, dict[str, Any]]]]:
        by_key: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for label, principal in resolved.items() if isinstance(resolved, dict) else []:
            if isinstance(principal, dict):
                by_key.setdefault(_key(principal), []).append((label, principal))
        return by_key

    return _index("resolved by key", resolved, build)


def _ids_of(items: list[dict[str, Any]]) -> tuple[frozenset[str], frozenset[str]]:
    """The principal ids and item ids of ``items``."""
    return _index("ids", items, lambda items: (frozenset(map(str, _column(items, "principalId"))),
                                               frozenset(map(str, _column(items, "id")))))


def _column(items: list[Any], field: str) -> list[Any]:
    """``field`` of each of ``items``: attributes of :class:`AuditItem` (read from the server) at C speed, or keys of
    the mappings a plan file or snapshot holds."""
    try:
        return list(map(attrgetter(field), items))
    except AttributeError:
        return list(map(itemgetter(field), items))


def _items(client: VboClient, org_id: str) -> list[AuditItem]:
    """The organization's audit items ordered by type, name and id: three stable sorts, least significant key
    first (the order of one sort by the three as a tuple, without a tuple per item: 2.4x faster for 100,000 items
    in random order, 20 % slower for items already in that order). A sort that cannot change the order is left out:
    by id where no two items share a name (the usual case; 18 ms of 19 for 10,000 items), by type where all are of
    one type."""
    items = client.audit_items(org_id, _item, ITEM_SHAPE)
    if len(set(map(_NAME, items))) < len(items):
        items.sort(key=_ID)
    items.sort(key=_NAME)
    if len(set(map(_TYPE, items))) > 1:
        items.sort(key=_TYPE)
    return items


_ID, _NAME, _TYPE, _DISPLAY = attrgetter("id"), attrgetter("name"), attrgetter("type"), attrgetter("displayName")


class AuditItem(msgspec.Struct, frozen=True, gc=False):
    """An audit item as vboplan keeps it: its id and type ("User" or "Group"), and its user's or group's id and
    names. A struct, not a dict: 56 bytes instead of 184 for each of an organization's 100,000 items, built 3x
    faster, and encoded for the digest 2x faster (see :func:`_items_digest`). Outside the C-speed paths it reads
    as the mapping plan files and snapshots hold (``item["name"]``, ``item.get("url")``, ``dict(item)``); what
    is written to a file is that mapping (:func:`_plain`). Untracked by the cycle collector: it holds strings only."""

    id: str
    type: str
    principalId: str  # noqa: N815 - the names plan files and snapshots use
    name: str
    displayName: str  # noqa: N815

    def __getitem__(self, key: str) -> str:
        if key in _FIELDS:
            return getattr(self, key)  # type: ignore[no-any-return]
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in _FIELDS else default

    def keys(self) -> tuple[str, ...]:
        return self.__struct_fields__

    def __iter__(self) -> Any:
        return iter(self.__struct_fields__)

    def __contains__(self, key: object) -> bool:
        return key in _FIELDS


_FIELDS = frozenset(AuditItem.__struct_fields__)


def _plain(item: Any) -> Any:
    """``item`` as a file holds it: the mapping of its fields, in their order (a mapping read from a file as it is)."""
    return asdict(item) if type(item) is AuditItem else item


def _item(raw: dict[str, Any]) -> AuditItem:
    """An audit item as vboplan keeps it (:class:`AuditItem`) from Veeam's ``AuditItem`` as json decodes it."""
    kind = "Group" if str(raw.get("type", "")).lower() == "group" else "User"
    principal = raw.get(_SINGULAR[kind])
    if principal is None:
        principal = {}
    elif not isinstance(principal, dict):
        raise NotOfShape()  # as msgspec refuses it (ITEM_SHAPE)
    return AuditItem(str(raw.get("id")), kind, str(principal.get("id")), str(principal.get("name") or ""),
                     str(principal.get("displayName") or ""))


class _WirePrincipal(msgspec.Struct, gc=False):
    """The fields of an audit item's user or group that vboplan keeps (Veeam's answer carries a dozen more).
    Decoded JSON holds no reference cycles, so these are left out of the cycle collector: decoding 10,000 items is
    then about 3x faster, as the collector no longer walks every item decoded so far each time it runs."""

    id: Any = None
    name: Any = None
    displayName: Any = None  # noqa: N815 - the API's name


class _WireItem(msgspec.Struct, gc=False):
    id: Any = None
    type: Any = ""
    user: _WirePrincipal | None = None
    group: _WirePrincipal | None = None


def _item_of(wire: _WireItem) -> AuditItem:
    """:func:`_item` of an item msgspec decoded (the same item for the same JSON)."""
    group = wire.type == "Group" or (wire.type != "User" and str(wire.type).lower() == "group")
    principal = (wire.group if group else wire.user) or _NOBODY
    name, display = principal.name, principal.displayName
    return AuditItem(wire.id if type(wire.id) is str else str(wire.id), "Group" if group else "User",
                     principal.id if type(principal.id) is str else str(principal.id),
                     name if type(name) is str else str(name or ""),
                     display if type(display) is str else str(display or ""))


_NOBODY = _WirePrincipal()
_KINDS = {"User": "User", "Group": "Group"}


def _items_of(batch: list[_WireItem]) -> list[AuditItem]:
    """:func:`_item_of` of each item of ``batch``: the usual item (a User or Group with string fields) without a
    call of its own."""
    items = []
    for wire in batch:
        kind = _KINDS.get(wire.type)
        principal = ((wire.group if kind == "Group" else wire.user) or _NOBODY) if kind else _NOBODY
        if kind and type(wire.id) is str and type(principal.id) is str and type(principal.name) is str \
                and type(principal.displayName) is str:
            items.append(AuditItem(wire.id, kind, principal.id, principal.name, principal.displayName))
        else:
            items.append(_item_of(wire))
    return items


class _StrictPrincipal(msgspec.Struct, gc=False):
    """A user or group as Veeam's server sends it: an id and names that are strings (a missing name is "")."""

    id: str
    name: str = ""
    displayName: str = ""  # noqa: N815 - the API's name


class _StrictItem(msgspec.Struct, gc=False):
    id: str
    type: Literal["User", "Group"]
    user: _StrictPrincipal | None = None
    group: _StrictPrincipal | None = None


def _strict_items(batch: list[_StrictItem]) -> list[AuditItem]:
    """:func:`_items_of` of a batch msgspec checked to be strings of the usual shape: one comprehension, no check
    per field (a third faster); an item without its principal goes through :func:`_items_of`."""
    try:
        return [AuditItem(wire.id, wire.type,
                          (principal := wire.user if wire.type == "User" else wire.group).id,  # type: ignore[union-attr]
                          principal.name, principal.displayName)  # type: ignore[union-attr]
                for wire in batch]
    except AttributeError:  # a User item without its user (or a Group without its group)
        return _items_of(batch)  # type: ignore[arg-type]


#: Audit items decoded by msgspec in batches as they arrive, keeping only what :func:`_item` keeps.
ITEM_SHAPE = Shape(_WireItem, _items_of, _StrictItem, _strict_items)


def _label(org: dict[str, Any], kind: str, item: dict[str, Any], audited: list[dict[str, Any]]) -> str:
    """The name of an audited principal that no other audited principal of its kind answers to (the plan resolves
    names against the audit items first); e-mail first for users, display name first for groups."""
    order = ("name", "displayName") if kind == "User" else ("displayName", "name")
    for attribute in order:
        label = item[attribute]
        if not label or label != label.strip():
            continue
        holders = [i for i in audited if label.lower() in (i["name"].lower(), i["displayName"].lower())]
        if len(holders) == 1:
            return label
    raise ProjectError(f"organization '{org.get('name')}': the audited {_SINGULAR[kind]} {describe(item)} has no "
                       f"name that tells it apart from the other audited {_SINGULAR[kind]}s; vboplan names principals "
                       "by e-mail, user or group name, or display name. Rename one of them on the server, or import "
                       "without audit_items (--resource)")
