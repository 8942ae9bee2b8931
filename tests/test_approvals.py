"""Signed approvals: real SSH keys (ssh-keygen), signed through `vboplan approve`, applied against the emulator; and
one test per forgery, each refused with a message naming why."""

from __future__ import annotations

import json
import os
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from conftest import ProjectDir, assert_one_clean_error, reseal, signer_line
from forked import Forked

from vboplan.trust.signing import canonical


def _plan(project: ProjectDir, name: str = "prod", *extra: str) -> Path:
    path = project.root / "plans" / f"{name}.json"
    result = project.run("plan", "--env", "prod", "--out", str(path), *extra)
    assert result.exit_code == 0, result.output
    return path


def _approve(project: ProjectDir, path: Path, *who: str, changes: tuple[str, ...] = ()) -> None:
    for name in who:
        args = ["approve", str(path), "--key", str(project.keys[name]), "--ticket", "CHG-7"]
        for change in changes:
            args += ["--change", change]
        result = project.run(*args)
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith(f"Approved by {name}") and "(key SHA256:" in result.stdout


def _doc(path: Path) -> dict:
    return json.loads(path.read_text())


def _save(path: Path, document: dict, recompute: bool = True, author: Path | None = None) -> None:
    """Write a plan document back; with ``recompute``, resealed as its author would: checksum recomputed and the
    author statement signed again (by ann's key unless ``author`` names another)."""
    if recompute:
        reseal(path, document, author or Path(os.environ["VBOPLAN_AUTHOR_KEY"]))
    else:
        path.write_text(json.dumps(document, indent=2))


def _signed(project: ProjectDir, statement: dict, key: str, namespace: str = "vboplan-approve") -> dict:
    """An approval record made by hand with plain ssh-keygen (what someone editing the file could produce)."""
    message = project.root / "statement.json"
    message.write_bytes(canonical(statement))
    Path(f"{message}.sig").unlink(missing_ok=True)
    subprocess.run(["ssh-keygen", "-Y", "sign", "-n", namespace, "-f", str(project.keys[key]), str(message)],
                   check=True, capture_output=True)
    return {"statement": statement, "signature": Path(f"{message}.sig").read_text()}


