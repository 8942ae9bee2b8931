#!/usr/bin/env python3
"""Interrupt many applies (SIGKILL, SIGTERM, SIGINT at random moments) against `vboplan emulator serve
--latency-ms`, each apply started as `python -m vboplan` (start-up included, as a user runs it), and check after each
one what tests/test_kill.py checks on 6 runs: a valid snapshot, no password planned again, no "changed outside
vboplan" for vboplan's own writes, a re-plan showing exactly what is left, honest interruption messages.

    python benchmarks/kill_apply.py [--runs 150] [--latency-ms 40] [--seed N] [--fork]

Prints one line per run and a summary; exits 1 at the first broken promise.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from conftest import API_SECRET, AUDIT_TEMPLATE, JOB_TEMPLATE, SEED  # noqa: E402
from kill_harness import emulator_process, run_kills  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=150)
    parser.add_argument("--latency-ms", type=float, default=40)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--fork", action="store_true", help="fork applies from a preloaded server (no start-up)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vboplan-kill-") as scratch:
        root = Path(scratch) / "project"
        (root / "templates").mkdir(parents=True)
        (root / "environments").mkdir()
        (root / "templates" / "audit.yaml.j2").write_text(AUDIT_TEMPLATE)
        (root / "templates" / "jobs.yaml.j2").write_text(JOB_TEMPLATE)
        (root / "environments" / "common.yaml").write_text("smtp:\n  port: 587\nnotify_success: false\n")
        data = Path(scratch) / "emulator" / "dev.yaml"
        data.parent.mkdir()
        data.write_text(yaml.safe_dump(SEED))
        os.environ.update(VBO_TEST_PASSWORD=API_SECRET, VBOPLAN_USER="ann")
        with emulator_process(data, args.latency_ms) as url:
            (root / "vboplan.yaml").write_text(
                'templates: ["templates/*.yaml.j2"]\nenvironments:\n'
                f'  dev: {{server: "{url}", username: admin, password_env: VBO_TEST_PASSWORD,\n'
                '        var_files: [environments/common.yaml, environments/dev.yaml]}\n')

            def plan(environ: dict[str, str]) -> tuple[int, dict[str, Any], str]:
                result = subprocess.run([sys.executable, "-m", "vboplan", "-C", str(root), "plan", "--env", "dev",
                                         "--format", "json"], env=environ, capture_output=True, text=True, timeout=120,
                                        check=False)
                document = json.loads(result.stdout)["plans"][0] if result.returncode == 0 else {}
                return result.returncode, document, result.stderr

            began = time.monotonic()
            tally = run_kills(root, url, API_SECRET, args.runs, args.seed, plan, log=print, fork=args.fork)
            took = time.monotonic() - began
    print(f"\n{tally.runs} applies (seed {args.seed}, latency {args.latency_ms} ms): interrupted {tally.killed} "
          f"({', '.join(f'{k} {v}' for k, v in tally.interrupted.items())}), finished before the signal "
          f"{tally.finished_first}; the write reached the server in {tally.landed}, not in {tally.not_landed}; "
          f"{tally.honest_messages} interruption messages checked against the server; every re-plan exact. "
          f"{took:.0f} s ({took / max(tally.runs, 1):.1f} s a run).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
