"""A backup job's copy job stands in the way of deleting or replacing the job (the server refuses to delete a job a
copy job copies, 409), on v6, v7 and v8 against the emulator over real HTTP. Where no template declares copy jobs,
vboplan leaves the copy job as it is, so the plan is refused up front, naming the copy job and what to do; where
templates declare copy jobs but not this one, its delete is sent before the job's DELETE."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import API_SECRET, ProjectDir, Result, api_client, listed, one_server_project
from test_backup_jobs import SEED
from test_job_replace import FABRIKAM

from vboplan.emulator import Store, start

JOB = """\
backup_jobs:
  Solo:
    organization: ORG
    repository: Repo EU
    backupType: SelectedItems
    selectedItems: [{user: USER, mailbox: true}]
COPIES
lifecycle:
  'backup_jobs["Solo"]': {allow_replace: true}
"""
CONTOSO = ("contoso.onmicrosoft.com", "jane@contoso.com")
MOVED = (FABRIKAM["name"], "bob@fabrikam.com")


def _refused(result: Result, *fragments: str) -> None:
    """Exit 1 with one error line (beside the plain-http warning) naming each fragment, and no traceback."""
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert result.exit_code == 1 and len(errors) == 1 and "Traceback" not in result.output, result.output
    assert all(f in errors[0] for f in fragments), errors[0]


def _write(project: ProjectDir, where: tuple[str, str], copies: str) -> None:
    project.write("templates/jobs.yaml.j2", JOB.replace("ORG", where[0]).replace("USER", where[1])
                  .replace("COPIES", copies))


@dataclass
class Copied:
    """A project of one environment whose apply made job Solo (contoso) with its copy job, on the server at
    ``http``, in API ``version``."""

    project: ProjectDir
    http: Any
    version: str


@pytest.fixture(params=["v6", "v7", "v8"])
def copied(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Copied]:
    version = request.param
    monkeypatch.setenv("VBO_TEST_PASSWORD", API_SECRET)
    monkeypatch.setenv("VBOPLAN_USER", "ann")
    with start(Store.from_data({**SEED, "organizations": [*SEED["organizations"], FABRIKAM]})) as server:
        project = one_server_project(tmp_path / "p", server.url, version)
        org = ", organization: contoso.onmicrosoft.com" if version == "v8" else ""
        _write(project, CONTOSO,
               f"copy_jobs:\n  Solo: {{repository: Archive EU, schedulePolicy: {{type: Immediate}}{org}}}")
        applied = project.run("apply", "--env", "e", "--auto-approve")
        assert applied.exit_code == 0, applied.output
        yield Copied(project, api_client(server.url, version), version)


def test_a_copy_job_in_no_template_refuses_the_plan_that_deletes_or_replaces_its_job(copied: Copied) -> None:
    project, http, version = copied.project, copied.http, copied.version
    jobs = listed(http, version, "Jobs")

    # The templates no longer declare copy jobs: the job moved to another organization would be replaced.
    _write(project, MOVED, "")
    refused = project.run("plan", "--env", "e")
    _refused(refused, 'backup_jobs["Solo"]', 'copy_jobs["Solo"] (backupJob) uses it',
             "no template declares copy_jobs", "vboplan import")
    assert "templates/jobs.yaml.j2:2" in refused.stderr, refused.stderr

    # The job removed from the templates would be deleted.
    project.write("templates/jobs.yaml.j2", "backup_jobs: {}\n")
    refused = project.run("plan", "--env", "e")
    _refused(refused, 'backup_jobs["Solo"] cannot be deleted', 'copy_jobs["Solo"] uses it',
             "no template declares copy_jobs")
    assert listed(http, version, "Jobs") == jobs
    assert len(listed(http, version, "CopyJobs")) == 1


def test_a_copy_job_the_templates_leave_out_is_deleted_before_its_job_is_replaced(copied: Copied,
                                                                                 tmp_path: Path) -> None:
    project, http, version = copied.project, copied.http, copied.version
    _write(project, MOVED, "copy_jobs: {}")
    plan_file = tmp_path / "plan.json"
    planned = project.run("plan", "--env", "e", "--out", str(plan_file))
    assert planned.exit_code == 0, planned.output
    shown = project.run("show", "--requests", "--format", "json", str(plan_file))
    requests = [(r["method"], r["path"]) for r in json.loads(shown.stdout)["plans"][0]["requests"]]
    deletes = [p for m, p in requests if m == "DELETE"]
    assert len(deletes) == 2 and "CopyJobs" in deletes[0] and "/Jobs/" in deletes[1], requests
    applied = project.run("apply", str(plan_file))
    assert applied.exit_code == 0, applied.output
    assert listed(http, version, "CopyJobs") == []
    assert [j["name"] for j in listed(http, version, "Jobs")] == ["Solo"]
    assert project.run("plan", "--env", "e", "--detailed-exitcode").exit_code == 0
