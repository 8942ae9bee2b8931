"""``vboplan --help`` and ``--version`` start as fast as click: nothing that talks to a server, renders templates or
prints plans is imported before a command needs it. And a command ends its process without the interpreter's
teardown, nothing it wrote lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner
from conftest import ProjectDir

from vboplan.state import parse_journal

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


# Run before vboplan's entry point: an object whose finalizer writes TEARDOWN runs only when the interpreter tears
# itself down (a normal exit), and an exit handler says on stdout (buffered, not flushed) that the handlers ran.
EXIT_PRELUDE = """
import atexit, os, sys
class Teardown:
    def __del__(self):
        os.write(2, b"TEARDOWN\\n")
teardown = Teardown()
atexit.register(lambda: sys.stdout.write("EXIT HANDLERS\\n"))
"""


def _run_entry(project: ProjectDir, *args: str, prelude: str = "") -> subprocess.CompletedProcess[str]:
    code = EXIT_PRELUDE + prelude + "sys.argv[0] = 'vboplan'\nfrom vboplan.entry import main\nmain()\n"
    env = {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}  # stdout buffered
    return subprocess.run([sys.executable, "-c", code, "-C", str(project.root), "--no-color", *args],
                          capture_output=True, text=True, encoding="utf-8", env=env, timeout=120)


def test_a_command_ends_its_process_with_its_files_and_output_complete(project: ProjectDir,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The process ends without the interpreter's teardown (entry.exit_now), after the exit handlers and with stdout
    (a pipe: buffered) flushed, its exit code kept; the plan file, snapshot and journal it wrote are whole."""
    monkeypatch.setenv("COLUMNS", "160")  # the same table in this process and in the command's
    path = project.root / "dev.plan.json"
    planned = _run_entry(project, "plan", "--env", "dev", "--detailed-exitcode", "--out", str(path))
    assert planned.returncode == 2, planned.stderr
    assert "TEARDOWN" not in planned.stderr
    assert planned.stdout == project.run("plan", "--env", "dev").stdout + "EXIT HANDLERS\n"
    assert len(json.loads(path.read_text())["changes"]) == 9

    # The snapshot cannot be placed: the apply ends with exit code 1 and the journal of what it sent.
    refused = ("import errno\n_replace = os.replace\n"
               "def _full(src, dst):\n"
               "    if os.fspath(dst).endswith(os.path.join('state', 'dev.json')):\n"
               "        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))\n"
               "    _replace(src, dst)\n"
               "os.replace = _full\n")
    interrupted = _run_entry(project, "apply", "--env", "dev", "--auto-approve", prelude=refused)
    assert interrupted.returncode == 1, interrupted.stderr
    assert "TEARDOWN" not in interrupted.stderr and interrupted.stdout.endswith("EXIT HANDLERS\n")
    assert "dev.journal.json records what was sent" in interrupted.stderr
    journal = parse_journal((project.root / ".vboplan/state/dev.journal.json").read_text())
    assert len(journal["writes"]) >= 1 and all(w["state"] == "applied" for w in journal["writes"])
    assert sum(len(w["changes"]) for w in journal["writes"]) == 9

    applied = _run_entry(project, "apply", "--env", "dev", "--auto-approve")
    assert applied.returncode == 0, applied.stderr
    assert "TEARDOWN" not in applied.stderr and applied.stdout.endswith("EXIT HANDLERS\n")
    assert "No changes" in applied.stdout
    snapshot = json.loads((project.root / ".vboplan/state/dev.json").read_text())
    assert len(snapshot["last_apply"]["applied"]) == 9
    assert not (project.root / ".vboplan/state/dev.journal.json").exists()


def test_with_another_thread_running_the_exit_is_the_normal_one(project: ProjectDir) -> None:
    """A thread that is not a daemon still running when the command ends: the interpreter waits for it, as always."""
    late = project.root / "late.txt"
    # The thread runs until the interpreter's shutdown lets it end (threading's own exit hooks run before it joins
    # the threads that are not daemons), so it is still running when the command ends, however loaded the machine.
    prelude = ("import threading\n_end = threading.Event()\nthreading._register_atexit(_end.set)\n"
               f"def _late():\n    _end.wait(120)\n    open({str(late)!r}, 'w').write('done')\n"
               "threading.Thread(target=_late).start()\n")
    result = _run_entry(project, "plan", "--env", "nowhere", prelude=prelude)
    assert result.returncode == 1 and "nowhere" in result.stderr
    assert "TEARDOWN" in result.stderr and result.stdout.endswith("EXIT HANDLERS\n")
    assert late.read_text() == "done"
