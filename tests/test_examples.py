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


def test_the_fleet_example_prints_the_grouped_plan_of_the_readme(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "fleet"
    shutil.copytree(EXAMPLES / "fleet", project, ignore=shutil.ignore_patterns(".vboplan"))
    monkeypatch.setenv("VBO_FLEET_PASSWORD", "fleet-emulator-password")
    monkeypatch.setenv("COLUMNS", "100")
    result = CliRunner().invoke(main, ["-C", str(project), "--no-color", "plan", "--all"])
    assert result.exit_code == 0, result.output
    readme = (EXAMPLES.parent / "README.md").read_text(encoding="utf-8")
    assert result.stdout.strip() in readme  # the README shows what this prints, as it is
    assert "3 environments (msp-001, msp-002, msp-003): identical changes" in result.stdout
    assert "aligned: 1/5" in result.stdout
    eu = CliRunner().invoke(main, ["-C", str(project), "--no-color", "validate", "--label", "region=eu"])
    assert [line.split(":")[0] for line in eu.stdout.splitlines()] == ["msp-001", "msp-002", "msp-005"]
