"""Policies: rules in CEL over desired and live values and planned changes, their verdicts in the plan, exceptions,
change severities, and ``vboplan check``.

    policy.rules      rule files (``policies:`` in vboplan.yaml) and exceptions, checked with file and line
    policy.engine     the CEL library, loaded lean
    policy.objects    each kind's values split into the objects rules see
    policy.severity   info / warning / critical per change, from its kind
    policy.evaluate   rules over objects and changes -> verdicts
    policy.enforce    what apply refuses: block verdicts, approve verdicts without their approvers' signatures
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from vboplan.policy.evaluate import Evaluation, Verdict, evaluate
from vboplan.policy.rules import Policies, PolicyError, load_policies

if TYPE_CHECKING:
    from vboplan.planning.plan import Plan
    from vboplan.project.config import Environment, Project

__all__ = ["Evaluation", "Policies", "PolicyError", "Verdict", "attach", "evaluate", "load_policies",
           "plan_moment"]


def plan_moment(plan: Plan) -> dt.datetime:
    """When the plan was made (what its exceptions are judged at)."""
    return dt.datetime.fromisoformat(plan.created_at.replace("Z", "+00:00")).astimezone(dt.timezone.utc)


def attach(project: Project, env: Environment, plan: Plan, desired: dict[str, Any]) -> Evaluation | None:
    """Evaluate ``project``'s rules on ``plan`` and write the verdicts and the exceptions they used into it (so its
    digest covers them). None when the project has no policies."""
    if not project.policies:
        return None
    policies = load_policies(project)
    evaluation = evaluate(policies, env, desired, plan.live, plan.changes, plan_moment(plan))
    plan.verdicts = evaluation.records()
    plan.policy_exceptions = evaluation.exceptions()
    plan.checksum = plan.compute_checksum()
    return evaluation
