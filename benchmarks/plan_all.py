"""Benchmark: ``vboplan plan --all`` over 20 environments, each on its own emulated server with 20 ms added to every
request, beside a naive client that sends the same requests one after another, and beside the round-trip floor.

    .venv/bin/python benchmarks/plan_all.py [--environments 20] [--latency-ms 20]

The servers are ``vboplan emulator serve --latency-ms 20`` processes. Each environment declares three settings
objects and the audit items of one organization, with two new user names to resolve: per environment a token, three
settings, the organizations, the audit items, two user lookups and a logout. The floor is the chain of dependent
round trips (token; settings and organizations; audit items; lookups; logout = 5) times the latency; vboplan's own
CPU time (user + system of its process) is added to it for the bound. Each of several runs starts its servers
afresh (nothing cached); the naive client, the peer, runs after vboplan on the same servers. Printed: each run, the
best and the median beside the bounds (judged on the medians); exits 1 when one is missed.

    .venv/bin/python benchmarks/plan_all.py [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PASSWORD, emulator_process, run_vboplan, verdict, write_project, write_seed  # noqa: E402

ORG = "contoso.onmicrosoft.com"
SEED = {
    "organizations": [{"name": ORG, "users": [{"displayName": f"User {i}", "name": f"user{i}@contoso.com"}
                                              for i in range(1, 51)],
                       "groups": [], "audit_items": [{"user": "user1@contoso.com"}, {"user": "user2@contoso.com"}]}],
    "audit_email_settings": {"enableNotification": False, "smtpServer": "old.smtp.local", "port": 25},
    "job_email_settings": {"enableNotification": True, "notifyOnFailure": True, "notifyOnSuccess": False},
}
TEMPLATE = """\
audit_email_settings:
  enableNotification: true
  smtpServer: smtp.contoso.com
  port: 587
job_email_settings:
  notifyOnSuccess: true
history_settings:
  keepAllsessions: false
  keeponlyLast: 30
audit_items:
  contoso.onmicrosoft.com:
    users: [user1@contoso.com, user2@contoso.com, user7@contoso.com, user9@contoso.com]
"""
SETTINGS = ("AuditEmailSettings", "VboEmailSettings", "HistorySettings")
NEW_NAMES = ("user7@contoso.com", "user9@contoso.com")
DEPENDENT_ROUND_TRIPS = 5


def naive(url: str) -> int:
    """The same requests as vboplan's plan of one environment, one after another, on one keep-alive connection."""
    sent = 0
    with httpx.Client(base_url=f"{url}/v8/", timeout=30) as http:
        token = http.post("token", data={"grant_type": "password", "username": "admin", "password": PASSWORD,
                                         "disable_antiforgery_token": "true"}).json()["access_token"]
        http.headers["Authorization"] = f"Bearer {token}"
        sent += 1
        for path in SETTINGS:
            http.get(path).raise_for_status()
            sent += 1
        orgs = http.get("Organizations", params={"offset": 0, "limit": 10000}).json()["results"]
        org_id = next(o["id"] for o in orgs if o["name"] == ORG)
        sent += 1
        http.get(f"Organizations/{org_id}/AuditItems").raise_for_status()
        sent += 1
        for name in NEW_NAMES:
            found = http.get(f"Organizations/{org_id}/Users", params={"userName": name, "offset": 0, "limit": 100})
            assert found.json()["results"], name
            sent += 1
        http.post("token/logout").raise_for_status()
        sent += 1
    return sent


def one_run(work: Path, seed: Path, args: argparse.Namespace, index: int) -> dict:
    """vboplan first, on emulators started for this run (nothing cached), then the naive client on the same ones."""
    with emulator_process("--seed", str(seed), "--latency-ms", str(args.latency_ms),
                          count=args.environments) as urls:
        project = write_project(work / f"project-{index}", {f"env{k:02d}": url for k, url in enumerate(urls, 1)},
                                {"all.yaml.j2": TEMPLATE})
        run_vboplan("-C", str(project), "validate")  # the file cache, for this run's projects alike
        run = run_vboplan("-C", str(project), "-q", "plan", "--all", "--format", "json")
        if run.returncode != 0:
            raise SystemExit(f"plan failed:\n{run.stderr}")
        started = time.perf_counter()
        requests = sum(naive(url) for url in urls)
        naive_wall = time.perf_counter() - started
    return {"wall": run.wall, "cpu": run.cpu, "rss": run.peak_mib, "naive": naive_wall, "requests": requests,
            "changes": run.stdout.count('"action":')}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--environments", type=int, default=20)
    parser.add_argument("--latency-ms", type=float, default=20)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with TemporaryDirectory() as tmp:
        work = Path(tmp)
        seed = write_seed(work / "seed.json", SEED)
        runs = []
        for index in range(args.runs):
            run = one_run(work, seed, args, index)
            runs.append(run)
            print(f"  run {index + 1}: vboplan plan --all wall {run['wall']:7.3f} s  CPU {run['cpu']:6.3f} s  "
                  f"peak RSS {run['rss']:6.1f} MiB   naive client wall {run['naive']:7.3f} s")
    floor = DEPENDENT_ROUND_TRIPS * args.latency_ms / 1000
    walls, cpus = [r["wall"] for r in runs], [r["cpu"] for r in runs]
    wall, cpu, naive_wall = statistics.median(walls), statistics.median(cpus), statistics.median(r["naive"] for r in runs)
    bound = 2 * floor + cpu
    requests = runs[0]["requests"]
    print(f"{args.environments} environments, {args.latency_ms:g} ms per request, each on its own emulator process "
          f"(fresh for each of {args.runs} runs); {requests} requests in all ({requests // args.environments} per "
          f"environment), {runs[0]['changes']} changes planned")
    print(f"vboplan plan --all                 wall best {min(walls):7.3f} s median {wall:7.3f} s   CPU best "
          f"{min(cpus):6.3f} s median {cpu:6.3f} s")
    print(f"naive sequential client (httpx)    wall median {naive_wall:7.3f} s (the peer, same servers, after vboplan)")
    speedup = naive_wall / wall
    print(f"  speed-up over the naive client   {speedup:6.2f} x (medians)   bound >= 3 x   {verdict(speedup >= 3)}")
    print(f"  round-trip floor                 {floor:7.3f} s ({DEPENDENT_ROUND_TRIPS} dependent round trips x "
          f"{args.latency_ms:g} ms)")
    print(f"  bound 2 x floor + client CPU     {bound:7.3f} s   vboplan median {wall:7.3f} s   {verdict(wall <= bound)}")
    return 0 if speedup >= 3 and wall <= bound else 1

if __name__ == "__main__":
    sys.exit(main())
