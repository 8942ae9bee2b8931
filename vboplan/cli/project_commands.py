"""``vboplan fmt`` and ``vboplan init``: the project's own files (layout, a new project, approvers, state move)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from vboplan.cli.commands import Context, echo, main, pass_context, reports_errors
from vboplan.cli.options import lock_timeout_option
from vboplan.errors import VboplanError


@main.command()
@click.option("--check", is_flag=True, help="Change nothing; exit 1 listing the files that are not laid out.")
@click.option("--diff", "show_diff", is_flag=True, help="Print what would change, as a unified diff.")
@pass_context
@reports_errors
def fmt(obj: Context, check: bool, show_diff: bool) -> None:
    """Lay out vboplan.yaml and the variable files canonically (comments kept; templates are left alone).

    Two spaces per level, list items indented under their key, one space after ':' and ',', no trailing spaces;
    key order, quoting, flow or block style and comments stay as written. A file whose values would read
    differently is left as it is and named."""
    from vboplan.project.fmt import diff, format_files, project_files

    project = obj.project()
    report = format_files(project_files(project), project, write=not check)
    for path, (old, new) in report.changed.items():
        shown = project.display(path)
        echo(shown)
        if show_diff:
            echo(diff(shown, old, new), nl=False)
    if check and report.changed:
        count = len(report.changed)
        echo(f"{count} file{'s' if count != 1 else ''} not in the canonical layout; run 'vboplan fmt'", err=True)
        sys.exit(1)


@main.command()
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--signers", "signers", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Build the allowed_signers file from the public keys in DIR, each file named after its owner "
                   "(alice@contoso.com.pub).")
@click.option("--signers-file", "signers_file", default=None, metavar="FILE",
              help="Where --signers writes, relative to the project (default: approvers/allowed_signers).")
@click.option("--force", is_flag=True, help="With --signers: replace an allowed_signers file that differs.")
@click.option("--migrate-state/--no-migrate-state", "migrate", default=None,
              help="Copy local state snapshots to the shared backend vboplan.yaml names, without asking (or "
                   "never; default: ask when there is a terminal).")
@lock_timeout_option
@pass_context
@reports_errors
def init(obj: Context, directory: Path | None, signers: Path | None, signers_file: str | None, force: bool,
         migrate: bool | None) -> None:
    """Start a project, or bring one up to date: example files, approvers, state backend.

    In a folder without vboplan.yaml, writes a project that plans against the embedded emulator as it is:
    vboplan.yaml, a template, environments/*.yaml, the emulator's seed and a .gitignore for .vboplan/. An
    existing file is never replaced. In an existing project, checks whether local state snapshots still need to
    move to the shared backend vboplan.yaml now names, and offers to copy them."""
    from vboplan.project import init as setup
    from vboplan.project.config import CONFIG_NAME

    root = directory if directory is not None else obj.directory
    fresh = not (root / CONFIG_NAME).exists()
    if fresh:
        made = setup.new_project(root)
        for name in made.written:
            echo(f"Wrote {name}")
        for name in made.kept:
            echo(f"Kept {name} (it exists)")
    if signers is not None:
        message, _, _ = setup.write_signers(root.resolve(), signers, signers_file or setup.SIGNERS_FILE, force)
        echo(message)
    if fresh:
        where = "" if directory is None else f" -C {directory}"
        echo(f"Next: {setup.PASSWORD_ENV}={setup.LAB_PASSWORD} vboplan{where} plan --env dev   (the lab "
             "emulator's password; a real server's comes from your secret store)")
        return
    _offer_migration(obj, root, migrate)


def _offer_migration(obj: Context, root: Path, migrate: bool | None) -> None:
    from vboplan.core import open_project
    from vboplan.project.init import pending_migrations
    from vboplan.state import migrate_to_configured

    project = open_project(root)
    pending = pending_migrations(project)
    if not pending:
        echo("State: " + ("local (.vboplan/state/)" if project.state.backend == "local" else
                          f"the {project.state.backend} backend holds every snapshot there is"))
        return
    for env, why in pending:
        echo(f"State of '{env.name}' is still local ({why}); vboplan.yaml names the {project.state.backend} backend")
    names = " ".join(f"--env {env.name}" for env, _ in pending)
    later = (f"run 'vboplan init --migrate-state' or 'vboplan state migrate {names} --to-configured-backend' (until "
             "then, plans read the shared backend, which does not know these applies)")
    if migrate is None:
        if not sys.stdin.isatty():
            raise VboplanError(f"cannot ask whether to move the state (no terminal): {later}")
        migrate = click.confirm("Copy these snapshots to the configured backend now?", default=False, err=True)
    if not migrate:
        echo(f"Warning: the state has not moved; {later}", err=True)
        return
    for env, _ in pending:
        snapshot, where = migrate_to_configured(project, env)
        echo(f"Copied the snapshot of '{env.name}' (serial {snapshot['serial']}) to {where}; the local copy in "
             ".vboplan/state/ is no longer used")
