"""Markdown for pull-request comments and tickets: safe to paste, and short enough to post.

Every value sits in a code span (so ``*x*``, ``<b>`` or ``_x_`` in a subject stays text), with a fence longer than
any run of backticks inside it and ``|`` escaped (GitHub splits table cells on ``|`` even inside code spans). Rows
carry no alignment padding. A resource with many changes folds into ``<details>``. When the whole text would pass
:data:`LIMIT` characters (GitHub refuses comments over 65,536), the summary of every environment stays and only
the first rows are shown, with a line saying how to see the full plan.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from vboplan.output.html import FailedEnvironment, resource_of
from vboplan.planning.changes import ACTIONS, Change
from vboplan.planning.plan import Plan

LIMIT = 65_000
# A resource with more rows than this is folded into <details> (its heading still shows the count).
FOLD_ROWS = 10
_BACKTICKS = re.compile(r"`+")


def code(text: str) -> str:
    """``text`` as one inline code span that renders literally inside a GitHub table cell."""
    text = text.replace("\r\n", "\n").replace("\n", "\\n").replace("|", "\\|")
    longest = max((len(run) for run in _BACKTICKS.findall(text)), default=0)
    fence = "`" * (longest + 1)
    # A span that starts or ends with a backtick needs a space inside the fence (CommonMark strips one).
    pad = " " if text.startswith("`") or text.endswith("`") or (text.startswith(" ") and text.endswith(" ")) else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _counts(plan: Plan) -> str:
    tally = plan.counts()
    return ", ".join(f"{tally[action]} to {action}" for action in ACTIONS)


def _partial(plan: Plan) -> str:
    from vboplan.output import REFRESH_ONLY_NOTE, var_text

    lines = [f"**{REFRESH_ONLY_NOTE}**"] if getattr(plan, "refresh_only", False) else []
    targets = getattr(plan, "targets", None)
    if targets:
        lines.append("**Partial plan**: only changes at or under " + ", ".join(code(str(t)) for t in targets) + ".")
    excluded = getattr(plan, "excluded", None)
    if excluded:
        lines.append("**Partial plan**: changes at or under " + ", ".join(code(str(t)) for t in excluded)
                     + " are left out (`--exclude`).")
    if getattr(plan, "variables", None):
        lines.append(f"Variables set with `--var`: {code(var_text(plan.variables))}.")
    return "\n\n".join(lines)


class _Budget:
    """How many change rows may still be shown (None: all)."""

    def __init__(self, rows: int | None, cache: dict[Any, Any]) -> None:
        self.rows = rows
        self.hidden = 0
        # The row of each change and the grouping of each plan, made once however many times the text is tried.
        self.cache = cache

    def take(self) -> bool:
        if self.rows is None:
            return True
        if self.rows > 0:
            self.rows -= 1
            return True
        self.hidden += 1
        return False


def _plan_section(plan: Plan, budget: _Budget) -> list[str]:
    from vboplan.output import action_label, cells

    lines = [f"### Environment {plan.environment}: {code(plan.server)} (API {plan.api_version}): {_counts(plan)}", ""]
    if getattr(plan, "allow_mass_delete", False):
        lines += ["**Planned with `--allow-mass-delete`**: this plan may delete most audit items of an "
                  "organization.", ""]
    partial = _partial(plan)
    if partial:
        lines += [partial, ""]
    if not plan.changes:
        lines += [plan.summary(), ""]
    lines += markdown_verdicts(plan.verdicts, plan.policy_exceptions)
    lines += _reasons(plan)
    groups = _grouped(plan, budget)
    for resource, changes in groups.items():
        rows = []
        for change in changes:
            if not budget.take():
                continue
            row = budget.cache.get(id(change))
            if row is None:
                live, desired = cells(change)
                level = plan.severities[change.id].level
                shown = f"**{level}**" if level == "critical" else level
                row = _row([change.id, action_label(change), shown, code(str(change.address)), code(live), code(desired)])
                budget.cache[id(change)] = row
            rows.append(row)
        count = len(changes)
        title = f"{code(resource)}: {count} change{'s' if count != 1 else ''}"
        if not rows:
            lines += [f"{title} (not shown)", ""]
            continue
        table = [_row(["id", "action", "severity", "address", "live", "desired"]), "|---|---|---|---|---|---|", *rows]
        if len(rows) < count:
            table.append(f"\n{count - len(rows)} more change{'s' if count - len(rows) != 1 else ''} of "
                         f"{code(resource)} not shown.")
        if count > FOLD_ROWS:
            lines += [f"<details><summary>{_html_text(resource)}: {count} changes</summary>", "", *table, "",
                      "</details>", ""]
        else:
            lines += [f"#### {title}", "", *table, ""]
    if plan.drift:
        lines.append("**Changed outside vboplan since the last apply:**")
        lines.append("")
        from vboplan.output import drift_text, drift_values

        for drift in plan.drift:
            if drift.status:
                lines.append(f"- {code(str(drift.address))}: {drift_text(plan, drift, '→')}")
                continue
            recorded, live = drift_values(drift)
            lines.append(f"- {code(str(drift.address))}: {code(recorded)} → {code(live)}")
        lines.append("")
    if any(change.write_only for change in plan.changes):
        from vboplan.output import WRITE_ONLY_NOTE

        lines += [f"_{WRITE_ONLY_NOTE}_", ""]
    lines.append(f"Planned by {code(str(plan.created_by))} at {plan.created_at}; checksum {code(plan.checksum)}.")
    lines.append("")
    return lines


def _grouped(plan: Plan, budget: _Budget) -> dict[str, list[Change]]:
    """Changes by resource, critical ones first (and the resources that have them)."""
    from vboplan.policy.severity import critical_first

    cached: dict[str, list[Change]] | None = budget.cache.get(id(plan))
    if cached is None:
        cached = {}
        for change in critical_first(plan.changes, plan.severities):
            cached.setdefault(resource_of(change.address), []).append(change)
        budget.cache[id(plan)] = cached
    return cached


_LEVEL_WORDS = {"advisory": "advisory", "warn": "warning", "block": "**blocked**", "approve": "needs approvers"}


def markdown_verdicts(verdicts: list[dict[str, Any]], exceptions: list[dict[str, Any]],
                      blocked: str = "A block verdict stands: apply refuses this plan.") -> list[str]:
    """The policy verdicts as a table: level, rule, message, what it concerns, approvers and exception."""
    if not verdicts:
        return []
    lines = ["**Policy verdicts:**", "", _row(["level", "rule", "message", "objects", "changes", "notes"]),
             "|---|---|---|---|---|---|"]
    for verdict in verdicts:
        word = _LEVEL_WORDS.get(str(verdict.get("level")), code(str(verdict.get("level"))))
        exception = verdict.get("exception")
        objects = list(verdict.get("objects") or [])
        changes = list(verdict.get("changes") or [])
        notes = []
        approvers = verdict.get("approvers")
        if approvers and not exception:
            notes.append(f"needs {approvers.get('required')} approval(s) from "
                         f"{code(str(approvers.get('allowed_signers')))}")
        if exception:
            notes.append(f"waived: exception by {code(str(exception.get('owner')))} "
                         f"({code(str(exception.get('reason')))}), expires {exception.get('expires')}")
        notes += [code(str(note)) for note in verdict.get("notes") or []]
        lines.append(_row([word + (" (waived)" if exception else ""), code(str(verdict.get("rule"))),
                           code(str(verdict.get("message"))),
                           ", ".join(code(o) for o in objects[:10]) + (f" and {len(objects) - 10} more"
                                                                        if len(objects) > 10 else ""),
                           ", ".join(code(c) for c in changes[:20]) + (f" and {len(changes) - 20} more"
                                                                        if len(changes) > 20 else ""),
                           "; ".join(notes)]))
    if any(v.get("level") == "block" and not v.get("exception") for v in verdicts):
        lines += ["", f"**{blocked}**"]
    lines.append("")
    return lines


def _reasons(plan: Plan) -> list[str]:
    from vboplan.policy.severity import critical_first

    rated = plan.severities
    notable = [c for c in critical_first(plan.changes, rated) if rated[c.id].level != "info"][:20]
    if not notable:
        return []
    return ["**Critical and warning changes:**", "",
            *(f"- {c.id} **{rated[c.id].level}**: {code(rated[c.id].reason)}" for c in notable), ""]


def _html_text(text: str) -> str:
    from html import escape

    return f"<code>{escape(text)}</code>"


def failed_word(failed: FailedEnvironment) -> str:
    return "refused" if failed.refused else "failed to plan"


def _failed_section(failed: FailedEnvironment) -> list[str]:
    return [f"### Environment {failed.environment}: {code(failed.server)} (API {failed.api_version}): "
            f"{failed_word(failed)}", "", f"**Error:** {code(failed.error)}", ""]


def _requests_section(plan: Plan, budget: _Budget) -> list[str]:
    """The requests apply sends, folded in ``<details>``; within the row budget like the changes (one request a
    row), the rest counted."""
    from vboplan.output import REQUESTS_TITLE, request_body, request_line
    from vboplan.planning.plan import planned_requests

    requests = budget.cache.get(("requests", id(plan)))
    if requests is None:
        requests = budget.cache[("requests", id(plan))] = planned_requests(plan)  # type: ignore[index]
    if not requests:
        return []
    lines = [f"<details><summary>{REQUESTS_TITLE} ({len(requests)}); secrets as (sensitive)</summary>", ""]
    hidden = 0
    for request in requests:
        if not budget.take():
            hidden += 1
            continue
        lines.append(f"- {', '.join(code(i) for i in request['changes'])}: {code(request_line(request))}")
        body = request_body(request, indent=2)
        if body:
            fence = "`" * max(3, max((len(run) for run in _BACKTICKS.findall(body)), default=0) + 1)
            lines += ["", f"  {fence}json", *(f"  {line}" for line in body.splitlines()), f"  {fence}", ""]
    if hidden:
        lines.append(f"\n{hidden} more request{'s' if hidden != 1 else ''} not shown.")
    return [*lines, "", "</details>", ""]


def _render(results: Sequence[Plan | FailedEnvironment], rows: int | None, hint: str,
            cache: dict[Any, Any], requests: bool = False) -> tuple[str, int]:
    budget = _Budget(rows, cache)
    body: list[str] = []
    for result in results:
        if isinstance(result, FailedEnvironment):
            body += _failed_section(result)
            continue
        body += _plan_section(result, budget)
        if requests:
            body += _requests_section(result, budget)
    head: list[str] = []
    if len(results) > 1:
        head += ["| environment | server | " + " | ".join(ACTIONS) + " |", "|---" * (len(ACTIONS) + 2) + "|"]
        for result in results:
            if isinstance(result, FailedEnvironment):
                head.append(_row([result.environment, code(result.server), failed_word(result),
                                  *[""] * (len(ACTIONS) - 1)]))
            else:
                tally = result.counts()
                head.append(_row([result.environment, code(result.server),
                                  *(str(tally[action]) for action in ACTIONS)]))
        head.append("")
    if budget.hidden:
        total = sum(len(r.changes) for r in results if isinstance(r, Plan))
        head += [f"> **This plan is too long for one comment:** showing the first {total - budget.hidden} of "
                 f"{total} changes. {hint}", ""]
    return "\n".join(head + body).rstrip("\n") + "\n", budget.hidden


def render_markdown(results: Sequence[Plan | FailedEnvironment], limit: int = LIMIT,
                    full_plan_hint: str | None = None, requests: bool = False) -> str:
    """The Markdown of a run (one section per environment), at most ``limit`` characters; with ``requests``, each
    plan's requests in a folded section after its changes."""
    hint = full_plan_hint or ("See the full plan with `vboplan show PLANFILE` or `vboplan plan --format json`.")
    cache: dict[Any, Any] = {}
    text, _ = _render(results, None, hint, cache, requests)
    if len(text) <= limit:
        return text
    # The most rows that fit: the length grows with the rows shown, so a binary search finds it.
    low, high = 0, sum(len(r.changes) for r in results if isinstance(r, Plan))
    if requests:
        high *= 2  # at most one request a change
    best, _ = _render(results, 0, hint, cache, requests)
    while low <= high:
        middle = (low + high) // 2
        candidate, _ = _render(results, middle, hint, cache, requests)
        if len(candidate) <= limit:
            best, low = candidate, middle + 1
        else:
            high = middle - 1
    return best
