"""The registry of managed resource kinds, in the order their changes are applied.

Settings objects come from :mod:`vboplan.kinds.catalog` (one entry each, shared with the emulator); named
collections are one :class:`~vboplan.kinds.spec.CollectionSpec` each, listed in :data:`SPECS` (the emulator serves
them from the same list), audit items among them; other kinds (``lifecycle``) are listed in :data:`COLLECTIONS`.
A kind may declare ``requires``: the kinds whose creates must be applied before its own (a collection requires the
collections it refers to); :func:`apply_order` honours it.
"""

from __future__ import annotations

import contextlib
import inspect
import threading
import types
from collections.abc import Iterator, Mapping
from typing import Any

from vboplan.kinds import (
    audit_items,
    backup_jobs,
    backup_proxies,
    backup_repositories,
    catalog,
    cloud_accounts,
    copy_jobs,
    encryption_keys,
    proxy_pools,
    restore_operator_roles,
)
from vboplan.kinds.base import ResourceKind, Write, WriteContext
from vboplan.kinds.collection import CollectionKind
from vboplan.kinds.hooks import MakesKind
from vboplan.kinds.lifecycle import LifecycleKind
from vboplan.kinds.settings import SettingsKind
from vboplan.kinds.spec import CollectionSpec

COLLECTIONS: list[ResourceKind] = [LifecycleKind()]

#: Every named collection, one line each (its module holds the rest).
SPECS: list[CollectionSpec] = [
    backup_proxies.SPEC,
    proxy_pools.SPEC,
    cloud_accounts.SPEC,
    encryption_keys.SPEC,
    backup_repositories.SPEC,
    backup_jobs.SPEC,
    copy_jobs.SPEC,
    restore_operator_roles.SPEC,
    audit_items.SPEC,
]

_specs_lock = threading.RLock()
_generation = 0


def collection_specs() -> tuple[CollectionSpec, ...]:
    """The named collections, each after the collections it refers to."""
    with _specs_lock:
        specs = list(SPECS)
    by_key = {spec.key: spec for spec in specs}
    ordered: list[CollectionSpec] = []
    visiting: set[str] = set()

    def visit(spec: CollectionSpec) -> None:
        if spec in ordered:
            return
        if spec.key in visiting:
            raise ValueError(f"collections refer to each other in a cycle: {spec.key}")
        visiting.add(spec.key)
        for ref in spec.references:
            if ref.kind in by_key:
                visit(by_key[ref.kind])
        visiting.discard(spec.key)
        ordered.append(spec)

    for spec in specs:
        visit(spec)
    return tuple(ordered)


def generation() -> int:
    """Changes whenever :data:`SPECS` does through :func:`registered_collection` (lets callers cache routes)."""
    return _generation


@contextlib.contextmanager
def registered_collection(spec: CollectionSpec) -> Iterator[CollectionSpec]:
    """A named collection registered for a ``with`` block (tests, extensions): served by the emulator and planned
    like the shipped ones while it lasts."""
    global _generation
    with _specs_lock:
        if any(s.key == spec.key for s in SPECS) or spec.key in KINDS:
            raise ValueError(f"resource kind '{spec.key}' is already registered")
        SPECS.append(spec)
        _generation += 1
    try:
        collection_specs()  # refuse a cycle of references
        yield spec
    finally:
        with _specs_lock:
            SPECS.remove(spec)
            _generation += 1


class _Registry(Mapping[str, ResourceKind]):
    """Every kind by template key: the catalog's settings objects, then the collections. Follows the catalog when a
    settings object is registered at run time."""

    def __init__(self) -> None:
        self._settings: dict[int, SettingsKind] = {}
        self._collections: dict[int, tuple[CollectionSpec, ResourceKind]] = {}
        self._cached: tuple[tuple[Any, ...], dict[str, ResourceKind]] | None = None

    def _kinds(self) -> dict[str, ResourceKind]:
        # Built again only when the catalog or the collections change: an apply of thousands of changes looks a
        # kind up several times for each.
        now = (catalog.generation(), _generation, tuple(map(id, COLLECTIONS)))
        cached = self._cached
        if cached is not None and cached[0] == now:
            return cached[1]
        kinds: dict[str, ResourceKind] = {}
        for spec in catalog.settings():
            kind = self._settings.get(id(spec))
            if kind is None or kind.spec is not spec:
                kind = self._settings[id(spec)] = SettingsKind(spec)
            kinds[spec.key] = kind
        for collection in collection_specs():
            made = self._collections.get(id(collection))
            if made is None or made[0] is not collection:
                hooks = collection.hooks
                made = self._collections[id(collection)] = (collection, hooks.kind(collection)
                                                            if isinstance(hooks, MakesKind)
                                                            else CollectionKind(collection))
            kinds[collection.key] = made[1]
        kinds.update((kind.name, kind) for kind in COLLECTIONS)
        self._cached = (now, kinds)
        return kinds

    def __getitem__(self, name: str) -> ResourceKind:
        return self._kinds()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(apply_order(self._kinds()))

    def __len__(self) -> int:
        return len(self._kinds())


