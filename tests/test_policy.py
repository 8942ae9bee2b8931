"""Policies through the CLI against the emulator: each level, label scoping, extra approvers with real keys,
exceptions, verdicts in the signed plan, `vboplan check` live and offline, and rule-file mistakes."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from conftest import CONFIG, ProjectDir, assert_one_clean_error, signer_line

from vboplan.planning.plan import Plan, plan_digest

LABELLED = CONFIG.replace("    var_files: [environments/common.yaml, environments/dev.yaml]\n",
                          "    var_files: [environments/common.yaml, environments/dev.yaml]\n    labels: {tier: test}\n") \
                 .replace("    var_files: [environments/common.yaml, environments/prod.yaml]\n",
                          "    var_files: [environments/common.yaml, environments/prod.yaml]\n    labels: {tier: prod}\n")


def _rules(project: ProjectDir, text: str, extra: str = "") -> None:
    project.write("vboplan.yaml", f"policies: [policies/*.yaml{extra}]\n" + LABELLED)
    project.write("policies/team.yaml", text)


def _plan(project: ProjectDir, env: str = "dev", *extra: str) -> tuple[object, Path]:
    path = project.root / "plans" / f"{env}.json"
    return project.run("plan", "--env", env, "--out", str(path), *extra), path


def _doc(path: Path) -> dict:
    return json.loads(path.read_text())


SMTP_RULE = """\
rules:
  - id: smtp-port-25
    level: {level}
    resource: audit_email_settings
    expr: desired.port == 25
    message: audit mail goes through port 25
"""


@pytest.mark.parametrize("level", ["advisory", "warn", "block"])
def test_each_level_in_plan_and_apply(project: ProjectDir, level: str) -> None:
    _rules(project, SMTP_RULE.format(level=level))
    result, path = _plan(project)
    words = {"advisory": "[advisory]", "warn": "[warning]", "block": "[BLOCKED]"}
    assert f"{words[level]} smtp-port-25: audit mail goes through port 25" in result.stdout
    assert "objects: audit_email_settings" in result.stdout
    assert path.exists()  # written whatever the verdict
    verdicts = _doc(path)["verdicts"]
    assert [(v["rule"], v["level"], v["objects"]) for v in verdicts] == [("smtp-port-25", level,
                                                                          ["audit_email_settings"])]
    port_change = next(c["id"] for c in _doc(path)["changes"] if c["address"] == "audit_email_settings.port")
    assert port_change in verdicts[0]["changes"]
    applied = project.run("apply", str(path))
    if level == "block":
        assert result.exit_code == 1
        assert_one_clean_error(applied, "refused by policy", "block rule smtp-port-25", "policies/team.yaml:2")
        assert project.server("dev")["audit_email_settings"]["port"] == 25
    else:
        assert result.exit_code == 0, result.output
        assert applied.exit_code == 0, applied.output
        assert project.server("dev")["audit_email_settings"]["port"] == 587


def test_a_rule_that_holds_gives_no_verdict(project: ProjectDir) -> None:
    _rules(project, SMTP_RULE.format(level="block").replace("desired.port == 25", "desired.port == 587"))
    result, path = _plan(project)
    assert result.exit_code == 0 and "Policy verdicts" not in result.stdout
    assert _doc(path)["verdicts"] == []


def test_label_scoping(project: ProjectDir) -> None:
    _rules(project, SMTP_RULE.format(level="block") + "    environments: {label: {tier: prod}}\n")
    dev, _ = _plan(project, "dev")
    assert dev.exit_code == 0 and "smtp-port-25" not in dev.stdout
    prod, path = _plan(project, "prod")
    assert prod.exit_code == 1 and "[BLOCKED] smtp-port-25" in prod.stdout
    names = SMTP_RULE.format(level="block") + "    environments: [dev]\n"
    _rules(project, names)
    assert _plan(project, "dev")[0].exit_code == 1
    assert _plan(project, "prod")[0].exit_code == 0


def test_severity_rules_and_critical_first(project: ProjectDir) -> None:
    project.write("templates/jobs.yaml.j2", "job_email_settings:\n  enableNotification: true\n"
                                            "  notifyOnFailure: false\n")
    project.write("templates/history.yaml.j2", "history_settings: {keeponlyLast: 4}\n")
    project.write("templates/audit.yaml.j2", "audit_email_settings: {port: 587}\n")
    _rules(project, """\
