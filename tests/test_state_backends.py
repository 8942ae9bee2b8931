"""Shared state on real object stores (moto's S3 server, Azurite): a second machine plans from the same state, one
apply at a time across machines, locks broken only with their id, clear errors when the store cannot be used."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import SEED, ProjectDir, Result
from state_servers import AzuriteServer, S3Server

from vboplan.emulator import start
from vboplan.errors import StateLockedError
from vboplan.project.config import load_project
from vboplan.state import StateStore, lock_info
from vboplan.state.base import LockBusy

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Shared:
    backend: str
    state_yaml: str
    name: str  # bucket or container


@pytest.fixture(params=["s3", "azurerm"])
def shared(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Shared:
    if request.param == "s3":
        s3: S3Server = request.getfixturevalue("s3_server")
        bucket = s3.new_bucket()
        return Shared("s3", f"state:\n  backend: s3\n  bucket: {bucket}\n  prefix: corp/\n"
                            f"  endpoint_url: {s3.endpoint}\n  region: us-east-1\n", bucket)
    azurite: AzuriteServer = request.getfixturevalue("azurite_server")
    container = azurite.new_container()
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    return Shared("azurerm", f"state:\n  backend: azurerm\n  container: {container}\n  prefix: corp/\n", container)


@pytest.fixture
def server() -> Iterator[str]:
    """One emulated VBO server both "machines" talk to, over HTTP, slow enough for applies to overlap."""
    with start(SEED, latency_ms=60) as running:
        yield running.url


def machine(project: ProjectDir, url: str, shared: Shared, name: str) -> ProjectDir:
    """A copy of the project as another machine has it: the repository's files, no .vboplan/."""
    config = (project.root / "vboplan.yaml").read_text().replace("emulator:dev", url, 1) + shared.state_yaml
    root = project.root.parent / name
    shutil.copytree(project.root, root, ignore=shutil.ignore_patterns(".vboplan"))
    (root / "vboplan.yaml").write_text(config, encoding="utf-8")
    return ProjectDir(root)


