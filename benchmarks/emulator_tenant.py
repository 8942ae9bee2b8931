"""Benchmark: the emulator's synthetic tenants, the figures the test suite used to assert as wall time.

    .venv/bin/python benchmarks/emulator_tenant.py

Prints each figure beside the bound it was once tested against (on an idle 2-core machine).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from emulator.helpers import ADMIN, Api, wsgi_client  # noqa: E402

from vboplan.emulator import Emulator, Store  # noqa: E402
from vboplan.emulator.synth import generate_tenant  # noqa: E402


def row(what: str, seconds: float, bound: float) -> None:
    verdict = "within" if seconds <= bound else "OVER"
    print(f"{what:<58} {seconds:7.3f} s   bound {bound:5.2f} s   {verdict}")


def main() -> None:
    started = time.perf_counter()
    data = generate_tenant(3, 100_000, 3_000, seed=5)
    row("generate_tenant(3 orgs, 100,000 users, 3,000 groups)", time.perf_counter() - started, 3.0)
    started = time.perf_counter()
    Store.from_data({"credentials": [ADMIN], **data})
    row("Store.from_data of that tenant", time.perf_counter() - started, 5.0)

    data = generate_tenant(1, 100_000, 100)
    data["credentials"] = [ADMIN]
    with wsgi_client(Emulator(Store.from_data(data))) as client:
        api = Api(client, "v8").login()
        org_id = api.org_id("org1.onmicrosoft.com")
        started = time.perf_counter()
        for i in range(1, 201, 10):
            api.user(org_id, f"user{i:05d}@org1.onmicrosoft.com")
        row("20 exact user lookups on a 100,000-user organization", time.perf_counter() - started, 2.0)


if __name__ == "__main__":
    main()
