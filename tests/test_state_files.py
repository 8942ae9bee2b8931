"""The local state backend's files: private whatever the umask, no temporary file left by an interrupted or killed
write, and a run whose lock was broken by ``state unlock`` stops before it sends or records anything more."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import API_SECRET, SEED, SMTP_SECRET, ProjectDir
from filemodes import NO_POSIX_MODES, POSIX_MODES, assert_private
from gates import Gate, gated_emulator
from test_state_lock import HOLDER, holder

from vboplan.project.config import load_project
from vboplan.state import StateStore, parse_journal
from vboplan.state.files import atomic_write

REPO = Path(__file__).resolve().parents[1]


def _state_entries(project: ProjectDir) -> list[Path]:
    folder = project.root / ".vboplan" / "state"
    return [folder, *sorted(folder.iterdir())]


def test_state_files_are_private_and_no_temporary_file_is_left(project: ProjectDir) -> None:
    """What every platform can check: regular files the owner can read and replace, and nothing else left."""
    assert project.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
    project.write("environments/dev.yaml", "domain: dev.contoso.com\nsmtp:\n  host: smtp2.dev.local\n")
    assert project.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
    names = sorted(p.name for p in _state_entries(project)[1:])
    assert names == ["dev.json", "dev.json.bak", "dev.lock"], names
    for path in _state_entries(project):
        assert_private(path)


@pytest.mark.skipif(not POSIX_MODES, reason=NO_POSIX_MODES)
@pytest.mark.parametrize("umask", [0o000, 0o022, 0o002])
def test_state_folder_0700_and_files_0600_whatever_the_umask(project: ProjectDir, umask: int) -> None:
    previous = os.umask(umask)
    try:
        assert project.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
        store = StateStore(load_project(project.root), load_project(project.root).environment("dev"))
        with store.lock("test"):
            store.write_journal('{"format_version": 1, "writes": []}\n')
            held = sorted(p.name for p in _state_entries(project)[1:])
            assert held == ["dev.journal.json", "dev.json", "dev.lock", "dev.lock.json"], held
            for path in _state_entries(project):  # the journal and the lock info while they exist
                assert_private(path)
            store.delete_journal()
    finally:
        os.umask(previous)
    for path in _state_entries(project):
        assert_private(path)


@pytest.mark.skipif(not POSIX_MODES, reason=NO_POSIX_MODES)
def test_an_existing_state_folder_is_tightened(project: ProjectDir) -> None:
    folder = project.root / ".vboplan" / "state"
    folder.mkdir(parents=True)
    os.chmod(folder, 0o755)
    assert project.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
    assert_private(folder)


def test_an_interrupted_write_leaves_the_old_file_and_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "dev.json"
    target.write_text("old\n")

    def pieces() -> Iterator[str]:
        yield "new, half"
        raise KeyboardInterrupt  # Ctrl-C in the middle of writing

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, pieces())
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dev.json"]


def test_temporary_files_of_a_killed_run_are_swept_under_the_lock(project: ProjectDir) -> None:
    assert project.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
    folder = project.root / ".vboplan" / "state"
    # What SIGKILL leaves in the middle of atomic writes of this environment's files ...
    left = [".dev.json.k3j9x0q_.tmp", ".dev.journal.json.aaaaaaaa.tmp", ".dev.lock.json.0123abcd.tmp"]
    # ... and what is not this environment's (another one named dev.json) or not such a file at all.
    kept = [".dev.json.json.abcdefgh.tmp", ".dev.json.short.tmp", "notes.tmp"]
    for name in left + kept:
        (folder / name).write_text("{")
    project.write("environments/dev.yaml", "domain: dev.contoso.com\nsmtp:\n  host: smtp3.dev.local\n")
    assert project.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
    remaining = {p.name for p in folder.iterdir()}
    assert not remaining & set(left), remaining
    assert set(kept) <= remaining, remaining


# -- a lock broken while an apply runs -------------------------------------------------------------------------


@pytest.fixture
def gate() -> Iterator[Gate]:
    with gated_emulator(SEED) as gate:
        yield gate


def apply_process(project: ProjectDir, url: str) -> subprocess.Popen[str]:
    """``vboplan apply --env dev --auto-approve`` in its own process against ``url``, making two writes: the audit
    mail settings, then the job mail settings (notifyOnSuccess false -> true)."""
    config = (project.root / "vboplan.yaml").read_text().replace("server: emulator:dev", f"server: {url}")
    project.write("vboplan.yaml", config)
    project.write("environments/dev.yaml", "domain: dev.contoso.com\nsmtp:\n  host: smtp.dev.local\n"
                                           "notify_success: true\n")
    environ = {**os.environ, "PYTHONPATH": str(REPO), "VBO_TEST_PASSWORD": API_SECRET,
               "SMTP_PASSWORD": SMTP_SECRET, "VBOPLAN_USER": "ann", "PYTHONFAULTHANDLER": "1"}
    return subprocess.Popen([sys.executable, "-m", "vboplan", "-C", str(project.root), "--no-color", "apply",
                             "--env", "dev", "--auto-approve"], env=environ, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=_as_from_a_shell if os.name != "nt" else None)


def _as_from_a_shell() -> None:
    """In the child before it runs Python: SIGINT handled by default and not blocked, as a shell starts a command.
    A child inherits an ignored or blocked SIGINT from the process that starts it, and Python then leaves Ctrl-C
    ignored; the test process (a pytest worker that earlier tests have used) is no reliable model of a terminal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


