"""Several environments under change management in one go: plan, approve and apply many plan files, never losing an
approval to a careless re-plan, and being told what to run next."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import SEED, ProjectDir, assert_one_clean_error

STAGING = """\
  staging:
    server: emulator:staging
    api_version: v8
    username: admin
    password_env: VBO_TEST_PASSWORD
    var_files: [environments/common.yaml, environments/prod.yaml]
    approvals: {required: 2, allowed_signers: approvers/prod.allowed_signers, max_age: 72h}
"""


@pytest.fixture
def two_envs(project: ProjectDir) -> ProjectDir:
    """prod and staging, both needing two approvals from the same people."""
    project.write("vboplan.yaml", (project.root / "vboplan.yaml").read_text(encoding="utf-8") + STAGING)
    project.seed("staging", SEED)
    return project


def test_plan_out_refuses_to_discard_approvals_and_says_what_comes_next(two_envs: ProjectDir,
                                                                        tmp_path: Path) -> None:
    plans = tmp_path / "plans"
    planned = two_envs.run("plan", "--env", "prod", "--env", "staging", "--out", f"{plans}/{{env}}.json")
    assert planned.exit_code == 0, planned.output
    prod = plans / "prod.json"
    assert f"Saved the plan for prod to {prod}" in planned.stderr
    assert (f"Next: 2 approvers each run 'vboplan approve {prod} --key KEY', then 'vboplan apply {prod}'."
            in planned.stderr)

    approved = two_envs.run("approve", str(prod), "--key", str(two_envs.keys["alice"]))
    assert approved.exit_code == 0, approved.output
    before = prod.read_bytes()
    again = two_envs.run("plan", "--env", "prod", "--out", str(prod))
    assert_one_clean_error(again, f"{prod} holds 1 approval;", "--force")
    assert prod.read_bytes() == before
    # A plan file without approvals is simply replaced; --force replaces one with approvals.
    assert two_envs.run("plan", "--env", "staging", "--out", str(plans / "staging.json")).exit_code == 0
    forced = two_envs.run("plan", "--env", "prod", "--out", str(prod), "--force")
    assert forced.exit_code == 0, forced.output
    assert json.loads(prod.read_text(encoding="utf-8"))["approvals"] == []

    dev = two_envs.run("plan", "--env", "dev", "--out", str(tmp_path / "dev.json"))
    assert f"Next: 'vboplan show {tmp_path / 'dev.json'}' to review it, then 'vboplan apply" in dev.stderr


def test_approve_and_apply_a_directory_of_plans_each_on_its_own(two_envs: ProjectDir, tmp_path: Path) -> None:
    plans = tmp_path / "plans"
    assert two_envs.run("plan", "--env", "prod", "--env", "staging", "--out",
                        f"{plans}/{{env}}.json").exit_code == 0
    for person in ("alice", "bob"):
        approved = two_envs.run("approve", str(plans), "--key", str(two_envs.keys[person]), "--ticket", "CHG-7")
        assert approved.exit_code == 0, approved.output
        assert "Summary: 2 of 2 plan files approved." in approved.stdout
    # Someone changes staging by hand after planning: its plan is now stale, prod's is not.
    http = two_envs.api("staging")
    settings = http.get("/v8/AuditEmailSettings").json()
    http.put("/v8/AuditEmailSettings", json={**settings, "smtpServer": "changed.by.hand"}).raise_for_status()

    applied = two_envs.run("apply", str(plans))
    assert applied.exit_code == 1  # the worst of the two
    assert "Apply complete for prod" in applied.stdout
    assert "Summary: 1 of 2 plan files applied." in applied.stdout
    assert f"ok     {plans / 'prod.json'}: Apply complete for prod" in applied.stdout
    failed = next(line for line in applied.stdout.splitlines() if line.startswith("  FAILED"))
    assert str(plans / "staging.json") in failed and "stale" in failed
    assert two_envs.server("prod")["audit_email_settings"]["smtpServer"] == "smtp.office365.com"
    assert two_envs.server("staging")["audit_email_settings"]["smtpServer"] == "changed.by.hand"


def test_several_plan_files_and_merge_do_not_mix(two_envs: ProjectDir, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_clean_error(two_envs.run("apply", str(empty)), "no plan files")
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    result = two_envs.run("approve", str(a), str(b), "--merge", str(a))
    assert_one_clean_error(result, "give one PLANFILE")
