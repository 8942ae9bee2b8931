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
from vboplan.errors import ProjectError

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
        self._deposed: dict[str, dict[str, str]] = {}  # by kind: deposed object id (lower case) -> its journal id

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

    def depose(self, kind: str, deposed: dict[str, str], add: bool = False) -> None:
        """Name the objects of ``kind`` whose ids ``deposed`` maps (to the id of the write journal of the apply that
        left them) as deposed, where another object shares their key; ``add``: besides those named so far."""
        wanted = {**(self._deposed.get(kind) or {} if add else {}),
                  **{str(i).lower(): str(j) for i, j in deposed.items()}}
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


def _named_deposed(found: Objects, deposed: dict[str, str]) -> Objects:
    """``found`` with each deposed object that shares its key with another object named :func:`deposed_name` (and
    what it was deposed from under :data:`DEPOSED`); one alone with its key is the current one (the new one was
    never created, or was removed)."""
    if not deposed:
        return found
    keys: dict[str, int] = {}
    for item in found.items:
        name = str(item.get(found.key_field) or "").lower()
        keys[name] = keys.get(name, 0) + 1
    items = []
    for item in found.items:
        key, object_id = str(item.get(found.key_field) or ""), str(item.get("id"))
        journal = deposed.get(object_id.lower())
        if journal is not None and keys[key.lower()] > 1:
            item = {**item, found.key_field: deposed_name(key, object_id), DEPOSED: {"key": key, "journal": journal}}
        items.append(item)
    return replace(found, items=tuple(items))


def depose(client: VboClient, resources: dict[str, Any], candidates: dict[str, dict[str, str]] | None = None) -> None:
    """Tell ``client``'s resolver which objects the state ``resources`` (a snapshot's) records as deposed, with
    ``candidates`` (by kind: id -> journal id) beside them: the old objects of replaces an interrupted apply's
    journal says it created the new object of."""
    found: dict[str, dict[str, str]] = {kind: dict(ids) for kind, ids in (candidates or {}).items()}
    for kind, record in resources.items():
        held = record.get("deposed") if isinstance(record, dict) else None
        for entries in held.values() if isinstance(held, dict) else []:
            for entry in entries if isinstance(entries, list) else []:
                if isinstance(entry, dict) and entry.get("id"):
                    found.setdefault(kind, {})[str(entry["id"])] = str(entry.get("journal") or "")
    named = resolver(client)
    for kind in set(found) | set(named._deposed):
        named.depose(kind, found.get(kind) or {})


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
    return Objects(kind, spec.key_field, tuple(client.list_objects(api.list)))
