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
    journal = json.loads((state / "dev.journal.json").read_text())
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


def test_one_journal_save_per_request_each_holding_the_answers_before_it(project: ProjectDir,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from vboplan.state import StateStore

    saved: list[dict] = []
    real_write = StateStore.write_journal

    def recording(store: StateStore, text: str) -> None:
        saved.append(json.loads(text))
        real_write(store, text)

    monkeypatch.setattr(StateStore, "write_journal", recording)
    # Two requests: the audit mail settings and the job mail settings.
    result = project.run("apply", "--env", "dev", "--auto-approve", "--var", "notify_success=true")
    assert result.exit_code == 0, result.output
    writes = saved[-1]["writes"]
    assert len(writes) > 1 and all(w["state"] == "applied" for w in writes)
    assert len(saved) == len(writes) + 1  # "about to send" for each request, then the last answer
    for n, journal in enumerate(saved[:-1]):
        # Saved before request n+1 is sent: it is recorded as sent, and every earlier one as answered.
        assert [w["state"] for w in journal["writes"]] == ["applied"] * n + ["sent"], n
