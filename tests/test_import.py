"""``vboplan import``: an admin adopts servers configured by hand. Run through the CLI against emulators seeded with
every managed setting and audit items in two organizations; the proof is always the plan afterwards."""

from __future__ import annotations

import copy
import hashlib
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import API_SECRET, SMTP_SECRET, ProjectDir, assert_one_clean_error

from vboplan.kinds import catalog

CONTOSO = "contoso.onmicrosoft.com"
FABRIKAM = "fabrikam.onmicrosoft.com"
# The password the servers were configured with by hand; import must never write it (nor its hash) anywhere.
SERVER_PASSWORD = "hand-set-Smtp-pa55"
SUBJECT = "[Audit] %OrganizationName% - %DisplayName% - %Action% initiated by %InitiatedByUserName% at %StartTime%"
SMTP = {"enableNotification": True, "server": "smtp.contoso.com", "port": 587, "from": "restores@contoso.com",
        "useAuthentication": True, "username": "svc-explorer", "userPassword": SERVER_PASSWORD, "useSSL": True}

# Every managed setting with a value a fresh server does not have, and audit items in two organizations.
SEED: dict[str, Any] = {
    "credentials": [{"username": "admin", "password": API_SECRET}],
    "organizations": [{
        "name": CONTOSO,
        "users": [{"displayName": "Jane Doe", "name": "jane@contoso.com"},
                  {"displayName": "Chief Executive", "name": "ceo@contoso.com"},
                  {"displayName": "Alex Twin", "name": "alex1@contoso.com"},
                  {"displayName": "Alex Twin", "name": "alex2@contoso.com"}],
        "groups": [{"displayName": "HR Department", "name": "hr@contoso.com"},
                   {"displayName": "Finance", "name": "finance@contoso.com"}],
        "audit_items": [{"user": "jane@contoso.com"}, {"user": "alex2@contoso.com"}, {"group": "hr@contoso.com"}],
        "organization_retention_exclusions": {"calendar": True},
        "organization_backup_options": {"sharePointBackupMode": "Latest"},
    }, {
        "name": FABRIKAM,
        "users": [{"displayName": "Bob Boss", "name": "bob@fabrikam.com"}],
        "groups": [{"displayName": "Board 🎯 Members", "name": "board@fabrikam.com"}],
        "audit_items": [{"user": "bob@fabrikam.com"}, {"group": "board@fabrikam.com"}],
        "organization_retention_exclusions": {"contacts": True},
    }],
    "audit_email_settings": {"enableNotification": True, "smtpServer": "smtp.office365.com", "port": 587,
                             "useAuthentication": True, "username": "svc-mail", "userPassword": SERVER_PASSWORD,
                             "useSSL": True, "from": "vbo.audit@contoso.com", "to": "security@contoso.com",
                             "subject": SUBJECT},
    "job_email_settings": {"enableNotification": True, "smtpServer": "smtp.office365.com", "port": 25,
                           "notifyOnFailure": True, "notifyOnSuccess": False, "supressUntilLastRetry": True},
    "history_settings": {"keepAllsessions": False, "keeponlyLast": 26},
    "internet_proxy_settings": {"useInternetProxy": True, "hostName": "proxy.contoso.com", "port": 8080,
                                "useAuthentication": True, "username": "svc-proxy", "userPassword": SERVER_PASSWORD},
    "folder_exclusion_settings": {"deletedItems": True, "junkEmail": True},
    "retention_exclusion_settings": {"contacts": True},
    "license_auto_update": {"isEnabled": True},
    "update_settings": {"updateSettings": {"sendEmailOnAvailableUpdates": True}},
    "exchange_explorer_email_settings": SMTP,
    "sharepoint_explorer_email_settings": {**SMTP, "server": "smtp-sp.contoso.com"},
    "onedrive_explorer_email_settings": {**SMTP, "server": "smtp-od.contoso.com"},
    "teams_explorer_email_settings": {**SMTP, "server": "smtp-teams.contoso.com"},
}

