"""Benchmark: how long ``vboplan --help`` and ``vboplan --version`` take, beside ``python -c "import click"``.

    .venv/bin/python benchmarks/startup.py [--runs 30]

Both run as fresh processes of the same interpreter, interleaved, so load on the machine falls on both alike; the
median of each is printed with the bound (1.5 x the click import).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "python -c 'import click'": [sys.executable, "-c", "import click"],
    "vboplan --help": [sys.executable, "-m", "vboplan", "--help"],
    "vboplan --version": [sys.executable, "-m", "vboplan", "--version"],
}


def cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wall(command: list[str], cpu: list[float] | None = None) -> float:
    started, cpu_before = time.perf_counter(), cpu_of_children()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if cpu is not None:
        cpu.append(cpu_of_children() - cpu_before)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    cpu: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for command in COMMANDS.values():  # warm the file cache once
        wall(command)
    for _ in range(args.runs):
        for name, command in COMMANDS.items():
            times[name].append(wall(command, cpu[name]))
    click_median = statistics.median(times["python -c 'import click'"])
    click_cpu = statistics.median(cpu["python -c 'import click'"])
    for name, samples in times.items():
        median = statistics.median(samples)
        line = f"{name:<28} median {median * 1000:7.1f} ms  min {min(samples) * 1000:7.1f} ms"
        if name.startswith("vboplan"):
            bound = 1.5 * click_median
            line += f"   bound {bound * 1000:7.1f} ms (1.5 x import click)  ratio {median / click_median:4.2f}  " \
                    f"{'within' if median <= bound else 'OVER'}"
        print(line)
        print(f"{'':<28} CPU    {statistics.median(cpu[name]) * 1000:7.1f} ms  "
              f"(ratio to import click {statistics.median(cpu[name]) / click_cpu:4.2f})")


if __name__ == "__main__":
    main()
