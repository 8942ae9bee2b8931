"""Interrupt applies at random moments and check what the next command sees. Shared by tests/test_kill.py (a
bounded number of runs) and benchmarks/kill_apply.py (more).

Each run gives the audit mail settings a new port and a new SMTP password, sent together in one PUT, then applies in a
subprocess against ``vboplan emulator serve --latency-ms`` (another real process) and stops it with SIGKILL, SIGTERM
or SIGINT after a random delay. After every run:

* the snapshot (and its backup) is valid JSON of the right shape, and the lock can be taken;
* the next plan shows exactly what is left: nothing when the PUT reached the server (the password included: it is not
  planned again), both fields when it did not;
* no "changed outside vboplan" for what vboplan itself wrote;
* what an interrupted run printed is true: "applied" only when the server holds it.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import forked
import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
SIGNALS = (signal.SIGKILL, signal.SIGTERM, signal.SIGINT)


@dataclass
class Tally:
    runs: int = 0
    interrupted: dict[str, int] = field(default_factory=lambda: {"SIGKILL": 0, "SIGTERM": 0, "SIGINT": 0})
    finished_first: int = 0
    landed: int = 0
    not_landed: int = 0
    honest_messages: int = 0

    @property
    def killed(self) -> int:
        return sum(self.interrupted.values())


@contextmanager
def emulator_process(data: Path, latency_ms: float) -> Iterator[str]:
    """``vboplan emulator serve`` on a free port, as its own process; yields its URL."""
    command = [sys.executable, "-m", "vboplan", "emulator", "serve", "--port", "0", "--data", str(data),
               "--latency-ms", str(latency_ms)]
    process = subprocess.Popen(command, env=_environ(), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        match = re.search(r"listening on (\S+)", line)
        assert match, f"the emulator did not start: {line}"
        yield match.group(1)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def _environ(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", **extra}


def live_port(url: str, password: str) -> int:
    with httpx.Client(base_url=url) as http:
        token = http.post("/v8/token", data={"grant_type": "password", "username": "admin",
                                             "password": password}).json()["access_token"]
        body = http.get("/v8/AuditEmailSettings", headers={"Authorization": f"Bearer {token}"}).json()
        return int(body["port"])


def check_snapshot(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))  # a torn write fails here
    assert data["format_version"] == 1 and data["environment"] == "dev", data
    assert isinstance(data["serial"], int) and isinstance(data["resources"], dict), data
    return data


class Applying:
    """An apply running in its own process: started as ``python -m vboplan`` (what a user runs, start-up included),
    or forked from a server process that has already imported vboplan (the same code and signals, without paying
    the start-up on every run: what keeps the bounded test quick)."""

    def __init__(self, argv: list[str], environ: dict[str, str], fork: bool, scratch: Path) -> None:
        self.stderr_path = scratch / "apply.stderr"
        self.fork = fork
        if fork:
            self.process: Any = forked.context().Process(target=forked.run_in_child,
                                                         args=(argv, environ, os.devnull, str(self.stderr_path)))
            self.process.start()
        else:
            self.process = subprocess.Popen([sys.executable, "-m", "vboplan", *argv], env=environ,
                                            stdout=subprocess.DEVNULL, stderr=self.stderr_path.open("w"))

    def running(self) -> bool:
        return self.process.is_alive() if self.fork else self.process.poll() is None

    def signal(self, signum: int) -> None:
        os.kill(self.process.pid, signum)

    def wait(self, timeout: float) -> tuple[int, str]:
        if self.fork:
            self.process.join(timeout)
            if self.process.is_alive():
                forked.stacks_then_kill(self.process)
                raise TimeoutError
            code = self.process.exitcode
        else:
            try:
                code = self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                raise TimeoutError from None
        return code, self.stderr_path.read_text(encoding="utf-8", errors="replace")


def _journal_id(path: Path) -> str | None:
    """The id of the write journal at ``path`` (its first line, the apply's record, is written atomically with the
    first request's, so whole when there), or None."""
    try:
        return str(json.loads(path.read_text(encoding="utf-8").partition("\n")[0]).get("id"))
    except (OSError, ValueError, AttributeError):
        return None


def _wait_for(path: Path, old_id: str | None, applying: Applying, deadline: float) -> None:
    """Until a journal other than ``old_id`` (one an earlier run left) is at ``path``, the apply has ended, or
    ``deadline`` (monotonic) passes."""
    while applying.running() and time.monotonic() < deadline:
        found = _journal_id(path)
        if found is not None and found != old_id:
            return
        time.sleep(0.002)


# When a run sends its signal: a moment drawn from a clean apply's length (LENGTH: anywhere in it; EARLY: in its
# first half, before the write on any machine), or drawn around the write itself (WRITE).
LENGTH, EARLY, WRITE = (0.2, 1.05), (0.1, 0.5), None


def run_kills(root: Path, url: str, api_password: str, runs: int, seed: int,
              plan: Callable[[dict[str, str]], tuple[int, dict[str, Any], str]],
              log: Callable[[str], None] = lambda line: None, fork: bool = False,
              schedule: Sequence[tuple[signal.Signals, tuple[float, float] | None]] | None = None) -> Tally:
    """``runs`` interrupted applies of the project in ``root`` (environment ``dev`` at ``url``). ``plan(environ)``
    runs ``vboplan plan --env dev --format json`` and returns (exit code, JSON, stderr). Each run's signal and
    moment are drawn at random (LENGTH or WRITE, even odds), or taken in turn from ``schedule``."""
    rng = random.Random(seed)
    tally = Tally()
    state = root / ".vboplan" / "state" / "dev.json"
    journal = state.with_name("dev.journal.json")
    argv = ["-C", str(root), "apply", "--env", "dev", "--auto-approve"]
    scratch = root.parent

    def configure(run: int) -> dict[str, str]:
        (root / "environments" / "dev.yaml").write_text(
            yaml.safe_dump({"domain": "dev.contoso.com", "smtp": {"host": "smtp.dev.local", "port": 3000 + run}}),
            encoding="utf-8")
        return _environ(SMTP_PASSWORD=f"run-{run}-secret", VBO_TEST_PASSWORD=api_password, VBOPLAN_USER="ann")

    # A clean run first: it converges the server and measures how long an apply takes here.
    Applying(argv, configure(-1), fork, scratch).wait(120)  # warms the fork server up
    began = time.monotonic()
    code, stderr = Applying(argv, configure(0), fork, scratch).wait(120)
    assert code == 0, stderr
    duration = time.monotonic() - began
    for run in range(1, runs + 1):
        environ = configure(run)
        if schedule is None:
            chosen, moment = rng.choice(SIGNALS), LENGTH if rng.random() < 0.5 else WRITE
        else:
            chosen, moment = schedule[(run - 1) % len(schedule)]
        left = _journal_id(journal)
        temps_before = temp_files(state.parent)
        applying = Applying(argv, environ, fork, scratch)
        if moment is not WRITE:
            # A moment drawn from the length of a clean apply, measured once: on a machine whose load changes,
            # these alone can all fall before the write or all after it.
            time.sleep(rng.uniform(*moment) * duration)
        else:
            # A moment drawn around the write itself: once the journal records it as about to be sent, within
            # a few of the server's round trips (before the answer, after it, or after the snapshot).
            _wait_for(journal, left, applying, deadline=time.monotonic() + 4 * duration + 5)
            time.sleep(rng.uniform(0, 0.15))
        if applying.running():
            applying.signal(chosen)
            tally.interrupted[chosen.name] += 1
        else:
            tally.finished_first += 1
        try:
            returncode, stderr = applying.wait(60)
        except TimeoutError:
            raise AssertionError(f"run {run}: apply did not stop after {chosen.name}") from None
        tally.runs += 1
        if chosen != signal.SIGKILL or returncode == 0:
            # Ctrl-C and SIGTERM unwind: no write of theirs may leave a temporary file (SIGKILL's are swept later).
            orphans = temp_files(state.parent) - temps_before
            assert not orphans, f"run {run} ({chosen.name}) left {sorted(orphans)}"
        check_snapshot(state)
        check_snapshot(state.with_name("dev.json.bak"))
        landed = live_port(url, api_password) == 3000 + run
        tally.landed += landed
        tally.not_landed += not landed
        said = next((line for line in stderr.splitlines() if "interrupted" in line and "Error:" in line), "")
        if said:
            if "interrupted: applied c" in said:
                assert landed, f"run {run}: said {said!r} but the server does not hold it"
            if "before anything was sent" in said:
                assert not landed, f"run {run}: said {said!r} but the server holds the new port"
            assert "Traceback" not in stderr, stderr
            tally.honest_messages += 1
        code, document, plan_stderr = plan(environ)
        assert code == 0, plan_stderr
        addresses = sorted(c["address"] for c in document["changes"])
        expected = [] if landed else ["audit_email_settings.port", "audit_email_settings.userPassword"]
        assert addresses == expected, (f"run {run} ({chosen.name}, landed={landed}): plan shows {addresses}\n"
                                       f"{stderr}\n{plan_stderr}")
        assert document.get("changed_outside") == [], f"run {run}: {document.get('changed_outside')}"
        log(f"run {run:3}: {chosen.name if returncode != 0 else 'finished'}, "
            f"{'landed' if landed else 'not sent or lost'}{'; ' + said[7:] if said else ''}")
    # A last apply under the lock sweeps what the killed runs left half-written.
    code, stderr = Applying(argv, configure(runs + 1), fork, scratch).wait(120)
    assert code == 0, stderr
    assert not temp_files(state.parent), sorted(temp_files(state.parent))
    return tally


def temp_files(folder: Path) -> set[str]:
    """The temporary files of atomic writes in the state folder (``.<name>.<8 characters>.tmp``)."""
    return {p.name for p in folder.glob(".*.tmp")} if folder.is_dir() else set()
