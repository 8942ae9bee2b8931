"""vboplan approve / apply under change management, against the embedded emulator."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import SMTP_SECRET, ProjectDir, assert_no_secret, assert_one_clean_error
from filemodes import assert_private


def _plan(project: ProjectDir, env: str = "prod", name: str | None = None) -> Path:
    path = project.root / "plans" / f"{name or env}.json"
    result = project.run("plan", "--env", env, "--out", str(path))
    assert result.exit_code == 0, result.output
    return path


def _changes(path: Path) -> dict[str, str]:
    return {c["address"]: c["id"] for c in json.loads(path.read_text())["changes"]}


def _approve(project: ProjectDir, path: Path, *who: str, changes: tuple[str, ...] = ()) -> None:
    for name in who:
        args = ["approve", str(path), "--key", str(project.keys[name]), "--ticket", "CHG-1"]
        for change in changes:
            args += ["--change", change]
        result = project.run(*args)
        assert result.exit_code == 0, result.output


def _audit(project: ProjectDir, env: str = "prod") -> dict:
    return project.server(env)["audit_email_settings"]


def test_two_approvers_then_apply_converges(project: ProjectDir) -> None:
    path = _plan(project)
    _approve(project, path, "alice", "bob")
    result = project.run("apply", str(path))
    assert result.exit_code == 0, result.output
    assert "Apply complete for prod" in result.stdout
    audit = _audit(project)
    assert audit["smtpServer"] == "smtp.office365.com" and audit["port"] == 587
    snapshot = json.loads((project.root / ".vboplan/state/prod.json").read_text())
    assert snapshot["serial"] == 1 and snapshot["environment"] == "prod"
    assert snapshot["resources"]["audit_email_settings"]["values"]["port"] == 587
    assert [a["principal"] for a in snapshot["last_apply"]["approvals"]] == ["alice", "bob"]
    assert [a["ticket"] for a in snapshot["last_apply"]["approvals"]] == ["CHG-1", "CHG-1"]
    assert_private(project.root / ".vboplan/state/prod.json")
    assert_private(project.root / ".vboplan/state")
    again = project.run("plan", "--env", "prod", "--detailed-exitcode")
    assert again.exit_code == 0, again.output  # the password too: compared through the recorded hash
    assert SMTP_SECRET not in json.dumps(snapshot)


def test_apply_of_a_subset_skips_the_rest(project: ProjectDir) -> None:
    path = _plan(project)
    ids = _changes(path)
    port = ids["audit_email_settings.port"]
    _approve(project, path, "alice", "carol", changes=(port,))
    result = project.run("apply", str(path))
    assert result.exit_code == 0, result.output
    assert f"{port}  update  audit_email_settings.port: applied" in result.stdout
    assert "audit_email_settings.smtpServer: skipped (not approved)" in result.stdout
    # Each skipped change is listed once, in the report (not also before the apply).
    assert result.output.count(f"{ids['audit_email_settings.smtpServer']}") == 2  # its table row and report line
    assert "Will skip" not in result.output
    shown = project.run("state", "show", "--env", "prod").stdout
    assert "planned by ann; approved by alice (ticket CHG-1, key SHA256:" in shown and "; carol (ticket" in shown
    audit = _audit(project)
    assert audit["port"] == 587
    assert audit["smtpServer"] == "old.smtp.local"  # not approved, not applied
    plan = json.loads(project.run("plan", "--env", "prod", "--format", "json").stdout)["plans"][0]
    remaining = {c["address"] for c in plan["changes"]}
    assert "audit_email_settings.port" not in remaining and "audit_email_settings.smtpServer" in remaining


def test_authors_own_approval_does_not_count(project: ProjectDir) -> None:
    path = _plan(project)  # planned by ann (VBOPLAN_USER), whose key is in the trust file
    own = project.run("approve", str(path), "--key", str(project.keys["ann"]))
    assert_one_clean_error(own, "ann", "wrote this plan", "four-eyes")
    assert json.loads(path.read_text())["approvals"] == []


def test_refuses_without_approvals(project: ProjectDir) -> None:
    path = _plan(project)
    result = project.run("apply", str(path))
    assert result.exit_code == 1
    assert "no change has 2 distinct approvals" in result.stderr
    assert "vboplan approve PLANFILE --key KEY" in result.stderr
    assert _audit(project)["port"] == 25


def test_refuses_an_altered_plan_file(project: ProjectDir) -> None:
    path = _plan(project)
    _approve(project, path, "alice", "bob")
    data = json.loads(path.read_text())
    port = next(c for c in data["changes"] if c["address"] == "audit_email_settings.port")
    port["after"] = 2525
    path.write_text(json.dumps(data))
    assert_one_clean_error(project.run("apply", str(path)), "altered after planning")
    assert _audit(project)["port"] == 25


def test_refuses_a_stale_plan(project: ProjectDir) -> None:
    path = _plan(project)
    _approve(project, path, "alice", "bob")
    # A second plan changes the server first: the first plan no longer describes the live values.
    other = _plan(project, "prod", name="other")
    _approve(project, other, "alice", "bob", changes=(_changes(other)["audit_email_settings.port"],))
    assert project.run("apply", str(other)).exit_code == 0
    result = project.run("apply", str(path))
    # Refused as made before a later apply, or (within the same second) as stale: either way nothing is written.
    assert result.exit_code == 1
    assert "after this plan was made" in result.stderr or (
        "stale" in result.stderr and "audit_email_settings.port" in result.stderr), result.stderr
    assert _audit(project)["smtpServer"] == "old.smtp.local"


def test_refuses_when_a_secret_changed(project: ProjectDir, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _plan(project)
    _approve(project, path, "alice", "bob")
    monkeypatch.setenv("SMTP_PASSWORD", "another-password")
    result = project.run("apply", str(path))
    assert_one_clean_error(result, "audit_email_settings.userPassword", "different value")
    assert "another-password" not in result.output


def test_interactive_apply_asks_for_yes(project: ProjectDir) -> None:
    cancelled = project.run("apply", "--env", "dev", input="y\n")
    assert cancelled.exit_code == 1
    assert "Apply 9 changes to environment 'dev' (emulator:dev)?" in cancelled.stderr
    assert "cancelled; nothing was changed" in cancelled.stderr
    assert "audit_email_settings.port" in cancelled.stdout  # the plan was shown before the question
    assert project.server("dev")["audit_email_settings"]["port"] == 25
    done = project.run("apply", "--env", "dev", input="yes\n")
    assert done.exit_code == 0, done.output
    assert project.server("dev")["audit_email_settings"]["port"] == 587


def test_interactive_apply_refused_where_approvals_are_required(project: ProjectDir) -> None:
    assert_one_clean_error(project.run("apply", "--env", "prod", "--auto-approve"), "needs 2 approvals")


def test_partial_failure_keeps_a_valid_snapshot(project: ProjectDir) -> None:
    emulator = project.emulator("dev")
    emulator.fail_next("PUT", r"/VboEmailSettings$", status=500)
    project.write("environments/dev.yaml", "domain: dev.contoso.com\nsmtp:\n  host: smtp.dev.local\n"
                                           "notify_success: true\n")
    result = project.run("apply", "--env", "dev", "--auto-approve")
    assert result.exit_code == 1
    assert "job_email_settings.notifyOnSuccess" in result.stdout
    assert "FAILED" in result.stdout
    error = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and "failed" in error[0] and "VboEmailSettings" in error[0]
    snapshot = json.loads((project.root / ".vboplan/state/dev.json").read_text())
    applied = {c["address"] for c in snapshot["last_apply"]["applied"]}
    failed = {c["address"] for c in snapshot["last_apply"]["failed"]}
    assert "audit_email_settings.port" in applied
    assert failed == {"job_email_settings.notifyOnSuccess"}
    plan = json.loads(project.run("plan", "--env", "dev", "--format", "json").stdout)["plans"][0]
    assert [c["address"] for c in plan["changes"]] == ["job_email_settings.notifyOnSuccess"]


def test_state_show(project: ProjectDir) -> None:
    assert project.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
    shown = project.run("state", "show", "--env", "dev")
    assert shown.exit_code == 0
    assert "audit_email_settings.port" in shown.stdout and "587" in shown.stdout
    assert re.search(r"audit_email_settings\.userPassword\s+\(sensitive\)", shown.stdout)
    as_json = json.loads(project.run("state", "show", "--env", "dev", "--format", "json").stdout)
    assert as_json["serial"] == 1
    assert_no_secret(shown.output)


def test_serial_grows_only_when_content_changes(project: ProjectDir) -> None:
    assert project.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
    first = json.loads((project.root / ".vboplan/state/dev.json").read_text())
    project.write("environments/dev.yaml", "domain: dev.contoso.com\nsmtp:\n  host: smtp2.dev.local\n")
    assert project.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
    second = json.loads((project.root / ".vboplan/state/dev.json").read_text())
    assert second["serial"] == first["serial"] + 1 and second["lineage"] == first["lineage"]
    backup = json.loads((project.root / ".vboplan/state/dev.json.bak").read_text())
    assert backup["serial"] == first["serial"]


def test_refuses_a_plan_whose_author_was_edited(project: ProjectDir) -> None:
    path = _plan(project)  # by ann
    data = json.loads(path.read_text())
    data["created_by"] = "eve"  # so that ann could approve her own plan
    path.write_text(json.dumps(data))
    assert_one_clean_error(project.run("approve", str(path), "--key", str(project.keys["alice"])),
                           "altered after planning")


def test_approving_twice_is_refused(project: ProjectDir) -> None:
    path = _plan(project)
    _approve(project, path, "alice")
    assert_one_clean_error(project.run("approve", str(path), "--key", str(project.keys["alice"])),
                           "alice", "has already approved")
    assert len(json.loads(path.read_text())["approvals"]) == 1


def test_interactive_apply_at_end_of_input_changes_nothing(project: ProjectDir) -> None:
    result = project.run("apply", "--env", "dev", input="")
    assert result.exit_code == 1
    assert project.server("dev")["audit_email_settings"]["port"] == 25
