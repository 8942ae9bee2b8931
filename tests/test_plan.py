"""vboplan plan, as an admin uses it: a small project, the CLI, the embedded emulator."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import SMTP_SECRET, ProjectDir, assert_no_secret
from filemodes import assert_private


def test_plan_lists_exactly_the_fields_that_differ_and_exits_2(project: ProjectDir) -> None:
    result = project.run("plan", "--env", "dev", "--detailed-exitcode")
    assert result.exit_code == 2, result.output
    out = result.stdout
    assert "Environment dev: emulator:dev (API v8)" in out
    # Seed: enableNotification false, smtpServer old.smtp.local, port 25; the rest unset (null).
    for field, live, desired in [("enableNotification", "false", "true"), ("smtpServer", "old.smtp.local",
                                                                             "smtp.dev.local"),
                                 ("port", "25", "587"), ("from", "null", "vbo.audit@dev.contoso.com")]:
        row = next(line for line in out.splitlines() if f"audit_email_settings.{field} " in line)
        assert live in row and desired in row, row
    assert "audit_email_settings.userPassword" in out and "(sensitive) will be set" in out
    # job settings already match except nothing: notifyOnFailure true and notifyOnSuccess false in the seed.
    assert "job_email_settings" not in out
    assert "Plan: 0 to create, 9 to update, 0 to replace, 0 to delete." in out
    assert_no_secret(result.output)


def test_plan_is_clean_once_the_server_matches(project: ProjectDir) -> None:
    applied = project.run("apply", "--env", "dev", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    again = project.run("plan", "--env", "dev", "--detailed-exitcode")
    assert again.exit_code == 0, again.output
    assert "No changes." in again.stdout
    assert_no_secret(applied.output + again.output)


def test_json_and_markdown_carry_the_same_changes(project: ProjectDir) -> None:
    document = json.loads(project.run("plan", "--env", "dev", "--format", "json").stdout)
    # One shape whatever the number of environments: a versioned list of environment plans.
    assert document["format_version"] == 2 and len(document["plans"]) == 1
    as_json = document["plans"][0]
    markdown = project.run("plan", "--env", "dev", "--format", "markdown").stdout
    table = project.run("plan", "--env", "dev").stdout
    assert as_json["format_version"] == 1
    assert as_json["environment"] == "dev" and as_json["server"] == "emulator:dev"
    assert len(as_json["checksum"]) == 64
    addresses = [c["address"] for c in as_json["changes"]]
    assert addresses and len(addresses) == len(set(addresses))
    for change in as_json["changes"]:
        assert f"`{change['address']}`" in markdown
        assert change["address"] in table
    md_rows = [line for line in markdown.splitlines() if line.startswith("| c")]
    assert len(md_rows) == len(addresses)
    password = next(c for c in as_json["changes"] if c["address"].endswith("userPassword"))
    assert password["sensitive"] is True and password["after"] is None
    assert SMTP_SECRET not in json.dumps(as_json) + markdown + table


def test_two_environments_plan_their_own_values(project: ProjectDir) -> None:
    result = project.run("plan", "--env", "dev", "--env", "prod", "--format", "json")
    assert result.exit_code == 0, result.output
    plans = {p["environment"]: p for p in json.loads(result.stdout)["plans"]}
    after = {env: {c["address"]: c["after"] for c in plan["changes"]} for env, plan in plans.items()}
    assert after["dev"]["audit_email_settings.smtpServer"] == "smtp.dev.local"
    assert after["prod"]["audit_email_settings.smtpServer"] == "smtp.office365.com"
    assert after["prod"]["job_email_settings.notifyOnSuccess"] is True
    assert "job_email_settings.notifyOnSuccess" not in after["dev"]
    assert plans["prod"]["api_version"] == "v7"


def test_target_limits_the_plan(project: ProjectDir) -> None:
    result = project.run("plan", "--env", "dev", "--format", "json", "--target", "audit_email_settings.port")
    changes = json.loads(result.stdout)["plans"][0]["changes"]
    assert [c["address"] for c in changes] == ["audit_email_settings.port"]


def test_string_booleans_and_numbers_are_normalised(project: ProjectDir) -> None:
    plan = json.loads(project.run("plan", "--env", "dev", "--format", "json").stdout)["plans"][0]
    after = {c["address"]: c["after"] for c in plan["changes"]}
    assert after["audit_email_settings.enableNotification"] is True  # "true" in the template
    assert after["audit_email_settings.port"] == 587  # "587" in the template


def test_plan_out_and_show(project: ProjectDir) -> None:
    out = project.root / "plans" / "dev.json"
    result = project.run("plan", "--env", "dev", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert_private(out)
    assert SMTP_SECRET not in out.read_text()
    shown = project.run("show", str(out))
    assert shown.exit_code == 0
    assert "audit_email_settings.port" in shown.stdout
    assert result.stdout.strip() in shown.stdout  # the same table, then who wrote it and when


def test_validate_needs_no_server(project: ProjectDir) -> None:
    # A server that cannot exist: validate never contacts it.
    config = (project.root / "vboplan.yaml").read_text().replace("emulator:dev", "https://192.0.2.1:4443")
    project.write("vboplan.yaml", config)
    result = project.run("validate", "--env", "dev")
    assert result.exit_code == 0, result.output
    assert "dev: ok" in result.stdout


def _plan_on_a_terminal(project: ProjectDir, *options: str, no_color_env: bool = False) -> str:
    """What ``vboplan plan`` prints when its output is a terminal (a pseudo-terminal), as a user sees it."""
    import os
    import pty
    import subprocess
    import sys

    from conftest import API_SECRET, SMTP_SECRET

    env = {**os.environ, "VBO_TEST_PASSWORD": API_SECRET, "SMTP_PASSWORD": SMTP_SECRET}
    env.pop("NO_COLOR", None)
    if no_color_env:
        env["NO_COLOR"] = "1"
    leader, follower = pty.openpty()
    with subprocess.Popen([sys.executable, "-c", "from vboplan.entry import main; main()", *options,
                           "-C", str(project.root), "plan", "--env", "dev"],
                          stdout=follower, stderr=subprocess.DEVNULL, env=env) as process:
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closes when the process ends
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert process.wait(timeout=60) == 0
    os.close(leader)
    return b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_colour_on_a_terminal_and_never_with_no_color(project: ProjectDir) -> None:
    coloured = _plan_on_a_terminal(project)
    assert "\x1b[" in coloured and "audit_email_settings.smtpServer" in coloured
    plain = _plan_on_a_terminal(project, "--no-color")
    assert "\x1b[" not in plain and "audit_email_settings.smtpServer" in plain
    by_env = _plan_on_a_terminal(project, no_color_env=True)
    assert "\x1b[" not in by_env and "audit_email_settings.smtpServer" in by_env


def test_changed_outside_vboplan_is_reported(project: ProjectDir) -> None:
    assert project.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
    project.api("dev").put("/v8/AuditEmailSettings", json={"port": 2525})
    result = project.run("plan", "--env", "dev")
    assert "Changed outside vboplan since the last apply:" in result.stdout
    assert "audit_email_settings.port: 587 -> 2525" in result.stdout


def test_target_matching_nothing_is_an_error(project: ProjectDir) -> None:
    from conftest import assert_one_clean_error

    assert_one_clean_error(project.run("plan", "--env", "dev", "--target", "audit_emial_settings"),
                           "--target audit_emial_settings matches nothing", "'dev'")
    # A managed field that needs no change is a valid target with no changes.
    result = project.run("plan", "--env", "dev", "--target", "job_email_settings.notifyOnFailure",
                         "--detailed-exitcode")
    assert result.exit_code == 0
    assert "No changes: --target job_email_settings.notifyOnFailure matched no change" in result.stdout
    assert "The server matches the templates" not in result.stdout


def test_usage_errors_exit_1_not_2(project: ProjectDir) -> None:
    for args in (["plan", "--env", "dev", "--detailed-exitcode", "--bogus"],
                 ["plan", "--env", "dev", "--format", "yml"], ["plna"]):
        assert project.run(*args).exit_code == 1, args


def test_validate_without_secrets(project: ProjectDir, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("SMTP_PASSWORD")
    result = project.run("validate", "--all")
    assert result.exit_code == 0, result.output
    assert "dev: ok" in result.stdout and "prod: ok" in result.stdout


def test_a_large_plan_file_is_written_flat_and_still_loads(tmp_path: Path) -> None:
    """Past a few hundred kilobytes the plan file is laid out a line per change and per resource (json encodes
    compact JSON in C but indents in Python); its checksum still holds when it is read back."""
    from dataclasses import replace

    from vboplan.kinds.base import Basis
    from vboplan.kinds.registry import KINDS
    from vboplan.planning.changes import Address
    from vboplan.planning.plan import Plan, change_ids

    items = [{"id": f"item{i}", "type": "User", "principalId": f"p{i}", "name": f"user{i:05d}@contoso.com",
              "displayName": f"Usér {i}"} for i in range(5000)]
    live = {"audit_items": {"organizations": {"contoso": {"id": "o1", "items": items}}}}
    scope = {"audit_items": {"contoso": {"users": [], "groups": []}}}
    # Three removals, as the kind derives them from their addresses (what loading the file checks).
    addresses = [Address.parse(f'audit_items["contoso"].user["user{i:05d}@contoso.com"]') for i in range(3)]
    ids = change_ids(addresses)
    basis = Basis("v8", live["audit_items"], scope["audit_items"])
    changes = [replace(KINDS["audit_items"].derive(basis, a, "delete", None), id=ids[str(a)]) for a in addresses]
    plan = Plan(environment="dev", server="emulator:dev", api_version="v8", changes=changes, live=live, scope=scope)
    plan.checksum = plan.compute_checksum()
    path = tmp_path / "plan.json"
    plan.save(path)
    text = path.read_text(encoding="utf-8")
    assert len(text) > 256 * 1024
    assert len(text.splitlines()) < 40  # not indented throughout
    loaded = Plan.load(path)
    assert loaded.live == plan.live and loaded.checksum == plan.checksum
    assert [c.address for c in loaded.changes] == [c.address for c in changes]
    # A small plan stays indented for people to read.
    small_live = {"audit_items": {"organizations": {"contoso": {"id": "o1", "items": items[:3]}}}}
    small = Plan(environment="dev", server="emulator:dev", api_version="v8", changes=changes, live=small_live,
                 scope=scope)
    small.checksum = small.compute_checksum()
    small.save(path)
    assert f'\n  "changes": [\n    {{\n      "id": "{changes[0].id}",\n' in path.read_text(encoding="utf-8")
    assert Plan.load(path).checksum == small.checksum


def test_a_plans_change_records_are_encoded_once_for_its_checksum_and_its_file(project: ProjectDir,
                                                                                tmp_path: Path) -> None:
    """The checksum (computed when planning and again after the policy verdicts) and the saved file reuse one
    encoding of the change records; a change or a digest replaced makes new records, and the file still verifies."""
    from dataclasses import replace

    from vboplan.planning.plan import Plan

    saved = tmp_path / "plan.json"
    assert project.run("plan", "--env", "dev", "--out", str(saved)).exit_code == 0
    plan = Plan.load(saved)
    records = plan.change_records()
    assert records and plan.change_records() is records
    assert plan.compute_checksum() == plan.checksum
    plan.changes = [replace(plan.changes[0], id="cother"), *plan.changes[1:]]
    assert plan.change_records() is not records and plan.change_records()[0]["id"] == "cother"
    plan.digests = {**plan.digests, "cother": {"salt": "s", "hash": "h"}}
    assert plan.change_records()[0]["id"] == "cother" and plan.compute_checksum() != plan.checksum


def test_a_derived_change_agrees_only_when_its_values_write_the_same_json() -> None:
    """agree() holds a derived change to the diff's: the same JSON text of each value, so True is not 1 nor 1.0,
    nor -0.0 0.0, while key order and tuple-or-list do not matter (a quicker path must say what the texts say)."""
    from vboplan.planning.changes import Address, Update
    from vboplan.planning.plan import agree

    def update(after: object, detail: dict | None = None) -> Update:
        return Update("audit_email_settings", Address.parse("audit_email_settings.port"), None, after,
                      detail=detail or {})

    base = {"port": 587, "useSSL": True, "ratio": 1.5, "to": ["a", "b"]}
    assert agree(update(base), update(json.loads(json.dumps(base))))
    assert agree(update(base), update(dict(reversed(list(base.items())))))
    assert agree(update({"to": ("a", "b")}), update({"to": ["a", "b"]}))
    for other in ({**base, "useSSL": 1}, {**base, "port": 587.0}, {**base, "ratio": 1.5000001}, {**base, "to": ["a"]}):
        assert not agree(update(base), update(other))
    assert not agree(update(-0.0), update(0.0)) and not agree(update(True), update(1))
    assert not agree(update(1, {"reason": "x"}), update(1, {"reason": "y"}))
    assert agree(update(1, {"n": [1, {"k": None}]}), update(1, {"n": [1, {"k": None}]}))
