"""The library's report of a run: the tense of its wording and the exit code the CLI passes on."""

from __future__ import annotations

from conftest import ProjectDir

from vboplan import core


def test_plan_report_counts_and_exit_codes(project: ProjectDir) -> None:
    loaded = core.open_project(project.root)
    outcomes = core.plan_many(loaded, loaded.select(("dev",), False))
    report = core.plan_report(outcomes)
    assert report.return_code == 0
    assert report.line("dev") == "dev: 9 changes would be made (9 to update)"
    assert core.plan_report(outcomes, detailed_exitcode=True).return_code == 2

    applied = core.Report(applying=True)
    applied.applied("dev", ["update"] * 8 + ["create"])
    applied.applied("prod", [])
    assert str(applied) == "dev: 9 changes made (1 created, 8 updated)\nprod: no changes"
    applied.failed("test", "server unreachable")
    assert applied.return_code == 1 and applied.line("test") == "test: failed (server unreachable)"


def test_state_rows_are_a_library_call(project: ProjectDir) -> None:
    assert project.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
    snapshot, rows = core.state_rows(core.open_project(project.root), "dev")
    assert snapshot["environment"] == "dev"
    assert ("audit_email_settings.smtpServer", "smtp.dev.local") in rows
    assert ("audit_email_settings.userPassword", "(sensitive)") in rows
