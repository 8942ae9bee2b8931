"""The README's first command: the shipped examples plan cleanly for dev (API v8) and prod (API v7)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from vboplan.cli.commands import main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_examples_plan_dev_and_prod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "examples"
    shutil.copytree(EXAMPLES, project, ignore=shutil.ignore_patterns(".vboplan"))
    monkeypatch.setenv("VBO_DEV_PASSWORD", "dev-emulator-password")
    monkeypatch.setenv("VBO_PROD_PASSWORD", "prod-emulator-password")
    monkeypatch.setenv("SMTP_PASSWORD", "example-smtp-password")
    result = CliRunner().invoke(main, ["-C", str(project), "--no-color", "plan", "--env", "dev", "--env", "prod"])
    assert result.exit_code == 0, result.output
    dev, prod = result.stdout.split("Environment prod")
    assert "history_settings.keeponlyLast" in prod and "internet_proxy_settings.hostName" in prod
    assert 'organization_backup_options["contoso.onmicrosoft.com"].sharePointBackupMode' in dev
    assert "organization_backup_options" not in prod  # API v7 lacks it: the template renders it for v8 only
    assert "example-smtp-password" not in result.output
