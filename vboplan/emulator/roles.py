"""The emulator's restore operator roles, with the rules Veeam's server keeps (Veeam Backup for Microsoft 365 REST
API reference, helpcenter.veeam.com/docs/vbo365/rest/, "Restore Operator Roles"; the OpenAPI documents of v6, v7 and
v8 give the paths, bodies and statuses).

Roles live in the registry's generic table (``restore_operator_roles``, so they persist and load like any collection)
with their three lists inside; these handlers serve them as the documents do:

* ``GET /RbacRoles`` (every organization's) and ``GET|POST /Organizations/{organizationId}/RbacRoles`` (create: 200
  in v6/v7, 201 in v8, body ``RESTRbacRoleCreateModel``); ``GET|PUT|DELETE /RbacRoles/{roleId}`` (PUT 204 in every
  version; a list the PUT gives replaces the held one, a list it leaves out is kept); a role stays in its
  organization. Answers are ``RESTRbacRole`` (no lists: those are read at their own paths).
* ``/RbacRoles/{roleId}/operators``, ``/selectedItems``, ``/excludedItems``: GET (a plain array in every version),
  POST an array (204), ``DELETE ?ids=a,b`` (204; an unknown id: 404 and nothing removed), ``GET .../{id}``. An
  entry names a principal of the role's organization by the id its directory answers with; the entry's ``id`` is
  that principal's id ("ID of the organization user", v8). Operators are users and groups only (v8's
  ``RESTRbacOperatorType``; a v6/v7 server refuses a site or team operator too); items are users, groups, sites
  and, from v7, teams. A principal twice in one list is refused (400).
* A role's name is unique in its organization; ``roleType: SpecificObjects`` needs selected items ("you must
  specify a collection of objects to manage", v7/v8) (400).
"""

from __future__ import annotations

import uuid
from functools import partial
from typing import TYPE_CHECKING, Any

from vboplan.emulator import collections as named
from vboplan.emulator.wire import ApiError, Response
from vboplan.schema import component

if TYPE_CHECKING:
    from vboplan.emulator.resources import Call
    from vboplan.emulator.store import Organization

ROLES = "restore_operator_roles"
LISTS = ("operators", "selectedItems", "excludedItems")
FIELD = {"User": "user", "Group": "group", "Site": "site", "Team": "team"}
DIRECTORY = {"User": "users", "Group": "groups", "Site": "sites", "Team": "teams"}
_COMPONENT = {"User": "RESTRbacUser", "Group": "RESTRbacGroup", "Site": "RESTRbacSite", "Team": "RESTRbacTeam"}
# RESTUser.type (the directory) -> RESTRbacUser.type (the role's entries): the documents spell them differently.
_USER_TYPES = {"Shared": "SharedMailbox", "Public": "PublicMailbox"}


def routes(version: str, route: named.RouteMaker) -> list[Any]:
    """The role routes of ``version`` (served before the generic collection routes)."""
    made = [
        route("/RbacRoles", {"GET": list_roles}),
        route("/Organizations/{organizationId}/RbacRoles", {"GET": list_roles, "POST": create_role}, writes=True),
        route("/RbacRoles/{roleId}", {"GET": get_role, "PUT": update_role, "DELETE": delete_role}, writes=True),
    ]
    for which in LISTS:
        made.append(route(f"/RbacRoles/{{roleId}}/{which}", {"GET": partial(list_entries, which=which),
                                                             "POST": partial(add_entries, which=which),
                                                             "DELETE": partial(remove_entries, which=which)},
                          writes=True))
        param = "operatorId" if which == "operators" else "itemId"
        made.append(route(f"/RbacRoles/{{roleId}}/{which}/{{{param}}}",
                          {"GET": partial(get_entry, which=which, param=param)}))
    return made


def _table(call: Call) -> list[dict[str, Any]]:
    return call.store.collections.setdefault(ROLES, [])


def _find(call: Call) -> dict[str, Any]:
    role_id = str(call.params["roleId"]).lower()
    found = next((o for o in _table(call) if o["id"].lower() == role_id), None)
    if found is None:
        raise ApiError(404, f"Restore operator role with ID '{call.params['roleId']}' was not found.")
    return found


def _save(call: Call, obj: dict[str, Any] | None, object_id: str) -> None:
    call.store.collection_change({"op": "collection", "key": ROLES, "id": object_id, "object": obj})


def _organization(call: Call, org_id: str) -> Organization:
    org = call.store.organization(str(org_id))
    if org is None:
        raise ApiError(404, f"Organization with ID '{org_id}' was not found.")
    return org


