"""``vboplan state list`` and ``vboplan state rm``: what a snapshot holds, and forgetting part of it."""

from __future__ import annotations

import click

from vboplan.cli.commands import Context, echo, pass_context, reports_errors, state
from vboplan.cli.completion import complete_environment, complete_state_address
from vboplan.cli.options import lock_timeout_option

_env = click.option("--env", "env_name", required=True, metavar="NAME", shell_complete=complete_environment,
                    help="Environment.")


@state.command("list")
@_env
@click.argument("within", required=False, metavar="[ADDRESS]", shell_complete=complete_state_address)
@pass_context
@reports_errors
def state_list(obj: Context, env_name: str, within: str | None) -> None:
    """List the addresses the environment's state snapshot holds (only those at or under ADDRESS, if given)."""
    from vboplan.errors import VboplanError
    from vboplan.planning.changes import Address
    from vboplan.state import StateStore
    from vboplan.state.forget import held_addresses

    project = obj.project()
    snapshot = StateStore(project, project.environment(env_name)).read()
    if snapshot is None:
        raise VboplanError(f"environment '{env_name}' has no state snapshot yet (nothing applied)")
    for address in held_addresses(snapshot.get("resources") or {}, Address.parse(within) if within else None):
        echo(address)


@state.command("rm")
@_env
@click.argument("addresses", nargs=-1, required=True, metavar="ADDRESS...", shell_complete=complete_state_address)
@lock_timeout_option
@pass_context
@reports_errors
def state_rm(obj: Context, env_name: str, addresses: tuple[str, ...]) -> None:
    """Forget objects or fields in the environment's state snapshot; the server is not touched.

    The next plan has no record of what is forgotten: it reports no "changed outside vboplan" for it and plans a
    write-only value as "will be set"; what no template declares any more is simply not managed. Runs under the
    environment's lock."""
    from vboplan.planning.changes import Address
    from vboplan.project.config import current_user
    from vboplan.state import StateStore
    from vboplan.state.forget import forget_in_store

    project = obj.project()
    store = StateStore(project, project.environment(env_name))
    parsed = [Address.parse(text) for text in addresses]
    with store.lock(f"state rm --env {env_name}"):
        for address in parsed:
            snapshot, count = forget_in_store(store, address, current_user())
            echo(f"Forgot {address} in the state of '{env_name}' ({count} recorded value{'s' if count != 1 else ''}; "
                 f"serial {snapshot['serial']}); the server was not changed")
