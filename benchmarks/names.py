"""Benchmark: resolving new user names on one 100,000-user organization, emulator in its own process at 20 ms.

    .venv/bin/python benchmarks/names.py [--latency-ms 20] [--users 100000] [--plan-names 2000]

1. Filtered lookups (one request per name, max_in_flight at once) against one walk of the whole directory (pages of
   10,000, fetched concurrently), for a growing number of names: prints both times and the measured crossover beside
   PAGE_THRESHOLD, the number of names above which vboplan walks.
2. ``vboplan plan`` of --plan-names new names (a fresh process, as a user runs it; best of 3): wall time beside
   the 2.5 s bound.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PASSWORD, ROOT, emulator_process, run_vboplan, verdict, write_project, write_seed  # noqa: E402

sys.path.insert(0, str(ROOT))
from vboplan.api.client import VboClient  # noqa: E402
from vboplan.emulator.synth import generate_tenant  # noqa: E402
from vboplan.kinds import principals  # noqa: E402
from vboplan.project.config import Environment  # noqa: E402

ORG = "org1.onmicrosoft.com"


def timed(action) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=20)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--plan-names", type=int, default=2_000)
    args = parser.parse_args()
    with TemporaryDirectory() as tmp:
        work = Path(tmp)
        seed = write_seed(work / "seed.json", generate_tenant(1, args.users, 100))
        with emulator_process("--seed", str(seed), "--latency-ms", str(args.latency_ms)) as (url,):
            env = Environment(name="bench", server=url, api_version="v8")
            with VboClient(env.connection, "admin", PASSWORD) as client:
                org = next(o for o in client.organizations() if o["name"] == ORG)
                walks = [timed(lambda: principals.walk_directory(client, org, "User", [f"user00001@{ORG}"]))
                         for _ in range(3)]
                walk = min(walks)
                print(f"{args.users} users in one organization, {args.latency_ms:g} ms per request, "
                      f"{client.max_in_flight} requests in flight")
                print(f"walk of the directory ({-(-args.users // 10_000)} pages): {walk:6.3f} s "
                      f"(best of {len(walks)}: {', '.join(f'{w:.3f}' for w in walks)})")
                crossover = None
                count, step = 50, 0
                while count <= args.users:
                    names = [f"user{1 + i * (args.users // count):05d}@{ORG}" for i in range(count)]
                    lookups = timed(lambda names=names: principals.look_up_each(client, org, "User", names))
                    print(f"  {count:5d} names: lookups {lookups:6.3f} s   walk {walk:6.3f} s   "
                          f"{'lookups faster' if lookups < walk else 'walk faster'}")
                    if lookups >= walk:
                        # the time of lookups grows with the names: interpolate the count where it meets the walk
                        per_name = lookups / count
                        crossover = int(walk / per_name)
                        break
                    step += 1
                    count *= 2
            print(f"measured crossover: about {crossover} names; PAGE_THRESHOLD = {principals.PAGE_THRESHOLD} "
                  f"(walks above it)")

            names = [f"user{1 + i * (args.users // args.plan_names):05d}@{ORG}" for i in range(args.plan_names)]
            project = write_project(work / "project", {"bench": url},
                                    {"items.yaml.j2": "audit_items:\n  " + ORG + ":\n    users: {{ users | tojson }}\n"},
                                    {"bench": {"users": names}})
            runs = [run_vboplan("-C", str(project), "-q", "plan", "--env", "bench", "--format", "json")
                    for _ in range(3)]
            for run in runs:
                if run.returncode != 0:
                    raise SystemExit(f"plan failed:\n{run.stderr}")
            run = min(runs, key=lambda r: r.wall)
            planned = len(json.loads(run.stdout)["plans"][0]["changes"])
            print(f"vboplan plan, {planned} new names: wall {run.wall:6.3f} s (best of 3: "
                  f"{', '.join(f'{r.wall:.3f}' for r in runs)}; CPU {run.cpu:.3f} s, peak RSS {run.peak_mib:.0f} MiB)"
                  f"   bound 2.5 s   {verdict(run.wall <= 2.5)}")


if __name__ == "__main__":
    main()
