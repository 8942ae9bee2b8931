"""The change model every other part speaks: what a plan proposes and an apply carries out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ACTIONS = ("create", "update", "delete")


@dataclass(frozen=True)
class Change:
    """One proposed change of one field or item. ``after`` is a :class:`~vboplan.sensitive.Sensitive` when the
    change is sensitive; ``detail`` carries what the resource kind needs to carry it out (never a secret)."""

    kind: str
    address: str
    action: str
    before: Any
    after: Any
    sensitive: bool = False
    detail: dict[str, Any] = field(default_factory=dict)
    id: str = ""


@dataclass(frozen=True)
class Drift:
    """A field that changed on the server since the last apply recorded it ("changed outside vboplan")."""

    address: str
    recorded: Any
    live: Any
    sensitive: bool = False
