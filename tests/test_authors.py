"""The author is proven, not named; time is not the author's to choose; merging keeps only what verifies.

Every plan here is made, signed, approved and applied through the CLI against the emulator, with real ssh-keygen
keys; the hostile edits are what an author can do to their own plan file (edit, then reseal with their key)."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import ProjectDir, assert_one_clean_error, reseal, signer_line

from vboplan.trust.signing import canonical

SIGN_HINT = "--sign-key KEY', KEY listed in approvers/prod.allowed_signers"


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _plan(project: ProjectDir, name: str = "prod", *extra: str) -> Path:
    path = project.root / "plans" / f"{name}.json"
    result = project.run("plan", "--env", "prod", "--out", str(path), *extra)
    assert result.exit_code == 0, result.output
    return path


def _approve(project: ProjectDir, path: Path, *who: str) -> None:
    for name in who:
        result = project.run("approve", str(path), "--key", str(project.keys[name]))
        assert result.exit_code == 0, result.output


def _doc(path: Path) -> dict:
    return json.loads(path.read_text())


def _signed(project: ProjectDir, path: Path, key: str, **overrides: object) -> dict:
    """An approval record of every change of ``path``, signed by hand with plain ssh-keygen."""
    document = _doc(path)
    statement = {"type": "vboplan-approval", "version": 1, "plan": document["checksum"],
                 "environment": document["environment"], "server": document["server"],
                 "changes": [c["id"] for c in document["changes"]], "ticket": None, "comment": None,
                 "at": _iso(datetime.now(timezone.utc))}
    statement.update(overrides)
    message = project.root / "statement.json"
    message.write_bytes(canonical(statement))
    Path(f"{message}.sig").unlink(missing_ok=True)
    subprocess.run(["ssh-keygen", "-Y", "sign", "-n", "vboplan-approve", "-f", str(project.keys[key]), str(message)],
                   check=True, capture_output=True)
    return {"statement": statement, "signature": Path(f"{message}.sig").read_text()}


def _add(path: Path, *records: dict) -> None:
    document = _doc(path)
    document["approvals"] += list(records)
    path.write_text(json.dumps(document, indent=2))


def _untouched(project: ProjectDir) -> None:
    assert project.server("prod")["audit_email_settings"]["port"] == 25


def _applied(project: ProjectDir, path: Path) -> str:
    result = project.run("apply", str(path))
    assert result.exit_code == 0, result.output
    assert project.server("prod")["audit_email_settings"]["port"] == 587
    return result.output


def _trust(project: ProjectDir, *lines: str) -> None:
    project.write("approvers/prod.allowed_signers", "\n".join(lines) + "\n")


# -- the author is proven ---------------------------------------------------------------------------------------


def test_unsigned_plan_is_refused_by_approve_and_apply(project: ProjectDir, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VBOPLAN_AUTHOR_KEY")
    path = project.root / "plans" / "prod.json"
    planned = project.run("plan", "--env", "prod", "--out", str(path))
    assert planned.exit_code == 0 and "Warning: the plan is not signed by its author" in planned.stderr
    shown = project.run("show", str(path))
    assert "author: unverified (the plan is not signed by its author; created_by ann is only a name)" in \
        shown.stdout.splitlines()
    assert_one_clean_error(project.run("approve", str(path), "--key", str(project.keys["alice"])),
                           "the plan is not signed by its author", SIGN_HINT)
    # Approvals signed by hand cannot make up for the missing author signature either.
    _add(path, _signed(project, path, "alice"), _signed(project, path, "bob"))
    assert_one_clean_error(project.run("apply", str(path)), "the plan is not signed by its author", SIGN_HINT)
    _untouched(project)


def test_plan_signed_by_an_unlisted_key_is_refused(project: ProjectDir) -> None:
    path = _plan(project, "prod", "--sign-key", str(project.keys["mallory"]))
    shown = project.run("show", str(path))
    assert any(line.startswith("author: unverified (signed with key SHA256:") and "is not in approvers/prod" in line
               for line in shown.stdout.splitlines()), shown.stdout
    assert_one_clean_error(project.run("approve", str(path), "--key", str(project.keys["alice"])),
                           "is not in approvers/prod.allowed_signers", SIGN_HINT)
    _add(path, _signed(project, path, "alice"), _signed(project, path, "bob"))
    assert_one_clean_error(project.run("apply", str(path)), "is not in approvers/prod.allowed_signers")
    _untouched(project)


def test_author_key_limited_to_other_namespaces_is_refused(project: ProjectDir) -> None:
    _trust(project, *(signer_line(project.keys, n) for n in ("alice", "bob", "carol")),
           signer_line(project.keys, "ann", options='namespaces="git"'))
    path = _plan(project)
    assert_one_clean_error(project.run("approve", str(path), "--key", str(project.keys["alice"])),
                           "may not sign 'vboplan-plan'")


@pytest.mark.parametrize("how", ["login name", "VBOPLAN_USER"])
def test_author_never_counts_whatever_name_they_run_under(project: ProjectDir, monkeypatch: pytest.MonkeyPatch,
                                                          how: str) -> None:
    """alice runs as login 'alice' (or sets VBOPLAN_USER to bob) while her key's principal is alice@contoso.com."""
    _trust(project, signer_line(project.keys, "alice", principal="alice@contoso.com"),
           *(signer_line(project.keys, n, principal=f"{n}@contoso.com") for n in ("bob", "carol", "ann")))
    if how == "login name":
        monkeypatch.delenv("VBOPLAN_USER")
        for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
            monkeypatch.setenv(name, "alice")
    else:
        monkeypatch.setenv("VBOPLAN_USER", "bob")
    path = _plan(project, "prod", "--sign-key", str(project.keys["alice"]))
    assert "author: alice@contoso.com (verified)" in project.run("show", str(path)).stdout.splitlines()
    assert_one_clean_error(project.run("approve", str(path), "--key", str(project.keys["alice"])),
                           "alice@contoso.com", "wrote this plan", "four-eyes")
    _add(path, _signed(project, path, "alice"))
    _approve(project, path, "carol")
    assert "1 of 2 distinct approvals (carol@contoso.com)" in project.run("apply", str(path)).stderr
    _untouched(project)
    _approve(project, path, "ann")
    out = _applied(project, path)
    assert "ignoring approval 1 by alice@contoso.com" in out and "four-eyes" in out


