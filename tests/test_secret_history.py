"""A readable field once filled from ``secret()`` stays secret after the template stops doing so: the snapshot keeps
its value as a salted hash, and neither a plan (table, JSON, plan file), a later snapshot nor ``vboplan import``
shows the value the server still holds."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import AUDIT_TEMPLATE, ProjectDir

HOST = "smtp-h0st-0f-2024.secret.example"
VARIABLE = "AUDIT_EMAIL_SETTINGS_SMTP_SERVER"


@pytest.fixture
def applied(project: ProjectDir, monkeypatch: pytest.MonkeyPatch) -> ProjectDir:
    """dev applied once with its SMTP host from secret("HOST"), then the template writes a plain host instead."""
    monkeypatch.setenv("HOST", HOST)
    project.write("templates/audit.yaml.j2", AUDIT_TEMPLATE.replace("{{ smtp.host }}", '{{ secret("HOST") }}'))
    assert project.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
    recorded = json.loads((project.root / ".vboplan/state/dev.json").read_text())
    assert recorded["resources"]["audit_email_settings"]["values"]["smtpServer"]["algorithm"] == "pbkdf2-sha256"
    monkeypatch.delenv("HOST")
    project.write("templates/audit.yaml.j2", AUDIT_TEMPLATE.replace("{{ smtp.host }}", "smtp.public.example"))
    return project


def _nowhere(project: ProjectDir, *texts: str) -> None:
    for text in texts:
        assert HOST not in text, text
    for path in project.root.rglob("*"):
        if path.is_file() and "emulator" not in path.parts:
            assert HOST.encode() not in path.read_bytes(), path


def test_the_old_secret_stays_masked_in_every_form_of_the_plan(applied: ProjectDir) -> None:
    table = applied.run("plan", "--env", "dev")
    assert table.exit_code == 0, table.output
    row = next(line for line in table.stdout.splitlines() if "audit_email_settings.smtpServer" in line)
    assert "(sensitive)" in row and "smtp.public.example" in row, row  # the new, plain value is shown
    as_json = applied.run("plan", "--env", "dev", "--format", "json")
    markdown = applied.run("plan", "--env", "dev", "--format", "markdown")
    saved = applied.root / "plan.json"
    assert applied.run("plan", "--env", "dev", "--out", str(saved)).exit_code == 0
    shown = applied.run("show", str(saved))
    _nowhere(applied, table.output, as_json.output, markdown.output, shown.output)
    # The saved plan applies (its recorded live value is the hash, checked against the server's value).
    done = applied.run("apply", str(saved))
    assert done.exit_code == 0, done.output
    recorded = json.loads((applied.root / ".vboplan/state/dev.json").read_text())
    assert recorded["resources"]["audit_email_settings"]["values"]["smtpServer"] == "smtp.public.example"
    _nowhere(applied, done.output)


def test_a_stale_plan_does_not_print_the_new_value_of_a_field_kept_hashed(applied: ProjectDir) -> None:
    saved = applied.root / "plan.json"
    assert applied.run("plan", "--env", "dev", "--out", str(saved)).exit_code == 0
    moved = "smtp-m0ved-by-hand.secret.example"
    assert applied.api("dev").put("/v8/AuditEmailSettings", json={"smtpServer": moved}).status_code < 300
    refused = applied.run("apply", str(saved))
    assert refused.exit_code == 1 and "is stale" in refused.stderr, refused.output
    assert "audit_email_settings.smtpServer" in refused.stderr, refused.stderr
    assert moved not in refused.output
    _nowhere(applied, refused.output)


def test_a_snapshot_written_while_the_server_still_holds_it_keeps_the_hash(applied: ProjectDir) -> None:
    """An apply that does not change the field (here: only the port) records the server's object again: the value
    it read back is still the secret one, so the snapshot keeps it hashed."""
    applied.write("environments/common.yaml", "smtp:\n  port: 2525\nnotify_success: false\n")
    saved = applied.root / "port.json"
    planned = applied.run("plan", "--env", "dev", "--target", "audit_email_settings.port", "--out", str(saved))
    assert planned.exit_code == 0, planned.output
    done = applied.run("apply", str(saved))
    assert done.exit_code == 0, done.output
    recorded = json.loads((applied.root / ".vboplan/state/dev.json").read_text())
    values = recorded["resources"]["audit_email_settings"]["values"]
    assert values["port"] == 2525 and values["smtpServer"]["algorithm"] == "pbkdf2-sha256"
    shown = applied.run("state", "show", "--env", "dev")
    _nowhere(applied, planned.output, done.output, shown.output)


def _unmanaged(project: ProjectDir) -> None:
    """The project forgets its templates and variables (the snapshot stays): what import starts from."""
    for relative in ("templates/audit.yaml.j2", "templates/jobs.yaml.j2", "environments/common.yaml",
                     "environments/dev.yaml"):
        (project.root / relative).unlink()


def test_import_writes_a_secret_placeholder_instead_of_the_value(applied: ProjectDir) -> None:
    _unmanaged(applied)
    result = applied.run("import", "--env", "dev", "--resource", "audit_email_settings")
    assert result.exit_code in (0, 1), result.output
    assert 'audit_email_settings.smtpServer was filled from secret() when last applied' in result.stdout, \
        result.stdout
    assert f'secret("{VARIABLE}")' in result.stdout
    template = (applied.root / "templates" / "audit_email_settings.yaml.j2").read_text()
    assert f'"smtpServer": {{{{ secret("{VARIABLE}") }}}}' in template
    variables = yaml.safe_load((applied.root / "environments" / "dev.yaml").read_text())
    assert "smtpServer" not in variables["audit_email_settings"]
    _nowhere(applied, result.output)


def test_an_imported_placeholder_plans_clean_once_its_variable_is_set(applied: ProjectDir,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    _unmanaged(applied)
    assert applied.run("import", "--env", "dev", "--resource", "audit_email_settings").exit_code in (0, 1)
    monkeypatch.setenv(VARIABLE, HOST)
    planned = applied.run("plan", "--env", "dev", "--detailed-exitcode", "--target", "audit_email_settings.smtpServer")
    assert planned.exit_code == 0, planned.output
    _nowhere(applied, planned.output)
