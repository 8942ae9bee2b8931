"""``vboplan report``: one fleet report from many saved plans (the plan files of every CI shard)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from vboplan.cli.commands import Context, echo, pass_context, reports_errors
from vboplan.cli.formats import FORMATS


@click.command()
@click.argument("planfiles", nargs=-1, required=True, metavar="PLANFILE...", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
              help="Output format.")
@pass_context
@reports_errors
def report(obj: Context, planfiles: tuple[Path, ...], fmt: str) -> None:
    """One fleet report from many plan files: identical plans grouped, the fleet's alignment, totals, authors.

    A directory stands for the plan files in it (what 'vboplan plan --out-dir DIR' wrote, failures included), so
    the artifacts of every CI shard make one report, with each environment's policy verdicts and their totals; a
    shard's folder missing, or a plan file its run set out to write, is refused. Each plan's author signature is
    checked as 'show' checks it, against the trust file of its environment in the project (-C, default: here): a
    plan changed after it was signed is refused, and one not proven is named. Exits 1 when an environment failed
    to plan, a plan file is refused, apply would refuse a plan for want of a proven author, or a block verdict
    stands (as plan does)."""
    from vboplan.output import fleet
    from vboplan.planning.fleet import check_plans, gather

    given = click.get_current_context().find_root().get_parameter_source("directory")
    named = given is not None and given is not click.core.ParameterSource.DEFAULT
    project = obj.project() if named or (obj.directory / "vboplan.yaml").is_file() else None
    if project is None:
        echo("Note: no vboplan.yaml here, so no project to check the plans against (their environments, servers, "
             "rules and trust files); signatures are still verified. Give -C PROJECT.", err=True)
    results, authors = check_plans(gather(list(planfiles), project), project)
    echo(fleet.render(results, fmt, obj.color, hint="See each environment's plan with `vboplan show PLANFILE`.",
                      authors=authors), nl=False)
    refused = any(g.refuses for g in authors)
    if refused or any(not hasattr(r, "changes") or any(fleet.standing_block(v) for v in r.verdicts) for r in results):
        sys.exit(1)
