"""Plan files of a fleet on disk: ``plan --out-dir DIR`` writes ``DIR/<env>.json`` for every environment planned
(converged ones included), ``DIR/failed/<env>.json`` for each that could not be planned, and ``DIR/_run.manifest``,
what the run set out to plan, so that ``vboplan report`` over the directories of every shard sees the whole fleet,
failures included, and refuses one with a shard or a plan file missing.

The manifest is written before planning starts (and by a shard that holds no environment), so a run that died
half-way leaves a manifest naming environments without a plan file; and each names its shard (``I/N``) and a
digest of the whole selection the shards split, so ``report`` can tell that a shard's folder is missing."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vboplan.errors import ApprovalError, PlanError, VboplanError
from vboplan.project.config import name_problem
from vboplan.shapes import ListOf, Opt, problem, read_json
from vboplan.state import atomic_write

if TYPE_CHECKING:
    from vboplan.core import Outcome
    from vboplan.output.fleet import AuthorGroup
    from vboplan.output.html import FailedEnvironment
    from vboplan.planning.plan import Plan
    from vboplan.project.config import Environment, Project

FAILED = "failed"
#: Not ``*.json``: whatever reads a folder's plan files by that pattern (apply scripts, ``report``) skips it; and no
#: environment is named so (names start with a letter or digit).
MANIFEST = "_run.manifest"
_MANIFEST_SHAPE = {"format_version": int, "shard": Opt(ListOf(int), nullable=True), "selected": int,
                   "selection": str, "environments": ListOf(str),
                   "select": Opt({"environments": ListOf(str), "all": bool, "labels": ListOf(str)}),
                   "commit": Opt(str, nullable=True)}
MAX_SHARDS = 9999  # as --shard I/N takes them


@dataclass(frozen=True)
class Run:
    """What one ``plan --out-dir`` run set out to plan: shard ``I/N`` (None: unsharded) of a selection of
    ``selected`` environments whose names digest to ``selection``, and the ``environments`` of its slice."""

    folder: Path
    shard: tuple[int, int] | None
    selected: int
    selection: str
    environments: tuple[str, ...]
    select: dict[str, Any] | None = None  # the --env, --all and --label the selection was made with
    commit: str | None = None  # the commit the project was checked out at (None: not a git checkout)

    @property
    def slice(self) -> str:
        return f"shard {self.shard[0]}/{self.shard[1]}" if self.shard else "an unsharded run"

    @property
    def count(self) -> int:
        return self.shard[1] if self.shard else 1


def selection_digest(names: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(names)).encode("utf-8")).hexdigest()


def refuse_stale(directory: Path, planned: set[str]) -> None:
    """Refuse an ``--out-dir`` that holds plan files or failure records of environments this run does not plan:
    ``vboplan report`` would count them beside this run's (an environment since removed, or one of another shard)."""
    if directory.exists() and not directory.is_dir():
        raise PlanError(f"--out-dir {directory} is a file, not a folder")
    for name in sorted(planned):
        for path in (directory / f"{name}.json", directory / FAILED / f"{name}.json"):
            if path.is_dir():
                raise PlanError(f"--out-dir {directory}: {path} is a folder, where the plan file of '{name}' goes")
    stale = sorted({path.stem for folder in (directory, directory / FAILED) if folder.is_dir()
                    for path in folder.glob("*.json")} - planned)
    if stale:
        shown = ", ".join(stale[:5]) + (f" and {len(stale) - 5} more" if len(stale) > 5 else "")
        raise PlanError(f"--out-dir {directory} holds plan files of environments this run does not plan ({shown}), "
                        "which 'vboplan report' would count with this run's: give an empty folder (one per shard), "
                        "or remove or archive them first")


