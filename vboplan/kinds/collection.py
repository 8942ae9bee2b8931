"""One implementation for every named collection, driven by its :class:`~vboplan.kinds.spec.CollectionSpec`.

Templates map each object's key to its fields (API names); a reference is written as the field name without its
``Id`` suffix and holds the other object's key, never an id (ids differ per server). Live values keep the same
shape, references turned into names, plus the ids of the objects and of what they refer to, so that what an apply
sends is derived from an address and the plan's recorded live values.

Rows: creating or deleting an object is one row at the object's address (``proxy_pools["EU pool"]``) whose value is
the object; changing a field is one row at the field's address (``proxy_pools["EU pool"].description``). A
reference shows the other object's address; one to an object created by the same plan has an id the server is yet
to assign, sent as ``(known after apply)`` until the create answers with it. A password (typed so by Veeam's
document, or named in the spec's ``secrets``), at any depth, is its own sensitive row: the server never returns it,
so it is planned as "will be set" until a snapshot holds its salted hash.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from vboplan import schema
from vboplan.api.client import VboClient
from vboplan.api.rest import Operation
from vboplan.errors import PlanError, ProjectError, RenderError
from vboplan.kinds import refs
from vboplan.kinds.base import AfterApply, Basis, Export, Request, Write, WriteOnly
from vboplan.kinds.hooks import ChecksObject, PlacesCreate, ReadsMore
from vboplan.kinds.spec import SERVER_FIELDS, Api, CollectionSpec, Reference
from vboplan.planning.changes import Address, Change, Drift, make
from vboplan.project.yamlfile import where_of
from vboplan.sensitive import MASK, Sensitive, digest, digest_of, is_digest, matches, reveal, same_live
from vboplan.threads import ThreadPoolExecutor

Path = tuple[str, ...]


class Declared(dict[str, dict[str, Any]]):
    """A collection's desired objects by key, with where each was declared (``file:line``) for messages."""

    def __init__(self) -> None:
        super().__init__()
        self.where: dict[str, str] = {}


def object_address(kind: str, key: str) -> Address:
    return Address(kind).entry(key)


@dataclass(frozen=True)
class SpecKind:
    """What the resource kind of every named collection shares: its spec, its template key, and the kinds whose
    creates it waits for (those its references name). :class:`CollectionKind` is the generic implementation; a
    collection whose objects are no objects of fields (audit items: principal lists under each organization) is
    built on this by its spec's :class:`~vboplan.kinds.hooks.MakesKind` hook, without the generic capabilities."""

    spec: CollectionSpec

    @property
    def name(self) -> str:
        return self.spec.key

    @property
    def requires(self) -> tuple[str, ...]:
        # Organizations are no kind of vboplan's: the resolver lists them (kinds.refs.READERS).
        return tuple(dict.fromkeys(r.kind for r in self.spec.references
                                   if r.kind != self.spec.key and r.kind not in refs.READERS))


