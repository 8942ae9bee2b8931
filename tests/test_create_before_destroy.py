"""create_before_destroy (v7 and v8, against the emulator): a key two repositories use is rotated without replacing
them: the new key is created, each repository is moved to it by a PUT carrying its new id, then the old key is
deleted; the plan says so in every view, the requests say it in order, and it converges. Without the rule the plan is
refused as before; a kind whose server keeps names unique cannot use it; the templates' rule is the one apply obeys;
a plan file row cannot drop it. Two keys of one description (what a cut-short apply leaves) are a clear error. The
planted passwords are in no output and no file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import API_SECRET, SEED, ProjectDir, assert_one_clean_error
from kill_harness import REPO

from vboplan.emulator import Emulator, Store, start
from vboplan.planning.plan import plan_digest

PASSWORD = "Kx9-before-destroy-planted-1"
PROXIES = [{"hostName": "proxy01.contoso.local", "port": 9193, "description": ""}]
KEY = 'encryption_keys["Archive key"]'

TEMPLATE = """\
encryption_keys:
  Archive key: {password: {{ secret("ARCHIVE_KEY_PASSWORD") }}}
backup_repositories:
  Repo EU: {proxy: proxy01.contoso.local, path: 'D:\\EU', retentionType: ItemLevel, encryptionKey: Archive key}
  Repo US: {proxy: proxy01.contoso.local, path: 'D:\\US', retentionType: ItemLevel, encryptionKey: Archive key,
            description: US}
