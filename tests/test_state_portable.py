"""The local state backend needs no POSIX-only call: plan, apply, state show and unlock run with os.fchmod, os.kill,
fcntl and os.O_DIRECTORY taken away, as on Windows (one such process runs the whole sequence: without_posix.py)."""

from __future__ import annotations

import json
import os

from conftest import ProjectDir
from without_posix import WithoutPosix


def test_plan_apply_show_unlock_without_posix_calls(project: ProjectDir) -> None:
    with WithoutPosix(dict(os.environ)) as vboplan:
        def run(*args: str):  # type: ignore[no-untyped-def]
            return vboplan.run("-C", str(project.root), "--no-color", *args)

        probe = run("--version")
        assert probe.returncode == 0, probe.stderr
        applied = run("apply", "--env", "dev", "--auto-approve")
        assert applied.returncode == 0, applied.stderr
        assert "Apply complete for dev" in applied.stdout
        snapshot = json.loads((project.root / ".vboplan/state/dev.json").read_text())
        assert snapshot["serial"] == 1 and not (project.root / ".vboplan/state/dev.journal.json").exists()
        planned = run("plan", "--env", "dev", "--detailed-exitcode")
        assert planned.returncode == 0, planned.stdout + planned.stderr
        shown = run("state", "show", "--env", "dev")
        assert shown.returncode == 0 and "serial 1" in shown.stdout
        project.write("environments/dev.yaml", "domain: dev.contoso.com\nsmtp:\n  host: smtp2.dev.local\n")
        again = run("apply", "--env", "dev", "--auto-approve")
        assert again.returncode == 0, again.stderr
        assert json.loads((project.root / ".vboplan/state/dev.json.bak").read_text())["serial"] == 1
        refused = run("state", "unlock", "--env", "dev", "some-id")
        assert refused.returncode == 1 and "it is not locked" in refused.stderr and "Traceback" not in refused.stderr
