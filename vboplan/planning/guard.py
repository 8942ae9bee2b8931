"""The mass-deletion guard: a plan that would stop auditing a large share of an organization is refused at apply
unless its author said so when planning (``--allow-mass-delete``, recorded in the plan and bound by its checksum).

A wrong organization name, an emptied variable file or a template that renders an empty list all look, to a diff,
like "delete every audit item"; this makes that mistake one that has to be typed on purpose.
"""

from __future__ import annotations

from typing import Any

from vboplan.errors import PlanError
from vboplan.planning.changes import Change

# Deleting more than this many items of one organization, and more than this share of them, is a mass deletion.
MIN_ITEMS = 10
MIN_SHARE = 1 / 3


def mass_deletions(changes: list[Change], live: dict[str, Any]) -> list[str]:
    """One line per organization whose audit items the changes would mostly delete, for messages."""
    deleting: dict[str, int] = {}
    for change in changes:
        if change.kind == "audit_items" and change.action == "delete":
            org = str(change.detail.get("org", ""))
            deleting[org] = deleting.get(org, 0) + 1
    organizations = (live.get("audit_items") or {}).get("organizations") or {}
    found = []
    for org, count in sorted(deleting.items()):
        data = organizations.get(org) or {}
        total = data.get("item_count") or len(data.get("items") or []) or count
        if count > MIN_ITEMS and count > total * MIN_SHARE:
            found.append(f"{count} of the {total} audit items of {org}")
    return found


def check(plan: Any) -> None:
    """Refuse ``plan`` (at apply) when it deletes too much and was not planned with --allow-mass-delete."""
    found = mass_deletions(plan.changes, plan.live)
    if found and not getattr(plan, "allow_mass_delete", False):
        raise PlanError(f"the plan for '{plan.environment}' would delete {'; '.join(found)} (more than "
                        f"{MIN_ITEMS} and more than a third); if that is intended, plan again with "
                        f"'vboplan plan --env {plan.environment} --allow-mass-delete' and have that plan approved")
