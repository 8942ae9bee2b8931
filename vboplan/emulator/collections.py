"""The emulator's named collections: one generic in-memory table per :class:`~vboplan.kinds.spec.CollectionSpec`
of the registry, with routes built from the spec's operations.

Each table holds objects by server-assigned id (a fresh uuid4 per create; derived from the key for seeded objects
without one). Bodies are bound against the version's request component; answers are cut, at every depth, to the
version's response component, so a field a version lacks, or a password (kept only as its sha256 digest, as the
settings' are), never leaks. References are checked as the server does: a create or update naming an id the
referenced collection does not hold is refused with 400, deleting an object another one refers to with 409
(Veeam's documents give no status for either; ``OperationConflict`` is v8's error code for the second).
Lists are pages where the version's document says so (v8: ``offset``, ``limit``, ``setId``, ``results``,
``_links``), plain arrays otherwise. Every change goes through the store's change log (op ``collection``).

Seeds (``--data``): a collection's ``seed_key`` holds either a list of API objects (``proxies: [{hostName: ...}]``,
ids optional) or the template shape, a mapping by key with references by name (``proxy_pools: {EU pool:
{proxies: [proxy01.contoso.local]}}``).
"""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from vboplan.emulator.wire import ApiError, Response
from vboplan.kinds.hooks import ChecksObject
from vboplan.kinds.spec import SERVER_FIELDS, Api, CollectionSpec, Reference
from vboplan.schema import SchemaError, bind, component, properties, resolve

if TYPE_CHECKING:
    from vboplan.emulator.resources import Call

HASH_SUFFIX = "Sha256"
PAGE_LIMIT_DEFAULT = 30
PAGE_LIMIT_MAX = 10_000
ORGANIZATIONS = "organizations"   # a reference to an organization (not a collection of the registry)


class SeedError(ValueError):
    """A seed or data file's collection that cannot be loaded (the store names the file)."""


def specs() -> tuple[CollectionSpec, ...]:
    """The registry's collections the generic tables serve (not those with handlers of their own), each after the
    collections it refers to; a collection some versions keep apart from one of them (v6/v7
    ``/objectstoragerepositories``) comes just before it."""
    from vboplan.kinds.registry import collection_specs

    return tuple(found for spec in collection_specs() if spec.emulated
                 for found in (*(a.collection for a in spec.separate), spec))


def _references(spec: CollectionSpec) -> tuple[Reference, ...]:
    """What ``spec``'s objects refer to: its references, and the objects kept apart that it names by id."""
    return (*spec.references, *(Reference(apart.link, apart.key) for apart in spec.separate))


def generation() -> int:
    from vboplan.kinds.registry import generation as registry_generation

    return registry_generation()


def _spec(key: str) -> CollectionSpec:
    found = next((s for s in specs() if s.key == key), None)
    if found is None:  # unregistered while a request was routed: as if the route did not exist
        raise ApiError(404, "No HTTP resource was found that matches the request URI.", plain=True)
    return found


# -- loading and persisting ----------------------------------------------------------------------------------------

def seed_keys() -> set[str]:
    return {spec.seed_key for spec in specs()}


def stored_schema(spec: CollectionSpec) -> dict[str, Any]:
    """What a stored object may hold: the request and response fields together (no links) of the newest version."""
    version = spec.ordered_versions[-1]
    api = spec.versions[version]
    merged = {**properties(version, api.response), **properties(version, api.request)}
    return {"type": "object", "properties": {k: v for k, v in merged.items() if k not in ("_links", "_actions")}}


def load(data: Mapping[str, Any], where: str, new_id: Callable[[str, str], str]) -> dict[str, list[dict[str, Any]]]:
    """Every collection's objects from seed or persisted ``data``; ``new_id(collection, key)`` gives a seeded
    object without an id its id."""
    tables: dict[str, list[dict[str, Any]]] = {}
    for spec in specs():
        raw = data.get(spec.seed_key)
        tables[spec.key] = _load_table(spec, raw, f"{where}: {spec.seed_key}", tables, new_id) if raw else []
    return tables