def test_reseal_with_a_future_author_signature_is_refused(project: ProjectDir) -> None:
    path = _plan(project)
    document = _doc(path)
    document["author_signature"]["statement"]["at"] = _iso(datetime.now(timezone.utc) + timedelta(days=2))
    reseal(path, document, project.keys["ann"])
    shown = project.run("show", str(path))
    assert "author: unverified (the author signature does not verify: it is dated" in shown.stdout
    assert_one_clean_error(project.run("approve", str(path), "--key", str(project.keys["alice"])),
                           "later than now")


def test_author_signature_of_another_plan_is_refused(project: ProjectDir) -> None:
    first = _plan(project, "first")
    project.write("environments/prod.yaml", "domain: evil.example\nsmtp:\n  host: smtp.evil.example\n")
    second = _plan(project, "second")
    document = _doc(second)
    document["author_signature"] = _doc(first)["author_signature"]
    second.write_text(json.dumps(document))
    assert_one_clean_error(project.run("approve", str(second), "--key", str(project.keys["alice"])),
                           "the author signature does not verify", "for another plan")


# -- time -------------------------------------------------------------------------------------------------------


def test_plan_dated_in_the_future_is_refused(project: ProjectDir) -> None:
    path = _plan(project)
    document = _doc(path)
    later = datetime.now(timezone.utc) + timedelta(days=1)
    document["created_at"] = _iso(later)
    document["expires_at"] = _iso(later + timedelta(hours=72))
    document["author_signature"]["statement"]["at"] = _iso(later)
    reseal(path, document, project.keys["ann"])  # the author signs it too; only the clock gives it away
    assert_one_clean_error(project.run("approve", str(path), "--key", str(project.keys["alice"])),
                           f"is dated {_iso(later)}, later than now", "cannot be made in the future")
    _add(path, _signed(project, path, "alice", at=_iso(later)), _signed(project, path, "bob", at=_iso(later)))
    assert_one_clean_error(project.run("apply", str(path)), "later than now")
    _untouched(project)


def test_a_few_seconds_of_clock_skew_are_accepted(project: ProjectDir) -> None:
    path = _plan(project)
    document = _doc(path)
    ahead = datetime.now(timezone.utc) + timedelta(seconds=90)  # the planning machine's clock runs fast
    document["created_at"] = document["author_signature"]["statement"]["at"] = _iso(ahead)
    reseal(path, document, project.keys["ann"])
    _add(path, _signed(project, path, "alice", at=_iso(ahead)), _signed(project, path, "bob", at=_iso(ahead)))
    shown = project.run("show", str(path)).stdout
    assert f"created: {_iso(ahead)} (created_by ann)" in shown and f"author signed: {_iso(ahead)}" in shown
    _applied(project, path)


