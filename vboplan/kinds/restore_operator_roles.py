"""``restore_operator_roles``: who may restore whose data, per organization (Veeam Backup for Microsoft 365 REST API
reference, helpcenter.veeam.com/docs/vbo365/rest/, "Restore Operator Roles"; OpenAPI documents v6, v7, v8), by name.

A role names its organization by name, ``roleType`` (``EntireOrganization`` or ``SpecificObjects``), ``description``,
and three lists of principals by name (:mod:`vboplan.kinds.principals`): ``operators`` (users and groups who may
restore), ``selectedItems`` (what they may restore, for ``SpecificObjects``) and ``excludedItems`` (what they may
not), each entry ``{user: NAME}``, ``{group: NAME}``, ``{site: URL}`` or (v7 on) ``{team: NAME}``. Every version
creates a role with ``POST /Organizations/{organizationId}/RbacRoles`` (200, v8 201) and edits it with
``PUT /RbacRoles/{roleId}`` (204); the lists change through ``/RbacRoles/{roleId}/operators``, ``/selectedItems``
and ``/excludedItems`` (POST an array, ``DELETE ?ids=``), never by rewriting the role. An entry's address names its
principal as the directory does: ``restore_operator_roles["Helpdesk"].operators.group["Helpdesk"]``.

Severities come from here: a change that widens what a role lets someone restore (a new role, a new operator, a new
selected item, an exclusion removed, ``roleType`` to ``EntireOrganization``) is ``critical``, with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vboplan.api.client import VboClient
from vboplan.api.rest import Operation
from vboplan.errors import PlanError, ProjectError, RenderError
from vboplan.kinds import principals, refs
from vboplan.kinds.base import Basis, Export, Request, Write
from vboplan.kinds.collection import CollectionKind, Declared, object_address
from vboplan.kinds.principal_lists import (
    ListedScope,
    Lists,
    as_live_key,
    as_live_keys,
    bare_name,
    declared_objects,
    find,
    moving,
    org_name,
    organization_of,
)
from vboplan.kinds.spec import Api, CollectionSpec, Reference
from vboplan.planning.changes import Address, Change, make
from vboplan.sensitive import reveal
from vboplan.threads import ThreadPoolExecutor

LISTS = ("operators", "selectedItems", "excludedItems")
WORDS = {"User": "user", "Group": "group", "Site": "site", "Team": "team"}
TYPES = {word: kind for kind, word in WORDS.items()}
# RESTUser.type (the directory) -> RESTRbacUser.type (a role's entry): the documents spell them differently.
_USER_TYPES = {"Shared": "SharedMailbox", "Public": "PublicMailbox"}
_ENTRY_FIELDS = {"User": ("id", "displayName", "name", "type"), "Group": ("id", "displayName", "name", "type"),
                 "Site": ("id", "url", "title", "parentUrl", "isCloud", "isPersonal"),
                 "Team": ("id", "displayName", "description", "mail")}


def _api(version: str) -> Api:
    item = "RbacRoles/{roleId}"
    return Api(list=Operation("GET", "RbacRoles", (200,)), request="RESTRbacRoleCreateModel",
               response="RESTRbacRole", get=Operation("GET", item),
               create=Operation("POST", "Organizations/{organizationId}/RbacRoles", (201,) if version == "v8" else (200,)),
               update=Operation("PUT", item, (204,)), delete=Operation("DELETE", item, (204,)))


def allowed(version: str, which: str) -> tuple[str, ...]:
    """The principal types list ``which`` holds in ``version``: operators are users and groups (v8's
    RESTRbacOperatorType); items users, groups, sites and, from v7, teams (RESTRbacItemType)."""
    if which == "operators":
        return ("User", "Group")
    return ("User", "Group", "Site") if version == "v6" else ("User", "Group", "Site", "Team")


class RoleHooks:
    """A role name two organizations share is keyed ``ORGANIZATION/NAME`` (names are unique per organization)."""

    def more(self, client: Any, version: str, item: dict[str, Any]) -> dict[str, Any]:
        name = str(item.get("name") or "")
        same = [r for r in refs.resolver(client).objects(SPEC.key).items
                if str(r.get("name") or "").lower() == name.lower()]
        if len(same) > 1 and item.get("organizationId"):
            org = next((str(o.get("name")) for o in client.organizations()
                        if str(o.get("id")).lower() == str(item["organizationId"]).lower()), "")
            return {"name": f"{org}/{name}"}
        return {}

    def kind(self, spec: CollectionSpec) -> Any:
        return RolesKind(spec)


SPEC = CollectionSpec(
    key="restore_operator_roles", key_field="name",
    versions={version: _api(version) for version in ("v6", "v7", "v8")},
    references=(Reference("organizationId", "organizations"),),
    fixed=("organization",),
    extra_paths=("Organizations/{organizationId}/RbacRoles", "RbacRoles/{roleId}/operators",
                 "RbacRoles/{roleId}/operators/{operatorId}", "RbacRoles/{roleId}/selectedItems",
                 "RbacRoles/{roleId}/selectedItems/{itemId}", "RbacRoles/{roleId}/excludedItems",
                 "RbacRoles/{roleId}/excludedItems/{itemId}"),
    hooks=RoleHooks(),
    summary="restore operator roles by name: organization, role type, operators, selected and excluded principals")


# -- entries -----------------------------------------------------------------------------------------------------

#: The role's lists as :mod:`vboplan.kinds.principal_lists` keeps them.
ENTRIES = Lists(kind="restore_operator_roles", names=LISTS, held="entries", words=WORDS, entry_id="entry",
                types=allowed, noun="entry")
entry_address = ENTRIES.address
parts_of = ENTRIES.parts_of


def _entry(raw: dict[str, Any]) -> dict[str, Any] | None:
    kind = raw.get("type")
    if kind not in WORDS or not isinstance(raw.get(WORDS[kind]), dict):
        return None
    return {"id": str(raw.get("id") or raw[WORDS[kind]].get("id")), "type": kind,
            "principal": principals.compact(str(kind), raw[WORDS[kind]])}


def read_entries(client: VboClient, role_id: str) -> dict[str, list[dict[str, Any]]]:
    """A role's three lists, each entry ``{"id", "type", "principal"}``."""
    found = {}
    for which in LISTS:
        raw = client.list_objects(Operation("GET", f"RbacRoles/{{roleId}}/{which}", (200,)), roleId=role_id)
        found[which] = [e for e in (_entry(r) for r in raw) if e is not None]
    return found


