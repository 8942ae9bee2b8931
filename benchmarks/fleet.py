"""Benchmark: ``vboplan plan --all`` over a fleet from an inventory, against ``vboplan emulator serve`` processes with
latency added to every request, beside a naive sequential client and the round-trip floor, all measured in one run.

    .venv/bin/python benchmarks/fleet.py small [--environments 500] [--servers 25] [--latency-ms 20]
    .venv/bin/python benchmarks/fleet.py large [--environments 200] [--servers 10] [--entries 100000] [--latency-ms 20]

``small``: each environment declares three settings objects and four audit items of one organization (two of them
new names to resolve), as benchmarks/plan_all.py; the naive client sends the same requests one after another on one
keep-alive connection (httpx), with no rendering or diffing at all. Bounds: vboplan at least 20 x faster than it,
and more than one core used.

``large``: each environment declares ``--entries`` audit items (names from a JSON variable file, every one audited
on its server already: a converged plan that reads and compares them all); the naive client is vboplan's own planner
run one environment after another in one process, saving each plan file as ``--out-dir`` does. Printed: CPU per
environment, cores used (CPU / wall), peak memory of the parent and of the largest process, beside the naive
client's and the floor.

The environments are spread over ``--servers`` emulator processes (a VBO server per process), so several share a
server and its ``max_in_flight`` (8) bounds what vboplan sends it. The floor is the larger of the chain of dependent
round trips of one environment and the requests of the busiest server at 8 in flight, times the latency. Each
server answers one environment's requests before the naive client is timed (route tables are built on a server's
first request). The parent's peak RSS is its own (RUSAGE_SELF, written as it exits), against 150 MiB.

What bounds ``small`` on one 2-core machine (the peers are emulator processes on the same two cores, not servers of
their own): CPU, not the servers. The naive client costs 9 x (20 ms + ~10 ms) per environment, ~135 s for 500 on
an idle machine, so 20 x means ~6.7 s, i.e. at most ~13 core-seconds for everything, emulators included. The
emulators spend ~1.2-1.6 ms of CPU per request (a threaded stdlib WSGI server; its header parsing by the email
package and wsgiref's handler are about a third of it): 6-7.5 s for the 4,500 requests, printed below. vboplan
spent 36-48 ms per environment before these changes and ~27 ms in one process after (plan_one in a loop, load
10-15): workers are forked (no interpreter, imports or project load per worker), fan-outs run on kept threads,
settings are compared without deepdiff, and requests go over the standard library's http.client
(vboplan.api.transport: ~0.3-0.4 ms of client CPU a request, against ~1.0 ms through httpx, httpcore and h11).
What is left per environment (cProfile on process time, plan_one in a loop, load 7): rendering ~13 ms, of which
~4.7 ms is the template sandbox wrapping each of its ~93 filters and tests with functools.wraps for every
environment (vboplan/project/render.py) and ~2.6 ms a YAML parse; the plan's checksum ~5.6 ms; a typing.Protocol
isinstance check ~4 ms; the requests ~3 ms; and in the parent the CLI's start-up and the 500-entry inventory, the
plans unpickled and the JSON output. With the emulators' ~6.7 core-seconds, 2 idle cores cannot reach 20 x before
those go down too.

Measured 2026-12-02 (shared machine, other sessions' suites running): before, 06:18-06:22 UTC, load 5-17: naive
198.7 s, vboplan 34.6 s (48.7 ms CPU per environment, 0.70 cores): 5.7 x. After, 07:13-07:21 UTC, load 10-16:
naive 310.4 s, vboplan 25.7 s (44.5 ms, 0.87 cores): 12.1 x; parent 58.7 MiB (it holds all 500 plans for the
JSON output). A/B of the two checkouts on the same 25 servers, interleaved, three runs each, load 15-43: median
CPU 26.0 s before, 21.7 s after. ``large`` 200 x 25,000 entries, 07:00-07:29 UTC, load 14-43 (the naive client
then saved no plan files): naive 1,346.9 s (411.9 ms CPU per environment), vboplan 344.5 s (697.7 ms, 0.41
cores): 3.9 x; parent 59.4 MiB, largest worker 565.4 MiB. After the http.client transport, 12:56-12:59 UTC,
load 4-9: naive 169.3 s, vboplan 14.7 s (12.35 s CPU, 24.7 ms per environment, 0.84 cores): 11.5 x; parent 56.1
MiB. ``large --environments 24 --servers 4`` (100,000 entries each), 13:06-13:16 UTC, load 12-13: naive 318.8 s
(1,370.8 ms CPU per environment), vboplan 169.4 s (1,540.5 ms, 0.22 cores): 1.9 x; 24 environments make one worker,
so the parent planned them all (656.6 MiB). The same fleet with VBOPLAN_WORKERS=2, 13:17-13:35 UTC, load 13-20:
largest process 614.1 MiB with the default memory budget, 420.8 MiB with VBOPLAN_WORKER_MEMORY_MIB=300 when a worker
started with 8 environments in hand, 269.6 MiB when it starts with 2 (38.2-38.3 s CPU in each run).

Measured 2026-12-03 (2 cores, shared). ``small`` with answers' header sections read by vboplan.api.transport
(not the email package) and the same on the emulator's side for requests, 12:04-12:06 UTC, load 2.9: naive
111.96 s, vboplan 5.07 s (5.12 s CPU, 10.2 ms per environment, 1.01 cores; emulators 3.80 s of CPU for the 4,500
requests, ~0.84 ms each): 22.1 x; parent 54.9 MiB. Again 12:08-12:10 UTC, load 2.1-3.6: naive 113.71 s, vboplan
4.44 s (4.43 s CPU, 8.9 ms per environment; emulators 3.42 s): 25.6 x, but 0.996 cores, under the bound of more
than one (less CPU to spread). Before the emulator's change, 11:38-11:41 UTC, load 4.8-5.7:
naive 123.61 s, vboplan 7.92 s (6.51 s CPU, 13.0 ms, 0.82 cores; emulators 5.17 s, ~1.15 ms a request): 15.6 x.
``large`` (200 x 100,000 entries over 10 servers), the emulator keeping each organization's encoded audit list
until a write to it, 11:42-11:46 UTC, load 3.5-11: naive 183.90 s (362.0 ms CPU per environment; emulators 27.55
s, the first list of each server built cold), vboplan 75.63 s (84.32 s CPU, 421.6 ms per environment, 1.11 cores;
emulators 5.23 s): 2.4 x; parent 115.9 MiB, largest process 940.7 MiB; plan files 660.2 MB.

Measured 2026-12-04 (2 cores, shared: another checkout's test suite ran during part of it). ``small``, the
emulator's connections served on kept threads (one started per connection before: the accept loop waited for each
start, and vboplan opens one every ~4 requests) and its routes indexed by first path segment, against main's
checkout, alternated, 02:21-02:29 UTC, load 0.5-3.4: main 0.94 and 0.99 cores (vboplan 2.60 and 2.56 s CPU, 5.2
and 5.1 ms per environment; emulators 2.12 and 1.81 s; 36.9 and 39.6 x), this 1.03 and 1.04 cores (2.58 and 2.44 s
CPU, 5.2 and 4.9 ms; emulators 1.68 and 1.49 s; 40.6 and 43.2 x); parent 54.8-55.0 MiB in all. Once more at 02:30
(load 1.8): 1.06 cores, 2.35 s CPU, emulators 1.39 s, 45.7 x, parent 54.2 MiB. Earlier the same day, 01:51
(main, load 0.9) 0.98 cores, emulators 1.76 s; this code 02:07 (load 5.8) 1.05 cores, emulators 1.58 s,
but 02:04 (load 1.5-3.7) 0.61 cores: wall 3.84 s for 2.34 s of CPU, a stall not seen again in 4 more full runs and
13 runs of the planning alone (0.95-1.09 cores; main 13 runs, 0.89-1.01), cause not found. One emulator at 20
ms, 8 client threads opening connections as vboplan does: 0.26-0.27 ms of its CPU per request before, 0.20 after
(median of 5); its own handlers are ~0.035 ms of that (in process, no socket), the rest the socket server,
wsgiref and ~8 context switches a request (perf stat). The cores bound holds by ~4 %, not by a margin.

Later on 2026-12-04 (2 cores, shared; other sessions' load came and went). A worker's window now charges each
environment only its even share of the CPU spent while it was in hand (vboplan/planning/parallel.py, Window), not
all the CPU since the worker started over the plans finished. Traced (Window.after wrapped, small's fleet): main's
workers open to 7-8 at the first plan (~0.28 s), 14-15, back to 7-10, and reach ~24-30 by ~0.6-0.8 s; now 16-18
at the first plan and 32 (THREADS) by ~0.55-0.6 s. ``small``, alternated with main's checkout, 02:36-02:51 UTC:
main 0.77, 1.01, 1.06 cores (vboplan 2.59, 2.20, 2.70 s CPU, 5.2, 4.4, 5.4 ms per environment; emulators 1.81,
1.47, 1.59 s; 31.6, 47.5, 41.5 x; load 0.7-2.6), this 1.03, 1.02, 1.02 cores (3.19, 2.32, 2.94 s CPU; 6.4, 4.6,
5.9 ms; emulators 2.25, 1.53, 2.11 s; 33.9, 45.5, 35.8 x; load 0.8-6.4); parent 54.7-55.1 MiB in all. The planning
alone (500 environments on the same 25 emulators, the two checkouts alternated, 12 runs each, 02:59-03:00 UTC,
load 2-14): main median 1.039 cores (0.975-1.065, 11 of 12 above 1), this 1.044 (1.027-1.071, 12 of 12); wall
median 2.70 s and 2.64 s, CPU 2.79 s and 2.75 s. The ramp was ~0.3 s of a ~2.6 s run: the bound now held in
every run of this code, still by only 2-7 %. ``VBOPLAN_WORKER_MEMORY_MIB=300 large --environments 40 --servers 4
--entries 100000``, alternated, 02:50-02:55 and 03:01-03:04 UTC, load 0.9-3.4, five runs each: largest process
main 266.7, 306.1, 263.1, 228.3, 284.8 MiB, this 304.5, 312.2, 305.4, 227.4, 304.2 MiB (parent 115.6-117.2 MiB,
12.1-14.0 s CPU, 1.67-1.74 cores in all). Over 300 MiB in both: traced (one run each), every window was the memory
term's, int((budget - start) / each), the CPU term's as large or larger; at a worker's first plan that term divides
its peak by the 2 environments in hand before the second has reached its own, 65-73 MiB each against the 88-148 MiB
it learns later, so the worker takes 3-4 in hand and peaks at 304 MiB (main) and 350 MiB (this). In these traces the
memory estimate, not the CPU one, let it past 300, but this code passed it in 4 runs of 5 and main in 1 of 5, too
few runs to call that chance or not: the memory bound is not shown to hold as before (the first-plan estimate wants
fixing either way).

Then (03:08-03:13 UTC, 2 cores, load 0.4-1.9): a worker shares its peak only among the environments it has handed
back (at most those it has had in hand at once), not among those still in hand, whose own peak may be still to
come. ``VBOPLAN_WORKER_MEMORY_MIB=300 large --environments 40 --servers 4 --entries 100000``, alternated with the
same code before this change (/work/wt/ramp), three runs each: largest process 211.3, 219.7, 199.1 MiB (before
305.3, 305.5, 306.1), vboplan wall 8.09, 7.95, 7.66 s (before 7.19, 6.96, 7.72), 1.44-1.47 cores (before
1.67-1.72), parent 115.7-117.0 MiB in all: within the budget, at the price of one environment in hand per worker
at this budget. At the default budget, two runs each: largest 392.4, 410.5 MiB against 390.6, 410.3, wall 7.45,
7.72 s against 7.65, 7.65, 1.74-1.77 cores in all.

A review then found that estimate, kept as a running maximum, held a worker's window small for a whole run of
moderate environments (a simulation with the real Window: 8 in hand instead of 32 at 10 MiB each). Relaxing it
(not kept) let the worker past 300 MiB again (03:40-03:42 UTC: 305.9, 307.3, 304.0 MiB). What holds both: only
the first plan's peak is taken as one environment's (at most FIRST_WINDOW times too much, and kept); later peaks
are shared among those in hand, as before. 03:47-03:51 UTC, load 0.2-1.7: at 300 MiB, three runs, largest
process 203.2, 211.2, 211.8 MiB, wall 7.73, 8.20, 7.97 s, 1.45-1.47 cores; at the default budget 436.0 MiB, 7.70
s, 1.76 cores; ``small`` 44.5 x, 4.9 ms CPU per environment, 1.05 cores, emulators 1.63 s, parent 55.7 MiB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PASSWORD, ROOT, Run, child_environment, emulator_process, run_vboplan, verdict, write_seed  # noqa: E402
from plan_all import DEPENDENT_ROUND_TRIPS, SEED, TEMPLATE, naive  # noqa: E402

MAX_IN_FLIGHT = 8
#: The parent's peak RSS (MiB): the bound a vboplan process keeps elsewhere (benchmarks/converged.py).
PARENT_BOUND_MIB = 150
LARGE_ORG = "org1.onmicrosoft.com"


def write_fleet(directory: Path, urls: list[str], count: int, templates: dict[str, str],
                variables: dict | None = None, timeout: float | None = None) -> Path:
    """A project whose ``count`` environments come from an inventory, spread round-robin over ``urls``."""
    (directory / "templates").mkdir(parents=True, exist_ok=True)
    for name, text in templates.items():
        (directory / "templates" / name).write_text(text, encoding="utf-8")
    var_files = ""
    if variables is not None:
        (directory / "names.json").write_text(json.dumps(variables), encoding="utf-8")
        var_files = ", var_files: [names.json]"
    if timeout is not None:
        var_files += f", timeout: {timeout:g}"  # a 12 MB answer from a server sharing two loaded cores takes a while
    lines = [f"defaults: {{api_version: v8, username: admin, password_env: BENCH_PASSWORD{var_files}}}",
             "environments:"]
    lines += [f'  - {{name: tenant-{k:04d}, server: "{urls[k % len(urls)]}", labels: {{ring: "{k % 4}"}}}}'
              for k in range(count)]
    (directory / "inventory.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (directory / "vboplan.yaml").write_text("templates: [templates/*.yaml.j2]\ninventory: inventory.yaml\n",
                                            encoding="utf-8")
    os.environ["BENCH_PASSWORD"] = PASSWORD
    return directory


# ``python -m vboplan ARGS`` that also writes its own peak RSS (KiB, RUSAGE_SELF: this process alone, not its workers)
# to the file BENCH_PARENT_RSS names when it exits. Forked workers leave by os._exit and spawned ones never run this,
# so only the parent writes it.
CLI_WITH_OWN_RSS = """\
import atexit, os, resource, runpy, sys
def _own_peak():
    with open(os.environ["BENCH_PARENT_RSS"], "w") as out:
        out.write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
