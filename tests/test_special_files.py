"""A FIFO (or any file that is not a regular one) given where vboplan reads a file is refused at once with one clear
message naming it: opening a FIFO would wait for a writer for ever, a device might never end.

Each case puts a FIFO where vboplan reads a file and watches it: if anything opens it for reading, the watcher sees
that (a non-blocking open for writing succeeds only while a reader has it open), records it and closes its end, so a
regression fails the test instead of hanging the suite."""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import ProjectDir, assert_one_clean_error

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"),
                                reason="FIFOs are made with os.mkfifo, which this platform does not have (Windows)")


@contextmanager
def fifo_at(path: Path) -> Iterator[dict[str, bool]]:
    """Replace ``path`` by a FIFO for the duration; yields {"opened": whether anything opened it to read}."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    os.mkfifo(path)
    seen = {"opened": False}
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno not in (errno.ENXIO, errno.ENOENT):
                    raise
                stop.wait(0.005)
                continue
            seen["opened"] = True
            os.close(fd)  # the reader now sees end of file, and the command goes on (to fail the test)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield seen
    finally:
        stop.set()
        watcher.join(timeout=10)
        path.unlink(missing_ok=True)


CASES = {
    "vboplan.yaml": ("vboplan.yaml", ["plan", "--env", "dev"]),
    "variable file": ("environments/dev.yaml", ["plan", "--env", "dev"]),
    "template": ("templates/audit.yaml.j2", ["plan", "--env", "dev"]),
    "state snapshot (plan)": (".vboplan/state/dev.json", ["plan", "--env", "dev"]),
    "state snapshot (state show)": (".vboplan/state/dev.json", ["state", "show", "--env", "dev"]),
    "plan file (show)": ("plan.json", ["show", "PLAN"]),
    "plan file (apply)": ("plan.json", ["apply", "PLAN"]),
    "plan file (approve)": ("plan.json", ["approve", "PLAN", "--key", "KEY"]),
    "plan file (approve --merge)": ("other.json", ["approve", "PLAN", "--merge", "OTHER"]),
    "plan file (--out)": ("plan.json", ["plan", "--env", "prod", "--out", "PLAN"]),
    "allowed_signers": ("approvers/prod.allowed_signers", ["approve", "PLAN", "--key", "KEY"]),
    "CA bundle": ("certs/ca.pem", ["plan", "--env", "dev"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_fifo_is_refused_without_being_opened(project: ProjectDir, case: str) -> None:
    relative, args = CASES[case]
    if case == "CA bundle":
        config = (project.root / "vboplan.yaml").read_text()
        project.write("vboplan.yaml", config.replace("server: emulator:dev", "server: https://vbo.invalid\n"
                                                                             "    verify: certs/ca.pem", 1))
    plan = project.root / "plan.json"
    if "PLAN" in args and case != "plan file (--out)":
        assert project.run("plan", "--env", "prod", "--out", str(plan)).exit_code == 0
    if case.startswith("state snapshot"):
        assert project.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
    paths = {"KEY": str(project.keys["alice"]), "PLAN": str(plan), "OTHER": str(project.root / "other.json")}
    args = [paths.get(a, a) for a in args]
    path = project.root / relative
    with fifo_at(path) as seen:
        result = project.run(*args)
    assert not seen["opened"], f"{case}: vboplan opened the FIFO"
    assert_one_clean_error(result, "is a FIFO (named pipe), not a regular file", Path(relative).name)
