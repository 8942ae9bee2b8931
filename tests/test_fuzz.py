"""Fuzzing: hundreds of malformed inputs (vboplan.yaml, variable files, templates, plan files, state files, command
lines, server answers from a hostile server of the tests' own). Each must end with one "Error:" line and exit 1:
no traceback, no unforeseen error, no secret, no hang. A larger run is benchmarks/fuzz.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import API_SECRET, SMTP_SECRET, ProjectDir, Result
from fuzzing import BILLION_LISTS, PLAN_FILE, STATE_FILE, Case, HostileServer, malformed_cases, mutated_cases

HANG = 30  # seconds: a case still running after this is a hang


def run_case(project: ProjectDir, case: Case) -> Result:
    """Write the case's files, run its command in-process, put the project back as it was."""
    saved: dict[Path, bytes | None] = {}
    created: list[Path] = []
    for name, data in case.files.items():
        path = project.root / name
        if path not in saved:
            saved[path] = path.read_bytes() if path.is_file() else None
        missing = path.parent
        while not missing.exists() and missing.parent != missing:
            if not missing.parent.exists():
                missing = missing.parent
                continue
            created.append(missing)
            break
        if data is None:
            path.unlink(missing_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    outcome: list[Result | BaseException] = []

    def work() -> None:
        try:
            outcome.append(project.run(*case.args, input=case.input))
        except BaseException as exc:  # reported below, with the case
            outcome.append(exc)

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    worker.join(HANG)
    try:
        if worker.is_alive():
            raise AssertionError(f"still running after {HANG}s")
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        return outcome[0]
    finally:
        for folder in created:
            shutil.rmtree(folder, ignore_errors=True)
        for path, data in saved.items():
            if data is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(data)


def verdict(case: Case, result: Result) -> str | None:
    """What is wrong with how vboplan handled ``case``, or None."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if "Traceback" in result.output and "-v" not in case.args:  # -vv shows one on purpose
        return "traceback"
    if "run with -v for details" in result.stderr:
        return f"unforeseen error: {lines[-1]}"
    if case.must_fail:
        if result.exit_code != 1:
            return f"exit {result.exit_code}, not 1"
        if not any(line.startswith(("Error: ", "Usage: ")) for line in lines):
            return f"no 'Error:' line: {result.stderr!r}"
    elif result.exit_code not in (0, 1):
        return f"exit {result.exit_code}"
    return None


@pytest.fixture
def fuzz_project(project: ProjectDir) -> ProjectDir:
    return prepared(project)


def prepared(project: ProjectDir) -> ProjectDir:
    """``project`` with audit items declared, a saved plan for dev, and a snapshot from an apply (what the plan
    and state file cases mutate); benchmarks/fuzz.py prepares its project the same way."""
    project.write("templates/audit_items.yaml.j2", "audit_items:\n  contoso.onmicrosoft.com:\n"
                                                   "    users: [ceo@contoso.com]\n")
    assert project.run("plan", "--env", "dev", "--out", str(project.root / PLAN_FILE)).exit_code == 0
    other = project.root / "plans" / "state-source.json"
    assert project.run("plan", "--env", "dev", "--out", str(other)).exit_code == 0
    assert project.run("apply", str(other)).exit_code == 0
    other.unlink()
    return project


def _texts(project: ProjectDir) -> dict[str, str]:
    names = ["vboplan.yaml", "templates/audit.yaml.j2", "templates/jobs.yaml.j2", "environments/common.yaml",
             "environments/dev.yaml"]
    return {name: (project.root / name).read_text(encoding="utf-8") for name in names}


def test_malformed_inputs_each_end_with_one_error(fuzz_project: ProjectDir, monkeypatch: pytest.MonkeyPatch) -> None:
    project = fuzz_project
    monkeypatch.chdir(project.root)  # plan files on the command line are relative to where vboplan runs
    texts = _texts(project)
    with HostileServer(drip_seconds=0.4) as server:
        cases = malformed_cases(texts, (project.root / PLAN_FILE).read_bytes(),
                                (project.root / STATE_FILE).read_bytes(), server.url, str(project.keys["bob"]))
        failures = []
        for case in cases:
            result = run_case(project, case)
            problem = verdict(case, result)
            if problem:
                failures.append(f"{case.category} / {case.label} ({' '.join(case.args)}): {problem}")
    print(f"\n{len(cases)} malformed inputs tried")
    assert len(cases) >= 200
    assert not failures, f"{len(failures)} of {len(cases)} cases mishandled:\n" + "\n".join(failures)


def test_random_mutations_never_crash(fuzz_project: ProjectDir) -> None:
    project = fuzz_project
    texts = _texts(project)
    failures = []
    cases = mutated_cases(texts, 60)
    for case in cases:
        problem = verdict(case, run_case(project, case))
        if problem:
            failures.append(f"{case.label}: {problem}")
    assert not failures, "\n".join(failures)


def _subprocess(project: ProjectDir, *args: str) -> subprocess.CompletedProcess[bytes]:
    """vboplan in its own process, its address space capped at 2 GiB where the platform allows (so an unbounded
    expansion fails instead of eating the machine), killed if it runs longer than HANG seconds."""
    def cap() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (2 * 1024 ** 3, 2 * 1024 ** 3))

    env = {**os.environ, "VBO_TEST_PASSWORD": API_SECRET, "SMTP_PASSWORD": SMTP_SECRET}
    return subprocess.run([sys.executable, "-m", "vboplan", "-C", str(project.root), "--no-color", *args],
                          capture_output=True, env=env, timeout=HANG,
                          preexec_fn=cap if sys.platform.startswith("linux") else None)


def test_billion_laughs_in_its_own_process(project: ProjectDir) -> None:
    project.write("environments/dev.yaml", BILLION_LISTS)
    result = _subprocess(project, "plan", "--env", "dev")
    assert result.returncode == 1
    assert result.stderr.decode().strip().startswith("Error: ") and "environments/dev.yaml:7" in result.stderr.decode()
    assert b"Traceback" not in result.stderr


def test_a_dripping_server_cannot_hold_a_plan(project: ProjectDir) -> None:
    with HostileServer(drip_seconds=0.5) as server:
        for mode in ("drip-head", "drip-body"):
            config = (project.root / "vboplan.yaml").read_text()
            project.write("vboplan.yaml", config.replace("server: emulator:dev",
                                                         f"server: {server.url}/{mode}\n    timeout: 1", 1))
            result = _subprocess(project, "plan", "--env", "dev")
            project.write("vboplan.yaml", config)
            assert result.returncode == 1
            assert b"did not answer within 1s" in result.stderr, result.stderr
            assert b"Traceback" not in result.stderr
