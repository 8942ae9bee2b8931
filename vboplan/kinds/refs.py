"""Names and ids of the objects kinds refer to, for any kind, from one cache per run.

Templates name objects (``proxy: proxy01.contoso.local``, ``organization: contoso.onmicrosoft.com``); the API wants
ids, which differ per server. :func:`resolver` gives the one :class:`Resolver` of a client (a run has one client per
environment); it reads each kind's objects once (a collection through its spec's list operation, organizations
through the client) and answers name -> id and id -> name from that. A write sent through the client makes what was
read stale, so the next question after one reads again (an apply reads back what it wrote).
"""

from __future__ import annotations

import re
import threading
import weakref
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from typing import Any

from vboplan.api.client import VboClient
from vboplan.errors import ProjectError, StateError
from vboplan.planning.changes import Address

ORGANIZATIONS = "organizations"
#: Where a deposed object's read keeps what it was deposed from: its key and the write journal of the apply that left
#: it (see :func:`deposed_name`).
DEPOSED = "_deposed"


def deposed_name(key: str, object_id: str) -> str:
    """How a deposed object of key ``key`` is named while another object holds its key: its key and its id, which
    no other object can have."""
    return f"{key} (deposed {object_id})"


def deposed_key(name: str) -> str | None:
    """The key ``name`` was deposed from, when it is a :func:`deposed_name`; else None."""
    found = _DEPOSED_NAME.fullmatch(name)
    return found.group(1) if found else None


_DEPOSED_NAME = re.compile(r"(.+) \(deposed [^()\s]+\)", re.DOTALL)


@dataclass(frozen=True)
class Objects:
    """One kind's objects as the server holds them: the raw objects in the server's order, and by lower-cased
    name."""

    kind: str
    key_field: str
    items: tuple[dict[str, Any], ...]

    def by_name(self) -> dict[str, dict[str, Any]]:
        return {str(item.get(self.key_field) or "").lower(): item for item in self.items}

    def by_id(self) -> dict[str, dict[str, Any]]:
        return {str(item.get("id") or "").lower(): item for item in self.items}

    def id_of(self, name: str) -> str | None:
        found = self.by_name().get(name.lower())
        return str(found["id"]) if found is not None else None

    def name_of(self, object_id: str) -> str | None:
        found = self.by_id().get(str(object_id).lower())
        return str(found.get(self.key_field)) if found is not None else None


class Resolver:
    """The per-run cache of one client (see the module docstring). Thread-safe: concurrent questions about one kind
    wait for one read."""

    def __init__(self, client: VboClient) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._kind_locks: dict[str, threading.Lock] = {}
        self._held: dict[str, tuple[int, Objects]] = {}
        self._deposed: dict[str, dict[str, Deposed]] = {}  # by kind: deposed object id (lower case) -> why

    def objects(self, kind: str) -> Objects:
        """Every object of ``kind`` on the server (read once until the client next writes)."""
        with self._lock:
            lock = self._kind_locks.setdefault(kind, threading.Lock())
        with lock:
            held = self._held.get(kind)
            if held is not None and held[0] == self._client.write_count:
                return held[1]
            writes = self._client.write_count
            found = _named_deposed(_read(self._client, kind), self._deposed.get(kind) or {})
            self._held[kind] = (writes, found)
            return found

    def depose(self, kind: str, deposed: dict[str, Deposed], add: bool = False) -> None:
        """Name the objects of ``kind`` whose ids ``deposed`` maps (to why) as deposed, where the object that holds
        their key now is beside them (see :func:`_named_deposed`); ``add``: besides those named so far."""
        wanted = {**(self._deposed.get(kind) or {} if add else {}),
                  **{str(i).lower(): why for i, why in deposed.items()}}
        with self._lock:
            if wanted != (self._deposed.get(kind) or {}):
                self._deposed[kind] = wanted
                self._held.pop(kind, None)

    def id_of(self, kind: str, name: str) -> str | None:
        return self.objects(kind).id_of(name)

    def name_of(self, kind: str, object_id: str) -> str | None:
        return self.objects(kind).name_of(object_id)

    def organization(self, name: str, what: str = "") -> dict[str, Any]:
        """The organization called ``name`` (case-insensitive); an error naming the server's organizations when
        there is none. ``what`` prefixes the message (the kind asking)."""
        found = self.objects(ORGANIZATIONS).by_name().get(name.lower())
        if found is None:
            known = ", ".join(sorted(str(o.get("name")) for o in self.objects(ORGANIZATIONS).items)) or "none"
            raise ProjectError(f"{self._client.where}: {what + ': ' if what else ''}organization '{name}' is not on "
                               f"the server (organizations: {known})")
        return found