def write_manifest(directory: Path, shard: tuple[int, int] | None, selection: list[str], planned: list[str],
                   select: dict[str, Any], root: Path) -> None:
    """Record, before planning, what this run plans: its slice of ``selection`` (every environment the shards
    split, chosen by ``select``: the ``environments`` named, ``all``, the ``labels``), the environments of that
    slice, and the commit of the project at ``root``. The plan files and failure records an earlier run left for
    them go (a plan file holding approvals was refused before this), so a run killed half-way leaves names without
    a file, never an old plan beside the new manifest."""
    from vboplan.trust.commits import head

    document = {"format_version": 1, "shard": list(shard) if shard else None, "selected": len(selection),
                "selection": selection_digest(selection), "environments": sorted(planned), "select": select,
                "commit": head(root)}
    directory.mkdir(parents=True, exist_ok=True)
    for name in planned:  # first: a run stopped here leaves the old manifest, naming files no longer there
        (directory / f"{name}.json").unlink(missing_ok=True)
        (directory / FAILED / f"{name}.json").unlink(missing_ok=True)
    atomic_write(directory / MANIFEST, json.dumps(document, indent=2) + "\n", mode=0o600)


def read_manifest(directory: Path) -> Run:
    path = directory / MANIFEST
    if not path.exists():
        raise PlanError(f"{directory}: holds no {MANIFEST}, so it is not a folder 'vboplan plan --out-dir' wrote, or "
                        "its run never started (a shard's job that failed early?); plan that shard again")
    data = read_json(path, str(path), PlanError, "run manifest")
    wrong = problem(data, _MANIFEST_SHAPE) if isinstance(data, dict) and data.get("format_version") == 1 else \
        "not a run manifest of format 1"
    shard = data.get("shard") if not wrong else None
    if not wrong and shard is not None and (len(shard) != 2 or not 1 <= shard[0] <= shard[1] <= MAX_SHARDS):
        wrong = f"shard must be [I, N] with 1 <= I <= N <= {MAX_SHARDS}"
    if not wrong and any(name_problem(name) for name in data["environments"]):
        wrong = "its environments must be environment names"
    if wrong:
        raise PlanError(f"{path}: {wrong}")
    return Run(directory, tuple(shard) if shard else None, data["selected"], data["selection"],
               tuple(data["environments"]), data.get("select"), data.get("commit"))


def check_shards(runs: list[Run]) -> None:
    """Refuse folders that are not one whole fleet: runs of different selections or shard counts, a shard twice
    or missing."""
    first = runs[0]
    for run in runs[1:]:
        if (run.selection, run.count) != (first.selection, first.count):
            raise PlanError(f"{first.folder} ({first.slice} of {first.selected} environments) and {run.folder} "
                            f"({run.slice} of {run.selected}) are not shards of one run: give the folders of one "
                            "fleet's shards, planned with the same --label and --shard I/N")
    for run in runs[1:]:  # after every run's selection is checked: a run of another fleet is named as such first
        if run.commit != first.commit:
            raise PlanError(f"{first.folder} was planned at commit {(first.commit or 'none')[:12]} and {run.folder} at "
                            f"{(run.commit or 'none')[:12]}: the shards of one report are planned from one commit")
    seen: dict[int, Run] = {}
    for run in runs:
        index = run.shard[0] if run.shard else 1
        if index in seen:
            raise PlanError(f"{seen[index].folder} and {run.folder} both hold {run.slice}: give each shard once")
        seen[index] = run
    missing = [i for i in range(1, first.count + 1) if i not in seen][:6]
    if missing:
        shown = ", ".join(f"{i}/{first.count}" for i in missing[:5]) + (" and more" if len(missing) > 5 else "")
        raise PlanError(f"shard {shown} of the {first.selected} environments is missing (the folders given hold "
                        f"{', '.join(f'{i}/{first.count}' for i in sorted(seen))}): its job may have failed before "
                        "writing; plan it again, or give its folder, so the report covers the whole fleet")
    _check_split(runs)


def _check_split(runs: list[Run]) -> None:
    """The shards' environments are the selection their manifests name, each in the slice its name hashes to."""
    from vboplan.project.inventory import shard_of

    names: dict[str, Run] = {}
    for run in runs:
        for name in run.environments:
            if name in names:
                raise PlanError(f"{names[name].folder} and {run.folder} both set out to plan '{name}'")
            names[name] = run
            if run.shard and shard_of(name, run.shard[1]) != run.shard[0]:
                raise PlanError(f"{run.folder}: '{name}' is not in {run.slice} (its name puts it in shard "
                                f"{shard_of(name, run.shard[1])}/{run.shard[1]}): its manifest was changed")
    first = runs[0]
    if len(names) != first.selected or selection_digest(list(names)) != first.selection:
        raise PlanError(f"the shards given set out to plan {len(names)} environments, not the {first.selected} of "
                        f"the selection they split: a manifest was changed, or the folders are of different runs")


