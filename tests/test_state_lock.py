"""The apply lock of the local backend: an operating-system lock, readable info, breaking only with the id."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from conftest import ProjectDir, assert_one_clean_error

REPO = Path(__file__).resolve().parents[1]

# A second vboplan process holding an environment's lock through the library, until its input closes.
HOLDER = """
import sys
from pathlib import Path
from vboplan.project.config import load_project
from vboplan.state import StateStore
project = load_project(Path(sys.argv[1]))
store = StateStore(project, project.environment(sys.argv[2]))
with store.lock(sys.argv[3]) as held:
    print(held.id, flush=True)
    sys.stdin.read()
"""

# A process holding only the operating-system lock, as a run does in the instant before it writes its info.
BARE_HOLDER = """
import sys
from filelock import FileLock
lock = FileLock(sys.argv[1])
lock.acquire()
print("held", flush=True)
sys.stdin.read()
"""


@contextmanager
def holder(project: ProjectDir, env: str = "dev", operation: str = "apply plan.json",
           script: str = HOLDER, *args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    environ = {**os.environ, "PYTHONPATH": str(REPO), "VBOPLAN_USER": "zed"}
    argv = list(args) or [str(project.root), env, operation]
    process = subprocess.Popen([sys.executable, "-c", script, *argv], env=environ, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line, "the lock holder did not start"
        yield process, line
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


def test_a_held_lock_names_its_holder_and_a_wrong_id_cannot_break_it(project: ProjectDir) -> None:
    with holder(project) as (process, lock_id):
        result = project.run("apply", "--env", "dev", "--auto-approve")
        assert_one_clean_error(result, "environment 'dev' is locked by zed (apply plan.json, on ", f"lock id {lock_id}",
                               f"vboplan state unlock --env dev {lock_id}")
        assert project.server("dev")["audit_email_settings"]["port"] == 25  # nothing was sent
        wrong = project.run("state", "unlock", "--env", "dev", "0" * 8)
        assert_one_clean_error(wrong, "cannot unlock environment 'dev'", "lock id 00000000 is not the id")
        still = project.run("apply", "--env", "dev", "--auto-approve")
        assert_one_clean_error(still, f"lock id {lock_id}")
        assert process.poll() is None


def test_a_killed_holder_releases_the_lock(project: ProjectDir) -> None:
    with holder(project) as (process, lock_id):
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    info = project.root / ".vboplan/state/dev.lock.json"
    assert lock_id in info.read_text()  # the killed run could not clean up its info
    result = project.run("apply", "--env", "dev", "--auto-approve")
    assert result.exit_code == 0, result.output
    assert "ended without releasing it" in result.stderr and lock_id in result.stderr
    assert not info.exists()
    assert project.server("dev")["audit_email_settings"]["port"] == 587


def test_unlock_with_the_right_id_breaks_a_live_holders_lock(project: ProjectDir) -> None:
    with holder(project) as (process, lock_id):
        broken = project.run("state", "unlock", "--env", "dev", lock_id)
        assert broken.exit_code == 0, broken.output
        assert re.search(rf"Broke the lock of environment 'dev' held by zed \(apply plan.json.*{lock_id}",
                         broken.stdout)
        result = project.run("apply", "--env", "dev", "--auto-approve")
        assert result.exit_code == 0, result.output
        assert process.poll() is None
    again = project.run("state", "unlock", "--env", "dev", lock_id)
    assert_one_clean_error(again, "cannot unlock environment 'dev': it is not locked")


def test_an_empty_lock_info_is_reported_with_what_to_do(project: ProjectDir) -> None:
    folder = project.root / ".vboplan/state"
    folder.mkdir(parents=True)
    (folder / "dev.lock.json").write_text("")
    lock_path = str(folder / "dev.lock")
    with holder(project, "dev", "", BARE_HOLDER, lock_path):
        result = project.run("apply", "--env", "dev", "--auto-approve")
        assert_one_clean_error(result, "environment 'dev' is locked, but its lock info", "dev.lock.json is empty or "
                               "unreadable", "wait for that run to end")
        refused = project.run("state", "unlock", "--env", "dev", "anything")
        assert_one_clean_error(refused, "empty or unreadable, so no lock id can be checked")
    # Its holder gone, the empty file is no obstacle: the operating system released the lock.
    assert project.run("apply", "--env", "dev", "--auto-approve").exit_code == 0


def test_the_lock_is_not_held_after_an_apply(project: ProjectDir) -> None:
    assert project.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
    assert not (project.root / ".vboplan/state/dev.lock.json").exists()
    assert_one_clean_error(project.run("state", "unlock", "--env", "dev", "x"), "it is not locked")