CONFIG = """\
templates: ["templates/*.yaml.j2"]
environments:
  dev:
    server: {dev}
    api_version: {version}
    username: admin
    password_env: VBO_TEST_PASSWORD
    verify: {verify}
    var_files: [environments/common.yaml, environments/dev.yaml]
  prod:
    server: emulator:prod
    api_version: {version}
    username: admin
    password_env: VBO_TEST_PASSWORD
    var_files: [environments/common.yaml, environments/prod.yaml]
"""


@pytest.fixture
def empty(tmp_path: Path, secrets_env: None) -> ProjectDir:
    """A project that names its environments and variable files, and has neither templates nor variables yet."""
    project = ProjectDir(tmp_path / "adopt")
    configure(project, "v8")
    project.seed("dev", SEED)
    project.seed("prod", SEED)
    return project


def configure(project: ProjectDir, version: str, dev: str = "emulator:dev", verify: str = "true") -> None:
    project.write("vboplan.yaml", CONFIG.format(version=version, dev=dev, verify=verify))


def files(project: ProjectDir) -> dict[str, bytes]:
    """Every file of the project the user owns (not the emulators' data, not .vboplan/)."""
    return {str(p.relative_to(project.root)): p.read_bytes() for p in sorted(project.root.rglob("*"))
            if p.is_file() and ".vboplan" not in p.parts and p.parts[-2] != "emulator"}


def variables(project: ProjectDir, *names: str) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for name in names:
        data = yaml.safe_load((project.root / "environments" / f"{name}.yaml").read_text()) or {}
        for key, value in data.items():
            merged[key] = {**merged.get(key, {}), **value} if isinstance(value, dict) else value
    return merged


def kinds_of(version: str) -> set[str]:
    return {spec.key for spec in catalog.settings() if version in spec.endpoints} | {"audit_items"}


def assert_no_secret_or_response_only(project: ProjectDir, version: str) -> None:
    hashed = hashlib.sha256(SERVER_PASSWORD.encode()).hexdigest()
    for name, data in files(project).items():
        for forbidden in (SERVER_PASSWORD, SMTP_SECRET, API_SECRET, hashed):
            assert forbidden.encode() not in data, f"{name} holds a secret"
    for env in ("common", "dev", "prod"):
        path = project.root / "environments" / f"{env}.yaml"
        values = (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}
        for key, fields in values.items():
            spec = catalog.find(key)
            if spec is None:
                assert key == "audit_items"
                continue
            writable, readable, _ = spec.fields(version)
            for instance in (fields.values() if spec.per_organization else [fields]):
                # Only fields that can be set and read back: never response-only, write-only or a link.
                assert set(instance) <= set(writable) & readable, (key, set(instance) - (set(writable) & readable))


@pytest.mark.parametrize("version", ["v5", "v6", "v7", "v8"])
def test_import_into_an_empty_project_plans_clean(empty: ProjectDir, version: str) -> None:
    configure(empty, version)
    result = empty.run("import", "--env", "dev")
    assert result.exit_code == 0, result.output
    assert "Plan of dev after import: No changes" in result.stdout
    written = {p.name.removesuffix(".yaml.j2") for p in (empty.root / "templates").iterdir()}
    expected = kinds_of(version)
    if version == "v5":
        assert expected == {"audit_email_settings", "job_email_settings", "audit_items"}
    assert written == expected
    dev = variables(empty, "dev")
    # Names, not ids: organizations by name, users by e-mail, groups by display name.
    assert dev["audit_items"] == {
        CONTOSO: {"users": ["alex2@contoso.com", "jane@contoso.com"], "groups": ["HR Department"]},
        FABRIKAM: {"users": ["bob@fabrikam.com"], "groups": ["Board 🎯 Members"]}}
    assert dev["audit_email_settings"]["subject"] == SUBJECT
    assert dev["job_email_settings"]["supressUntilLastRetry"] is True
    if version != "v5":
        assert dev["history_settings"] == {"keepAllsessions": False, "keeponlyLast": 26}
        assert dev["organization_retention_exclusions"][FABRIKAM]["contacts"] is True
        assert dev["teams_explorer_email_settings"]["server"] == "smtp-teams.contoso.com"
    if version == "v8":
        assert dev["update_settings"]["updateSettings"]["sendEmailOnAvailableUpdates"] is True
        assert dev["organization_backup_options"][CONTOSO] == {"sharePointBackupMode": "Latest"}
    # The write-only password is left out and the summary says how to manage it.
    assert "userPassword" not in dev["audit_email_settings"]
    assert ('audit_email_settings.userPassword: in templates/audit_email_settings.yaml.j2, add  '
            '"userPassword": {{ secret("AUDIT_EMAIL_SETTINGS_USER_PASSWORD") }}') in result.stdout
    assert_no_secret_or_response_only(empty, version)

    planned = empty.run("plan", "--env", "dev", "--detailed-exitcode")
    assert planned.exit_code == 0, planned.output
    assert "No changes" in planned.stdout


