"""Progress on stderr against a slow server: plain lines in CI, a live line on a terminal, nothing with --quiet."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import API_SECRET, SEED, ProjectDir, assert_no_secret

SLOW_CONFIG = """\
templates: ["templates/*.yaml.j2"]
environments:
  dev:
    server: {url}
    api_version: v8
    username: admin
    password_env: VBO_TEST_PASSWORD
    var_files: [environments/common.yaml, environments/dev.yaml]
"""

ITEMS = """\
audit_items:
  contoso.onmicrosoft.com:
    users: [ceo@contoso.com, cfo@contoso.com, jane@contoso.com]
"""


@pytest.fixture
def slow_project(project: ProjectDir) -> Iterator[ProjectDir]:
    """The test project, its dev environment on an emulator that takes 300 ms per request."""
    from vboplan.emulator import start

    with start(SEED, latency_ms=300) as running:
        project.write("vboplan.yaml", SLOW_CONFIG.format(url=running.url))
        project.write("templates/items.yaml.j2", ITEMS)
        yield project


def test_ci_log_gets_plain_progress_lines_on_stderr_only(slow_project: ProjectDir,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VBOPLAN_PROGRESS_EVERY", "0.05")  # CI's ten seconds, shortened for the test
    planned = slow_project.run("plan", "--env", "dev")
    assert planned.exit_code == 0, planned.output
    lines = [line for line in planned.stderr.splitlines() if line.startswith("Still planning... ")]
    assert lines, planned.stderr
    assert any("dev: reading audit_email_settings" in line for line in lines), lines
    assert any("dev: reading audit_items" in line for line in lines), lines
    assert all("elapsed]" in line and "\r" not in line and "\x1b" not in line for line in lines)
    assert "Still" not in planned.stdout

    applied = slow_project.run("apply", "--env", "dev", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    progress = [line for line in applied.stderr.splitlines() if line.startswith("Still applying... ")]
    assert any("dev: writing change" in line and " of 12" in line for line in progress), progress
    assert any("dev: reading back to verify" in line for line in progress), progress
    assert "Still" not in applied.stdout


def test_quiet_means_no_progress(slow_project: ProjectDir, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VBOPLAN_PROGRESS_EVERY", "0.05")
    planned = slow_project.run("-q", "plan", "--env", "dev")
    assert planned.exit_code == 0, planned.output
    assert "Still" not in planned.output
    assert "audit_email_settings.smtpServer" in planned.stdout


@pytest.mark.skipif(sys.platform == "win32", reason="a pseudo-terminal is POSIX-only")
def test_terminal_gets_one_live_line_that_is_cleared(project: ProjectDir, tmp_path: Path) -> None:
    import pty

    from vboplan.emulator import start

    with start(SEED, latency_ms=700) as running:
        project.write("vboplan.yaml", SLOW_CONFIG.format(url=running.url))
        main_side, terminal = pty.openpty()
        env = {k: v for k, v in os.environ.items() if k not in ("CI", "VBOPLAN_PROGRESS_EVERY")}
        env["TERM"] = "xterm"
        with subprocess.Popen([sys.executable, "-m", "vboplan", "-C", str(project.root), "plan", "--env", "dev"],
                              stdout=subprocess.PIPE, stderr=terminal, stdin=subprocess.DEVNULL, env=env) as proc:
            os.close(terminal)
            stdout = proc.stdout.read().decode() if proc.stdout else ""
            seen = b""
            while True:
                try:
                    chunk = os.read(main_side, 4096)
                except OSError:  # the terminal closes with the process
                    break
                if not chunk:
                    break
                seen += chunk
            proc.wait(timeout=60)
        os.close(main_side)
    screen = seen.decode(errors="replace")
    assert proc.returncode == 0, screen
    assert "\r\x1b[2KStill planning... dev: " in screen, screen
    assert "elapsed]" in screen
    # The line is redrawn in place (no new lines) and wiped at the end, leaving the terminal clean.
    live = [part for part in screen.split("\n") if "Still planning" in part]
    assert len(live) == 1, live
    assert screen.rstrip("\n").endswith("\r\x1b[2K"), repr(screen[-80:])
    assert "Still" not in stdout and "audit_email_settings.smtpServer" in stdout
    assert_no_secret(screen + stdout)
    assert API_SECRET not in screen
