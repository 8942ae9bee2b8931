"""The change model every other part speaks: addresses, and what a plan proposes and an apply carries out."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from vboplan.errors import PlanError

#: In the order summaries count them. ``replace``: an object the server cannot change in place is deleted and created
#: again (``-/+``; its kind says why in ``detail["reason"]``).
ACTIONS = ("create", "update", "replace", "delete")

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True, order=True)
class Address:
    """Where a change applies, as a path from the resource kind down: ``history_settings.keeponlyLast``,
    ``organization_retention_exclusions["contoso.onmicrosoft.com"].calendar``,
    ``audit_items["contoso.onmicrosoft.com"].user["ceo@contoso.com"]``.

    ``parts`` after the kind are ``(".", name)`` for a field and ``("[", key)`` for a named entry.
    """

    kind: str
    parts: tuple[tuple[str, str], ...] = ()

    def field(self, name: str) -> Address:
        return Address(self.kind, (*self.parts, (".", name)))

    def entry(self, key: str) -> Address:
        return Address(self.kind, (*self.parts, ("[", key)))

    def __str__(self) -> str:
        return self.text

    @cached_property
    def text(self) -> str:
        """The address as users write it (computed once: plans, journals and tables each print it)."""
        return self.kind + "".join(f".{name}" if sep == "." else f"[{json.dumps(name, ensure_ascii=False)}]"
                                   for sep, name in self.parts)

    def covers(self, other: Address) -> bool:
        """Whether ``other`` is this address or lies under it (what ``--target`` selects)."""
        return self.kind == other.kind and other.parts[:len(self.parts)] == self.parts

    @classmethod
    def parse(cls, text: str) -> Address:
        """Read an address as users type it (``--target``); raises :class:`PlanError` naming what is wrong."""
        found = _NAME.match(text)
        if not found:
            raise PlanError(f"'{text}' is not an address (e.g. history_settings.keeponlyLast, "
                            'audit_items["contoso.onmicrosoft.com"])')
        kind, at = found.group(), found.end()
        parts: list[tuple[str, str]] = []
        decoder = json.JSONDecoder()
        while at < len(text):
            if text[at] == ".":
                name = _NAME.match(text, at + 1)
                if not name:
                    raise PlanError(f"'{text}': a field name must follow '.' (at character {at + 1})")
                parts.append((".", name.group()))
                at = name.end()
            elif text[at] == "[":
                try:
                    key, end = decoder.raw_decode(text, at + 1)
                except ValueError:
                    key, end = None, at
                if not isinstance(key, str) or end >= len(text) or text[end] != "]":
                    raise PlanError(f"'{text}': a name in brackets must be a double-quoted string, as in "
                                    '["contoso.onmicrosoft.com"] (at character ' + f"{at + 1})")
                parts.append(("[", key))
                at = end + 1
            else:
                raise PlanError(f"'{text}': unexpected '{text[at]}' at character {at + 1}")
        return cls(kind, tuple(parts))


def object_key(text: Any) -> tuple[str, str] | None:
    """``(kind, key)`` of the object an address text names (``kind["KEY"]``, nothing under it), or None for any
    other text (a field's address, a value that is no address)."""
    try:
        parts = Address.parse(str(text))
    except PlanError:
        return None
    return (parts.kind, str(parts.parts[0][1])) if len(parts.parts) == 1 and parts.parts[0][0] == "[" else None


@dataclass(frozen=True)
class Change:
    """One proposed change of one field or item. ``after`` is a :class:`~vboplan.sensitive.Sensitive` when the
    change is sensitive; ``detail`` carries what the resource kind needs to carry it out (never a secret).

    Use the subclasses :class:`Create`, :class:`Update` and :class:`Delete`; :func:`make` picks one by action."""

    kind: str
    address: Address
    before: Any
    after: Any
    sensitive: bool = False
    detail: dict[str, Any] = field(default_factory=dict)
    id: str = ""

    action = "update"

    @property
    def write_only(self) -> bool:
        """A value the server never returns: planned as "will be set" until a snapshot holds its hash."""
        return bool(self.detail.get("write_only"))

    @property
    def recorded(self) -> bool:
        """For a write-only value: whether a snapshot holds the hash of an earlier one (so it "will change")."""
        return bool(self.detail.get("recorded"))


@dataclass(frozen=True)
class Create(Change):
    action = "create"


@dataclass(frozen=True)
class Update(Change):
    action = "update"


@dataclass(frozen=True)
class Replace(Change):
    """An object deleted and created again, because a field the server fixes once the object exists changes (or the
    kind has no update at all): ``before`` is the live object, ``after`` the desired one."""

    action = "replace"

    @property
    def reason(self) -> str:
        return str(self.detail.get("reason") or "")


@dataclass(frozen=True)
class Delete(Change):
    action = "delete"


CLASSES: dict[str, type[Change]] = {"create": Create, "update": Update, "replace": Replace, "delete": Delete}


def make(action: str, kind: str, address: Address, before: Any, after: Any, sensitive: bool = False,
         detail: dict[str, Any] | None = None, id: str = "") -> Change:
    """A change of ``action`` (one of :data:`ACTIONS`)."""
    return CLASSES[action](kind, address, before, after, sensitive, dict(detail or {}), id)


@dataclass(frozen=True)
class Drift:
    """A field that changed on the server since the last apply recorded it ("changed outside vboplan")."""

    address: Address | str
    recorded: Any
    live: Any
    sensitive: bool = False
    # What happened to a whole object, where there is no value to show on either side: "not in the state" (on
    # the server, in no snapshot: forgotten with 'state rm', or made outside vboplan) or "deleted".
    status: str = ""
