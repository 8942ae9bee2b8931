"""Shell completion: click's bash, zsh and fish scripts, a PowerShell one, and the completers for environment names.

``vboplan completion SHELL`` prints the script; it calls vboplan back with ``_VBOPLAN_COMPLETE`` set, and click
answers with the commands, options, environment names (read from the project's vboplan.yaml) or files that fit.
"""

from __future__ import annotations

import os
from pathlib import Path

import click
from click.shell_completion import CompletionItem, ShellComplete, add_completion_class, split_arg_string

SHELLS = ("bash", "zsh", "fish", "powershell")
COMPLETE_VAR = "_VBOPLAN_COMPLETE"

_SOURCE_POWERSHELL = r"""
Register-ArgumentCompleter -Native -CommandName %(prog_name)s -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)
    $line = $commandAst.ToString()
    $upTo = [Math]::Min($cursorPosition - $commandAst.Extent.StartOffset, $line.Length)
    $env:COMP_WORDS = $line.Substring(0, $upTo)
    $env:COMP_INCOMPLETE = $wordToComplete
    $env:%(complete_var)s = "powershell_complete"
    $answers = @(%(prog_name)s)
    Remove-Item Env:COMP_WORDS, Env:COMP_INCOMPLETE, Env:%(complete_var)s
    foreach ($answer in $answers) {
        $type, $value, $help = $answer -split "`t", 3
        if ($type -eq "file" -or $type -eq "dir") {
            Get-ChildItem -Path "$wordToComplete*" | ForEach-Object {
                [System.Management.Automation.CompletionResult]::new($_.Name, $_.Name, 'ProviderItem', $_.Name)
            }
        } else {
            if (-not $help) { $help = $value }
            [System.Management.Automation.CompletionResult]::new($value, $value, 'ParameterValue', $help)
        }
    }
}
"""


class PowerShellComplete(ShellComplete):
    """PowerShell (Windows PowerShell 5.1 and PowerShell 7), which click does not ship."""

    name = "powershell"
    source_template = _SOURCE_POWERSHELL

    def get_completion_args(self) -> tuple[list[str], str]:
        words = split_arg_string(os.environ.get("COMP_WORDS", ""))
        incomplete = os.environ.get("COMP_INCOMPLETE", "")
        args = words[1:]
        if incomplete and args and args[-1] == incomplete:
            args = args[:-1]
        return args, incomplete

    def format_completion(self, item: CompletionItem) -> str:
        return f"{item.type}\t{item.value}\t{item.help or ''}"


add_completion_class(PowerShellComplete)


def source(command: click.Command, shell: str) -> str:
    """The completion script for ``shell``."""
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    if cls is None:  # pragma: no cover - click.Choice keeps other names out
        raise click.BadParameter(f"no completion for {shell}")
    return cls(command, {}, "vboplan", COMPLETE_VAR).source()


def _project_dir(ctx: click.Context) -> Path:
    root = ctx.find_root()
    directory = root.params.get("directory")
    return Path(directory) if directory else Path(".")


def complete_environment(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Environment names from vboplan.yaml (of ``-C DIR`` when given); nothing when the project cannot be read."""
    from vboplan.errors import VboplanError
    from vboplan.project.config import load_project

    try:
        project = load_project(_project_dir(ctx))
    except (VboplanError, OSError, ValueError):
        return []
    return [CompletionItem(name, help=env.server)
            for name, env in sorted(project.environments.items()) if name.startswith(incomplete)]


def complete_state_address(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Addresses the snapshot of the ``--env`` already given holds (``state list``, ``state rm``); nothing when
    there is no such environment or snapshot."""
    from vboplan.errors import VboplanError
    from vboplan.project.config import load_project
    from vboplan.state import StateStore
    from vboplan.state.forget import held_addresses

    env_name = ctx.params.get("env_name")
    if not env_name:
        return []
    try:
        project = load_project(_project_dir(ctx))
        snapshot = StateStore(project, project.environment(env_name)).read()
    except (VboplanError, OSError, ValueError):
        return []
    resources = (snapshot or {}).get("resources") or {}
    found = [*sorted(resources), *held_addresses(resources)]
    return [CompletionItem(address) for address in dict.fromkeys(found) if address.startswith(incomplete)]
