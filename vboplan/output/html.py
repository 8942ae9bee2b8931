"""The HTML plan report: one self-contained page for a change ticket, readable on screen and printed to PDF.

The page loads nothing from anywhere (inline CSS, no script, a Content-Security-Policy that forbids every fetch), so
it opens the same from a ticket attachment, a mail or an air-gapped laptop. Every value is HTML-escaped; sensitive
values are masked by :func:`vboplan.output.cells`, as in every other format.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from vboplan.planning.changes import ACTIONS
from vboplan.planning.plan import Plan

ApprovalStatus = Callable[[Plan, dict[str, Any]], str]

_RESOURCE = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*(\["(?:[^"\\]|\\.)*"\])?')

_CSS = """
:root { --create: #1a7f37; --update: #9a6700; --delete: #cf222e; --muted: #57606a; --line: #d0d7de; }
* { box-sizing: border-box; }
body { font: 14px/1.45 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #1f2328; margin: 2rem auto;
       max-width: 72rem; padding: 0 1rem; -webkit-print-color-adjust: exact; print-color-adjust: exact; }
h1 { font-size: 1.5rem; margin: 0 0 .25rem; }
h2 { font-size: 1.25rem; border-bottom: 2px solid var(--line); padding-bottom: .25rem; margin-top: 2rem; }
h3 { font-size: 1rem; margin: 1.25rem 0 .4rem; font-family: ui-monospace, Consolas, monospace; }
.muted { color: var(--muted); }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1rem; margin: .5rem 0; }
dl.meta dt { color: var(--muted); }
dl.meta dd { margin: 0; overflow-wrap: anywhere; }
.counts { display: flex; gap: .5rem; flex-wrap: wrap; margin: .5rem 0 1rem; }
.count { border: 1px solid var(--line); border-radius: 1rem; padding: .1rem .7rem; font-weight: 600; }
.count.create { color: var(--create); border-color: var(--create); }
.count.update { color: var(--update); border-color: var(--update); }
.count.delete { color: var(--delete); border-color: var(--delete); }
.partial { border: 2px solid var(--update); padding: .4rem .7rem; font-weight: 600; }
.error { border: 2px solid var(--delete); color: var(--delete); padding: .5rem .75rem; white-space: pre-wrap; }
table { border-collapse: collapse; width: 100%; margin-bottom: .5rem; table-layout: fixed; }
th, td { border: 1px solid var(--line); padding: .3rem .5rem; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td code, dd code { font: 12px/1.4 ui-monospace, Consolas, monospace; white-space: pre-wrap; overflow-wrap: anywhere; }
col.id { width: 5.5rem; } col.action { width: 6rem; } col.address { width: 40%; }
tr.create td:first-child { border-left: 6px solid var(--create); }
tr.update td:first-child { border-left: 6px solid var(--update); }
tr.delete td:first-child { border-left: 6px solid var(--delete); }
tr.replace td:first-child { border-left: 6px double var(--delete); }
td.action { font-weight: 600; }
col.severity { width: 8rem; } td.severity.critical { color: var(--delete); font-weight: 700; }
td.severity.warning { color: var(--update); font-weight: 600; } tr.verdict.block td:first-child { color: var(--delete);
  font-weight: 700; }
tr.create td.action { color: var(--create); background: #dafbe1; }
tr.update td.action { color: var(--update); background: #fff8c5; }
tr.delete td.action { color: var(--delete); background: #ffebe9; }
tr.replace td.action { color: var(--delete); background: #fbefff; }
.status-ok { color: var(--create); font-weight: 600; }
.status-bad { color: var(--delete); font-weight: 600; }
details.requests { margin: .75rem 0; } details.requests summary { font-weight: 600; cursor: pointer; }
details.requests pre { background: #f6f8fa; padding: .4rem .6rem; overflow-wrap: anywhere; white-space: pre-wrap;
                       font: 12px/1.4 ui-monospace, Consolas, monospace; }
footer { margin-top: 2rem; color: var(--muted); font-size: 12px; }
@media print {
  body { margin: 0; max-width: none; font-size: 10pt; }
  h2 { break-after: avoid; } h3 { break-after: avoid; }
  tr { break-inside: avoid; }
  thead { display: table-header-group; }
  section.environment + section.environment { break-before: page; }
}
"""


@dataclass
class FailedEnvironment:
    """An environment that could not be planned: it still has a place in the report, with its error."""

    environment: str
    server: str
    api_version: str
    error: str
    refused: bool = False  # planned, but its plan file is refused (``vboplan report``)

    def __post_init__(self) -> None:
        # Its text may come from a failure record on disk or a server's answer: shown in every format as it is,
        # but never a control character that would drive a terminal showing the Markdown or the page.
        from vboplan.output.wording import printable

        self.server, self.api_version, self.error = map(printable, (self.server, self.api_version, self.error))


def resource_of(address: Any) -> str:
    """The resource part of a change address: ``audit_email_settings`` or ``audit_items["contoso.com"]``."""
    text = str(address)
    match = _RESOURCE.match(text)
    return match.group(0) if match else text


def recorded_status(plan: Plan, record: dict[str, Any]) -> str:
    """The status the caller put on an approval record after verifying it; "not verified" when there is none."""
    status = record.get("status")
    if status:
        return str(status)
    return "not verified"


def render_html(results: Sequence[Plan | FailedEnvironment], approval_status: ApprovalStatus | None = None,
                generated_at: str | None = None, requests: bool = False) -> str:
    """One page for a run: a section per environment (plan or error), changes grouped by resource; with
    ``requests``, each plan's requests in a folded section after its changes."""
    from vboplan.state import now

    status_of = approval_status or recorded_status
    names = ", ".join(r.environment for r in results) or "no environment"
    stamp = generated_at or now()
    body = [f"<header><h1>vboplan plan: {escape(names)}</h1>",
            f'<p class="muted">Report generated {escape(stamp)}. Values of sensitive settings are never shown.</p>',
            "</header>"]
    if len(results) > 1:
        body.append(_overview(results))
    for result in results:
        if isinstance(result, FailedEnvironment):
            body.append(_failed_section(result))
        else:
            body.append(_plan_section(result, status_of, requests))
    body.append("<footer>Apply only the plan file this report was made from: <code>vboplan apply PLANFILE</code>"
                " refuses a plan that was altered, is stale or lacks its approvals.</footer>")
    return page(f"vboplan plan: {names}", "\n".join(body))


def page(title: str, body: str) -> str:
    """A self-contained page: inline style, no script, and a policy that forbids loading anything."""
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")


def _overview(results: Sequence[Plan | FailedEnvironment]) -> str:
    rows = []
    for result in results:
        if isinstance(result, FailedEnvironment):
            counts = (f'<td colspan="{len(ACTIONS)}" class="status-bad">'
                      f'{"refused" if result.refused else "failed to plan"}</td>')
        else:
            tally = result.counts()
            counts = "".join(f"<td>{tally[action]}</td>" for action in ACTIONS)
        rows.append(f'<tr><td><a href="#env-{escape(result.environment)}">{escape(result.environment)}</a></td>'
                    f"<td><code>{escape(result.server)}</code></td>{counts}</tr>")
    head = "".join(f"<th>to {action}</th>" for action in ACTIONS)
    return ("<table class=\"overview\"><thead><tr><th>environment</th><th>server</th>" + head
            + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def _meta(items: list[tuple[str, str]]) -> str:
    return '<dl class="meta">' + "".join(f"<dt>{escape(k)}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


def _failed_section(failed: FailedEnvironment) -> str:
    lead = "Its plan file is refused" if failed.refused else "This environment could not be planned"
    return (f'<section class="environment" id="env-{escape(failed.environment)}">'
            f"<h2>Environment {escape(failed.environment)}</h2>"
            + _meta([("server", f"<code>{escape(failed.server)}</code>"), ("API version", escape(failed.api_version))])
            + f'<p class="error">{lead}: {escape(failed.error.removeprefix("its plan file is refused: "))}</p></section>')


def _plan_section(plan: Plan, status_of: ApprovalStatus, requests: bool = False) -> str:
    from vboplan.output import action_label, cells

    parts = [f'<section class="environment" id="env-{escape(plan.environment)}">',
             f"<h2>Environment {escape(plan.environment)}</h2>",
             _meta([("server", f"<code>{escape(plan.server)}</code>"), ("API version", escape(plan.api_version)),
                    ("planned by", escape(str(plan.created_by))), ("planned at", escape(str(plan.created_at))),
                    ("checksum", f"<code>{escape(plan.checksum)}</code>")])]
    targets = getattr(plan, "targets", None)
    if targets:
        listed = ", ".join(f"<code>{escape(str(t))}</code>" for t in targets)
        parts.append(f'<p class="partial">Partial plan: only changes at or under {listed}.</p>')
    if getattr(plan, "refresh_only", False):
        from vboplan.output import REFRESH_ONLY_NOTE

        parts.append(f'<p class="partial">{escape(REFRESH_ONLY_NOTE)}</p>')
    if getattr(plan, "excluded", None):
        listed = ", ".join(f"<code>{escape(str(t))}</code>" for t in plan.excluded)
        parts.append(f'<p class="partial">Partial plan: changes at or under {listed} are left out (--exclude).</p>')
    if getattr(plan, "variables", None):
        from vboplan.output import var_text

        parts.append(f'<p class="partial">Variables set with --var: <code>{escape(var_text(plan.variables))}</code>'
                     "</p>")
    if getattr(plan, "allow_mass_delete", False):
        parts.append('<p class="partial">Planned with --allow-mass-delete: this plan may delete most audit items '
                     "of an organization.</p>")
    tally = plan.counts()
    parts.append('<div class="counts">' + "".join(
        f'<span class="count {action}">{tally[action]} to {action}</span>' for action in ACTIONS) + "</div>")
    parts.append(f"<p><strong>{escape(plan.summary())}</strong></p>")
    if plan.verdicts:
        parts.append(html_verdicts(plan.verdicts))
    from vboplan.policy.severity import critical_first

    rated = plan.severities
    groups: dict[str, list[Any]] = {}
    for change in critical_first(plan.changes, rated):
        groups.setdefault(resource_of(change.address), []).append(change)
    for resource, changes in groups.items():
        rows = []
        for change in changes:
            live, desired = cells(change)
            severity = rated[change.id]
            rows.append(f'<tr class="{escape(change.action)}"><td><code>{escape(change.id)}</code></td>'
                        f'<td class="action">{escape(action_label(change))}</td>'
                        f'<td class="severity {escape(severity.level)}" title="{escape(severity.reason)}">'
                        f"{escape(severity.level)}<br><small>{escape(severity.reason)}</small></td>"
                        f"<td><code>{escape(str(change.address))}</code></td>"
                        f"<td><code>{escape(live)}</code></td><td><code>{escape(desired)}</code></td></tr>")
        parts.append(f"<h3>{escape(resource)}</h3>"
                     '<table class="changes"><colgroup><col class="id"><col class="action"><col class="severity">'
                     '<col class="address"><col><col>'
                     "</colgroup><thead><tr><th>id</th><th>action</th><th>severity</th><th>address</th><th>live</th>"
                     "<th>desired</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")
    if requests:
        parts.append(_requests(plan))
    if plan.drift:
        parts.append(_drift(plan))
    if any(change.write_only for change in plan.changes):
        from vboplan.output import WRITE_ONLY_NOTE

        parts.append(f'<p class="partial">{escape(WRITE_ONLY_NOTE)}</p>')
    parts.append(_approvals(plan, status_of))
    parts.append("</section>")
    return "\n".join(parts)


_LEVEL_WORDS = {"advisory": "advisory", "warn": "warning", "block": "blocked", "approve": "needs approvers"}


def html_verdicts(verdicts: list[dict[str, Any]]) -> str:
    """The policy verdicts as a table (empty when there are none)."""
    if not verdicts:
        return ""
    rows = []
    for verdict in verdicts:
        level = str(verdict.get("level"))
        exception = verdict.get("exception") or None
        concerns = ", ".join(str(o) for o in (verdict.get("objects") or [])[:10])
        changes = ", ".join(str(c) for c in (verdict.get("changes") or [])[:20])
        more = []
        approvers = verdict.get("approvers")
        if approvers and not exception:
            more.append(f"needs {approvers.get('required')} approval(s) from {approvers.get('allowed_signers')}")
        if exception:
            more.append(f"waived: exception by {exception.get('owner')} ({exception.get('reason')}), expires "
                        f"{exception.get('expires')}")
        more += [str(n) for n in verdict.get("notes") or []]
        rows.append(f'<tr class="verdict {escape(level)}"><td>{escape(_LEVEL_WORDS.get(level, level))}'
                    f"{' (waived)' if exception else ''}</td><td><code>{escape(str(verdict.get('rule')))}</code></td>"
                    f"<td>{escape(str(verdict.get('message')))}</td><td><code>{escape(concerns)}</code></td>"
                    f"<td><code>{escape(changes)}</code></td><td>{'<br>'.join(escape(m) for m in more)}</td></tr>")
    return ("<h3>Policy verdicts</h3><table class=\"verdicts\"><thead><tr><th>level</th><th>rule</th>"
            "<th>message</th><th>objects</th><th>changes</th><th>notes</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


def _requests(plan: Plan) -> str:
    """The requests apply sends, folded in ``<details>``: per request the change ids, method and path, and body."""
    from vboplan.output import REQUESTS_TITLE, request_body, request_line
    from vboplan.planning.plan import planned_requests

    requests = planned_requests(plan)
    items = []
    for request in requests:
        ids = ", ".join(request["changes"])
        body = request_body(request, indent=2)
        items.append(f'<li><code>{escape(request_line(request))}</code> <span class="muted">({escape(ids)})</span>'
                     + (f"<pre><code>{escape(body)}</code></pre>" if body else "") + "</li>")
    return (f'<details class="requests"><summary>{escape(REQUESTS_TITLE)} ({len(requests)}); secrets as '
            "(sensitive)</summary><ol>" + "".join(items) + "</ol></details>")


def _drift(plan: Plan) -> str:
    from vboplan.output import drift_text, drift_values

    items = []
    for drift in plan.drift:
        if drift.status:
            items.append(f"<li><code>{escape(str(drift.address))}</code>: {escape(drift_text(plan, drift, '→'))}</li>")
            continue
        recorded, live = drift_values(drift)
        items.append(f"<li><code>{escape(str(drift.address))}</code>: <code>{escape(recorded)}</code> → "
                     f"<code>{escape(live)}</code></li>")
    return "<h3>Changed outside vboplan since the last apply</h3><ul>" + "".join(items) + "</ul>"


def _approvals(plan: Plan, status_of: ApprovalStatus) -> str:
    if not plan.approvals:
        return "<h3>Approvals</h3><p class=\"muted\">No approval recorded in this plan file.</p>"
    rows = []
    for record in plan.approvals:
        status = status_of(plan, record)
        css = "status-ok" if status.startswith(("valid", "verified")) else "status-bad"
        who = record.get("principal") or record.get("by") or "(unknown)"
        ids = record.get("changes") or []
        rows.append(f"<tr><td>{escape(str(who))}</td><td>{escape(str(record.get('ticket') or ''))}</td>"
                    f"<td>{escape(str(record.get('comment') or ''))}</td><td>{escape(str(record.get('at') or ''))}"
                    f"</td><td><code>{escape(', '.join(map(str, ids)) or 'all changes')}</code></td>"
                    f'<td class="{css}">{escape(status)}</td></tr>')
    return ("<h3>Approvals</h3><table class=\"approvals\"><thead><tr><th>approver</th><th>ticket</th>"
            "<th>comment</th><th>at</th><th>changes</th><th>status</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")