def _load_table(spec: CollectionSpec, raw: Any, where: str, tables: dict[str, list[dict[str, Any]]],
                new_id: Callable[[str, str], str]) -> list[dict[str, Any]]:
    if isinstance(raw, dict):  # the template shape: by key, references by name
        items = [{spec.key_field: key, **_by_id(spec, value or {}, tables, f"{where}[{key!r}]")}
                 for key, value in raw.items()]
    elif isinstance(raw, list) and all(isinstance(item, dict) for item in raw):
        items = [dict(item) for item in raw]
    else:
        raise SeedError(f"{where} must be a list of objects or a mapping by {spec.key_field}")
    version = spec.ordered_versions[-1]
    objects: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for index, item in enumerate(items):
        hashes = {k: v for k, v in item.items() if k.endswith(HASH_SUFFIX)}
        try:
            bound = bind(version, stored_schema(spec), {k: v for k, v in item.items() if k not in hashes},
                         f"{where}[{index}]", unknown="error")
        except SchemaError as exc:
            raise SeedError(str(exc)) from None
        key = bound.get(spec.key_field)
        if not isinstance(key, str) or not key.strip():
            raise SeedError(f"{where}[{index}]: {spec.key_field} is required")
        # Keys are unique per server, or per organization for objects that belong to one (jobs).
        unique = (str(bound.get("organizationId") or "").lower(), key.lower())
        if unique in seen:
            raise SeedError(f"{where}[{index}]: {spec.key_field} {key!r} is given twice")
        seen.add(unique)
        obj = {"id": str(bound.pop("id", None) or new_id(spec.key, key)), **_concealed(version, spec, bound),
               **hashes}
        objects.append(obj)
    return objects


def _by_id(spec: CollectionSpec, value: Any, tables: dict[str, list[dict[str, Any]]], where: str) -> dict[str, Any]:
    """A template-shaped seed object with its references turned into ids."""
    if not isinstance(value, dict):
        raise SeedError(f"{where} must be a mapping of API fields")
    out = copy.deepcopy(value)
    for ref in spec.references:
        holder = _at(out, ref.parent)
        if not isinstance(holder, dict) or ref.written not in holder or ref.written == ref.leaf:
            continue
        target = next((s for s in specs() if s.key == ref.kind), None)
        if target is None:
            raise SeedError(f"{where}.{ref.written}: a seed names {ref.kind} by id: write {ref.field}")
        by_key = {str(o[target.key_field]).lower(): o["id"] for o in tables.get(ref.kind, [])}
        names = holder.pop(ref.written)
        wanted = names if isinstance(names, list) else [names]
        missing = [n for n in wanted if str(n).lower() not in by_key]
        if missing:
            raise SeedError(f"{where}.{ref.written}: no {ref.kind} named {missing[0]!r}")
        ids = [by_key[str(n).lower()] for n in wanted]
        holder[ref.leaf] = [{ref.each: i} for i in ids] if ref.many else ids[0]
    return out


def _at(value: Any, path: tuple[str, ...]) -> Any:
    """The value at ``path`` inside nested objects (None where one is missing)."""
    for name in path:
        value = value.get(name) if isinstance(value, dict) else None
    return value


def _value_of(obj: dict[str, Any], field: str) -> Any:
    """The value of a (dotted: ``objectStorage.accountId``) field of ``obj``."""
    return _at(obj, tuple(field.split(".")))


