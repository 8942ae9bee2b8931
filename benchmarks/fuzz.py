"""The fuzz run of tests/test_fuzz.py, larger: more random plan and state mutations and more random text
mutations of the project's files, every case against the same checks (one "Error:" line, exit 1, no traceback,
no unforeseen error, nothing still running after 30 s).

    .venv/bin/python benchmarks/fuzz.py [--scale 10] [--mutations 1000] [--seed 9]

Prints the count of inputs tried per category, the slowest cases, and every case mishandled (exit 1 if any).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import conftest  # noqa: E402
from fuzzing import PLAN_FILE, STATE_FILE, HostileServer, malformed_cases, mutated_cases  # noqa: E402
from test_fuzz import prepared, run_case, verdict  # noqa: E402


def build_project(folder: Path) -> conftest.ProjectDir:
    os.environ.update({"VBO_TEST_PASSWORD": conftest.API_SECRET, "SMTP_PASSWORD": conftest.SMTP_SECRET,
                       "VBOPLAN_USER": "ann"})
    os.environ.pop("NO_COLOR", None)
    key = folder / "id_bob"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bob@corp", "-f", str(key)], check=True)
    project = conftest.ProjectDir(folder / "project")
    project.keys = {"bob": key}  # type: ignore[attr-defined]
    project.write("vboplan.yaml", conftest.CONFIG)
    project.write("approvers/prod.allowed_signers", conftest.signer_line({"bob": key}, "bob") + "\n")
    project.write("templates/audit.yaml.j2", conftest.AUDIT_TEMPLATE)
    project.write("templates/jobs.yaml.j2", conftest.JOB_TEMPLATE)
    project.write("environments/common.yaml", "smtp:\n  port: 587\nnotify_success: false\n")
    project.write("environments/dev.yaml", "domain: dev.contoso.com\nsmtp:\n  host: smtp.dev.local\n")
    project.write("environments/prod.yaml", "domain: contoso.com\nsmtp:\n  host: smtp.office365.com\n")
    project.seed("dev", conftest.SEED)
    project.seed("prod", conftest.SEED)
    return prepared(project)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=10, help="multiplies the random plan and state mutations")
    parser.add_argument("--mutations", type=int, default=1000, help="random text mutations")
    parser.add_argument("--seed", type=int, default=9)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = build_project(Path(tmp))
        os.chdir(project.root)
        names = ["vboplan.yaml", "templates/audit.yaml.j2", "templates/jobs.yaml.j2", "environments/common.yaml",
                 "environments/dev.yaml"]
        texts = {name: (project.root / name).read_text(encoding="utf-8") for name in names}
        with HostileServer(drip_seconds=0.5) as server:
            cases = malformed_cases(texts, (project.root / PLAN_FILE).read_bytes(),
                                    (project.root / STATE_FILE).read_bytes(), server.url,
                                    str(project.keys["bob"]), seed=options.seed,  # type: ignore[attr-defined]
                                    scale=options.scale)
            cases += mutated_cases(texts, options.mutations, seed=options.seed)
            tried: Counter[str] = Counter()
            failures: list[str] = []
            timings: list[tuple[float, str]] = []
            started = time.monotonic()
            for case in cases:
                began = time.monotonic()
                try:
                    problem = verdict(case, run_case(project, case))
                except AssertionError as exc:
                    problem = str(exc).splitlines()[0]
                timings.append((time.monotonic() - began, f"{case.category} / {case.label}"))
                tried[case.category] += 1
                if problem:
                    failures.append(f"{case.category} / {case.label} ({' '.join(case.args)}): {problem}")
            total = time.monotonic() - started
    print(f"{sum(tried.values())} inputs tried in {total:.1f} s:")
    for category, count in sorted(tried.items()):
        print(f"  {category:<16} {count}")
    print("slowest cases (bound: 30 s each):")
    for seconds, label in sorted(timings, reverse=True)[:5]:
        print(f"  {seconds:6.2f} s  {label}")
    print(f"mishandled: {len(failures)}")
    for failure in failures:
        print(f"  {failure}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