rules:
  - id: no-warnings
    level: warn
    resource: job_email_settings
    expr: change.severity == "info"
    message: job mail changes must be harmless
""")
    result, path = _plan(project)
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith("c") and "update" in line]
    assert [r[3] for r in rows] == ["warning", "warning", "info"], result.stdout  # warnings before info
    document = _doc(path)
    by_address = {c["address"]: c for c in document["changes"]}
    assert by_address["job_email_settings.notifyOnFailure"]["severity"] == "warning"
    assert by_address["history_settings.keeponlyLast"]["severity_reason"] == "session history shortened (53 -> 4)"
    verdict = document["verdicts"][0]
    assert verdict["changes"] == [by_address["job_email_settings.notifyOnFailure"]["id"]]


def test_severity_edited_in_the_file_is_refused(project: ProjectDir) -> None:
    project.write("templates/jobs.yaml.j2", "job_email_settings: {notifyOnFailure: false}\n")
    result, path = _plan(project)
    document = _doc(path)
    row = next(c for c in document["changes"] if c["address"] == "job_email_settings.notifyOnFailure")
    assert row["severity"] == "warning"
    row["severity"] = "info"
    document["checksum"] = plan_digest(document)
    path.write_text(json.dumps(document))
    assert_one_clean_error(project.run("show", str(path)), "recorded as info but its kind rates it warning")


APPROVE_RULE = """\
rules:
  - id: audit-mail-needs-security
    level: approve
    resource: audit_email_settings
    expr: change.address.endsWith(".port")
    approvers: {required: 1, allowed_signers: approvers/security.allowed_signers}
    message: the security officer approves where audit mail goes