@dataclass(frozen=True)
class CollectionKind(SpecKind):
    """The resource kind of one named collection."""

    # -- templates ---------------------------------------------------------------------------------------------

    def normalise(self, version: str, raw: Any, where: Callable[[Any], str]) -> Declared:
        if self.spec.api(version) is None:
            raise RenderError(f"{where(None)}: {self.name} is not in API {version}; it exists in "
                              f"{', '.join(self.spec.ordered_versions)} (set api_version of the environment, or "
                              f"render {self.name} only where environment.api_version has it)")
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise RenderError(f"{where(None)}: {self.name} must map each object's {self.spec.key_field} to its "
                              "fields")
        desired = Declared()
        for key, fields in raw.items():
            text = str(reveal(key)).strip()
            if not text:
                raise RenderError(f"{where(key)}: {self.name} has an object with an empty {self.spec.key_field}")
            if text.lower() in (k.lower() for k in desired):
                raise RenderError(f"{where(key)}: {object_address(self.name, text)} is declared twice")
            line = where_of(fields, lambda _k, _key=key: where(_key))
            desired[text] = self._object(version, text, {} if fields is None else fields, line)
            hooks = self.spec.hooks
            problem = hooks.check(version, text, desired[text]) if isinstance(hooks, ChecksObject) else ""
            if problem:
                raise RenderError(f"{where(key)}: {object_address(self.name, text)}: {problem}")
            desired.where[text] = where(key)
        self._check_unique(desired)
        return desired

    def _check_unique(self, desired: Declared) -> None:
        """Two objects may not share the values of the spec's ``unique`` fields (the server refuses the second:
        a repository's folder on one proxy), compared as the server does: case-insensitively, a folder without its
        trailing separator."""
        for fields in self.spec.unique:
            names = [next((r.written for r in self.spec.references if r.field == f), f) for f in fields]
            seen: dict[tuple[str, ...], str] = {}
            for key in sorted(desired, key=str.lower):
                values = [desired[key].get(name) for name in names]
                if any(v is None or isinstance(v, Sensitive) or v == "" for v in values):
                    continue
                folded = tuple(str(v).rstrip("\\/").lower() for v in values)
                if folded in seen:
                    raise RenderError(f"{desired.where[key]}: {object_address(self.name, key)} has the same "
                                      f"{' and '.join(names)} as {object_address(self.name, seen[folded])} (the "
                                      "server refuses a second one)")
                seen[folded] = key

    def _object(self, version: str, key: str, fields: Any, line: Callable[[Any], str]) -> dict[str, Any]:
        base = object_address(self.name, key)
        if not isinstance(fields, dict):
            raise RenderError(f"{line(None)}: {base} must be a mapping of API fields")
        writable, readable = self.spec.fields(version)
        by_lower = {name.lower(): name for name in writable}
        out: dict[str, Any] = {}
        for raw_name, value in fields.items():
            name = str(raw_name)
            ref = self._reference_named(name)
            if ref is not None and ref.field not in writable and any(
                    ref.field in self.spec.fields(v)[0] for v in self.spec.ordered_versions):
                raise RenderError(f"{line(raw_name)}: {base}: {ref.written} is not in API {version}")
            if ref is not None:
                out[ref.written] = self._names(ref, value, f"{line(raw_name)}: {base}.{ref.written}")
                continue
            self._refuse_ids(name, f"{line(raw_name)}: {base}.{name}")
            if name.lower() == self.spec.key_field.lower():
                if str(reveal(value)) != key:
                    raise RenderError(f"{line(raw_name)}: {base}.{name} must be the object's key ('{key}') or be "
                                      "left out")
                continue
            api_name = by_lower.get(name.lower())
            if api_name is None:
                raise RenderError(self._unknown(version, f"{line(raw_name)}: {base}", name, writable, readable))
            if api_name in out:
                raise RenderError(f"{line(raw_name)}: {base}.{api_name} is given twice")
            out[api_name] = self._bind(version, writable[api_name], value, (api_name,), f"{line(raw_name)}: {base}")
        return out

    def _reference_named(self, name: str, parent: Path = ()) -> Reference | None:
        """The reference templates write as ``name`` in the object at ``parent`` (the object itself: empty)."""
        return next((r for r in self.spec.references if r.parent == parent and r.written.lower() == name.lower()),
                    None)

    def _nested(self, name: str) -> list[Reference]:
        """The references inside the value of top-level field ``name`` (``objectStorage.accountId``)."""
        return [r for r in self.spec.references if r.parent[:1] == (name,)]

    def _refuse_ids(self, name: str, label: str, parent: Path = ()) -> None:
        apart = next((a for a in self.spec.separate if not parent and a.link.lower() == name.lower()), None)
        if apart is not None:
            raise RenderError(f"{label}: ids differ per server; write {apart.field}: {{...}} (its fields, as in every "
                              f"API version) instead of {apart.link}")
        ref = next((r for r in self.spec.references if r.parent == parent and r.leaf.lower() == name.lower()), None)
        if ref is not None:
            target = _spec_of(ref.kind)
            what = f"the {target.key_field} of the {ref.kind} object" if target else f"the {ref.kind} key"
            raise RenderError(f"{label}: ids differ per server; write {ref.written}: "
                              f"{'[names]' if ref.many else 'NAME'} ({what}) instead of {ref.leaf}")

    def _unknown(self, version: str, label: str, name: str, writable: dict[str, Any], readable: set[str]) -> str:
        if name.lower() in {n.lower() for n in readable - set(writable)}:
            return f"{label}.{name} is set by the server (response-only in API {version}) and cannot be managed"
        hint = schema.nearest(name, sorted(list(writable) + [r.written for r in self.spec.references]))
        return f"{label}: unknown field '{name}' for API {version}" + (f"; did you mean '{hint}'?" if hint else "")

    def _names(self, ref: Reference, value: Any, label: str) -> Any:
        names = value if ref.many else [value]
        if not isinstance(names, list) or not all(isinstance(reveal(n), str) and str(reveal(n)).strip()
                                                   for n in names):
            raise RenderError(f"{label} must be {'a list of names' if ref.many else 'a name'} of {ref.kind}")
        cleaned = [str(reveal(n)).strip() for n in names]
        if len({n.lower() for n in cleaned}) != len(cleaned):
            raise RenderError(f"{label} names an object twice")
        return sorted(cleaned, key=str.lower) if ref.many else cleaned[0]

    def _bind(self, version: str, prop: dict[str, Any], value: Any, path: Path, label: str) -> Any:
        where = f"{label}.{'.'.join(path)}"
        if self._secret(version, prop, path) or isinstance(value, Sensitive):
            try:
                return Sensitive(schema.bind(version, prop, reveal(value), where, unknown="error"))
            except schema.SchemaError as exc:
                raise RenderError(f"{exc.where}: the value has the wrong type") from None
        resolved = schema.resolve(version, prop)
        if isinstance(value, dict) and "properties" in resolved:
            props = resolved["properties"]
            by_lower = {n.lower(): n for n in props}
            out: dict[str, Any] = {}
            for key, item in value.items():
                ref = self._reference_named(str(key), path)
                if ref is not None:
                    out[ref.written] = self._names(ref, item, f"{where}.{ref.written}")
                    continue
                self._refuse_ids(str(key), f"{where}.{key}", path)
                name = by_lower.get(str(key).lower())
                if name is None:
                    hint = schema.nearest(str(key), sorted(props))
                    raise RenderError(f"{where}: unknown field '{key}'" + (f"; did you mean '{hint}'?" if hint else ""))
                out[name] = self._bind(version, props[name], item, (*path, name), label)
            return out
        try:
            return schema.bind(version, prop, reveal(value), where, unknown="error")
        except schema.SchemaError as exc:
            raise RenderError(f"{exc.where}: {exc.message}") from None

    def _secret(self, version: str, prop: dict[str, Any], path: Path) -> bool:
        return schema.resolve(version, prop).get("format") == "password" or ".".join(path) in self.spec.secrets

    def scope(self, desired: Declared) -> list[str]:
        return sorted(desired, key=str.lower)

    def addresses(self, scope: list[str]) -> set[Address]:
        return {Address(self.name)} | {object_address(self.name, key) for key in scope}

    def _secret_path(self, version: str, path: Path, key: str, secret_fields: tuple[str, ...]) -> bool:
        """Whether the field at ``path`` of object ``key`` is secret: a password in the schema, or named secret by
        the spec or by the plan (filled from ``secret()``)."""
        api = self.spec.api(version)
        if not path or api is None:
            return False
        prop: dict[str, Any] = {"properties": schema.properties(version, api.request)}
        for part in path:
            prop = schema.resolve(version, (prop.get("properties") or {}).get(part) or {})
        return self._secret(version, prop, path) or json.dumps([key, *path]) in secret_fields

    def derive(self, basis: Basis, address: Address, action: str, after: Any) -> Change:
        """The change a row is, from its address, action and desired value and the plan's recorded live values
        (which hold every object's id and the ids of the objects references name)."""
        if address.kind != self.name or not address.parts or address.parts[0][0] != "[" \
                or any(sep != "." for sep, _ in address.parts[1:]):
            raise PlanError(f"{address}: not an address of a {self.name} object or field "
                            f'({self.name}["KEY"] or {self.name}["KEY"].FIELD)')
        api = self.spec.api(basis.version)
        if api is None:
            raise PlanError(f"{address}: {self.name} is not in API {basis.version}")
        live = basis.live if isinstance(basis.live, dict) else {}
        key, path = _key_of(address), _field_path(address)
        obj = _find_key(live.get("objects") or {}, key)
        if action == "update" and path:
            return self._derive_update(basis, address, key, path, obj, after, live)
        if action == "replace" and not path:
            return self._derive_replace(basis.version, api, address, key, obj, after, live)
        if path or action not in ("create", "delete"):
            raise PlanError(f"{address}: a {self.name} {'field' if path else 'object'} is not {action}d")
        if action == "delete":
            if obj is None or not self.spec.whole_truth or api.delete is None:
                raise PlanError(f"{address}: the plan cannot delete this object (not on the server, or the API "
                                "cannot delete it)")
            return make("delete", self.name, address, self._shown_object(obj["values"], live), None, False,
                        _deleted(key, obj))
        if obj is not None or api.create is None:
            raise PlanError(f"{address}: the plan cannot create this object (it is on the server already, or the "
                            "API cannot create it)")
        self._check_shown(basis.version, address, after, live)
        return make("create", self.name, address, None, after, False, {"key": key})

    def _derive_replace(self, version: str, api: Api, address: Address, key: str, obj: Any, after: Any,
                        live: dict[str, Any]) -> Change:
        if obj is None or api.create is None or api.delete is None:
            raise PlanError(f"{address}: the plan cannot replace this object (not on the server, or the API cannot "
                            "delete and create it)")
        self._check_shown(version, address, after, live)
        # Without an update call, any change is a new object (a new password: the row of it says so, sensitive).
        reason = self._replace_reason(version, obj["values"], after, live, secret_changed=api.update is None)
        if not reason:
            raise PlanError(f"{address}: nothing about this object needs a replace (no field the server fixes after "
                            "creation changes)")
        return make("replace", self.name, address, self._shown_object(obj["values"], live), after, False,
                    {"key": key, "id": obj["id"], "reason": reason})

    def _replace_reason(self, version: str, values: dict[str, Any], shown: dict[str, Any], live: dict[str, Any],
                        secret_changed: bool) -> str:
        """Why an object whose live values are ``values`` cannot become ``shown`` (desired, references as addresses)
        in place: the fixed fields that change, or a changed secret of a kind the API cannot update. Empty: it can."""
        fixed = []
        for name in self.spec.fixed:  # a top-level field, or one inside it (objectStorage.s3Folder)
            top, *inside = name.split(".")
            if top in shown:
                seen = self._shown(top, _project(values.get(top), shown[top]), live)
                if not _same(_get_path(seen, tuple(inside)), _get_path(shown[top], tuple(inside))):
                    fixed.append(name)
        if fixed:
            return f"{' and '.join(fixed)} cannot change after creation"
        api = self.spec.api(version)
        if secret_changed and api is not None and api.update is None:
            secrets = " or ".join(self.spec.secrets) or "secret"
            return f"{self.name} cannot be updated (the API has no update): a new {secrets} means a new object"
        return ""

    def _derive_update(self, basis: Basis, address: Address, key: str, path: Path, obj: Any, after: Any,
                       live: dict[str, Any]) -> Change:
        if self._secret_path(basis.version, path, key, basis.secret_fields):
            detail = {"key": key, **({"id": obj["id"]} if obj else {}), "write_only": True, "recorded": False}
            return make("update", self.name, address, None, Sensitive(reveal(after)), True, detail)
        if obj is None or len(path) != 1:
            raise PlanError(f"{address}: the plan records no live object with this field")
        name = path[0]
        self._check_shown(basis.version, address, {name: after}, live)
        before = self._shown(name, _project(obj["values"].get(name), after), live)
        if self._fixed(name, before, after):
            raise PlanError(f"{address}: this field cannot change in place")
        if _same(before, after):
            raise PlanError(f"{address}: the live value is already {_text(after)}; this is no change")
        return make("update", self.name, address, before, after, False, {"key": key, "id": obj["id"]})

    def _check_shown(self, version: str, address: Address, values: Any, live: dict[str, Any]) -> None:
        """A row's values must name fields a request can set, and references as other objects' addresses."""
        if not isinstance(values, dict):
            raise PlanError(f"{address}: the value of a create is the object's fields")
        writable, _ = self.spec.fields(version)
        for name, value in values.items():
            ref = self._reference_named(name)
            if ref is None:
                raw = next((r for r in self.spec.references if not r.parent and r.leaf.lower() == name.lower()), None)
                if raw is not None:  # a raw id of the author's choosing, where the row must name the object
                    raise PlanError(f"{address}: must name {raw.written}, not hold {raw.leaf}")
                if any(a.link.lower() == name.lower() for a in self.spec.separate):
                    raise PlanError(f"{address}: {name} is the server's id of an object vboplan manages apart")
                if name not in writable:
                    raise PlanError(f"{address}: {self.name} has no field '{name}' a request can set")
                stray = self._stray(version, writable[name], value, (name,))
                if stray:  # inside an object: a field of the author's choosing (the server's own id of it)
                    raise PlanError(f"{address}: {self.name} has no field '{stray}' a request can set")
                for inner in self._nested(name):
                    holder = _get_path(value, inner.parent[1:])
                    if isinstance(holder, dict) and inner.leaf in holder:
                        raise PlanError(f"{address}: {'.'.join(inner.parent)} must name {inner.written}, not hold "
                                        f"{inner.leaf}")
                    if isinstance(holder, dict) and holder.get(inner.written) is not None:
                        _check_addresses(address, ".".join(inner.shown_path), inner, holder[inner.written])
                continue
            _check_addresses(address, name, ref, value)

    def _stray(self, version: str, prop: dict[str, Any], value: Any, path: Path) -> str:
        """The first field inside ``value`` (of top-level field ``path[0]``) that no request can set: one the schema
        does not have there, or the server's own (``id``); references count as their written names."""
        resolved = schema.resolve(version, prop)
        if isinstance(value, list):
            return next((f for f in (self._stray(version, resolved.get("items") or {}, v, path) for v in value) if f),
                        "")
        if not isinstance(value, dict) or "properties" not in resolved:
            return ""
        props = resolved["properties"]
        for key, item in value.items():
            if self._reference_named(str(key), path) is not None:
                continue
            if key not in props or key in SERVER_FIELDS:
                return ".".join((*path, str(key)))
            found = self._stray(version, props[key], item, (*path, str(key)))
            if found:
                return found
        return ""

    def desired_value(self, desired: Any, change: Change) -> Any:
        key = _key_of(change.address)
        value: Any = _find_key(desired or {}, key) or {}
        for part in _field_path(change.address):
            value = value.get(part) if isinstance(value, dict) else None
        return value

    # -- live --------------------------------------------------------------------------------------------------

    def read(self, client: VboClient, scope: list[str]) -> dict[str, Any]:
        """Every object of the collection (the whole of it: deletions and the mass-delete guard need it), with
        references as names, and the names and ids of the objects they may refer to."""
        api = self.spec.api(client.version)
        if api is None:
            return {"objects": {}, "refs": {}}
        resolver = refs.resolver(client)
        raw = list(resolver.objects(self.name).items)
        hooks = self.spec.hooks
        if isinstance(hooks, ReadsMore) and raw:
            with ThreadPoolExecutor(max_workers=min(len(raw), 8)) as pool:
                raw = [{**item, **more} for item, more in
                       zip(raw, pool.map(lambda i: hooks.more(client, client.version, i), raw), strict=True)]
        raw, parts, detached = self._read_separate(client, raw)
        listed = self._listed_references(client, api, raw)
        known = {ref.kind: {str(o.get("id")): str(o.get(_spec_key_field(ref.kind)))
                            for o in resolver.objects(ref.kind).items} for ref in self.spec.references}
        writable, readable = self.spec.fields(client.version)
        managed = (set(writable) & readable) - {self.spec.key_field}
        objects: dict[str, Any] = {}
        for item, extra, part in zip(raw, listed, parts, strict=True):
            values = {name: _settable(client.version, writable[name], item[name]) for name in sorted(managed)
                      if item.get(name) is not None and not any(r.field == name for r in self.spec.references)}
            for ref in self.spec.references:
                holder = _get_path(values, ref.parent)
                if not isinstance(holder, dict):
                    continue
                ids = extra.get(ref.field, _ids(ref, item.get(ref.field) if not ref.parent else holder.get(ref.leaf)))
                holder.pop(ref.leaf, None)
                if ids is not None:
                    names = [known[ref.kind].get(i, f"(id {i})") for i in ids]
                    holder[ref.written] = sorted(names, key=str.lower) if ref.many else names[0]
            if self.spec.shared_key:
                self._refuse_twin(client, objects, item)
            objects[str(item.get(self.spec.key_field))] = {"id": str(item.get("id")), "values": values,
                                                           **({"parts": part} if part else {}),
                                                           **({"deposed": item[refs.DEPOSED]}
                                                              if refs.DEPOSED in item else {})}
        found = {"objects": objects, "refs": {kind: {name: i for i, name in ids.items()} for kind, ids in known.items()}}
        return {**found, "detached": detached} if detached else found

    def _refuse_twin(self, client: VboClient, objects: dict[str, Any], item: dict[str, Any]) -> None:
        """A key two objects share (a kind whose server allows it) that no apply of vboplan's left: vboplan names
        objects by key, so it cannot say which one the templates mean. (The old object of a ``create_before_destroy``
        replace cut short is named deposed instead, see :func:`~vboplan.kinds.refs.depose`.)"""
        key = str(item.get(self.spec.key_field))
        twin = _find_key(objects, key)
        if twin is None:
            return
        api = self.spec.api(client.version)
        path = api.delete.url(**{api.id_param: "ID"}) if api is not None and api.delete is not None else ""
        raise ProjectError(f"{object_address(self.name, key)}: the server holds two {self.name} objects with this "
                           f"{self.spec.key_field} (ids {twin['id']} and {item.get('id')}); vboplan names them by it "
                           "and cannot tell which one the templates mean, and no apply of vboplan's left them (as "
                           "the old one of a create_before_destroy replace cut short): delete the one nothing should "
                           "use" + (f" (DELETE /{client.version}/{path})" if path else "")
                           + ", then plan again")

    def _read_separate(self, client: VboClient, raw: list[dict[str, Any]]) -> tuple[
            list[dict[str, Any]], list[dict[str, str]], dict[str, dict[str, str]]]:
        """``raw`` with each field the version keeps apart (``spec.separate``) read from its own collection into
        the object naming it, the ids of those objects per object, and those no object names, by name (an apply
        cut short between creating one and the object that names it leaves one: the next create takes it up)."""
        parts: list[dict[str, str]] = [{} for _ in raw]
        detached: dict[str, dict[str, str]] = {}
        for apart in self.spec.separate_in(client.version):
            api = apart.api(client.version)
            assert api is not None
            held = {str(o.get("id")).lower(): o for o in client.list_objects(api.list)}
            named: set[str] = set()
            for index, item in enumerate(raw):
                found = held.get(str(item.get(apart.link) or "").lower())
                if found is not None:
                    raw[index] = {**item, apart.field: found}
                    parts[index][apart.field] = str(found["id"])
                    # Its own name (one made in the console may differ from the repository's): a PUT keeps it.
                    parts[index][f"{apart.field}.{apart.key_field}"] = str(found.get(apart.key_field) or "")
                    named.add(str(found["id"]).lower())
            loose = {str(o.get(apart.key_field)): str(o["id"]) for i, o in held.items() if i not in named}
            if loose:
                detached[apart.field] = loose
        return raw, parts, detached

    def _listed_references(self, client: VboClient, api: Api, raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """For references the object's answer leaves out (``ref.read``), the ids listed at their own path."""
        listed = [ref for ref in self.spec.references if ref.read]
        if not listed or not raw:
            return [{} for _ in raw]

        def one(item: dict[str, Any]) -> dict[str, Any]:
            return {ref.field: [str(o.get("id")) for o in client.list_objects(
                Operation("GET", ref.read, (200,), api.list.paged), **{api.id_param: str(item.get("id"))})]
                for ref in listed}

        with ThreadPoolExecutor(max_workers=min(len(raw), 8)) as pool:
            return list(pool.map(one, raw))

    # -- plan --------------------------------------------------------------------------------------------------

    def diff(self, version: str, live: dict[str, Any], desired: Declared, recorded: Any | None) -> list[Change]:
        objects = live.get("objects") or {}
        by_lower = {key.lower(): key for key in objects}
        secrets = (recorded or {}).get("secrets") or {}
        changes: list[Change] = []
        for key, fields in sorted(desired.items(), key=lambda item: item[0].lower()):
            found = by_lower.get(key.lower())
            if found is None:
                changes += self._create(version, key, fields, live, desired)
            else:
                changes += self._update(version, key, fields, objects[found], live, _find_key(secrets, found) or {})
        if self.spec.whole_truth:
            declared = {key.lower() for key in desired}
            for key in sorted((k for k in objects if k.lower() not in declared), key=str.lower):
                changes.append(make("delete", self.name, object_address(self.name, key),
                                    self._shown_object(objects[key]["values"], live), None, False,
                                    _deleted(key, objects[key])))
        return changes

    def diff_apart(self, version: str, live: dict[str, Any], desired: Declared, recorded: Any | None,
                   apart: tuple[str, ...]) -> tuple[list[Change], set[str]]:
        """For a kind that diffs some fields itself (a job's item lists, a role's entries, kept through their own
        endpoints): the generic diff of ``desired`` without the fields ``apart``, and the keys (lower case) of the
        objects it replaces, whose fields of their own are then all created with the new object."""
        plain = Declared()
        plain.where = desired.where
        for key, fields in desired.items():
            plain[key] = {k: v for k, v in fields.items() if k not in apart}
        changes = CollectionKind.diff(self, version, live, plain, recorded)
        return changes, {c.address.parts[0][1].lower() for c in changes if c.action == "replace"}

    def _create(self, version: str, key: str, fields: dict[str, Any], live: dict[str, Any],
                desired: Declared) -> list[Change]:
        api = self.spec.api(version)
        if api is None or api.create is None:
            where = desired.where.get(key, self.name)
            raise ProjectError(f"{where}: {object_address(self.name, key)} is not on the server, and vboplan cannot "
                               f"add it: {self.spec.absent or 'the API cannot create ' + self.name}")
        plain, secret = _split(fields)
        address = object_address(self.name, key)
        changes = [make("create", self.name, address, None, self._shown_object(plain, live), False, {"key": key})]
        changes += [make("update", self.name, _at(address, path), None, value, True,
                         {"key": key, "write_only": True, "recorded": False}) for path, value in secret]
        return changes

    def _update(self, version: str, key: str, fields: dict[str, Any], obj: dict[str, Any], live: dict[str, Any],
                secrets: dict[str, Any]) -> list[Change]:
        plain, secret = _split(fields)
        values = obj["values"]
        address = object_address(self.name, key)
        changes: list[Change] = []
        for name in sorted(plain):
            wanted, seen = self._canonical(name, plain[name], live), _project(values.get(name), plain[name])
            if not _same(seen, wanted):
                changes.append(make("update", self.name, address.field(name), self._shown(name, seen, live),
                                    self._shown(name, wanted, live), False, {"key": key, "id": obj["id"]}))
        in_place = (api := self.spec.api(version)) is not None and api.update is not None
        changed = []
        for path, value in secret:
            recorded = secrets.get(".".join(path))
            if matches(reveal(value), recorded) or (recorded is None and not in_place):
                continue  # without an update call, a secret never applied here cannot be set (nor checked)
            changed.append((path, value, recorded is not None))
        shown = self._shown_object(plain, live)
        reason = self._replace_reason(version, values, shown, live, secret_changed=bool(changed))
        if reason:  # deleted and created again: the new object gets every desired field, its secrets too
            return [make("replace", self.name, address, self._shown_object(values, live), shown, False,
                         {"key": key, "id": obj["id"], "reason": reason})] + [
                make("update", self.name, _at(address, path), None, value, True,
                     {"key": key, "id": obj["id"], "write_only": True,
                      "recorded": secrets.get(".".join(path)) is not None}) for path, value in secret]
        return changes + [make("update", self.name, _at(address, path), None, value, True,
                               {"key": key, "id": obj["id"], "write_only": True, "recorded": recorded})
                          for path, value, recorded in changed]

    def _fixed(self, name: str, live: Any, desired: Any) -> bool:
        """Whether changing top-level field ``name`` from ``live`` to ``desired`` changes a field the server fixes
        once the object exists (``fixed`` names it, or a field inside it: ``objectStorage.s3Folder``)."""
        if name in self.spec.fixed:
            return True
        inside = [tuple(f.split("."))[1:] for f in self.spec.fixed if f.startswith(name + ".")]
        return any(not _same(_get_path(live, path), _get_path(desired, path)) for path in inside)

    def _canonical(self, name: str, value: Any, live: dict[str, Any]) -> Any:
        """A desired reference with each name as the server spells it (names compare case-insensitively)."""
        ref = self._reference_named(name)
        if ref is None:
            return self._each_nested(name, value, lambda r, v: self._canonical_names(r, v, live))
        return self._canonical_names(ref, value, live)

    def _canonical_names(self, ref: Reference, value: Any, live: dict[str, Any]) -> Any:
        known = {n.lower(): n for n in (live.get("refs") or {}).get(ref.kind, {})}
        if ref.many:
            return sorted((known.get(n.lower(), n) for n in value), key=str.lower)
        return known.get(value.lower(), value)

    def _shown(self, name: str, value: Any, live: dict[str, Any]) -> Any:
        """A value as a row shows it: a reference (at any depth) as the other object's address."""
        ref = self._reference_named(name)
        if ref is None:
            return self._each_nested(name, value, _addresses)
        return _addresses(ref, value)

    def _each_nested(self, name: str, value: Any, change: Callable[[Reference, Any], Any],
                     api: bool = False) -> Any:
        """``value`` of top-level field ``name`` with each nested reference's value changed by ``change``; ``api``:
        the value is then held under the API's field (``accountId``) instead of the template's (``account``)."""
        for ref in self._nested(name):
            holder = _get_path(value, ref.parent[1:])
            if not isinstance(holder, dict) or holder.get(ref.written) is None:
                continue
            value = _copied_to(value, ref.parent[1:])
            holder = _get_path(value, ref.parent[1:])
            found = holder.pop(ref.written)
            holder[ref.leaf if api else ref.written] = change(ref, found)
        return value

    def _shown_object(self, values: dict[str, Any], live: dict[str, Any]) -> dict[str, Any]:
        return {name: self._shown(name, self._canonical(name, value, live), live) for name, value in values.items()}

    def pending(self, changes: list[Change], live: dict[str, Any]) -> list[tuple[Change, str, str]]:
        """``(change, kind, name)`` for each reference of ``changes`` to an object the server does not hold (it
        must be created by the same plan)."""
        found = []
        for change in changes:
            value = change.after if isinstance(change.after, dict) and change.action == "create" else \
                {_field_path(change.address)[0]: change.after} if _field_path(change.address) else {}
            for ref in self.spec.references:
                shown = _get_path(value, ref.shown_path)
                for address in shown if isinstance(shown, list) else [shown] if shown else []:
                    parsed = Address.parse(address)
                    name = parsed.parts[0][1]
                    if name.lower() not in {n.lower() for n in (live.get("refs") or {}).get(ref.kind, {})}:
                        found.append((change, ref.kind, name))
        return found

    def refers_to(self, change: Change) -> list[Address]:
        """The objects ``change`` refers to, by address (``--target`` takes them in)."""
        path = _field_path(change.address)
        values = change.after if change.action == "create" and isinstance(change.after, dict) else \
            {path[0]: change.after} if len(path) == 1 else {}
        found: list[Address] = []
        for ref in self.spec.references:
            shown = _get_path(values, ref.shown_path)
            found += [Address.parse(a) for a in (shown if isinstance(shown, list) else [shown] if shown else [])]
        return found

    def users(self, live: Any, kind: str, key: str) -> list[tuple[Address, str]]:
        """The live objects that refer to ``kind``'s object ``key``, with the field (as templates write it)."""
        found: list[tuple[Address, str]] = []
        for ref in (r for r in self.spec.references if r.kind == kind):
            for name, obj in sorted(((live or {}).get("objects") or {}).items(), key=lambda i: i[0].lower()):
                value = _get_path(obj.get("values") or {}, ref.shown_path)
                if any(str(n).lower() == key.lower() for n in (value if isinstance(value, list) else [value])):
                    found.append((object_address(self.name, name), ".".join(ref.shown_path)))
        return found

    def deletions(self, changes: list[Change], live: Any) -> list[tuple[str, int, int]]:
        """The objects ``changes`` delete out of all the collection holds (its guard scope is the server)."""
        # A deposed object (the old one of a replace cut short) is the replace's to remove, not one the guard counts.
        deleted = sum(1 for c in changes if c.kind == self.name and c.action == "delete" and len(c.address.parts) == 1
                      and not c.detail.get("deposed"))
        objects = (live or {}).get("objects") or {} if isinstance(live, dict) else {}
        total = sum(1 for o in objects.values() if not (isinstance(o, dict) and o.get("deposed")))
        return [(self.name, deleted, max(total, deleted))] if deleted else []

    def declared_at(self, desired: Any, key: str) -> str:
        where = getattr(desired, "where", {})
        return str(_find_key(where, key) or self.name)

    def conceal(self, live: Any, desired: Any) -> tuple[Any, list[str]]:
        """Live values with every field a template fills from ``secret()`` kept as a salted hash; the fields as
        JSON lists ``[key, field, ...]``."""
        fields: list[str] = []
        for key, values in (desired or {}).items():
            fields += [json.dumps([key, *path]) for path, _ in _split(values)[1]]
        return self.conceal_fields(live, fields), sorted(fields)

    def conceal_fields(self, live: Any, fields: list[str]) -> Any:
        if not isinstance(live, dict) or not fields or not isinstance(live.get("objects"), dict):
            return live
        objects = json.loads(json.dumps(live["objects"]))
        for text in fields:
            try:
                key, *path = json.loads(text)
            except (ValueError, TypeError):
                continue
            obj = _find_key(objects, str(key))
            target = obj.get("values") if isinstance(obj, dict) else None
            for name in path[:-1]:
                target = target.get(name) if isinstance(target, dict) else None
            if isinstance(target, dict) and path and target.get(path[-1]) is not None \
                    and not is_digest(target[path[-1]]):
                target[path[-1]] = digest(target[path[-1]])
        return {**live, "objects": objects}

    # -- apply -------------------------------------------------------------------------------------------------

    def writes(self, basis: Basis, changes: list[Change]) -> list[Write]:
        """One request per object: a POST per created object (its passwords in the body), a PUT per updated one
        (with the fields the document requires in every PUT, from the recorded live values), a DELETE per deleted
        one. Ids come from the recorded live values; an object the same apply creates is ``(known after apply)``."""
        api = self.spec.api(basis.version)
        if api is None:
            raise PlanError(f"{self.name} is not in API {basis.version}")
        live = basis.live if isinstance(basis.live, dict) else {}
        by_key: dict[str, list[Change]] = {}
        for change in changes:
            by_key.setdefault(_key_of(change.address), []).append(change)
        writes = []
        for key, mine in by_key.items():
            replacing = next((c for c in mine if c.action == "replace"), None)
            if replacing is not None:
                writes += self._replace_writes(basis, api, key, mine, replacing, live)
                continue
            writes.append(self.object_write(basis, api, key, mine, live))
        return writes

    def object_write(self, basis: Basis, api: Api, key: str, mine: list[Change], live: dict[str, Any]) -> Write:
        """The write carrying out the changes ``mine`` of object ``key`` (a replace's halves come here as a delete
        and as a create): the hook a kind with sub-endpoints (a job's items, a role's operators) overrides."""
        request = self._request(basis.version, api, key, mine, live, basis.replaced)
        return Write(f"{request.method} {request.shown(basis.version)['path']}", mine,
                     requests=self._separated(basis.version, key, mine, live, request))

    def _separated(self, version: str, key: str, mine: list[Change], live: dict[str, Any],
                   request: Request) -> list[Request]:
        return self._apart(version, key, mine, live, request) if self.spec.separate_in(version) else [request]

    def _replace_writes(self, basis: Basis, api: Api, key: str, mine: list[Change], replacing: Change,
                        live: dict[str, Any]) -> list[Write]:
        """A replace is two writes, as Terraform orders them by default: the DELETE of the old object (a write of its
        own, carrying the replace's delete half, so a journal cut between the two tells the truth), then the POST of
        the new one with every desired field and secret."""
        if api.update is None and not any(c.sensitive for c in mine):
            # Replaced for a new secret (the kind has no update): without it the POST would fail after the DELETE.
            raise PlanError(f"{replacing.address}: the replace carries no new {' or '.join(self.spec.secrets) or 'secret'} "
                            "(its row is missing from the plan); run 'vboplan plan' again")
        gone = make("delete", self.name, replacing.address, replacing.before, None, False, replacing.detail,
                    replacing.id)
        delete = self.object_write(basis, api, key, [gone], live)
        others = [c for c in mine if c is not replacing]
        if replacing.detail.get("create_before_destroy"):
            # The new object first (the create half, with the replace's id, and its secrets), the old one last:
            # the DELETE carries the replace itself, so a journal cut in between says only the create landed.
            created = make("create", self.name, replacing.address, None, replacing.after, False,
                           {"key": key, "replaces": replacing.detail.get("id")}, replacing.id)
            post = self.object_write(basis, api, key, [created, *others], live)
            return [replace(post, description=f"{post.description} (replace {replacing.address}, created before the "
                                              "old object is deleted: the new object)"),
                    replace(delete, changes=[replacing],
                            description=f"{delete.description} (replace {replacing.address}: the old object, once "
                                        "nothing uses it)")]
        created = make("create", self.name, replacing.address, None, replacing.after, False, {"key": key})
        post = self.object_write(basis, api, key, [created, *others], live)
        return [replace(delete, description=f"{delete.description} (replace {replacing.address}: the old object)"),
                replace(post, changes=mine,
                        description=f"{post.description} (replace {replacing.address}: the new object)")]

    def move_row(self, basis: Basis, key: str, through: str, target: str) -> Change:
        """The row moving live object ``key``'s reference ``through`` (as templates write it) onto the new object at
        address ``target``, which the same apply creates before deleting the old one (``create_before_destroy``):
        an update of that field from the old object to the new one of the same key (its id known after apply), so
        approvers see the PUT apply sends for it (every other value as the plan recorded it). From the recorded live
        values alone, so a plan file's row is derived again, never taken from the file."""
        live = basis.live if isinstance(basis.live, dict) else {}
        obj = _find_key(live.get("objects") or {}, key)
        ref = self._reference_named(through)
        address = object_address(self.name, key)
        if obj is None or ref is None:
            raise PlanError(f"{address}.{through}: the plan records no live reference to move to {target}")
        shown = self._shown(ref.written, obj["values"].get(ref.written), live)
        return make("update", self.name, address.field(ref.written), shown, shown, False,
                    {"key": key, "id": obj["id"], "moves_to": target})

    def _apart(self, version: str, key: str, mine: list[Change], live: dict[str, Any],
               request: Request) -> list[Request]:
        """The requests of one object whose version keeps some fields apart (``spec.separate``): the object kept
        apart is created (or, left by an apply cut short, taken up) before the object naming it, edited with its own
        PUT, and removed after the object naming it."""
        obj = _find_key(live.get("objects") or {}, key)
        body = dict(request.body) if isinstance(request.body, dict) else request.body
        before: list[Request] = []
        after: list[Request] = []
        for apart in self.spec.separate_in(version):
            api = apart.api(version)
            assert api is not None and api.create is not None and api.update is not None and api.delete is not None
            held = ((obj or {}).get("parts") or {}).get(apart.field)
            if request.method == "DELETE":
                if held:
                    after.append(Request("DELETE", api.delete.url(**{api.id_param: held}), None, api.delete.status))
                continue
            if not isinstance(body, dict) or apart.field not in body:
                continue
            value = {**body.pop(apart.field), apart.key_field: key}
            if request.method == "PUT":
                value[apart.key_field] = ((obj or {}).get("parts") or {}).get(f"{apart.field}.{apart.key_field}") or key
                if not held:
                    raise PlanError(f"{object_address(self.name, key)}.{apart.field}: the server holds none to edit")
                after.append(Request("PUT", api.update.url(**{api.id_param: held}), value, api.update.status))
                continue
            address = str(object_address(self.name, key).field(apart.field))
            loose = _find_key((live.get("detached") or {}).get(apart.field) or {}, key)
            if loose:
                before.append(Request("PUT", api.update.url(**{api.id_param: loose}), value, api.update.status))
                body[apart.link] = loose
            else:
                before.append(Request("POST", api.create.path, value, api.create.status, assigns=address))
                body[apart.link] = AfterApply(address)
        apart_only = request.method == "PUT" and all(
            _field_path(c.address)[:1] in {(a.field,) for a in self.spec.separate_in(version)} for c in mine)
        return [*before, *([] if apart_only else [replace(request, body=body)]), *after]

    def _request(self, version: str, api: Api, key: str, mine: list[Change], live: dict[str, Any],
                 replaced: frozenset[str] = frozenset()) -> Request:
        obj = _find_key(live.get("objects") or {}, key)
        actions = {c.action for c in mine}
        if "delete" in actions:
            if obj is None or api.delete is None:
                raise PlanError(f"{object_address(self.name, key)}: nothing to delete on the server")
            return Request("DELETE", api.delete.url(**{api.id_param: obj["id"]}), None, api.delete.status)
        body: dict[str, Any] = {self.spec.key_field: key}
        for change in mine:
            if change.action == "create":
                body.update(self._api_body(change.after, live, replaced))
                continue
            path = _field_path(change.address)
            ref = self._reference_named(path[0]) if len(path) == 1 else None
            if ref is not None:
                body[ref.field] = self._ids_of(ref, change.after, live, replaced)
            else:
                _put(body, path, self._api_value(path[0], change.after, live, replaced) if len(path) == 1 else change.after)
        if "create" in actions:
            if api.create is None:
                raise PlanError(f"{object_address(self.name, key)}: the API cannot create {self.name}")
            for name in self.spec.required(version):
                body.setdefault(name, [] if any(r.field == name and r.many for r in self.spec.references) else "")
            ids = self._path_ids(api, body)
            path, body = self._placed(version, api, key, body)
            return Request("POST", path, body, api.create.status, ids=ids, assigns=str(object_address(self.name, key)))
        if obj is None or api.update is None:
            raise PlanError(f"{object_address(self.name, key)}: not on the server")
        for name in self.spec.required(version):
            if name not in body:
                body[name] = self._live_api_value(name, obj, live)
        return Request("PUT", api.update.url(**{api.id_param: obj["id"]}), body, api.update.status)

    def _live_api_value(self, name: str, obj: dict[str, Any], live: dict[str, Any]) -> Any:
        """A field's recorded live value as a request carries it (a reference as ids)."""
        ref = next((r for r in self.spec.references if r.field == name), None)
        if ref is None:
            return obj["values"].get(name)
        names = obj["values"].get(ref.written)
        if names is None:
            return [] if ref.many else None
        return self._ids_of(ref, self._shown(ref.written, names, live), live)

    def _placed(self, version: str, api: Api, key: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Where a create goes: placeholders of its path (``Organizations/{organizationId}/RbacRoles``) filled from
        the body's reference of the same name, then as the spec's ``PlacesCreate`` hook says. A placeholder naming an
        object the same apply creates stays in the path (see :meth:`_path_ids`), ``(known after apply)`` until the
        executor fills it in."""
        assert api.create is not None
        values: dict[str, str] = {}
        for name in re.findall(r"\{(\w+)\}", api.create.path):
            value = body.get(name)
            if isinstance(value, AfterApply):
                values[name] = "{" + name + "}"
                continue
            if not isinstance(value, str):
                raise PlanError(f"{object_address(self.name, key)}: the create's path needs {name}, which the object "
                                "does not name")
            values[name] = value
        path = api.create.url(**values)
        hooks = self.spec.hooks
        return hooks.place(version, path, body) if isinstance(hooks, PlacesCreate) else (path, body)

    def _path_ids(self, api: Api, body: dict[str, Any]) -> dict[str, AfterApply]:
        """The create path's placeholders that name an object the same apply creates, by name."""
        assert api.create is not None
        return {name: body[name] for name in re.findall(r"\{(\w+)\}", api.create.path)
                if isinstance(body.get(name), AfterApply)}

    def _api_body(self, shown: dict[str, Any], live: dict[str, Any],
                  replaced: frozenset[str] = frozenset()) -> dict[str, Any]:
        body: dict[str, Any] = {}
        for name, value in (shown or {}).items():
            ref = self._reference_named(name)
            if ref is None:
                body[name] = self._api_value(name, value, live, replaced)
            else:
                body[ref.field] = self._ids_of(ref, value, live, replaced)
        return body

    def _api_value(self, name: str, shown: Any, live: dict[str, Any],
                   replaced: frozenset[str] = frozenset()) -> Any:
        """The API value of top-level field ``name`` shown as ``shown``: nested references as ids."""
        return self._each_nested(name, shown, lambda ref, value: self._ids_of(ref, value, live, replaced), api=True)

    def _ids_of(self, ref: Reference, shown: Any, live: dict[str, Any], replaced: frozenset[str] = frozenset()) -> Any:
        """The API value of a reference shown as addresses: ids from the live values, ``(known after apply)`` for
        an object the same apply creates or replaces."""
        known = {n.lower(): i for n, i in ((live.get("refs") or {}).get(ref.kind) or {}).items()}
        out: list[Any] = []
        for address in shown if isinstance(shown, list) else [shown]:
            name = Address.parse(address).parts[0][1]
            found = known.get(name.lower())
            other = str(object_address(ref.kind, name))
            out.append(found if found is not None and other not in replaced else AfterApply(other))
        return [{ref.each: i} for i in out] if ref.many else out[0]

    def verify(self, change: Change, live: dict[str, Any]) -> bool:
        obj = _find_key(live.get("objects") or {}, _key_of(change.address))
        if change.action == "delete":
            return obj is None
        if obj is None:
            return False
        if change.action == "replace":  # a new object in the old one's place, the old one gone (not deposed)
            old = str(change.detail.get("id"))
            return obj["id"] != old and all(o.get("id") != old for o in (live.get("objects") or {}).values())
        if change.action == "create" and change.detail.get("replaces"):
            return obj["id"] != change.detail["replaces"]  # created before the old one: not the old one
        if change.action == "create" or change.write_only:
            return True
        path = _field_path(change.address)
        seen = _project(obj["values"].get(path[0]), change.after)
        return _same(self._shown(path[0], seen, live), change.after)

    def snapshot(self, live: dict[str, Any], applied: list[Change], recorded: Any | None) -> dict[str, Any]:
        secrets: dict[str, dict[str, Any]] = {k: dict(v) for k, v in ((recorded or {}).get("secrets") or {}).items()}
        for change in applied:
            if change.write_only:
                secrets.setdefault(_key_of(change.address), {})[".".join(_field_path(change.address))] = \
                    digest_of(change.after)
        objects = live.get("objects") or {}
        held = {key.lower() for key in objects}
        record = {"objects": objects, "secrets": {k: v for k, v in secrets.items() if k.lower() in held}}
        # The old objects of create_before_destroy replaces cut short (see refs.depose): the next read names them.
        deposed: dict[str, list[dict[str, str]]] = {}
        for obj in sorted(objects.values(), key=lambda o: str(o.get("id"))):
            if isinstance(obj.get("deposed"), dict):
                deposed.setdefault(str(obj["deposed"]["key"]), []).append(
                    {"id": str(obj["id"]), "journal": str(obj["deposed"].get("journal") or "")})
        return {**record, "deposed": deposed} if deposed else record

    def state_rows(self, recorded: Any) -> list[tuple[str, Any]]:
        rows: list[tuple[str, Any]] = []
        for key, obj in sorted(((recorded or {}).get("objects") or {}).items(), key=lambda i: i[0].lower()):
            base = object_address(self.name, key)
            rows += [(str(base.field(name)), MASK if is_digest(value) else value)
                     for name, value in sorted(obj.get("values", {}).items())]
            rows += [(f"{base}.{path}", MASK) for path in sorted((recorded.get("secrets") or {}).get(key, {}))]
        return rows

    def forget(self, record: Any, address: Address) -> Any:
        """``state rm`` (:class:`~vboplan.kinds.hooks.Forgets`): ``record`` without an object (its values and its
        secrets' hashes), or without one field of it (a top-level value, or a secret at any depth)."""
        if not isinstance(record, dict) or address.parts[0][0] != "[" \
                or any(sep != "." for sep, _ in address.parts[1:]):
            return None
        objects = dict(record.get("objects") or {})
        secrets = {k: dict(v) for k, v in (record.get("secrets") or {}).items() if isinstance(v, dict)}
        key = next((k for k in objects if k.lower() == _key_of(address).lower()), None)
        held = next((k for k in secrets if k.lower() == _key_of(address).lower()), None)
        path = ".".join(_field_path(address))
        if not path:
            objects.pop(str(key), None)
            secrets.pop(str(held), None)
            return {**record, "objects": objects, "secrets": secrets}
        if held is not None:
            secrets[held] = {p: v for p, v in secrets[held].items() if p != path and not p.startswith(path + ".")}
        if key is not None and "." not in path and isinstance(objects[key], dict):
            values = {n: v for n, v in (objects[key].get("values") or {}).items() if n != path}
            objects[key] = {**objects[key], "values": values}
        return {**record, "objects": objects, "secrets": secrets}

    def drift(self, recorded: Any, live: dict[str, Any]) -> list[Drift]:
        before = (recorded or {}).get("objects") or {}
        now = live.get("objects") or {}
        drifts: list[Drift] = []
        for key in sorted(set(before) | set(now), key=str.lower):
            base = object_address(self.name, key)
            if key not in now or key not in before:
                # A whole object: no value to show on either side, only what became of it.
                drifts.append(Drift(base, None, None, status="deleted" if key in before else "not in state"))
                continue
            was, is_now = before[key].get("values", {}), now[key].get("values", {})
            for name in sorted(set(was) | set(is_now)):
                # A reference to an object deposed since (the old one of a replace cut short) is what vboplan set.
                if same_live(was.get(name), is_now.get(name)) or \
                        same_live(was.get(name), self._undeposed(name, is_now.get(name))):
                    continue
                # A value the snapshot keeps as a hash (filled from secret()) is shown as neither side.
                secret = _holds_digest(was.get(name))
                drifts.append(Drift(base.field(name), MASK if secret else was.get(name),
                                    MASK if secret else is_now.get(name), sensitive=secret))
        return drifts

    def _undeposed(self, name: str, value: Any) -> Any:
        """Top-level field ``name``'s live ``value`` with each deposed object it refers to (see
        :func:`~vboplan.kinds.refs.deposed_name`) named by the key it was deposed from."""
        ref = self._reference_named(name)
        if ref is None or not refs.is_deposed_kind(ref.kind) or not isinstance(value, (str, list)):
            return value
        if isinstance(value, list):
            return sorted((refs.deposed_key(str(v)) or v for v in value), key=lambda v: str(v).lower())
        return refs.deposed_key(value) or value

    # -- import ------------------------------------------------------------------------------------------------

    def export(self, client: VboClient) -> Export:
        """Every object as a template declares it: the fields that can be set and read back, references by name,
        never an id or a password."""
        api = self.spec.api(client.version)
        if api is None:
            return Export(unavailable=f"{self.name} is not in API {client.version} (it exists in "
                                      f"{', '.join(self.spec.ordered_versions)})")
        live = self.read(client, [])
        writable, _ = self.spec.fields(client.version)
        exported = Export({}, (self.spec.key_field,), self.spec.summary)
        for key, obj in sorted(live["objects"].items(), key=lambda i: i[0].lower()):
            if obj.get("deposed"):
                exported.warnings.append(f"{object_address(self.name, key)}: the old object of a create_before_destroy "
                                         "replace cut short (deposed); not imported (the next "
                                         "plan deletes it)")
                continue
            values: dict[str, Any] = {}
            for name, value in obj["values"].items():
                ref = self._reference_named(name)
                if ref is not None:
                    if _unnamed(value):
                        exported.warnings.append(f"{object_address(self.name, key)}.{name} refers to an object "
                                                 "vboplan cannot name; not imported")
                        continue
                    values[name] = value
                    continue
                try:
                    values[name] = schema.bind(client.version, writable[name], value, f"{key}.{name}",
                                               read_only="ignore")
                except schema.SchemaError as exc:
                    exported.warnings.append(f"{object_address(self.name, key)}.{name}: the server's value does not "
                                             f"fit API {client.version} ({exc.message}); not imported")
                    continue
                for inner in self._nested(name):  # bind leaves the names of nested references out: put them back
                    names = _get_path(value, inner.shown_path[1:])
                    holder = _get_path(values[name], inner.parent[1:])
                    if names is None or not isinstance(holder, dict):
                        continue
                    if _unnamed(names):
                        exported.warnings.append(f"{object_address(self.name, key)}.{'.'.join(inner.shown_path)} "
                                                 "refers to an object vboplan cannot name; not imported")
                        continue
                    holder[inner.written] = names
            exported.values[key] = values
            # Write-only (the server never answers them): import reads them from secret(), one variable each.
            exported.write_only += [WriteOnly(str(object_address(self.name, key).field(name)), name,
                                              secret_variable(self.name, key, name))
                                    for name in self.spec.secrets if "." not in name and name in writable]
        return exported


# -- helpers -----------------------------------------------------------------------------------------------------------

def _spec_of(kind: str) -> CollectionSpec | None:
    from vboplan.kinds.registry import collection_specs

    return next((s for s in collection_specs() if s.key == kind), None)


def _spec_key_field(kind: str) -> str:
    found = _spec_of(kind)
    return found.key_field if found is not None else refs.READERS.get(kind, ("name",))[0]


def _deleted(key: str, obj: dict[str, Any]) -> dict[str, Any]:
    """The detail of deleting live object ``obj`` (of key ``key``): a deposed one says what it was deposed from."""
    deposed = obj.get("deposed")
    return {"key": key, "id": obj["id"], **({"deposed": str(deposed.get("key"))} if isinstance(deposed, dict) else {})}


def _ids(ref: Reference, value: Any) -> list[str] | None:
    if value is None:
        return None
    if ref.many:
        return [str(item.get(ref.each)) for item in value if isinstance(item, dict) and item.get(ref.each)]
    return [str(value)]


def _get_path(value: Any, path: Path) -> Any:
    """The value at ``path`` inside nested objects (None where one is missing)."""
    for name in path:
        value = value.get(name) if isinstance(value, dict) else None
    return value


def _settable(version: str, prop: dict[str, Any], value: Any) -> Any:
    """A live value cut to what a request can set, at every depth (a copy): no nested ids, links or read-only
    fields (an object storage's used space)."""
    resolved = schema.resolve(version, prop)
    if isinstance(value, list):
        return [_settable(version, resolved.get("items") or {}, item) for item in value]
    if not isinstance(value, dict) or "properties" not in resolved:
        return value
    props = resolved["properties"]
    return {key: _settable(version, props[key], item) for key, item in value.items()
            if key in props and key not in SERVER_FIELDS and not schema.resolve(version, props[key]).get("readOnly")}


def secret_variable(kind: str, key: str, name: str) -> str:
    """The environment variable ``secret()`` reads field ``name`` of object ``key`` from, as import writes it
    (``CLOUD_ACCOUNTS_AKIAEXAMPLE01_PASSWORD``)."""
    return re.sub(r"[^A-Z0-9]+", "_", f"{kind}_{key}_{name}".upper()).strip("_")


def _unnamed(value: Any) -> bool:
    """Whether a reference read from the server names an object vboplan could not name (``(id ...)``)."""
    return any(str(n).startswith("(id ") for n in (value if isinstance(value, list) else [value]))


def _check_addresses(address: Address, name: str, ref: Reference, value: Any) -> None:
    for text in value if isinstance(value, list) else [value]:
        try:
            target = Address.parse(str(text))
        except PlanError:
            target = None
        if target is None or target.kind != ref.kind or len(target.parts) != 1:
            raise PlanError(f"{address}: {name} must hold {ref.kind} addresses")


def _copied_to(value: dict[str, Any], path: Path) -> dict[str, Any]:
    """``value`` with each object on ``path`` copied (so that changing what it holds changes no one else's)."""
    top = dict(value)
    node = top
    for name in path:
        node[name] = dict(node[name])
        node = node[name]
    return top


def _addresses(ref: Reference, value: Any) -> Any:
    """A reference's names as the addresses of the objects they name."""
    if value is None:
        return value
    shown = [str(object_address(ref.kind, n)) for n in (value if isinstance(value, list) else [value])]
    return shown if ref.many else shown[0]


def _key_of(address: Address) -> str:
    return address.parts[0][1]


def _field_path(address: Address) -> Path:
    return tuple(name for _, name in address.parts[1:])


def _at(address: Address, path: Path) -> Address:
    for name in path:
        address = address.field(name)
    return address


def _find_key(mapping: dict[str, Any], key: str) -> Any:
    if key in mapping:
        return mapping[key]
    return next((v for k, v in mapping.items() if k.lower() == key.lower()), None)


def _split(fields: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[Path, Any]]]:
    """``fields`` without their secret values, and each secret value with its path."""
    secret: list[tuple[Path, Any]] = []

    def walk(value: dict[str, Any], path: Path) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, item in value.items():
            if isinstance(item, Sensitive):
                secret.append(((*path, key), item))
            else:
                out[key] = walk(item, (*path, key)) if isinstance(item, dict) else item
        return out

    return walk(fields, ()), secret


def _project(live: Any, desired: Any) -> Any:
    """``live`` cut to the shape of ``desired``: of a nested object only the keys the template names count."""
    if isinstance(desired, dict) and isinstance(live, dict):
        return {key: _project(live.get(key), value) for key, value in desired.items()}
    return live


def _same(live: Any, desired: Any) -> bool:
    if isinstance(live, list) and isinstance(desired, list):
        return sorted(map(_text, live)) == sorted(map(_text, desired))
    return _text(live) == _text(desired)


def _text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr)


def _holds_digest(value: Any) -> bool:
    if is_digest(value):
        return True
    if isinstance(value, dict):
        return any(_holds_digest(v) for v in value.values())
    return isinstance(value, list) and any(_holds_digest(v) for v in value)


def _put(body: dict[str, Any], path: Path, value: Any) -> None:
    """Set ``path`` of ``body`` to ``value``, merging into a nested object already there (a password row and the
    row of the object around it make one field); nothing a change holds is changed."""
    target = body
    for name in path[:-1]:
        nested = target.get(name)
        target[name] = dict(nested) if isinstance(nested, dict) else {}
        target = target[name]
    existing = target.get(path[-1])
    if isinstance(existing, dict) and isinstance(value, dict):
        target[path[-1]] = {**existing, **value}
    else:
        target[path[-1]] = dict(value) if isinstance(value, dict) else value
