"""``vboplan fmt`` and ``vboplan init``: the canonical layout of the project's YAML, a new project that plans
against the emulator as it is, allowed_signers from public key files, and moving local state to a shared backend."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import ProjectDir, Result, assert_one_clean_error, signer_line
from state_servers import S3Server

from vboplan.cli.commands import main

MESSY = """\
# Shared by every environment.
smtp:
    port:   587      # submission
    user: svc-vbo-mail
recipients: [a@contoso.com,b@contoso.com]
teams:
- ops
-   sec
notify_success: false{TRAILING}
""".format(TRAILING="   ")

TIDY = """\
# Shared by every environment.
smtp:
  port: 587          # submission
  user: svc-vbo-mail
recipients: [a@contoso.com, b@contoso.com]
teams:
  - ops
  - sec
notify_success: false
"""


def run(*args: str, cwd: Path | None = None, input: str | None = None) -> Result:
    result = CliRunner().invoke(main, ["--no-color", *args], input=input)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"vboplan raised: {result.exception!r}\n{result.output}") from result.exception
    return Result(result.exit_code, result.stdout, result.stderr)


def _changes(text: str) -> list[tuple[str, object]]:
    return [(c["address"], c["after"]) for c in json.loads(text)["plans"][0]["changes"]]


# -- fmt -----------------------------------------------------------------------------------------------------------

def test_fmt_check_lists_files_then_fmt_lays_them_out_keeping_comments(project: ProjectDir) -> None:
    common = project.write("environments/common.yaml", MESSY)
    template = project.root / "templates/audit.yaml.j2"
    template.write_text(template.read_text() + "   \n")   # a template is Jinja: left alone
    template_before = template.read_text()
    plan_before = project.run("plan", "--env", "dev", "--format", "json").stdout

    checked = project.run("fmt", "--check")
    assert checked.exit_code == 1
    assert checked.stdout.splitlines() == ["environments/common.yaml"]
    assert "1 file not in the canonical layout; run 'vboplan fmt'" in checked.stderr
    assert common.read_text() == MESSY   # --check changes nothing

    diffed = project.run("fmt", "--check", "--diff")
    assert "-    port:   587      # submission" in diffed.stdout and "+  port: 587" in diffed.stdout

    done = project.run("fmt")
    assert done.exit_code == 0 and done.stdout.splitlines() == ["environments/common.yaml"]
    assert common.read_text() == TIDY
    assert template.read_text() == template_before
    # The same values: the same changes are planned.
    assert _changes(project.run("plan", "--env", "dev", "--format", "json").stdout) == _changes(plan_before)
    # Formatting is stable: a second run changes nothing.
    again = project.run("fmt", "--check")
    assert again.exit_code == 0 and again.stdout == ""


def test_fmt_formats_vboplan_yaml_and_refuses_a_file_that_would_read_differently(project: ProjectDir) -> None:
    config = project.root / "vboplan.yaml"
    config.write_text(config.read_text().replace("  dev:\n    server: emulator:dev",
                                                 "  dev:\n    server:    emulator:dev   # the lab"))
    assert project.run("fmt", "--check").stdout.splitlines() == ["vboplan.yaml"]
    assert project.run("fmt").exit_code == 0
    assert re.search(r"\n    server: emulator:dev +# the lab\n", config.read_text())
    assert project.run("validate", "--all").exit_code == 0
    # Values YAML 1.1 and 1.2 read apart stay as written (vboplan reads variable files as YAML 1.1).
    kept = project.write("environments/dev.yaml", "domain: dev.contoso.com\nsmtp: {host: smtp.dev.local}\n"
                                                  "mode:   0o17\nflag:   yes\nold: 017\n")
    assert project.run("fmt").exit_code == 0
    assert kept.read_text().endswith("mode: 0o17\nflag: yes\nold: 017\n")
    broken = project.write("environments/dev.yaml", "domain: dev.contoso.com\nsmtp: [unclosed\n")
    before = broken.read_text()
    result = project.run("fmt")
    assert result.exit_code == 1 and "environments/dev.yaml:" in result.stderr and "Traceback" not in result.output
    assert broken.read_text() == before


# -- init ----------------------------------------------------------------------------------------------------------

def test_init_makes_a_project_that_plans_against_the_emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "settings"
    made = run("init", str(target))
    assert made.exit_code == 0, made.output
    for name in ("vboplan.yaml", "templates/settings.yaml.j2", "environments/common.yaml", "environments/dev.yaml",
                 "emulator/dev.yaml", ".gitignore"):
        assert (target / name).is_file(), name
        assert f"Wrote {name}" in made.stdout
    assert ".vboplan/" in (target / ".gitignore").read_text()
    assert "VBO_DEV_PASSWORD=dev-emulator-password vboplan -C" in made.stdout
    monkeypatch.setenv("VBO_DEV_PASSWORD", "dev-emulator-password")
    planned = run("-C", str(target), "plan", "--env", "dev", "--detailed-exitcode")
    assert planned.exit_code == 2, planned.output
    assert "audit_email_settings.smtpServer" in planned.stdout
    applied = run("-C", str(target), "apply", "--env", "dev", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert run("-C", str(target), "plan", "--env", "dev", "--detailed-exitcode").exit_code == 0
    # The new project is already in the canonical layout.
    assert run("-C", str(target), "fmt", "--check").exit_code == 0
    # Run again: nothing is replaced.
    (target / "environments/dev.yaml").write_text("domain: mine.contoso.com\nsmtp: {host: x}\nnotify_on_success: no\n")
    again = run("init", str(target))
    assert again.exit_code == 0 and "Wrote" not in again.stdout
    assert (target / "environments/dev.yaml").read_text().startswith("domain: mine")


def _pub(keys: dict[str, Path], name: str) -> str:
    return Path(f"{keys[name]}.pub").read_text()


def test_init_signers_builds_allowed_signers_from_public_key_files(project: ProjectDir, tmp_path: Path) -> None:
    keys = project.keys
    folder = tmp_path / "keys"
    folder.mkdir()
    (folder / "alice@contoso.com.pub").write_text(_pub(keys, "alice"))
    (folder / "bob@contoso.com.pub").write_text(_pub(keys, "bob") + "\n# a second key of bob's\n" + _pub(keys, "carol"))
    (folder / "ann@contoso.com.pub").write_text(_pub(keys, "ann"))   # the author, who signs her plans
    (folder / "README.txt").write_text("not a key")
    result = project.run("init", "--signers", str(folder), "--signers-file", "approvers/prod.allowed_signers",
                         "--force")
    assert result.exit_code == 0, result.output
    assert ("Wrote approvers/prod.allowed_signers with 3 signer(s): alice@contoso.com, ann@contoso.com, "
            "bob@contoso.com") in result.stdout
    text = (project.root / "approvers/prod.allowed_signers").read_text()
    assert signer_line(keys, "alice", "alice@contoso.com") in text
    assert signer_line(keys, "bob", "bob@contoso.com") in text and signer_line(keys, "carol", "bob@contoso.com") in text
    # The file works: alice's and bob's approvals count for prod, under the principals from the file names.
    plan = project.root / "prod.json"
    assert project.run("plan", "--env", "prod", "--out", str(plan)).exit_code == 0
    for name in ("alice", "bob"):
        approved = project.run("approve", str(plan), "--key", str(keys[name]))
        assert approved.exit_code == 0, approved.output
        assert f"Approved by {name}@contoso.com" in approved.stdout
    assert project.run("apply", str(plan)).exit_code == 0
    # Up to date on a second run; a changed folder is not written over without --force.
    assert "is up to date" in project.run("init", "--signers", str(folder), "--signers-file",
                                          "approvers/prod.allowed_signers").stdout
    (folder / "dave@contoso.com.pub").write_text(_pub(keys, "dave"))
    assert_one_clean_error(project.run("init", "--signers", str(folder), "--signers-file",
                                       "approvers/prod.allowed_signers"), "adds dave@contoso.com", "--force")


def test_init_signers_refuses_bad_key_files(project: ProjectDir, tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    folder.mkdir()
    (folder / "alice@contoso.com.pub").write_text(Path(project.keys["alice"]).read_text())   # the private half
    assert_one_clean_error(project.run("init", "--signers", str(folder)), "alice@contoso.com.pub:1",
                           "private key")
    (folder / "alice@contoso.com.pub").write_text("ssh-ed25519 not-base64!\n")
    assert_one_clean_error(project.run("init", "--signers", str(folder)), "not an OpenSSH public key line")
    (folder / "alice@contoso.com.pub").unlink()
    (folder / "team *.pub").write_text(_pub(project.keys, "alice"))
    assert_one_clean_error(project.run("init", "--signers", str(folder)), "the key owner's name")
    assert_one_clean_error(project.run("init", "--signers", str(tmp_path / "none")), "not a folder")


def test_init_offers_to_move_local_state_to_the_configured_backend(project: ProjectDir,
                                                                   s3_server: S3Server) -> None:
    assert project.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
    bucket = s3_server.new_bucket()
    config = project.root / "vboplan.yaml"
    config.write_text(config.read_text() + f"state:\n  backend: s3\n  bucket: {bucket}\n  prefix: corp/\n"
                                           f"  endpoint_url: {s3_server.endpoint}\n  region: us-east-1\n")
    # No terminal to ask on: it says what to run, and moves nothing.
    asked = project.run("init")
    assert_one_clean_error(asked, "no terminal", "vboplan init --migrate-state")
    assert "State of 'dev' is still local (serial 1, not in the shared backend yet)" in asked.stdout
    declined = project.run("init", "--no-migrate-state")
    assert declined.exit_code == 0 and "Warning: the state has not moved" in declined.stderr
    moved = project.run("init", "--migrate-state", "--lock-timeout", "10s")
    assert moved.exit_code == 0, moved.output
    assert "Copied the snapshot of 'dev' (serial 1) to s3://" in moved.stdout
    settled = project.run("init")
    assert settled.exit_code == 0 and "the s3 backend holds every snapshot there is" in settled.stdout
    # The shared backend now knows the apply: the plan is clean.
    assert project.run("plan", "--env", "dev", "--detailed-exitcode").exit_code == 0


def test_init_help_has_examples() -> None:
    for command in ("init", "fmt"):
        shown = run(command, "--help")
        assert shown.exit_code == 0 and f"vboplan {command}" in shown.stdout.split("Examples:")[1]


@pytest.mark.skipif(os.name == "nt", reason="ssh-keygen -Y check-novalidate is exercised on POSIX here")
def test_allowed_signers_from_init_reads_in_ssh_keygen(project: ProjectDir, tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    folder.mkdir()
    (folder / "alice@contoso.com.pub").write_text(_pub(project.keys, "alice"))
    assert project.run("init", "--signers", str(folder)).exit_code == 0
    data = tmp_path / "data.txt"
    data.write_text("hello")
    subprocess.run(["ssh-keygen", "-q", "-Y", "sign", "-n", "vboplan-approve", "-f", str(project.keys["alice"]),
                    str(data)], check=True, capture_output=True)
    checked = subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(project.root / "approvers/allowed_signers"),
                              "-I", "alice@contoso.com", "-n", "vboplan-approve", "-s", f"{data}.sig"],
                             input=data.read_bytes(), capture_output=True)
    assert checked.returncode == 0, checked.stderr