"""


def test_approve_verdict_needs_the_rules_approvers(project: ProjectDir) -> None:
    project.write("approvers/security.allowed_signers",
                  signer_line(project.keys, "dave") + "\n" + signer_line(project.keys, "ann") + "\n")
    _rules(project, APPROVE_RULE)
    result, path = _plan(project, "prod")
    assert result.exit_code == 0, result.output
    assert "[needs approvers] audit-mail-needs-security" in result.stdout
    assert "needs 1 approval(s) from approvers/security.allowed_signers" in result.stdout
    port = next(c["id"] for c in _doc(path)["changes"] if c["address"] == "audit_email_settings.port")
    assert _doc(path)["verdicts"][0]["changes"] == [port]
    for name in ("alice", "bob"):
        approved = project.run("approve", str(path), "--key", str(project.keys[name]))
        assert approved.exit_code == 0, approved.output
    assert_one_clean_error(project.run("apply", str(path)), "refused by policy",
                           f"{port} (audit_email_settings.port): approve rule audit-mail-needs-security",
                           "needs 1 distinct approvals from approvers/security.allowed_signers, has 0")
    # ann wrote the plan: she is a listed security approver, and still never counts.
    assert_one_clean_error(project.run("approve", str(path), "--key", str(project.keys["ann"])),
                           "the author's own approval never counts")
    # mallory is in no list at all.
    assert_one_clean_error(project.run("approve", str(path), "--key", str(project.keys["mallory"])),
                           "would not count")
    signed = project.run("approve", str(path), "--key", str(project.keys["dave"]), "--change", port)
    assert signed.exit_code == 0, signed.output
    applied = project.run("apply", str(path))
    assert applied.exit_code == 0, applied.output
    assert project.server("prod")["audit_email_settings"]["port"] == 587


def test_environment_approvers_do_not_stand_in_for_the_rules(project: ProjectDir) -> None:
    project.write("approvers/security.allowed_signers", signer_line(project.keys, "dave") + "\n")
    _rules(project, APPROVE_RULE)
    _, path = _plan(project, "prod")
    for name in ("alice", "bob", "carol"):
        assert project.run("approve", str(path), "--key", str(project.keys[name])).exit_code == 0
    refused = project.run("apply", str(path))
    assert refused.exit_code == 1 and "approve rule audit-mail-needs-security" in refused.stderr
    # dave alone does not make the environment's two approvals either.
    other = project.root / "plans" / "other.json"
    assert project.run("plan", "--env", "prod", "--out", str(other)).exit_code == 0
    assert project.run("approve", str(other), "--key", str(project.keys["dave"])).exit_code == 0
    refused = project.run("apply", str(other))
    assert refused.exit_code == 1 and "no change has 2 distinct approvals" in refused.stderr, refused.stderr
    assert project.server("prod")["audit_email_settings"]["port"] == 25


def _exception(days: int) -> str:
    day = (dt.datetime.now(dt.timezone.utc).date() + dt.timedelta(days=days)).isoformat()
    return (f"exceptions:\n  - {{rule: smtp-port-25, environments: [dev], owner: alice@contoso.com, "
            f"reason: CHG-1234, expires: {day}}}\n")


def test_exception_before_and_after_expiry(project: ProjectDir) -> None:
    _rules(project, SMTP_RULE.format(level="block") + _exception(-1))
    expired, _ = _plan(project)
    assert expired.exit_code == 1 and "[BLOCKED] smtp-port-25" in expired.stdout
    _rules(project, SMTP_RULE.format(level="block") + _exception(0))
    waived, path = _plan(project)
    assert waived.exit_code == 0, waived.output
    today = dt.datetime.now(dt.timezone.utc).date().isoformat()
    assert "[BLOCKED, waived] smtp-port-25" in waived.stdout
    assert f"exception by alice@contoso.com (CHG-1234), expires {today}" in waived.stdout
    document = _doc(path)
    assert document["exceptions"][0]["expires"] == today and document["exceptions"][0]["owner"] == \
        "alice@contoso.com"
    # The exception runs out between planning and applying: apply evaluates again and refuses.
    from vboplan.errors import PlanError
    from vboplan.policy.enforce import enforce
    from vboplan.project.config import load_project

    loaded = load_project(project.root)
    tomorrow = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)
    with pytest.raises(PlanError, match="the exception owned by alice@contoso.com .* no longer counts"):
        enforce(loaded, loaded.environment("dev"), Plan.load(path), tomorrow)
    assert project.run("apply", str(path)).exit_code == 0


def test_verdict_edited_after_signing(project: ProjectDir) -> None:
    _rules(project, SMTP_RULE.format(level="warn"))
    _, path = _plan(project, "prod")
    for name in ("alice", "bob"):
        assert project.run("approve", str(path), "--key", str(project.keys[name])).exit_code == 0
    document = _doc(path)
    document["verdicts"] = []
    path.write_text(json.dumps(document))
    assert_one_clean_error(project.run("apply", str(path)), "altered after planning")
    document["checksum"] = plan_digest(document)
    path.write_text(json.dumps(document))
    refused = project.run("apply", str(path))
    # The author's signature and both approvals were made over the old digest: none of them holds any more.
    assert refused.exit_code == 1 and ("edited after it was approved" in refused.stderr
                                       or "author signature does not verify" in refused.stderr), refused.stderr
    assert project.server("prod")["audit_email_settings"]["port"] == 25


def test_verdict_dropped_by_the_author_before_anyone_signs(project: ProjectDir,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VBOPLAN_AUTHOR_KEY", raising=False)  # dev needs no signatures: the file is all there is
    _rules(project, SMTP_RULE.format(level="block"))
    _, path = _plan(project)
    document = _doc(path)
    document["verdicts"] = []
    document["checksum"] = plan_digest(document)
    path.write_text(json.dumps(document))
    assert "Policy verdicts" not in project.run("show", str(path)).stdout
    refused = project.run("apply", str(path))
    assert refused.exit_code == 1
    assert "records other policy verdicts than its rules give now" in refused.stderr
    assert "rule smtp-port-25: not in the plan, but it gives a block verdict now" in refused.stderr
    assert project.server("dev")["audit_email_settings"]["port"] == 25


LIVE_RULE = """\
rules:
  - id: audit-on-server
    level: block
    resource: audit_email_settings
    expr: live == null || live.enableNotification == true
    message: the server sends audit mail
  - id: port-587
    level: warn
    resource: audit_email_settings
    expr: desired.port == 587
    message: submission port
  - id: no-critical
    level: block
    resource: audit_email_settings
    expr: change.severity != "critical"
    message: no critical change
