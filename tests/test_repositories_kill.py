"""One plan creates an account, a key, a local repository that uses the key and an object-storage repository on
the account, in dependency order; an apply killed (SIGKILL) right after the first create leaves a true record: the
next plan creates only what is missing. A replace killed between its DELETE and its POST leaves a plan that creates
the object."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from conftest import SEED, ProjectDir, api_client
from kill_harness import REPO

from vboplan.emulator import Emulator, Store, start

TEMPLATE = """\
cloud_accounts:
  akiaexample01: {accountType: amazonS3Account, description: S3, password: {{ secret("S3_SECRET_KEY") }}}
encryption_keys:
  Archive key 2026: {password: {{ secret("ARCHIVE_KEY_PASSWORD") }}}
backup_repositories:
  Repo EU: {proxy: proxy01.contoso.local, path: 'D:\\\\EU', retentionType: ItemLevel, encryptionKey: Archive key 2026}
  Archive EU:
    proxy: proxy01.contoso.local
    retentionType: SnapshotBased
    objectStorage:
      account: akiaexample01
      type: AmazonS3
      amazonBucketS3Aws: {name: vb365-archive, regionType: Global, regionId: eu-west-1}
      s3Folder: eu
"""


# What refers to nothing, created first (the repositories' POSTs wait for their answers).
FIRST_CREATES = ("/v8/Accounts", "/v8/EncryptionKeys")


class Holding(Emulator):
    """The emulator, holding the answer to the first request ``hold`` picks (done on the server, not yet answered)
    until ``killed`` is set: a kill timed from the server's change log once came too late under load, the next
    request already sent."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.hold: Callable[[str, str], bool] = lambda method, path: False
        self.held, self.killed = threading.Event(), threading.Event()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        answer = super().__call__(environ, start_response)
        if not self.killed.is_set() and self.hold(environ["REQUEST_METHOD"], environ["PATH_INFO"]):
            self.held.set()
            self.killed.wait(120)
        return answer


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_kill_after_the_first_create_leaves_a_plan_of_the_rest(project: ProjectDir,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3_SECRET_KEY", "s3-secret-planted-kill")
    monkeypatch.setenv("ARCHIVE_KEY_PASSWORD", "key-password-planted-kill")
    for path in (project.root / "templates").glob("*"):
        path.unlink()
    project.write("templates/repos.yaml.j2", TEMPLATE)
    emulator = Holding(Store.from_data({**SEED, "proxies": [{"hostName": "proxy01.contoso.local", "port": 9193}]}))
    with start(emulator) as server:
        url = server.url
        project.write("vboplan.yaml", (project.root / "vboplan.yaml").read_text().replace("emulator:dev", url, 1))
        before = project.run("plan", "--env", "dev", "--format", "json")
        assert before.exit_code == 0, before.output
        http = api_client(url, "v8")
        # Killed with the first create done on the server and its answer not yet back.
        _apply_killed_once(project, emulator, lambda method, path: method == "POST" and path in FIRST_CREATES)
        held = {"accounts": len(http.get("/v8/Accounts").json()), "keys": len(http.get("/v8/EncryptionKeys").json()),
                "repos": len(http.get("/v8/BackupRepositories").json()["results"])}
        # Killed after the first create landed (account and key, which refer to nothing, may go out together).
        assert held["repos"] == 0 and held["accounts"] + held["keys"] >= 1, held
        after = project.run("plan", "--env", "dev", "--format", "json")
        assert after.exit_code == 0, after.output
        creates = {c["address"] for c in json.loads(after.stdout)["plans"][0]["changes"] if c["action"] == "create"}
        missing = {'backup_repositories["Repo EU"]', 'backup_repositories["Archive EU"]'}
        missing |= set() if held["keys"] else {'encryption_keys["Archive key 2026"]'}
        missing |= set() if held["accounts"] else {'cloud_accounts["akiaexample01"]'}
        assert creates == missing, after.stdout
        assert "planted" not in after.output
        done = project.run("apply", "--env", "dev", "--auto-approve")
        assert done.exit_code == 0, done.output
        assert sorted(r["name"] for r in http.get("/v8/BackupRepositories").json()["results"]) == [
            "Archive EU", "Repo EU"]

        # A replace killed between its DELETE and its POST: the journal says the old object is gone, and the next
        # plan creates the repository (no replace of an object that is no longer there).
        project.write("templates/repos.yaml.j2", TEMPLATE.replace("ItemLevel,", "SnapshotBased,") + "lifecycle:\n"
                      "  'backup_repositories[\"Repo EU\"]': {allow_replace: true}\n")
        _apply_killed_once(project, emulator,
                           lambda method, path: method == "DELETE" and path.startswith("/v8/BackupRepositories/"))
        assert [r["name"] for r in http.get("/v8/BackupRepositories").json()["results"]] == ["Archive EU"]
        after = project.run("plan", "--env", "dev", "--format", "json")
        assert [(c["action"], c["address"]) for c in json.loads(after.stdout)["plans"][0]["changes"]] == [
            ("create", 'backup_repositories["Repo EU"]')], after.output
        assert "interrupted" in after.stderr and "planted" not in after.output, after.stderr
        # Only the DELETE half of the replace landed, and the recovery line says so; where the kill came after the
        # POST was recorded as sent, the line names that half as the one that did not land.
        assert "(delete) reached the server" in after.stderr, after.stderr
        assert "did not" not in after.stderr or "(create) did not" in after.stderr, after.stderr
        done = project.run("apply", "--env", "dev", "--auto-approve")
        assert done.exit_code == 0, done.output
        [repo] = [r for r in http.get("/v8/BackupRepositories").json()["results"] if r["name"] == "Repo EU"]
        assert repo["retentionType"] == "SnapshotBased"


def _apply_killed_once(project: ProjectDir, emulator: Holding, hold: Callable[[str, str], bool]) -> None:
    """``apply --env dev --auto-approve`` in a process of its own, SIGKILLed while the emulator holds the answer to
    the first request ``hold`` picks."""
    emulator.held.clear()
    emulator.killed.clear()
    emulator.hold = hold
    applying = subprocess.Popen([sys.executable, "-m", "vboplan", "-C", str(project.root), "--no-color", "apply",
                                 "--env", "dev", "--auto-approve"], env={**os.environ, "PYTHONPATH": str(REPO)},
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not emulator.held.wait(0.01) and applying.poll() is None and time.monotonic() < deadline:
            pass
        applying.send_signal(signal.SIGKILL)
        _, stderr = applying.communicate(timeout=30)
    finally:
        emulator.killed.set()
    assert emulator.held.is_set(), f"the apply never sent the request to hold: {stderr}"
