"""vboplan without the POSIX-only calls Windows lacks: plan, approve and apply run in processes where
``os.fchmod``, ``os.kill``, ``os.O_DIRECTORY`` and the ``fcntl`` module do not exist, as on Windows."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import API_SECRET, SMTP_SECRET, ProjectDir

# Runs before vboplan (or anything it imports) is loaded, so every later lookup finds the calls missing.
WITHOUT_POSIX = """\
import os, sys
for name in ("fchmod", "kill", "O_DIRECTORY"):
    if hasattr(os, name):
        delattr(os, name)
sys.modules["fcntl"] = None  # "import fcntl" now raises ImportError, as on Windows
from vboplan.entry import main
sys.argv[0] = "vboplan"
main()
"""


def _vboplan(project: ProjectDir, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VBO_TEST_PASSWORD": API_SECRET, "SMTP_PASSWORD": SMTP_SECRET, "VBOPLAN_USER": "ann"}
    return subprocess.run([sys.executable, "-c", WITHOUT_POSIX, "-C", str(project.root), "--no-color", *args],
                          capture_output=True, text=True, env=env, timeout=120)


def test_the_calls_are_really_gone(project: ProjectDir) -> None:
    probe = WITHOUT_POSIX.split("from vboplan")[0] + (
        "import importlib\n"
        "try:\n    importlib.import_module('fcntl'); print('fcntl')\nexcept ImportError: pass\n"
        "print([n for n in ('fchmod', 'kill', 'O_DIRECTORY') if hasattr(os, n)])\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60).stdout
    assert out.strip() == "[]"


def test_plan_approve_apply_without_posix_calls(project: ProjectDir) -> None:
    plan_file = project.root / "plans" / "prod.json"
    planned = _vboplan(project, "plan", "--env", "prod", "--out", str(plan_file))
    assert planned.returncode == 0, planned.stderr
    for who in ("alice", "bob"):
        approved = _vboplan(project, "approve", str(plan_file), "--key", str(project.keys[who]), "--ticket", "CHG-7")
        assert approved.returncode == 0, approved.stderr
    applied = _vboplan(project, "apply", str(plan_file))
    assert applied.returncode == 0, applied.stderr
    assert "Traceback" not in applied.stderr
    snapshot = json.loads((project.root / ".vboplan" / "state" / "prod.json").read_text(encoding="utf-8"))
    assert snapshot["environment"] == "prod"
    audit = project.api("prod").get("/v7/AuditEmailSettings").json()
    assert audit["smtpServer"] == "smtp.office365.com" and audit["port"] == 587
    replanned = _vboplan(project, "plan", "--env", "prod", "--detailed-exitcode")
    assert replanned.returncode == 0, replanned.stdout + replanned.stderr
