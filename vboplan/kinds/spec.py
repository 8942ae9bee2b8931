"""What a named collection is, described once: the facts one generic implementation
(:class:`~vboplan.kinds.collection.CollectionKind`) and the emulator's generic table
(:mod:`vboplan.emulator.collections`) need to plan, apply, serve and import it.

A collection maps each object's key (the name the server holds it by, ``key_field``) to its fields, named as the
API names them; a field that refers to another object is written as the field name without its ``Id`` suffix and
holds that object's key. Adding a collection is one module defining a :class:`CollectionSpec` and one line in
:mod:`vboplan.kinds.registry`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vboplan import schema
from vboplan.api.rest import Operation
from vboplan.api.versions import VERSIONS

#: The fields no template names: the server's ids and links.
SERVER_FIELDS = frozenset({"id", "_links", "_actions"})


@dataclass(frozen=True)
class Reference:
    """A field holding the id of another kind's object (``proxyId``), or a list of them; a dotted ``field``
    (``objectStorage.accountId``) is one inside a nested object, written in that object (``objectStorage: {account:
    NAME}``).

    ``name`` is how templates write it (default: the field without its ``Id`` suffix, ``proxy``); ``each`` is set
    when the field is a list of objects each holding the id under that name (``proxyIds: [{proxyId}]``);
    ``read`` is the path (``{id}``: the object's id) where the server lists the referenced objects when its
    answer about the object leaves the field out (a pool's proxies)."""

    field: str
    kind: str
    name: str = ""
    each: str = ""
    read: str = ""

    @property
    def parent(self) -> tuple[str, ...]:
        """The path of the nested object holding the field (empty for a field of the object itself)."""
        return tuple(self.field.split("."))[:-1]

    @property
    def leaf(self) -> str:
        """The field's own name, in the object holding it (``accountId``)."""
        return self.field.rsplit(".", 1)[-1]

    @property
    def written(self) -> str:
        """The field's name in templates (in the object holding it)."""
        if self.name:
            return self.name
        return self.leaf[:-2] if self.leaf.endswith("Id") else self.leaf

    @property
    def shown_path(self) -> tuple[str, ...]:
        """The path of the field as templates write it (``("objectStorage", "account")``)."""
        return (*self.parent, self.written)

    @property
    def many(self) -> bool:
        return bool(self.each)


@dataclass(frozen=True)
class Api:
    """A collection's calls in one API version, and the components describing its objects."""

    list: Operation
    request: str                      # component of the create/update body
    response: str                     # component of an object the server answers with
    get: Operation | None = None
    create: Operation | None = None
    update: Operation | None = None
    delete: Operation | None = None

    @property
    def id_param(self) -> str:
        """The name of the item path's placeholder for the object's id (``proxyId``)."""
        path = (self.get or self.update or self.delete or self.list).path
        found = re.findall(r"\{(\w+)\}", path)
        return found[-1] if found else "id"


@dataclass(frozen=True, eq=False)  # compared and hashed by identity
class Separate:
    """A field templates write inside the object (``objectStorage``) that some API versions keep as an object of a
    collection of its own (v6/v7 ``/objectstoragerepositories``), which the object names by id (``link``:
    ``objectStorageId``). ``versions`` holds that collection's calls where it exists; its objects are named after
    the object holding them (``key_field``), and ``hidden`` fields (its own name and description) are vboplan's to
    fill, not the template's. ``references`` and ``fixed`` are its own (for the emulator, which serves it as
    collection ``key``)."""

    field: str
    link: str
    key: str
    versions: Mapping[str, Api]
    key_field: str = "name"
    hidden: tuple[str, ...] = ("name", "description")
    references: tuple[Reference, ...] = ()
    fixed: tuple[str, ...] = ()

    def api(self, version: str) -> Api | None:
        return self.versions.get(version)

    def properties(self, version: str) -> dict[str, dict[str, Any]]:
        """The fields a template may write inside ``field`` in ``version`` (its request component's, without the
        server's ids and links and the hidden ones)."""
        return {name: prop for name, prop in schema.properties(version, self.versions[version].request).items()
                if name not in SERVER_FIELDS and name not in self.hidden and not prop.get("readOnly")}

    @functools.cached_property
    def collection(self) -> CollectionSpec:
        """The collection the emulator serves for it (no resource kind of vboplan's: templates never name it)."""
        return CollectionSpec(key=self.key, key_field=self.key_field, versions=self.versions,
                              references=self.references, fixed=self.fixed,
                              summary=f"kept apart from {self.field} (never named in templates)")


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: one object per collection
class CollectionSpec:
    """One named collection (see the module docstring).

    ``fixed``: fields the server cannot change in place (a change plans a ``replace``). ``secrets``: dotted paths of
    fields to treat as secret beyond those the schema types as passwords. ``guard``: the scope the mass-delete guard
    counts objects in (``server``: the whole collection). ``whole_truth``: an object the templates leave out is
    planned for deletion (False for proxies, adopted and edited but never created or removed here).
    ``absent``: what to say when a template names an object the server lacks and the API cannot create.
    ``seed``: the emulator data file's key for the collection (default: ``key``). ``unique``: API fields whose
    values no two objects share where all are set (a repository's folder on one proxy), refused by the server.
    ``separate``: fields some versions keep as objects of their own collection (:class:`Separate`).
    ``shared_key``: the server does not keep keys unique (an encryption key's description is a hint, not a name),
    so it holds a new object beside the old one of the same key: what ``create_before_destroy`` needs.
    ``emulated``: False where the emulator serves the collection with handlers of its own rather than its generic
    table (audit items: principals of an organization's directory, added and removed in bulk)."""

    key: str
    key_field: str
    versions: Mapping[str, Api]
    references: tuple[Reference, ...] = ()
    secrets: tuple[str, ...] = ()
    fixed: tuple[str, ...] = ()
    guard: str = "server"
    whole_truth: bool = True
    summary: str = ""
    absent: str = ""
    seed: str = ""
    unique: tuple[tuple[str, ...], ...] = ()
    separate: tuple[Separate, ...] = ()
    shared_key: bool = False
    hooks: Any = None   # an object with optional capabilities (vboplan.kinds.hooks), checked with isinstance
    extra_paths: tuple[str, ...] = ()  # paths its hooks or kind call beyond the operations (a job's item lists)
    emulated: bool = True

    @property
    def seed_key(self) -> str:
        return self.seed or self.key

    @property
    def ordered_versions(self) -> tuple[str, ...]:
        return tuple(v for v in VERSIONS if v in self.versions)

    def api(self, version: str) -> Api | None:
        """The calls of ``version``; None where its document lacks the collection."""
        return self.versions.get(version)

    def reference(self, written: str) -> Reference | None:
        """The reference templates write as ``written``."""
        return next((r for r in self.references if r.written == written), None)

    def fields(self, version: str) -> tuple[dict[str, dict[str, Any]], set[str]]:
        """(writable fields with their schemas, readable field names) in ``version``: the request and response
        components' properties without the server's ids and links."""
        api = self.versions[version]
        writable = {name: prop for name, prop in schema.properties(version, api.request).items()
                    if name not in SERVER_FIELDS}
        readable = {name for name in schema.properties(version, api.response) if name not in SERVER_FIELDS}
        for apart in self.separate_in(version):
            writable.pop(apart.link, None)
            writable[apart.field] = {"type": "object", "properties": apart.properties(version)}
            readable = (readable - {apart.link}) | {apart.field}
        return writable, readable

    def separate_in(self, version: str) -> list[Separate]:
        """The fields ``version`` keeps as objects of their own collection."""
        return [apart for apart in self.separate if apart.api(version) is not None]

    def required(self, version: str) -> list[str]:
        """Fields every create/update body must carry."""
        return list(schema.component(version, self.versions[version].request).get("required", []))

    def paths(self) -> set[str]:
        """Every path its operations name in any version (for the schema extract)."""
        found: set[str] = set()
        for api in self.versions.values():
            for op in (api.list, api.get, api.create, api.update, api.delete):
                if op is not None:
                    found.add(op.path)
        found |= {r.read for r in self.references if r.read}
        for apart in self.separate:
            found |= apart.collection.paths()
        return found | set(self.extra_paths)


@dataclass(frozen=True)
class Statuses:
    """The success statuses of one version's calls (Veeam's documents: v8 answers 201 to creates and 204 to PUT
    and DELETE; v6/v7 answer 200 to creates and, for most collections, to PUT)."""

    create: int
    update: int
    delete: int = 204


V8_STATUSES = Statuses(create=201, update=204)
V7_STATUSES = Statuses(create=200, update=200)


def per_version(list: str, item: str, request: str, response: str, *, versions: tuple[str, ...],
                paged: tuple[str, ...] = ("v8",), statuses: Mapping[str, Statuses] | None = None,
                create: bool = True, delete: bool = True,
                query: Mapping[str, tuple[tuple[str, str], ...]] | None = None) -> dict[str, Api]:
    """The usual REST shape of a collection in each of ``versions``: ``GET``/``POST`` on ``list``, ``GET``/``PUT``/
    ``DELETE`` on ``item`` (whose one placeholder, as the document spells it, is the object's id); lists are pages
    in ``paged``; ``statuses`` per version (default: v8's in v8, v6/v7's before); ``query`` per version is sent with
    the reads. ``create``/``delete`` False: the API cannot (proxies are added in the console)."""
    apis: dict[str, Api] = {}
    for version in versions:
        status = (statuses or {}).get(version) or (V8_STATUSES if version == "v8" else V7_STATUSES)
        path, fixed = item, (query or {}).get(version, ())
        apis[version] = Api(
            list=Operation("GET", list, (200,), version in paged, fixed), request=request, response=response,
            get=Operation("GET", path, (200,), query=fixed),
            create=Operation("POST", list, (status.create, 200, 201)) if create else None,
            update=Operation("PUT", path, (status.update, 200, 204)),
            delete=Operation("DELETE", path, (status.delete, 200, 204)) if delete else None)
    return apis

