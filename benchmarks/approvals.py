"""Benchmark: verifying signed approvals, and many people approving one plan file at once.

    .venv/bin/python benchmarks/approvals.py [--signatures 50] [--approvers 20]

Prints the time to verify one approval per key type (Ed25519 and RSA in-process with sshsig, ECDSA through
``ssh-keygen -Y verify``), beside the peer figure of running ``ssh-keygen -Y verify`` for every signature; then the
wall time of ``--approvers`` concurrent ``vboplan approve`` processes on one plan file and how many approvals it
kept (all of them, or the lock is broken).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vboplan.trust import signing  # noqa: E402


def keygen(folder: Path, name: str, kind: str) -> Path:
    path = folder / name
    extra = ["-b", "3072"] if kind == "rsa" else []
    subprocess.run(["ssh-keygen", "-q", "-t", kind, *extra, "-N", "", "-f", str(path)], check=True)
    return path


def verify_timings(folder: Path, count: int) -> None:
    print(f"verify one approval ({count} signatures per key type; mean per signature)")
    for kind in ("ed25519", "rsa", "ecdsa"):
        key = keygen(folder, f"id_{kind}", kind)
        statements = [signing.canonical({"plan": f"{i:064x}", "changes": ["c1"], "n": i}) for i in range(count)]
        signatures = [signing.sign(data, key, signing.APPROVE_NAMESPACE) for data in statements]
        started = time.perf_counter()
        for data, armored in zip(statements, signatures, strict=True):
            signing.verify(data, armored, signing.APPROVE_NAMESPACE)
        ours = (time.perf_counter() - started) / count
        public = Path(f"{key}.pub").read_text().split()
        signers = folder / f"signers_{kind}"
        signers.write_text(f'p namespaces="vboplan-approve" {public[0]} {public[1]}\n')
        started = time.perf_counter()
        for data, armored in zip(statements, signatures, strict=True):
            sig = folder / "one.sig"
            sig.write_text(armored)
            subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(signers), "-I", "p", "-n", "vboplan-approve",
                            "-s", str(sig)], input=data, check=True, capture_output=True)
        peer = (time.perf_counter() - started) / count
        how = "ssh-keygen fallback" if kind == "ecdsa" else "in-process (sshsig)"
        print(f"  {kind:<8} vboplan {ours * 1000:8.2f} ms  [{how}]   peer: ssh-keygen -Y verify {peer * 1000:8.2f} ms")


def concurrent_approvals(folder: Path, approvers: int) -> None:
    project = folder / "project"
    (project / "templates").mkdir(parents=True)
    (project / "approvers").mkdir()
    (project / "templates" / "jobs.yaml.j2").write_text("job_email_settings:\n  notifyOnSuccess: true\n")
    (project / "emulator").mkdir()
    (project / "emulator" / "prod.yaml").write_text(
        "credentials: [{username: admin, password: bench-password}]\n"
        "job_email_settings: {notifyOnSuccess: false}\n")
    keys = [keygen(folder, f"approver{i:02d}", "ed25519") for i in range(approvers)]
    author = keygen(folder, "author", "ed25519")  # signs the plan as its author (namespace vboplan-plan)
    (project / "approvers" / "prod.allowed_signers").write_text("".join(
        f"approver{i:02d} {' '.join(Path(f'{k}.pub').read_text().split()[:2])}\n" for i, k in enumerate(keys))
        + f"author {' '.join(Path(f'{author}.pub').read_text().split()[:2])}\n")
    (project / "vboplan.yaml").write_text(
        "environments:\n  prod:\n    server: emulator:prod\n    username: admin\n    password_env: BENCH_PASSWORD\n"
        f"    approvals: {{required: {approvers}, allowed_signers: approvers/prod.allowed_signers}}\n")
    env = {**os.environ, "BENCH_PASSWORD": "bench-password", "VBOPLAN_USER": "author"}
    plan = folder / "plan.json"
    base = [sys.executable, "-m", "vboplan", "-C", str(project)]
    subprocess.run([*base, "plan", "--env", "prod", "--out", str(plan), "--sign-key", str(author)], check=True, env=env,
                   capture_output=True)
    started = time.perf_counter()
    runs = [subprocess.Popen([*base, "approve", str(plan), "--key", str(k)], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE) for k in keys]
    failures = sum(1 for run in runs if run.wait() != 0)
    wall = time.perf_counter() - started
    kept = len(json.loads(plan.read_text())["approvals"])
    started = time.perf_counter()
    applied = subprocess.run([*base, "apply", str(plan)], env=env, capture_output=True, text=True)
    apply_wall = time.perf_counter() - started
    single = time.perf_counter()
    subprocess.run([*base, "--help"], env=env, capture_output=True, check=True)
    startup = time.perf_counter() - single
    print(f"{approvers} concurrent 'vboplan approve' processes on one plan file: {wall:.2f} s wall, "
          f"{kept} approvals kept of {approvers} (failures: {failures}); peer: one 'vboplan --help' start-up "
          f"{startup:.2f} s x {approvers} = {startup * approvers:.2f} s if run one after another")
    print(f"apply verifying {kept} approvals ({approvers} required): exit {applied.returncode}, {apply_wall:.2f} s wall")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--signatures", type=int, default=50)
    parser.add_argument("--approvers", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vboplan-bench-") as folder:
        verify_timings(Path(folder), args.signatures)
        concurrent_approvals(Path(folder), args.approvers)


if __name__ == "__main__":
    main()
