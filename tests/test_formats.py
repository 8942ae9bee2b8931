"""Every --format choice works on every command that offers it, each in its own shape."""

from __future__ import annotations

import json
from pathlib import Path

import click
from conftest import SMTP_SECRET, ProjectDir

from vboplan.cli.commands import main


def _format_commands(group: click.Group = main, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], list[str]]:
    found: dict[tuple[str, ...], list[str]] = {}
    context = click.Context(group)
    # Commands of their own module are loaded only when asked for (get_command): list those too.
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        if isinstance(command, click.Group):
            found.update(_format_commands(command, (*prefix, name)))
            continue
        for param in command.params:
            if param.name == "fmt" and isinstance(param.type, click.Choice):
                found[(*prefix, name)] = list(param.type.choices)
    return found


def test_every_format_of_every_command(project: ProjectDir, tmp_path: Path) -> None:
    planfile = tmp_path / "dev.json"
    config = project.root / "vboplan.yaml"
    config.write_text('policies: ["builtin:recommended"]\n' + config.read_text())
    assert project.run("plan", "--env", "dev", "--out", str(planfile)).exit_code == 0
    assert project.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
    args = {("plan",): ["--env", "prod"], ("show",): [str(planfile)], ("state", "show"): ["--env", "dev"],
            ("render",): ["--env", "dev"], ("report",): [str(planfile)], ("check",): ["--env", "dev", "--offline"]}
    commands = _format_commands()
    assert set(commands) == set(args), "a command with --format is not covered here"
    for command, choices in commands.items():
        for fmt in choices:
            result = project.run(*command, *args[command], "--format", fmt)
            assert result.exit_code == 0, (command, fmt, result.output)
            out = result.stdout
            assert SMTP_SECRET not in out
            where = (command, fmt)
            if fmt == "json":
                json.loads(out)
            elif fmt == "yaml":
                assert out.startswith("# desired settings"), where
            elif fmt == "html":
                assert out.startswith("<!DOCTYPE html>") and out.rstrip().endswith("</html>"), where
            elif fmt == "markdown":
                assert "\n|---|" in out and "`" in out and "  |" not in out, where
            else:
                assert out.startswith("Environment "), where
            if command == ("state", "show") and fmt != "json":
                assert "audit_email_settings.smtpServer" in out and "smtp.dev.local" in out, where
