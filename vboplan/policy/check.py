"""``vboplan check``: the rules over the desired state (and, unless offline, the live server), without a plan.

Offline it needs neither a server nor credentials nor secrets (an unset secret renders as a stand-in, masked all
the same), so CI can run it on every pull request. Rules that name ``change`` need a plan and are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from typing import Any

from vboplan.errors import VboplanError
from vboplan.policy.evaluate import Evaluation, evaluate
from vboplan.policy.rules import Policies, load_policies
from vboplan.project.config import Environment, Project

CHECK_FORMAT_VERSION = 1


@dataclass
class Checked:
    """One environment's check."""

    env: Environment
    offline: bool
    evaluation: Evaluation = field(default_factory=Evaluation)
    rules: int = 0
    error: str | None = None

    @property
    def blocked(self) -> bool:
        return self.error is not None or self.evaluation.blocked

    def document(self) -> dict[str, Any]:
        return {"environment": self.env.name, "server": self.env.server, "offline": self.offline,
                "rules": self.rules, "verdicts": self.evaluation.records(),
                "exceptions": self.evaluation.exceptions(), "skipped_rules": self.evaluation.skipped,
                "error": self.error}


def check(project: Project, envs: list[Environment], offline: bool) -> list[Checked]:
    """Evaluate the project's rules on each of ``envs``: over the rendered templates, and the live server unless
    ``offline``. An environment that cannot be rendered or read is reported with its error."""
    if not project.policies:
        raise VboplanError("vboplan.yaml lists no policies: add 'policies: [policies/*.yaml]' or "
                           "'policies: [\"builtin:recommended\"]'")
    policies = load_policies(project)
    return [_check_one(project, policies, env, offline) for env in envs]


def _check_one(project: Project, policies: Policies, env: Environment, offline: bool) -> Checked:
    from vboplan.project.render import render

    checked = Checked(env, offline, rules=len(policies.for_env(env)))
    try:
        rendered = render(project, env, offline=offline)
        live = None if offline else _read_live(project, env, rendered.resources)
        checked.evaluation = evaluate(policies, env, rendered.resources, live, None)
    except VboplanError as exc:
        checked.error = str(exc) if f"'{env.name}'" in str(exc) else f"environment '{env.name}': {exc}"
    return checked


def _read_live(project: Project, env: Environment, desired: dict[str, Any]) -> dict[str, Any]:
    """The live values the templates concern, as a plan keeps them (secrets hashed, long lists condensed)."""
    from vboplan.connection import connect
    from vboplan.kinds.registry import KINDS
    from vboplan.planning.plan import condensed, read_live
    from vboplan.sensitive import conceal_live

    names = [name for name in KINDS if name in desired]
    scope = {name: KINDS[name].scope(desired[name]) for name in names}
    with connect(project, env) as client:
        reads = read_live(client, scope)
    return {name: condensed(name, conceal_live(reads[name], desired[name])[0]) for name in names}


# -- output ---------------------------------------------------------------------------------------------------------


def render_check(results: list[Checked], fmt: str) -> str:
    if fmt == "json":
        from vboplan.jsontext import document_text

        return document_text({"format_version": CHECK_FORMAT_VERSION, "environments": [r.document() for r in results],
                              "blocked": any(r.blocked for r in results)})
    if fmt == "markdown":
        return _markdown(results)
    if fmt == "html":
        return _html(results)
    return _table(results)


_BLOCKED = "A block verdict stands: check fails."


def _heading(result: Checked) -> str:
    how = "templates only (offline)" if result.offline else "templates and live server"
    return f"Environment {result.env.name}: {result.env.server} ({how}; {result.rules} rules)"


def _tally(result: Checked) -> str:
    if result.error:
        return f"failed: {result.error}"
    verdicts = result.evaluation.verdicts
    if not verdicts:
        line = "Every rule holds."
    else:
        counts: dict[str, int] = {}
        for verdict in verdicts:
            key = f"{verdict.level} (waived)" if verdict.exception else verdict.level
            counts[key] = counts.get(key, 0) + 1
        line = "Verdicts: " + ", ".join(f"{n} {level}" for level, n in counts.items()) + "."
    if result.evaluation.skipped:
        line += f" Skipped (they judge planned changes): {', '.join(result.evaluation.skipped)}."
    return line


def _table(results: list[Checked]) -> str:
    from vboplan.output import verdict_lines

    lines: list[str] = []
    for result in results:
        lines.append(_heading(result))
        lines += verdict_lines(result.evaluation.records(), result.evaluation.exceptions(), _BLOCKED)
        lines.append(_tally(result))
        lines.append("")
    return "\n".join(lines)


def _markdown(results: list[Checked]) -> str:
    from vboplan.output.markdown import code, markdown_verdicts

    lines = ["| environment | server | rules | block | warn | advisory | approve | waived |",
             "|---|---|---|---|---|---|---|---|"]
    for result in results:
        standing = [v for v in result.evaluation.verdicts if v.stands]
        counts = [str(sum(v.level == level for v in standing)) for level in ("block", "warn", "advisory", "approve")]
        waived = str(len(result.evaluation.verdicts) - len(standing))
        lines.append(f"| {result.env.name} | {code(result.env.server)} | {result.rules} | "
                     + (" | ".join([*counts, waived]) if not result.error else "failed | | | | ") + " |")
    lines.append("")
    for result in results:
        lines += [f"### {_heading(result).replace(result.env.server, code(result.env.server))}", ""]
        lines += markdown_verdicts(result.evaluation.records(), result.evaluation.exceptions(), _BLOCKED)
        lines += [code(_tally(result)) if result.error else _tally(result), ""]
    return "\n".join(lines)


def _html(results: list[Checked]) -> str:
    from vboplan.output.html import html_verdicts, page

    sections = []
    for result in results:
        sections.append(f"<section><h2>{escape(_heading(result))}</h2>"
                        + html_verdicts(result.evaluation.records())
                        + f"<p><strong>{escape(_tally(result))}</strong></p></section>")
    return page("vboplan check", "\n".join(sections))


def exit_code(results: list[Checked]) -> int:
    return 1 if any(r.blocked for r in results) else 0


__all__ = ["Checked", "check", "exit_code", "render_check"]
