"""vboplan without the POSIX-only calls Windows lacks: plan, approve and apply run in a process where
``os.fchmod``, ``os.kill``, ``os.O_DIRECTORY`` and the ``fcntl`` module do not exist, as on Windows (one such
process runs the whole sequence: without_posix.py)."""

from __future__ import annotations

import json
import os

from conftest import API_SECRET, SMTP_SECRET, ProjectDir
from without_posix import WithoutPosix


def test_the_calls_are_really_gone() -> None:
    with WithoutPosix(dict(os.environ)) as vboplan:
        assert vboplan.left == {"left": [], "fcntl": False}
        assert vboplan.run("--version").returncode == 0


def test_plan_approve_apply_without_posix_calls(project: ProjectDir) -> None:
    environ = {**os.environ, "VBO_TEST_PASSWORD": API_SECRET, "SMTP_PASSWORD": SMTP_SECRET, "VBOPLAN_USER": "ann"}
    plan_file = project.root / "plans" / "prod.json"
    with WithoutPosix(environ) as vboplan:
        def run(*args: str):  # type: ignore[no-untyped-def]
            return vboplan.run("-C", str(project.root), "--no-color", *args)

        planned = run("plan", "--env", "prod", "--out", str(plan_file))
        assert planned.returncode == 0, planned.stderr
        for who in ("alice", "bob"):
            approved = run("approve", str(plan_file), "--key", str(project.keys[who]), "--ticket", "CHG-7")
            assert approved.returncode == 0, approved.stderr
        applied = run("apply", str(plan_file))
        assert applied.returncode == 0, applied.stderr
        assert "Traceback" not in applied.stderr
        snapshot = json.loads((project.root / ".vboplan" / "state" / "prod.json").read_text(encoding="utf-8"))
        assert snapshot["environment"] == "prod"
        audit = project.api("prod").get("/v7/AuditEmailSettings").json()
        assert audit["smtpServer"] == "smtp.office365.com" and audit["port"] == 587
        replanned = run("plan", "--env", "prod", "--detailed-exitcode")
        assert replanned.returncode == 0, replanned.stdout + replanned.stderr
