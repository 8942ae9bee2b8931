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
import time
from pathlib import Path

import pytest
import yaml
from conftest import SEED, ProjectDir, api_client
from kill_harness import REPO, emulator_process

from vboplan.emulator.store import CHANGES_SUFFIX

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


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_kill_after_the_first_create_leaves_a_plan_of_the_rest(project: ProjectDir, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3_SECRET_KEY", "s3-secret-planted-kill")
    monkeypatch.setenv("ARCHIVE_KEY_PASSWORD", "key-password-planted-kill")
    for path in (project.root / "templates").glob("*"):
        path.unlink()
    project.write("templates/repos.yaml.j2", TEMPLATE)
    data = tmp_path / "emulator" / "dev.yaml"
    data.parent.mkdir()
    data.write_text(yaml.safe_dump({**SEED, "proxies": [{"hostName": "proxy01.contoso.local", "port": 9193}]}),
                    encoding="utf-8")
    with emulator_process(data, latency_ms=150) as url:
        project.write("vboplan.yaml", (project.root / "vboplan.yaml").read_text().replace("emulator:dev", url, 1))
        before = project.run("plan", "--env", "dev", "--format", "json")
        assert before.exit_code == 0, before.output
        http = api_client(url, "v8")
        # The emulator appends each change to its change log before it answers: watching the file (not the API,
        # whose answers wait out the same latency) sees the first create the moment it lands.
        _apply_killed_once(project, data.with_name(data.name + CHANGES_SUFFIX), b'"collection"')
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
        _apply_killed_once(project, data.with_name(data.name + CHANGES_SUFFIX), b'"object":null')
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


def _apply_killed_once(project: ProjectDir, changes: Path, landed: bytes) -> None:
    """``apply --env dev --auto-approve`` in a process of its own, SIGKILLed the moment the emulator's change log
    holds ``landed``."""
    applying = subprocess.Popen([sys.executable, "-m", "vboplan", "-C", str(project.root), "--no-color", "apply",
                                 "--env", "dev", "--auto-approve"], env={**os.environ, "PYTHONPATH": str(REPO)},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and applying.poll() is None:
        if changes.exists() and landed in changes.read_bytes():
            break
        time.sleep(0.005)
    applying.send_signal(signal.SIGKILL)
    applying.wait(timeout=30)