def role_view(call: Call, obj: dict[str, Any]) -> dict[str, Any]:
    path = f"/RbacRoles/{obj['id']}"
    links = {"self": {"href": call.href(path)},
             "organization": {"href": call.href(f"/Organizations/{obj.get('organizationId')}")},
             **{which: {"href": call.href(f"{path}/{which}")} for which in LISTS}}
    shown = {k: v for k, v in obj.items() if k not in LISTS}
    return named.shaped(call.version, component(call.version, "RESTRbacRole"), {**shown, "_links": links})


def list_roles(call: Call) -> Response:
    """GET /RbacRoles and GET /Organizations/{organizationId}/RbacRoles: plain arrays in every version."""
    org_id = call.organization().id if "organizationId" in call.params else ""
    return Response(200, [role_view(call, o) for o in _table(call)
                          if not org_id or str(o.get("organizationId", "")).lower() == org_id])


def get_role(call: Call) -> Response:
    return Response(200, role_view(call, _find(call)))


def _body(call: Call) -> dict[str, Any]:
    body = call.bound(component(call.version, "RESTRbacRoleCreateModel"))
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    return {k: v for k, v in body.items() if v is not None and k not in ("id", "_links")}


def _check(call: Call, org: Organization, obj: dict[str, Any]) -> None:
    name = obj.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ApiError(400, "The request is invalid: name is required.")
    clash = [o for o in _table(call) if o["id"] != obj.get("id") and str(o.get("organizationId")) == org.id
             and str(o.get("name", "")).lower() == name.lower()]
    if clash:
        raise ApiError(400, f"Restore operator role '{name}' already exists in organization '{org.name}'.")
    if obj.get("roleType", "EntireOrganization") == "SpecificObjects" and not obj.get("selectedItems"):
        raise ApiError(400, "For the restore operator role of the SpecificObjects type, you must specify a collection "
                            "of objects to manage.")


def create_role(call: Call) -> Response:
    """POST /Organizations/{organizationId}/RbacRoles (200 in v6/v7, 201 in v8)."""
    org = call.organization()
    body = _body(call)
    if body.get("organizationId") and str(body["organizationId"]).lower() != org.id:
        raise ApiError(400, "The request is invalid: organizationId differs from the organization in the path.")
    role_id = str(uuid.uuid4())
    obj: dict[str, Any] = {"id": role_id, "roleType": "EntireOrganization",
                           **{k: v for k, v in body.items() if k not in LISTS}, "organizationId": org.id}
    for which in LISTS:
        obj[which] = _new_entries(call, org, which, body.get(which) or [], [])
    _check(call, org, obj)
    _save(call, obj, role_id)
    return Response(201 if call.version == "v8" else 200, role_view(call, obj))


def update_role(call: Call) -> Response:
    """PUT /RbacRoles/{roleId} (204): the fields given replace the stored ones; a list only when given."""
    obj = _find(call)
    org = _organization(call, str(obj["organizationId"]))
    body = _body(call)
    if body.get("organizationId") and str(body["organizationId"]).lower() != org.id:
        raise ApiError(400, "A restore operator role cannot move to another organization.")
    updated = {**obj, **{k: v for k, v in body.items() if k not in LISTS}, "organizationId": org.id}
    for which in LISTS:
        if which in body:
            updated[which] = _new_entries(call, org, which, body[which], [])
    _check(call, org, updated)
    _save(call, updated, obj["id"])
    return Response(204)


def delete_role(call: Call) -> Response:
    obj = _find(call)
    _save(call, None, obj["id"])
    return Response(204)


# -- operators and items -----------------------------------------------------------------------------------------

def _allowed(version: str, which: str) -> tuple[str, ...]:
    if which == "operators":
        return ("User", "Group")
    return ("User", "Group", "Site") if version == "v6" else ("User", "Group", "Site", "Team")


