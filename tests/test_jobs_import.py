"""Jobs and copy jobs that vboplan did not make (seeded as an admin's console would leave them: every principal type,
exclusions, a disabled job, a job backing up the whole organization, a copy job the server named, runs on record) are
written by ``import`` by name, and the next plan shows no changes, on v6, v7 and v8 against the emulator over real
HTTP; nor does it once the jobs have run again (what the server records of runs is no setting, though v6/v7 take the
answer's component as the request)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import API_SECRET, ProjectDir, one_server_project
from test_backup_jobs import ORG, SEED

from vboplan.emulator import Store, start

JOBS = {
    "Board": {"organization": ORG, "repository": "Repo EU", "backupType": "SelectedItems",
              "description": "The board's mail", "selectedItems": [
                  {"user": "ceo@contoso.com", "mailbox": True, "archiveMailbox": True, "oneDrive": True},
                  {"group": "hr@contoso.com", "mailbox": True},
                  {"site": "https://contoso.sharepoint.com/sites/hr"},
                  {"team": "Finance"}],
              "excludedItems": [{"user": "test@contoso.com"}],
              "schedulePolicy": {"type": "Daily", "dailyType": "Everyday", "dailyTime": "22:00:00"}},
    "Everyone": {"lastStatus": "Success", "lastRun": "2026-12-01T22:00:00Z", "nextRun": "2026-12-02T22:00:00Z",
                 "organization": ORG, "repository": "Repo US", "backupType": "EntireOrganization",
                 "excludedItems": [{"user": "jane@contoso.com"}], "isEnabled": False},
}


@pytest.mark.parametrize("version", ["v6", "v7", "v8"])
def test_jobs_and_copy_jobs_made_elsewhere_import_and_converge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                version: str) -> None:
    monkeypatch.setenv("VBO_TEST_PASSWORD", API_SECRET)
    monkeypatch.setenv("VBOPLAN_USER", "ann")
    seed = {**SEED, "backup_jobs": JOBS,
            "copy_jobs": {"Board": {"repository": "Archive EU", "schedulePolicy": {"type": "Immediate"},
                                   "lastStatus": "Warning"}}}
    store = Store.from_data(seed)
    with start(store) as server:
        made = one_server_project(tmp_path / "made", server.url, version)
        project = ProjectDir(tmp_path / "p")
        project.write("vboplan.yaml", made.root.joinpath("vboplan.yaml").read_text())
        done = project.run("import", "--env", "e", "--resource", "backup_jobs", "--resource", "copy_jobs")
        assert done.exit_code == 0, done.output
        written = "\n".join(p.read_text() for p in project.root.rglob("*") if p.is_file() and ".vboplan" not in p.parts)
        assert "Board" in written and "Everyone" in written and "ceo@contoso.com" in written, done.output + written
        assert not any(name in written for name in ("lastStatus", "lastRun", "nextRun", "runNow")), written
        again = project.run("plan", "--env", "e", "--detailed-exitcode")
        assert again.exit_code == 0, again.output + written

        # The jobs run again: the server's record of it changes, nothing of what the templates say does.
        for job in [*store.collections["backup_jobs"], *store.collections["copy_jobs"]]:
            job.update(lastStatus="Failed", lastRun="2026-12-02T22:00:00Z", nextRun="2026-12-03T22:00:00Z")
        again = project.run("plan", "--env", "e", "--detailed-exitcode")
        assert again.exit_code == 0, again.output
