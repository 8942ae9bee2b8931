"""Benchmark: how long ``vboplan --help`` and ``vboplan --version`` take, beside ``python -c "import click"``.

    .venv/bin/python benchmarks/startup.py [--runs 30]

Every run is a fresh process of the installed ``vboplan`` executable (as a user types it; ``python -m vboplan``
where there is none) and of the same interpreter with ``-c "import click"``, interleaved so that load on the machine
falls on all alike, bytecode caching on (as an installed package runs). Printed for each: the best and the median
wall time and CPU time (user + system, from the kernel), and the ratio of the medians to the click import measured
in the same run, beside the bound (1.2 x). Exits 1 when a command's median wall time misses it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import child_environment, verdict  # noqa: E402

BOUND = 1.2  # x import click


def vboplan_command() -> list[str]:
    """The installed ``vboplan`` executable beside this interpreter, or ``python -m vboplan``."""
    found = shutil.which("vboplan", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "vboplan"]


def measure(command: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one fresh process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=child_environment())
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed")
    return wall, usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    vboplan = vboplan_command()
    commands = {
        "python -c 'import click'": [sys.executable, "-c", "import click"],
        "vboplan --help": [*vboplan, "--help"],
        "vboplan --version": [*vboplan, "--version"],
    }
    walls: dict[str, list[float]] = {name: [] for name in commands}
    cpus: dict[str, list[float]] = {name: [] for name in commands}
    for command in commands.values():  # the file cache and the bytecode, once
        measure(command)
    for _ in range(args.runs):
        for name, command in commands.items():
            wall, cpu = measure(command)
            walls[name].append(wall)
            cpus[name].append(cpu)
    peer = "python -c 'import click'"
    peer_wall, peer_cpu = statistics.median(walls[peer]), statistics.median(cpus[peer])
    print(f"{args.runs} fresh processes each, interleaved; {' '.join(vboplan)}")
    missed = False
    for name in commands:
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        line = (f"{name:<26} wall best {min(walls[name]) * 1000:6.1f} ms median {wall * 1000:6.1f} ms   "
                f"CPU best {min(cpus[name]) * 1000:6.1f} ms median {cpu * 1000:6.1f} ms")
        if name != peer:
            ok = wall <= BOUND * peer_wall
            missed |= not ok
            line += (f"   ratio (medians) wall {wall / peer_wall:4.2f} CPU {cpu / peer_cpu:4.2f}   bound {BOUND:.1f} x "
                     f"import click = {BOUND * peer_wall * 1000:6.1f} ms   {verdict(ok)}")
        print(line)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
