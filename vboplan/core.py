"""The library entry points behind each command; usable from Python without the CLI."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from . import progress
from .api.client import VboClient
from .connection import connect
from .errors import VboplanError
from .plan import Plan, make_plan
from .project import Environment, Project, load_project
from .render import Rendered, render
from .state import StateStore

log = logging.getLogger("vboplan")


@dataclass
class Outcome:
    """The result of one environment's run: a plan, or the error that stopped it."""

    env: Environment
    plan: Plan | None = None
    error: VboplanError | None = None
    requests: int = 0


def open_project(directory: Path) -> Project:
    return load_project(directory)


def validate(project: Project, envs: list[Environment]) -> dict[str, Rendered]:
    """Render and check every template for each environment; no network."""
    return {env.name: render(project, env, offline=True) for env in envs}


def plan_one(project: Project, env: Environment, targets: tuple[str, ...] = ()) -> Outcome:
    """Render, read live, compare: the plan for ``env``."""
    outcome = Outcome(env)
    try:
        with connect(project, env) as client:
            try:
                outcome.plan = build_plan(project, env, client, targets)
            finally:
                outcome.requests = client.request_count
    except VboplanError as exc:
        if f"'{env.name}'" not in str(exc):
            exc = type(exc)(f"environment '{env.name}': {exc}")
        outcome.error = exc
    return outcome


def build_plan(project: Project, env: Environment, client: VboClient, targets: tuple[str, ...] = ()) -> Plan:
    """Render ``env``'s templates and compare them with what ``client`` reads live."""
    progress.phase("rendering templates", env.name)
    rendered = render(project, env)
    recorded = StateStore(project, env).resources()
    log.info("planning %s against %s (API %s)", env.name, env.server, env.api_version)
    return make_plan(env, client, rendered, recorded, targets)


def plan_many(project: Project, envs: list[Environment], targets: tuple[str, ...] = ()) -> list[Outcome]:
    """Plan several environments at once (each against its own server), results in the order given."""
    if len(envs) == 1:
        return [plan_one(project, envs[0], targets)]
    with ThreadPoolExecutor(max_workers=min(len(envs), 8)) as pool:
        return list(pool.map(lambda env: plan_one(project, env, targets), envs))
