"""A repository that a backup job or a copy job uses stands in the way of deleting or replacing it (the server refuses
to delete a repository in use, 409), on v6, v7 and v8 against the emulator over real HTTP. Where no template
declares the jobs, vboplan leaves them as they are (it neither reads nor changes a kind in no template), so it cannot
move them: the plan is refused up front, naming the job and what to do, instead of an apply failing halfway."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import API_SECRET, ProjectDir, Result, api_client, listed, one_server_project
from test_backup_jobs import SEED as JOBS_SEED

from vboplan.emulator import Store, start

SEED = {key: JOBS_SEED[key] for key in ("credentials", "organizations", "proxies")}
REPOSITORIES = """\
backup_repositories:
  Repo EU: {proxy: proxy01.contoso.local, path: 'D:\\EU', retentionType: RETENTION}
  Repo US: {proxy: proxy01.contoso.local, path: 'D:\\US', retentionType: ItemLevel}
lifecycle:
  'backup_repositories["Repo EU"]': {allow_replace: true}
"""
JOBS = """\
backup_jobs:
  Solo:
    organization: contoso.onmicrosoft.com
    repository: Repo EU
    backupType: SelectedItems
    selectedItems: [{user: jane@contoso.com, mailbox: true}]
"""


def _refused(result: Result, *fragments: str) -> None:
    """Exit 1 with one error line (beside the plain-http warning) naming each fragment, and no traceback."""
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert result.exit_code == 1 and len(errors) == 1 and "Traceback" not in result.output, result.output
    assert all(f in errors[0] for f in fragments), errors[0]


@pytest.mark.parametrize("version", ["v6", "v7", "v8"])
def test_a_job_in_no_template_refuses_the_plan_that_deletes_or_replaces_its_repository(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version: str) -> None:
    monkeypatch.setenv("VBO_TEST_PASSWORD", API_SECRET)
    monkeypatch.setenv("VBOPLAN_USER", "ann")
    with start(Store.from_data(SEED)) as server:
        project: ProjectDir = one_server_project(tmp_path / "p", server.url, version)
        project.write("templates/repos.yaml.j2", REPOSITORIES.replace("RETENTION", "ItemLevel"))
        project.write("templates/jobs.yaml.j2", JOBS)
        applied = project.run("apply", "--env", "e", "--auto-approve")
        assert applied.exit_code == 0, applied.output
        http = api_client(server.url, version)
        repositories, jobs = listed(http, version, "BackupRepositories"), listed(http, version, "Jobs")

        # No template declares backup_jobs any more: the job is left as it is, on the repository a change replaces.
        (project.root / "templates/jobs.yaml.j2").unlink()
        project.write("templates/repos.yaml.j2", REPOSITORIES.replace("RETENTION", "SnapshotBased"))
        refused = project.run("plan", "--env", "e")
        _refused(refused, 'backup_repositories["Repo EU"]', "retentionType cannot change after creation",
                 'backup_jobs["Solo"] (repository) uses it', "no template declares backup_jobs", "vboplan import")
        assert "templates/repos.yaml.j2:2" in refused.stderr, refused.stderr
        assert project.run("apply", "--env", "e", "--auto-approve").exit_code == 1

        # The repository removed from the templates would be deleted.
        project.write("templates/repos.yaml.j2", REPOSITORIES.split("  Repo EU")[0]
                      + "  Repo US: {proxy: proxy01.contoso.local, path: 'D:\\US', retentionType: ItemLevel}\n")
        refused = project.run("plan", "--env", "e")
        _refused(refused, 'backup_repositories["Repo EU"] cannot be deleted', 'backup_jobs["Solo"] (repository) uses it',
                 "no template declares backup_jobs")
        assert listed(http, version, "BackupRepositories") == repositories
        assert listed(http, version, "Jobs") == jobs

        # Declared again, the job is the plan's to move: pointed to Repo US, the repository is replaced.
        project.write("templates/repos.yaml.j2", REPOSITORIES.replace("RETENTION", "SnapshotBased"))
        project.write("templates/jobs.yaml.j2", JOBS.replace("Repo EU", "Repo US"))
        moved = project.run("apply", "--env", "e", "--auto-approve")
        assert moved.exit_code == 0, moved.output
        [job] = listed(http, version, "Jobs")
        by_id = {r["id"]: r for r in listed(http, version, "BackupRepositories")}
        assert by_id[job["repositoryId"]]["name"] == "Repo US"
        assert {r["name"]: r["retentionType"] for r in by_id.values()} == {"Repo EU": "SnapshotBased",
                                                                           "Repo US": "ItemLevel"}
        assert project.run("plan", "--env", "e", "--detailed-exitcode").exit_code == 0


def test_a_key_rotation_is_refused_while_the_repositories_using_the_key_are_in_no_template(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """create_before_destroy moves what uses the old key only where a template declares it: with the repositories
    in no template, the rotation would create the new key and then fail to delete the old one (in use)."""
    monkeypatch.setenv("VBO_TEST_PASSWORD", API_SECRET)
    monkeypatch.setenv("ARCHIVE_KEY_PASSWORD", "unmanaged-rotation-planted-1")
    key = "encryption_keys:\n  Archive key: {password: {{ secret(\"ARCHIVE_KEY_PASSWORD\") }}}\n"
    with start(Store.from_data(SEED)) as server:
        project: ProjectDir = one_server_project(tmp_path / "p", server.url, "v8")
        project.write("templates/keys.yaml.j2", key)
        project.write("templates/repos.yaml.j2", "backup_repositories:\n  Repo EU: {proxy: proxy01.contoso.local, "
                      "path: 'D:\\EU', retentionType: ItemLevel, encryptionKey: Archive key}\n")
        assert project.run("apply", "--env", "e", "--auto-approve").exit_code == 0
        (project.root / "templates/repos.yaml.j2").unlink()
        monkeypatch.setenv("ARCHIVE_KEY_PASSWORD", "unmanaged-rotation-planted-2")
        project.write("templates/keys.yaml.j2", key + "lifecycle:\n  'encryption_keys[\"Archive key\"]': "
                      "{allow_replace: true, create_before_destroy: true}\n")
        refused = project.run("plan", "--env", "e")
        _refused(refused, 'encryption_keys["Archive key"]', 'backup_repositories["Repo EU"] (encryptionKey) uses it',
                 "no template declares backup_repositories")
        assert len(listed(api_client(server.url, "v8"), "v8", "EncryptionKeys")) == 1
        assert "planted" not in refused.output
