"""The objects a rule is evaluated on: for each resource kind, its desired and live values object by object, as
plain JSON data with every secret masked.

A kind may say how it splits into objects (the :class:`HasPolicyObjects` capability) and which fields its objects
have (:class:`HasPolicyFields`, for the check of rule files; audit items and backup jobs do); otherwise a settings
object is one object (or one per organization), and a named collection (a mapping from each object's key to its
fields, as the contract defines collections) is one object per key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from vboplan.planning.changes import Address
from vboplan.sensitive import MASK, Sensitive, is_digest


@dataclass
class PolicyObject:
    """One object of a kind: its address (``history_settings``, ``audit_items["contoso.onmicrosoft.com"]``), the
    desired value (None when only the server has it) and the live one (None offline or when absent)."""

    address: Address
    desired: Any
    live: Any


@runtime_checkable
class HasPolicyObjects(Protocol):
    """The optional capability of a kind that splits its values into the objects rules are evaluated on."""

    def policy_objects(self, desired: Any, live: Any) -> list[PolicyObject]:
        """``desired`` (rendered) and ``live`` (as a plan keeps it; None offline) split into objects."""


@runtime_checkable
class HasPolicyFields(Protocol):
    """The optional capability of a kind that names the fields its objects may have (None: any)."""

    def policy_fields(self) -> set[str] | None:
        """Every field name an object of this kind has in some API version."""


def masked(value: Any) -> Any:
    """``value`` as plain JSON data for CEL, every secret (and salted hash of one) shown as ``(sensitive)``."""
    if isinstance(value, Sensitive) or is_digest(value):
        return MASK
    if isinstance(value, dict):
        return {str(k): masked(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if value and all(type(v) is str for v in value):
            return list(value)  # lists of names (audit items): no element can be secret
        return [masked(v) for v in value]
    return value


def objects_of(name: str, kind: Any, desired: Any, live: Any) -> list[PolicyObject]:
    """The objects of kind ``name``."""
    if isinstance(kind, HasPolicyObjects):
        return kind.policy_objects(desired, live)
    from vboplan.kinds.settings import SettingsKind

    if isinstance(kind, SettingsKind):
        return _settings_objects(name, kind.per_organization, desired, live)
    return _collection_objects(name, desired, live)


def _settings_objects(name: str, per_organization: bool, desired: Any, live: Any) -> list[PolicyObject]:
    if not per_organization:
        return [PolicyObject(Address(name), masked(desired) if desired is not None else None,
                             masked(live) if isinstance(live, dict) else None)]
    orgs = keys_of(desired, live)
    return [PolicyObject(Address(name).entry(org), masked((desired or {}).get(org)),
                         masked(((live or {}).get(org) or {}).get("values")) if isinstance(live, dict) else None)
            for org in orgs]


def _collection_objects(name: str, desired: Any, live: Any) -> list[PolicyObject]:
    if not isinstance(desired, dict) and not isinstance(live, dict):
        return [PolicyObject(Address(name), masked(desired), masked(live))]
    live_objects = live.get("objects", live) if isinstance(live, dict) else None
    return [PolicyObject(Address(name).entry(key), masked((desired or {}).get(key)),
                         masked(live_objects.get(key)) if isinstance(live_objects, dict) else None)
            for key in keys_of(desired, live_objects)]


def keys_of(*mappings: Any) -> list[str]:
    """The keys of ``mappings`` (those that are mappings), in order, each once."""
    keys: dict[str, None] = {}
    for mapping in mappings:
        if isinstance(mapping, dict):
            keys.update((str(k), None) for k in mapping)
    return list(keys)


_FIELDS: dict[int, tuple[Any, set[str] | None]] = {}


def fields_of(kind: Any) -> set[str] | None:
    """The field names objects of ``kind`` may have (None: not known, so any); worked out once per kind (a rule
    file names the same few kinds in every rule)."""
    known = _FIELDS.get(id(kind))
    if known is not None and known[0] is kind:
        return known[1]
    names = _fields_of(kind)
    _FIELDS[id(kind)] = (kind, names)
    return names


def _fields_of(kind: Any) -> set[str] | None:
    if isinstance(kind, HasPolicyFields):
        return kind.policy_fields()
    from vboplan.kinds.settings import SettingsKind

    if isinstance(kind, SettingsKind):
        names: set[str] = set()
        for version in kind.spec.versions:
            writable, readable, _ = kind.spec.fields(version)
            names |= set(writable) | readable
        return names
    return None
