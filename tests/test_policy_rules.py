"""Severities of each kind's typical changes, and every rule of builtin:recommended on a compliant and a violating
project (evaluated in-process: the CLI paths are in test_policy.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from vboplan.kinds.registry import registered
from vboplan.planning.changes import Address, make
from vboplan.policy import evaluate, load_policies
from vboplan.policy.severity import rate, rate_all
from vboplan.project.config import Environment, Project


def _change(kind: str, address: str, action: str, before: Any, after: Any, id: str = "c1") -> Any:
    return make(action, kind, Address.parse(address), before, after, id=id)


@pytest.mark.parametrize(("kind", "address", "action", "before", "after", "level", "reason"), [
    ("audit_email_settings", "audit_email_settings.enableNotification", "update", True, False, "critical",
     "audit notification turned off"),
    ("audit_email_settings", "audit_email_settings.enableNotification", "update", False, True, "info", "a setting"),
    ("audit_email_settings", "audit_email_settings.useSSL", "update", True, False, "warning", "without TLS"),
    ("job_email_settings", "job_email_settings.notifyOnFailure", "update", True, False, "warning",
     "job failure notifications turned off"),
    ("job_email_settings", "job_email_settings.notifyOnSuccess", "update", True, False, "info", "a setting"),
    ("history_settings", "history_settings.keeponlyLast", "update", 53, 26, "warning", "session history shortened"),
    ("history_settings", "history_settings.keeponlyLast", "update", 26, 53, "info", "a setting"),
    ("history_settings", "history_settings.keepAllsessions", "update", True, False, "warning", "no longer kept"),
    ("retention_exclusion_settings", "retention_exclusion_settings.contacts", "update", True, False, "critical",
     "retention now removes contacts items"),
    ("organization_retention_exclusions", 'organization_retention_exclusions["contoso.onmicrosoft.com"].calendar',
     "update", True, False, "critical", "retention now removes calendar items"),
    ("folder_exclusion_settings", "folder_exclusion_settings.deletedItems", "update", False, True, "warning",
     "the deletedItems folder is no longer backed up"),
    ("organization_backup_options", 'organization_backup_options["contoso.onmicrosoft.com"].sharePointBackupMode',
     "update", "All", "Latest", "warning", "SharePoint versions"),
    ("internet_proxy_settings", "internet_proxy_settings.port", "update", 3128, 8080, "info", "a setting"),
    ("audit_items", 'audit_items["contoso.onmicrosoft.com"].user["ceo@contoso.com"]', "delete", "CEO", None,
     "warning", "audit item removed"),
    ("audit_items", 'audit_items["contoso.onmicrosoft.com"].user["ceo@contoso.com"]', "create", None, "CEO",
     "info", "audit item added"),
])
def test_severity_of_registered_kinds(kind: str, address: str, action: str, before: Any, after: Any, level: str,
                                      reason: str) -> None:
    found = rate(_change(kind, address, action, before, after))
    assert found.level == level and reason in found.reason, found


@dataclass
class _Collection:
    """A named collection as the registry will hold it (no rating of its own: the default applies)."""

    name: str
    requires: tuple[str, ...] = ()

    def derive(self, basis: Any, address: Any, action: str, after: Any) -> Any:
        raise AssertionError("a stand-in is rated, never planned")

    def writes(self, basis: Any, changes: list[Any]) -> list[Any]:
        return []


@pytest.mark.parametrize(("kind", "address", "action", "before", "after", "level", "reason"), [
    ("backup_repositories", 'backup_repositories["Repo EU"].yearlyRetentionPeriod', "update", "Years3", "Year1",
     "critical", "retention period shortened"),
    ("backup_repositories", 'backup_repositories["Repo EU"].yearlyRetentionPeriod', "update", "Year1", "Keep",
     "info", "a setting"),
    ("backup_repositories", 'backup_repositories["Repo EU"].dailyRetentionPeriod', "update", 30, 7, "critical",
     "retention period shortened"),
    ("backup_repositories", 'backup_repositories["Archive S3"].objectStorageEncryptionEnabled', "update", True,
     False, "critical", "encryption removed"),
    ("backup_repositories", 'backup_repositories["Archive S3"].objectStorage.enableImmutability', "update", True,
     False, "critical", "immutability removed"),
    ("backup_repositories", 'backup_repositories["Archive S3"]', "delete", {}, None, "warning", "removed"),
    ("backup_jobs", 'backup_jobs["Contoso mail"].repository', "update", "Repo EU", "Archive S3", "warning",
     "the next run is a full backup"),
    ("restore_operator_roles", 'restore_operator_roles["Helpdesk EU"].roleType', "update", "SpecificObjects",
     "EntireOrganization", "critical", "scope widened"),
    ("restore_operator_roles", 'restore_operator_roles["Helpdesk EU"].selectedItems.group["Sales"]', "create",
     None, "Sales", "critical", "scope widened"),
    ("restore_operator_roles", 'restore_operator_roles["Helpdesk EU"].excludedItems.user["ceo@contoso.com"]',
     "delete", "CEO", None, "critical", "scope widened"),
])
def test_severity_of_collections_by_default(kind: str, address: str, action: str, before: Any, after: Any,
                                            level: str, reason: str) -> None:
    with _unless_registered(kind):
        found = rate(_change(kind, address, action, before, after))
    assert found.level == level and reason in found.reason, found


def test_an_object_moved_between_jobs_is_a_warning() -> None:
    out = _change("backup_jobs", 'backup_jobs["A"].selectedItems.user["ceo@contoso.com"]', "delete", "CEO", None,
                  "c1")
    into = _change("backup_jobs", 'backup_jobs["B"].selectedItems.user["CEO@contoso.com"]', "create", None, "CEO",
                   "c2")
    alone = _change("backup_jobs", 'backup_jobs["B"].selectedItems.user["cfo@contoso.com"]', "create", None, "CFO",
                    "c3")
    with _unless_registered("backup_jobs"):
        rated = rate_all([out, into, alone])
    assert rated["c1"].level == rated["c2"].level == "warning" and "full backup" in rated["c2"].reason
    assert rated["c3"].level == "info"


# -- builtin:recommended -----------------------------------------------------------------------------------------

COMPLIANT: dict[str, dict[str, Any]] = {
    "recommended-audit-notifications-on": {"audit_email_settings": {"enableNotification": True}},
    "recommended-audit-mail-over-tls": {"audit_email_settings": {"useSSL": True}},
    "recommended-job-failure-notifications-on": {"job_email_settings": {"enableNotification": True,
                                                                        "notifyOnFailure": True}},
    "recommended-job-mail-over-tls": {"job_email_settings": {"useSSL": True}},
    "recommended-session-history-kept": {"history_settings": {"keepAllsessions": False, "keeponlyLast": 53}},
    "recommended-update-checks-on": {"update_settings": {"enableCheckForUpdates": True}},
    "recommended-object-storage-encrypted": {"backup_repositories": {
        "Archive S3": {"objectStorage": {"s3Folder": "eu"}, "objectStorageEncryptionEnabled": True},
        "Repo EU": {"path": "D:\\Backups"}}},
    "recommended-job-has-organization": {"backup_jobs": {"Mail": {"organization": "contoso.onmicrosoft.com"}}},
    "recommended-role-has-organization": {"restore_operator_roles": {"Helpdesk": {
        "organization": "contoso.onmicrosoft.com"}}},
    "recommended-job-enabled": {"backup_jobs": {"Mail": {"isEnabled": True}}},
}
VIOLATING: dict[str, dict[str, Any]] = {
    "recommended-audit-notifications-on": {"audit_email_settings": {"enableNotification": False}},
    "recommended-audit-mail-over-tls": {"audit_email_settings": {"useSSL": False}},
    "recommended-job-failure-notifications-on": {"job_email_settings": {"enableNotification": True,
                                                                        "notifyOnFailure": False}},
    "recommended-job-mail-over-tls": {"job_email_settings": {"useSSL": False}},
    "recommended-session-history-kept": {"history_settings": {"keepAllsessions": False, "keeponlyLast": 4}},
    "recommended-update-checks-on": {"update_settings": {"enableCheckForUpdates": False}},
    "recommended-object-storage-encrypted": {"backup_repositories": {
        "Archive S3": {"objectStorage": {"s3Folder": "eu"}, "objectStorageEncryptionEnabled": False}}},
    "recommended-job-has-organization": {"backup_jobs": {"Mail": {"repository": "Repo EU"}}},
    "recommended-role-has-organization": {"restore_operator_roles": {"Helpdesk": {"roleType": "SpecificObjects"}}},
    "recommended-job-enabled": {"backup_jobs": {"Mail": {"isEnabled": False}}},
}
_FUTURE = ("backup_repositories", "backup_jobs", "restore_operator_roles")


def _project(tmp_path: Path) -> Project:
    return Project(root=tmp_path, templates=(), environments={}, policies=("builtin:recommended",))


def _unless_registered(name: str) -> Any:
    """A stand-in for collection ``name`` while the registry has none of that name (the real kind once it does)."""
    from contextlib import nullcontext

    from vboplan.kinds.registry import KINDS

    return nullcontext() if name in KINDS else registered(_Collection(name))  # type: ignore[arg-type]


def _collections() -> Any:
    from contextlib import ExitStack

    from vboplan.kinds.registry import KINDS

    stack = ExitStack()
    for name in _FUTURE:
        if name not in KINDS:
            stack.enter_context(registered(_Collection(name)))  # type: ignore[arg-type]
    return stack


def test_every_builtin_rule_has_a_case_and_a_source(tmp_path: Path) -> None:
    with _collections():
        rules = load_policies(_project(tmp_path)).rules
    assert {r.id for r in rules} == set(COMPLIANT) == set(VIOLATING)
    for rule in rules:
        assert "https://" in rule.description and ("helpcenter.veeam.com" in rule.description
                                                   or "bp.veeam.com" in rule.description), rule.id


def test_builtin_rules_for_kinds_not_yet_managed_are_skipped(tmp_path: Path) -> None:
    from vboplan.kinds.registry import KINDS

    rules = {r.id for r in load_policies(_project(tmp_path)).rules}
    for rule_id, desired in COMPLIANT.items():
        kind = next(iter(desired))
        assert (rule_id in rules) == (kind in KINDS), rule_id


@pytest.mark.parametrize("rule_id", sorted(COMPLIANT))
def test_builtin_rule_on_a_compliant_and_a_violating_project(tmp_path: Path, rule_id: str) -> None:
    env = Environment(name="dev", server="emulator:dev")
    with _collections():
        policies = load_policies(_project(tmp_path))
        policies.rules = [r for r in policies.rules if r.id == rule_id]
        good = evaluate(policies, env, COMPLIANT[rule_id], None, None)
        bad = evaluate(policies, env, VIOLATING[rule_id], None, None)
    assert good.verdicts == [], [v.record() for v in good.verdicts]
    assert [v.rule for v in bad.verdicts] == [rule_id]
    assert bad.verdicts[0].objects and not bad.verdicts[0].notes
