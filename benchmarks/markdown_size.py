"""Benchmark: the Markdown of large plans against GitHub's comment limit.

    .venv/bin/python benchmarks/markdown_size.py [--changes 320 2000 10000]

For each size, builds a plan of that many audit-item additions (display names with Markdown and HTML in them) plus
nine settings updates, renders it with ``--format markdown``'s renderer, and prints the characters beside the
65,000 bound, how many rows were kept, and the time the binary search for the largest fitting text took.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vboplan.output.markdown import LIMIT, render_markdown  # noqa: E402
from vboplan.planning.changes import Address, make  # noqa: E402
from vboplan.planning.plan import Plan, change_ids  # noqa: E402


def plan_of(size: int) -> Plan:
    org = "contoso.onmicrosoft.com"
    changes = [make("update", "audit_email_settings", Address("audit_email_settings").field(f"field{i}"), None,
                    f"value *{i}* <b>x</b>", False, {"field": f"field{i}"}) for i in range(9)]
    changes += [make("create", "audit_items", Address("audit_items").entry(org).field("user").entry(f"u{i}@contoso.com"),
                     None, f"User {i} *bold* <b>x</b> <u{i}@contoso.com>", False, {"org": org})
                for i in range(size)]
    ids = change_ids([c.address for c in changes])
    from dataclasses import replace

    changes = [replace(c, id=ids[str(c.address)]) for c in changes]
    return Plan(environment="prod", server="https://vbo.corp.local:4443", api_version="v8", changes=changes,
                live={}, scope={}, checksum="0" * 64)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--changes", type=int, nargs="+", default=[320, 2000, 10000])
    args = parser.parse_args()
    print(f"{'changes':>8} {'characters':>11} {'bound':>7} {'rows shown':>11} {'render s':>9}")
    for size in args.changes:
        plan = plan_of(size)
        started = time.perf_counter()
        text = render_markdown([plan])
        took = time.perf_counter() - started
        rows = sum(1 for line in text.splitlines() if line.startswith("| c"))
        print(f"{len(plan.changes):>8} {len(text):>11} {LIMIT:>7} {rows:>11} {took:>9.2f}")


if __name__ == "__main__":
    main()
