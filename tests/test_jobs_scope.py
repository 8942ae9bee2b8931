"""A plan file's scope of jobs and roles (the objects it declares, what ``--target`` selects from, and the principal
names apply resolves in the directory) is its author's text: apply holds it to the templates' own, rendered again,
and refuses a name that no template declares, or one the templates declare that the scope leaves out, naming it,
before anything is sent (v8, over real HTTP, with the hostile author's module-wide server and project)."""

from __future__ import annotations

import copy
from pathlib import Path

from test_hostile_today import ORG, ROLE, Shared, shared  # noqa: F401 (the module's server and project)


def test_a_scope_edited_beside_its_rows_is_refused(shared: Shared, tmp_path: Path) -> None:  # noqa: F811
    # An item's flag of the job keyed contoso.onmicrosoft.com/Whole, and the role's description: rows of both kinds.
    plan = shared.plan(tmp_path, onedrive="true", role="Desk restores, edited")
    kinds = {row["kind"] for row in plan["changes"]}
    assert {"backup_jobs", "restore_operator_roles"} <= kinds, plan["changes"]

    extra = copy.deepcopy(plan)
    extra["scope"]["backup_jobs"]["jobs"].append("Ghost")
    shared.refused(tmp_path, extra, "(backup_jobs)", "the plan's scope declares backup_jobs[\"Ghost\"], which no "
                   "template declares", "run 'vboplan plan' again")

    left_out = copy.deepcopy(plan)
    left_out["scope"]["restore_operator_roles"]["roles"].remove("Desk")
    shared.refused(tmp_path, left_out, f"the templates declare {ROLE}, which the plan's scope leaves out")

    named = copy.deepcopy(plan)
    by_org = named["scope"]["backup_jobs"]["names"].setdefault(ORG, {})
    by_org.setdefault("User", {})["ceo@contoso.com"] = "templates/all.yaml.j2:99"
    shared.refused(tmp_path, named, f"the plan's scope names user 'ceo@contoso.com' of {ORG}, which no template "
                   "declares")

    dropped = copy.deepcopy(plan)
    dropped["scope"]["restore_operator_roles"]["names"][ORG]["Group"].clear()
    shared.refused(tmp_path, dropped, f"the templates name group 'HR Department' of {ORG}, which the plan's scope "
                   "leaves out")

    # The plan as made applies: the scope is the templates' (at whatever lines they declare it).
    applied = shared.project.run("apply", str(tmp_path / "plan.json"))
    assert applied.exit_code == 0, applied.output
    shared.templates()
    back = shared.project.run("apply", "--env", "dev", "--auto-approve")
    assert back.exit_code == 0, back.output