def check_selection(runs: list[Run], project: Project) -> None:
    """The selection the shards split is the one ``project`` makes now of the same --env, --all and --label."""
    select = runs[0].select
    if select is None:
        return
    chosen = project.select(tuple(select["environments"]), select["all"] or not select["environments"],
                            tuple(select["labels"]))
    if selection_digest([env.name for env in chosen]) != runs[0].selection:
        shown = " ".join([*(f"--env {n}" for n in select["environments"]), *(["--all"] if select["all"] else []),
                          *(f"--label {lab}" for lab in select["labels"])])
        raise PlanError(f"the shards given split {runs[0].selected} environments, but {shown or 'the same selection'} "
                        f"selects {len(chosen)} in this project now: plan every shard again from this commit")


def check_contents(runs: list[Run], found: dict[str, Path]) -> None:
    """Refuse a folder without the plan file or failure record of an environment its run set out to plan, or with
    one of an environment it did not (``found``: each environment's folder)."""
    for run in runs:
        planned = set(run.environments)
        absent = [name for name in run.environments if found.get(name, None) != run.folder]
        if absent:
            raise PlanError(f"{run.folder}: its run set out to plan {', '.join(absent[:5])}"
                            f"{' and more' if len(absent) > 5 else ''} but holds no plan file or failure record for "
                            "it (the run was interrupted, or a file was removed); plan that shard again")
        extra = sorted(name for name, folder in found.items() if folder == run.folder and name not in planned)
        if extra:
            raise PlanError(f"{run.folder} holds plan files of {', '.join(extra[:5])}, which its run did not plan")


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

    data = read_json(path, str(path), PlanError, "failure record")
    try:
        failure = FailedEnvironment(data["environment"], str(data.get("server", "?")),
                                    str(data.get("api_version", "?")), str(data["error"]))
    except (KeyError, TypeError) as exc:
        raise PlanError(f"{path}: not a failure record of 'vboplan plan --out-dir' ({exc})") from None
    if not isinstance(failure.environment, str) or name_problem(failure.environment):
        raise PlanError(f"{path}: not a failure record of 'vboplan plan --out-dir' (its environment is not a name)")
    return failure


def gather(paths: list[Path], project: Project | None = None) -> list[Plan | FailedEnvironment]:
    """The plans and failure records named (a directory stands for its ``*.json`` plan files and its ``failed/``
    records, and must be one shard of a whole fleet: see :func:`check_shards`), each plan file verified by its
    checksum; an environment named twice is refused."""
    from vboplan.planning.plan import Plan

    results: dict[str, tuple[Path, Any]] = {}
    folders: dict[str, Path] = {}
    runs: list[Run] = []

    def add(name: str, path: Path, result: Any, folder: Path | None) -> None:
        if name in results:
            raise VboplanError(f"environment '{name}' is in both {results[name][0]} and {path}: give each "
                               "environment's plan once (one directory per shard)")
        results[name] = (path, result)
        if folder is not None:
            folders[name] = folder

    for given in paths:
        if given.is_dir():
            runs.append(read_manifest(given))
        elif not given.exists():
            raise PlanError(f"{given}: no such plan file or folder")
    if runs:
        check_shards(runs)
        if project is not None:
            check_selection(runs, project)
    for given in paths:
        folder = given if given.is_dir() else None
        files = sorted(p for p in given.glob("*.json") if p.is_file()) if folder else [given]
        records = sorted(p for p in (given / FAILED).glob("*.json") if p.is_file()) if folder else []
        for path in files:
            plan = Plan.load(path)
            add(plan.environment, path, plan, folder)
        for path in records:
            failure = _failure(path)
            add(failure.environment, path, failure, folder)
    if runs:
        check_contents(runs, folders)
    if not results:
        raise PlanError(f"no plan files in {', '.join(map(str, paths))} (plan with --out-dir DIR first)")
    return [result for _, result in sorted(results.values(), key=lambda item: item[1].environment)]