"""


def test_check_live_and_offline(project: ProjectDir, monkeypatch: pytest.MonkeyPatch) -> None:
    _rules(project, LIVE_RULE)
    live = project.run("check", "--env", "dev")
    assert live.exit_code == 1, live.output
    assert "[BLOCKED] audit-on-server: the server sends audit mail" in live.stdout
    assert "Skipped (they judge planned changes): no-critical" in live.stdout
    monkeypatch.delenv("VBO_TEST_PASSWORD")
    monkeypatch.delenv("SMTP_PASSWORD")
    offline = project.run("check", "--all", "--offline", "--format", "json")
    assert offline.exit_code == 0, offline.output
    document = json.loads(offline.stdout)
    assert [e["environment"] for e in document["environments"]] == ["dev", "prod"]
    assert all(e["verdicts"] == [] and e["offline"] for e in document["environments"])
    assert document["environments"][0]["skipped_rules"] == ["no-critical"]
    assert project.run("check", "--env", "dev").exit_code == 1  # live needs the credentials
    labelled = project.run("check", "--label", "tier=prod", "--offline", "--format", "markdown")
    assert labelled.exit_code == 0 and "### Environment prod" in labelled.stdout and "dev" not in labelled.stdout
    page = project.run("check", "--env", "dev", "--offline", "--format", "html")
    assert page.stdout.startswith("<!DOCTYPE html>") and "Every rule holds." in page.stdout


@pytest.mark.parametrize(("text", "fragments"), [
    (SMTP_RULE.format(level="block").replace("desired.port == 25", "desired.port == "),
     ["policies/team.yaml:5 (expr column", "rule 'smtp-port-25'", "does not parse"]),
    (SMTP_RULE.format(level="block").replace("audit_email_settings", "audit_mail_settings"),
     ["policies/team.yaml:4", "unknown resource kind 'audit_mail_settings'", "did you mean 'audit_email_settings'"]),
    (SMTP_RULE.format(level="block").replace("desired.port", "desired.prot"),
     ["policies/team.yaml:5 (expr column 9)", "rule 'smtp-port-25'", "audit_email_settings has no field 'prot'",
      "did you mean 'port'"]),
    (SMTP_RULE.format(level="stop"), ["policies/team.yaml:3", "rule 'smtp-port-25'", "unknown level 'stop'"]),
    (SMTP_RULE.format(level="warn").replace("desired.port == 25", "change.sevrity == 'info'"),
     ["policies/team.yaml:5 (expr column 8)", "change has no field 'sevrity'", "did you mean 'severity'"]),
    (SMTP_RULE.format(level="warn").replace("desired.port == 25", "desried.port == 25"),
     ["policies/team.yaml:5 (expr column 1)", "unknown name 'desried'"]),
    (SMTP_RULE.format(level="warn") + "exceptions:\n  - {rule: smtp-port-25, environments: [dev], owner: a, "
                                      "reason: b}\n", ["policies/team.yaml:8", "'expires' must be a date"]),
], ids=["broken-expression", "unknown-kind", "unknown-field", "unknown-level", "unknown-change-field",
        "unknown-variable", "exception-without-expiry"])
def test_rule_file_mistakes_are_one_error(project: ProjectDir, text: str, fragments: list[str]) -> None:
    _rules(project, text)
    for command in (["validate", "--env", "dev"], ["plan", "--env", "dev"], ["check", "--env", "dev", "--offline"]):
        assert_one_clean_error(project.run(*command), *fragments)


def test_markdown_and_html_show_severity_and_verdicts(project: ProjectDir) -> None:
    project.write("templates/jobs.yaml.j2", "job_email_settings: {notifyOnFailure: false}\n")
    _rules(project, SMTP_RULE.format(level="block"))
    _, path = _plan(project)
    markdown = project.run("show", str(path), "--format", "markdown").stdout
    assert "| id | action | severity | address | live | desired |" in markdown
    assert "| **blocked** | `smtp-port-25` | `audit mail goes through port 25` | `audit_email_settings` |" in markdown
    assert "**warning**: `job failure notifications turned off`" in markdown
    # the warning's resource comes before the info-only resource
    assert markdown.index("`job_email_settings`") < markdown.index("`audit_email_settings`: ")
    html = project.run("show", str(path), "--format", "html").stdout
    assert "<h3>Policy verdicts</h3>" in html and '<td class="severity warning"' in html
