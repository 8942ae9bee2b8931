"""create_before_destroy (v7 and v8, against the emulator): a key two repositories use is rotated without replacing
them: the new key is created, each repository is moved to it by a PUT carrying its new id, then the old key is
deleted; the plan says so in every view, the requests say it in order, and it converges. Without the rule the plan is
refused as before; a kind whose server keeps names unique cannot use it; the templates' rule is the one apply obeys;
a plan file row cannot drop it. An apply killed at any of its writes leaves a state and a journal from which the next
plan finishes the rotation (the old key deposed: what uses it moved, then it deleted). Two keys of one description
that no apply left are a clear error. The planted passwords are in no output and no file."""

from __future__ import annotations

import hashlib
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
from vboplan.policy.severity import DEPOSED_NOTE

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

    # Two keys of one description that no apply left (one made in the console): a clear error naming both.
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


#: Each write of the rotation (the new key's POST, a PUT moving each repository, the old key's DELETE), as the request
#: the apply stops at: (method, path prefix, which one of them, what the server does: "held" carries it out and holds
#: the answer until the apply is killed, "unanswered" holds it without carrying it out until then, "refused" answers
#: 500 without carrying it out and the apply ends on that error).
STEPS = {
    "killed before the new key is created": ("POST", "/v8/EncryptionKeys", 1, "unanswered"),
    "killed once the new key is created": ("POST", "/v8/EncryptionKeys", 1, "held"),
    "killed once one repository is moved": ("PUT", "/v8/BackupRepositories/", 1, "held"),
    "killed once both repositories are moved": ("PUT", "/v8/BackupRepositories/", 2, "held"),
    "killed once the old key is deleted": ("DELETE", "/v8/EncryptionKeys/", 1, "held"),
    "the second move refused": ("PUT", "/v8/BackupRepositories/", 2, "refused"),
}


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("step", list(STEPS))
def test_an_apply_stopped_at_each_step_of_a_rotation_converges(project: ProjectDir, tmp_path: Path, step: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGKILL at each write of a create_before_destroy rotation (and a move the server refuses). Once the new key
    exists beside the old one, the next plan (the write journal folded in) keeps both: the old one as deposed, the
    new one as the key, so it moves what still uses the old one (a row each) and deletes the old one (a row, worded
    so in every view), and nothing else; its apply, from the saved plan, converges with one key, the new one with
    the new password, and both repositories on it: no object lost or created twice."""
    method, prefix, nth, how = STEPS[step]
    carried_out = how == "held"
    for path in (project.root / "templates").glob("*"):
        path.unlink()
    monkeypatch.setenv("ARCHIVE_KEY_PASSWORD", PASSWORD)
    project.write("templates/repos.yaml.j2", TEMPLATE)
    # The request is held (carried out or not) until the apply is killed: the kill falls exactly there, however
    # loaded the machine (a kill timed from the server's change log once came too late).
    armed, held, killed = threading.Event(), threading.Event(), threading.Event()
    seen = {"count": 0}

    class Holding(Emulator):
        def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
            here = (environ["REQUEST_METHOD"], environ["PATH_INFO"])
            mine = armed.is_set() and not killed.is_set() and here[0] == method and here[1].startswith(prefix)
            if mine:
                seen["count"] += 1
                mine = seen["count"] == nth
            if mine and not carried_out:
                held.set()
                if how == "unanswered":
                    killed.wait(120)
                start_response("500 Internal Server Error", [("Content-Type", "application/json")])
                return [b'{"message": "the test refuses this request"}']
            answer = super().__call__(environ, start_response)
            if mine:
                held.set()
                killed.wait(120)
            return answer

    store = Store.from_data({**SEED, "proxies": PROXIES})
    server = start(Holding(store))
    try:
        url = server.url
        project.write("vboplan.yaml", (project.root / "vboplan.yaml").read_text().replace("emulator:dev", url, 1))
        assert project.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
        http = httpx.Client(base_url=url)
        token = http.post("/v8/token", data={"grant_type": "password", "username": "admin",
                                             "password": API_SECRET}).json()["access_token"]
        http.headers["Authorization"] = f"Bearer {token}"
        [old] = http.get("/v8/EncryptionKeys").json()
        repos = {r["name"]: r["id"] for r in http.get("/v8/BackupRepositories").json()["results"]}
        monkeypatch.setenv("ARCHIVE_KEY_PASSWORD", PASSWORD + "-new")
        project.write("templates/repos.yaml.j2", TEMPLATE + _rules(allow_replace=True, create_before_destroy=True))
        armed.set()
        stderr = _stopped_apply(project, how, held, killed)
        assert held.is_set(), f"the apply did not reach {method} {prefix}: {stderr}"
        keys = http.get("/v8/EncryptionKeys").json()
        new = next((k for k in keys if k["id"] != old["id"]), None)
        on = {r["name"]: r["encryptionKeyId"] for r in http.get("/v8/BackupRepositories").json()["results"]}
        moved = sorted(name for name, key in on.items() if new is not None and key == new["id"])
        assert len(moved) == ((nth if carried_out else nth - 1) if method == "PUT" else 2 if method == "DELETE"
                              else 0), (on, keys)
        assert (new is None) == (method == "POST" and not carried_out), keys
        assert (old["id"] in {k["id"] for k in keys}) == (method != "DELETE"), keys
        state = project.root / ".vboplan/state"
        if how == "refused":  # the apply read back what the server held: its snapshot keeps the old key as deposed
            written = json.loads((state / "dev.json").read_text())
            [deposed] = written["resources"]["encryption_keys"]["deposed"]["Archive key"]
            assert deposed == {"id": old["id"], "journal": written["last_apply"]["journal"]}, deposed

        planfile = tmp_path / "plan.json"
        planned = project.run("plan", "--env", "dev", "--out", str(planfile), "--format", "json")
        assert planned.exit_code == 0, planned.output
        rows = {c["address"]: c for c in json.loads(planned.stdout)["plans"][0]["changes"]}
        gone = f'encryption_keys["Archive key (deposed {old["id"]})"]'
        if new is None:  # the new key was never created: the replace is planned again, whole
            assert {(c["action"], a) for a, c in rows.items() if c["action"] != "update"} == {("replace", KEY)}
        elif method == "DELETE":  # the old key is gone: nothing is left to do
            assert rows == {}, rows
        else:  # the old key stays, deposed: what still uses it moves to the new one, then it is deleted
            assert {a: (c["action"], c["before"], c["after"]) for a, c in rows.items()} == {
                gone: ("delete", {}, None),
                **{f'backup_repositories["{name}"].encryptionKey': ("update", gone, KEY)
                   for name in sorted(set(repos) - set(moved))}}, rows
            # A killed apply's journal is folded in and says so; a refused one's snapshot recorded it already.
            assert ("deposed" in planned.stderr) == (how == "held"), planned.stderr
            assert "changed outside" not in planned.output, planned.output
            for fmt in ("table", "markdown", "html", "json"):
                view = project.run("show", "--format", fmt, str(planfile)).stdout
                assert DEPOSED_NOTE in view and "Archive key (deposed" in view, (fmt, view)
            shown = json.loads(project.run("show", "--requests", "--format", "json", str(planfile)).stdout)
            assert [(r["method"], r["path"].split("/", 2)[2]) for r in shown["plans"][0]["requests"]] == [
                *(("PUT", f"BackupRepositories/{repos[n]}") for n in sorted(set(repos) - set(moved))),
                ("DELETE", f"EncryptionKeys/{old['id']}")]
        applied = project.run("apply", str(planfile))
        assert applied.exit_code == 0, applied.output

        [key] = http.get("/v8/EncryptionKeys").json()
        assert key["id"] != old["id"] and key["description"] == "Archive key"
        if new is not None:
            assert key["id"] == new["id"]  # the new key kept, not created a second time
        assert {r["name"]: (r["id"], r["encryptionKeyId"]) for r in
                http.get("/v8/BackupRepositories").json()["results"]} == {n: (i, key["id"]) for n, i in repos.items()}
        [stored] = store.to_data()["encryption_keys"]
        assert stored["passwordSha256"] == hashlib.sha256((PASSWORD + "-new").encode()).hexdigest()
        again = project.run("plan", "--env", "dev", "--detailed-exitcode")
        assert again.exit_code == 0 and "changed outside" not in again.output, again.output
        assert "deposed" not in json.loads((state / "dev.json").read_text())["resources"]["encryption_keys"]
        if how == "held" and method != "DELETE":
            # The apply recorded the interrupted one's journal first: that snapshot (now the backup) kept the old key
            # as deposed, by the journal of the apply that left it.
            recovered = json.loads((state / "dev.json.bak").read_text())
            [deposed] = recovered["resources"]["encryption_keys"]["deposed"]["Archive key"]
            assert deposed["id"] == old["id"] and deposed["journal"] == recovered["last_apply"]["journal"]
        for text in (planned.output, applied.output, again.output, stderr):
            assert PASSWORD not in text
    finally:
        killed.set()
        server.stop()


def _stopped_apply(project: ProjectDir, how: str, held: threading.Event, killed: threading.Event) -> str:
    """Run ``apply --env dev --auto-approve`` until the request the test stops it at: as its own process, killed
    (SIGKILL) once the server holds that request, or (``refused``) in this process, ending on the server's error.
    Returns what it wrote to stderr."""
    if how == "refused":
        result = project.run("apply", "--env", "dev", "--auto-approve")
        killed.set()
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        return result.stderr
    applying = subprocess.Popen([sys.executable, "-m", "vboplan", "-C", str(project.root), "--no-color", "apply",
                                 "--env", "dev", "--auto-approve"], env={**os.environ, "PYTHONPATH": str(REPO)},
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not held.wait(0.01) and applying.poll() is None and time.monotonic() < deadline:
        pass
    applying.send_signal(signal.SIGKILL)
    _, stderr = applying.communicate(timeout=30)
    killed.set()
    return stderr
