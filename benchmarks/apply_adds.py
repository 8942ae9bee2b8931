"""Benchmark: ``vboplan apply PLANFILE`` of 2,000 new audit items over 10 organizations, as a user runs it, against a
fresh ``vboplan emulator serve --latency-ms 20`` for every run.

    .venv/bin/python benchmarks/apply_adds.py [--runs 5] [--latency-ms 20] [--organizations 10] [--adds 2000]

Each run starts an emulator of its own (serving the generated tenant in memory: nothing cached, nothing left from
an earlier run), saves a plan with a fresh ``vboplan plan --out`` (not timed), then times a fresh ``vboplan apply``
process: wall time, and its CPU time and peak memory from the kernel (wait4). The emulator writes every request it
answers (``--request-log``); the floor is computed from the requests of the apply alone: the emulator's latency
times the round trips the apply waited for one after another (the longest chain of requests each sent after the one
before it was answered; see common.rounds), the server's busy time beside it. Whatever else the
apply spends (start-up, journal, read-back, printing) is the client's. Printed: each run, then the best and the
median beside the bound (2 x the floor measured in the same run). Exits 1 when the median run misses its bound.
"""

from __future__ import annotations

import argparse
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


def audit_template(organizations: int, per_org_users: int, adds: int) -> tuple[str, dict]:
    per_org = adds // organizations
    step = max(per_org_users // per_org, 1)
    audit = {f"org{k}.onmicrosoft.com": {"users": [f"user{(k - 1) * per_org_users + i:05d}@org{k}.onmicrosoft.com"
                                                   for i in range(1, per_org_users + 1, step)][:per_org]}
             for k in range(1, organizations + 1)}
    template = ("audit_items:\n{% for org, spec in audit.items() %}  {{ org }}:\n    users: {{ spec.users | tojson }}"
                "\n{% endfor %}")
    return template, {"audit": audit}


def one_run(work: Path, seed: Path, args: argparse.Namespace, index: int) -> dict:
    log = work / f"requests-{index}.jsonl"
    with emulator_process("--seed", str(seed), "--latency-ms", str(args.latency_ms), "--request-log",
                          str(log)) as (url,):
        project = work / f"project-{index}"
        template, variables = audit_template(args.organizations, args.users // args.organizations, args.adds)
        write_project(project, {"bench": url}, {"items.yaml.j2": template}, {"bench": variables})
        planned = run_vboplan("-C", str(project), "-q", "plan", "--env", "bench", "--out", "plan.json", cwd=project)
        if planned.returncode != 0:
            raise SystemExit(f"plan failed: {planned.stderr.strip()}")
        before = len(log.read_text(encoding="utf-8").splitlines())
        applied = run_vboplan("-C", str(project), "-q", "apply", "plan.json", cwd=project)
        if applied.returncode != 0:
            raise SystemExit(f"apply failed: {applied.stderr.strip()}")
        if f"{args.adds} applied" not in applied.stdout:
            raise SystemExit(f"apply did not apply {args.adds} changes:\n{applied.stdout[-2000:]}")
        requests = read_requests(log, before)
    waited = rounds(requests)
    return {"wall": applied.wall, "cpu": applied.cpu, "rss": applied.peak_mib, "requests": len(requests),
            "rounds": waited, "floor": waited * args.latency_ms / 1000, "busy": busy(requests)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--latency-ms", type=float, default=20)
    parser.add_argument("--organizations", type=int, default=10)
    parser.add_argument("--users", type=int, default=20_000, help="users in the whole tenant")
    parser.add_argument("--adds", type=int, default=2_000, help="new audit items, over all organizations")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        seed = work / "seed.json"
        subprocess.run([sys.executable, "-m", "vboplan", "emulator", "generate", "--organizations",
                        str(args.organizations), "--users", str(args.users), "--groups", str(args.organizations * 10),
                        "--password", PASSWORD, "--out", str(seed)], check=True, cwd=ROOT, stderr=subprocess.DEVNULL)
        print(f"apply of {args.adds} new audit items over {args.organizations} organizations ({args.users} users), "
              f"a fresh emulator with {args.latency_ms:g} ms latency per run")
        runs = []
        for index in range(args.runs):
            run = one_run(work, seed, args, index)
            runs.append(run)
            print(f"  run {index + 1}: wall {run['wall']:6.3f} s  CPU {run['cpu']:6.3f} s  peak RSS "
                  f"{run['rss']:6.1f} MiB  requests {run['requests']:3d} in {run['rounds']:3d} rounds  floor "
                  f"{run['floor']:6.3f} s  (server busy {run['busy']:6.3f} s)  ratio {run['wall'] / run['floor']:4.2f}")
    ratios = sorted(run["wall"] / run["floor"] for run in runs)
    walls = [run["wall"] for run in runs]
    floor = statistics.median(run["floor"] for run in runs)
    median_ratio = statistics.median(ratios)
    print(f"apply wall: best {min(walls):.3f} s, median {statistics.median(walls):.3f} s; CPU best "
          f"{min(r['cpu'] for r in runs):.3f} s, median {statistics.median(r['cpu'] for r in runs):.3f} s")
    print(f"floor (latency x rounds, same runs): median {floor:.3f} s; bound {BOUND:g} x floor")
    print(f"ratio to the floor: best {ratios[0]:.2f}, median {median_ratio:.2f}   bound {BOUND:.2f}   "
          f"{verdict(median_ratio <= BOUND)}")
    return 0 if median_ratio <= BOUND else 1


if __name__ == "__main__":
    sys.exit(main())
