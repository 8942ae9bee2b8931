#!/usr/bin/env python3
"""The malformed-request run of tests/emulator/test_bad_requests.py in full: every route of every API version by
every method (and PATCH), its ids real, unknown and junk, each with every malformed body and query (the test sends
every body with real ids and four of them, rotating, with the others). Every answer must be a documented error,
never a 5xx, and none may be slow.

    .venv/bin/python benchmarks/emulator_bad_requests.py [--versions v5 v6 v7 v8] [--slowest-bound-ms 1000]

Prints, per version, the requests sent, the 5xx answers (bound: 0) and the slowest answer beside its bound, against
the in-process emulator with the tests' OpenAPI-checking client; exits 1 on a 5xx or a slow answer.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.emulator.helpers import VERSIONS, FakeClock, seed_data  # noqa: E402
from tests.emulator.test_bad_requests import send_malformed  # noqa: E402
from vboplan.emulator import Emulator, Store  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--versions", nargs="+", default=list(VERSIONS))
    parser.add_argument("--slowest-bound-ms", type=float, default=1000.0)
    args = parser.parse_args()
    failed = False
    for version in args.versions:
        emulator = Emulator(Store.from_data(seed_data()), clock=FakeClock(), seed=1, versions=VERSIONS)
        sent = errors = 0
        slowest = 0.0
        began = time.perf_counter()
        requests = send_malformed(emulator, version, every=True)
        while True:
            start = time.perf_counter()
            try:
                next(requests)
            except StopIteration:
                break
            except AssertionError as exc:  # a 5xx: counted; this version stops there
                errors += 1
                print(f"  {version}: {exc}")
                requests = iter(())
            slowest = max(slowest, time.perf_counter() - start)
            sent += 1
        took = time.perf_counter() - began
        bad = errors > 0 or slowest * 1000 > args.slowest_bound_ms
        failed |= bad
        print(f"{version}: {sent} malformed requests in {took:.1f} s; 5xx answers {errors} (bound 0); slowest answer "
              f"{slowest * 1000:.0f} ms (bound {args.slowest_bound_ms:.0f} ms){'  MISSED' if bad else ''}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
