"""An apply killed with SIGKILL at any moment leaves the old snapshot or the new one, never a broken file."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import SEED, ProjectDir


def _valid_snapshot(path: Path) -> dict | None:
    if not path.exists():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))  # a torn write would fail here
    assert data["format_version"] == 1 and data["environment"] == "dev"
    assert isinstance(data["serial"], int) and data["resources"]
    return data


def test_sigkill_never_leaves_a_torn_snapshot(project: ProjectDir) -> None:
    from vboplan.emulator import start

    rng = random.Random(20261125)
    with start(SEED, latency_ms=25) as server:
        config = (project.root / "vboplan.yaml").read_text().replace("emulator:dev", server.url, 1)
        project.write("vboplan.yaml", config)
        state = project.root / ".vboplan" / "state" / "dev.json"
        backup = state.with_name("dev.json.bak")
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        command = [sys.executable, "-m", "vboplan", "-C", str(project.root), "apply", "--env", "dev", "--auto-approve"]
        began = time.monotonic()
        subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60,
                       check=True)
        duration = time.monotonic() - began  # kill within a run's length: start-up, requests, the write
        serials = []
        killed = 0
        for run in range(14):
            port = 2000 + run
            project.write("environments/dev.yaml", f"domain: dev.contoso.com\nsmtp:\n  host: smtp.dev.local\n"
                                                   f"  port: {port}\n")
            process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.1, 0.98) * duration)
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                killed += 1
            process.wait(timeout=30)
            snapshot = _valid_snapshot(state)
            _valid_snapshot(backup)
            if snapshot is not None:
                serials.append(snapshot["serial"])
        assert killed >= 7, "the loop should kill most applies mid-way"
        assert serials == sorted(serials)
        # A clean run afterwards takes over the lock the killed runs left and converges.
        final = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
        assert final.returncode == 0, final.stderr
        snapshot = _valid_snapshot(state)
        assert snapshot is not None
        assert snapshot["resources"]["audit_email_settings"]["values"]["port"] == 2013
        assert project.run("plan", "--env", "dev", "--detailed-exitcode").exit_code == 0