def error_line(result: Result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def background_apply(copy: ProjectDir, user: str) -> subprocess.Popen[str]:
    environ = {**os.environ, "PYTHONPATH": str(REPO), "VBOPLAN_USER": user}
    return subprocess.Popen([sys.executable, "-m", "vboplan", "-C", str(copy.root), "apply", "--env", "dev",
                             "--auto-approve"], env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_lock(copy: ProjectDir, process: subprocess.Popen[str]) -> dict:
    store = StateStore(load_project(copy.root), load_project(copy.root).environment("dev"))
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            holder = store.holder()
        except StateLockedError:
            holder = None  # taken, its info not written yet (an instant between two requests): look again
        if holder is not None:
            return holder
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    raise AssertionError("the apply never took the lock")


def test_a_second_machine_plans_no_changes_after_an_apply(project: ProjectDir, shared: Shared, server: str) -> None:
    first = machine(project, server, shared, "first")
    applied = first.run("apply", "--env", "dev", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert not (first.root / ".vboplan" / "state" / "dev.json").exists()  # the state went to the shared store
    second = machine(project, server, shared, "second")
    plan = second.run("plan", "--env", "dev", "--detailed-exitcode")
    assert plan.exit_code == 0, plan.output  # passwords included: the salted hashes came from the store
    assert "No changes" in plan.stdout
    shown = second.run("state", "show", "--env", "dev")
    assert shown.exit_code == 0 and "serial 1" in shown.stdout


def test_one_apply_at_a_time_across_machines(project: ProjectDir, shared: Shared, server: str) -> None:
    first = machine(project, server, shared, "first")
    second = machine(project, server, shared, "second")
    running = background_apply(first, "ann")
    holder = wait_for_lock(second, running)
    assert holder["who"] == "ann" and holder["operation"] == "apply --env dev"
    refused = second.run("apply", "--env", "dev", "--auto-approve")
    assert refused.exit_code == 1
    line = error_line(refused)
    assert "environment 'dev' is locked by ann (apply --env dev" in line and f"lock id {holder['id']}" in line
    out, err = running.communicate(timeout=120)
    assert running.returncode == 0, err
    again = second.run("apply", "--env", "dev", "--auto-approve")
    assert again.exit_code == 0 and "No changes" in again.stdout, again.output


def test_racing_for_the_lock_exactly_one_wins(project: ProjectDir, shared: Shared, server: str) -> None:
    copies = [machine(project, server, shared, f"m{i}") for i in range(6)]
    stores = [StateStore(load_project(c.root), load_project(c.root).environment("dev")) for c in copies]
    barrier = threading.Barrier(len(stores))
    won, busy = [], []

    def race(store: StateStore) -> None:
        barrier.wait()
        try:
            won.append(store.backend.acquire(store.lock_key, lock_info("race")))
        except LockBusy as exc:
            busy.append(exc)

    threads = [threading.Thread(target=race, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(won) == 1 and len(busy) == len(stores) - 1
    assert all(b.info is None or b.info["id"] == won[0].id for b in busy)
    stores[0].backend.release(stores[0].lock_key, won[0])
    assert stores[1].holder() is None


def test_a_killed_apply_leaves_a_lock_breakable_only_with_its_id(project: ProjectDir, shared: Shared,
                                                                 server: str) -> None:
    first = machine(project, server, shared, "first")
    second = machine(project, server, shared, "second")
    running = background_apply(first, "ann")
    holder = wait_for_lock(second, running)
    running.send_signal(signal.SIGKILL)
    running.wait(timeout=30)
    refused = second.run("apply", "--env", "dev", "--auto-approve")
    assert refused.exit_code == 1
    assert f"vboplan state unlock --env dev {holder['id']}" in error_line(refused)
    wrong = second.run("state", "unlock", "--env", "dev", "not-" + holder["id"])
    assert wrong.exit_code == 1 and "is not the id of its lock" in error_line(wrong)
    assert second.run("apply", "--env", "dev", "--auto-approve").exit_code == 1  # still locked
    broken = second.run("state", "unlock", "--env", "dev", holder["id"])
    assert broken.exit_code == 0, broken.output
    assert "held by ann (apply --env dev" in broken.stdout
    applied = second.run("apply", "--env", "dev", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    plan = first.run("plan", "--env", "dev", "--detailed-exitcode")
    assert plan.exit_code == 0, plan.output
    assert "changed outside vboplan" not in plan.output


def test_migrate_copies_local_state_once(project: ProjectDir, shared: Shared, server: str) -> None:
    copy = machine(project, server, shared, "laptop")
    config = (copy.root / "vboplan.yaml").read_text()
    (copy.root / "vboplan.yaml").write_text(config.replace(shared.state_yaml, ""), encoding="utf-8")
    assert copy.run("apply", "--env", "dev", "--auto-approve").exit_code == 0  # local state first
    (copy.root / "vboplan.yaml").write_text(config, encoding="utf-8")
    missing = copy.run("plan", "--env", "dev", "--detailed-exitcode")
    assert missing.exit_code == 2  # the shared store is empty: the password would be set again
    migrated = copy.run("state", "migrate", "--env", "dev", "--to-configured-backend")
    assert migrated.exit_code == 0, migrated.output
    assert "serial 1" in migrated.stdout and "corp/dev.json" in migrated.stdout
    fresh = machine(project, server, shared, "fresh")
    assert fresh.run("plan", "--env", "dev", "--detailed-exitcode").exit_code == 0
    twice = copy.run("state", "migrate", "--env", "dev", "--to-configured-backend")
    assert twice.exit_code == 1 and "already holds serial 1" in error_line(twice)


def test_a_store_that_cannot_be_used_is_one_message(project: ProjectDir, shared: Shared, server: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    copy = machine(project, server, shared, "copy")
    config = (copy.root / "vboplan.yaml").read_text()
    (copy.root / "vboplan.yaml").write_text(config.replace(shared.name, "missing-" + shared.name[:20]),
                                            encoding="utf-8")
    for args in (("plan", "--env", "dev"), ("apply", "--env", "dev", "--auto-approve")):
        result = copy.run(*args)
        assert result.exit_code == 1
        assert "does not exist" in error_line(result)
    assert project.run("plan", "--env", "dev", "--detailed-exitcode").exit_code == 2  # nothing reached the server
    if shared.backend == "s3":
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(copy.root / "none"))
        monkeypatch.setenv("AWS_CONFIG_FILE", str(copy.root / "none"))
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        (copy.root / "vboplan.yaml").write_text(config, encoding="utf-8")
        result = copy.run("apply", "--env", "dev", "--auto-approve")
        assert result.exit_code == 1 and "no AWS credentials found" in error_line(result)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        unreachable = config.replace(config.split("endpoint_url: ")[1].split()[0], "http://127.0.0.1:9")
    else:
        bad_key = os.environ["AZURE_STORAGE_CONNECTION_STRING"].replace("AccountKey=Eby8", "AccountKey=Xby8")
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", bad_key)
        (copy.root / "vboplan.yaml").write_text(config, encoding="utf-8")
        result = copy.run("apply", "--env", "dev", "--auto-approve")
        assert result.exit_code == 1 and "refused the credentials" in error_line(result)
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", "DefaultEndpointsProtocol=http;AccountName=x;"
                           "AccountKey=eA==;BlobEndpoint=http://127.0.0.1:9/x;")
        unreachable = config
    (copy.root / "vboplan.yaml").write_text(unreachable, encoding="utf-8")
    result = copy.run("apply", "--env", "dev", "--auto-approve")
    assert result.exit_code == 1 and "cannot reach" in error_line(result)
    assert project.run("plan", "--env", "dev", "--detailed-exitcode").exit_code == 2


def test_a_missing_library_names_the_extra(project: ProjectDir, monkeypatch: pytest.MonkeyPatch) -> None:
    for module, backend, extra, key in (("boto3", "s3", "vboplan[s3]", "bucket"),
                                        ("azure.storage.blob", "azurerm", "vboplan[azure]", "container")):
        monkeypatch.setitem(sys.modules, module, None)
        for loaded in [m for m in sys.modules if m.startswith(f"vboplan.state.{backend}")]:
            monkeypatch.delitem(sys.modules, loaded)
        project.write("vboplan.yaml", (project.root / "vboplan.yaml").read_text().split("state:")[0]
                      + f"state:\n  backend: {backend}\n  {key}: b\n")
        result = project.run("plan", "--env", "dev")
        assert result.exit_code == 1 and f"pip install '{extra}'" in error_line(result)
