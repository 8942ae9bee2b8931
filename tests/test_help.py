"""Help that teaches: examples and exit codes in every --help, shell completion, and `vboplan render`."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from conftest import SMTP_SECRET, ProjectDir

from vboplan.cli.commands import main
from vboplan.cli.helptext import EXAMPLES


def commands(group: click.Group = main, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += commands(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


@pytest.mark.parametrize("path", commands(), ids=lambda p: " ".join(p) or "vboplan")
def test_every_help_has_examples_and_exit_codes(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"], prog_name="vboplan")
    assert result.exit_code == 0, result.output
    assert "Examples:\n    vboplan " in result.output, result.output
    assert "Exit codes:\n    0  success" in result.output and "1  an error or a refusal" in result.output
    assert ("2  changes present" in result.output) == (path == ("plan",))
    command: click.Command = main
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    undescribed = [p.name for p in command.params if isinstance(p, click.Option) and not p.help]
    assert not undescribed, f"options without a description: {undescribed}"


@pytest.mark.parametrize("example", sorted({e for lines in EXAMPLES.values() for e in lines}))
def test_every_example_is_a_valid_command_line(example: str) -> None:
    args = shlex.split(example.split("   #")[0].split(" >")[0])
    assert args[0] == "vboplan"
    command: click.Command = main
    ctx = main.make_context("vboplan", ["validate"])  # a parent context for sub-commands
    rest = args[1:]
    while isinstance(command, click.Group) and rest and rest[0] in command.commands:
        command, rest = command.commands[rest[0]], rest[1:]
    with ctx:
        command.make_context(command.name or "vboplan", rest, parent=ctx)  # raises on an unknown option


def test_render_prints_desired_settings_masked_without_a_server(project: ProjectDir) -> None:
    # The dev server is an address where nothing listens: render must not need it.
    config = (project.root / "vboplan.yaml").read_text(encoding="utf-8").replace("server: emulator:dev",
                                                                                 "server: https://127.0.0.1:1")
    project.write("vboplan.yaml", config)
    result = project.run("render", "--env", "dev")
    assert result.exit_code == 0, result.output
    assert "smtpServer: smtp.dev.local" in result.stdout
    assert "userPassword: (sensitive)" in result.stdout
    assert "notifyOnSuccess: false" in result.stdout
    assert SMTP_SECRET not in result.output
    as_json = project.run("render", "--env", "dev", "--format", "json")
    assert '"port": 587' in as_json.stdout and SMTP_SECRET not in as_json.stdout
    unknown = project.run("render", "--env", "qa")
    assert unknown.exit_code == 1 and "qa" in unknown.stderr and "Traceback" not in unknown.output


def _complete(shell: str, env: dict[str, str]) -> str:
    result = CliRunner().invoke(main, [], prog_name="vboplan", env={"_VBOPLAN_COMPLETE": f"{shell}_complete", **env})
    return result.output


def test_completion_protocols_offer_environment_names_commands_and_options(project: ProjectDir) -> None:
    root = str(project.root)
    bash = _complete("bash", {"COMP_WORDS": f"vboplan -C {root} plan --env ", "COMP_CWORD": "5"})
    assert "plain,dev" in bash and "plain,prod" in bash
    zsh = _complete("zsh", {"COMP_WORDS": f"vboplan -C {root} apply --env p", "COMP_CWORD": "5"})
    assert "prod" in zsh and "dev" not in zsh
    fish = _complete("fish", {"COMP_WORDS": "vboplan pl", "COMP_CWORD": "pl"})
    assert "plan" in fish
    powershell = _complete("powershell", {"COMP_WORDS": f"vboplan -C {root} state show --env d",
                                          "COMP_INCOMPLETE": "d"})
    assert powershell.splitlines() == ["plain\tdev\temulator:dev"]
    options = _complete("powershell", {"COMP_WORDS": "vboplan plan --de", "COMP_INCOMPLETE": "--de"})
    assert "plain\t--detailed-exitcode\t" in options
    files = _complete("bash", {"COMP_WORDS": "vboplan show pl", "COMP_CWORD": "2"})
    assert files.startswith("file,pl")  # plan files: the shell lists them


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish", "powershell"])
def test_completion_command_prints_a_script(shell: str) -> None:
    result = CliRunner().invoke(main, ["completion", shell])
    assert result.exit_code == 0, result.output
    assert "_VBOPLAN_COMPLETE" in result.stdout
    if shell == "powershell":
        assert "Register-ArgumentCompleter -Native -CommandName vboplan" in result.stdout


@pytest.mark.skipif(not shutil.which("bash") or sys.platform == "win32", reason="needs bash")
def test_bash_completes_environment_names_for_real(project: ProjectDir, tmp_path: Path) -> None:
    """The script as a bash user installs it, driving the installed vboplan (bash passes the command name)."""
    bin_dir = Path(sys.executable).parent
    if not (bin_dir / "vboplan").exists():
        pytest.skip("vboplan is not installed as a command in this environment")
    script = subprocess.run([str(bin_dir / "vboplan"), "completion", "bash"], capture_output=True, text=True,
                            check=True).stdout
    (tmp_path / "complete.bash").write_text(script, encoding="utf-8")
    root = shlex.quote(str(project.root))
    probe = (f"source {tmp_path / 'complete.bash'}\n"
             f"COMP_WORDS=(vboplan -C {root} plan --env ''); COMP_CWORD=5; _vboplan_completion vboplan\n"
             "printf 'env:%s\\n' \"${COMPREPLY[@]}\"\n"
             "COMP_WORDS=(vboplan ap); COMP_CWORD=1; _vboplan_completion vboplan\n"
             "printf 'cmd:%s\\n' \"${COMPREPLY[@]}\"\n")
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    run = subprocess.run(["bash", "--norc", "-c", probe], capture_output=True, text=True, env=env, timeout=60,
                         check=False)
    assert run.returncode == 0, run.stderr
    assert "env:dev" in run.stdout.splitlines() and "env:prod" in run.stdout.splitlines(), run.stdout
    assert "cmd:apply" in run.stdout.splitlines() and "cmd:approve" in run.stdout.splitlines(), run.stdout