def persisted(tables: Mapping[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The tables in the data file's form (ids included, passwords as digests only)."""
    return {spec.seed_key: copy.deepcopy(tables[spec.key]) for spec in specs() if tables.get(spec.key)}


def apply_change(tables: dict[str, list[dict[str, Any]]], change: Mapping[str, Any]) -> None:
    """Carry out one logged ``collection`` change: ``object`` replaces (or adds) the object of ``id``; None
    removes it."""
    table = tables.setdefault(str(change["key"]), [])
    at = next((i for i, obj in enumerate(table) if obj["id"] == change["id"]), None)
    if change.get("object") is None:
        if at is not None:
            del table[at]
    elif at is None:
        table.append(dict(change["object"]))
    else:
        table[at] = dict(change["object"])


def password_hash(value: Any) -> str:
    from vboplan.emulator.store import password_hash as digest

    return digest(str(value))


def _concealed(version: str, spec: CollectionSpec, value: dict[str, Any]) -> dict[str, Any]:
    """``value`` with every password (typed so at any depth, or named by the spec's ``secrets``) replaced by its
    digest under ``<name>Sha256``."""
    return _conceal(version, stored_schema(spec), value, set(spec.secrets), "")


def _conceal(version: str, schema: dict[str, Any], value: Any, named: set[str], path: str) -> Any:
    schema = resolve(version, schema)
    if isinstance(value, list):
        return [_conceal(version, schema.get("items") or {}, item, named, path) for item in value]
    if not isinstance(value, dict):
        return value
    props = schema.get("properties") or {}
    out: dict[str, Any] = {}
    for key, item in value.items():
        here = f"{path}.{key}" if path else key
        prop = resolve(version, props.get(key) or {})
        if item is not None and (prop.get("format") == "password" or here in named):
            out[key + HASH_SUFFIX] = password_hash(item)
        else:
            out[key] = _conceal(version, prop, item, named, here)
    return out


def shaped(version: str, schema: dict[str, Any], value: Any) -> Any:
    """``value`` cut to ``schema`` at every depth: undeclared keys (digests among them) and unset values left out."""
    schema = resolve(version, schema)
    if isinstance(value, list):
        return [shaped(version, schema.get("items") or {}, item) for item in value]
    if not isinstance(value, dict) or "properties" not in schema:
        return value
    props = schema["properties"]
    return {k: shaped(version, props[k], v) for k, v in value.items() if k in props and v is not None}


# -- routes ----------------------------------------------------------------------------------------------------------

RouteMaker = Callable[..., Any]


def routes(version: str, route: RouteMaker) -> list[Any]:
    """The routes of every collection ``version`` serves, made by ``route(template, handlers, writes=...)``."""
    made = []
    for spec in specs():
        api = spec.api(version)
        if api is None:
            continue
        listing: dict[str, Any] = {"GET": partial(list_objects, key=spec.key)}
        if api.create is not None and api.create.path == api.list.path:
            listing["POST"] = partial(create_object, key=spec.key)
        elif api.create is not None:
            # Created under a parent (Organizations/{organizationId}/...): that path lists the parent's objects.
            made.append(route("/" + api.create.path, {"GET": partial(list_objects, key=spec.key),
                                                      "POST": partial(create_object, key=spec.key)}, writes=True))
        item: dict[str, Any] = {"GET": partial(get_object, key=spec.key)}
        if api.update is not None:
            item["PUT"] = partial(update_object, key=spec.key)
        if api.delete is not None:
            item["DELETE"] = partial(delete_object, key=spec.key)
        made.append(route("/" + api.list.path, listing, writes=True))
        if api.get is not None:
            made.append(route("/" + api.get.path, item, writes=True))
        made += [route("/" + ref.read, {"GET": partial(list_referenced, key=spec.key, field=ref.field)})
                 for ref in spec.references if ref.read]
    return made


def _api(call: Call, spec: CollectionSpec) -> Api:
    api = spec.api(call.version)
    if api is None:
        raise ApiError(404, "No HTTP resource was found that matches the request URI.", plain=True)
    return api


def _table(call: Call, spec: CollectionSpec) -> list[dict[str, Any]]:
    return call.store.collections.setdefault(spec.key, [])


def _find(call: Call, spec: CollectionSpec) -> dict[str, Any]:
    object_id = str(next(iter(call.params.values()), "")).lower()
    found = next((o for o in _table(call, spec) if o["id"].lower() == object_id), None)
    if found is None:
        raise ApiError(404, f"{_noun(spec)} with ID '{object_id}' was not found.")
    return found


def _noun(spec: CollectionSpec) -> str:
    noun = spec.key.replace("_", " ")
    noun = noun[:-3] + "y" if noun.endswith("ies") else noun[:-1] if noun.endswith("s") else noun
    return noun.capitalize()


def view(call: Call, spec: CollectionSpec, obj: dict[str, Any]) -> dict[str, Any]:
    api = _api(call, spec)
    links = {"self": {"href": call.href(f"/{api.get.path if api.get else api.list.path}".replace(
        _placeholder(api), obj["id"]))}}
    return shaped(call.version, component(call.version, api.response), {**obj, "_links": links})


def _placeholder(api: Api) -> str:
    found = re.findall(r"\{\w+\}", api.get.path if api.get else "")
    return found[-1] if found else "{id}"


def _page(call: Call, spec: CollectionSpec, objects: list[dict[str, Any]], path: str) -> Response:
    api = _api(call, spec)
    views = [view(call, spec, obj) for obj in objects]
    if not api.list.paged:
        return Response(200, views)
    offset, limit = _paging(call)
    set_id = call.query.get("setId") or str(uuid.uuid5(uuid.NAMESPACE_URL, f"{call.store.installation_id}/{path}"))
    links = {"self": {"href": call.href(f"{path}?offset={offset}&limit={limit}")}}
    if offset + limit < len(views):
        links["next"] = {"href": call.href(f"{path}?offset={offset + limit}&limit={limit}")}
    if offset > 0:
        links["first"] = {"href": call.href(f"{path}?offset=0&limit={limit}")}
        links["prev"] = {"href": call.href(f"{path}?offset={max(0, offset - limit)}&limit={limit}")}
    return Response(200, {"offset": offset, "limit": limit, "setId": set_id, "results": views[offset:offset + limit],
                          "_links": links})


def _paging(call: Call) -> tuple[int, int]:
    """offset and limit from the validated query, or the raw one for a route its document does not have."""
    def number(name: str, default: int) -> int:
        value = call.query.get(name)
        if value is None:
            raw = (call.raw_query.get(name.lower()) or [None])[0]
            if raw is None or raw == "":
                return default
            if not re.fullmatch(r"-?\d{1,9}", raw):
                raise ApiError(400, f"The request is invalid: {name} must be an integer.")
            value = int(raw)
        return int(value)

    offset, limit = number("offset", 0), number("limit", PAGE_LIMIT_DEFAULT)
    if offset < 0:
        raise ApiError(400, "The offset parameter must not be negative.")
    if not 1 <= limit <= PAGE_LIMIT_MAX:
        raise ApiError(400, f"The limit parameter must be between 1 and {PAGE_LIMIT_MAX:,}.")
    return offset, limit


def list_objects(call: Call, key: str) -> Response:
    """A collection's list; under a parent's path (``call.params``), the objects created under that parent."""
    spec = _spec(key)
    objects = [o for o in _table(call, spec)
               if all(str(o.get(name, "")).lower() == str(value).lower() for name, value in call.params.items())]
    path = call.template
    for name, value in call.params.items():
        path = path.replace("{" + name + "}", str(value))
    return _page(call, spec, objects, path)


def get_object(call: Call, key: str) -> Response:
    spec = _spec(key)
    return Response(200, view(call, spec, _find(call, spec)))


def list_referenced(call: Call, key: str, field: str) -> Response:
    """GET of the objects a reference field lists (``/ProxyPools/{poolId}/proxies``)."""
    spec = _spec(key)
    obj = _find(call, spec)
    ref = next(r for r in spec.references if r.field == field)
    target = _spec(ref.kind)
    ids = {i.lower() for i in _ids(ref, obj.get(ref.field))}
    members = [o for o in _table(call, target) if o["id"].lower() in ids]
    return _page(call, target, members, "/" + re.sub(r"\{\w+\}", obj["id"], ref.read))


def _body(call: Call, spec: CollectionSpec) -> dict[str, Any]:
    body = call.bound(component(call.version, _api(call, spec).request))
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    return {k: v for k, v in body.items() if v is not None and k not in SERVER_FIELDS}


def _check(call: Call, spec: CollectionSpec, obj: dict[str, Any], body: dict[str, Any]) -> None:
    """Refuse (400) a body without its required fields or key, a key another object has, a change of a field the
    server fixes once the object exists, values of ``unique`` fields another object has, or a reference to an
    object the server does not hold."""
    for name in spec.required(call.version):
        if body.get(name) is None and obj.get(name) is None:
            raise ApiError(400, f"The request is invalid: {name} is required.")
    key = body.get(spec.key_field, obj.get(spec.key_field))
    if not isinstance(key, str) or not key.strip():
        raise ApiError(400, f"The request is invalid: {spec.key_field} is required.")
    merged = {**obj, **body}
    problem = spec.hooks.check(call.version, key, merged) if isinstance(spec.hooks, ChecksObject) else ""
    if problem:
        raise ApiError(400, f"The request is invalid: {problem}")
    clash = [o for o in _table(call, spec) if o["id"] != obj.get("id") and str(o[spec.key_field]).lower() == key.lower()]
    if clash and not spec.shared_key:  # an encryption key's description is a hint: two keys may share one
        raise ApiError(400, f"{_noun(spec)} '{key}' already exists.")
    if obj:
        _check_fixed(spec, obj, body)
    _check_unique(call, spec, merged)
    for ref in _references(spec):
        unknown = [i for i in _ids(ref, _value_of(body, ref.field)) if i.lower() not in _held(call, ref.kind)]
        if unknown:
            noun = "Organization" if ref.kind == ORGANIZATIONS else _noun(_spec(ref.kind))
            raise ApiError(400, f"{noun} with ID '{unknown[0]}' was not found.")


def _check_fixed(spec: CollectionSpec, obj: dict[str, Any], body: dict[str, Any]) -> None:
    """A PUT may not change what the server fixes once the object exists (a repository's retention type, folder,
    object-storage target): Veeam's server refuses it (400)."""
    for name in spec.fixed:
        wanted, held = _value_of(body, name), _value_of(obj, name)
        if wanted is not None and held is not None and _folded(wanted) != _folded(held):
            raise ApiError(400, f"The request is invalid: {name} of {_noun(spec).lower()} '{obj[spec.key_field]}' "
                                "cannot be changed.")


def _check_unique(call: Call, spec: CollectionSpec, merged: dict[str, Any]) -> None:
    for fields in spec.unique:
        values = [_value_of(merged, name) for name in fields]
        if any(v is None or v == "" for v in values):
            continue
        for other in _table(call, spec):
            if other["id"] != merged.get("id") and [_folded(_value_of(other, n)) for n in fields] == \
                    [_folded(v) for v in values]:
                raise ApiError(400, f"The request is invalid: {_noun(spec).lower()} '{other[spec.key_field]}' "
                                    f"already has this {' and '.join(fields)}.")


def _folded(value: Any) -> Any:
    """A value compared as the server does: text case-insensitively, a folder without its trailing separator."""
    if isinstance(value, str):
        return value.rstrip("\\/").lower()
    if isinstance(value, dict):
        return {k: _folded(v) for k, v in value.items() if v is not None and k != "_links"}
    return value


def _held(call: Call, kind: str) -> set[str]:
    """The ids of the objects of ``kind`` the server holds (a collection's, or the organizations)."""
    if kind == ORGANIZATIONS:
        return {org.id.lower() for org in call.store.organizations}
    return {o["id"].lower() for o in _table(call, _spec(kind))}


def _ids(ref: Reference, value: Any) -> list[str]:
    if value is None:
        return []
    if ref.many:
        return [str(item.get(ref.each)) for item in value if isinstance(item, dict) and item.get(ref.each)]
    return [str(value)]


def _save(call: Call, spec: CollectionSpec, obj: dict[str, Any] | None, object_id: str) -> None:
    call.store.collection_change({"op": "collection", "key": spec.key, "id": object_id, "object": obj})


def create_object(call: Call, key: str) -> Response:
    """POST: a new object with a server-assigned id; created under a parent's path, it belongs to that parent."""
    spec = _spec(key)
    body = {**_body(call, spec), **{name: str(value) for name, value in call.params.items()}}
    _check(call, spec, {}, body)
    obj = {"id": str(uuid.uuid4()), **_with_ids(call, spec, {}, _concealed(call.version, spec, body))}
    _save(call, spec, obj, obj["id"])
    api = _api(call, spec)
    assert api.create is not None
    return Response(api.create.status[0], view(call, spec, obj))


def update_object(call: Call, key: str) -> Response:
    """PUT: the fields given replace the stored ones (an omitted or null field keeps its value, as for settings)."""
    spec = _spec(key)
    obj = _find(call, spec)
    body = _body(call, spec)
    _check(call, spec, obj, body)
    updated = {**obj, **_with_ids(call, spec, obj, _concealed(call.version, spec, body))}
    _save(call, spec, updated, obj["id"])
    api = _api(call, spec)
    assert api.update is not None
    return Response(api.update.status[0])


def _with_ids(call: Call, spec: CollectionSpec, obj: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with the server's id of each nested object that has one (v8's embedded ``objectStorage``: "the
    object storage repository ID"): kept from ``obj`` when a PUT sends the object again, new on a create."""
    props = properties(call.version, _api(call, spec).request)
    out = dict(body)
    for name, value in body.items():
        nested = resolve(call.version, props.get(name) or {}).get("properties") or {}
        if isinstance(value, dict) and "id" in nested and not value.get("id"):
            held = obj.get(name) if isinstance(obj.get(name), dict) else {}
            out[name] = {**value, "id": str(held.get("id") or uuid.uuid4())}
    return out


def delete_object(call: Call, key: str) -> Response:
    spec = _spec(key)
    obj = _find(call, spec)
    for other in specs():
        for ref in _references(other):
            if ref.kind != spec.key:
                continue
            users = [o for o in call.store.collections.get(other.key, [])
                     if obj["id"].lower() in {i.lower() for i in _ids(ref, _value_of(o, ref.field))}]
            if users:
                raise ApiError(409, f"{_noun(spec)} '{obj[spec.key_field]}' is in use by {_noun(other).lower()} "
                                    f"'{users[0][other.key_field]}' and cannot be removed.")
    _save(call, spec, None, obj["id"])
    api = _api(call, spec)
    assert api.delete is not None
    return Response(api.delete.status[0])