def test_the_secret_line_the_summary_offers_works(empty: ProjectDir) -> None:
    assert empty.run("import", "--env", "dev").exit_code == 0
    template = empty.root / "templates" / "audit_email_settings.yaml.j2"
    text = template.read_text()
    line = '  "userPassword": {{ secret("AUDIT_EMAIL_SETTINGS_USER_PASSWORD") }}'
    assert line in text  # offered inside a template comment, so it does nothing yet
    template.write_text(text.replace("{#- Write-only", line + "\n{#- Write-only"))
    result = empty.run("plan", "--env", "dev")
    assert "secret('AUDIT_EMAIL_SETTINGS_USER_PASSWORD') is not set" in result.stderr
    import os

    os.environ["AUDIT_EMAIL_SETTINGS_USER_PASSWORD"] = SMTP_SECRET
    try:
        result = empty.run("plan", "--env", "dev", "--detailed-exitcode")
    finally:
        del os.environ["AUDIT_EMAIL_SETTINGS_USER_PASSWORD"]
    assert result.exit_code == 2, result.output
    assert "audit_email_settings.userPassword" in result.stdout and "will be set" in result.stdout


def partly_equal(project: ProjectDir) -> None:
    """prod: the same servers' settings but a few; audit items differ in one organization."""
    prod = copy.deepcopy(SEED)
    prod["history_settings"]["keeponlyLast"] = 52
    prod["audit_email_settings"]["to"] = "soc@contoso.com"
    prod["organizations"][0]["audit_items"] = [{"user": "ceo@contoso.com"}]
    prod["organizations"][1]["organization_retention_exclusions"] = {"contacts": False}
    project.seed("prod", prod)


def test_two_environments_imported_together_share_equal_values_once(empty: ProjectDir) -> None:
    partly_equal(empty)
    result = empty.run("import", "--env", "dev", "--env", "prod")
    assert result.exit_code == 0, result.output
    assert "Plan of dev after import: No changes" in result.stdout
    assert "Plan of prod after import: No changes" in result.stdout
    common, dev, prod = (variables(empty, name) for name in ("common", "dev", "prod"))
    assert common["audit_email_settings"]["smtpServer"] == "smtp.office365.com"
    assert "smtpServer" not in dev["audit_email_settings"] and "smtpServer" not in prod["audit_email_settings"]
    assert (dev["history_settings"], prod["history_settings"]) == ({"keeponlyLast": 26}, {"keeponlyLast": 52})
    assert "keeponlyLast" not in common["history_settings"]
    assert (dev["audit_email_settings"]["to"], prod["audit_email_settings"]["to"]) == \
        ("security@contoso.com", "soc@contoso.com")
    assert common["audit_items"][FABRIKAM] == {"users": ["bob@fabrikam.com"], "groups": ["Board 🎯 Members"]}
    assert prod["audit_items"][CONTOSO] == {"users": ["ceo@contoso.com"]}
    assert prod["organization_retention_exclusions"][FABRIKAM] == {"contacts": False}
    # Written once: a value equal on both servers is in exactly one file.
    texts = files(empty)
    assert sum(text.count(b"smtp.office365.com") for text in texts.values()) == 2  # audit and job settings
    assert sum(text.count(b"smtp-teams.contoso.com") for text in texts.values()) == 1
    assert_no_secret_or_response_only(empty, "v8")
    planned = empty.run("plan", "--env", "dev", "--env", "prod", "--detailed-exitcode")
    assert planned.exit_code == 0, planned.output


