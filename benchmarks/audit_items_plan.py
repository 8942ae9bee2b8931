"""Benchmark: plan audit items for 2,000 declared users across 10 organizations of a synthetic 100,000-user tenant,
served by ``vboplan emulator serve`` with 20 ms added to every request.

    .venv/bin/python benchmarks/audit_items_plan.py [--latency-ms 20] [--users 100000] [--declared 2000]

Prints, for a cold plan (every name new), the apply of it, and the converged plan after it: wall time, requests,
peak memory of this process, and the lower bound (dependent round trips x latency) beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vboplan import core  # noqa: E402
from vboplan.applying.apply import execute  # noqa: E402
from vboplan.connection import connect  # noqa: E402

PASSWORD = "benchmark-password"


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def start_server(seed: Path, latency_ms: int) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "vboplan", "emulator", "serve", "--port", "0", "--data", str(seed),
         "--latency-ms", str(latency_ms)], stderr=subprocess.PIPE, text=True, cwd=ROOT)
    assert process.stderr is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        match = re.search(r"listening on (\S+)", line)
        if match:
            return process, match.group(1)
        if not line and process.poll() is not None:
            break
    process.kill()
    raise SystemExit("the emulator did not start")


def make_project(directory: Path, url: str, organizations: int, per_org_users: int, declared: int) -> None:
    per_org = declared // organizations
    step = max(per_org_users // per_org, 1)
    audit = {f"org{k}.onmicrosoft.com": {"users": [f"user{(k - 1) * per_org_users + i:05d}@org{k}.onmicrosoft.com"
                                                   for i in range(1, per_org_users + 1, step)][:per_org]}
             for k in range(1, organizations + 1)}
    (directory / "templates").mkdir(parents=True)
    (directory / "templates" / "items.yaml.j2").write_text(
        "audit_items:\n{% for org, spec in audit.items() %}  {{ org }}:\n    users: {{ spec.users | tojson }}\n"
        "{% endfor %}")
    (directory / "vars.json").write_text(json.dumps({"audit": audit}))
    (directory / "vboplan.yaml").write_text(
        f"templates: [templates/*.yaml.j2]\nenvironments:\n  bench:\n    server: {url}\n    api_version: v8\n"
        f"    username: admin\n    password_env: BENCH_PASSWORD\n    var_files: [vars.json]\n")


def report(label: str, seconds: float, requests: int, round_trips: int, latency_ms: int) -> None:
    bound = round_trips * latency_ms / 1000
    print(f"{label:<28} wall {seconds:7.3f} s   requests {requests:5d}   "
          f"lower bound {bound:6.3f} s ({round_trips} dependent round trips x {latency_ms} ms)   "
          f"peak RSS {peak_rss_mib():6.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=int, default=20)
    parser.add_argument("--organizations", type=int, default=10)
    parser.add_argument("--users", type=int, default=100_000, help="users in the whole tenant")
    parser.add_argument("--declared", type=int, default=2_000, help="users declared for audit, over all orgs")
    args = parser.parse_args()
    os.environ["BENCH_PASSWORD"] = PASSWORD
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        # The tenant is made by another process, so this one's peak memory is the client's alone.
        subprocess.run([sys.executable, "-m", "vboplan", "emulator", "generate", "--organizations",
                        str(args.organizations), "--users", str(args.users), "--groups", str(args.organizations * 100),
                        "--password", PASSWORD, "--out", str(work / "seed.json")], check=True, cwd=ROOT,
                       stderr=subprocess.DEVNULL)
        server, url = start_server(work / "seed.json", args.latency_ms)
        print(f"tenant: {args.organizations} organizations, {args.users} users; emulator at {url} with "
              f"{args.latency_ms} ms latency (ready in {time.perf_counter() - started:.1f} s)")
        try:
            print(f"peak RSS before planning: {peak_rss_mib():.1f} MiB")
            make_project(work / "project", url, args.organizations, args.users // args.organizations,
                         args.declared)
            project = core.open_project(work / "project")
            env = project.environment("bench")
            print(f"declared: {args.declared} users ({args.declared // args.organizations} per organization)")

            # Token, organizations, then per organization its audit items and its directory pages (10,000 a page),
            # all organizations at once: 3 + pages-1 dependent round trips at best.
            pages = -(-(args.users // args.organizations) // 10_000)
            cold_bound = 3 + pages - 1

            began = time.perf_counter()
            outcome = core.plan_one(project, env)
            if outcome.error:
                raise SystemExit(f"plan failed: {outcome.error}")
            assert outcome.plan is not None
            report(f"plan ({len(outcome.plan.changes)} to create)", time.perf_counter() - began, outcome.requests,
                   cold_bound, args.latency_ms)

            began = time.perf_counter()
            with connect(project, env) as client:
                result = execute(project, env, client, outcome.plan, list(outcome.plan.changes), [], [])
                requests = client.request_count
            assert result.ok, result.error
            # Token; per organization, in order (vboplan sends one write at a time, each journalled before and after),
            # the POST of its new items; the read-back (all organizations at once); logout. The ids the server gave
            # the new items are read only when a later write needs them, and nothing here does.
            floor = 3 + args.organizations
            elapsed = time.perf_counter() - began
            report(f"apply ({len(result.applied)} applied)", elapsed, requests, floor, args.latency_ms)
            bound = 3 * floor * args.latency_ms / 1000
            print(f"  apply wall {elapsed:.3f} s   bound 3 x floor = {bound:.3f} s   "
                  f"{'within' if elapsed <= bound else 'OVER'}")

            began = time.perf_counter()
            converged = core.plan_one(project, env)
            assert converged.plan is not None and not converged.plan.changes
            report("plan (converged)", time.perf_counter() - began, converged.requests, 3, args.latency_ms)
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