@pytest.mark.parametrize("when, fragment", [
    (timedelta(hours=-1), "before the plan was made"),
    (timedelta(days=1), "later than now"),
])
def test_approval_dated_before_the_plan_or_in_the_future(project: ProjectDir, when: timedelta,
                                                         fragment: str) -> None:
    path = _plan(project)
    _approve(project, path, "alice")
    at = _iso(datetime.now(timezone.utc) + when)
    _add(path, _signed(project, path, "bob", at=at))
    shown = project.run("show", str(path)).stdout
    line = next(x for x in shown.splitlines() if x.startswith("Approval 2: bob"))
    assert f"at {at}:" in line and f"does not count: it is dated {at}, {fragment}" in line
    result = project.run("apply", str(path))
    assert result.exit_code == 1 and "approval 2 by bob" in result.stderr and fragment in result.stderr
    _untouched(project)


def test_approval_dated_before_the_author_signed(project: ProjectDir) -> None:
    """A plan resealed later (to restart its max_age) loses the approvals given before."""
    path = _plan(project)
    _approve(project, path, "alice", "bob")
    document = _doc(path)
    document["author_signature"]["statement"]["at"] = _iso(datetime.now(timezone.utc) + timedelta(seconds=30))
    reseal(path, document, project.keys["ann"])
    result = project.run("apply", str(path))
    assert result.exit_code == 1 and "before the author signed the plan" in result.stderr
    _untouched(project)


def test_max_age_counts_from_the_later_of_creation_and_signature(project: ProjectDir) -> None:
    config = (project.root / "vboplan.yaml").read_text().replace("max_age: 72h", "max_age: 1h")
    project.write("vboplan.yaml", config)
    path = _plan(project)
    document = _doc(path)
    now = datetime.now(timezone.utc)
    document["created_at"] = _iso(now - timedelta(hours=2))  # made two hours ago, signed just now
    document["expires_at"] = ""
    reseal(path, document, project.keys["ann"])
    _approve(project, path, "alice", "bob")
    dry = project.root / "plans" / "older.json"
    document = _doc(path)
    document["approvals"] = []
    document["author_signature"]["statement"]["at"] = _iso(now - timedelta(minutes=61))  # signed over an hour ago
    reseal(dry, document, project.keys["ann"])
    _add(dry, _signed(project, dry, "alice"), _signed(project, dry, "bob"))
    assert_one_clean_error(project.run("apply", str(dry)), "expired", "max_age 1h")
    _untouched(project)
    _applied(project, path)


# -- merge ------------------------------------------------------------------------------------------------------


def test_merge_keeps_what_verifies_and_names_what_it_dropped(project: ProjectDir) -> None:
    path = _plan(project)
    copy = project.root / "plans" / "copy.json"
    copy.write_text(path.read_text())
    _approve(project, path, "alice")
    _approve(project, copy, "bob")
    _add(copy, {"by": "carol", "changes": ["everything"]},                         # hand-written
         _signed(project, copy, "ann"),                                             # the author's own
         _signed(project, copy, "mallory"),                                         # an unlisted key
         _signed(project, copy, "carol", plan="0" * 64))                            # for another plan
    other = _plan(project, "other")
    assert_one_clean_error(project.run("approve", str(path), "--merge", str(other)), "is another plan")
    merged = project.run("approve", str(path), "--merge", str(copy))
    assert merged.exit_code == 0, merged.output
    assert "Added 1 approval" in merged.stdout and "dropped 4 that do not count" in merged.stdout
    dropped = [line for line in merged.stderr.splitlines() if line.startswith("Dropped ")]
    assert len(dropped) == 4, merged.stderr
    assert "not a signed approval" in dropped[0] and "four-eyes" in dropped[1]
    assert "is not in approvers/prod.allowed_signers" in dropped[2] and "not this plan" in dropped[3]
    assert len(_doc(path)["approvals"]) == 2
    _applied(project, path)


def test_one_junk_record_never_blocks_an_approved_plan(project: ProjectDir) -> None:
    path = _plan(project)
    _approve(project, path, "alice")
    _add(path, {"statement": {"type": "junk"}, "signature": "-----BEGIN SSH SIGNATURE-----\nAAAA\n"
                                                          "-----END SSH SIGNATURE-----"})
    _approve(project, path, "bob")
    out = _applied(project, path)
    assert "Note: ignoring approval 2 by unknown signer: its signature is unreadable" in out


def test_honest_flow_author_signs_two_others_approve(project: ProjectDir) -> None:
    path = _plan(project)
    shown = project.run("show", str(path)).stdout.splitlines()
    assert "author: ann (verified)" in shown
    assert_one_clean_error(project.run("approve", str(path), "--key", str(project.keys["ann"])),
                           "ann", "wrote this plan", "signed by the author's key")
    _approve(project, path, "alice", "carol")
    _applied(project, path)