def apply_order(kinds: Mapping[str, ResourceKind]) -> list[str]:
    """Kind names with every kind after the kinds it ``requires`` (otherwise in registry order)."""
    ordered: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in ordered:
            return
        if name in visiting:
            raise ValueError(f"resource kinds require each other in a cycle: {name}")
        visiting.add(name)
        for needed in kinds[name].requires:
            if needed not in kinds:
                raise ValueError(f"resource kind '{name}' requires unknown kind '{needed}'")
            visit(needed)
        visiting.discard(name)
        ordered.append(name)

    for name in kinds:
        visit(name)
    return ordered


KINDS: Mapping[str, ResourceKind] = _Registry()


@contextlib.contextmanager
def registered(kind: ResourceKind) -> Iterator[ResourceKind]:
    """A resource kind other than a settings object (a named collection) registered for a ``with`` block; settings
    objects are registered in :mod:`vboplan.kinds.catalog`, which the emulator reads too. Every kind derives its
    changes and declares its requests (:class:`~vboplan.kinds.base.ResourceKind`): one without is refused."""
    if kind.name in KINDS:
        raise ValueError(f"resource kind '{kind.name}' is already registered")
    missing = [name for name in ("derive", "writes") if not callable(getattr(kind, name, None))]
    if missing:
        raise TypeError(f"resource kind '{kind.name}' has no {' and no '.join(missing)}: every kind derives each change "
                        "from its address and the recorded live values (derive) and declares the requests that carry "
                        "it out (writes(basis, changes), pure); see vboplan.kinds.base.ResourceKind")
    COLLECTIONS.append(kind)
    try:
        apply_order(KINDS)  # refuse a kind whose requirements are unknown or circular
        yield kind
    finally:
        COLLECTIONS.remove(kind)

_MISSING = object()
#: (kind class, capability) -> what every instance of the class answers (None when its instances may differ), and
#: the names the capability asks for.
_by_class: dict[tuple[type, type], tuple[bool | None, tuple[str, ...]]] = {}


def _members(capability: type) -> tuple[str, ...]:
    """The names a runtime-checkable Protocol asks for (as ``isinstance`` reads them)."""
    names = getattr(capability, "__protocol_attrs__", None)  # Python 3.12 on
    if names is None:
        import typing

        names = typing._get_protocol_attrs(capability)  # type: ignore[attr-defined]  # Python 3.11
    return tuple(sorted(names))


def _class_answer(cls: type, members: tuple[str, ...]) -> bool | None:
    """Whether every instance of ``cls`` has ``members`` as methods, from the class alone; None when an instance
    could answer otherwise (a ``__getattr__``, a slot or property standing for a member)."""
    if inspect.getattr_static(cls, "__getattr__", None) is not None:
        return None
    for name in members:
        found = inspect.getattr_static(cls, name, _MISSING)
        if found is _MISSING or found is None:
            return False
        if not isinstance(found, (types.FunctionType, staticmethod, classmethod, types.BuiltinFunctionType)):
            return None
    return True


def capable(kind: object, capability: type) -> bool:
    """``isinstance(kind, capability)`` for a runtime-checkable Protocol of :mod:`vboplan.kinds.hooks` (``Refers``,
    ``Declares``...), answered once per kind class: a Protocol's own check looks up each of its members on the
    object every time, tens of microseconds a check, many checks for every environment a fleet plans. An object
    whose own attributes name a member (set on the instance, not its class) is checked as ``isinstance`` checks
    it."""
    key = (type(kind), capability)
    cached = _by_class.get(key)
    if cached is None:
        members = _members(capability)
        cached = _by_class[key] = (_class_answer(type(kind), members), members)
    answer, members = cached
    if answer is None:
        return isinstance(kind, capability)
    own = getattr(kind, "__dict__", None)
    if own:
        for name in members:
            if name in own:
                return isinstance(kind, capability)
    return answer


__all__ = ["KINDS", "COLLECTIONS", "SPECS", "ResourceKind", "SettingsKind", "Write", "WriteContext", "apply_order",
           "capable", "collection_specs", "registered", "registered_collection"]
