"""Benchmark: plan audit items for 2,000 declared users across 10 organizations of a synthetic 100,000-user tenant,
apply the plan, plan again (converged), each as the ``vboplan`` command a user runs, against a fresh
``vboplan emulator serve --latency-ms 20`` for every run.

    .venv/bin/python benchmarks/audit_items_plan.py [--runs 3] [--latency-ms 20] [--users 100000] [--declared 2000]

Each run starts an emulator of its own (the generated tenant served in memory: no directory index, no page warmed
by an earlier run) and runs three fresh processes: ``vboplan plan --out`` (every name new), ``vboplan apply`` of
that plan and ``vboplan plan`` again. For each: wall time, CPU time and peak memory of the process (from the
kernel), the requests the emulator answered for it (``--request-log``) and the round-trip floor they impose (the
latency times the longest chain of requests each sent after the one before it was answered), with the server's busy
time beside it. Printed: each run, then the best and the median of each command beside its bound (2 x the floor of
the same run, judged on the median ratio). Exits 1 when a command misses it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    PASSWORD,
    ROOT,
    busy,
    emulator_process,
    read_requests,
    rounds,
    run_vboplan,
    verdict,
    write_project,
)

BOUND = 2.0  # x the round-trip floor
STEPS = ("plan (cold, all new)", "apply", "plan (converged)")


def declared_audit(organizations: int, per_org_users: int, declared: int) -> tuple[str, dict]:
    """The template and variables declaring ``declared`` users spread over the organizations (generated names)."""
    per_org = declared // organizations
    step = max(per_org_users // per_org, 1)
    audit = {f"org{k}.onmicrosoft.com": {"users": [f"user{(k - 1) * per_org_users + i:05d}@org{k}.onmicrosoft.com"
                                                   for i in range(1, per_org_users + 1, step)][:per_org]}
             for k in range(1, organizations + 1)}
    template = ("audit_items:\n{% for org, spec in audit.items() %}  {{ org }}:\n    users: {{ spec.users | tojson }}"
                "\n{% endfor %}")
    return template, {"audit": audit}


def one_run(work: Path, seed: Path, args: argparse.Namespace, index: int) -> list[dict]:
    log = work / f"requests-{index}.jsonl"
    results = []
    with emulator_process("--seed", str(seed), "--latency-ms", str(args.latency_ms), "--request-log",
                          str(log)) as (url,):
        project = work / f"project-{index}"
        template, variables = declared_audit(args.organizations, args.users // args.organizations, args.declared)
        write_project(project, {"bench": url}, {"items.yaml.j2": template}, {"bench": variables})
        commands = (("-q", "plan", "--env", "bench", "--out", "plan.json"), ("-q", "apply", "plan.json"),
                    ("-q", "plan", "--env", "bench", "--format", "json"))
        for step, command in zip(STEPS, commands, strict=True):
            before = len(log.read_text(encoding="utf-8").splitlines()) if log.exists() else 0
            done = run_vboplan("-C", str(project), *command, cwd=project)
            if done.returncode != 0:
                raise SystemExit(f"{step} failed: {done.stderr.strip()[-2000:]}")
            requests = read_requests(log, before)
            waited = rounds(requests)
            results.append({"wall": done.wall, "cpu": done.cpu, "rss": done.peak_mib, "requests": len(requests),
                            "rounds": waited, "floor": waited * args.latency_ms / 1000, "busy": busy(requests),
                            "stdout": done.stdout})
        if f"{args.declared} applied" not in results[1]["stdout"]:
            raise SystemExit(f"the apply did not apply {args.declared} changes:\n{results[1]['stdout'][-2000:]}")
        if json.loads(results[2]["stdout"])["plans"][0]["changes"]:
            raise SystemExit("the plan after the apply still has changes")
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency-ms", type=float, default=20)
    parser.add_argument("--organizations", type=int, default=10)
    parser.add_argument("--users", type=int, default=100_000, help="users in the whole tenant")
    parser.add_argument("--declared", type=int, default=2_000, help="users declared for audit, over all orgs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        seed = work / "seed.json"
        subprocess.run([sys.executable, "-m", "vboplan", "emulator", "generate", "--organizations",
                        str(args.organizations), "--users", str(args.users), "--groups", str(args.organizations * 100),
                        "--password", PASSWORD, "--out", str(seed)], check=True, cwd=ROOT, stderr=subprocess.DEVNULL)
        print(f"tenant: {args.organizations} organizations, {args.users} users; {args.declared} users declared "
              f"({args.declared // args.organizations} per organization); a fresh emulator with {args.latency_ms:g} "
              "ms latency per run")
        runs = []
        for index in range(args.runs):
            runs.append(one_run(work, seed, args, index))
            for step, r in zip(STEPS, runs[-1], strict=True):
                print(f"  run {index + 1} {step:<22} wall {r['wall']:6.3f} s  CPU {r['cpu']:6.3f} s  peak RSS "
                      f"{r['rss']:6.1f} MiB  requests {r['requests']:5d} in {r['rounds']:4d} rounds  floor "
                      f"{r['floor']:6.3f} s  (server busy {r['busy']:6.3f} s)")
    missed = False
    for i, step in enumerate(STEPS):
        walls = [run[i]["wall"] for run in runs]
        ratios = [run[i]["wall"] / run[i]["floor"] for run in runs]
        ok = statistics.median(ratios) <= BOUND
        missed |= not ok
        print(f"{step:<22} wall best {min(walls):6.3f} s median {statistics.median(walls):6.3f} s   CPU median "
              f"{statistics.median(run[i]['cpu'] for run in runs):6.3f} s   floor median "
              f"{statistics.median(run[i]['floor'] for run in runs):6.3f} s   ratio best {min(ratios):5.2f} median "
              f"{statistics.median(ratios):5.2f}   bound {BOUND:.1f} x floor   {verdict(ok)}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
