"""Cloud accounts (``/Accounts``, v6-v8) end to end against the emulator, one project per version shared by the
steps: a create plans the secret key as ``(sensitive) will be set``; apply, converge; a changed description is an
update, a changed secret rotates it (and only it); an upper-case userName is refused; an account in no template
is deleted. The planted secret key is in no output, plan file, state file or emulator answer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import SEED, ProjectDir, assert_one_clean_error

SECRET_KEY = "wJalrXUtnFEMI-K7MDENG-planted-1"
ROTATED_KEY = "wJalrXUtnFEMI-K7MDENG-planted-2"

ACCOUNT = """\
cloud_accounts:
  akiaexample01: {accountType: amazonS3Account, description: DESCRIPTION, password: {{ secret("S3_SECRET_KEY") }}}
"""


def _config(version: str) -> str:
    return (f"templates: [templates/*.yaml.j2]\nenvironments:\n  dev:\n    server: emulator:dev\n"
            f"    api_version: {version}\n    username: admin\n    password_env: VBO_TEST_PASSWORD\n")


def _rows(result: Any) -> dict[str, tuple[str, Any, Any]]:
    assert result.exit_code in (0, 2), result.output
    return {c["address"]: (c["action"], c["before"], c["after"]) for c in json.loads(result.stdout)["plans"][0]["changes"]}


def _accounts(project: ProjectDir, version: str) -> list[dict[str, Any]]:
    return project.api("dev").get(f"/{version}/Accounts").json()


def _no_planted_secret(project: ProjectDir, *texts: str) -> None:
    for text in texts:
        assert SECRET_KEY not in text and ROTATED_KEY not in text
    for path in project.root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert SECRET_KEY.encode() not in data and ROTATED_KEY.encode() not in data, path


@pytest.mark.parametrize("version", ["v6", "v7", "v8"])
def test_cloud_account_lifecycle(project: ProjectDir, version: str, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    for path in (project.root / "templates").glob("*"):
        path.unlink()
    project.write("vboplan.yaml", _config(version))
    project.seed("dev", {**SEED, "cloud_accounts": {"oldaccount": {"accountType": "azureBlobAccount",
                                                                    "description": "old"}}})
    monkeypatch.setenv("S3_SECRET_KEY", SECRET_KEY)
    project.write("templates/accounts.yaml.j2", ACCOUNT.replace("DESCRIPTION", "S3 archive"))
    outputs: list[str] = []

    planfile = tmp_path / "plan.json"
    planned = project.run("plan", "--env", "dev", "--format", "json", "--out", str(planfile))
    assert _rows(planned) == {
        'cloud_accounts["akiaexample01"]': ("create", None, {"accountType": "amazonS3Account",
                                                             "description": "S3 archive"}),
        'cloud_accounts["akiaexample01"].password': ("update", None, None),
        'cloud_accounts["oldaccount"]': ("delete", {"accountType": "azureBlobAccount", "description": "old"}, None)}
    table = project.run("plan", "--env", "dev")
    assert "(sensitive) will be set" in table.stdout, table.stdout
    outputs += [planned.output, table.output]
    applied = project.run("apply", str(planfile))
    assert applied.exit_code == 0, applied.output
    outputs.append(applied.output)
    live = _accounts(project, version)
    assert [(a["userName"], a["accountType"], a["description"]) for a in live] == [
        ("akiaexample01", "amazonS3Account", "S3 archive")]
    assert "password" not in live[0]
    converged = project.run("plan", "--env", "dev", "--detailed-exitcode")
    assert converged.exit_code == 0, converged.output

    # A new description is an update of that field; a new secret key rotates the secret, and nothing else.
    project.write("templates/accounts.yaml.j2", ACCOUNT.replace("DESCRIPTION", "S3 archive EU"))
    assert _rows(project.run("plan", "--env", "dev", "--format", "json")) == {
        'cloud_accounts["akiaexample01"].description': ("update", "S3 archive", "S3 archive EU")}
    assert project.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
    monkeypatch.setenv("S3_SECRET_KEY", ROTATED_KEY)
    rotate = project.run("plan", "--env", "dev", "--format", "json")
    assert _rows(rotate) == {'cloud_accounts["akiaexample01"].password': ("update", None, None)}
    rotated = project.run("apply", "--env", "dev", "--auto-approve")
    assert rotated.exit_code == 0, rotated.output
    outputs += [rotate.output, rotated.output]
    emulated = json.dumps(project.emulator("dev").store.collections["cloud_accounts"])
    assert ROTATED_KEY not in emulated and "passwordSha256" in emulated  # the server keeps a digest only
    assert project.run("plan", "--env", "dev", "--detailed-exitcode").exit_code == 0
    outputs.append(project.run("state", "show", "--env", "dev").output)

    # The API wants the user name in lower case.
    project.write("templates/accounts.yaml.j2", ACCOUNT.replace("akiaexample01", "AKIAEXAMPLE01"))
    assert_one_clean_error(project.run("plan", "--env", "dev"), "templates/accounts.yaml.j2:2",
                           "lower-case", "akiaexample01")

    # Left out of every template: deleted.
    project.write("templates/accounts.yaml.j2", "cloud_accounts: {}\n")
    assert _rows(project.run("plan", "--env", "dev", "--format", "json")) == {
        'cloud_accounts["akiaexample01"]': ("delete", {"accountType": "amazonS3Account",
                                                       "description": "S3 archive EU"}, None)}
    assert project.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
    assert _accounts(project, version) == []
    _no_planted_secret(project, *outputs)
