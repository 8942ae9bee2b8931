"""Benchmark: ``vboplan plan --all`` over 20 environments, each on its own emulated server with 20 ms added to every
request, beside a naive client that sends the same requests one after another, and beside the round-trip floor.

    .venv/bin/python benchmarks/plan_all.py [--environments 20] [--latency-ms 20]

The servers are ``vboplan emulator serve --latency-ms 20`` processes. Each environment declares three settings
objects and the audit items of one organization, with two new user names to resolve: per environment a token, three
settings, the organizations, the audit items, two user lookups and a logout. The floor is the chain of dependent
round trips (token; settings and organizations; audit items; lookups; logout = 5) times the latency; vboplan's own
CPU time (user + system of its process) is added to it for the bound.
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--environments", type=int, default=20)
    parser.add_argument("--latency-ms", type=float, default=20)
    args = parser.parse_args()
    with TemporaryDirectory() as tmp:
        work = Path(tmp)
        seed = write_seed(work / "seed.json", SEED)
        with emulator_process("--seed", str(seed), "--latency-ms", str(args.latency_ms),
                              count=args.environments) as urls:
            project = write_project(work / "project", {f"env{k:02d}": url for k, url in enumerate(urls, 1)},
                                    {"all.yaml.j2": TEMPLATE})
            run_vboplan("-C", str(project), "validate")  # warm the file cache for both runs alike
            started = time.perf_counter()
            requests = sum(naive(url) for url in urls)
            naive_wall = time.perf_counter() - started

            run = run_vboplan("-C", str(project), "-q", "plan", "--all", "--format", "json")
            if run.returncode != 0:
                raise SystemExit(f"plan failed:\n{run.stderr}")
            changes = run.stdout.count('"action":')
    floor = DEPENDENT_ROUND_TRIPS * args.latency_ms / 1000
    bound = 2 * floor + run.cpu
    print(f"{args.environments} environments, {args.latency_ms:g} ms per request, each on its own emulator process; "
          f"{requests} requests in all ({requests // args.environments} per environment), {changes} changes planned")
    print(f"naive sequential client (httpx)    wall {naive_wall:7.3f} s")
    print(f"vboplan plan --all                 wall {run.wall:7.3f} s   CPU {run.cpu:6.3f} s   "
          f"peak RSS {run.peak_mib:6.1f} MiB")
    print(f"  speed-up over the naive client   {naive_wall / run.wall:6.2f} x   bound >= 3 x   "
          f"{verdict(naive_wall / run.wall >= 3)}")
    print(f"  round-trip floor                 {floor:7.3f} s ({DEPENDENT_ROUND_TRIPS} dependent round trips x "
          f"{args.latency_ms:g} ms)")
    print(f"  bound 2 x floor + client CPU     {bound:7.3f} s   vboplan {run.wall:7.3f} s   {verdict(run.wall <= bound)}")


if __name__ == "__main__":
    main()