@dataclass(frozen=True)
class Deposed:
    """Why an object is taken for deposed: the write journal of the apply that left it, and the id of the object
    that holds its key now, where the record says (None: any other object of its key, the new one of a replace whose
    create was sent but whose answer was not seen)."""

    journal: str
    holder: str | None = None
    key: str | None = None  # the key it was deposed from, where a journal says (a snapshot's record is by key)


def _named_deposed(found: Objects, deposed: dict[str, Deposed]) -> Objects:
    """``found`` with each deposed object named :func:`deposed_name` (and what it was deposed from under
    :data:`DEPOSED`), where the object that holds its key now is on the server beside it; one alone with its key is
    the current one (the new one was never created, or was removed), and so is one whose recorded holder is not on
    the server with its key (a record that does not hold together names nothing deposed)."""
    if not deposed:
        return found
    ids_by_key: dict[str, set[str]] = {}
    for item in found.items:
        ids_by_key.setdefault(str(item.get(found.key_field) or "").lower(), set()).add(str(item.get("id")).lower())
    items = []
    for item in found.items:
        key, object_id = str(item.get(found.key_field) or ""), str(item.get("id"))
        why = deposed.get(object_id.lower())
        others = ids_by_key[key.lower()] - {object_id.lower()}
        if why is not None and others and (why.holder is None or why.holder.lower() in others):
            item = {**item, found.key_field: deposed_name(key, object_id),
                    DEPOSED: {"key": key, "journal": why.journal}}
        items.append(item)
    return replace(found, items=tuple(items))


def depose(client: VboClient, resources: dict[str, Any],
           candidates: dict[str, dict[str, Deposed]] | None = None, where: str = "the state snapshot") -> None:
    """Tell ``client``'s resolver which objects the state ``resources`` (a snapshot's, read from ``where``) records
    as deposed, with ``candidates`` (by kind: id -> why) beside them: the old objects of replaces an interrupted
    apply's journal says it created the new object of. A snapshot's entry counts only where the snapshot records
    another object as its key's current one; a journal's only where the snapshot, if it records the key, records the
    old object as its current one. Only a kind whose server lets two objects share a key can have deposed objects:
    an entry of another kind is refused, naming ``where``."""
    found: dict[str, dict[str, Deposed]] = {}
    for kind, ids in (candidates or {}).items():
        current = _recorded_ids(resources.get(kind))
        for object_id, why in ids.items():
            if current.get((why.key or "").lower(), object_id).lower() == object_id.lower():
                found.setdefault(kind, {})[object_id.lower()] = why
    for kind, record in resources.items():
        held = record.get("deposed") if isinstance(record, dict) else None
        if not held:
            continue
        _check_deposed_kind(kind, where)
        current = _recorded_ids(record)
        for key, entries in held.items():
            holder = current.get(str(key).lower())
            for entry in entries:
                if holder is not None and holder.lower() != entry["id"].lower():
                    found.setdefault(kind, {})[entry["id"].lower()] = Deposed(entry.get("journal") or "", holder)
    named = resolver(client)
    for kind in set(found) | set(named._deposed):
        named.depose(kind, found.get(kind) or {})


def _recorded_ids(record: Any) -> dict[str, str]:
    """By lower-cased key, the id a snapshot's record of a collection gives each object."""
    objects = record.get("objects") if isinstance(record, dict) else None
    return {str(key).lower(): str(obj["id"]) for key, obj in (objects or {}).items()
            if isinstance(obj, dict) and obj.get("id")}


def _check_deposed_kind(kind: str, where: str) -> None:
    if not is_deposed_kind(kind):
        raise StateError(f"{where}: resources.{kind}.deposed: only a kind whose server lets two objects share a key "
                         f"(encryption keys) can hold a deposed object, and {kind} is not one; this is not a "
                         "snapshot vboplan wrote: restore it from its backup, or remove the entry")


