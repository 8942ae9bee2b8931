"""Every settings object of the catalog, on every API version that has it: plan shows the changes, apply makes them,
the next plan shows none, a write-only field plans as "(sensitive) will be set" until a snapshot holds its hash, and
--target selects the kind. Run through the CLI against the embedded emulator, as an admin would."""

from __future__ import annotations

import json
import re

import pytest
from conftest import SEED, SMTP_SECRET, ProjectDir, assert_one_clean_error

from vboplan.kinds import catalog

ORG = "contoso.onmicrosoft.com"
SMTP = """\
  enableNotification: true
  server: smtp.{{ domain }}
  port: 587
  from: restores@{{ domain }}
  useAuthentication: true
  username: svc-explorer
  userPassword: {{ secret("SMTP_PASSWORD") }}
  useSSL: "true"
"""
# One template per kind, with the values the emulator's fresh server does not have.
TEMPLATES = {
    "history_settings": "history_settings: {keepAllsessions: false, keeponlyLast: 26}\n",
    "internet_proxy_settings": """\
internet_proxy_settings:
  useInternetProxy: true
  hostName: proxy.{{ domain }}
  port: "8080"
  useAuthentication: true
  username: svc-proxy
  userPassword: {{ secret("SMTP_PASSWORD") }}
""",
    "folder_exclusion_settings": "folder_exclusion_settings: {deletedItems: true, junkEmail: true, drafts: false}\n",
    "retention_exclusion_settings": "retention_exclusion_settings: {contacts: true}\n",
    "license_auto_update": "license_auto_update: {isEnabled: true}\n",
    "update_settings": "update_settings:\n  updateSettings: {sendEmailOnAvailableUpdates: true}\n",
    "exchange_explorer_email_settings": "exchange_explorer_email_settings:\n" + SMTP,
    "sharepoint_explorer_email_settings": "sharepoint_explorer_email_settings:\n" + SMTP,
    "onedrive_explorer_email_settings": "onedrive_explorer_email_settings:\n" + SMTP,
    "teams_explorer_email_settings": "teams_explorer_email_settings:\n" + SMTP,
    "organization_retention_exclusions": f"organization_retention_exclusions:\n  {ORG}: {{calendar: true}}\n",
    "organization_backup_options": f"organization_backup_options:\n  {ORG}: {{sharePointBackupMode: latest}}\n",
}
NEW_KINDS = sorted(TEMPLATES)
WRITE_ONLY = {"internet_proxy_settings", "exchange_explorer_email_settings", "sharepoint_explorer_email_settings",
              "onedrive_explorer_email_settings", "teams_explorer_email_settings"}


def kinds_of(version: str) -> list[str]:
    return [key for key in NEW_KINDS if version in catalog.find(key).endpoints]  # type: ignore[union-attr]


def make_project(project: ProjectDir, version: str) -> None:
    project.write("vboplan.yaml", f"""\
templates: ["templates/*.yaml.j2"]
environments:
  dev:
    server: emulator:{version}
    api_version: {version}
    username: admin
    password_env: VBO_TEST_PASSWORD
    var_files: [environments/dev.yaml]
""")
    for path in (project.root / "templates").glob("*"):
        path.unlink()
    for key in kinds_of(version):
        project.write(f"templates/{key}.yaml.j2", TEMPLATES[key])
    project.write("environments/dev.yaml", "domain: dev.contoso.com\n")
    project.seed(version, SEED)


