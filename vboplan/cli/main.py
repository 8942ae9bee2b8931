"""The ``vboplan`` group itself: its options, one line per error, and the list of commands, each loaded only when
it runs.

``vboplan --help`` and ``--version`` start as fast as click itself: this module builds the group and nothing else
(no command's options, no shell completion, not even :mod:`shutil` for the terminal's width). The commands live in
:mod:`vboplan.cli.commands` and the modules beside it; :data:`COMMANDS` lists each with the first paragraph of its
help, which is all ``--help`` shows of it (a test checks the two agree).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from vboplan import __version__
from vboplan.cli import helptext
from vboplan.errors import VboplanError

if TYPE_CHECKING:
    from vboplan.project.config import Project

#: Every command: name -> (module, attribute or None when the module registers it on the group itself, the first
#: paragraph of its help).
COMMANDS: dict[str, tuple[str, str | None, str]] = {
    "apply": ("vboplan.cli.commands", None,
              "Apply exactly the approved changes of saved plans (or plan, ask and apply one environment)."),
    "approve": ("vboplan.cli.commands", None,
                "Approve plans by signing them with your SSH key (ssh-keygen -Y sign, namespace vboplan-approve)."),
    "check": ("vboplan.cli.commands", None,
              "Evaluate the policy rules over the desired state (and the live servers unless --offline); exit 1 on a "
              "block violation."),
    "completion": ("vboplan.cli.commands", None,
                   "Print the shell completion script for SHELL (commands, options, environment names, plan files)."),
    "emulator": ("vboplan.emulator.cli", "emulator",
                 "Run an emulated Veeam Backup for Microsoft 365 REST server (API v5-v8)."),
    "fmt": ("vboplan.cli.commands", None,
            "Lay out vboplan.yaml and the variable files canonically (comments kept; templates are left alone)."),
    "import": ("vboplan.cli.commands", None,
               "Adopt live servers: write templates and variable files that reproduce their settings, then plan."),
    "init": ("vboplan.cli.commands", None,
             "Start a project, or bring one up to date: example files, approvers, state backend."),
    "plan": ("vboplan.cli.commands", None, "Show what differs between the templates and the live servers."),
    "render": ("vboplan.cli.commands", None,
               "Print the desired settings as rendered for one environment, secrets masked; no server is contacted."),
    "report": ("vboplan.cli.report", "report",
               "One fleet report from many plan files: identical plans grouped, the fleet's alignment, totals, authors."),
    "show": ("vboplan.cli.commands", None,
             "Show a saved plan file and each approval: who, which key, what, and whether it counts."),
    "state": ("vboplan.cli.commands", None, "Inspect state snapshots, break a lock, move state to a shared backend."),
    "validate": ("vboplan.cli.commands", None, "Render and check every template, without contacting any server."),
}


def help_width() -> int:
    """The width click's help would take (the terminal's, at most 80, less 2, at least 50), found as
    :func:`shutil.get_terminal_size` finds it without importing shutil (which imports bz2, lzma and zlib)."""
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return max(min(columns or 80, 80) - 2, 50)


_verbosity = {"level": 0}  # set by the group callback; read by the last-resort handler in _Group.main


def echo(message: Any = "", **kwargs: Any) -> None:
    """click.echo, with every secret value of the run masked (a server may echo one back, for instance), and every
    control character but tab, newline and colour codes shown as its escape (what is printed may quote a label, a
    plan file's field, a server's answer or a file's name: none may drive the terminal)."""
    from vboplan.output.wording import terminal_safe
    from vboplan.sensitive import redact

    click.echo(terminal_safe(redact(str(message))), **kwargs)


class Context:
    def __init__(self, directory: Path, color: bool, verbose: int, quiet: bool = False) -> None:
        self.directory = directory
        self.color = color
        self.verbose = verbose
        self.quiet = quiet

    def progress(self, action: str) -> Any:
        """Progress of ``action`` on stderr while the block runs (never with --quiet)."""
        from vboplan import progress

        return progress.shown(action, enabled=not self.quiet)

    def project(self) -> Project:
        from vboplan.core import open_project

        return open_project(self.directory)


def _setup_logging(verbose: int) -> None:
    import logging

    from vboplan.sensitive import RedactingFilter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger("vboplan")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING)
    root.propagate = False