"""


def _list(project: ProjectDir, version: str, path: str) -> list[dict[str, Any]]:
    body = project.api("dev").get(f"/{version}/{path}").json()
    return body["results"] if isinstance(body, dict) else body


def _rules(**rules: bool) -> str:
    return "lifecycle:\n  '" + KEY + "': {" + ", ".join(f"{k}: {str(v).lower()}" for k, v in rules.items()) + "}\n"


@pytest.mark.parametrize("version", ["v7", "v8"])
def test_a_key_in_use_is_rotated_by_creating_the_new_one_first(project: ProjectDir, version: str, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    for path in (project.root / "templates").glob("*"):
        path.unlink()
    project.write("vboplan.yaml", "templates: [templates/*.yaml.j2]\nenvironments:\n  dev:\n    server: emulator:dev\n"
                  f"    api_version: {version}\n    username: admin\n    password_env: VBO_TEST_PASSWORD\n")
    project.seed("dev", {**SEED, "proxies": PROXIES})
    monkeypatch.setenv("ARCHIVE_KEY_PASSWORD", PASSWORD)
    project.write("templates/repos.yaml.j2", TEMPLATE)
    first = project.run("apply", "--env", "dev", "--auto-approve")
    assert first.exit_code == 0, first.output
    [old] = _list(project, version, "EncryptionKeys")
    repos = {r["name"]: r["id"] for r in _list(project, version, "BackupRepositories")}

    # A new password means a new key: refused while the repositories use the old one, unless it is created first.
    monkeypatch.setenv("ARCHIVE_KEY_PASSWORD", PASSWORD + "-new")
    project.write("templates/repos.yaml.j2", TEMPLATE + _rules(allow_replace=True))
    assert_one_clean_error(project.run("plan", "--env", "dev"), 'backup_repositories["Repo EU"] (encryptionKey) uses it')
    project.write("templates/repos.yaml.j2", TEMPLATE + _rules(allow_replace=True, create_before_destroy=True))
    planfile = tmp_path / "plan.json"
    planned = project.run("plan", "--env", "dev", "--out", str(planfile))
    assert planned.exit_code == 0, planned.output
    assert "1 to replace" in planned.stdout and "-/+ replace" in planned.stdout, planned.stdout
    said = "a new object is created, what uses the old one is moved to it, then the old one is deleted"
    for fmt in ("table", "markdown", "html", "json"):
        view = project.run("show", "--format", fmt, str(planfile)).stdout
        assert said in view, (fmt, view)
    shown = project.run("show", "--requests", "--format", "json", str(planfile))
    requests = json.loads(shown.stdout)["plans"][0]["requests"]
    assert [(r["method"], r["path"].split("/", 2)[2]) for r in requests] == [
        ("POST", "EncryptionKeys"), ("PUT", f"BackupRepositories/{repos['Repo EU']}"),
        ("PUT", f"BackupRepositories/{repos['Repo US']}"), ("DELETE", f"EncryptionKeys/{old['id']}")], requests
    assert requests[0]["body"]["password"] == "(sensitive)"
    for put in requests[1:3]:
        assert put["body"]["encryptionKeyId"] == "(known after apply)", put
        assert put["body"]["retentionType"] == "ItemLevel", put  # the fields every PUT carries, as recorded

    # A plan file row that drops the rule (resealed) is not what its address and the plan's rules give.
    forged = json.loads(planfile.read_text(encoding="utf-8"))
    row = next(c for c in forged["changes"] if c["action"] == "replace")
    row["detail"] = {k: v for k, v in row["detail"].items() if k != "create_before_destroy"}
    forged.update(author_signature=None, author_key=None)
    forged["checksum"] = plan_digest(forged)
    (tmp_path / "forged.json").write_text(json.dumps(forged), encoding="utf-8")
    assert_one_clean_error(project.run("apply", str(tmp_path / "forged.json")), row["id"], "detail")
    # The templates' rule is the one apply obeys: with it gone from them, the plan made with it is refused.
    project.write("templates/repos.yaml.j2", TEMPLATE + _rules(allow_replace=True))
    assert_one_clean_error(project.run("apply", str(planfile)), "lifecycle", "create the new object before")
    assert [k["id"] for k in _list(project, version, "EncryptionKeys")] == [old["id"]]

    project.write("templates/repos.yaml.j2", TEMPLATE + _rules(allow_replace=True, create_before_destroy=True))
    applied = project.run("apply", str(planfile))
    assert applied.exit_code == 0, applied.output
    [new] = _list(project, version, "EncryptionKeys")
    assert new["id"] != old["id"] and new["description"] == "Archive key"
    after = _list(project, version, "BackupRepositories")
    assert {r["name"]: (r["id"], r["encryptionKeyId"]) for r in after} == {
        "Repo EU": (repos["Repo EU"], new["id"]), "Repo US": (repos["Repo US"], new["id"])}
    again = project.run("plan", "--env", "dev", "--detailed-exitcode")
    assert again.exit_code == 0, again.output

    # Two keys of one description (a cut-short create_before_destroy leaves them): a clear error naming both.
    project.api("dev").post(f"/{version}/EncryptionKeys", json={"description": "Archive key", "password": "x-1"})
    twins = project.run("plan", "--env", "dev")
    assert_one_clean_error(twins, f'{KEY}: the server holds two encryption_keys objects', new["id"])

    outputs = [first.output, planned.output, shown.output, applied.output, again.output, twins.output]
    for text in outputs:
        assert PASSWORD not in text
    for path in project.root.rglob("*"):
        if path.is_file():
            assert PASSWORD not in path.read_text(encoding="utf-8", errors="replace"), path


def test_create_before_destroy_needs_a_server_that_holds_two_objects_of_one_name(
        project: ProjectDir, monkeypatch: pytest.MonkeyPatch) -> None:
    for path in (project.root / "templates").glob("*"):
        path.unlink()
    project.seed("dev", {**SEED, "proxies": PROXIES})
    monkeypatch.setenv("ARCHIVE_KEY_PASSWORD", PASSWORD)
    project.write("templates/repos.yaml.j2", TEMPLATE)
    assert project.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
    project.write("templates/repos.yaml.j2", TEMPLATE.replace("retentionType: ItemLevel, encryptionKey: Archive key}",
                                                              "retentionType: SnapshotBased, encryptionKey: Archive key}")
                  + "lifecycle:\n  'backup_repositories[\"Repo EU\"]': {allow_replace: true, create_before_destroy: "
                  "true}\n")
    assert_one_clean_error(project.run("plan", "--env", "dev"), 'backup_repositories["Repo EU"]',
                           "create_before_destroy", "one backup_repositories object per name")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_an_apply_killed_after_the_new_key_leaves_a_clear_way_back(project: ProjectDir, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGKILL right after the new key's POST lands (before the repositories move): the server holds two keys of one
    description; the next plan names both and says what to do; the old key cannot be deleted (in use), the new one
    can; then the journal's recovery says the create did not stay, and the replace is planned again and converges."""
    for path in (project.root / "templates").glob("*"):
        path.unlink()
    monkeypatch.setenv("ARCHIVE_KEY_PASSWORD", PASSWORD)
    project.write("templates/repos.yaml.j2", TEMPLATE)
    # The answer to the new key's POST is held, the key created, until the apply is killed: the kill falls exactly
    # between the create and what the apply does with its answer, however loaded the machine (a kill timed from the
    # server's change log once came too late).
    armed, held, killed = threading.Event(), threading.Event(), threading.Event()

    class HoldingTheCreate(Emulator):
        def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
            answer = super().__call__(environ, start_response)
            if armed.is_set() and not killed.is_set() and (environ["REQUEST_METHOD"], environ["PATH_INFO"]) == (
                    "POST", "/v8/EncryptionKeys"):
                held.set()
                killed.wait(120)
            return answer

    server = start(HoldingTheCreate(Store.from_data({**SEED, "proxies": PROXIES})))
    try:
        url = server.url
        project.write("vboplan.yaml", (project.root / "vboplan.yaml").read_text().replace("emulator:dev", url, 1))
        assert project.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
        http = httpx.Client(base_url=url)
        token = http.post("/v8/token", data={"grant_type": "password", "username": "admin",
                                             "password": API_SECRET}).json()["access_token"]
        http.headers["Authorization"] = f"Bearer {token}"
        [old] = http.get("/v8/EncryptionKeys").json()
        monkeypatch.setenv("ARCHIVE_KEY_PASSWORD", PASSWORD + "-new")
        project.write("templates/repos.yaml.j2", TEMPLATE + _rules(allow_replace=True, create_before_destroy=True))
        armed.set()
        applying = subprocess.Popen([sys.executable, "-m", "vboplan", "-C", str(project.root), "--no-color", "apply",
                                     "--env", "dev", "--auto-approve"], env={**os.environ, "PYTHONPATH": str(REPO)},
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while not held.wait(0.01) and applying.poll() is None and time.monotonic() < deadline:
            pass
        applying.send_signal(signal.SIGKILL)
        _, stderr = applying.communicate(timeout=30)
        killed.set()
        assert held.is_set(), f"the apply did not create the new key: {stderr}"
        keys = http.get("/v8/EncryptionKeys").json()
        assert len(keys) == 2, keys
        [new] = [k for k in keys if k["id"] != old["id"]]
        repos = http.get("/v8/BackupRepositories").json()["results"]
        assert {r["encryptionKeyId"] for r in repos} == {old["id"]}, repos  # killed before the moves

        stopped = project.run("plan", "--env", "dev")
        assert stopped.exit_code == 1 and "Traceback" not in stopped.output, stopped.output
        for fragment in (f"{KEY}: the server holds two encryption_keys objects", old["id"], new["id"],
                         "DELETE /v8/EncryptionKeys/ID"):
            assert fragment in stopped.stderr, stopped.stderr
        assert http.delete(f"/v8/EncryptionKeys/{old['id']}").status_code == 409
        assert http.delete(f"/v8/EncryptionKeys/{new['id']}").status_code in (200, 204)
        again = project.run("plan", "--env", "dev", "--format", "json")
        assert again.exit_code == 0, again.output
        assert "interrupted" in again.stderr and "did not" in again.stderr, again.stderr
        assert [(c["action"], c["address"]) for c in json.loads(again.stdout)["plans"][0]["changes"]
                if c["action"] != "update"] == [("replace", KEY)], again.stdout
        done = project.run("apply", "--env", "dev", "--auto-approve")
        assert done.exit_code == 0, done.output
        [key] = http.get("/v8/EncryptionKeys").json()
        assert key["id"] not in (old["id"], new["id"])
        assert {r["encryptionKeyId"] for r in http.get("/v8/BackupRepositories").json()["results"]} == {key["id"]}
        assert project.run("plan", "--env", "dev", "--detailed-exitcode").exit_code == 0
        for text in (stopped.output, again.output, done.output):
            assert PASSWORD not in text
    finally:
        killed.set()
        server.stop()
