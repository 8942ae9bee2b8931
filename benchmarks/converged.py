"""Benchmark: a converged plan of many declared audit entries (nothing to change), as users run it: fresh
``vboplan plan`` processes against a fresh ``vboplan emulator serve`` process at latency 0. Prints the client's CPU
time (user + system, from the kernel) and peak RSS, best and median of the runs, beside the bounds and beside a peer
measured in the same run: a bare client in a fresh process that only logs in and reads the same audit items with
httpx and json (the reading any client does, without rendering, diffing or writing a plan).

    .venv/bin/python benchmarks/converged.py [--entries 100000] [--organizations 10] [--runs 5]
    .venv/bin/python benchmarks/converged.py --entries 1000000 --organizations 10 --runs 2

Bounds: 100,000 entries over 10 organizations: 1.0 s CPU and 150 MiB; 1,000,000 over 10: 10 s and 1 GiB; other
shapes are printed against the bound of the nearest of these. The names come as README.md advises for long lists:
one CSV data file per organization (``data/ORG.csv``, a header row, then a name a row), named from the variable
file (``{data_file: data/ORG.csv}``) and written into the template by ``{{ users | tojson }}``; ``--inline`` puts
the names in the JSON variable file itself instead.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path
from tempfile import TemporaryDirectory

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PASSWORD, ROOT, Run, emulator_process, run_vboplan, verdict, write_project, write_seed  # noqa: E402

sys.path.insert(0, str(ROOT))
from vboplan.emulator.synth import generate_tenant  # noqa: E402

# The bare reader: log in, list the organizations, GET each one's audit items and decode them with json.
PEER = textwrap.dedent("""\
    import json, sys, httpx
    with httpx.Client(base_url=sys.argv[1] + "/v8/", timeout=600) as http:
        token = http.post("token", data={"grant_type": "password", "username": "admin",
                                         "password": sys.argv[2]}).json()["access_token"]
        http.headers["Authorization"] = "Bearer " + token
        total = 0
        for org in http.get("Organizations").json()["results"]:
            total += len(json.loads(http.get(f"Organizations/{org['id']}/AuditItems").content))
    print(total)
""")


def _peer(url: str) -> Run:
    return run_python("-c", PEER, url, PASSWORD)


def run_python(*args: str) -> Run:
    """``python ARGS`` measured as :func:`common.run_vboplan` measures vboplan."""
    import tempfile
    import time

    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, *args], stdout=out, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        out.seek(0)
        return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status),
                   out.read().decode(), "")


def bounds(entries: int) -> tuple[float, float]:
    """(CPU seconds, peak MiB) the issue sets for the nearest measured shape."""
    return (10.0, 1024.0) if entries >= 500_000 else (1.0, 150.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--organizations", type=int, default=10)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--inline", action="store_true",
                        help="the names in the JSON variable file itself, not in CSV data files it names")
    args = parser.parse_args()
    with TemporaryDirectory() as tmp:
        work = Path(tmp)
        tenant = generate_tenant(args.organizations, args.entries, 10 * args.organizations)
        declared: dict[str, list[str]] = {}
        for org in tenant["organizations"]:
            declared[org["name"]] = [user["name"] for user in org["users"]]
            org["audit_items"] = [{"user": name} for name in declared[org["name"]]]
        seed = write_seed(work / "seed.json", tenant)
        del tenant
        template = "audit_items:\n{% for org, users in audited.items() %}  {{ org }}:\n    users: " \
                   "{{ users | tojson }}\n{% endfor %}"
        with emulator_process("--seed", str(seed)) as (url,):
            audited: dict[str, object] = dict(declared)
            if not args.inline:
                (work / "project" / "data").mkdir(parents=True)
                for at, (org, names) in enumerate(declared.items()):
                    (work / "project" / "data" / f"org{at}.csv").write_text("name\n" + "\n".join(names) + "\n",
                                                                          encoding="utf-8")
                    audited[org] = {"data_file": f"data/org{at}.csv"}
            project = write_project(work / "project", {"bench": url}, {"items.yaml.j2": template},
                                    {"bench": {"audited": audited}})
            config = project / "vboplan.yaml"  # a loaded machine serves 100 MB slowly: wall time is not measured
            config.write_text(config.read_text().replace("password_env: BENCH_PASSWORD",
                                                         "password_env: BENCH_PASSWORD\n    timeout: 600"))
            variables = (project / "bench.json").stat().st_size + sum(
                path.stat().st_size for path in (project / "data").glob("*.csv"))
            if variables > 24 * 1024 * 1024:  # as a user with a list this long does (the bound names it)
                os.environ["VBOPLAN_MAX_FILE_MIB"] = str(4 * variables // (1024 * 1024))
                print(f"VBOPLAN_MAX_FILE_MIB={os.environ['VBOPLAN_MAX_FILE_MIB']} (the names are "
                      f"{variables / 1e6:.0f} MB, and the rendered template as large)", flush=True)
            del declared
            runs, peers = [], []
            for _ in range(args.runs):
                run = run_vboplan("-C", str(project), "-q", "plan", "--env", "bench", "--out",
                                  str(work / "plan.json"))
                if run.returncode != 0 or "No changes" not in run.stdout:
                    raise SystemExit(f"plan failed or found changes:\n{run.stdout[-2000:]}\n{run.stderr}")
                runs.append(run)
                peer = _peer(url)
                if peer.returncode != 0 or int(peer.stdout) != args.entries:
                    raise SystemExit(f"the bare reader failed: {peer.stdout}")
                peers.append(peer)
            plan_file = (work / "plan.json").stat().st_size
    report(args, runs, peers, variables, plan_file)


def report(args: argparse.Namespace, runs: list[Run], peers: list[Run], variables: int, plan_file: int) -> None:
    cpu_bound, rss_bound = bounds(args.entries)
    cpu = sorted(r.cpu for r in runs)
    peer_cpu = sorted(r.cpu for r in peers)
    peak = max(r.peak_mib for r in runs)
    print(f"{args.entries:,} declared audit entries over {args.organizations} organization(s), all already audited "
          f"(no changes); names {'inline' if args.inline else 'in CSV data files'}, {variables / 1e6:.1f} MB, "
          f"plan file {plan_file / 1e6:.1f} MB; {len(runs)} "
          "runs, each a fresh process (best counts: on a shared machine noise only adds)")
    print(f"client CPU (user + system)  best {cpu[0]:6.3f} s  median {statistics.median(cpu):6.3f} s   "
          f"bound {cpu_bound:g} s   {verdict(cpu[0] <= cpu_bound)}   (runs: {', '.join(f'{c:.3f}' for c in cpu)})")
    print(f"  peer: bare httpx + json reader of the same audit items  best {peer_cpu[0]:6.3f} s  median "
          f"{statistics.median(peer_cpu):6.3f} s  peak {max(r.peak_mib for r in peers):6.1f} MiB")
    print(f"peak RSS                    {peak:6.1f} MiB (largest of the runs)   bound {rss_bound:g} MiB   "
          f"{verdict(peak <= rss_bound)}")
    print(f"wall                        best {min(r.wall for r in runs):6.3f} s")
    print(json.dumps({"entries": args.entries, "organizations": args.organizations, "cpu_best": cpu[0],
                      "cpu_median": statistics.median(cpu), "peak_mib": peak, "peer_cpu_best": peer_cpu[0]}))
    if cpu[0] > cpu_bound or peak > rss_bound:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
