"""Applies stopped by SIGKILL, SIGTERM or Ctrl-C at random moments leave a true record (see kill_harness.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from conftest import API_SECRET, SEED, ProjectDir
from kill_harness import EARLY, SIGNALS, WRITE, emulator_process, run_kills

from vboplan.cli.commands import main

# Six runs: each signal once early in the apply (before its write: nothing sent) and once around the write (the PUT
# in flight, answered, or recorded). benchmarks/kill_apply.py interrupts 150 and more at moments drawn from a clean
# apply's whole length, each a fresh process.
SCHEDULE = [(signum, moment) for signum in SIGNALS for moment in (EARLY, WRITE)]
RUNS = len(SCHEDULE)
SIGNAL_SEED = 20261756


def test_interrupted_applies_leave_a_true_record(project: ProjectDir, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "emulator" / "dev.yaml"
    data.parent.mkdir()
    data.write_text(yaml.safe_dump(SEED), encoding="utf-8")
    with emulator_process(data, latency_ms=40) as url:
        config = (project.root / "vboplan.yaml").read_text().replace("emulator:dev", url, 1)
        project.write("vboplan.yaml", config)

        def plan(environ: dict[str, str]) -> tuple[int, dict[str, Any], str]:
            monkeypatch.setenv("SMTP_PASSWORD", environ["SMTP_PASSWORD"])
            result = CliRunner().invoke(main, ["-C", str(project.root), "plan", "--env", "dev", "--format", "json"])
            return result.exit_code, json.loads(result.stdout)["plans"][0] if result.exit_code == 0 else {}, result.stderr

        tally = run_kills(project.root, url, API_SECRET, RUNS, seed=SIGNAL_SEED, plan=plan, fork=True,
                          schedule=SCHEDULE)
    print(tally)
    assert tally.runs == RUNS
    # Most runs must really be interrupted, by each signal, and both outcomes must occur, or the test proves little
    # (a kill around the write may come after the apply has ended).
    assert tally.killed >= RUNS // 2, tally
    assert all(count >= 1 for count in tally.interrupted.values()), tally
    assert tally.landed and tally.not_landed, tally