def shown(entries: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Entries as templates write them (state, import), sorted."""
    rows = [{WORDS[e["type"]]: principals.key(e["principal"])} for e in entries]
    return sorted(rows, key=lambda r: (next(iter(r)), next(iter(r.values())).lower()))


def entry_body(kind: str, principal: dict[str, Any]) -> dict[str, Any]:
    """A ``RESTRbacItemComposed`` (v8 operators ``RESTRbacOperator``) naming ``principal``."""
    carried = {name: principal.get(name) for name in _ENTRY_FIELDS[kind] if principal.get(name) not in (None,)}
    if kind == "User":
        carried["type"] = _USER_TYPES.get(str(carried.get("type") or "User"), carried.get("type") or "User")
    if kind == "Group":
        carried.setdefault("type", "Office365")
    if kind == "Site":
        carried.setdefault("title", principal.get("displayName") or principal.get("url"))
        carried.setdefault("isCloud", True)
        carried.setdefault("isPersonal", False)
    if kind == "Team":
        carried.setdefault("description", "")
        carried.setdefault("mail", "")
    return {"id": str(principal["id"]), "type": kind, WORDS[kind]: carried}


@dataclass(frozen=True)
class RolesKind(ListedScope, CollectionKind):
    """The generic collection (role fields, organization, create/update/delete) plus the three lists."""

    LISTS = ENTRIES
    SCOPE = "roles"

    # -- templates ---------------------------------------------------------------------------------------------

    def normalise(self, version: str, raw: Any, where: Callable[[Any], str]) -> Declared:
        plain: dict[Any, Any] = {}
        lists: dict[str, dict[str, Any]] = {}
        for key, text, fields, label, line in declared_objects(self.name, raw, where, plain):
            kept, mine = ENTRIES.take(version, fields, label, line)
            if "organization" not in fields and "organizationId" not in fields:  # a raw id: refused below
                raise RenderError(f"{line(None)}: {label} needs organization: NAME (the organization it serves)")
            if str(reveal(fields.get("roleType"))) == "SpecificObjects" and not mine.get("selectedItems"):
                raise RenderError(f"{line('roleType')}: {label}: a role of the SpecificObjects type needs "
                                  "selectedItems (the objects its operators may restore); or write roleType: "
                                  "EntireOrganization")
            plain[key] = kept
            lists[text] = mine
        desired = super().normalise(version, plain if isinstance(raw, dict) else raw, where)
        for key, fields in desired.items():
            for which in LISTS:
                fields[which] = lists.get(key, {}).get(which, [])
        return desired

    # -- live --------------------------------------------------------------------------------------------------

    def read(self, client: VboClient, scope: Any) -> dict[str, Any]:
        live = super().read(client, [])
        objects = live["objects"]
        keys = list(objects)
        if keys:
            with ThreadPoolExecutor(max_workers=min(len(keys), principals.LOOKUP_WORKERS)) as pool:
                lists = list(pool.map(lambda k: read_entries(client, objects[k]["id"]), keys))
            for key, entries in zip(keys, lists, strict=True):
                objects[key]["entries"] = entries
                for which in LISTS:
                    objects[key]["values"][which] = shown(entries[which])
        live["principals"] = ENTRIES.resolve(client, scope, objects)
        return live

    # -- plan --------------------------------------------------------------------------------------------------

    def diff(self, version: str, live: dict[str, Any], desired: Declared, recorded: Any | None) -> list[Change]:
        desired = as_live_keys(desired, live.get("objects") or {})
        # A replaced role (moved to another organization) is a new role: its entries are all created with it.
        changes, replaced = self.diff_apart(version, live, desired, recorded, LISTS)
        objects = live.get("objects") or {}
        for key, fields in sorted(desired.items(), key=lambda i: i[0].lower()):
            found = next((k for k in objects if k.lower() == key.lower()), None)
            obj = objects[found] if found and found.lower() not in replaced else None
            org = str(obj["values"].get("organization")) if obj else org_name(fields.get("organization"))
            role = object_address(self.name, found or key)
            for which in LISTS:
                held = (obj or {}).get("entries", {}).get(which, [])
                changes += self._diff_list(role, which, fields[which], held, live, org)
        return changes

    def _diff_list(self, role: Address, which: str, desired: list[dict[str, Any]], held: list[dict[str, Any]],
                   live: dict[str, Any], org: str) -> list[Change]:
        now = {(e["type"], principals.key(e["principal"]).lower()): e for e in held}
        wanted: set[tuple[str, str]] = set()
        changes = []
        for entry in desired:
            principal = ENTRIES.known(live, org, entry["type"], entry["name"])
            if principal is None:  # read resolved every declared name, or raised naming it
                raise ProjectError(f"{entry['where']}: organization '{org}': no {WORDS[entry['type']]} named "
                                   f"'{entry['name']}'")
            ident = (entry["type"], principals.key(principal).lower())
            if ident in wanted:
                raise ProjectError(f"{entry['where']}: {WORDS[entry['type']]} '{entry['name']}' names "
                                   f"'{principals.key(principal)}', which {which} names already")
            wanted.add(ident)
            if ident not in now:
                changes.append(make("create", self.name, entry_address(role, which, entry["type"],
                                                                       principals.key(principal)),
                                    None, principals.describe(principal), False,
                                    {"list": which, "type": entry["type"], "principal": principal["id"]}))
        for ident, entry in sorted(now.items()):
            if ident not in wanted:
                changes.append(make("delete", self.name, entry_address(role, which, entry["type"],
                                                                       principals.key(entry["principal"])),
                                    principals.describe(entry["principal"]), None, False,
                                    {"list": which, "type": entry["type"], "entry": entry["id"]}))
        return changes

    def derive(self, basis: Basis, address: Address, action: str, after: Any) -> Change:
        parts = parts_of(address)
        if parts is None:
            named = [address.parts[1][1]] if len(address.parts) == 2 else list(after) if isinstance(after, dict) \
                else []
            listed = next((n for n in named if str(n).lower() in {w.lower() for w in LISTS}), None)
            if listed is not None:  # a plan file's row: each entry is a row of its own, rated as such
                raise PlanError(f"{address}: {listed} is changed entry by entry (rows such as "
                                f"{object_address(self.name, address.parts[0][1])}.{listed}.user[\"NAME\"]), "
                                "never as a field of the role")
            return super().derive(basis, address, action, after)
        key, which, kind, name = parts
        live = basis.live if isinstance(basis.live, dict) else {}
        obj = find(live.get("objects") or {}, key)
        if obj is not None and moving(basis, key, org_name(obj["values"].get("organization"))):
            obj = None  # the role is replaced (see diff): an entry of the new role, none of the old one's
        held = {principals.key(e["principal"]).lower(): e for e in (obj or {}).get("entries", {}).get(which, [])
                if e["type"] == kind}
        entry = held.get(name.lower())
        if action == "delete":
            if entry is None:
                raise PlanError(f"{address}: the role holds no such entry")
            return make("delete", self.name, address, principals.describe(entry["principal"]), None, False,
                        {"list": which, "type": kind, "entry": entry["id"]})
        if action != "create" or entry is not None:
            raise PlanError(f"{address}: an entry of a role is created or deleted (this one is {action}d, or is "
                            "there already)")
        principal = ENTRIES.known(live, organization_of(self.name, live, obj, basis, key), kind, name)
        if principal is None or principals.key(principal).lower() != name.lower():
            raise PlanError(f"{address}: the plan's recorded directory answers name no such {WORDS[kind]}")
        return make("create", self.name, address, None, principals.describe(principal), False,
                    {"list": which, "type": kind, "principal": principal["id"]})

    def severity(self, change: Change) -> Any:
        """What widens a role's reach is critical: a new role, operator or selected item, an exclusion removed,
        the whole organization in scope. The rest is rated by default."""
        from vboplan.policy.severity import Severity

        key = change.address.parts[0][1]
        parts = parts_of(change.address)
        if parts is None:
            field = change.address.parts[1][1] if len(change.address.parts) == 2 else None
            if change.action == "create" and len(change.address.parts) == 1:
                return Severity("critical", f"restore operator scope widened: new role '{key}', its operators may "
                                            "restore the data it covers")
            if field == "roleType" and change.after == "EntireOrganization":
                return Severity("critical", f"restore operator scope widened to the entire organization: role "
                                            f"'{key}' lets its operators restore anyone's data")
            return None
        _key, which, kind, name = parts
        word = WORDS[kind]
        if which == "operators" and change.action == "create":
            return Severity("critical", f"restore operator scope widened: new operator {word} {name} may "
                                        f"restore the data role '{key}' covers")
        if which == "selectedItems" and change.action == "create":
            return Severity("critical", f"restore operator scope widened: role '{key}' lets its operators "
                                        f"restore the data of {word} {name}")
        if which == "excludedItems" and change.action == "delete":
            return Severity("critical", f"restore operator scope widened: {word} {name} is no longer "
                                        f"excluded from role '{key}', its data may be restored")
        return Severity("info", f"role '{key}' narrowed ({word} {name} "
                                f"{'removed from ' + which if change.action == 'delete' else 'excluded'})")

    # -- apply -------------------------------------------------------------------------------------------------

    def object_write(self, basis: Basis, api: Api, key: str, mine: list[Change], live: dict[str, Any]) -> Write:
        requests = self._role_requests(basis, api, key, mine, live)
        return Write(f"{requests[0].method} /{basis.version}/{requests[0].path}", mine, requests=requests)

    def _role_requests(self, basis: Basis, api: Api, key: str, mine: list[Change],
                       live: dict[str, Any]) -> list[Request]:
        whole = [c for c in mine if len(c.address.parts) == 1]
        entries = [c for c in mine if parts_of(c.address) is not None]
        fields = [c for c in mine if len(c.address.parts) == 2]
        if any(c.action == "delete" for c in whole):
            return super().object_write(basis, api, key, whole, live).requests
        created = next((c for c in whole if c.action == "create"), None)
        if created is not None:
            request = super().object_write(basis, api, key, [created], live).requests[0]
            org = org_name(created.after.get("organization"))
            body = {**request.body, "name": bare_name(key, org)}
            for which in LISTS:
                body[which] = [self._body_of(basis, org, key, c) for c in entries
                               if c.action == "create" and c.address.parts[1][1] == which]
            return [Request(request.method, request.path, body, request.expect, assigns=request.assigns)]
        obj = find(live.get("objects") or {}, key)
        if obj is None:
            raise PlanError(f"{object_address(self.name, key)}: not on the server")
        org = str(obj["values"].get("organization"))
        role_id = str(obj["id"])

        def path(which: str) -> str:
            return f"RbacRoles/{role_id}/{which}"

        # Adds first: a role turned SpecificObjects needs its selected items before the PUT.
        requests = ENTRIES.adds(path, entries, lambda change: self._body_of(basis, org, key, change))
        if fields:
            put = super().object_write(basis, api, key, fields, live).requests[0]
            # The lists are the sub-endpoints' to change; a PUT that left them out keeps them.
            body = {k: v for k, v in put.body.items() if k not in LISTS}
            body["name"] = bare_name(key, org)
            body.setdefault("organizationId", self._live_api_value("organizationId", obj, live))
            for name in ("name", "description", "roleType"):
                if name not in body and obj["values"].get(name) is not None:
                    body[name] = obj["values"][name]
            requests.append(Request(put.method, put.path, body, put.expect))
        requests += ENTRIES.removes(path, entries)  # last: the role keeps a selected item until it needs none
        return requests

    def _body_of(self, basis: Basis, org: str, key: str, change: Change) -> dict[str, Any]:
        parts = parts_of(change.address)
        assert parts is not None
        live = basis.live if isinstance(basis.live, dict) else {}
        principal = ENTRIES.known(live, org, parts[2], parts[3])
        if principal is None:
            raise PlanError(f"{change.id} ({change.address}): the plan's recorded directory answers name no such "
                            f"principal in {org}, the organization of the role")
        return entry_body(parts[2], principal)

    def verify(self, change: Change, live: dict[str, Any]) -> bool:
        change = as_live_key(change, live)
        parts = parts_of(change.address)
        if parts is None:
            return super().verify(change, live)
        key, which, kind, name = parts
        obj = find(live.get("objects") or {}, key)
        held = [e for e in (obj or {}).get("entries", {}).get(which, [])
                if e["type"] == kind and principals.key(e["principal"]).lower() == name.lower()]
        return not held if change.action == "delete" else bool(held)

    # -- import ------------------------------------------------------------------------------------------------

    def export(self, client: VboClient) -> Export:
        """The generic export (role fields, organization by name), with each role's lists by name."""
        exported = super().export(client)
        if exported.unavailable:
            return exported
        return self.with_lists(client, exported, tuple(LISTS))


# -- helpers -----------------------------------------------------------------------------------------------------