def test_a_second_environment_imported_later_reuses_the_templates(empty: ProjectDir) -> None:
    partly_equal(empty)
    assert empty.run("import", "--env", "dev").exit_code == 0
    before = files(empty)
    result = empty.run("import", "--env", "prod")
    assert result.exit_code == 0, result.output
    after = files(empty)
    assert set(after) - set(before) == {"environments/prod.yaml"}
    assert all(after[name] == data for name, data in before.items())
    assert "Skipped templates/audit_items.yaml.j2: it exists and is left alone" in result.stdout
    assert variables(empty, "prod")["history_settings"]["keeponlyLast"] == 52
    planned = empty.run("plan", "--env", "dev", "--env", "prod", "--detailed-exitcode")
    assert planned.exit_code == 0, planned.output


def test_a_second_import_changes_no_file(empty: ProjectDir) -> None:
    assert empty.run("import", "--env", "dev").exit_code == 0
    before = {name: (data, (empty.root / name).stat().st_mtime_ns) for name, data in files(empty).items()}
    result = empty.run("import", "--env", "dev")
    assert result.exit_code == 0, result.output
    assert "Wrote" not in result.stdout
    assert "Skipped environments/dev.yaml: it exists and is left alone" in result.stdout
    assert "No changes" in result.stdout
    assert {name: (data, (empty.root / name).stat().st_mtime_ns) for name, data in files(empty).items()} == before