def check_plans(results: list[Plan | FailedEnvironment], project: Project | None
                  ) -> tuple[list[Plan | FailedEnvironment], list[AuthorGroup]]:
    """Each plan checked as far as ``project`` tells (None: no project; signatures are still verified): its author
    signature as ``show`` checks it, against its environment's trust file; and what apply refuses whoever approved
    it (see :func:`_refusal`). A plan whose signature is broken (changed after it was signed), or that apply
    refuses so, becomes a failure: the report counts no change it cannot trust. Returns the results and the plans
    grouped by what the check of their author found."""
    from vboplan.output.fleet import AuthorGroup
    from vboplan.output.html import FailedEnvironment
    from vboplan.trust.approvals import author_of, require_author

    trusts: dict[Path, Any] = {}
    groups: dict[tuple[str, str | None, bool], AuthorGroup] = {}
    kept: list[Plan | FailedEnvironment] = []
    rules = None
    if project is not None and project.policies:
        from vboplan.policy import load_policies

        rules = load_policies(project)
    for result in results:
        if isinstance(result, FailedEnvironment):
            kept.append(result)
            continue
        env = project.environments.get(result.environment) if project is not None else None
        refused = _refusal(result, env, project, rules) if project is not None else None
        if refused:
            kept.append(FailedEnvironment(result.environment, result.server, result.api_version,
                                          f"its plan file is refused: {refused}", refused=True))
            continue
        policy = env.approvals if env is not None else None
        trust = None
        if policy is not None and policy.allowed_signers is not None:
            if policy.allowed_signers not in trusts:
                trusts[policy.allowed_signers] = policy.trust_list()
            trust = trusts[policy.allowed_signers]
        author = author_of(result, trust)
        if author.broken:
            kept.append(FailedEnvironment(result.environment, result.server, result.api_version,
                                          f"its plan file is refused: {author.problem}", refused=True))
            continue
        kept.append(result)
        problem, refuses = author.problem, False
        if project is None and author.key is not None:
            problem = "the author signature holds, but its key is not checked: give -C PROJECT to name the trust file"
        elif policy is not None and policy.required > 0 and problem is not None:
            refuses = True
        elif policy is not None:
            try:
                require_author(result, policy, author)  # the commits it records, where they must be signed
            except ApprovalError as exc:
                refuses, problem = True, str(exc).replace(f"the plan for '{result.environment}'", "the plan")
        key = (author.who if problem is None else "", problem, refuses)
        groups.setdefault(key, AuthorGroup(key[0], problem, refuses)).environments.append(result.environment)
    ordered = sorted(groups.values(), key=lambda g: (not g.refuses, g.problem is None, -len(g.environments),
                                                      g.problem or g.who))
    return kept, ordered


def _refusal(plan: Plan, env: Environment | None, project: Project, rules: Any) -> str | None:
    """Why apply would refuse ``plan`` whoever approved it, as far as the project tells without a server or a
    state: an environment it does not have, another server, an expired plan, verdicts its rules no longer give."""
    if env is None:
        return (f"this project ({project.root / 'vboplan.yaml'}) has no such environment, so nothing can check who "
                "wrote it")
    if (env.server, env.api_version) != (plan.server, plan.api_version):
        return (f"planned against {plan.server} (API {plan.api_version}), but environment '{env.name}' is now "
                f"{env.server} (API {env.api_version})")
    from vboplan.policy import Policies
    from vboplan.policy.enforce import recheck
    from vboplan.trust.approvals import check_fresh

    try:
        check_fresh(plan, env.approvals, None)
        # With no rules too: a plan recording verdicts of rules since removed is refused, as apply refuses it.
        recheck(project, env.with_variables(plan.variables), plan, policies=rules if rules is not None else Policies())
    except VboplanError as exc:
        return str(exc).replace(f"the plan for '{plan.environment}'", "the plan")
    return None
