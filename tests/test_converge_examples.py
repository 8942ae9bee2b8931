"""Every template converges: plan, apply, then plan again shows no changes. Over every example project in
examples/ (each of its environments), over a project declaring every settings kind and audit_items on each API
version that has them, and with a server-wide settings object and an organization's changed in the same apply."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import AUDIT_TEMPLATE, JOB_TEMPLATE, SEED, ProjectDir, signer_line
from test_settings_kinds import TEMPLATES

from vboplan.kinds import catalog
from vboplan.kinds.registry import KINDS
from vboplan.project.config import load_project

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
ORG = "contoso.onmicrosoft.com"
APPROVERS = ("alice", "bob")


def _example_projects() -> list[tuple[str, str]]:
    """(project directory relative to examples/, environment) of every example project."""
    found = []
    for config in sorted(EXAMPLES.rglob("vboplan.yaml")):
        if ".vboplan" in config.parts:
            continue
        for env in load_project(config.parent).environments:
            found.append((str(config.parent.relative_to(EXAMPLES)), env))
    return found


def _converges(project: ProjectDir, env: str, approvers: tuple[str, ...] = (), *, changes: bool = True) -> dict:
    """Plan (there must be changes, unless ``changes`` is false and the server already matches), approve, apply,
    and plan again: exit 0 with --detailed-exitcode. Returns the first plan document."""
    path = project.root / "plans" / f"{env}.json"
    signed_by_author = ["--sign-key", str(project.keys["ann"])] if approvers else []
    first = project.run("plan", "--env", env, "--out", str(path), "--detailed-exitcode", *signed_by_author)
    if first.exit_code == 0 and not changes:
        return json.loads(path.read_text())
    assert first.exit_code == 2, first.output
    for name in approvers:
        signed = project.run("approve", str(path), "--key", str(project.keys[name]), "--ticket", "CHG-20")
        assert signed.exit_code == 0, signed.output
    applied = project.run("apply", str(path))
    assert applied.exit_code == 0, applied.output
    again = project.run("plan", "--env", env, "--detailed-exitcode")
    assert again.exit_code == 0, f"{env} did not converge after one apply:\n{again.output}"
    return json.loads(path.read_text())


def _kinds(document: dict) -> set[str]:
    return {change["kind"] for change in document["changes"]}


@pytest.mark.parametrize("folder, env", _example_projects())
def test_every_example_converges_after_one_apply(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 keys: dict[str, Path], folder: str, env: str) -> None:
    root = tmp_path / "example"
    shutil.copytree(EXAMPLES / folder, root, ignore=shutil.ignore_patterns(".vboplan"))
    project = ProjectDir(root)
    project.keys = keys
    approvals = load_project(root).environments[env].approvals
    required = approvals.required
    if required:  # the example's approvers are people we hold no keys of: ours take their place
        assert approvals.allowed_signers is not None and required <= len(APPROVERS)
        approvals.allowed_signers.write_text("".join(signer_line(keys, name) + "\n" for name in (*APPROVERS, "ann")))
    monkeypatch.setenv("VBOPLAN_USER", "ann")
    for name in ("VBO_DEV_PASSWORD", "VBO_PROD_PASSWORD", "VBO_FLEET_PASSWORD"):
        monkeypatch.setenv(name, f"{name.split('_')[1].lower()}-emulator-password")
    monkeypatch.setenv("SMTP_PASSWORD", "example-smtp-password")
    document = _converges(project, env, APPROVERS[:required], changes=folder == ".")  # some fleet tenants match
    if folder == ".":  # the README's example: the case issue 20 found
        assert {"audit_items", "organization_retention_exclusions", "retention_exclusion_settings"} <= _kinds(document)


EVERY_KIND = {**TEMPLATES, "audit_email_settings": AUDIT_TEMPLATE, "job_email_settings": JOB_TEMPLATE,
              "audit_items": f"audit_items:\n  {ORG}:\n    users: [ceo@contoso.com, Jane Doe]\n"
                             "    groups: [HR Department]\n"}


def _versioned(project: ProjectDir, version: str, templates: dict[str, str]) -> None:
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
    for key, text in templates.items():
        project.write(f"templates/{key}.yaml.j2", text)
    project.write("environments/dev.yaml", "domain: dev.contoso.com\nsmtp:\n  host: smtp.dev.local\n  port: 587\n"
                                           "notify_success: true\n")
    project.seed(version, SEED)


@pytest.mark.parametrize("version", ["v6", "v7", "v8"])
def test_every_kind_converges_after_one_apply(project: ProjectDir, version: str) -> None:
    present = {key: text for key, text in EVERY_KIND.items()
               if key == "audit_items" or version in catalog.find(key).endpoints}  # type: ignore[union-attr]
    # Every settings kind and audit_items (the collections have their own convergence tests).
    assert set(EVERY_KIND) == {spec.key for spec in catalog.settings()} | {"audit_items"} <= set(KINDS)
    _versioned(project, version, present)
    assert _kinds(_converges(project, "dev")) == set(present)


PER_ORGANIZATION = [(spec.key, version) for spec in catalog.settings() if spec.per_organization
                    for version in spec.versions]
# What each per-organization kind declares for the organization; the same apply changes the server-wide retention
# exclusions from a fresh server's (both false) to these. The organization's calendar stays false while the
# server-wide one turns true: the case that did not converge.
ORGANIZATION = {"organization_retention_exclusions": {"contacts": True, "calendar": False},
                "organization_backup_options": {"sharePointBackupMode": "Latest"}}
SERVER_WIDE = {"contacts": True, "calendar": True}


@pytest.mark.parametrize("key, version", PER_ORGANIZATION)
def test_server_wide_and_organization_settings_changed_in_one_apply_converge(project: ProjectDir, key: str,
                                                                           version: str) -> None:
    assert set(ORGANIZATION) == {k for k, _ in PER_ORGANIZATION}  # every per-organization kind is declared here
    _versioned(project, version, {
        "retention_exclusion_settings": f"retention_exclusion_settings: {json.dumps(SERVER_WIDE)}\n",
        key: f"{key}:\n  {ORG}: {json.dumps(ORGANIZATION[key])}\n"})
    planned = _converges(project, "dev")
    assert _kinds(planned) == {"retention_exclusion_settings", key}
    assert {c["address"] for c in planned["changes"]} >= {"retention_exclusion_settings.calendar",
                                                          "retention_exclusion_settings.contacts"}


#: A template of each named collection in the registry, its references met within the same plan. A collection
#: registered without one here fails test_every_collection_converges_after_one_apply.
COLLECTIONS = {
    "backup_proxies": "backup_proxies:\n  proxy01.contoso.local: {description: EU proxy}\n",
    "proxy_pools": "proxy_pools:\n  EU pool: {description: EU proxies, proxies: [proxy01.contoso.local]}\n",
    "cloud_accounts": "cloud_accounts:\n  akiaexample01: {accountType: amazonS3Account, description: S3 archive, "
                      "password: '{{ secret(\"S3_SECRET_KEY\") }}'}\n",
    "encryption_keys": "encryption_keys:\n  Archive key 2026: {password: '{{ secret(\"ARCHIVE_KEY_PASSWORD\") }}'}\n",
    "backup_repositories": """\
