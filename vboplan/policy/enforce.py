"""What an apply refuses because of the rules.

The plan file is written by its author, so its recorded verdicts are not trusted: apply evaluates the project's
rules again over what it derives itself (the templates rendered without secrets, the plan's recorded live values,
which it then proves are still the server's, and the changes it derived from the file's addresses) and requires
the result to equal the recorded verdicts, which are what the approvers saw and signed. Then it enforces its own
result: a standing ``block`` verdict refuses the plan, and so does an ``approve`` verdict whose changes lack the
signatures its rule asks for (verified against the rule's ``allowed_signers``, distinct people, the author never
counting).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from vboplan.errors import ApprovalError, PlanError
from vboplan.policy.evaluate import Evaluation, Verdict, evaluate
from vboplan.policy.rules import Policies, Rule, load_policies

if TYPE_CHECKING:
    from vboplan.planning.plan import Plan
    from vboplan.project.config import Environment, Project
    from vboplan.trust.signing import TrustList

#: Parts of a verdict that say where its rule is written, not what it decided (a moved line changes nothing).
_WHERE = ("source",)


def _decided(record: dict[str, Any]) -> dict[str, Any]:
    kept = {k: v for k, v in record.items() if k not in _WHERE}
    if isinstance(kept.get("exception"), dict):
        kept["exception"] = {k: v for k, v in kept["exception"].items() if k not in _WHERE}
    return kept


def recheck(project: Project, env: Environment, plan: Plan, moment: dt.datetime | None = None,
            policies: Policies | None = None) -> tuple[Policies, Evaluation]:
    """The rules (``policies``, default the project's) evaluated again on ``plan``; refuses when the result differs
    from the verdicts the plan records."""
    from vboplan.project.render import render

    if policies is None:
        policies = load_policies(project) if project.policies else Policies()
    desired = render(project, env, offline=True).resources if policies.rules else {}
    fresh = evaluate(policies, env, desired, plan.live, plan.changes, moment)
    recorded = [_decided(r) if isinstance(r, dict) else r for r in plan.verdicts]
    now = [_decided(r) for r in fresh.records()]
    if recorded != now:
        raise PlanError(f"the plan for '{plan.environment}' records other policy verdicts than its rules give now:\n"
                        + "".join(f"  - {line}\n" for line in _differences(recorded, now))
                        + "run 'vboplan plan' again and have it approved")
    return policies, fresh


def _differences(recorded: list[Any], now: list[dict[str, Any]]) -> list[str]:
    def by_rule(records: list[Any]) -> dict[str, Any]:
        return {str(r.get("rule")) if isinstance(r, dict) else repr(r): r for r in records}

    before, after = by_rule(recorded), by_rule(now)
    lines = []
    for rule in dict.fromkeys([*before, *after]):
        old, new = before.get(rule), after.get(rule)
        if old == new:
            continue
        if old is None:
            lines.append(f"rule {rule}: not in the plan, but it gives a {new['level']} verdict now")
        elif new is None:
            lines.append(f"rule {rule}: the plan records a verdict it no longer gives")
        elif isinstance(old, dict) and old.get("exception") and not new.get("exception"):
            exception = old["exception"]
            lines.append(f"rule {rule}: the exception owned by {exception.get('owner')} (expires "
                         f"{exception.get('expires')}) no longer counts")
        else:
            lines.append(f"rule {rule}: the recorded verdict differs (changes, objects, message or exception)")
    return lines


def enforce(project: Project, env: Environment, plan: Plan, moment: dt.datetime | None = None) -> Evaluation:
    """Refuse ``plan`` when a ``block`` verdict stands or an ``approve`` verdict's approvers have not signed."""
    policies, fresh = recheck(project, env, plan, moment)
    blocking = [v for v in fresh.verdicts if v.blocks]
    if blocking:
        raise PlanError(f"the plan for '{plan.environment}' is refused by policy: "
                        + "; ".join(f"block rule {v.rule} ({v.source}): {v.message} ({', '.join(v.objects)})"
                                    for v in blocking))
    rules = {rule.id: rule for rule in policies.rules}
    missing = []
    for verdict in fresh.verdicts:
        if verdict.level == "approve" and verdict.stands and verdict.changes:
            missing += _unsigned(plan, verdict, rules[verdict.rule], moment)
    if missing:
        shown = missing[0] if len(missing) == 1 else "\n" + "\n".join(f"  - {line}" for line in missing)
        raise ApprovalError(f"the plan for '{plan.environment}' is refused by policy: {shown}")
    return fresh


def _unsigned(plan: Plan, verdict: Verdict, rule: Rule, moment: dt.datetime | None) -> list[str]:
    from vboplan.trust.approvals import author_of, check, people

    assert rule.approvers is not None
    trust = rule.approvers.trust_list()
    author = author_of(plan, trust)
    at = moment or dt.datetime.now(dt.timezone.utc)
    good = [v for v in (check(plan, i, record, trust, author, at) for i, record in enumerate(plan.approvals, 1))
            if v.ok]
    lines = []
    for change_id in verdict.changes:
        mine = [v for v in good if change_id in v.changes]
        count = people(mine)
        if count < rule.approvers.required:
            names = ", ".join(sorted({",".join(v.principals) for v in mine})) or "none"
            lines.append(f"{change_id} ({plan.change(change_id).address}): approve rule {rule.id} ({rule.source}) "
                         f"needs {rule.approvers.required} distinct approvals from {rule.approvers.display}, has "
                         f"{count} ({names})")
    return lines


def extra_trusts(project: Project, plan: Plan) -> list[TrustList]:
    """The ``allowed_signers`` of the approve rules the plan's verdicts name (as the project defines them, never as
    the file says): whose approvals of this plan are expected beside the environment's own approvers."""
    wanted = {str(v.get("rule")) for v in plan.verdicts if isinstance(v, dict) and v.get("level") == "approve"
              and not v.get("exception")}
    if not wanted or not project.policies:
        return []
    return [rule.approvers.trust_list() for rule in load_policies(project).rules
            if rule.id in wanted and rule.approvers is not None]