atexit.register(_own_peak)
sys.argv[0] = "vboplan"
runpy.run_module("vboplan", run_name="__main__", alter_sys=True)
"""


@dataclass
class Measured(Run):
    """A run of the CLI, with the peak RSS of its own (parent) process beside that of the largest process."""

    parent_mib: float = 0.0


def measured(*command: str, **environ: str) -> Run:
    """A child process (``python COMMAND``) with its wall time, CPU (its waited-for workers included) and peak RSS."""
    import tempfile

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, *command], stdout=out, stderr=err, cwd=ROOT,
                                   env=child_environment(**environ))
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status),
                   out.read().decode(), err.read().decode())


def measured_cli(*args: str, **environ: str) -> Measured:
    """``vboplan ARGS`` as :func:`measured`, plus the peak RSS of the vboplan process itself (the parent of the
    workers); the largest process is the largest of the parent and every worker (wait4's ru_maxrss)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        own = Path(folder) / "parent-rss"
        run = measured("-c", CLI_WITH_OWN_RSS, *args, BENCH_PARENT_RSS=str(own), **environ)
        parent = int(own.read_text()) / 1024 if own.exists() else float("nan")
    return Measured(**vars(run), parent_mib=parent)


def emulators_cpu() -> float | None:
    """CPU seconds used so far by this process's running children (the emulators), from /proc; None elsewhere."""
    try:
        children = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split()
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for pid in children:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
        return total
    except (OSError, ValueError, IndexError):
        return None


def spent(before: float | None) -> str:
    after = emulators_cpu()
    return "n/a" if before is None or after is None else f"{after - before:.3f} s"


def sequential(project: str, out_dir: str) -> None:
    """The naive client of ``large``: vboplan's planner, one environment after another, in this one process, each
    plan saved to ``out_dir`` as ``plan --out-dir`` saves it (the same work as the run it is compared with)."""
    sys.path.insert(0, str(ROOT))
    from vboplan.core import plan_one
    from vboplan.project.config import load_project

    loaded = load_project(Path(project))
    changes = 0
    for env in loaded.environments.values():
        outcome = plan_one(loaded, env)
        if outcome.error is not None or outcome.plan is None:
            raise SystemExit(f"{env.name}: {outcome.error}")
        outcome.plan.save(Path(out_dir) / f"{env.name}.json")
        changes += len(outcome.plan.changes)
    print(json.dumps({"environments": len(loaded.environments), "changes": changes}))


def floor_seconds(count: int, servers: int, requests_per_env: int, chain: int, latency_ms: float) -> float:
    busiest = -(-count // servers) * requests_per_env
    return max(chain, busiest / MAX_IN_FLIGHT) * latency_ms / 1000


def print_run(label: str, run: Run, count: int) -> None:
    parent = f"parent {run.parent_mib:6.1f} MiB, " if isinstance(run, Measured) else ""
    print(f"{label:<36} wall {run.wall:8.3f} s   CPU {run.cpu:8.3f} s ({run.cpu / count * 1000:7.1f} ms per "
          f"environment)   cores used {run.cpu / run.wall:4.2f}   peak RSS {parent}{run.peak_mib:6.1f} MiB "
          "(largest process)")


def print_parent_memory(run: Measured, bound: float, what: str) -> None:
    print(f"  parent's peak RSS                  {run.parent_mib:6.1f} MiB bound <= {bound:g} MiB ({what}; the largest "
          f"process {run.peak_mib:.1f} MiB)   {verdict(run.parent_mib <= bound)}")


def small(args: argparse.Namespace) -> None:
    with TemporaryDirectory() as tmp:
        work = Path(tmp)
        seed = write_seed(work / "seed.json", SEED)
        with emulator_process("--seed", str(seed), "--latency-ms", str(args.latency_ms), count=args.servers) as urls:
            project = write_fleet(work / "project", urls, args.environments, {"all.yaml.j2": TEMPLATE})
            run_vboplan("-C", str(project), "validate")  # warm the file cache for every run alike
            for url in urls:  # each server builds its route tables on its first request: not the naive client's cost
                naive(url)
            started, before = time.perf_counter(), emulators_cpu()
            requests = sum(naive(urls[k % len(urls)]) for k in range(args.environments))
            naive_wall, naive_servers = time.perf_counter() - started, spent(before)
            before = emulators_cpu()
            one = measured_cli("-C", str(project), "-q", "plan", "--all", "--format", "json",
                               VBOPLAN_WORKERS="1") if args.one_process else None
            one_servers, before = spent(before), emulators_cpu()
            run = measured_cli("-C", str(project), "-q", "plan", "--all", "--format", "json")
            run_servers = spent(before)
    if run.returncode != 0:
        raise SystemExit(f"plan failed:\n{run.stderr[-3000:]}")
    document = json.loads(run.stdout)
    per_env = requests // args.environments
    floor = floor_seconds(args.environments, args.servers, per_env, DEPENDENT_ROUND_TRIPS, args.latency_ms)
    print(f"{args.environments} environments from an inventory over {args.servers} emulator processes, "
          f"{args.latency_ms:g} ms per request, {os.cpu_count()} cores; {requests} requests in all ({per_env} per "
          f"environment); fleet {document['fleet']['alignment']} aligned, {len(document['fleet']['groups'])} "
          f"group(s), totals {document['fleet']['totals']}")
    print(f"{'naive sequential client (httpx)':<36} wall {naive_wall:8.3f} s   (the emulators' CPU meanwhile: "
          f"{naive_servers})")
    if one is not None:
        print_run("vboplan plan --all, one process", one, args.environments)
        print(f"{'':<36} (the emulators' CPU meanwhile: {one_servers})")
    print_run("vboplan plan --all", run, args.environments)
    print(f"{'':<36} (the emulators' CPU meanwhile: {run_servers}, on the same cores)")
    print(f"  speed-up over the naive client     {naive_wall / run.wall:6.1f} x   bound >= 20 x   "
          f"{verdict(naive_wall / run.wall >= 20)}")
    print(f"  cores used                         {run.cpu / run.wall:6.2f}     bound > 1      "
          f"{verdict(run.cpu / run.wall > 1)}")
    print_parent_memory(run, PARENT_BOUND_MIB, "it holds every plan whole: --format json prints them all")
    print(f"  round-trip floor                   {floor:6.3f} s (max of {DEPENDENT_ROUND_TRIPS} dependent round trips "
          f"and the busiest server's requests / {MAX_IN_FLIGHT} in flight, x {args.latency_ms:g} ms)")


def large(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(ROOT))
    from vboplan.emulator.synth import generate_tenant

    with TemporaryDirectory() as tmp:
        work = Path(tmp)
        tenant = generate_tenant(1, args.entries, 10)
        names = [user["name"] for user in tenant["organizations"][0]["users"]]
        tenant["organizations"][0]["audit_items"] = [{"user": name} for name in names]
        seed = write_seed(work / "seed.json", tenant)
        del tenant
        set_up = time.perf_counter()
        with emulator_process("--seed", str(seed), "--latency-ms", str(args.latency_ms), count=args.servers) as urls:
            set_up = time.perf_counter() - set_up
            template = {"items.yaml.j2": "audit_items:\n  " + LARGE_ORG + ":\n    users: {{ users | tojson }}\n"}
            project = write_fleet(work / "project", urls, args.environments, template, {"users": names}, timeout=600)
            run_vboplan("-C", str(project), "validate", "--env", "tenant-0000")
            before = emulators_cpu()
            naive_run = measured(str(Path(__file__).resolve()), "sequential", str(project), str(work / "naive"))
            naive_servers, before = spent(before), emulators_cpu()
            if naive_run.returncode != 0:
                raise SystemExit(f"sequential planning failed:\n{naive_run.stderr[-3000:]}{naive_run.stdout[-2000:]}")
            run = measured_cli("-C", str(project), "-q", "plan", "--all", "--out-dir", str(work / "plans"))
            run_servers = spent(before)
            plan_bytes = sum(p.stat().st_size for p in (work / "plans").glob("*.json"))
    if run.returncode != 0:
        raise SystemExit(f"plan failed:\n{run.stderr[-3000:]}")
    # Token, organizations, the audit items (streamed in one answer), logout: four dependent round trips.
    floor = floor_seconds(args.environments, args.servers, 4, 4, args.latency_ms)
    print(f"{args.environments} environments of {args.entries} audit entries each (all audited: converged plans), "
          f"over {args.servers} emulator processes (set up in {set_up:.1f} s), {args.latency_ms:g} ms per request, "
          f"{os.cpu_count()} cores; plan files {plan_bytes / 1e6:.1f} MB in all")
    print_run("naive: vboplan's planner, sequential", naive_run, args.environments)
    print(f"{'':<36} (the emulators' CPU meanwhile: {naive_servers}: each answers its audit list of "
          f"{args.entries} entries)")
    print_run("vboplan plan --all --out-dir", run, args.environments)
    print(f"{'':<36} (the emulators' CPU meanwhile: {run_servers}, on the same cores)")
    print(f"  speed-up over the naive client     {naive_run.wall / run.wall:6.1f} x")
    print_parent_memory(run, PARENT_BOUND_MIB, "plan files saved as they arrive, only changes and verdicts kept")
    print(f"  cores used                         {run.cpu / run.wall:6.2f}     bound > 1      "
          f"{verdict(run.cpu / run.wall > 1)}")
    print(f"  round-trip floor                   {floor:6.3f} s;  CPU floor on {os.cpu_count()} cores "
          f"{naive_run.cpu / (os.cpu_count() or 1):6.3f} s (the naive client's CPU spread over every core)")


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "sequential":
        sequential(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    scenarios = parser.add_subparsers(dest="scenario", required=True)
    one = scenarios.add_parser("small", help="many environments of a few settings each")
    one.add_argument("--environments", type=int, default=500)
    one.add_argument("--servers", type=int, default=25)
    one.add_argument("--latency-ms", type=float, default=20)
    one.add_argument("--one-process", action="store_true",
                     help="also plan with VBOPLAN_WORKERS=1 (threads of one process, as before worker processes)")
    big = scenarios.add_parser("large", help="environments of long audit lists")
    big.add_argument("--environments", type=int, default=200)
    big.add_argument("--servers", type=int, default=10)
    big.add_argument("--entries", type=int, default=100_000)
    big.add_argument("--latency-ms", type=float, default=20)
    args = parser.parse_args()
    small(args) if args.scenario == "small" else large(args)


if __name__ == "__main__":
    main()
