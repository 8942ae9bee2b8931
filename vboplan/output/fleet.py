"""The output of a run over many environments: environments whose changes are identical form one block, the
fleet's alignment (environments with no changes / all) is stated, and environments that failed are listed apart.

A group is keyed by the changes a reviewer sees: each change's address, action, and before and after values (a
sensitive value counts as the mask every view shows). The table names a group's size and its first few
environments; Markdown, HTML and JSON name them all. ``vboplan report`` prints the same for saved plan files.

Policy verdicts are per environment (rules are scoped by name and label, so two environments with identical changes
may have different verdicts): they are not shown inside a group's block but in a section of their own, where
environments with identical verdicts are one entry naming every one of them, followed by the fleet's totals.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from html import escape
from typing import Any

from vboplan.output.html import FailedEnvironment
from vboplan.output.wording import printable
from vboplan.planning.changes import ACTIONS
from vboplan.planning.plan import Plan
from vboplan.sensitive import MASK

#: How many environment names the table prints for a group before "and N more".
TABLE_NAMES = 5


@dataclass
class Group:
    """Environments whose plans hold identical changes; ``plan`` is the first of them, shown for all."""

    plan: Plan
    environments: list[str] = field(default_factory=list)

    @property
    def converged(self) -> bool:
        return not self.plan.changes


@dataclass
class VerdictGroup:
    """Environments whose plans carry identical policy verdicts (and exceptions used)."""

    verdicts: list[dict[str, Any]]
    exceptions: list[dict[str, Any]]
    environments: list[str] = field(default_factory=list)


@dataclass
class AuthorGroup:
    """Plans (``vboplan report``) whose author signature was found alike: ``problem`` None when a listed key
    proves ``who`` wrote them, else why it does not; ``refuses`` when apply refuses such a plan there (its
    environment needs approvals, and so a proven author)."""

    who: str
    problem: str | None
    refuses: bool
    environments: list[str] = field(default_factory=list)


#: The levels of a rule, in the order totals name them.
LEVELS = ("block", "approve", "warn", "advisory")


@dataclass
class Fleet:
    """Plans grouped by identical changes, the environments that could not be planned, and the policy verdicts."""

    groups: list[Group]
    failed: list[FailedEnvironment]
    policy: list[VerdictGroup] = field(default_factory=list)
    authors: list[AuthorGroup] | None = None  # what report found of each plan's author (None: not checked)

    def policy_totals(self) -> dict[str, Any]:
        """Verdicts per level over every environment (one per rule and environment), how many an exception
        waived, and the environments a standing block verdict stops."""
        total: Counter[str] = Counter()
        waived = 0
        blocked: list[str] = []
        for entry in self.policy:
            n = len(entry.environments)
            for verdict in entry.verdicts:
                total[str(verdict.get("level"))] += n
                waived += n if verdict.get("exception") else 0
            if any(standing_block(v) for v in entry.verdicts):
                blocked += entry.environments
        return {**{level: total[level] for level in LEVELS}, "waived": waived,
                "environments": sum(len(e.environments) for e in self.policy), "blocked": sorted(blocked)}

    @property
    def size(self) -> int:
        return sum(len(g.environments) for g in self.groups) + len(self.failed)

    @property
    def aligned(self) -> int:
        return sum(len(g.environments) for g in self.groups if g.converged)

    @property
    def alignment(self) -> str:
        return f"aligned: {self.aligned}/{self.size}"

    def totals(self) -> dict[str, int]:
        """Changes per action over every environment (a group counts once per environment in it)."""
        total: Counter[str] = Counter()
        for group in self.groups:
            for action, count in group.plan.counts().items():
                total[action] += count * len(group.environments)
        return {action: total[action] for action in ACTIONS}

    def environments(self) -> list[str]:
        return sorted([name for g in self.groups for name in g.environments] + [f.environment for f in self.failed])


def change_key(plan: Plan) -> str:
    """What makes two plans' changes identical: addresses, actions, before and after values (sensitive masked)."""
    records = [(str(c.address), c.action, MASK if c.sensitive else c.before, MASK if c.sensitive else c.after)
               for c in plan.changes]
    text = json.dumps(records, sort_keys=True, default=str, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def standing_block(verdict: dict[str, Any]) -> bool:
    """A ``block`` verdict no exception waives: apply refuses the plan."""
    return verdict.get("level") == "block" and not verdict.get("exception")


def _verdict_key(plan: Plan) -> str:
    """What makes two plans' verdicts identical: every field but the rule's file:line."""
    records = [{k: v for k, v in verdict.items() if k != "source"} for verdict in plan.verdicts]
    text = json.dumps([records, plan.policy_exceptions], sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def group(results: Sequence[Plan | FailedEnvironment]) -> Fleet:
    """Group ``results``: groups with changes first (largest first, then by first name), converged last; the
    verdicts grouped apart (blocking ones first, then the largest)."""
    groups: dict[str, Group] = {}
    policy: dict[str, VerdictGroup] = {}
    failed = []
    for result in results:
        if isinstance(result, FailedEnvironment):
            failed.append(result)
            continue
        # The block shows the changes only; the verdicts, the environment's own, are listed by environment.
        shown = replace(result, verdicts=[], policy_exceptions=[]) if result.verdicts else result
        groups.setdefault(change_key(result), Group(shown)).environments.append(result.environment)
        if result.verdicts:
            policy.setdefault(_verdict_key(result), VerdictGroup(result.verdicts, result.policy_exceptions)) \
                .environments.append(result.environment)
    for entry in [*groups.values(), *policy.values()]:
        entry.environments.sort()
    ordered = sorted(groups.values(), key=lambda g: (g.converged, -len(g.environments), g.environments[0]))
    rules = sorted(policy.values(), key=lambda v: (not any(standing_block(x) for x in v.verdicts),
                                                    -len(v.environments), v.environments[0]))
    return Fleet(ordered, sorted(failed, key=lambda f: f.environment), rules)


def _names(names: list[str], limit: int | None) -> str:
    if limit is None or len(names) <= limit:
        return ", ".join(names)
    return f"{', '.join(names[:limit])} and {len(names) - limit} more"


def _title(group: Group, limit: int | None) -> str:
    count = len(group.environments)
    what = "no changes" if group.converged else "identical changes"
    return f"{count} environments ({_names(group.environments, limit)}): {what}"


def _counts(plan: Plan) -> str:
    tally = plan.counts()
    return ", ".join(f"{tally[action]} to {action}" for action in ACTIONS)


def policy_line(fleet: Fleet) -> str:
    """The fleet's verdicts in one line (empty when no rule gave any)."""
    if not fleet.policy:
        return ""
    totals = fleet.policy_totals()
    count = sum(totals[level] for level in LEVELS)
    blocked = totals["blocked"]
    return (f"Policy: {count} verdict{'s' if count != 1 else ''} in {totals['environments']} environments: "
            + ", ".join(f"{totals[level]} {level}" for level in LEVELS)
            + (f"; {totals['waived']} waived by exceptions" if totals["waived"] else "")
            + (f"; a block verdict stands in {len(blocked)} ({', '.join(blocked)}): apply refuses their plans"
               if blocked else "") + ".")


def _policy_title(entry: VerdictGroup) -> str:
    count = len(entry.environments)
    return f"Policy verdicts of {count} environment{'s' if count != 1 else ''}: {', '.join(entry.environments)}"


def author_line(fleet: Fleet, limit: int | None = None) -> str:
    """Who wrote the plans, as their signatures prove it (empty when not checked)."""
    parts = []
    for entry in fleet.authors or []:
        names, count = _names(entry.environments, limit), len(entry.environments)
        if entry.problem is None:
            parts.append(f"{count} proven, signed by {entry.who} ({names})")
        else:
            parts.append(f"{count} not proven ({names}): {entry.problem}"
                         + ("; apply refuses them, as their environments need approvals" if entry.refuses else ""))
    return printable("Authors: " + "; ".join(parts) + ".") if parts else ""


def fleet_line(fleet: Fleet) -> str:
    """One line on the whole fleet: its alignment, and how the rest splits."""
    changed = sum(len(g.environments) for g in fleet.groups if not g.converged)
    groups = sum(1 for g in fleet.groups if not g.converged)
    refused = sum(1 for f in fleet.failed if f.refused)
    totals = fleet.totals()
    return (f"Fleet: {fleet.size} environments, {fleet.alignment} ({fleet.aligned} with no changes, {changed} with "
            f"changes in {groups} group{'s' if groups != 1 else ''}, {len(fleet.failed) - refused} failed"
            + (f", {refused} refused" if refused else "") + "); in all "
            + ", ".join(f"{totals[a]} to {a}" for a in ACTIONS) + ".")


# -- table ------------------------------------------------------------------------------------------------------

def render_table(fleet: Fleet, color: bool) -> str:
    """The terminal view: each group once (a lone environment exactly as a plan of its own), then the failures."""
    import click

    from vboplan.output import render_table as plan_table

    blocks = []
    for entry in fleet.groups:
        text = plan_table(entry.plan, color)
        if len(entry.environments) > 1:
            title = _title(entry, TABLE_NAMES)
            text = (click.style(title, bold=True) if color else title) + "\n" + text.split("\n", 1)[1]
        blocks.append(text)
    from vboplan.output import verdict_lines

    for entry in fleet.policy:
        lines = verdict_lines(entry.verdicts, entry.exceptions, "A block verdict stands: apply refuses their plans.")
        blocks.append("\n".join([f"{_policy_title(entry)}:", *lines[2:]]))
    for refused, heading in ((False, "Failed to plan"), (True, "Refused")):
        listed = [f for f in fleet.failed if f.refused is refused]
        if listed:
            lines = [f"{heading} ({len(listed)}):"]
            lines += [f"  {f.environment} ({f.server}): {f.error}" for f in listed]  # FailedEnvironment escapes
            blocks.append("\n".join(lines) + "\n")
    blocks.append("".join(line + "\n" for line in (fleet_line(fleet), policy_line(fleet),
                                                   author_line(fleet, TABLE_NAMES)) if line))
    return "\n".join(blocks)


# -- Markdown -----------------------------------------------------------------------------------------------------

def render_markdown(fleet: Fleet, hint: str | None = None) -> str:
    """Markdown for a pull request or ticket: the fleet's summary, then each group once with all its names."""
    from vboplan.output import markdown

    code = markdown.code
    head = [f"## Fleet: {fleet.size} environments, {fleet.alignment}", "",
            "| environments | " + " | ".join(ACTIONS) + " |", "|---" * (len(ACTIONS) + 1) + "|"]
    for entry in fleet.groups:
        tally = entry.plan.counts()
        names = ", ".join(code(n) for n in entry.environments)
        head.append(f"| {len(entry.environments)}: {names} | " + " | ".join(str(tally[a]) for a in ACTIONS) + " |")
    for failed in fleet.failed:
        head.append(f"| 1: {code(failed.environment)} | {markdown.failed_word(failed)} |" + " |" * (len(ACTIONS) - 1))
    head.append("")
    totals = fleet.totals()
    head += ["In all: " + ", ".join(f"{totals[a]} to {a}" for a in ACTIONS) + ".", ""]
    if fleet.policy:
        head += [policy_line(fleet), ""]
    if fleet.authors:
        head += [author_line(fleet), ""]
    body: list[str] = []
    budget = markdown._Budget(None, {})
    for entry in fleet.groups:
        section = markdown._plan_section(entry.plan, budget)
        if len(entry.environments) > 1:
            names = ", ".join(entry.environments)
            section = [f"### {len(entry.environments)} environments: {names}: {_counts(entry.plan)}",
                       *(line for line in section[1:] if not line.startswith("Planned by "))]
        body += section
    for verdicts in fleet.policy:
        names = ", ".join(code(n) for n in verdicts.environments)
        body += [f"### Policy verdicts of {len(verdicts.environments)}: {names}", "",
                 *markdown.markdown_verdicts(verdicts.verdicts, verdicts.exceptions,
                                             "A block verdict stands: apply refuses their plans.")[2:]]
    for failed in fleet.failed:
        body += markdown._failed_section(failed)
    text = "\n".join(head + body).rstrip("\n") + "\n"
    if len(text) > markdown.LIMIT:
        more = hint or "See each environment's plan with `vboplan show PLANFILE`."
        text = "\n".join(head + [f"> **This report is too long for one comment:** only the summary is shown. {more}",
                                 ""])
    return text


# -- HTML ---------------------------------------------------------------------------------------------------------

def render_html(fleet: Fleet, generated_at: str | None = None) -> str:
    """One self-contained page: the fleet's summary, each group once with all its names, the failures."""
    from vboplan.output import html
    from vboplan.state import now

    rows = []
    for entry in fleet.groups:
        tally = entry.plan.counts()
        names = ", ".join(f"<code>{escape(n)}</code>" for n in entry.environments)
        rows.append(f"<tr><td>{len(entry.environments)}: {names}</td>"
                    + "".join(f"<td>{tally[a]}</td>" for a in ACTIONS) + "</tr>")
    for failed in fleet.failed:
        rows.append(f'<tr><td>1: <code>{escape(failed.environment)}</code></td>'
                    f'<td colspan="{len(ACTIONS)}" class="status-bad">'
                    f'{"refused" if failed.refused else "failed to plan"}</td></tr>')
    body = [f"<header><h1>vboplan fleet: {fleet.size} environments, {escape(fleet.alignment)}</h1>",
            f'<p class="muted">Report generated {escape(generated_at or now())}. Values of sensitive settings are '
            "never shown.</p></header>",
            '<table class="overview"><thead><tr><th>environments</th>'
            + "".join(f"<th>to {a}</th>" for a in ACTIONS) + "</tr></thead><tbody>" + "".join(rows)
            + "</tbody></table>", f"<p><strong>{escape(fleet_line(fleet))}</strong></p>"]
    if fleet.policy:
        body.append(f'<p class="policy"><strong>{escape(policy_line(fleet))}</strong></p>')
    if fleet.authors:
        body.append(f'<p class="authors"><strong>{escape(author_line(fleet))}</strong></p>')
    for entry in fleet.groups:
        section = html._plan_section(entry.plan, html.recorded_status)
        if len(entry.environments) > 1:
            names = ", ".join(entry.environments)
            start = section.index("<h2>")
            end = section.index("</h2>") + len("</h2>")
            section = (section[:start] + f"<h2>{len(entry.environments)} environments: {escape(names)}</h2>"
                       + f"<p>{escape(_counts(entry.plan))}, identical on each.</p>" + section[end:])
        body.append(section)
    for verdicts in fleet.policy:
        body.append(f'<section class="policy"><h2>{escape(_policy_title(verdicts))}</h2>'
                    + html.html_verdicts(verdicts.verdicts) + "</section>")
    body += [html._failed_section(failed) for failed in fleet.failed]
    return html.page(f"vboplan fleet: {fleet.alignment}", "\n".join(body))


# -- JSON ---------------------------------------------------------------------------------------------------------

def summary_document(fleet: Fleet) -> dict[str, Any]:
    """The fleet part of ``--format json`` and of ``vboplan report --format json`` (which adds ``authors``)."""
    authors = {} if fleet.authors is None else {"authors": [
        {"environments": g.environments, "proven": g.problem is None, "signer": g.who or None, "problem": g.problem,
         "apply_refuses": g.refuses} for g in fleet.authors]}
    return {
        "environments": fleet.environments(), "aligned": fleet.aligned, "size": fleet.size,
        "alignment": f"{fleet.aligned}/{fleet.size}", "totals": fleet.totals(),
        "groups": [{"environments": g.environments, "summary": dict(zip(ACTIONS, map(g.plan.counts().__getitem__,
                                                                                      ACTIONS), strict=True)),
                    "changes": [{k: r[k] for k in ("id", "address", "action", "before", "after", "sensitive")}
                                for r in g.plan.change_records()]} for g in fleet.groups],
        "failed": [{"environment": f.environment, "server": f.server, "error": f.error,
                    **({"refused": True} if f.refused else {})} for f in fleet.failed],
        "policy": {"totals": fleet.policy_totals(),
                   "groups": [{"environments": v.environments, "verdicts": v.verdicts, "exceptions": v.exceptions}
                              for v in fleet.policy]},
        **authors,
    }


def render(results: Sequence[Plan | FailedEnvironment], fmt: str, color: bool = False,
           hint: str | None = None, authors: list[AuthorGroup] | None = None) -> str:
    """The fleet report of ``results`` in ``fmt`` (table, markdown, html, json), with what ``authors`` found."""
    fleet = replace(group(results), authors=authors)
    if fmt == "json":
        from vboplan.jsontext import document_text

        return document_text({"format_version": 1, **summary_document(fleet)}, default=str)
    if fmt == "markdown":
        return render_markdown(fleet, hint)
    if fmt == "html":
        return render_html(fleet)
    return render_table(fleet, color)
