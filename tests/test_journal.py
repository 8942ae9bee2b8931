"""The write journal when the snapshot cannot be written: one clear message, the journal true, and the next command
takes what reached the server into account."""

from __future__ import annotations

import errno
import json
import os
import re
from pathlib import Path

import pytest
from conftest import ProjectDir

from vboplan import sensitive
from vboplan.state import parse_journal


def test_a_full_disk_while_writing_the_snapshot(project: ProjectDir, monkeypatch: pytest.MonkeyPatch) -> None:
    real_replace = os.replace

    def disk_full_for_the_snapshot(src: str, dst: str) -> None:
        if Path(dst).name == "dev.json" and Path(dst).parent.name == "state":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", disk_full_for_the_snapshot)
    result = project.run("apply", "--env", "dev", "--auto-approve")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    # Change ids come from the addresses (six letters), nine settings fields here.
    assert re.search(r"applied (c[a-z0-9]{5}, ){9}but the state snapshot could not be written", errors[0]), errors[0]
    assert "No space left on device" in errors[0] and ".vboplan/state/dev.journal.json records what was sent" in errors[0]
    state = project.root / ".vboplan/state"
    assert not (state / "dev.json").exists()
    journal = parse_journal((state / "dev.journal.json").read_text())
    assert journal["writes"] and all(w["state"] == "applied" for w in journal["writes"])
    password = next(c for w in journal["writes"] for c in w["changes"] if c["address"].endswith("userPassword"))
    assert "after" not in password and sensitive.matches(os.environ["SMTP_PASSWORD"], password["after_digest"])

    monkeypatch.setattr(os, "replace", real_replace)  # space freed
    plan = project.run("plan", "--env", "dev", "--detailed-exitcode")
    assert plan.exit_code == 0, plan.output  # nothing left, the password included, and no drift
    assert re.search(r"was interrupted; its write journal says: (c[a-z0-9]{5}, ){8}c[a-z0-9]{5} reached the server",
                     plan.stderr), plan.stderr
    assert "changed outside" not in plan.output
    applied = project.run("apply", "--env", "dev", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert "No changes" in applied.stdout
    snapshot = json.loads((state / "dev.json").read_text())
    assert snapshot["last_apply"]["interrupted"] is True and len(snapshot["last_apply"]["applied"]) == 9
    assert not (state / "dev.journal.json").exists()


def test_a_journal_that_cannot_be_written_stops_before_sending(project: ProjectDir,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    real_replace = os.replace

    def disk_full(src: str, dst: str) -> None:
        if Path(dst).name == "dev.journal.json":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", disk_full)
    result = project.run("apply", "--env", "dev", "--auto-approve")
    monkeypatch.setattr(os, "replace", real_replace)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "not sent: the write journal could not record it" in result.stderr
    assert project.server("dev")["audit_email_settings"]["port"] == 25  # nothing reached the server


def test_one_append_per_request_each_holding_the_answers_before_it(project: ProjectDir,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from vboplan.state import StateStore

    saved: list[tuple[str, str]] = []  # (how, the whole journal after it)
    real_write, real_append = StateStore.write_journal, StateStore.append_journal

    def writing(store: StateStore, text: str) -> None:
        saved.append(("whole", text))
        real_write(store, text)

    def appending(store: StateStore, added: str, whole: str) -> None:
        assert whole == saved[-1][1] + added  # nothing written before is written again
        saved.append(("append", whole))
        real_append(store, added, whole)

    monkeypatch.setattr(StateStore, "write_journal", writing)
    monkeypatch.setattr(StateStore, "append_journal", appending)
    # Two requests: the audit mail settings and the job mail settings.
    result = project.run("apply", "--env", "dev", "--auto-approve", "--var", "notify_success=true")
    assert result.exit_code == 0, result.output
    writes = parse_journal(saved[-1][1])["writes"]
    assert len(writes) > 1 and all(w["state"] == "applied" for w in writes)
    # Written whole once (the apply's record and the first request), then one append per request and the last answer.
    assert [how for how, _ in saved] == ["whole"] + ["append"] * len(writes)
    for n, (_, text) in enumerate(saved[:-1]):
        # Saved before request n+1 is sent: it is recorded as sent, and every earlier one as answered.
        assert [w["state"] for w in parse_journal(text)["writes"]] == ["applied"] * n + ["sent"], n
    lines = saved[-1][1].splitlines()
    assert len(lines) == 1 + 2 * len(writes)  # one line per event


def test_a_journal_cut_short_by_a_kill_is_read_without_its_last_line(project: ProjectDir) -> None:
    head = {"format_version": 2, "event": "start", "id": "j1", "environment": "dev", "by": "ann",
            "started_at": "2026-12-02T10:00:00Z", "scope": {}, "checksum": "x", "planned_by": "ann", "approvals": []}
    sent = {"event": "sent", "n": 1, "description": "PUT /v8/AuditEmailSettings", "sent_at": "t", "changes": []}
    text = "\n".join(json.dumps(e) for e in (head, sent)) + "\n"
    assert parse_journal(text)["writes"][0]["state"] == "sent"
    # The answer's line was being written when the run was killed: the write stays "sent" (checked live later).
    torn = text + '{"event":"answered","n":1,"sta'
    assert parse_journal(torn)["writes"] == parse_journal(text)["writes"]
    answered = text + json.dumps({"event": "answered", "n": 1, "state": "applied", "answered_at": "t2"}) + "\n"
    assert parse_journal(answered)["writes"][0]["state"] == "applied"
    # A line vboplan did not write, anywhere but at the end, is refused.
    with pytest.raises(ValueError, match="not valid JSON"):
        parse_journal(text + "garbage\n")
    with pytest.raises(ValueError, match="did not write"):
        parse_journal(text + json.dumps({"event": "answered", "n": 7, "state": "applied"}) + "\n")


def test_a_journal_of_the_earlier_format_is_still_recovered(project: ProjectDir) -> None:
    """A journal vboplan wrote before its journal was append-only (one JSON document): the next plan and apply fold
    it in as before."""
    from vboplan.project.config import load_project
    from vboplan.state import StateStore

    assert project.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
    state = project.root / ".vboplan/state"
    snapshot = json.loads((state / "dev.json").read_text())
    saved = project.root / "scope.plan.json"
    assert project.run("plan", "--env", "dev", "--out", str(saved)).exit_code == 0
    scope = json.loads(saved.read_text())["scope"]  # what an apply's journal records
    # The server changed (as a write would) and the format-1 journal says that write was sent, no answer seen.
    project.api("dev").put("/v8/AuditEmailSettings", json={"port": 2526})
    change = {"id": "cport1", "kind": "audit_email_settings", "address": "audit_email_settings.port",
              "action": "update", "detail": {"field": "port"}, "sensitive": False, "after": 2526}
    old = {"format_version": 1, "id": "old-journal", "environment": "dev", "server": snapshot["server"],
           "started_at": "2026-11-30T10:00:00Z", "by": "bob", "checksum": "c", "planned_by": "bob", "approvals": [],
           "scope": scope, "writes": [{"n": 1, "description": "PUT /v8/AuditEmailSettings", "state": "sent",
                                    "sent_at": "2026-11-30T10:00:01Z", "changes": [change]}]}
    loaded = load_project(project.root)
    store = StateStore(loaded, loaded.environment("dev"))
    with store.lock("test"):
        store.write_journal(json.dumps(old, indent=1) + "\n")
    assert store.read_journal()["writes"][0]["state"] == "sent"
    plan = project.run("plan", "--env", "dev")
    assert "the apply by bob at 2026-11-30T10:00:00Z was interrupted; its write journal says: cport1 reached the " \
           "server" in plan.stderr, plan.stderr
    assert "changed outside" not in plan.stdout  # what the journal says was sent is no drift
    applied = project.run("apply", "--env", "dev", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert not (state / "dev.journal.json").exists()
    # The recovery was recorded first (now the backup), then the apply that set the port back.
    recovered = json.loads((state / "dev.json.bak").read_text())["last_apply"]
    assert recovered["journal"] == "old-journal" and [c["id"] for c in recovered["applied"]] == ["cport1"]