def _new_entries(call: Call, org: Organization, which: str, given: Any,
                 held: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``given`` (entries of a request) as stored entries after ``held``: each names a principal of ``org``'s
    directory by the id it answers with; one already held, or given twice, is refused (400)."""
    from vboplan.emulator.resources import find_principal

    if not isinstance(given, list):
        raise ApiError(400, f"The request is invalid: {which} must be an array.")
    allowed = _allowed(call.version, which)
    entries = list(held)
    for raw in given:
        kind = raw.get("type") if isinstance(raw, dict) else None
        if kind not in allowed:
            raise ApiError(400, f"The request is invalid: the type of {which} must be one of {', '.join(allowed)}.")
        principal = raw.get(FIELD[kind])
        principal_id = principal.get("id") if isinstance(principal, dict) else raw.get("id")
        entry = find_principal(call, org, DIRECTORY[kind], str(principal_id)) if principal_id else None
        if entry is None:
            raise ApiError(400, f"{kind} with ID '{principal_id}' was not found in organization '{org.name}'.")
        if any(e["type"] == kind and e[FIELD[kind]]["id"] == entry["id"] for e in entries):
            name = entry.get("name") or entry.get("displayName") or entry.get("url")
            raise ApiError(400, f"{kind} '{name}' is in the role's {which} already.")
        # Stored in the request item's shape (the data file loads against it): the principal by its directory id,
        # its names read from the directory when shown.
        entries.append({"type": kind, FIELD[kind]: {"id": str(entry["id"])}})
    return entries


def entry_view(call: Call, org: Organization, entry: dict[str, Any], which: str) -> dict[str, Any] | None:
    """A stored entry as the version answers it (``RESTRbacItemComposed``; v8 operators ``RESTRbacOperator``);
    None when its principal left the directory."""
    from vboplan.emulator.resources import principal_view, wire_id

    kind = entry["type"]
    found = org.directory(DIRECTORY[kind]).get(str(entry[FIELD[kind]]["id"]))
    if found is None:
        return None
    principal = principal_view(call, org, DIRECTORY[kind], found)
    if kind == "User" and principal.get("type") in _USER_TYPES:
        principal["type"] = _USER_TYPES[principal["type"]]
    if kind == "Site":
        principal.setdefault("title", found.get("title") or found.get("url"))
    if kind == "Team":
        principal.setdefault("description", "")
    shown = named.shaped(call.version, component(call.version, _COMPONENT[kind]), principal)
    schema = "RESTRbacOperator" if which == "operators" and call.version == "v8" else "RESTRbacItemComposed"
    return named.shaped(call.version, component(call.version, schema),
                        {"id": wire_id(call, org, DIRECTORY[kind], str(found["id"])), "type": kind,
                         FIELD[kind]: shown})


def _role_and_org(call: Call) -> tuple[dict[str, Any], Organization]:
    obj = _find(call)
    return obj, _organization(call, str(obj["organizationId"]))


def _views(call: Call, obj: dict[str, Any], org: Organization, which: str) -> list[dict[str, Any]]:
    return [v for v in (entry_view(call, org, e, which) for e in obj.get(which) or []) if v is not None]


def list_entries(call: Call, which: str) -> Response:
    obj, org = _role_and_org(call)
    return Response(200, _views(call, obj, org, which))


def get_entry(call: Call, which: str, param: str) -> Response:
    obj, org = _role_and_org(call)
    wanted = str(call.params[param]).lower()
    found = next((v for v in _views(call, obj, org, which) if str(v.get("id")).lower() == wanted), None)
    if found is None:
        raise ApiError(404, f"Item with ID '{call.params[param]}' was not found in the role's {which}.")
    return Response(200, found)


def add_entries(call: Call, which: str) -> Response:
    """POST /RbacRoles/{roleId}/operators|selectedItems|excludedItems: an array (204)."""
    obj, org = _role_and_org(call)
    updated = {**obj, which: _new_entries(call, org, which, call.json(), obj.get(which) or [])}
    _save(call, updated, obj["id"])
    return Response(204)


def remove_entries(call: Call, which: str) -> Response:
    """DELETE /RbacRoles/{roleId}/operators|selectedItems|excludedItems?ids=a,b (204): the entries whose
    principals have those ids; an unknown id: 404, nothing removed. A SpecificObjects role keeps one selected
    item at least."""
    obj, org = _role_and_org(call)
    raw = call.query.get("ids") or (call.raw_query.get("ids") or [""])[0]
    ids = [i for i in str(raw).split(",") if i]
    if not ids:
        raise ApiError(400, "The request is invalid: ids is required.")
    held = {str(v["id"]).lower(): index for index, v in
            enumerate(entry_view(call, org, e, which) or {"id": ""} for e in obj.get(which) or [])}
    unknown = [i for i in ids if i.lower() not in held]
    if unknown:
        raise ApiError(404, f"Item with ID '{unknown[0]}' was not found in the role's {which}.")
    gone = {held[i.lower()] for i in ids}
    updated = {**obj, which: [e for index, e in enumerate(obj.get(which) or []) if index not in gone]}
    _check(call, org, updated)
    _save(call, updated, obj["id"])
    return Response(204)
