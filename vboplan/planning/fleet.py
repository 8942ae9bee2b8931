"""Plan files of a fleet on disk: ``plan --out-dir DIR`` writes ``DIR/<env>.json`` for every environment planned
(converged ones included) and ``DIR/failed/<env>.json`` for each that could not be planned, so that
``vboplan report`` over the directories of every shard sees the whole fleet, failures included."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vboplan.errors import PlanError, VboplanError
from vboplan.state import atomic_write

if TYPE_CHECKING:
    from vboplan.core import Outcome
    from vboplan.output.html import FailedEnvironment
    from vboplan.planning.plan import Plan

FAILED = "failed"


def refuse_stale(directory: Path, planned: set[str]) -> None:
    """Refuse an ``--out-dir`` that holds plan files or failure records of environments this run does not plan:
    ``vboplan report`` would count them beside this run's (an environment since removed, or one of another shard)."""
    stale = sorted({path.stem for folder in (directory, directory / FAILED) if folder.is_dir()
                    for path in folder.glob("*.json")} - planned)
    if stale:
        shown = ", ".join(stale[:5]) + (f" and {len(stale) - 5} more" if len(stale) > 5 else "")
        raise PlanError(f"--out-dir {directory} holds plan files of environments this run does not plan ({shown}), "
                        "which 'vboplan report' would count with this run's: give an empty folder (one per shard), "
                        "or remove or archive them first")


def record_failures(directory: Path, outcomes: list[Outcome]) -> str:
    """Write a failure record for each environment of ``outcomes`` that failed (and drop the plan file an earlier
    run left for it); drop the stale failure record of each that planned. Returns what to tell the user."""
    failed = 0
    for outcome in outcomes:
        record = directory / FAILED / f"{outcome.env.name}.json"
        if outcome.error is None:
            record.unlink(missing_ok=True)
            continue
        failed += 1
        (directory / f"{outcome.env.name}.json").unlink(missing_ok=True)
        document = {"format_version": 1, "environment": outcome.env.name, "server": outcome.env.server,
                    "api_version": outcome.env.api_version, "error": str(outcome.error)}
        atomic_write(record, [json.dumps(document, indent=2) + "\n"], mode=0o600)
    planned = len(outcomes) - failed
    line = f"Saved {planned} plan file{'s' if planned != 1 else ''} to {directory}"
    return line + (f"; {failed} environment{'s' if failed != 1 else ''} failed (see {directory / FAILED})"
                   if failed else "")


def _failure(path: Path) -> FailedEnvironment:
    from vboplan.output.html import FailedEnvironment

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return FailedEnvironment(str(data["environment"]), str(data.get("server", "?")),
                                 str(data.get("api_version", "?")), str(data["error"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise PlanError(f"{path}: not a failure record of 'vboplan plan --out-dir' ({exc})") from None


def gather(paths: list[Path]) -> list[Plan | FailedEnvironment]:
    """The plans and failure records named (a directory stands for its ``*.json`` plan files and its ``failed/``
    records), each plan file verified by its checksum; an environment named twice is refused."""
    from vboplan.planning.plan import Plan

    results: dict[str, tuple[Path, Any]] = {}

    def add(name: str, path: Path, result: Any) -> None:
        if name in results:
            raise VboplanError(f"environment '{name}' is in both {results[name][0]} and {path}: give each "
                               "environment's plan once (one directory per shard)")
        results[name] = (path, result)

    for given in paths:
        if given.is_dir():
            # A shard of a small fleet may hold no environment: its folder is empty, and that is no error.
            files = sorted(p for p in given.glob("*.json") if p.is_file())
            records = sorted(p for p in (given / FAILED).glob("*.json") if p.is_file())
        else:
            files, records = [given], []
        for path in files:
            plan = Plan.load(path)
            add(plan.environment, path, plan)
        for path in records:
            failure = _failure(path)
            add(failure.environment, path, failure)
    if not results:
        raise PlanError(f"no plan files in {', '.join(map(str, paths))} (plan with --out-dir DIR first)")
    return [result for _, result in sorted(results.values(), key=lambda item: item[1].environment)]
