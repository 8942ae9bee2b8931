"""A plan file applies once, even when its apply was cut short: the next apply of that file folds the interrupted
apply's write journal into the snapshot first, and then refuses it, whatever the clocks say (the journal's start and
the plan's creation fall in one second here). A plan of which nothing landed may be made afresh and applied."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import ProjectDir

STATE = Path(".vboplan/state")


def _rotation(project: ProjectDir, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """The SMTP password rotated in the templates' secret, planned to a file: one write-only change."""
    assert project.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
    monkeypatch.setenv("SMTP_PASSWORD", "Rotated-recovered-Pw-77")
    planfile = tmp_path / "rotate.json"
    planned = project.run("plan", "--env", "dev", "--out", str(planfile))
    assert planned.exit_code == 0, planned.output
    plan = json.loads(planfile.read_text(encoding="utf-8"))
    assert [c["address"] for c in plan["changes"]] == ["audit_email_settings.userPassword"], plan["changes"]
    return planfile, plan


def _journal(project: ProjectDir, plan: dict[str, Any], state: str) -> None:
    """The write journal an apply of ``plan`` killed after its one write leaves (``state``: the write's answer as
    recorded: "applied", or "sent" with no answer seen), begun in the second the plan was made."""
    journal = {"format_version": 1, "id": "j-cut-short", "environment": "dev", "by": "ann",
               "started_at": plan["created_at"], "checksum": plan["checksum"], "planned_by": plan["created_by"],
               "approvals": [], "scope": plan["scope"],
               "writes": [{"n": 1, "description": "PUT /v8/AuditEmailSettings", "state": state,
                           "sent_at": plan["created_at"], "changes": plan["changes"]}]}
    (project.root / STATE / "dev.journal.json").write_text(json.dumps(journal), encoding="utf-8")


def test_a_plan_whose_interrupted_apply_landed_is_not_applied_again(
        project: ProjectDir, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    planfile, plan = _rotation(project, monkeypatch, tmp_path)
    _journal(project, plan, "applied")
    before = project.server("dev")
    again = project.run("apply", str(planfile))
    errors = [line for line in again.stderr.splitlines() if line.startswith("Error: ")]
    assert again.exit_code == 1 and len(errors) == 1 and "Traceback" not in again.output, again.output
    assert "already applied" in errors[0] and "run 'vboplan plan' again" in errors[0], errors
    assert "was interrupted" in again.stderr, again.stderr
    assert project.server("dev") == before  # nothing was sent
    snapshot = json.loads((project.root / STATE / "dev.json").read_text(encoding="utf-8"))
    assert snapshot["last_apply"]["journal"] == "j-cut-short" and snapshot["last_apply"]["interrupted"] is True
    assert plan["checksum"] in {e["digest"] for e in snapshot["applied_plans"]}
    # The rotation is recorded as landed: the next plan has nothing left to do.
    assert project.run("plan", "--env", "dev", "--detailed-exitcode").exit_code == 0


def test_a_plan_of_which_nothing_landed_may_be_made_afresh_and_applied(
        project: ProjectDir, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The journal says the write was sent and no answer seen: a write-only value cannot be checked, so it is
    planned again; that plan (the same content, so the same digest) is not taken for the one already applied."""
    planfile, plan = _rotation(project, monkeypatch, tmp_path)
    _journal(project, plan, "sent")
    assert project.run("plan", "--env", "dev", "--out", str(planfile)).exit_code == 0
    applied = project.run("apply", str(planfile))
    assert applied.exit_code == 0, applied.output
    assert project.run("plan", "--env", "dev", "--detailed-exitcode").exit_code == 0