backup_repositories:
  Repo EU: {proxy: proxy01.contoso.local, path: 'D:\\Backups\\EU', retentionType: ItemLevel}
  Archive EU:
    proxy: proxy01.contoso.local
    retentionType: SnapshotBased
    objectStorage:
      account: akiaexample01
      type: AmazonS3
      s3Folder: eu
      amazonBucketS3Aws: {name: vb365-archive, regionType: Global, regionId: eu-west-1}
""",
    "backup_jobs": """\
backup_jobs:
  Mail:
    organization: contoso.onmicrosoft.com
    repository: Repo EU
    backupType: SelectedItems
    selectedItems:
      - {user: Chief Executive, mailbox: true, archiveMailbox: true}
      - {group: HR Department, mailbox: true}
      - {personalSites: true}
    excludedItems: [{user: jane@contoso.com}]
    schedulePolicy: {type: Daily, dailyType: Everyday, dailyTime: "22:00:00"}
    isEnabled: false
""",
    "copy_jobs": "copy_jobs:\n  Mail: {repository: Archive EU, schedulePolicy: {type: Immediate}ORG}\n",
    "restore_operator_roles": """\
restore_operator_roles:
  Helpdesk:
    organization: contoso.onmicrosoft.com
    roleType: SpecificObjects
    operators: [{group: Finance}]
    selectedItems: [{group: HR Department}]
    excludedItems: [{user: ceo@contoso.com}]
""",
    "audit_items": "audit_items:\n  contoso.onmicrosoft.com: {users: [Chief Executive], groups: [hr@contoso.com]}\n",
}


@pytest.mark.parametrize("version", ["v6", "v7", "v8"])
def test_every_collection_converges_after_one_apply(project: ProjectDir, version: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from vboplan.kinds.registry import collection_specs

    registered = {spec.key for spec in collection_specs()}
    assert set(COLLECTIONS) == registered, f"collections without a convergence template here: " \
                                           f"{sorted(registered - set(COLLECTIONS))}"
    present = {spec.key: COLLECTIONS[spec.key].replace(
        "ORG", ", organization: contoso.onmicrosoft.com" if version == "v8" else "")
        for spec in collection_specs() if spec.api(version) is not None}
    monkeypatch.setenv("S3_SECRET_KEY", "converge-s3-secret")
    monkeypatch.setenv("ARCHIVE_KEY_PASSWORD", "converge-key-password")
    _versioned(project, version, present)
    project.seed(version, {**SEED, "proxies": [{"hostName": "proxy01.contoso.local", "port": 9193,
                                                "description": ""}],
                           "cloud_accounts": [{"userName": "akiaexample01", "accountType": "amazonS3Account"}]})
    assert _kinds(_converges(project, "dev")) == set(present)