def check_unmanaged_users(client: VboClient, changes: list[Any], declared_at: Callable[[Any], str],
                          read: Collection[str]) -> None:
    """Refuse deleting or replacing an object that an object of a kind no template declares refers to (a repository
    a backup job uses, while no template declares backup_jobs): vboplan leaves such an object as it is, so it cannot
    point it elsewhere, and the server refuses to delete an object in use. ``read``: the kinds the plan reads (their
    users it checks itself); ``declared_at(change)``: where the templates declare the object a change concerns (its
    ``file:line``), or an empty string."""
    gone = [c for c in changes if c.action in ("delete", "replace") and len(c.address.parts) == 1 and c.detail.get("id")]
    if not gone:
        return
    from vboplan.kinds.registry import collection_specs

    for spec in collection_specs():
        refers = [r for r in spec.references if not r.read and any(r.kind == c.kind for c in gone)]
        if spec.key in read or not refers or spec.api(client.version) is None:
            continue
        for item in resolver(client).objects(spec.key).items:
            for ref, change in ((r, c) for r in refers for c in gone if c.kind == r.kind):
                if str(change.detail["id"]).lower() in (i.lower() for i in _ids_in(item, ref)):
                    _refuse_in_use(change, f'{spec.key}["{item.get(spec.key_field)}"]', ".".join(ref.shown_path),
                                   spec.key, declared_at(change))


def _ids_in(item: dict[str, Any], ref: Any) -> list[str]:
    """The ids a raw object ``item`` holds in reference ``ref`` (a ``spec.Reference``)."""
    value: Any = item
    for name in (*ref.parent, ref.leaf):
        value = value.get(name) if isinstance(value, dict) else None
    if ref.many:
        return [str(v.get(ref.each)) for v in value if isinstance(v, dict) and v.get(ref.each)] \
            if isinstance(value, list) else []
    return [str(value)] if value else []


def _refuse_in_use(change: Any, user: str, through: str, kind: str, where: str) -> None:
    what = (f"{change.address}: {change.detail.get('reason') or 'it cannot change in place'}, so the plan would "
            "replace the object (delete it, then create it again)" if change.action == "replace" else
            f"{change.address} cannot be deleted")
    raise ProjectError(f"{where + ': ' if where else ''}{what}, but {user} ({through}) uses it, and the server refuses "
                       f"to remove an object in use; no template declares {kind}, so vboplan leaves {user} as it is: "
                       f"declare {kind} in a template ('vboplan import' writes it) so that the plan points {user} to "
                       "another object or replaces it too, or change it on the server first")


_resolvers: weakref.WeakKeyDictionary[VboClient, Resolver] = weakref.WeakKeyDictionary()
_resolvers_lock = threading.Lock()


def resolver(client: VboClient) -> Resolver:
    """The resolver of ``client`` (made on first use)."""
    with _resolvers_lock:
        found = _resolvers.get(client)
        if found is None:
            found = _resolvers[client] = Resolver(client)
        return found


#: How each kind's objects are listed, beside the named collections (which list through their spec).
READERS: dict[str, tuple[str, Callable[[VboClient], list[dict[str, Any]]]]] = {
    ORGANIZATIONS: ("name", lambda client: client.organizations()),
}


def _read(client: VboClient, kind: str) -> Objects:
    if kind in READERS:
        key_field, read = READERS[kind]
        return Objects(kind, key_field, tuple(read(client)))
    from vboplan.kinds.registry import collection_specs

    spec = next((s for s in collection_specs() if s.key == kind), None)
    if spec is None:
        raise ValueError(f"no way to list the objects of kind '{kind}'")
    api = spec.api(client.version)
    if api is None:
        return Objects(kind, spec.key_field, ())
    items = tuple(client.list_objects(api.list))
    if spec.shared_key:
        _refuse_deposed_looking(client, kind, spec.key_field, items)
    return Objects(kind, spec.key_field, items)


def _refuse_deposed_looking(client: VboClient, kind: str, key_field: str, items: tuple[dict[str, Any], ...]) -> None:
    """An object of a kind that can have deposed objects whose key reads as :func:`deposed_name` gives them: every
    view would take it for the old object of a replace cut short, so vboplan refuses to guess."""
    for item in items:
        key = str(item.get(key_field) or "")
        if deposed_key(key) is not None:
            raise ProjectError(f"{client.where}: {Address(kind).entry(key)} (id {item.get('id')}): its {key_field} "
                               "reads like the name vboplan gives the old object of a create_before_destroy replace "
                               "cut short (deposed), which it is not; rename it on the server")


def is_deposed_kind(kind: str) -> bool:
    """Whether objects of ``kind`` can be deposed (its server lets two objects share a key)."""
    from vboplan.kinds.registry import SPECS

    return any(s.key == kind and s.shared_key for s in tuple(SPECS))
