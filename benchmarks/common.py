"""What the benchmarks share: an emulator in its own process, a throw-away project, a child's CPU time and memory.

Every figure is printed beside its bound or peer, both measured in the same run on the same machine.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "benchmark-password"


@contextmanager
def emulator_process(*args: str, count: int = 1) -> Iterator[list[str]]:
    """``vboplan emulator serve --port 0 ARGS`` in its own process (``count`` of them); yields their URLs."""
    processes = []
    try:
        for _ in range(count):
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "vboplan", "emulator", "serve", "--port", "0", *args],
                stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=ROOT))
        urls = [_listening(process) for process in processes]
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def _listening(process: subprocess.Popen[str]) -> str:
    assert process.stderr is not None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        match = re.search(r"listening on (\S+)", line)
        if match:
            return match.group(1)
        if not line and process.poll() is not None:
            break
    raise SystemExit("the emulator did not start")


def write_seed(path: Path, data: dict) -> Path:
    data = {"credentials": [{"username": "admin", "password": PASSWORD}], **data}
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def write_project(directory: Path, environments: dict[str, str], templates: dict[str, str],
                  variables: dict[str, dict] | None = None) -> Path:
    """A project: ``environments`` maps names to server URLs (all v8, user admin), ``templates`` file names to text,
    ``variables`` environment names to the JSON variable file of each."""
    (directory / "templates").mkdir(parents=True, exist_ok=True)
    for name, text in templates.items():
        (directory / "templates" / name).write_text(text, encoding="utf-8")
    lines = ["templates: [templates/*.yaml.j2]", "environments:"]
    for name, url in environments.items():
        lines += [f"  {name}:", f"    server: {url}", "    api_version: v8", "    username: admin",
                  "    password_env: BENCH_PASSWORD"]
        if variables and name in variables:
            (directory / f"{name}.json").write_text(json.dumps(variables[name]), encoding="utf-8")
            lines.append(f"    var_files: [{name}.json]")
    (directory / "vboplan.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.environ["BENCH_PASSWORD"] = PASSWORD
    return directory


@dataclass
class Run:
    """One finished child process: its wall time, CPU time (user + system) and peak resident memory."""

    wall: float
    cpu: float
    peak_mib: float
    returncode: int
    stdout: str
    stderr: str


def child_environment(**extra: str) -> dict[str, str]:
    """The environment of a measured ``vboplan`` process: this one's, with colour off and bytecode caching on. An
    installed package runs from compiled bytecode (pip compiles it at install); PYTHONDONTWRITEBYTECODE, set on some
    build machines, would make every run of this checkout compile vboplan again and count that as its CPU time."""
    environment = {**os.environ, "NO_COLOR": "1", **extra}
    environment.pop("PYTHONDONTWRITEBYTECODE", None)
    return environment


def run_vboplan(*args: str, cwd: Path | None = None) -> Run:
    """``vboplan ARGS`` as a fresh process, as a user runs it; its own CPU time and peak memory (from wait4)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-m", "vboplan", *args], stdout=out, stderr=err,
                                   cwd=cwd or ROOT, env=child_environment())
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, process.returncode,
                   out.read().decode(), err.read().decode())


def verdict(ok: bool) -> str:
    return "within" if ok else "OVER"


def read_requests(log: Path, start: int = 0) -> list[dict]:
    """The requests an emulator answered (``serve --request-log LOG``) from line ``start`` on."""
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()[start:]]


def rounds(requests: list[dict]) -> int:
    """The round trips ``requests`` made a client wait for one after another: the longest chain of requests each sent
    after the one before it was answered. With a server that answered at once, after its latency, the client could
    not have been done sooner than this times the latency: the round-trip floor of what was sent (requests sent
    together, overlapping in time, count once; a pool of 8 workers sending 2,000 requests counts about 250)."""
    events = sorted([(r["finished"], 0, i) for i, r in enumerate(requests)] +
                    [(r["started"], 1, i) for i, r in enumerate(requests)])  # at a tie, an answer comes first
    chain: dict[int, int] = {}
    longest = 0  # the longest chain among the requests answered so far
    for _, starts, i in events:
        if starts:
            chain[i] = longest + 1
        else:
            longest = max(longest, chain[i])
    return longest


def busy(requests: list[dict]) -> float:
    """Seconds during which the server had at least one of ``requests`` in hand (latency and its own work)."""
    total, start, until = 0.0, None, float("-inf")
    for request in sorted(requests, key=lambda r: r["started"]):
        if start is None or request["started"] > until:
            if start is not None:
                total += until - start
            start, until = request["started"], request["finished"]
        else:
            until = max(until, request["finished"])
    return total + (until - start if start is not None else 0.0)
