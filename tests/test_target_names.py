"""``--target`` and ``--exclude`` take an object's bare name, written without its kind (``--target Whole``,
``--target "Contoso mail"``), through the CLI against the emulator over real HTTP: the one object of any kind
that has the name (a job's or role's ``ORGANIZATION/NAME`` key included) is selected, a name two objects share is
refused listing both addresses, and a mistyped name is refused with the nearest object's address."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import API_SECRET, ProjectDir, Result, one_server_project, plan_rows
from test_backup_jobs import ORG, SEED

from vboplan.emulator import Store, start

TEMPLATES = f"""\
backup_jobs:
  Whole: {{organization: {ORG}, repository: Repo EU, backupType: EntireOrganization}}
  Contoso mail:
    organization: {ORG}
    repository: Repo US
    backupType: SelectedItems
    selectedItems: [{{user: jane@contoso.com, mailbox: true}}]
  Desk: {{organization: {ORG}, repository: Repo US, backupType: EntireOrganization}}
restore_operator_roles:
  Desk: {{organization: {ORG}, roleType: EntireOrganization, operators: [{{user: ceo@contoso.com}}]}}
"""


def _refused(result: Result, *fragments: str) -> str:
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert result.exit_code == 1 and len(errors) == 1 and "Traceback" not in result.output, result.output
    assert all(f in errors[0] for f in fragments), errors[0]
    return errors[0]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("VBO_TEST_PASSWORD", API_SECRET)
    monkeypatch.setenv("VBOPLAN_USER", "ann")
    with start(Store.from_data(SEED)) as server:
        made = one_server_project(tmp_path / "p", server.url, "v8")
        made.write("templates/jobs.yaml.j2", TEMPLATES)
        yield made


def _objects(result: Result) -> set[str]:
    assert result.exit_code == 0, result.output
    return {a.split(".", 1)[0] if "]." in a else a for a in plan_rows(result)}


def test_a_bare_name_targets_the_one_object_that_has_it(project: ProjectDir, tmp_path: Path) -> None:
    every = _objects(project.run("plan", "--env", "e", "--format", "json"))
    assert every == {'backup_jobs["Whole"]', 'backup_jobs["Contoso mail"]', 'backup_jobs["Desk"]',
                     'restore_operator_roles["Desk"]'}, every
    whole = project.run("plan", "--env", "e", "--format", "json", "--target", "Whole")
    assert _objects(whole) == {'backup_jobs["Whole"]'}
    # A name with a space (no address parses it), in another case, with its item rows.
    mail = project.run("plan", "--env", "e", "--format", "json", "--target", "contoso MAIL")
    assert set(plan_rows(mail)) == {'backup_jobs["Contoso mail"]',
                                    'backup_jobs["Contoso mail"].selectedItems.user["jane@contoso.com"]'}
    left = project.run("plan", "--env", "e", "--format", "json", "--exclude", "Whole", "--exclude", "Contoso mail")
    assert _objects(left) == {'backup_jobs["Desk"]', 'restore_operator_roles["Desk"]'}

    # The partial plan applies as planned: its file's selection is made again from the same words.
    plan_file = tmp_path / "whole.json"
    assert project.run("plan", "--env", "e", "--target", "Whole", "--out", str(plan_file)).exit_code == 0
    applied = project.run("apply", str(plan_file))
    assert applied.exit_code == 0, applied.output
    rest = project.run("plan", "--env", "e", "--format", "json")
    assert 'backup_jobs["Whole"]' not in _objects(rest)


def test_a_bare_name_two_objects_share_or_none_has_is_refused(project: ProjectDir) -> None:
    _refused(project.run("plan", "--env", "e", "--target", "Desk"), "--target Desk names several objects",
             'backup_jobs["Desk"]', 'restore_operator_roles["Desk"]')
    _refused(project.run("plan", "--env", "e", "--exclude", "desk"), 'backup_jobs["Desk"]',
             'restore_operator_roles["Desk"]')
    _refused(project.run("plan", "--env", "e", "--target", "Wholle"), "matches nothing",
             'did you mean backup_jobs["Whole"]')
    _refused(project.run("plan", "--env", "e", "--target", "Contoso mial"), 'did you mean backup_jobs["Contoso mail"]')
    # A kind's name still means the kind.
    jobs = project.run("plan", "--env", "e", "--format", "json", "--target", "backup_jobs")
    assert _objects(jobs) == {'backup_jobs["Whole"]', 'backup_jobs["Contoso mail"]', 'backup_jobs["Desk"]'}
    assert json.loads(jobs.stdout)