def test_dry_run_prints_and_writes_nothing(empty: ProjectDir) -> None:
    result = empty.run("import", "--env", "dev", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "Would write templates/history_settings.yaml.j2" in result.stdout
    assert "--- environments/dev.yaml" in result.stdout and "keeponlyLast: 26" in result.stdout
    assert "Dry run: nothing was written." in result.stdout
    assert set(files(empty)) == {"vboplan.yaml"}


def test_missing_variable_files_are_named_until_import_writes_them(empty: ProjectDir) -> None:
    for command in (["validate", "--env", "dev"], ["plan", "--env", "dev"]):
        result = empty.run(*command)
        assert_one_clean_error(result, "environments/common.yaml: variable file of environment 'dev' not found",
                               "vboplan import --env dev")
    assert empty.run("import", "--env", "dev").exit_code == 0
    assert empty.run("validate", "--env", "dev").exit_code == 0


def test_import_over_https_of_a_real_server(empty: ProjectDir) -> None:
    from vboplan.emulator import start

    with start(SEED, tls=True) as server:
        configure(empty, "v7", dev=server.url, verify=str(server.ca_path))
        result = empty.run("import", "--env", "dev", "--resource", "audit_items", "--resource", "history_settings")
        assert result.exit_code == 0, result.output
        assert sorted(p.name for p in (empty.root / "templates").iterdir()) == \
            ["audit_items.yaml.j2", "history_settings.yaml.j2"]
        assert empty.run("plan", "--env", "dev", "--detailed-exitcode").exit_code == 0


def test_a_hand_written_template_is_left_alone_and_the_plan_says_why(project: ProjectDir) -> None:
    """The shared test project already has templates for the e-mail settings and its own variable files."""
    before = files(project)
    result = project.run("import", "--env", "dev", "--resource", "audit_email_settings",
                         "--resource", "history_settings")
    assert result.exit_code == 1
    assert "audit_email_settings: templates/audit.yaml.j2 already manages it" in result.stdout
    assert "Skipped environments/dev.yaml: it exists and is left alone" in result.stdout
    assert "audit_email_settings.smtpServer" in result.stdout
    assert "templates/audit.yaml.j2 (a template import did not write) manages it" in result.stdout
    assert "does not plan clean" in result.stderr
    after = files(project)
    assert set(after) - set(before) == {"templates/history_settings.yaml.j2"}
    assert all(after[name] == data for name, data in before.items())


# -- errors: one message, exit 1, nothing written ---------------------------------------------------------------------


def test_unreachable_server(empty: ProjectDir) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    configure(empty, "v8", dev=f"http://127.0.0.1:{port}")
    result = empty.run("import", "--env", "dev")
    assert result.exit_code == 1
    assert "environment 'dev'" in result.stderr and "cannot connect" in result.stderr
    assert "Traceback" not in result.output
    assert set(files(empty)) == {"vboplan.yaml"}


def test_a_kind_the_version_lacks(empty: ProjectDir) -> None:
    configure(empty, "v7")
    result = empty.run("import", "--env", "dev", "--resource", "update_settings")
    assert_one_clean_error(result, "environment 'dev'", "update_settings is not in API v7 (it exists in v8)")
    assert set(files(empty)) == {"vboplan.yaml"}
    assert_one_clean_error(empty.run("import", "--env", "dev", "--resource", "history_setings"),
                           "did you mean 'history_settings'?")


def test_an_unwritable_directory_leaves_nothing_half_written(empty: ProjectDir) -> None:
    # A file where the variable files' folder should be: no user, root included, can write under it.
    empty.write("environments", "not a folder\n")
    result = empty.run("import", "--env", "dev")
    assert_one_clean_error(result, "environments/", "nothing was written")
    assert set(files(empty)) == {"vboplan.yaml", "environments"}
    assert not (empty.root / "templates").exists()


def test_a_principal_no_name_picks_out(empty: ProjectDir) -> None:
    seed = copy.deepcopy(SEED)
    seed["organizations"][1]["users"] = [{"displayName": "x@fabrikam.com", "name": "y@fabrikam.com"},
                                         {"displayName": "y@fabrikam.com", "name": "x@fabrikam.com"}]
    seed["organizations"][1]["audit_items"] = [{"user": "y@fabrikam.com"}, {"user": "x@fabrikam.com"}]
    empty.seed("dev", seed)
    result = empty.run("import", "--env", "dev")
    assert_one_clean_error(result, f"organization '{FABRIKAM}'", "no name that tells it apart")
    assert set(files(empty)) == {"vboplan.yaml"}
    # Without audit items the rest imports.
    assert empty.run("import", "--env", "dev", "--resource", "history_settings").exit_code == 0


def test_a_display_name_others_share_is_warned_about(empty: ProjectDir) -> None:
    seed = copy.deepcopy(SEED)
    seed["organizations"][0]["groups"].append({"displayName": "HR Department", "name": "hr-archive@contoso.com"})
    empty.seed("dev", seed)
    result = empty.run("import", "--env", "dev", "--resource", "audit_items")
    assert result.exit_code == 0, result.output
    assert "2 groups are named 'HR Department'" in result.stderr
    assert variables(empty, "dev")["audit_items"][CONTOSO]["groups"] == ["HR Department"]


def test_servers_on_different_api_versions_imported_together(empty: ProjectDir) -> None:
    config = (empty.root / "vboplan.yaml").read_text()
    (empty.root / "vboplan.yaml").write_text(config.replace("api_version: v8", "api_version: v6", 1))
    result = empty.run("import", "--env", "dev", "--env", "prod")
    assert result.exit_code == 0, result.output
    assert "not imported: update_settings is not in API v6 (it exists in v8)" in result.stdout
    assert "update_settings" in variables(empty, "prod") and "update_settings" not in variables(empty, "common")
    planned = empty.run("plan", "--env", "dev", "--env", "prod", "--detailed-exitcode")
    assert planned.exit_code == 0, planned.output


def test_a_file_where_a_new_template_would_go_is_left_alone(empty: ProjectDir) -> None:
    empty.write("templates/history_settings.yaml.j2", "{# to do #}\n")
    result = empty.run("import", "--env", "dev", "--resource", "history_settings", "--resource", "license_auto_update")
    assert result.exit_code == 0, result.output
    assert "Skipped templates/history_settings.yaml.j2: it exists and is left alone" in result.stdout
    assert (empty.root / "templates/history_settings.yaml.j2").read_text() == "{# to do #}\n"
    assert "Wrote templates/license_auto_update.yaml.j2" in result.stdout
