"""``vboplan --help`` and ``--version`` start as fast as click: nothing that talks to a server, renders templates or
prints plans is imported before a command needs it."""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

HEAVY = ("httpx", "httpcore", "vboplan.emulator", "deepdiff", "jinja2", "yaml", "tabulate", "cryptography", "sshsig",
         "vboplan.core", "vboplan.planning.plan", "vboplan.api", "vboplan.project.render", "vboplan.kinds.registry",
         "importlib.metadata")

# vboplan ends its process itself once a command is done (entry.exit_now), after the exit handlers: the modules
# loaded are printed by one.
PROBE = """
import atexit, json, runpy, sys
sys.argv = ["vboplan", *json.loads(sys.argv[1])]
atexit.register(lambda: print("\\nMODULES " + json.dumps(sorted(sys.modules)), flush=True))
runpy.run_module("vboplan", run_name="__main__")
"""


def _modules_after(*args: str) -> tuple[str, set[str]]:
    result = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args)], capture_output=True, text=True,
                            timeout=60, check=True)
    output, _, modules = result.stdout.rpartition("\nMODULES ")
    return output, set(json.loads(modules))


@pytest.mark.parametrize("args", [("--help",), ("--version",), ("plan", "--help"), ("state", "--help")])
def test_start_up_imports_only_click(args: tuple[str, ...]) -> None:
    output, modules = _modules_after(*args)
    assert "Usage: vboplan" in output or "version" in output
    loaded = sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))
    assert loaded == ["httpx._main"]  # the empty stand-in for httpx's own CLI (see entry.without_httpx_cli), no httpx


@pytest.mark.parametrize("args", [("--help",), ("--version",)])
def test_the_group_alone_builds_no_command(args: tuple[str, ...]) -> None:
    """``--help`` and ``--version`` build the group only: no command's options, no completion, no shutil."""
    _, modules = _modules_after(*args)
    assert not {"vboplan.cli.commands", "click.shell_completion", "shutil"} & modules


def test_every_command_is_listed_with_the_first_paragraph_of_its_help() -> None:
    from vboplan.cli.main import COMMANDS, main

    for name in COMMANDS:
        assert main.get_command(click.Context(main), name) is not None, name
    assert sorted(main.commands) == sorted(COMMANDS), "list every command in vboplan.cli.main.COMMANDS"
    for name, command in main.commands.items():
        assert " ".join(COMMANDS[name][2].split()) == " ".join((command.help or "").split("\n\n")[0].split()), name


def test_help_lists_every_command_without_loading_it() -> None:
    output, modules = _modules_after("--help")
    for command in ("apply", "approve", "emulator", "plan", "show", "state", "validate"):
        assert f"\n  {command} " in output
    assert "Run an emulated Veeam Backup for Microsoft 365 REST server" in output
    assert "vboplan.emulator.cli" not in modules


def test_lazy_command_help_matches_the_command() -> None:
    from vboplan.cli.commands import _Group, main
    from vboplan.emulator.cli import emulator

    assert _Group.lazy["emulator"][2] == emulator.help
    result = CliRunner().invoke(main, ["emulator", "--help"])
    assert result.exit_code == 0
    assert "serve" in result.output and "generate" in result.output


def test_version_is_the_package_version() -> None:
    from importlib.metadata import version

    output, _ = _modules_after("--version")
    assert output.strip() == f"vboplan, version {version('vboplan')}"


def test_the_cli_keeps_httpx_from_loading_its_own_command_line_client() -> None:
    probe = ("import sys; from vboplan.entry import without_httpx_cli; without_httpx_cli(); import httpx; "
             "print(sorted(m for m in sys.modules if m.split('.')[0] in ('rich', 'pygments'))); httpx.Client().close()")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"