def plan_json(project: ProjectDir, *args: str) -> dict:
    result = project.run("plan", "--env", "dev", "--format", "json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["plans"][0]


def test_the_catalog_has_every_kind_of_the_contract() -> None:
    assert set(NEW_KINDS) <= {spec.key for spec in catalog.settings()}
    assert catalog.find("update_settings").versions == ("v8",)  # type: ignore[union-attr]
    assert catalog.find("organization_backup_options").versions == ("v8",)  # type: ignore[union-attr]
    assert catalog.find("history_settings").versions == ("v6", "v7", "v8")  # type: ignore[union-attr]


@pytest.mark.parametrize("version", ["v6", "v7", "v8"])
def test_plan_apply_converge_per_version(project: ProjectDir, version: str, monkeypatch: pytest.MonkeyPatch) -> None:
    make_project(project, version)
    kinds = kinds_of(version)
    # One run gives both what the user sees (the table) and the plan file (JSON): hashing secrets is slow.
    shown = project.run("plan", "--env", "dev", "--out", str(project.root / "plan.json"))
    assert shown.exit_code == 0, shown.output
    planned = json.loads((project.root / "plan.json").read_text())
    by_kind: dict[str, list[dict]] = {}
    for change in planned["changes"]:
        by_kind.setdefault(change["address"].split(".")[0].split("[")[0], []).append(change)
    assert sorted(by_kind) == sorted(kinds)
    after = {c["address"]: c["after"] for c in planned["changes"]}
    assert after["history_settings.keeponlyLast"] == 26
    assert after["internet_proxy_settings.port"] == 8080  # "8080" in the template
    assert after[f'organization_retention_exclusions["{ORG}"].calendar'] is True
    if version == "v8":
        assert after[f'organization_backup_options["{ORG}"].sharePointBackupMode'] == "Latest"
        assert after["update_settings.updateSettings"] == {"sendEmailOnAvailableUpdates": True}

    for key in WRITE_ONLY:
        row = next(line for line in shown.stdout.splitlines() if f"{key}.userPassword " in line)
        assert "(sensitive) will be set" in row, row
    for key in kinds:  # --target selects exactly that kind's changes
        targeted = plan_json(project, "--target", key)["changes"]
        assert targeted and {c["address"] for c in targeted} == {c["address"] for c in by_kind[key]}

    applied = project.run("apply", "--env", "dev", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    again = project.run("plan", "--env", "dev", "--detailed-exitcode")
    assert again.exit_code == 0 and "No changes." in again.stdout, again.output

    http = project.api(version)
    held = {key: http.get(f"/{version}/{path}").json() for key, path in (
        ("history", "HistorySettings"), ("proxy", "InternetProxySettings"), ("vex", "VexEmailSettings"),
        ("retention", "GlobalRetentionExclusionSettings"), ("license", "License/AutoUpdate"))}
    assert held["history"]["keeponlyLast"] == 26 and held["proxy"]["hostName"] == "proxy.dev.contoso.com"
    assert held["vex"]["server"] == "smtp.dev.contoso.com" and held["vex"]["useSSL"] is True
    assert held["retention"]["contacts"] is True and held["license"]["isEnabled"] is True
    orgs = http.get(f"/{version}/Organizations").json()
    org_id = next(o["id"] for o in (orgs["results"] if version == "v8" else orgs) if o["name"] == ORG)
    assert http.get(f"/{version}/Organizations/{org_id}/RetentionExclusion").json()["calendar"] is True
    if version == "v8":
        assert http.get(f"/v8/Organizations/{org_id}/versionBackupOptions").json() == {
            "sharePointBackupMode": "Latest"}
        updates = http.get("/v8/Configuration/Updates").json()
        assert updates["enableCheckForUpdates"] is True  # kept: sent back as the server held it
        assert updates["updateSettings"]["sendEmailOnAvailableUpdates"] is True

    state = json.loads(project.run("state", "show", "--env", "dev", "--format", "json").stdout)
    assert SMTP_SECRET not in json.dumps(state)
    shown = project.run("state", "show", "--env", "dev").stdout
    assert f'organization_retention_exclusions["{ORG}"].calendar' in shown
    assert re.search(r"exchange_explorer_email_settings\.userPassword +\(sensitive\)", shown), shown

    # The snapshot holds the secrets' hashes: a new value plans as a change, the same one does not.
    monkeypatch.setenv("SMTP_PASSWORD", "another-secret-value")
    changed = project.run("plan", "--env", "dev").stdout
    rows = [line for line in changed.splitlines() if "userPassword" in line]
    assert len(rows) == len(WRITE_ONLY) and all("(sensitive) will change" in row for row in rows), rows


def test_a_kind_the_version_lacks_is_a_render_error(project: ProjectDir) -> None:
    make_project(project, "v7")
    project.write("templates/updates.yaml.j2", TEMPLATES["update_settings"])
    result = project.run("plan", "--env", "dev")
    assert_one_clean_error(result, "updates.yaml.j2", "update_settings is not in API v7", "it exists in v8")
    make_project(project, "v5")
    project.write("templates/history.yaml.j2", TEMPLATES["history_settings"])
    result = project.run("validate", "--env", "dev")
    assert_one_clean_error(result, "history_settings is not in API v5", "v6, v7, v8")


def test_per_organization_settings_name_an_organization_on_the_server(project: ProjectDir) -> None:
    make_project(project, "v8")
    project.write("templates/organization_retention_exclusions.yaml.j2",
                  "organization_retention_exclusions:\n  nowhere.onmicrosoft.com: {calendar: true}\n")
    result = project.run("plan", "--env", "dev")
    assert_one_clean_error(result, "nowhere.onmicrosoft.com", "not on the server")


def test_no_secret_in_per_organization_settings(project: ProjectDir) -> None:
    make_project(project, "v8")
    project.write("templates/organization_backup_options.yaml.j2",
                  f'organization_backup_options:\n  {ORG}: {{sharePointBackupMode: "{{{{ secret("SMTP_PASSWORD") }}}}"}}\n')
    result = project.run("plan", "--env", "dev")
    assert_one_clean_error(result, "organization_backup_options.yaml.j2", "secret() cannot be used")


def test_target_inside_an_organization(project: ProjectDir) -> None:
    make_project(project, "v8")
    project.write("templates/organization_retention_exclusions.yaml.j2",
                  f"organization_retention_exclusions:\n  {ORG}: {{calendar: true, contacts: true}}\n")
    address = f'organization_retention_exclusions["{ORG}"].calendar'
    changes = plan_json(project, "--target", address)["changes"]
    assert [c["address"] for c in changes] == [address]
    bad = project.run("plan", "--env", "dev", "--target", "organization_retention_exclusions[contoso]")
    assert_one_clean_error(bad, "double-quoted")