class _Group(click.Group):
    """Exit 1 for every error, usage errors included: with --detailed-exitcode, 2 must only mean "changes".

    The commands are listed in ``lazy`` (:data:`COMMANDS`) and imported only when run: ``vboplan --help`` lists
    them from their line without loading their module.
    """

    lazy: dict[str, tuple[str, str | None, str]] = COMMANDS

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            import importlib

            module, attribute, _ = self.lazy[cmd_name]
            loaded = importlib.import_module(module)  # registers its commands on this group
            if attribute is not None:
                self.add_command(getattr(loaded, attribute), cmd_name)
        return super().get_command(ctx, cmd_name)

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        from click import formatting

        if parent is None and formatting.FORCED_WIDTH is None:
            extra.setdefault("terminal_width", help_width())  # every command's context inherits it
        return super().make_context(info_name, args, parent, **extra)

    def _main_shell_completion(self, ctx_args: Any, prog_name: str, complete_var: str | None = None) -> None:
        # Completion is loaded only when a shell asks for it (it registers the PowerShell completion too).
        name = complete_var or f"_{prog_name.replace('-', '_').replace('.', '_')}_COMPLETE".upper()
        if os.environ.get(name):
            import vboplan.cli.completion  # noqa: F401
        super()._main_shell_completion(ctx_args, prog_name, complete_var)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            room = formatter.width - 6 - len(name)
            if name in self.commands:
                command = self.commands[name]
                if not command.hidden:
                    rows.append((name, command.get_short_help_str(room)))
            else:
                rows.append((name, click.Command(name, help=self.lazy[name][2]).get_short_help_str(room)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            result = super().main(*args, **kwargs)
        except click.ClickException as exc:  # usage errors included
            exc.show()
            sys.exit(1)
        except click.Abort as exc:
            # click turns Ctrl-C and end-of-input into Abort. What an interrupted apply sent is for the apply to
            # say (ApplyInterrupted); here that the run stopped, and what an apply of it sent, if any.
            if isinstance(exc.__context__, EOFError):
                echo("\nError: no answer (end of input); stopped.", err=True)
            else:
                echo(f"Error: {_interrupted()}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            # Also a second Ctrl-C while an interrupted apply was still logging out or releasing its lock.
            echo(f"\nError: {_interrupted()}", err=True)
            sys.exit(1)
        except VboplanError as exc:
            echo(f"Error: {exc}", err=True)
            sys.exit(1)
        except Exception as exc:  # the last resort: never a traceback unless asked for
            _report_unexpected(exc)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)


def _interrupted() -> str:
    """What to say of a run stopped by Ctrl-C: what its apply sent, when it sent anything."""
    journal = sys.modules.get("vboplan.applying.journal")  # not imported: no apply ran
    said = journal.interrupted_report() if journal is not None else None
    return said or "interrupted."


def _report_unexpected(exc: Exception) -> None:
    """One line for an error vboplan did not foresee; the traceback only with -v."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        # A file vboplan could not read or write: the file and the reason say everything.
        # os.replace(temp, path) names both: the file the user knows is the second.
        echo(f"Error: {exc.filename2 or exc.filename}: {exc.strerror}", err=True)
        if _verbosity["level"]:
            import traceback

            traceback.print_exception(exc, file=sys.stderr)
        return
    if isinstance(exc, OSError) and exc.strerror:
        message = exc.strerror
    elif isinstance(exc, RecursionError):
        message = "input nested too deeply"
    elif isinstance(exc, MemoryError):
        message = "out of memory"
    else:
        message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if _verbosity["level"]:
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
        echo(f"Error: {message}", err=True)
    else:
        echo(f"Error: {message} (run with -v for details)", err=True)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-C", "directory", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              help="Project directory (holds vboplan.yaml).")
@click.option("--no-color", is_flag=True, help="No colour (also when NO_COLOR is set).")
@click.option("-v", "--verbose", count=True, help="More detail on stderr (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="No progress line on stderr (errors and warnings still shown).")
@click.version_option(__version__, prog_name="vboplan")
@click.pass_context
def main(ctx: click.Context, directory: Path, no_color: bool, verbose: int, quiet: bool) -> None:
    """Plan and apply Veeam Backup for Microsoft 365 settings, reviewed and per environment."""
    color = not no_color and "NO_COLOR" not in os.environ and sys.stdout.isatty()
    _verbosity["level"] = verbose
    from vboplan.sensitive import forget

    forget()  # the redactor knows the secrets of this run, and only those
    journal = sys.modules.get("vboplan.applying.journal")
    if journal is not None:
        journal.reset()  # and what an interrupted run says it sent is this run's
    _setup_logging(verbose)
    ctx.obj = Context(directory, color, verbose, quiet)


main.epilog = helptext.epilog("")  # the commands' own are attached when vboplan.cli.commands loads
