"""vboplan in a process without the POSIX-only calls Windows lacks: ``os.fchmod``, ``os.kill``, ``os.killpg``,
``os.O_DIRECTORY`` and the ``fcntl`` module are taken away before vboplan (or filelock, which then uses no fcntl) is
imported. One process serves a test's whole sequence of commands, each run through the CLI as the other tests run
it, so the sequence pays Python's start-up and vboplan's imports once instead of once per command."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parents[1]
GONE = ("fchmod", "kill", "killpg", "O_DIRECTORY")
HANG = 300  # seconds without an answer: the command hangs

# Reads one JSON list of arguments per line on stdin; answers each with one JSON line on the descriptor the
# process's stdout had (its stdout then goes to stderr, so a stray write cannot corrupt an answer). An exception
# that escapes vboplan is reported as it would be in its own process: exit 1 and a traceback on stderr.
BOOT = f"""
import json, os, sys, traceback, warnings
for name in {GONE!r}:
    if hasattr(os, name):
        delattr(os, name)
sys.modules["fcntl"] = None  # "import fcntl" now raises ImportError, as on Windows
warnings.filterwarnings("ignore", message="only soft file lock is available")
answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
os.dup2(2, 1)
from click.testing import CliRunner
from vboplan.cli.commands import main
try:
    import fcntl
    importable = True
except ImportError:
    importable = False
answers.write(json.dumps({{"left": [n for n in {GONE!r} if hasattr(os, n)], "fcntl": importable}}) + "\\n")
answers.flush()
for line in sys.stdin:
    result = CliRunner().invoke(main, json.loads(line), prog_name="vboplan")
    code, stderr = result.exit_code, result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        code = 1
        stderr += "".join(traceback.format_exception(result.exception))
    answers.write(json.dumps({{"returncode": code, "stdout": result.stdout, "stderr": stderr}}) + "\\n")
    answers.flush()
"""


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str


class WithoutPosix:
    """One process without the POSIX-only calls; ``run(*args)`` runs ``vboplan ARGS`` in it."""

    def __init__(self, environ: dict[str, str]) -> None:
        self._stray: IO[str] = tempfile.TemporaryFile("w+", encoding="utf-8")
        self.process = subprocess.Popen([sys.executable, "-c", BOOT], env={**environ, "PYTHONPATH": str(REPO)},
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stray,
                                        text=True, encoding="utf-8")
        # Answers are read on a thread of their own, so that a command that hangs fails the test after HANG
        # seconds instead of holding it (portably: no select() on a pipe).
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        # What of the calls that process still has once vboplan is imported: nothing (see test_posix_free.py).
        self.left = self._answer()
        assert self.left == {"left": [], "fcntl": False}, self.left

    def _answer(self) -> dict:
        try:
            line = self._lines.get(timeout=HANG)
        except queue.Empty:
            self.process.kill()
            raise AssertionError(f"no answer within {HANG}s") from None
        if not line:
            self._stray.seek(0)
            raise AssertionError(f"the process ended: {self._stray.read()}")
        return json.loads(line)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put("")

    def run(self, *args: str) -> Outcome:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(list(args)) + "\n")
        self.process.stdin.flush()
        return Outcome(**self._answer())

    def close(self) -> str:
        """End the process; what it wrote outside the commands' own output (nothing, normally)."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=60)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(timeout=30)
        self._stray.seek(0)
        stray = self._stray.read()
        self._stray.close()
        return stray

    def __enter__(self) -> WithoutPosix:
        return self

    def __exit__(self, *exc: object) -> None:
        stray = self.close()
        if exc[0] is None:
            assert "Traceback" not in stray, stray
