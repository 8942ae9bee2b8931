"""The library entry points behind each command; usable from Python without the CLI."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vboplan import progress
from vboplan.api.client import VboClient
from vboplan.applying.journal import recorded_resources
from vboplan.connection import connect
from vboplan.errors import VboplanError
from vboplan.planning.changes import ACTIONS
from vboplan.planning.plan import Plan, make_plan
from vboplan.project.config import Environment, Project, load_project
from vboplan.project.render import Rendered, render
from vboplan.state import StateStore

if TYPE_CHECKING:
    from vboplan.project.importing import ImportResult  # loaded by the import command only

log = logging.getLogger("vboplan")


@dataclass
class Outcome:
    """The result of one environment's run: a plan, or the error that stopped it."""

    env: Environment
    plan: Plan | None = None
    error: VboplanError | None = None
    requests: int = 0


@dataclass
class Report:
    """What a run would change (``plan``) or changed (``apply``) per environment, and the exit code that says so,
    as black's Report does: 0 success or nothing to change, 1 any error or refusal, 2 changes present when the
    caller asked for it (``plan --detailed-exitcode``; for a refresh-only plan, values changed outside vboplan)."""

    applying: bool = False
    detailed_exitcode: bool = False
    changes: dict[str, Counter[str]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    drifted: set[str] = field(default_factory=set)   # refresh-only plans that found values changed outside vboplan

    def planned(self, env: str, plan: Plan) -> None:
        self.changes[env] = plan.counts()
        if plan.refresh_only and plan.drift:
            self.drifted.add(env)

    def applied(self, env: str, actions: list[str]) -> None:
        self.changes[env] = Counter(actions)

    def failed(self, env: str, error: Exception | str) -> None:
        self.failures[env] = str(error)

    @property
    def return_code(self) -> int:
        if self.failures:
            return 1
        if self.detailed_exitcode and not self.applying and (self.drifted or any(sum(c.values()) for c in
                                                                                  self.changes.values())):
            return 2  # as Terraform's -refresh-only -detailed-exitcode: drift found is a change to record
        return 0

    def line(self, env: str) -> str:
        """One environment's result in the tense of the run: "would change" when planning, "changed" after."""
        if env in self.failures:
            return f"{env}: failed ({self.failures[env]})"
        counts = self.changes.get(env, Counter())
        total = sum(counts.values())
        if not total:
            return f"{env}: no changes" + ("" if self.applying else " needed")
        parts = ", ".join(f"{counts[a]} {a}d" if self.applying else f"{counts[a]} to {a}"
                          for a in ACTIONS if counts[a])
        noun = "change" if total == 1 else "changes"
        return f"{env}: {total} {noun} {'made' if self.applying else 'would be made'} ({parts})"

    def __str__(self) -> str:
        return "\n".join(self.line(env) for env in [*self.changes, *(e for e in self.failures if e not in
                                                                      self.changes)])


def open_project(directory: Path) -> Project:
    return load_project(directory)


def validate(project: Project, envs: list[Environment]) -> dict[str, Rendered]:
    """Render and check every template, and read each approvals trust file, for each environment; no network."""
    for env in envs:
        env.check_usable()
        if env.approvals.allowed_signers is not None:
            env.approvals.trust_list()
    if project.policies:
        from vboplan.policy import load_policies

        load_policies(project)  # every rule file parses, names known kinds and fields, and compiles
    return {env.name: render(project, env, offline=True) for env in envs}


def plan_one(project: Project, env: Environment, targets: tuple[str, ...] = (),
             allow_mass_delete: bool = False, *, excluded: tuple[str, ...] = (),
             refresh_only: bool = False) -> Outcome:
    """Render, read live, compare: the plan for ``env``."""
    outcome = Outcome(env)
    try:
        with connect(project, env) as client:
            try:
                outcome.plan = build_plan(project, env, client, targets, allow_mass_delete, excluded=excluded,
                                          refresh_only=refresh_only)
            finally:
                outcome.requests = client.request_count
    except VboplanError as exc:
        if f"'{env.name}'" not in str(exc):
            exc = type(exc)(f"environment '{env.name}': {exc}")
        outcome.error = exc
    return outcome


def build_plan(project: Project, env: Environment, client: VboClient, targets: tuple[str, ...] = (),
               allow_mass_delete: bool = False, *, excluded: tuple[str, ...] = (), refresh_only: bool = False) -> Plan:
    """Render ``env``'s templates and compare them with what ``client`` reads live."""
    progress.phase("rendering templates", env.name)
    rendered = render(project, env)
    store = StateStore(project, env)
    recorded = recorded_resources(store, client)
    log.info("planning %s against %s (API %s)", env.name, env.server, env.api_version)
    plan = make_plan(env, client, rendered, recorded, targets, allow_mass_delete, excluded, refresh_only)
    from vboplan.state.forget import forgotten_notes, last_read

    plan.notes = forgotten_notes(last_read(store), plan.scope)
    from vboplan.policy import attach

    attach(project, env, plan, rendered.resources)
    return plan


def plan_many(project: Project, envs: list[Environment], targets: tuple[str, ...] = (),
              allow_mass_delete: bool = False, *, excluded: tuple[str, ...] = (),
              refresh_only: bool = False, on_outcome: Callable[[Outcome], Outcome] | None = None) -> list[Outcome]:
    """Plan several environments at once (each against its own server), results in the order given. Each outcome
    goes through ``on_outcome`` in this thread as soon as it is made (to save it, say), and what that returns is
    kept: so a fleet's plans need not all be held whole at once."""
    if len(envs) == 1:
        done = plan_one(project, envs[0], targets, allow_mass_delete, excluded=excluded, refresh_only=refresh_only)
        return [on_outcome(done) if on_outcome else done]
    from vboplan.planning import parallel

    # Many servers: every core (the embedded emulators of ``emulator:NAME`` live in this process, so their
    # environments are planned here).
    remote = [env for env in envs if not env.emulator_name]
    workers = parallel.worker_count(len(remote))
    if workers > 1:
        done = {o.env.name: o for o in parallel.plan_in_processes(project, remote, targets, allow_mass_delete, workers,
                                                                  excluded=excluded, refresh_only=refresh_only,
                                                                  on_outcome=on_outcome)}
        local = [env for env in envs if env.emulator_name]
        done.update((o.env.name, o) for o in _plan_threads(project, local, targets, allow_mass_delete, excluded,
                                                            refresh_only, on_outcome))
        return [done[env.name] for env in envs]
    return _plan_threads(project, envs, targets, allow_mass_delete, excluded, refresh_only, on_outcome)


def _plan_threads(project: Project, envs: list[Environment], targets: tuple[str, ...], allow_mass_delete: bool,
                  excluded: tuple[str, ...], refresh_only: bool,
                  on_outcome: Callable[[Outcome], Outcome] | None = None) -> list[Outcome]:
    """Plan ``envs`` in this process, many at once within the memory budget; results in the order given."""
    if not envs:
        return []
    from vboplan.planning import parallel

    return parallel.plan_here(project, envs, targets, allow_mass_delete, excluded=excluded, refresh_only=refresh_only,
                              on_outcome=on_outcome)


def plan_report(outcomes: list[Outcome], detailed_exitcode: bool = False) -> Report:
    """The report of a ``plan`` run over ``outcomes``."""
    report = Report(detailed_exitcode=detailed_exitcode)
    for outcome in outcomes:
        if outcome.error is not None:
            report.failed(outcome.env.name, outcome.error)
        elif outcome.plan is not None:
            report.planned(outcome.env.name, outcome.plan)
            blocking = [v["rule"] for v in outcome.plan.verdicts if v.get("level") == "block" and not v.get("exception")]
            if blocking:
                report.failed(outcome.env.name, f"refused by policy: block rule {', '.join(blocking)}")
    return report


def plan_requests(path: Path) -> list[dict[str, Any]]:
    """``show --requests``: the requests apply would send for the plan file at ``path`` when every change is
    approved, in order, each ``{"changes", "method", "path", "body"}`` (secrets ``(sensitive)``). Derived from the
    file's rows and recorded live values, as apply derives them; a file whose rows say otherwise is refused."""
    from vboplan.planning.plan import planned_requests

    return planned_requests(Plan.load(path))


def state_rows(project: Project, env_name: str) -> tuple[dict[str, Any], list[tuple[str, Any]]]:
    """``state show``: the last snapshot of ``env_name`` and its ``(address, value)`` rows (secrets masked), each
    resource kind listing what it recorded."""
    from vboplan.kinds.registry import KINDS

    snapshot = StateStore(project, project.environment(env_name)).read()
    if snapshot is None:
        raise VboplanError(f"environment '{env_name}' has no state snapshot yet (nothing applied)")
    rows = [row for name, recorded in sorted(snapshot.get("resources", {}).items()) if name in KINDS
            for row in KINDS[name].state_rows(recorded)]
    return snapshot, rows


def import_environments(project: Project, envs: list[Environment], resources: tuple[str, ...] = (),
                        dry_run: bool = False) -> ImportResult:
    """Adopt live servers: read every managed kind (or ``resources``) from each environment, write templates and
    variable files that reproduce it (never replacing a file), then plan each environment; the result says what was
    written or skipped and, for anything the plan still shows, why. With ``dry_run`` nothing is written or planned.
    """
    from vboplan.project import importing
    result = importing.adopt(project, envs, resources, dry_run)
    if dry_run:
        return result
    reloaded = load_project(project.root)
    result.outcomes = plan_many(reloaded, [reloaded.environment(env.name) for env in envs])
    importing.explain(result)
    return result


def render_desired(project: Project, env: Environment, fmt: str = "yaml") -> str:
    """The desired settings of ``env`` as its templates render them, secrets masked, as YAML or JSON; no network.
    An unset secret renders as a stand-in (masked all the same), so this works on a laptop without them."""
    import json

    import yaml

    from vboplan.sensitive import MASK, Sensitive

    def plain(value: object) -> object:
        if isinstance(value, Sensitive):
            return MASK
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    desired = plain(render(project, env, offline=True).resources)
    if fmt == "json":
        return json.dumps(desired, indent=2, ensure_ascii=False) + "\n"
    header = f"# desired settings of environment '{env.name}' ({env.server}, API {env.api_version}); secrets masked\n"
    return header + yaml.safe_dump(desired, sort_keys=False, allow_unicode=True, default_flow_style=False)
