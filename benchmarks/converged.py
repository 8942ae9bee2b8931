"""Benchmark: a converged plan of 100,000 declared audit entries (nothing to change), emulator in its own process at
latency 0: the CPU time and peak memory of the ``vboplan plan`` process beside the bounds (2 s, 200 MB).

    .venv/bin/python benchmarks/converged.py [--entries 100000] [--runs 5]

The names come from a JSON variable file through a template (``{{ users | tojson }}``), as a project that
generates its list would have it; the server already audits every one of them, so the plan finds no change.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from tempfile import TemporaryDirectory

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, emulator_process, run_vboplan, verdict, write_project, write_seed  # noqa: E402

sys.path.insert(0, str(ROOT))
from vboplan.emulator.synth import generate_tenant  # noqa: E402

ORG = "org1.onmicrosoft.com"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with TemporaryDirectory() as tmp:
        work = Path(tmp)
        tenant = generate_tenant(1, args.entries, 100)
        names = [user["name"] for user in tenant["organizations"][0]["users"]]
        tenant["organizations"][0]["audit_items"] = [{"user": name} for name in names]
        seed = write_seed(work / "seed.json", tenant)
        del tenant
        with emulator_process("--seed", str(seed)) as (url,):
            project = write_project(work / "project", {"bench": url},
                                    {"items.yaml.j2": "audit_items:\n  " + ORG + ":\n    users: {{ users | tojson }}\n"},
                                    {"bench": {"users": names}})
            runs = []
            for _ in range(args.runs):
                run = run_vboplan("-C", str(project), "-q", "plan", "--env", "bench", "--out",
                                  str(work / "plan.json"))
                if run.returncode != 0 or "No changes" not in run.stdout:
                    raise SystemExit(f"plan failed or found changes:\n{run.stdout[-2000:]}\n{run.stderr}")
                runs.append(run)
            plan_file = (work / "plan.json").stat().st_size
    best = min(runs, key=lambda r: r.cpu)
    print(f"{args.entries} declared audit entries, all already audited (no changes); plan file "
          f"{plan_file / 1e6:.1f} MB; {len(runs)} runs (the least CPU counts: on a shared machine noise only adds)")
    print(f"client CPU (user + system)  {best.cpu:6.3f} s  (runs: {', '.join(f'{r.cpu:.3f}' for r in runs)})   "
          f"bound 2 s     {verdict(best.cpu <= 2)}")
    peak = max(r.peak_mib for r in runs) * 1024 * 1024 / 1e6
    print(f"peak RSS                    {peak:6.1f} MB (largest of the runs)   bound 200 MB  {verdict(peak <= 200)}")
    print(f"wall                        {best.wall:6.3f} s")


if __name__ == "__main__":
    main()
