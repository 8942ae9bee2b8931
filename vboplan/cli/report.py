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
    """One fleet report from many plan files: identical plans grouped, the fleet's alignment, totals.

    A directory stands for the plan files in it (what 'vboplan plan --out-dir DIR' wrote, failures included), so
    the artifacts of every CI shard make one report, with each environment's policy verdicts and their totals.
    Each plan file is checked against its checksum. Exits 1 when an environment failed to plan or a block verdict
    stands (as plan does)."""
    from vboplan.output import fleet
    from vboplan.planning.fleet import gather

    results = gather(list(planfiles))
    echo(fleet.render(results, fmt, obj.color, hint="See each environment's plan with `vboplan show PLANFILE`."),
         nl=False)
    if any(not hasattr(r, "changes") or any(fleet.standing_block(v) for v in r.verdicts) for r in results):
        sys.exit(1)
