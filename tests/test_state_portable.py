"""The local state backend needs no POSIX-only call: plan, apply, state show and unlock run with os.fchmod, os.kill,
fcntl and os.O_DIRECTORY taken away, as on Windows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import ProjectDir

REPO = Path(__file__).resolve().parents[1]

# Remove the POSIX-only calls before vboplan (and filelock, which then uses no fcntl) is imported.
BOOT = """
import os, sys, warnings
for name in ("fchmod", "kill", "killpg", "O_DIRECTORY"):
    if hasattr(os, name):
        delattr(os, name)
sys.modules["fcntl"] = None
warnings.filterwarnings("ignore", message="only soft file lock is available")
from vboplan.cli.commands import main
main(sys.argv[1:], prog_name="vboplan")
"""


def run(project: ProjectDir, *args: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", BOOT, "-C", str(project.root), "--no-color", *args], env=environ,
                          capture_output=True, text=True, timeout=300, check=False)


def test_plan_apply_show_unlock_without_posix_calls(project: ProjectDir) -> None:
    probe = run(project, "--version")
    assert probe.returncode == 0, probe.stderr
    applied = run(project, "apply", "--env", "dev", "--auto-approve")
    assert applied.returncode == 0, applied.stderr
    assert "Apply complete for dev" in applied.stdout
    snapshot = json.loads((project.root / ".vboplan/state/dev.json").read_text())
    assert snapshot["serial"] == 1 and not (project.root / ".vboplan/state/dev.journal.json").exists()
    planned = run(project, "plan", "--env", "dev", "--detailed-exitcode")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    shown = run(project, "state", "show", "--env", "dev")
    assert shown.returncode == 0 and "serial 1" in shown.stdout
    project.write("environments/dev.yaml", "domain: dev.contoso.com\nsmtp:\n  host: smtp2.dev.local\n")
    again = run(project, "apply", "--env", "dev", "--auto-approve")
    assert again.returncode == 0, again.stderr
    assert json.loads((project.root / ".vboplan/state/dev.json.bak").read_text())["serial"] == 1
    refused = run(project, "state", "unlock", "--env", "dev", "some-id")
    assert refused.returncode == 1 and "it is not locked" in refused.stderr and "Traceback" not in refused.stderr
