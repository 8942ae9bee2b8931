"""The mass-deletion guard: emptying most of an organization's audit items needs --allow-mass-delete at plan time."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import SEED, ProjectDir, assert_one_clean_error

ORG = "contoso.onmicrosoft.com"


def _with_users(project: ProjectDir, count: int) -> None:
    users = [{"displayName": f"Staff {i:02d}", "name": f"staff{i:02d}@contoso.com"} for i in range(count)]
    seed = {**SEED, "organizations": [{**SEED["organizations"][0], "users": users}]}
    project.seed("dev", seed)


def _audit(project: ProjectDir, numbers: range) -> None:
    users = json.dumps([f"staff{i:02d}@contoso.com" for i in numbers])
    project.write("templates/items.yaml.j2", f"audit_items:\n  {ORG}:\n    users: {users}\n")


def _audited(project: ProjectDir) -> int:
    http = project.api("dev")
    org = next(o for o in http.get("/v8/Organizations").json()["results"] if o["name"] == ORG)
    return len(http.get(f"/v8/Organizations/{org['id']}/AuditItems").json())


def _start_with(project: ProjectDir, users: int) -> None:
    _with_users(project, users)
    _audit(project, range(users))
    assert project.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
    assert _audited(project) == users


def test_deleting_most_audit_items_is_refused_unless_planned_with_the_flag(project: ProjectDir,
                                                                          tmp_path: Path) -> None:
    _start_with(project, 30)
    _audit(project, range(5))  # 25 of 30 would go

    planfile = tmp_path / "dev.plan.json"
    planned = project.run("plan", "--env", "dev", "--out", str(planfile))
    assert planned.exit_code == 0
    assert f"Warning: this plan for 'dev' would delete 25 of the 30 audit items of {ORG}" in planned.stderr
    refused = project.run("apply", str(planfile))
    assert_one_clean_error(refused, f"would delete 25 of the 30 audit items of {ORG}", "--allow-mass-delete")
    interactive = project.run("apply", "--env", "dev", "--auto-approve")
    assert interactive.exit_code == 1 and "--allow-mass-delete" in interactive.stderr
    # The fix named is the one for apply --env, which plans and applies in one run: no plan to have approved.
    assert "run 'vboplan apply --env dev --allow-mass-delete'" in interactive.stderr
    assert "plan again" not in interactive.stderr
    assert _audited(project) == 30

    # The flag on apply of a saved plan is not a way around it: it must be in the reviewed plan.
    assert project.run("apply", str(planfile), "--allow-mass-delete").exit_code == 1
    # Nor is editing the plan file: the flag is covered by the checksum.
    data = json.loads(planfile.read_text(encoding="utf-8"))
    data["allow_mass_delete"] = True
    planfile.write_text(json.dumps(data), encoding="utf-8")
    assert_one_clean_error(project.run("apply", str(planfile)), "altered")
    assert _audited(project) == 30

    allowed = tmp_path / "dev.allowed.json"
    assert project.run("plan", "--env", "dev", "--out", str(allowed), "--allow-mass-delete").exit_code == 0
    assert json.loads(allowed.read_text(encoding="utf-8"))["allow_mass_delete"] is True
    shown = project.run("show", str(allowed), "--format", "markdown").stdout
    assert "Planned with `--allow-mass-delete`" in shown
    applied = project.run("apply", str(allowed))
    assert applied.exit_code == 0, applied.output
    assert _audited(project) == 5


def test_the_threshold_is_more_than_ten_and_more_than_a_third(project: ProjectDir) -> None:
    _start_with(project, 45)
    _audit(project, range(35))  # 10 of 45: not more than ten
    assert project.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
    assert _audited(project) == 35
    _audit(project, range(24))  # 11 of 35: more than ten, not more than a third
    result = project.run("apply", "--env", "dev", "--auto-approve")
    assert result.exit_code == 0 and "Warning" not in result.stderr, result.output
    assert _audited(project) == 24
    _audit(project, range(12))  # 12 of 24: both
    assert project.run("apply", "--env", "dev", "--auto-approve").exit_code == 1
    assert _audited(project) == 24
    assert project.run("apply", "--env", "dev", "--auto-approve", "--allow-mass-delete").exit_code == 0
    assert _audited(project) == 12


def test_the_guard_thresholds_of_vboplan_yaml_reach_audit_items(project: ProjectDir) -> None:
    # Audit items are guarded as every kind is: a share set for them under guard: is the one that counts.
    _start_with(project, 30)
    text = project.root.joinpath("vboplan.yaml").read_text(encoding="utf-8")
    project.write("vboplan.yaml", text + "guard:\n  audit_items: {share: 0.9}\n")
    _audit(project, range(5))  # 25 of 30: more than a third, not more than 0.9
    result = project.run("apply", "--env", "dev", "--auto-approve")
    assert result.exit_code == 0 and "Warning" not in result.stderr, result.output
    assert _audited(project) == 5
