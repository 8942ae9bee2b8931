"""Benchmark: ``vboplan import`` of a server with every settings object, 10 organizations of a synthetic
20,000-user tenant and 100 audited principals in each, served by ``vboplan emulator serve`` with 20 ms added to every
request; then the plan that proves the import (its peer: both read the same things).

    .venv/bin/python benchmarks/import_adopt.py [--latency-ms 20] [--organizations 10] [--users 20000] [--audited 100]

Prints wall time, requests and peak memory of this process for the import (reading, writing) and for the plan.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from audit_items_plan import PASSWORD, start_server  # noqa: E402

from vboplan import core  # noqa: E402


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=int, default=20)
    parser.add_argument("--organizations", type=int, default=10)
    parser.add_argument("--users", type=int, default=20_000, help="users in the whole tenant")
    parser.add_argument("--audited", type=int, default=100, help="audited users and groups per organization")
    args = parser.parse_args()
    os.environ["BENCH_PASSWORD"] = PASSWORD
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        subprocess.run([sys.executable, "-m", "vboplan", "emulator", "generate", "--organizations",
                        str(args.organizations), "--users", str(args.users), "--groups", str(args.organizations * 50),
                        "--password", PASSWORD, "--out", str(work / "seed.json")], check=True, cwd=ROOT,
                       stderr=subprocess.DEVNULL)
        seed = json.loads((work / "seed.json").read_text())
        for org in seed["organizations"]:
            groups = args.audited // 10
            org["audit_items"] = ([{"user": u["name"]} for u in org["users"][:args.audited - groups]]
                                  + [{"group": g["name"]} for g in org["groups"][:groups]])
            org["organization_retention_exclusions"] = {"calendar": True}
        seed["history_settings"] = {"keepAllsessions": False, "keeponlyLast": 26}
        seed["audit_email_settings"] = {"enableNotification": True, "smtpServer": "smtp.corp.local", "port": 587}
        (work / "seed.json").write_text(json.dumps(seed))
        server, url = start_server(work / "seed.json", args.latency_ms)
        try:
            (work / "project").mkdir()
            (work / "project" / "vboplan.yaml").write_text(
                f"templates: [templates/*.yaml.j2]\nenvironments:\n  bench:\n    server: {url}\n"
                "    api_version: v8\n    username: admin\n    password_env: BENCH_PASSWORD\n"
                "    var_files: [environments/bench.yaml]\n")
            project = core.open_project(work / "project")
            env = project.environment("bench")
            print(f"server: {args.organizations} organizations, {args.users} users, {args.audited} audited principals "
                  f"per organization; {args.latency_ms} ms latency")
            began = time.perf_counter()
            result = core.import_environments(project, [env], dry_run=True)
            reading = time.perf_counter() - began
            print(f"import --dry-run (read + compose) wall {reading:7.3f} s   requests {result.environments[0].requests:5d}"
                  f"   peak RSS {peak_rss_mib():6.1f} MiB")
            began = time.perf_counter()
            result = core.import_environments(project, [env])
            whole = time.perf_counter() - began
            plan = result.outcomes[0]
            assert result.clean, [str(c.address) for c in plan.plan.changes] if plan.plan else plan.error
            print(f"import (read, write, plan)       wall {whole:7.3f} s   requests "
                  f"{result.environments[0].requests + plan.requests:5d}   files {len(result.written)}")
            began = time.perf_counter()
            again = core.plan_one(core.open_project(work / "project"), env)
            assert again.plan is not None and not again.plan.changes
            print(f"plan (peer: reads the same)       wall {time.perf_counter() - began:7.3f} s   requests "
                  f"{again.requests:5d}   No changes")
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
