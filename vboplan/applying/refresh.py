"""Applying a refresh-only plan (``plan --refresh-only``): record what the server holds now in the state snapshot,
without sending a single write, so that a change made outside vboplan (in the console) is accepted rather than
reported forever or undone.

It is cleared like any plan: intact, fresh, never applied, and where approvals are required, approved by that many
distinct people other than its author (a refresh-only plan has no change ids: an approval covers it whole). Under
the lock, the live values must still be those the plan showed (a stale plan is refused as any other), so what is
recorded is exactly what the approvers saw.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vboplan.applying.apply import ApplyReport, check_not_stale, interrupts_as_ctrl_c, recover
from vboplan.connection import connect
from vboplan.errors import ApprovalError, StateError
from vboplan.kinds.registry import KINDS
from vboplan.planning.plan import Plan, read_live, reread
from vboplan.project.config import Environment, Project, current_user
from vboplan.sensitive import conceal_fields
from vboplan.state import StateStore, now
from vboplan.trust.approvals import Clearance, applied_entry, check_fresh, last_apply_commit


class RefreshReport(ApplyReport):
    """What a refresh-only apply did: values recorded, nothing sent."""

    recorded: int = 0

    def summary(self) -> str:
        if not self.ok:
            return f"Refresh FAILED for {self.environment}; nothing was sent to the server."
        return (f"Refresh complete for {self.environment}: the state now records the live values "
                f"({self.recorded} changed outside vboplan); nothing was sent to the server.")


def check_approved(plan: Plan, env: Environment, clearance: Clearance) -> None:
    """Refuse a refresh-only plan that fewer than ``approvals.required`` distinct people approved."""
    from vboplan.trust.approvals import _people

    required = env.approvals.required
    good = [v for v in clearance.verdicts if v.ok]
    if required and _people(good) < required:
        who = ", ".join(sorted({",".join(v.principals) for v in good})) or "nobody"
        raise ApprovalError(f"the refresh-only plan for '{plan.environment}' is refused: it has {_people(good)} of "
                            f"{required} distinct approvals ({who}); approvers sign it with 'vboplan approve "
                            f"PLANFILE --key KEY' (keys in {env.approvals.display})")


def apply_refresh(project: Project, env: Environment, plan: Plan, clearance: Clearance, path: Path) -> RefreshReport:
    """Record the live values of ``plan``'s scope in ``env``'s snapshot; nothing is sent to the server."""
    check_approved(plan, env, clearance)
    store = StateStore(project, env)
    report = RefreshReport(env.name, state_path=store.display)
    report.recorded = len(plan.drift)
    with interrupts_as_ctrl_c(), store.lock(f"apply {path.name} (refresh only)"):
        snapshot = store.read()
        with connect(project, env) as client:
            recover(store, client)
            check_fresh(plan, env.approvals, snapshot)
            check_not_stale(client, plan)
            fresh = read_live(client, plan.scope,
                              lambda name: reread(client, name, plan.scope[name], plan.live.get(name)),
                              "reading the values to record:")
        recorded = store.resources()
        resources = dict(recorded)
        for name, live in fresh.items():
            resources[name] = KINDS[name].snapshot(conceal_fields(live, plan.secret_fields.get(name, [])), [],
                                                   recorded.get(name))
        last_apply: dict[str, Any] = {
            "at": now(), "by": current_user(), "checksum": plan.checksum, "planned_by": plan.created_by,
            "approvals": clearance.records(), "refresh_only": True,
            "recorded": [str(d.address) for d in plan.drift], "applied": [], "skipped": [], "failed": [],
            "not_attempted": [], "error": None,
            "commit": last_apply_commit(plan, False),  # nothing of the templates was applied: the base stays
        }
        try:
            written = store.write(resources, last_apply, applied_plan=applied_entry(plan))
        except StateError as exc:
            raise StateError(f"the live values of '{env.name}' were read but the state snapshot could not be "
                             f"written ({exc}); nothing was sent to the server") from None
    report.serial = written["serial"]
    return report
