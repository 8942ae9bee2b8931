"""Everyday habits of Terraform users, through the CLI against the emulator served over HTTP: --var, --exclude,
--lock-timeout, state list / state rm, and the rough edges a new user hit."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml
from conftest import API_SECRET, CONFIG, SEED, ProjectDir, Result, assert_one_clean_error

from vboplan.emulator import RunningServer, start

# The project's configuration, its dev environment served by the emulator over HTTP at {url}.
HTTP_CONFIG = CONFIG.replace("server: emulator:dev", "server: {url}").replace("{required", "{{required").replace(
    "72h}", "72h}}")


@pytest.fixture
def served(project: ProjectDir) -> Iterator[RunningServer]:
    """The ``dev`` environment of the project, served by the emulator over plain HTTP on a free port."""
    with start(SEED) as running:
        project.write("vboplan.yaml", HTTP_CONFIG.format(url=running.url))
        yield running


def live(running: RunningServer) -> httpx.Client:
    http = httpx.Client(base_url=running.url)
    token = http.post("/v8/token", data={"grant_type": "password", "username": "admin",
                                           "password": API_SECRET}).json()["access_token"]
    http.headers["Authorization"] = f"Bearer {token}"
    return http


def one_error(result: Result, *fragments: str) -> None:
    """As assert_one_clean_error, beside the warning that dev is served over plain HTTP."""
    kept = "".join(line for line in result.stderr.splitlines(keepends=True) if "uses plain http" not in line)
    assert_one_clean_error(Result(result.exit_code, result.stdout, kept), *fragments)


def plan_json(project: ProjectDir, *args: str) -> dict[str, Any]:
    result = project.run("plan", "--env", "dev", "--format", "json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["plans"][0]


def addresses(document: dict[str, Any]) -> set[str]:
    return {c["address"] for c in document["changes"]}


# -- --var ---------------------------------------------------------------------------------------------------------

def test_var_sets_dotted_keys_over_every_var_file(project: ProjectDir, served: RunningServer) -> None:
    document = plan_json(project, "--var", "smtp.host=smtp.cli.local", "--var", "smtp.port=2525",
                         "--var", "notify_success=true")
    after = {c["address"]: c["after"] for c in document["changes"]}
    assert after["audit_email_settings.smtpServer"] == "smtp.cli.local"   # over environments/dev.yaml
    assert after["audit_email_settings.port"] == 2525                      # a YAML number, over common.yaml
    assert after["job_email_settings.notifyOnSuccess"] is True             # a YAML boolean
    assert document["variables"] == {"smtp.host": "smtp.cli.local", "smtp.port": 2525, "notify_success": True}
    # Other keys of the same mapping still come from the files.
    assert "audit_email_settings.from" in after and after["audit_email_settings.from"] == "vbo.audit@dev.contoso.com"


def test_var_values_are_recorded_and_apply_renders_with_them(project: ProjectDir, served: RunningServer) -> None:
    # The secret's name comes from a variable: apply must render it with the value the plan was made with.
    project.write("templates/audit.yaml.j2", (project.root / "templates/audit.yaml.j2").read_text().replace(
        'secret("SMTP_PASSWORD")', 'secret(smtp_secret)'))
    project.write("environments/common.yaml", "smtp:\n  port: 587\nnotify_success: false\nsmtp_secret: NOT_SET\n")
    plan = project.root / "dev.json"
    result = project.run("plan", "--env", "dev", "--var", "smtp_secret=SMTP_PASSWORD", "--var", "smtp.port=26",
                         "--out", str(plan))
    assert result.exit_code == 0, result.output
    assert "Variables set with --var: smtp_secret=SMTP_PASSWORD, smtp.port=26." in result.stdout
    assert "Variables set with --var" in project.run("show", str(plan)).stdout
    assert project.run("apply", str(plan), "--var", "x=1").exit_code == 1   # the plan's values, never others
    applied = project.run("apply", str(plan))
    assert applied.exit_code == 0, applied.output
    assert live(served).get("/v8/AuditEmailSettings").json()["port"] == 26
    # Editing the recorded values breaks the plan's checksum.
    data = json.loads(plan.read_text())
    data["variables"]["smtp.port"] = 27
    plan.write_text(json.dumps(data))
    assert "altered" in project.run("show", str(plan)).output


def test_bad_var_is_one_clear_error(project: ProjectDir, served: RunningServer) -> None:
    one_error(project.run("plan", "--env", "dev", "--var", "smtp.host"), "--var smtp.host",
                           "KEY=VALUE")
    one_error(project.run("plan", "--env", "dev", "--var", "smtp..host=x"), "not a variable name")
    # A value that looks like a list or a mapping stays text: the YAML plain scalar it is.
    document = plan_json(project, "--var", "domain=[a, b]", "--target", "audit_email_settings.from")
    assert document["changes"][0]["after"] == "vbo.audit@[a, b]"
    assert document["variables"] == {"domain": "[a, b]"}


# -- --exclude -----------------------------------------------------------------------------------------------------

def test_exclude_is_the_inverse_of_target(project: ProjectDir, served: RunningServer) -> None:
    project.write("environments/common.yaml", "smtp:\n  port: 587\nnotify_success: true\n")
    everything = addresses(plan_json(project))
    assert any(a.startswith("job_email_settings.") for a in everything)
    without = plan_json(project, "--exclude", "job_email_settings")
    assert addresses(without) == {a for a in everything if not a.startswith("job_email_settings.")}
    assert without["partial"] is True and without["excluded"] == ["job_email_settings"]
    one_field = plan_json(project, "--exclude", "audit_email_settings.port")
    assert addresses(one_field) == everything - {"audit_email_settings.port"}
    both = plan_json(project, "--target", "audit_email_settings", "--exclude", "audit_email_settings.port")
    assert addresses(both) == {a for a in everything if a.startswith("audit_email_settings.")} - {
        "audit_email_settings.port"}
    table = project.run("plan", "--env", "dev", "--exclude", "job_email_settings")
    assert "changes at or under job_email_settings are left out (--exclude)" in table.stdout


def test_exclude_typo_is_refused_with_a_suggestion(project: ProjectDir, served: RunningServer) -> None:
    one_error(project.run("plan", "--env", "dev", "--exclude", "job_emial_settings"),
                           "--exclude job_emial_settings matches nothing", "did you mean job_email_settings?")


def test_excluded_plan_applies_only_the_rest(project: ProjectDir, served: RunningServer) -> None:
    plan = project.root / "dev.json"
    assert project.run("plan", "--env", "dev", "--exclude", "audit_email_settings", "--out", str(plan)).exit_code == 0
    assert project.run("apply", str(plan)).exit_code == 0
    http = live(served)
    assert http.get("/v8/AuditEmailSettings").json()["smtpServer"] == "old.smtp.local"
    assert http.get("/v8/VboEmailSettings").json()["notifyOnSuccess"] is False


# -- rough edges of --target and --all -----------------------------------------------------------------------------

def test_target_typo_gets_a_did_you_mean(project: ProjectDir, served: RunningServer) -> None:
    one_error(project.run("plan", "--env", "dev", "--target", "audit_email_settings.smtpServr"),
                           "--target audit_email_settings.smtpServr matches nothing",
                           "did you mean audit_email_settings.smtpServer?")


def test_target_without_changes_says_so(project: ProjectDir, served: RunningServer) -> None:
    result = project.run("plan", "--env", "dev", "--target", "job_email_settings.notifyOnFailure")
    assert result.exit_code == 0
    assert "No changes: --target job_email_settings.notifyOnFailure matched no change" in result.stdout
    assert "matches the templates" not in result.stdout


def test_env_and_all_together_are_refused(project: ProjectDir) -> None:
    assert_one_clean_error(project.run("plan", "--env", "dev", "--all"), "either --all or --env dev")
    assert_one_clean_error(project.run("validate", "--env", "dev", "--all"), "either --all or --env dev")


# -- state list / state rm -----------------------------------------------------------------------------------------

def test_state_list_and_rm_forget_without_touching_the_server(project: ProjectDir, served: RunningServer) -> None:
    assert project.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
    listed = project.run("state", "list", "--env", "dev").stdout.splitlines()
    assert "audit_email_settings.smtpServer" in listed and "audit_email_settings.userPassword" in listed
    assert "job_email_settings.notifyOnSuccess" in listed
    assert project.run("state", "list", "--env", "dev", "job_email_settings").stdout.splitlines() == [
        a for a in listed if a.startswith("job_email_settings.")]
    before = live(served).get("/v8/AuditEmailSettings").json()

    # The server changes in the console; then the field is forgotten.
    live(served).put("/v8/AuditEmailSettings", json={"port": 2525})
    assert "audit_email_settings.port: 587 -> 2525" in project.run("plan", "--env", "dev").stdout
    result = project.run("state", "rm", "--env", "dev", "audit_email_settings.port",
                         "audit_email_settings.userPassword")
    assert result.exit_code == 0, result.output
    assert "Forgot audit_email_settings.port in the state of 'dev'" in result.stdout
    assert "the server was not changed" in result.stdout
    after = project.run("state", "list", "--env", "dev").stdout.splitlines()
    assert set(listed) - set(after) == {"audit_email_settings.port", "audit_email_settings.userPassword"}
    assert live(served).get("/v8/AuditEmailSettings").json() == {**before, "port": 2525}

    # The next plan has no record of them and says so: no drift for the port, the password "will be set".
    planned = project.run("plan", "--env", "dev")
    assert "audit_email_settings.port: 587 -> 2525" not in planned.stdout
    assert "audit_email_settings.port was forgotten with 'state rm' by ann" in planned.stderr
    assert "treats it as new" in planned.stderr
    changes = {c["address"]: c for c in plan_json(project)["changes"]}
    assert changes["audit_email_settings.userPassword"]["after"] is None
    assert set(changes) == {"audit_email_settings.port", "audit_email_settings.userPassword"}
    # An apply records them again, and the note goes.
    assert project.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
    assert "forgotten" not in project.run("plan", "--env", "dev").stderr


def test_state_rm_of_a_whole_kind_then_unmanaged(project: ProjectDir, served: RunningServer) -> None:
    assert project.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
    assert project.run("state", "rm", "--env", "dev", "job_email_settings").exit_code == 0
    assert not [a for a in project.run("state", "list", "--env", "dev").stdout.splitlines()
                if a.startswith("job_email_settings")]
    (project.root / "templates/jobs.yaml.j2").unlink()
    planned = project.run("plan", "--env", "dev")
    assert "job_email_settings was forgotten with 'state rm'" in planned.stderr
    assert "no template declares it: it is not managed" in planned.stderr


def test_state_rm_refuses_what_the_snapshot_does_not_hold(project: ProjectDir, served: RunningServer) -> None:
    one_error(project.run("state", "rm", "--env", "dev", "audit_email_settings"), "no state snapshot")
    assert project.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
    one_error(project.run("state", "rm", "--env", "dev", "audit_email_settings.smtpServr"),
                           "holds nothing at audit_email_settings.smtpServr",
                           "did you mean audit_email_settings.smtpServer?")
    one_error(project.run("state", "rm", "--env", "dev", "history_settings"),
                           "holds nothing at history_settings")


def test_state_rm_of_audit_items(project: ProjectDir, served: RunningServer) -> None:
    project.write("templates/audit_items.yaml.j2", """\
        audit_items:
          contoso.onmicrosoft.com:
            users: [ceo@contoso.com, cfo@contoso.com]
        """)
    assert project.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
    item = 'audit_items["contoso.onmicrosoft.com"].user["ceo@contoso.com"]'
    assert item in project.run("state", "list", "--env", "dev").stdout.splitlines()
    assert project.run("state", "rm", "--env", "dev", item).exit_code == 0
    listed = project.run("state", "list", "--env", "dev", "audit_items").stdout.splitlines()
    assert listed == ['audit_items["contoso.onmicrosoft.com"].user["cfo@contoso.com"]']
    assert project.run("state", "rm", "--env", "dev", 'audit_items["contoso.onmicrosoft.com"]').exit_code == 0
    assert project.run("state", "list", "--env", "dev", "audit_items").stdout == ""
    assert project.run("plan", "--env", "dev", "--detailed-exitcode").exit_code == 0  # the server still audits them


# -- --lock-timeout ------------------------------------------------------------------------------------------------

def _hold_lock(project: ProjectDir, env: str, seconds: float) -> threading.Thread:
    from vboplan.project.config import load_project
    from vboplan.state import StateStore

    loaded = load_project(project.root)
    taken = threading.Event()

    def hold() -> None:
        with StateStore(loaded, loaded.environment(env)).lock("apply by a colleague", timeout=0):
            taken.set()
            time.sleep(seconds)

    thread = threading.Thread(target=hold)
    thread.start()
    assert taken.wait(10)
    return thread


def test_lock_timeout_waits_for_a_busy_lock(project: ProjectDir, served: RunningServer) -> None:
    holder = _hold_lock(project, "dev", 1.0)
    try:
        # Without --lock-timeout: refused at once, naming the holder.
        one_error(project.run("apply", "--env", "dev", "--auto-approve"), "is locked by ann",
                               "apply by a colleague")
        result = project.run("apply", "--env", "dev", "--auto-approve", "--lock-timeout", "60s")
        assert result.exit_code == 0, result.output
    finally:
        holder.join()
    assert live(served).get("/v8/AuditEmailSettings").json()["smtpServer"] == "smtp.dev.local"


def test_lock_timeout_gives_up_with_the_same_message(project: ProjectDir, served: RunningServer) -> None:
    assert project.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
    holder = _hold_lock(project, "dev", 2.0)
    try:
        result = project.run("state", "rm", "--env", "dev", "job_email_settings", "--lock-timeout", "0.3s")
        one_error(result, "is locked by ann", "state unlock --env dev", "(waited 0.3s)")
    finally:
        holder.join()
    bad = project.run("apply", "--env", "dev", "--lock-timeout", "soon")
    assert bad.exit_code == 1 and "'soon' is not a duration like 60s" in bad.stderr


def test_write_only_values_say_a_server_side_change_cannot_be_seen(project: ProjectDir,
                                                                    served: RunningServer) -> None:
    planned = project.run("plan", "--env", "dev")
    assert "(write-only)" in planned.stdout and "will be set" in planned.stdout
    assert "a change made to it on the server, in the console say, cannot be detected" in planned.stdout
    markdown = project.run("plan", "--env", "dev", "--format", "markdown").stdout
    assert "cannot be detected" in markdown
    assert project.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
    shown = project.run("state", "show", "--env", "dev").stdout
    assert "audit_email_settings.userPassword" in shown
    assert "a change made to it on the server cannot be detected" in shown
    # No write-only change planned: nothing to say.
    project.write("templates/audit.yaml.j2", "job_email_settings: {enableNotification: true}\n")
    (project.root / "templates/jobs.yaml.j2").unlink()
    assert "cannot be detected" not in project.run("plan", "--env", "dev").stdout


# -- rough edges of servers, CA files and import -------------------------------------------------------------------

def test_https_to_a_plain_http_server_says_so(project: ProjectDir, served: RunningServer) -> None:
    for verify in ("false", "true"):
        config = HTTP_CONFIG.format(url=served.url.replace("http://", "https://"))
        project.write("vboplan.yaml", config.replace("    username: admin\n", f"    username: admin\n    verify: {verify}\n",
                                                     1))
        result = project.run("plan", "--env", "dev")
        kept = "".join(line for line in result.stderr.splitlines(keepends=True) if "verification is OFF" not in line)
        one_error(Result(result.exit_code, result.stdout, kept), "environment 'dev'",
                  "answered in plain HTTP, not HTTPS", "server: http://")
        assert "certificate" not in result.output.replace("TLS certificate verification is OFF", "")


def test_a_missing_ca_file_stops_only_its_environment(project: ProjectDir) -> None:
    config = (project.root / "vboplan.yaml").read_text()
    project.write("vboplan.yaml", config.replace("    api_version: v7\n", "    api_version: v7\n"
                                                 "    verify: certs/prod-ca.pem\n"))
    assert project.run("plan", "--env", "dev").exit_code == 0
    assert project.run("validate", "--env", "dev").exit_code == 0
    assert_one_clean_error(project.run("plan", "--env", "prod"), "environment 'prod'", "vboplan.yaml:",
                           "CA bundle 'certs/prod-ca.pem' not found")
    both = project.run("validate", "--all")
    assert both.exit_code == 1 and "dev: ok" in both.stdout
    assert "Error: environment 'prod': vboplan.yaml:" in both.stderr and "certs/prod-ca.pem" in both.stderr
    many = project.run("plan", "--all")
    assert many.exit_code == 1 and "Environment dev:" in many.stdout and "prod-ca.pem" in many.stderr
    project.write("certs/prod-ca.pem", "not a certificate\n")
    assert_one_clean_error(project.run("plan", "--env", "prod"), "environment 'prod'", "holds no certificate")


def test_import_declares_an_organization_nobody_is_audited_in(project: ProjectDir, served: RunningServer) -> None:
    for name in ("templates/audit.yaml.j2", "templates/jobs.yaml.j2"):
        (project.root / name).unlink()
    for name in ("common", "dev"):
        (project.root / f"environments/{name}.yaml").unlink()
    http = live(served)
    contoso = next(o for o in http.get("/v8/Organizations").json()["results"]
                   if o["name"] == "contoso.onmicrosoft.com")
    users = {u["name"]: u for u in http.get(f"/v8/Organizations/{contoso['id']}/Users").json()["results"]}
    http.post(f"/v8/Organizations/{contoso['id']}/AuditItems",
              json=[{"type": "user", "user": {"id": users["ceo@contoso.com"]["id"]}}]).raise_for_status()
    imported = project.run("import", "--env", "dev", "--resource", "audit_items")
    assert imported.exit_code == 0, imported.output
    declared = yaml.safe_load((project.root / "environments/dev.yaml").read_text())
    assert declared["audit_items"]["fabrikam.onmicrosoft.com"] == {"users": [], "groups": []}
    assert declared["audit_items"]["contoso.onmicrosoft.com"] == {"users": ["ceo@contoso.com"]}
    # Someone audited later in fabrikam (in the console) is planned for removal, as in contoso.
    fabrikam = next(o for o in http.get("/v8/Organizations").json()["results"]
                    if o["name"] == "fabrikam.onmicrosoft.com")
    bob = http.get(f"/v8/Organizations/{fabrikam['id']}/Users").json()["results"][0]
    http.post(f"/v8/Organizations/{fabrikam['id']}/AuditItems",
              json=[{"type": "user", "user": {"id": bob["id"]}}]).raise_for_status()
    planned = plan_json(project)
    assert [(c["action"], c["address"]) for c in planned["changes"]] == [
        ("delete", 'audit_items["fabrikam.onmicrosoft.com"].user["bob@fabrikam.com"]')]


def test_completion_of_the_new_commands_and_options(project: ProjectDir) -> None:
    from click.testing import CliRunner

    from vboplan.cli.commands import main

    def complete(words: str, incomplete: str) -> list[str]:
        result = CliRunner().invoke(main, [], prog_name="vboplan", env={
            "_VBOPLAN_COMPLETE": "powershell_complete", "COMP_WORDS": words, "COMP_INCOMPLETE": incomplete})
        return [line.split("\t")[1] for line in result.output.splitlines()]

    root = str(project.root)
    assert {"fmt", "init"} <= set(complete("vboplan ", ""))
    assert {"list", "rm"} <= set(complete("vboplan state ", ""))
    assert "--exclude" in complete("vboplan plan --ex", "--ex") and "--var" in complete("vboplan plan --va", "--va")
    assert "--lock-timeout" in complete("vboplan apply --lock", "--lock")
    assert "--signers" in complete("vboplan init --sig", "--sig")
    # state rm completes the addresses the environment's snapshot holds.
    assert project.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
    assert complete(f"vboplan -C {root} state rm --env dev job_email_settings.notifyOn", "job_email_settings.notifyOn") \
        == ["job_email_settings.notifyOnFailure", "job_email_settings.notifyOnSuccess"]


# -- --refresh-only --------------------------------------------------------------------------------------------------

def test_refresh_only_records_a_console_change_without_writing(project: ProjectDir, served: RunningServer) -> None:
    assert project.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
    http = live(served)
    http.put("/v8/AuditEmailSettings", json={"port": 2525})   # someone changed it in the console
    project.write("environments/dev.yaml", "domain: dev.contoso.com\nsmtp:\n  host: smtp.dev.local\n  port: 2525\n")
    plan = project.root / "refresh.json"
    planned = project.run("plan", "--env", "dev", "--refresh-only", "--out", str(plan))
    assert planned.exit_code == 0, planned.output
    assert "Refresh-only plan: applying it records the server's current values in the state" in planned.stdout
    assert "audit_email_settings.port: 587 -> 2525" in planned.stdout
    assert "Refresh only: 1 value changed outside vboplan will be recorded" in planned.stdout
    assert json.loads(plan.read_text())["refresh_only"] is True and json.loads(plan.read_text())["changes"] == []
    # Terraform's convention: with --detailed-exitcode, drift found by a refresh-only plan exits 2.
    drifted = project.run("plan", "--env", "dev", "--refresh-only", "--detailed-exitcode")
    assert drifted.exit_code == 2, drifted.output
    before = http.get("/v8/AuditEmailSettings").json()
    served.emulator.stats.reset()
    applied = project.run("apply", str(plan))
    assert applied.exit_code == 0, applied.output
    assert "Refresh complete for dev" in applied.stdout and "nothing was sent to the server" in applied.stdout
    sent = [key for key in served.emulator.stats if not key.startswith("GET") and "/token" not in key]
    assert sent == [] and any(key.startswith("GET") for key in served.emulator.stats), dict(served.emulator.stats)
    assert http.get("/v8/AuditEmailSettings").json() == before
    # The state now holds the console's value: no drift, no change, and it applies once only.
    after = project.run("plan", "--env", "dev", "--detailed-exitcode")
    assert after.exit_code == 0, after.output
    assert project.run("plan", "--env", "dev", "--refresh-only", "--detailed-exitcode").exit_code == 0
    assert "Changed outside vboplan" not in after.stdout
    assert "already applied" in project.run("apply", str(plan)).stderr
    snapshot = json.loads((project.root / ".vboplan/state/dev.json").read_text())
    assert snapshot["last_apply"]["refresh_only"] is True
    assert snapshot["last_apply"]["recorded"] == ["audit_email_settings.port"]
    assert snapshot["resources"]["audit_email_settings"]["values"]["port"] == 2525
    assert "userPassword" in snapshot["resources"]["audit_email_settings"]["secrets"]   # hashes kept


def test_refresh_only_plan_is_stale_when_the_server_moves_again(project: ProjectDir, served: RunningServer) -> None:
    assert project.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
    http = live(served)
    http.put("/v8/AuditEmailSettings", json={"port": 2525})
    plan = project.root / "refresh.json"
    assert project.run("plan", "--env", "dev", "--refresh-only", "--out", str(plan)).exit_code == 0
    http.put("/v8/AuditEmailSettings", json={"port": 2526})   # not what the plan showed
    stale = project.run("apply", str(plan))
    assert stale.exit_code == 1 and "is stale" in stale.stderr and "port: planned against 2525, now 2526" in stale.stderr
    snapshot = json.loads((project.root / ".vboplan/state/dev.json").read_text())
    assert snapshot["resources"]["audit_email_settings"]["values"]["port"] == 587
    one_error(project.run("plan", "--env", "dev", "--refresh-only", "--target", "audit_email_settings"),
              "--refresh-only", "no --target")


def test_refresh_only_needs_approvals_where_they_are_required(project: ProjectDir) -> None:
    import re

    assert_ok = project.run("plan", "--env", "prod", "--out", str(project.root / "p.json"))
    assert assert_ok.exit_code == 0
    for name in ("alice", "bob"):
        assert project.run("approve", str(project.root / "p.json"), "--key", str(project.keys[name])).exit_code == 0
    assert project.run("apply", str(project.root / "p.json")).exit_code == 0
    project.api("prod").put("/v8/AuditEmailSettings", json={"port": 2525})
    plan = project.root / "refresh.json"
    planned = project.run("plan", "--env", "prod", "--refresh-only", "--out", str(plan))
    assert planned.exit_code == 0 and "2 approvers each run 'vboplan approve" in planned.stderr
    assert_one_clean_error(project.run("apply", str(plan)), "refresh-only plan for 'prod' is refused",
                           "0 of 2 distinct approvals")
    approved = project.run("approve", str(plan), "--key", str(project.keys["alice"]), "--ticket", "CHG-9")
    assert approved.exit_code == 0, approved.output
    assert "Approved by alice" in approved.stdout and "the refresh-only plan" in approved.stdout
    assert "already approved" in project.run("approve", str(plan), "--key", str(project.keys["alice"])).stderr
    # The author's own approval never counts.
    assert project.run("approve", str(plan), "--key", str(project.keys["ann"])).exit_code == 1
    assert_one_clean_error(project.run("apply", str(plan)), "1 of 2 distinct approvals (alice)")
    assert project.run("approve", str(plan), "--key", str(project.keys["bob"])).exit_code == 0
    applied = project.run("apply", str(plan))
    assert applied.exit_code == 0, applied.output
    assert project.server("prod")["audit_email_settings"]["port"] == 2525
    shown = project.run("state", "show", "--env", "prod").stdout
    assert re.search(r"approved by alice \(ticket CHG-9, key SHA256:[^)]*\); bob", shown)


def test_lock_timeout_lasts_for_its_command_only(project: ProjectDir, served: RunningServer) -> None:
    from vboplan.state import LOCK_TIMEOUT

    assert project.run("state", "rm", "--env", "dev", "job_email_settings", "--lock-timeout", "5m").exit_code == 1
    assert LOCK_TIMEOUT.get() == 0.0


def test_var_exclude_and_refresh_only_reach_worker_processes(project: ProjectDir, served: RunningServer,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # Two servers planned by worker processes (as a fleet is): the command line's --var and --exclude go along.
    monkeypatch.setenv("VBOPLAN_WORKERS", "2")
    with start(SEED) as other:
        config = (project.root / "vboplan.yaml").read_text()
        project.write("vboplan.yaml", config.replace("server: emulator:prod", f"server: {other.url}"))
        result = project.run("plan", "--env", "dev", "--env", "prod", "--format", "json", "--var", "smtp.port=2525",
                             "--exclude", "job_email_settings")
        assert result.exit_code == 0, result.output
        plans = {p["environment"]: p for p in json.loads(result.stdout)["plans"]}
        for name in ("dev", "prod"):
            after = {c["address"]: c["after"] for c in plans[name]["changes"]}
            assert after["audit_email_settings.port"] == 2525, name
            assert not any(a.startswith("job_email_settings") for a in after), name
            assert plans[name]["variables"] == {"smtp.port": 2525}
        refresh = project.run("plan", "--env", "dev", "--env", "prod", "--refresh-only", "--format", "json")
        assert refresh.exit_code == 0, refresh.output
        assert all(p["refresh_only"] is True and p["changes"] == [] for p in json.loads(refresh.stdout)["plans"])


def test_state_rm_of_a_collections_object_and_field(project: ProjectDir, served: RunningServer,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # A named collection's snapshot record has a shape of its own: its kind says how to forget part of it.
    monkeypatch.setenv("KEY_PASSWORD", "forget-me-planted-1")
    project.write("templates/keys.yaml.j2", """\
        encryption_keys:
          Key one: {password: {{ secret("KEY_PASSWORD") }}}
          Key two: {password: {{ secret("KEY_PASSWORD") }}}
        """)
    assert project.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
    listed = project.run("state", "list", "--env", "dev", "encryption_keys").stdout.splitlines()
    assert listed == ['encryption_keys["Key one"].password', 'encryption_keys["Key two"].password'], listed
    forgot = project.run("state", "rm", "--env", "dev", 'encryption_keys["Key one"].password')
    assert forgot.exit_code == 0, forgot.output
    assert project.run("state", "list", "--env", "dev", "encryption_keys").stdout.splitlines() == [
        'encryption_keys["Key two"].password']
    assert project.run("state", "rm", "--env", "dev", 'encryption_keys["Key two"]').exit_code == 0
    assert project.run("state", "list", "--env", "dev", "encryption_keys").stdout == ""
    # The server still holds both keys; a key has no PUT, so a password with no recorded hash is not planned.
    planned = project.run("plan", "--env", "dev", "--detailed-exitcode")
    assert planned.exit_code == 0 and "forgotten with 'state rm'" in planned.stderr, planned.output
    assert "planted" not in planned.output