def _statement(path: Path, **overrides: object) -> dict:
    document = _doc(path)
    statement = {"type": "vboplan-approval", "version": 1, "plan": document["checksum"],
                 "environment": document["environment"], "server": document["server"],
                 "changes": [c["id"] for c in document["changes"]], "ticket": None, "comment": None,
                 "at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    statement.update(overrides)
    return statement


def _add(path: Path, *records: dict) -> None:
    document = _doc(path)
    document["approvals"] += list(records)
    _save(path, document, recompute=False)


def _refused(project: ProjectDir, path: Path, *fragments: str) -> str:
    result = project.run("apply", str(path))
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr
    assert project.server("prod")["audit_email_settings"]["port"] == 25  # nothing was written
    return result.stderr


@pytest.mark.parametrize("pair", [("alice", "bob"), ("bob", "carol"), ("carol", "alice")],
                         ids=["ed25519+rsa", "rsa+ecdsa", "ecdsa+ed25519"])
def test_two_of_three_signed_approvals_apply(project: ProjectDir, pair: tuple[str, str]) -> None:
    path = _plan(project)
    _approve(project, path, *pair)
    shown = project.run("show", str(path))
    assert shown.exit_code == 0
    lines = [line for line in shown.stdout.splitlines() if line.startswith("Approval ")]
    assert len(lines) == 2 and all(line.endswith(": verified") for line in lines), lines
    assert lines[0].startswith(f"Approval 1: {pair[0]} key SHA256:") and "ticket CHG-7" in lines[0]
    result = project.run("apply", str(path))
    assert result.exit_code == 0, result.output
    assert "Apply complete for prod" in result.stdout
    assert project.server("prod")["audit_email_settings"]["port"] == 587
    snapshot = json.loads((project.root / ".vboplan/state/prod.json").read_text())
    assert [a["principal"] for a in snapshot["last_apply"]["approvals"]] == list(pair)
    assert snapshot["applied_plans"][-1]["digest"] == _doc(path)["checksum"]


def test_one_approval_is_not_enough(project: ProjectDir) -> None:
    path = _plan(project)
    _approve(project, path, "alice")
    stderr = _refused(project, path, "1 of 2 distinct approvals (alice)")
    # A short list, one line per change short of approvals, not one long line.
    items = [line for line in stderr.splitlines() if line.startswith("  - ")]
    assert len(items) == len(_doc(path)["changes"])


def test_edited_change_with_recomputed_checksum(project: ProjectDir) -> None:
    path = _plan(project)
    _approve(project, path, "alice", "bob")
    document = _doc(path)
    change = next(c for c in document["changes"] if c["address"] == "audit_email_settings.from")
    change["after"] = "attacker@evil.example"
    _save(path, document)
    stderr = _refused(project, path, "approval 1 by alice", "approval 2 by bob",
                      "the plan was edited after it was approved")
    assert project.server("prod")["audit_email_settings"].get("from") != "attacker@evil.example"
    assert len([line for line in stderr.splitlines() if line.startswith("  - approval ")]) == 2


def test_edited_live_value_with_recomputed_checksum(project: ProjectDir) -> None:
    path = _plan(project)
    _approve(project, path, "alice", "bob")
    document = _doc(path)
    # A live value no change concerns (one a change concerns no longer gives that change: see test_wysiwyg).
    document["live"]["job_email_settings"]["enableNotification"] = False
    _save(path, document)
    _refused(project, path, "signed for plan", "edited after it was approved")


def test_sensitive_flag_flipped(project: ProjectDir) -> None:
    path = _plan(project)
    _approve(project, path, "alice", "bob")
    document = _doc(path)
    change = next(c for c in document["changes"] if c["address"] == "audit_email_settings.userPassword")
    change["sensitive"] = False
    change["after"] = "attacker-known-password"
    _save(path, document)
    _refused(project, path, change["id"], "secret field", "not sensitive")


def test_approval_copied_from_another_plan(project: ProjectDir) -> None:
    first = _plan(project, "first")
    _approve(project, first, "alice", "bob")
    project.write("environments/prod.yaml", "domain: evil.example\nsmtp:\n  host: smtp.evil.example\n")
    second = _plan(project, "second")
    document = _doc(second)
    document["approvals"] = _doc(first)["approvals"]
    _save(second, document, recompute=False)
    _refused(project, second, "approval 1 by alice", "copied from another plan")


def test_hand_written_approval_records(project: ProjectDir) -> None:
    path = _plan(project)
    changes = [c["id"] for c in _doc(path)["changes"]]
    _add(path, {"by": "alice", "ticket": "CHG-7", "at": "now", "changes": changes, "checksum": _doc(path)["checksum"]},
         {"statement": _statement(path), "signature": "-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----"})
    _refused(project, path, "approval 1 by unknown signer: not a signed approval (a hand-written record",
             "approval 2 by unknown signer: its signature is unreadable")


def test_signature_moved_onto_another_statement(project: ProjectDir) -> None:
    path = _plan(project)
    _approve(project, path, "alice", changes=(_doc(path)["changes"][0]["id"],))
    document = _doc(path)
    document["approvals"][0]["statement"]["changes"] = [c["id"] for c in document["changes"]]  # widen it
    _save(path, document, recompute=False)
    _refused(project, path, "approval 1 by alice", "does not match what it claims to sign")


def test_key_not_in_the_trust_list(project: ProjectDir) -> None:
    path = _plan(project)
    assert_one_clean_error(project.run("approve", str(path), "--key", str(project.keys["mallory"])),
                           "is not in approvers/prod.allowed_signers")
    _approve(project, path, "alice")
    _add(path, _signed(project, _statement(path), "mallory"))
    _refused(project, path, "approval 2 by unknown signer (SHA256:", "is not in approvers/prod.allowed_signers")


def test_right_key_wrong_namespace(project: ProjectDir) -> None:
    path = _plan(project)
    _approve(project, path, "alice")
    _add(path, _signed(project, _statement(path), "bob", namespace="git"))  # e.g. taken from a signed commit
    _refused(project, path, "approval 2 by bob", "signed for namespace 'git', not 'vboplan-approve'")


def test_key_restricted_to_another_namespace(project: ProjectDir) -> None:
    lines = (project.root / "approvers/prod.allowed_signers").read_text().splitlines()
    lines = [line for line in lines if not line.startswith("bob ")]
    lines.append(signer_line(project.keys, "bob", options='namespaces="git"'))
    project.write("approvers/prod.allowed_signers", "\n".join(lines) + "\n")
    path = _plan(project)
    assert_one_clean_error(project.run("approve", str(path), "--key", str(project.keys["bob"])),
                           "may not sign 'vboplan-approve'")


def test_principal_outside_valid_before(project: ProjectDir) -> None:
    path = _plan(project)
    _approve(project, path, "alice", "carol")
    lines = (project.root / "approvers/prod.allowed_signers").read_text().splitlines()
    lines = [line for line in lines if not line.startswith("carol ")]
    lines.append(signer_line(project.keys, "carol", options='valid-before="20200101Z"'))
    project.write("approvers/prod.allowed_signers", "\n".join(lines) + "\n")
    _refused(project, path, "approval 2 by carol", "was valid only until 2020-01-01 00:00:00Z (valid-before")
    assert_one_clean_error(project.run("approve", str(path), "--key", str(project.keys["carol"])),
                           "valid only until 2020-01-01")


def test_authors_own_key_never_counts(project: ProjectDir) -> None:
    path = _plan(project)  # VBOPLAN_USER=ann, whose key is trusted
    _approve(project, path, "alice")
    _add(path, _signed(project, _statement(path), "ann"))
    _refused(project, path, "approval 2 by ann", "wrote this plan", "four-eyes")


def test_signed_author_cannot_approve_under_another_name(project: ProjectDir,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VBOPLAN_USER", "someone-else")  # the unsigned name says nothing about bob
    path = _plan(project, "prod", "--sign-key", str(project.keys["bob"]))
    assert _doc(path)["author_key"].startswith("ssh-rsa ")
    shown = project.run("show", str(path))
    assert "author: bob (verified)" in shown.stdout.splitlines()
    assert "(created_by someone-else)" in shown.stdout
    assert_one_clean_error(project.run("approve", str(path), "--key", str(project.keys["bob"])),
                           "bob", "wrote this plan", "signed by the author's key")
    _approve(project, path, "alice", "carol")
    assert project.run("apply", str(path)).exit_code == 0


def test_author_signature_cannot_be_stripped(project: ProjectDir) -> None:
    path = _plan(project)
    _approve(project, path, "alice", "bob")
    document = _doc(path)
    document["author_signature"] = None
    _save(path, document, recompute=False)
    _refused(project, path, "author signature does not verify")


def test_one_person_with_two_keys_counts_once(project: ProjectDir) -> None:
    trust = project.root / "approvers/prod.allowed_signers"
    trust.write_text(trust.read_text() + signer_line(project.keys, "alice2", principal="alice") + "\n")
    path = _plan(project)
    _approve(project, path, "alice")
    assert_one_clean_error(project.run("approve", str(path), "--key", str(project.keys["alice2"])),
                           "has already approved")
    _add(path, _signed(project, _statement(path), "alice2"))
    _refused(project, path, "1 of 2 distinct approvals (alice)")


def test_one_key_under_two_names_counts_once(project: ProjectDir) -> None:
    trust = project.root / "approvers/prod.allowed_signers"
    trust.write_text(trust.read_text() + signer_line(project.keys, "carol", principal="carla") + "\n")
    path = _plan(project)
    _approve(project, path, "carol")
    _add(path, _signed(project, _statement(path, comment="again"), "carol"))
    _refused(project, path, "1 of 2 distinct approvals (carol,carla)")


def test_replay_of_an_applied_plan(project: ProjectDir) -> None:
    path = _plan(project)
    _approve(project, path, "alice", "bob")
    assert project.run("apply", str(path)).exit_code == 0
    # Someone sets the port back by hand; replaying the old approved plan must not be the way to redo it.
    project.api("prod").put("/v7/AuditEmailSettings", json={"port": 25})
    assert_one_clean_error(project.run("apply", str(path)), "was already applied", "a plan applies once")
    assert project.server("prod")["audit_email_settings"]["port"] == 25


def test_plan_older_than_max_age(project: ProjectDir) -> None:
    config = (project.root / "vboplan.yaml").read_text().replace("max_age: 72h", "max_age: 1s")
    project.write("vboplan.yaml", config)
    path = _plan(project)
    _approve(project, path, "alice", "bob")
    time.sleep(2.1)  # let the plan age past its one second
    _refused(project, path, "expired", "max_age 1s")


def test_required_without_trust_file_is_a_config_error(project: ProjectDir) -> None:
    config = (project.root / "vboplan.yaml").read_text().replace(
        "approvals: {required: 2, allowed_signers: approvers/prod.allowed_signers, max_age: 72h}",
        "approvals: {required: 2}")
    project.write("vboplan.yaml", config)
    assert_one_clean_error(project.run("plan", "--env", "prod"), "vboplan.yaml:", "no allowed_signers file")


def test_old_approvers_list_is_refused_with_a_reason(project: ProjectDir) -> None:
    config = (project.root / "vboplan.yaml").read_text().replace(
        "approvals: {required: 2, allowed_signers: approvers/prod.allowed_signers, max_age: 72h}",
        "approvals: {required: 2, approvers: [alice, bob]}")
    project.write("vboplan.yaml", config)
    assert_one_clean_error(project.run("plan", "--env", "dev"), "vboplan.yaml:", "a name is not an approval")


@pytest.mark.parametrize("line, fragment", [
    ("alice cert-authority ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB84u88i06Hmu/ajShBFVS8lJ49Nh8vhKnDSc5BI/mdh",
     "cert-authority lines are not supported"),
    ("* ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB84u88i06Hmu/ajShBFVS8lJ49Nh8vhKnDSc5BI/mdh", "is a pattern"),
    ('alice valid-before="2020" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB84u88i06Hmu/ajShBFVS8lJ49Nh8vhKnDSc5BI/mdh',
     "is not YYYYMMDD"),
    ("alice ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIB84u88i06Hmu/ajShBFVS8lJ49Nh8vhKnDSc5BI/mdh", "does not match its type"),
])
def test_bad_trust_file_lines_name_file_and_line(project: ProjectDir, line: str, fragment: str) -> None:
    path = _plan(project)
    project.write("approvers/prod.allowed_signers", f"# reviewed\n{line}\n")
    assert_one_clean_error(project.run("approve", str(path), "--key", str(project.keys["alice"])),
                           "approvers/prod.allowed_signers:2:", fragment)
    assert_one_clean_error(project.run("validate", "--all"), "approvers/prod.allowed_signers:2:", fragment)


def test_required_zero_applies_a_saved_plan_without_approvals(project: ProjectDir) -> None:
    path = project.root / "plans" / "dev.json"
    assert project.run("plan", "--env", "dev", "--out", str(path)).exit_code == 0
    result = project.run("apply", str(path))
    assert result.exit_code == 0, result.output
    assert project.server("dev")["audit_email_settings"]["port"] == 587


def test_concurrent_approvals_are_all_kept(project: ProjectDir, tmp_path: Path) -> None:
    # Eight processes at once (without the lock beside the plan file, some of their approvals are lost);
    # benchmarks/approvals.py runs twenty and more, each started as `python -m vboplan`.
    people = [f"approver{i:02d}" for i in range(8)]
    keys = {}
    for name in people:
        key = tmp_path / f"id_{name}"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True,
                       capture_output=True)
        keys[name] = key
    project.write("approvers/prod.allowed_signers",
                  "".join(f"{name} {' '.join(Path(f'{key}.pub').read_text().split()[:2])}\n"
                          for name, key in keys.items()) + signer_line(project.keys, "ann") + "\n")
    path = _plan(project)
    env = {**os.environ, "VBOPLAN_USER": "ann"}
    # Processes of their own, forked ready to run (forked.py): they start within milliseconds of each other.
    runs = [Forked(["-C", str(project.root), "approve", str(path), "--key", str(key)], env, tmp_path, name)
            for name, key in keys.items()]
    outcomes = [run.wait(120) for run in runs]
    assert all(done.returncode == 0 for done in outcomes), [done.stderr for done in outcomes if done.returncode]
    shown = project.run("show", str(path))
    verified = [line for line in shown.stdout.splitlines() if line.startswith("Approval ") and
                line.endswith(": verified")]
    assert len(verified) == len(people)
    assert {line.split()[2] for line in verified} == set(people)


def test_approve_with_a_key_held_by_ssh_agent(project: ProjectDir, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the public key is given; the private half lives in ssh-agent (as with hardware keys)."""
    socket = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(socket)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if socket.exists():
                break
            time.sleep(0.05)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(socket))
        subprocess.run(["ssh-add", "-q", str(project.keys["carol"])], check=True, capture_output=True,
                       env={**os.environ, "SSH_AUTH_SOCK": str(socket)})
        public = tmp_path / "only-public" / "carol.pub"  # no private key beside it
        public.parent.mkdir()
        public.write_text(Path(f"{project.keys['carol']}.pub").read_text())
        path = _plan(project)
        monkeypatch.setenv("VBOPLAN_SIGNING_KEY", str(public))
        result = project.run("approve", str(path), "--ticket", "CHG-8")
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith("Approved by carol (key SHA256:")
    finally:
        agent.terminate()
        agent.wait(timeout=10)
    _approve(project, path, "alice")
    assert project.run("apply", str(path)).exit_code == 0
    assert project.server("prod")["audit_email_settings"]["port"] == 587
