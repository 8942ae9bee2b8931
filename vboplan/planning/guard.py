"""The mass-deletion guard: a plan that would delete a large share of what vboplan manages is refused at apply
unless its author said so when planning (``--allow-mass-delete``, recorded in the plan and bound by its checksum).

A wrong organization name, an emptied variable file or a template that renders an empty list all look, to a diff,
like "delete everything"; this makes that mistake one that has to be typed on purpose (octoDNS's safety valve).
Every kind that can delete many objects says how it counts them (:class:`~vboplan.kinds.hooks.Guarded`): a named
collection per server, at least 3 of its objects and more than a third; audit items per organization, and only more
than 10 of them count (as a job's item lists do). The share and minimum hold for every kind unless ``guard:`` in
vboplan.yaml says otherwise, for all or for one kind:

    guard:
      share: 0.5                      # of a collection's objects (default 1/3)
      minimum: 5                      # objects (default 3)
      proxy_pools: {share: 0.25, minimum: 2}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vboplan.errors import PlanError
from vboplan.planning.changes import Change

MIN_SHARE = 1 / 3
# A named collection: at least this many of its objects, and more than this share of them.
MIN_OBJECTS = 3


@dataclass(frozen=True)
class Thresholds:
    """When deleting objects of a collection is a mass deletion (see the module docstring)."""

    share: float = MIN_SHARE
    minimum: int = MIN_OBJECTS
    per_kind: dict[str, tuple[float, int]] = field(default_factory=dict)

    def of(self, kind: str) -> tuple[float, int]:
        return self.per_kind.get(kind, (self.share, self.minimum))


def mass_deletions(changes: list[Change], live: dict[str, Any], thresholds: Thresholds | None = None) -> list[str]:
    """One line per organization or collection whose objects the changes would mostly delete, for messages."""
    from vboplan.kinds.hooks import Guarded
    from vboplan.kinds.registry import KINDS

    thresholds = thresholds or Thresholds()
    found: list[str] = []
    for name in sorted({c.kind for c in changes if c.action == "delete"}):
        kind = KINDS.get(name)
        if not isinstance(kind, Guarded):
            continue
        share, minimum = thresholds.of(name)
        for deletion in kind.deletions([c for c in changes if c.kind == name], live.get(name)):
            scope, deleted, total = deletion[:3]
            noun = deletion[3] if len(deletion) > 3 else "objects"  # type: ignore[misc]
            if deleted >= minimum and deleted > total * share:
                found.append(f"{deleted} of the {total} {noun} of {scope}")
    return found


def check(plan: Any, thresholds: Thresholds | None = None, interactive: bool = False) -> None:
    """Refuse ``plan`` (at apply) when it deletes too much and was not planned with --allow-mass-delete, or does what
    its ``lifecycle`` rules forbid. The fix named is the one for the command at hand: ``apply --env``
    (``interactive``) plans and applies in one run."""
    from vboplan.kinds.lifecycle import refusals

    refused = refusals(plan.changes, (plan.scope or {}).get("lifecycle") or {})
    if refused:
        raise PlanError(f"the plan for '{plan.environment}' is refused by its lifecycle rules: {'; '.join(refused)}")
    found = mass_deletions(plan.changes, plan.live, thresholds)
    if found and not getattr(plan, "allow_mass_delete", False):
        fix = (f"run 'vboplan apply --env {plan.environment} --allow-mass-delete'" if interactive else
               f"plan again with 'vboplan plan --env {plan.environment} --allow-mass-delete' and have that plan "
               "approved")
        raise PlanError(f"the plan for '{plan.environment}' would delete {'; '.join(found)} (a mass deletion); if "
                        f"that is intended, {fix}")