def _where(applying: subprocess.Popen[str]) -> str:
    """What an apply that did not do what a test waited for is doing: its exit and output, or (still running) the
    stack of each of its threads, which faulthandler prints when it is sent SIGABRT."""
    seen = ""
    if applying.poll() is None:
        with contextlib.suppress(OSError):
            seen = "".join(line for line in Path(f"/proc/{applying.pid}/status").read_text().splitlines(True)
                           if line.startswith(("SigBlk", "SigIgn", "SigCgt", "Threads")))
        applying.send_signal(signal.SIGABRT)
    stdout, stderr = applying.communicate(timeout=60)
    return f"exit {applying.returncode}\n{seen}{stdout}\n{stderr}"


def _puts(gate: Gate) -> list[str]:
    return [path for method, path in gate.seen if method == "PUT"]


@pytest.mark.skipif(os.name == "nt", reason="Windows keeps a running holder's lock: 'state unlock' cannot break it")
def test_an_apply_whose_lock_was_broken_stops_before_its_next_write(project: ProjectDir, gate: Gate) -> None:
    gate.hold("first write", lambda method, path: method == "PUT")
    applying = apply_process(project, gate.url)
    try:
        assert gate.arrived("first write"), "the apply never sent its first write"
        info = json.loads((project.root / ".vboplan/state/dev.lock.json").read_text())
        assert info["who"] == "ann"
        broken = project.run("state", "unlock", "--env", "dev", info["id"])
        assert broken.exit_code == 0, broken.output
        with holder(project, "dev", "apply other.json", HOLDER) as (_, zed_id):
            gate.release("first write")  # answered; the apply goes on to record that answer
            stdout, stderr = applying.communicate(timeout=120)
            assert applying.returncode == 1, stdout + stderr
            assert len(_puts(gate)) == 1, gate.seen  # the second write was never sent
            error = [line for line in stderr.splitlines() if line.startswith("Error: ")]
            assert len(error) == 1, stderr
            assert f"(lock id {info['id']}) was broken while this run held it" in error[0], error[0]
            assert "zed (apply other.json, on " in error[0] and zed_id in error[0], error[0]
            assert "sends and records nothing more" in error[0], error[0]
            # The new holder's lock is untouched, and no snapshot was written over its head.
            assert json.loads((project.root / ".vboplan/state/dev.lock.json").read_text())["id"] == zed_id
            assert not (project.root / ".vboplan/state/dev.json").exists()
    finally:
        if applying.poll() is None:
            applying.kill()
            applying.wait(30)


@pytest.mark.skipif(os.name == "nt", reason="sends SIGINT to another process, which Windows cannot")
def test_a_second_ctrl_c_while_stopping_still_says_what_reached_the_server(project: ProjectDir, gate: Gate) -> None:
    """Ctrl-C during the second write, and again while the stopped apply logs out: the one error line still lists
    the write that was answered and the one whose answer was not seen."""
    gate.hold("second write", lambda method, path: method == "PUT" and len(_puts(gate)) == 2)
    gate.hold("logout", lambda method, path: method == "POST" and path.lower().endswith("/token/logout"))
    applying = apply_process(project, gate.url)
    try:
        assert gate.arrived("second write"), "the apply never sent its second write"
        applying.send_signal(signal.SIGINT)
        assert gate.arrived("logout"), f"the interrupted apply did not log out: {_where(applying)}"
        applying.send_signal(signal.SIGINT)  # impatient: again, while it is still stopping
        stdout, stderr = applying.communicate(timeout=120)
    finally:
        gate.release_all()
        if applying.poll() is None:
            applying.kill()
            applying.wait(30)
    assert applying.returncode == 1, stdout + stderr
    error = [line for line in stderr.splitlines() if line.startswith("Error: ")]
    assert len(error) == 1 and "Traceback" not in stderr, stderr
    assert error[0].startswith("Error: apply to 'dev' interrupted: applied c"), error[0]
    assert "unknown (sent, no answer seen)" in error[0] and "dev.journal.json records it" in error[0], error[0]
    journal = parse_journal((project.root / ".vboplan/state/dev.journal.json").read_text())
    states = [w["state"] for w in journal["writes"]]
    assert states == ["applied", "sent"], states
    applied = [c["id"] for c in journal["writes"][0]["changes"]]
    assert f"applied {', '.join(applied)};" in error[0], error[0]
    folder = project.root / ".vboplan" / "state"
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]
