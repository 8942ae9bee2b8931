"""Plan outputs: a terminal table, Markdown for a change ticket, versioned JSON. Each is a pure function of a plan."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from vboplan.cli.formats import FORMATS as FORMATS  # re-exported: where the renderers are
from vboplan.output.wording import printable
from vboplan.planning.changes import Change, Drift
from vboplan.sensitive import MASK, Sensitive

if TYPE_CHECKING:
    from vboplan.planning.plan import Plan

_COLORS = {"create": "green", "update": "yellow", "replace": "magenta", "delete": "red"}
SYMBOLS = {"create": "+", "update": "~", "replace": "-/+", "delete": "-"}


def action_label(change: Change) -> str:
    """The action column of every view: ``-/+ replace`` says at a glance that the object goes and comes back."""
    return f"{SYMBOLS[change.action]} {change.action}" if change.action == "replace" else change.action


def format_value(value: Any) -> str:
    """A live or desired value as a reviewer reads it."""
    if isinstance(value, Sensitive):
        return MASK
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return printable(value if value.strip() == value and value else json.dumps(value))
    if isinstance(value, (dict, list)):
        return printable(json.dumps(value, sort_keys=True, ensure_ascii=False))
    return str(value)


def cells(change: Change) -> tuple[str, str]:
    """The live and desired columns of a change."""
    if change.write_only:
        after = f"{MASK} will change" if change.recorded else f"{MASK} will be set"
        return "(write-only)", after
    if change.sensitive:
        return (MASK if change.action != "create" else "-"), (MASK if change.action != "delete" else "-")
    before = "-" if change.action == "create" else format_value(change.before)
    if change.action == "delete" and change.before == {} and change.detail.get("id"):
        # An object whose every field is its key or write-only (an encryption key): which one, by its id.
        before = f"(no readable fields; id {change.detail['id']})"
    after = "-" if change.action == "delete" else format_value(change.after)
    if change.detail.get("moves_to"):
        # Moved from the old object onto its replacement, which has the same key (create_before_destroy).
        return f"{before} (the old one)", f"{after} (the new one, id known after apply)"
    return before, after


def header(plan: Plan) -> str:
    return f"Environment {plan.environment}: {plan.server} (API {plan.api_version})"


def var_text(variables: dict[str, Any]) -> str:
    """``--var`` values as a plan records them, as they were typed (``smtp.port=25``)."""
    return ", ".join(f"{key}={value if isinstance(value, str) else json.dumps(value)}"
                     for key, value in variables.items())


def render_table(plan: Plan, color: bool, width: int | None = None) -> str:
    """The terminal view; long addresses and values wrap to fit ``width`` (default: the terminal's)."""
    from vboplan.output.fit import fit_rows, terminal_width

    room = width if width is not None else terminal_width()
    lines = [click.style(header(plan), bold=True) if color else header(plan)]
    if plan.targets:
        lines.append(f"Partial plan: only changes at or under {', '.join(plan.targets)}.")
    if getattr(plan, "refresh_only", False):
        lines.append(_folded(REFRESH_ONLY_NOTE, room))
    if getattr(plan, "excluded", None):
        lines.append(_folded(f"Partial plan: changes at or under {', '.join(plan.excluded)} are left out "
                             "(--exclude).", room))
    if getattr(plan, "variables", None):
        lines.append(_folded(f"Variables set with --var: {var_text(plan.variables)}.", room))
    if plan.allow_mass_delete:
        lines.append("Planned with --allow-mass-delete: this plan may delete most audit items of an organization.")
    if plan.changes:
        from vboplan.policy.severity import critical_first

        rows = []
        rated = plan.severities
        for change in critical_first(plan.changes, rated):
            action = f"{SYMBOLS[change.action]} {change.action}"
            if color:
                action = click.style(action, fg=_COLORS[change.action])
            level = rated[change.id].level
            if color and level != "info":
                level = click.style(level, fg=_SEVERITY_COLORS[level], bold=level == "critical")
            rows.append([change.id, action, level, str(change.address), *cells(change)])
        from vboplan.output.columns import simple_table

        headers = ["id", "action", "severity", "address", "live", "desired"]
        rows = fit_rows(rows, headers, room, address=3, values=(4, 5))
        lines.append(simple_table(rows, headers))  # tabulate's "simple" layout, without its per-cell type inference
    lines.extend(wrapped(severity_lines(plan) + verdict_lines(plan.verdicts, plan.policy_exceptions), room))
    lines.extend(_drift_lines(plan))
    lines.append(plan.summary())
    if any(change.write_only for change in plan.changes):
        lines.append(_folded(WRITE_ONLY_NOTE, room))  # after the summary: the table ends where the summary starts
    return "\n".join(lines) + "\n"


def _folded(text: str, width: int | None) -> str:
    """A note wrapped at spaces to fit ``width`` (None: a pipe, left whole)."""
    import textwrap

    return textwrap.fill(text, width - 1, break_long_words=False, break_on_hyphens=False) if width else text


#: The line every view of a refresh-only plan starts with.
REFRESH_ONLY_NOTE = ("Refresh-only plan: applying it records the server's current values in the state (what changed "
                     "outside vboplan, below, is accepted); nothing is sent to the server.")

#: Said wherever a write-only value is planned or shown: nobody expects a changed password to go unseen.
WRITE_ONLY_NOTE = ("(write-only): the API never returns this value (a password), so a change made to it on the "
                   "server, in the console say, cannot be detected; vboplan compares with the salted hash of the "
                   "value it last set.")


_SEVERITY_COLORS = {"warning": "yellow", "critical": "red"}


def wrapped(lines: list[str], width: int | None) -> list[str]:
    """``lines`` folded to ``width`` (None: as they are), continuation lines indented under their text."""
    if width is None:
        return lines
    import textwrap

    result = []
    for line in lines:
        if len(line) < width:
            result.append(line)
            continue
        indent = " " * (len(line) - len(line.lstrip()) + 4)
        result += textwrap.wrap(line, width - 1, subsequent_indent=indent, break_on_hyphens=False,
                                break_long_words=True) or [line]
    return result


def severity_lines(plan: Plan) -> list[str]:
    """Why each warning and critical change is rated so (info changes need no reason)."""
    rated = plan.severities
    from vboplan.policy.severity import critical_first

    notable = [c for c in critical_first(plan.changes, rated) if rated[c.id].level != "info"]
    if not notable:
        return []
    lines = ["Severity:"]
    lines += [f"  {c.id} {rated[c.id].level}: {rated[c.id].reason}" for c in notable[:_REASONS]]
    if len(notable) > _REASONS:
        lines.append(f"  ... and {len(notable) - _REASONS} more (see --format json)")
    return lines


_REASONS = 50
_LEVEL_WORDS = {"advisory": "advisory", "warn": "warning", "block": "BLOCKED", "approve": "needs approvers"}


def verdict_lines(verdicts: list[dict[str, Any]], exceptions: list[dict[str, Any]],
                  blocked: str = "A block verdict stands: apply refuses this plan.") -> list[str]:
    """The policy verdicts of a plan (or a check): one block per rule."""
    if not verdicts:
        return []
    lines = ["", "Policy verdicts:"]
    for verdict in verdicts:
        level = str(verdict.get("level"))
        word = _LEVEL_WORDS.get(level, level)
        exception = verdict.get("exception")
        if exception:
            word = f"{word}, waived"
        lines.append(f"  [{word}] {verdict.get('rule')}: {verdict.get('message')}")
        objects = list(verdict.get("objects") or [])
        if objects:
            shown = ", ".join(objects[:5]) + (f" and {len(objects) - 5} more" if len(objects) > 5 else "")
            lines.append(f"      objects: {shown}")
        changes = list(verdict.get("changes") or [])
        if changes:
            shown = ", ".join(changes[:10]) + (f" and {len(changes) - 10} more" if len(changes) > 10 else "")
            lines.append(f"      changes: {shown}")
        approvers = verdict.get("approvers")
        if approvers and not exception:
            lines.append(f"      needs {approvers.get('required')} approval(s) from {approvers.get('allowed_signers')}"
                         " besides the environment's approvers")
        if exception:
            lines.append(f"      exception by {exception.get('owner')} ({exception.get('reason')}), expires "
                         f"{exception.get('expires')}")
        lines += [f"      note: {note}" for note in verdict.get("notes") or []]
    if exceptions:
        lines.append("Exceptions used: " + "; ".join(f"{e.get('rule')} by {e.get('owner')} ({e.get('reason')}), "
                                                       f"expires {e.get('expires')}" for e in exceptions))
    if any(v.get("level") == "block" and not v.get("exception") for v in verdicts):
        lines.append(blocked)
    lines.append("")
    return lines


def _drift_lines(plan: Plan) -> list[str]:
    if not plan.drift:
        return []
    title = "Changed outside vboplan since the last apply:"
    lines = [title]
    for drift in plan.drift:
        lines.append(f"  {drift.address}: {drift_text(plan, drift, '->')}")
    lines.append("")
    return lines


def drift_values(drift: Drift) -> tuple[str, str]:
    """The recorded and live values of a changed field as every view shows them (a secret as ``(sensitive)``)."""
    if drift.sensitive:
        return MASK, MASK
    return format_value(drift.recorded), format_value(drift.live)


def drift_text(plan: Plan, drift: Drift, arrow: str) -> str:
    """What became of ``drift``'s field or object, as every view says it: ``recorded ARROW live`` for a value; for a
    whole object what Terraform says of it ("has been deleted"; an object on the server that the state does not hold
    is one to adopt, as ``import`` does) and what this plan does about it, from its rows."""
    if not drift.status:
        recorded, live = drift_values(drift)
        return f"{recorded} {arrow} {live}"
    address = str(drift.address).lower()
    planned = {c.action for c in plan.changes if str(c.address).lower() == address}
    if drift.status == "deleted":
        return "deleted outside vboplan (the state records it, the server no longer holds it)" + (
            "; this plan creates it again" if "create" in planned else "")
    told = ("on the server but not in the state (forgotten with 'vboplan state rm', or made outside vboplan): ")
    if "delete" in planned:
        return told + "no template declares it, so this plan deletes it"
    return (told + "a template declares it, so vboplan manages it from now on, as 'vboplan import' adopts an object; "
            "'vboplan plan --refresh-only' and its apply record it in the state")


# The shape of ``--format json``: {"format_version": 2, "plans": [...]}, one entry per environment whatever their
# number (version 1 printed a lone plan for one environment and {"plans": [...]} for several). Each entry is a plan
# document as in a plan file, or {"environment", "server", "api_version", "error"} for one that failed to plan.
JSON_FORMAT_VERSION = 2


def json_document(entries: list[dict[str, Any]], fleet: dict[str, Any] | None = None) -> str:
    """The ``--format json`` output for these environment entries: indented when small, one compact line per plan
    when large (json indents only in pure Python: over half a second for a plan of 2,000 changes). Over several
    environments, ``fleet`` (see :mod:`vboplan.output.fleet`) holds the grouping and the alignment."""
    from vboplan.jsontext import document_text

    document: dict[str, Any] = {"format_version": JSON_FORMAT_VERSION, "plans": entries}
    if fleet is not None:
        document["fleet"] = fleet
    return document_text(document, default=str)


REQUESTS_TITLE = "Requests apply sends when every change is approved"


def request_line(request: dict[str, Any]) -> str:
    """``PUT /v8/AuditEmailSettings`` for a request of :func:`~vboplan.planning.plan.planned_requests`."""
    return f"{request['method']} {request['path']}"


def request_body(request: dict[str, Any], indent: int | None = None) -> str:
    """A request's body as JSON, in the order it is sent (empty for none)."""
    if "body" not in request:
        return ""
    return json.dumps(request["body"], ensure_ascii=False, indent=indent)


def render_requests_table(plan: Plan) -> str:
    """The terminal list of the requests apply sends for ``plan``, each under the change ids it carries out."""
    from vboplan.planning.plan import planned_requests

    requests = planned_requests(plan)
    if not requests:
        return "No requests: the plan has no changes.\n"
    lines = [f"{REQUESTS_TITLE} (secrets as {MASK}):"]
    for number, request in enumerate(requests, 1):
        lines.append(f"{number}. {request_line(request)}  [{', '.join(request['changes'])}]")
        body = request_body(request)
        if body:
            lines.append(f"   {body}")
    return "\n".join(lines) + "\n"


def render_plan(plan: Plan, fmt: str, color: bool = False, requests: bool = False) -> str:
    """``plan`` in output format ``fmt`` (table, markdown, json or html); with ``requests``, the requests apply
    would send too (derived from the same rows, so covered by the plan's digest)."""
    if fmt == "json":
        entry = json.loads(plan.to_json())
        if requests:
            from vboplan.planning.plan import planned_requests

            entry["requests"] = planned_requests(plan)
        return json_document([entry])
    if fmt == "html":
        from vboplan.output.html import render_html

        return render_html([plan], requests=requests)
    if fmt == "markdown":
        from vboplan.output.markdown import render_markdown

        return render_markdown([plan], requests=requests)
    return render_table(plan, color) + ("\n" + render_requests_table(plan) if requests else "")
