"""Refusals in the user's words: values as templates spell them, one line per stale field, plurals right."""

from __future__ import annotations

from pathlib import Path

from conftest import ProjectDir


def test_a_stale_plan_lists_each_moved_field_as_templates_spell_values(project: ProjectDir, tmp_path: Path) -> None:
    planfile = tmp_path / "prod.json"
    assert project.run("plan", "--env", "prod", "--out", str(planfile)).exit_code == 0
    for person in ("alice", "bob"):
        assert project.run("approve", str(planfile), "--key", str(project.keys[person])).exit_code == 0
    http = project.api("prod")
    settings = http.get("/v8/AuditEmailSettings").json()
    http.put("/v8/AuditEmailSettings", json={**settings, "smtpServer": "changed.by.hand", "useSSL": True,
                                             "enableNotification": True}).raise_for_status()
    result = project.run("apply", str(planfile))
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert "Error: the plan for 'prod' is stale: the server changed since planning:" in lines
    assert "  - audit_email_settings.smtpServer: planned against old.smtp.local, now changed.by.hand" in lines
    assert "  - audit_email_settings.useSSL: planned against (not set), now true" in lines
    assert "  - audit_email_settings.enableNotification: planned against false, now true" in lines
    assert "run 'vboplan plan' again" in lines
    assert "None" not in result.stderr and "True" not in result.stderr and "->" not in result.stderr


def test_interactive_apply_where_approvals_are_required_counts_them_right(project: ProjectDir) -> None:
    result = project.run("apply", "--env", "prod", "--auto-approve")
    assert result.exit_code == 1
    assert "environment 'prod' needs 2 approvals: run" in result.stderr
