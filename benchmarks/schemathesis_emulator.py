"""Schemathesis over every operation the emulator serves, for API v6, v7 and v8, against Veeam's full OpenAPI
documents (../shared/vbo-api beside the checkout): the goal is zero server errors and zero answers outside the
documents (status code, content type, body schema).

    python benchmarks/schemathesis_emulator.py [--max-examples 50] [--versions v6,v7,v8]

Too slow for the test suite (minutes, even with a few examples per operation), so it lives here. Needs the
``schemathesis`` package (``pip install -e .[bench]``). Prints one line per version with the cases generated, the
server errors and the answers outside the documents, and exits 1 if there is any.

One deviation from the documents is deliberate and counted apart: a 401 has no body, as real servers answer it
(README: "401"), where the documents' ``default`` response promises a JSON RESTExceptionInfo; schemathesis reports
such an answer (its requests without the token) as a missing content type and a JSON decode error.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vboplan.emulator import Store, start  # noqa: E402
from vboplan.emulator.app import ROUTES  # noqa: E402

SPEC_DIR = REPO.parent / "shared" / "vbo-api"
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
# Logging out would revoke the token every other generated request carries.
SKIPPED = {("POST", "/token/logout")}
SEED = {
    "credentials": [{"username": "admin", "password": "admin"}],
    "organizations": [
        {"name": "contoso.onmicrosoft.com",
         "users": [{"displayName": f"User {i}", "name": f"user{i}@contoso.com"} for i in range(40)],
         "groups": [{"displayName": f"Group {i}", "name": f"group{i}@contoso.com"} for i in range(10)],
         "sites": [{"url": "https://contoso.sharepoint.com/sites/hr", "title": "HR"}],
         "teams": [{"displayName": "Sales", "mail": "sales@contoso.com"}]},
    ],
}


def covered_document(version: str) -> tuple[dict[str, Any], int]:
    """Veeam's document of ``version`` cut to the operations the emulator serves (and their schemas kept whole)."""
    document = json.loads((SPEC_DIR / f"vb365_rest_{version}.json").read_text(encoding="utf-8"))
    served = {(method, route.template.lower()) for route in ROUTES[version] for method in route.handlers}
    paths: dict[str, Any] = {}
    count = 0
    for path, item in document["paths"].items():
        template = re.sub(rf"^/{version}", "", path, flags=re.IGNORECASE).lower()
        kept = {m: op for m, op in item.items() if (m.upper(), template) in served
                and (m.upper(), template) not in {(a, b.lower()) for a, b in SKIPPED}}
        if kept:
            paths[path] = {**{k: v for k, v in item.items() if k == "parameters"}, **kept}
            count += len(kept)
    document["paths"] = paths
    document["servers"] = [{"url": "/"}]
    return document, count


def run(version: str, url: str, token: str, max_examples: int, workdir: Path) -> dict[str, Any]:
    document, operations = covered_document(version)
    spec = workdir / f"{version}.json"
    spec.write_text(json.dumps(document), encoding="utf-8")
    report = workdir / f"{version}.junit.xml"
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "run", str(spec), "--url", url, "-H", f"Authorization: Bearer {token}",
         "--checks", CHECKS, "--max-examples", str(max_examples), "--seed", "1", "--continue-on-failure",
         "--suppress-health-check", "all", "--report", "junit", "--report-junit-path", str(report)],
        capture_output=True, text=True, check=False,
        cwd=workdir)  # schemathesis keeps its example database in ./.schemathesis: the temporary folder, not the tree
    elapsed = time.perf_counter() - started
    output = result.stdout + result.stderr
    cases = re.search(r"(\d+) generated", output)
    server_errors, violations, deliberate = classify(output)
    return {"version": version, "operations": operations, "exit": result.returncode, "seconds": elapsed,
            "cases": int(cases.group(1)) if cases else None, "output": output, "server_errors": server_errors,
            "violations": violations, "deliberate": deliberate}


def classify(output: str) -> tuple[int, int, int]:
    """(server errors, other failures, 401-without-body findings) in schemathesis' failure report."""
    server_errors = violations = deliberate = 0
    for block in re.split(r"\n\d+\. Test Case ID: ", output)[1:]:
        block = block.split("\n____", 1)[0]
        codes = set(re.findall(r"^- (ST\d+) ", block, re.MULTILINE))
        status = re.search(r"^\[(\d{3})\]", block, re.MULTILINE)
        if status and status.group(1) == "401" and codes <= {"ST104", "ST109"}:
            deliberate += 1
        elif "ST101" in codes:
            server_errors += 1
        elif codes:
            violations += 1
    return server_errors, violations, deliberate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=50)
    parser.add_argument("--versions", default="v6,v7,v8")
    args = parser.parse_args(argv)
    failed = False
    with start(Store.from_data(SEED), token_lifetime=24 * 3600) as server, \
            tempfile.TemporaryDirectory() as tmp:
        for version in args.versions.split(","):
            token = httpx.post(f"{server.url}/{version}/token", data={
                "grant_type": "password", "username": "admin", "password": "admin"}).json()["access_token"]
            outcome = run(version, server.url, token, args.max_examples, Path(tmp))
            print(f"{version}: {outcome['operations']} operations, {outcome['cases']} generated cases in "
                  f"{outcome['seconds']:.0f} s; server errors {outcome['server_errors']} (bound 0), answers outside "
                  f"the documents {outcome['violations']} (bound 0); 401 without a body (deliberate, README) "
                  f"{outcome['deliberate']}")
            if outcome["server_errors"] or outcome["violations"]:
                failed = True
                print(outcome["output"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
