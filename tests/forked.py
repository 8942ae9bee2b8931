"""vboplan commands in processes of their own, forked from a server process that has already imported vboplan: each
is a real process (its own pid, files, locks and signals) started in milliseconds, without Python's start-up and
vboplan's imports (half a second of CPU each). For tests about processes running side by side, where a fresh
interpreter is not what is tested; tests of start-up, of the environment a process starts with, or of the console
start ``python -m vboplan`` instead."""

from __future__ import annotations

import faulthandler
import multiprocessing
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def context() -> Any:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["vboplan.cli.commands", "forked"])  # used once, when the server starts
    return context


def run_in_child(argv: list[str], environ: dict[str, str], stdout_path: str, stderr_path: str) -> None:
    """A forked child's whole life: ``environ`` as its environment, its output to the two paths, Ctrl-C and SIGTERM
    as a shell leaves them, then ``vboplan ARGV`` and its exit code."""
    os.environ.clear()
    os.environ.update(environ)
    out = os.open(stdout_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    err = os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(out, 1)
    os.dup2(err, 2)
    sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", encoding="utf-8", closefd=False, buffering=1)  # noqa: SIM115
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)  # see stacks_then_kill
    from vboplan.cli.commands import main

    code = 0
    try:
        main(argv, prog_name="vboplan")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def stacks_then_kill(process: Any) -> None:
    """Stop a child that did not end in time, after it writes every thread's stack to its stderr: what a hang's
    report needs."""
    os.kill(process.pid, signal.SIGUSR1)
    process.join(2)
    process.kill()
    process.join(30)


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str


class Forked:
    """``vboplan ARGV`` with ``environ`` as its whole environment, its output in ``folder``/``name``.out and .err."""

    def __init__(self, argv: list[str], environ: dict[str, str], folder: Path, name: str) -> None:
        self._out, self._err = folder / f"{name}.out", folder / f"{name}.err"
        self.process = context().Process(target=run_in_child, args=(argv, environ, str(self._out), str(self._err)))
        self.process.start()

    def wait(self, timeout: float) -> Finished:
        self.process.join(timeout)
        if self.process.is_alive():
            stacks_then_kill(self.process)
            raise AssertionError(f"still running after {timeout}s: {self._err.read_text(errors='replace')}")
        return Finished(self.process.exitcode, self._out.read_text(encoding="utf-8", errors="replace"),
                        self._err.read_text(encoding="utf-8", errors="replace"))
