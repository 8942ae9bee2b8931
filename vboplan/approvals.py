"""Approval records in a plan file, and the policy that decides which changes they clear for apply."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .changes import Change
from .errors import ApprovalError
from .plan import Plan
from .project import ApprovalPolicy
from .state import now


def approve(plan: Plan, policy: ApprovalPolicy, by: str, ticket: str | None, change_ids: tuple[str, ...],
            comment: str | None) -> dict[str, Any]:
    """Record ``by``'s approval of some (default all) changes of ``plan``; returns the record added."""
    if not plan.changes:
        raise ApprovalError(f"the plan for '{plan.environment}' has no changes to approve")
    ids = list(dict.fromkeys(change_ids)) or [change.id for change in plan.changes]
    for change_id in ids:
        plan.change(change_id)  # raises, naming the unknown id
    if by == plan.created_by:
        raise ApprovalError(f"{by} wrote this plan; the author's own approval never counts (four-eyes rule). "
                            f"Ask another approver of '{plan.environment}'")
    if not policy.allows(by):
        raise ApprovalError(f"{by} is not an approver of environment '{plan.environment}' "
                            f"(approvers: {', '.join(policy.approvers or ())})")
    already = {i for r in plan.approvals if r.get("by") == by for i in r.get("changes") or []}
    if set(ids) <= already:
        raise ApprovalError(f"{by} has already approved {', '.join(ids)} of this plan")
    record = {"by": by, "ticket": ticket, "comment": comment, "at": now(), "changes": ids, "checksum": plan.checksum}
    plan.approvals.append(record)
    return record


@dataclass
class Clearance:
    """Which changes of a plan may be applied, and why the others may not."""

    approved: list[Change] = field(default_factory=list)
    skipped: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def clear(plan: Plan, policy: ApprovalPolicy) -> Clearance:
    """Decide which changes the recorded approvals clear. Raises :class:`ApprovalError`, naming what is missing,
    when an approval does not match the plan, a change is only partly approved, or nothing is approved."""
    result = Clearance()
    approvers: dict[str, set[str]] = {change.id: set() for change in plan.changes}
    for record in plan.approvals:
        by = str(record.get("by"))
        if record.get("checksum") != plan.checksum:
            raise ApprovalError(f"the approval by {by} was given for another plan (checksum "
                                f"{str(record.get('checksum'))[:12]}…, this plan is {plan.checksum[:12]}…); "
                                "approve this plan again")
        if by == plan.created_by:
            result.notes.append(f"the approval by {by} does not count: {by} wrote the plan")
            continue
        if not policy.allows(by):
            result.notes.append(f"the approval by {by} does not count: not an approver of '{plan.environment}'")
            continue
        for change_id in record.get("changes") or []:
            if change_id in approvers:
                approvers[change_id].add(by)
    if policy.required == 0:
        result.approved = list(plan.changes)
        return result
    partial = []
    for change in plan.changes:
        have = approvers[change.id]
        if len(have) >= policy.required:
            result.approved.append(change)
        elif have:
            partial.append(f"{change.id} ({change.address}) has {len(have)} of {policy.required} approvals "
                           f"({', '.join(sorted(have))})")
        else:
            result.skipped.append(change)
    candidates = [a for a in (policy.approvers or ()) if a != plan.created_by]
    who = f" from {', '.join(candidates)}" if candidates else ""
    author = f"; {plan.created_by} wrote the plan and does not count"
    if partial:
        raise ApprovalError(f"environment '{plan.environment}' needs {policy.required} distinct approvals{who} per "
                            f"change: {'; '.join(partial)}{author}")
    if plan.changes and not result.approved:
        raise ApprovalError(f"no change of this plan is approved: environment '{plan.environment}' needs "
                            f"{policy.required} distinct approvals{who}{author}. Use 'vboplan approve PLANFILE --by NAME'")
    return result
