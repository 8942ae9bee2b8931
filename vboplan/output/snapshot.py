"""``vboplan state show`` in each output format: what the last apply recorded for an environment."""

from __future__ import annotations

import json
from html import escape
from typing import Any

from tabulate import tabulate


def _title(env: str, snapshot: dict[str, Any]) -> str:
    return (f"Environment {env}: {snapshot.get('server')} (API {snapshot.get('api_version')}), serial "
            f"{snapshot.get('serial')}, lineage {snapshot.get('lineage')}, updated {snapshot.get('updated_at')}")


def _last(snapshot: dict[str, Any]) -> str:
    last = snapshot.get("last_apply") or {}
    if not last:
        return ""
    line = (f"Last apply {last.get('at')} by {last.get('by')}: {len(last.get('applied', []))} applied, "
            f"{len(last.get('skipped', []))} skipped, {len(last.get('failed', []))} failed")
    if last.get("planned_by"):
        line += f"; planned by {last.get('planned_by')}"
    return line + "; " + _approvers(last.get("approvals"))


def _approvers(approvals: Any) -> str:
    """Who approved the last apply, as the snapshot recorded the approvals that counted."""
    if not isinstance(approvals, list) or not approvals:
        return "no approvals recorded"
    people = []
    for record in approvals:
        if not isinstance(record, dict):
            continue
        extra = ", ".join(x for x in (f"ticket {record['ticket']}" if record.get("ticket") else "",
                                      f"key {record['key']}" if record.get("key") else "") if x)
        people.append(f"{record.get('principal') or 'unknown'}" + (f" ({extra})" if extra else ""))
    return "approved by " + "; ".join(people)


def render_snapshot(env: str, snapshot: dict[str, Any], rows: list[tuple[str, str]], fmt: str,
                    width: int | None = None) -> str:
    """The snapshot's rows (address, value as shown) in ``fmt``: table, markdown, json or html."""
    if fmt == "json":
        return json.dumps(snapshot, indent=2, sort_keys=True) + "\n"
    last = _last(snapshot)
    if fmt == "markdown":
        from vboplan.output.markdown import code

        lines = [f"### {_title(env, snapshot)}", "", "| address | value |", "|---|---|"]
        lines += [f"| {code(address)} | {code(value)} |" for address, value in rows]
        return "\n".join(lines + ([""] + [last] if last else [])) + "\n"
    if fmt == "html":
        from vboplan.output.html import page

        body = (f"<h1>{escape(_title(env, snapshot))}</h1><table><thead><tr><th>address</th><th>value</th></tr>"
                "</thead><tbody>" + "".join(f"<tr><td><code>{escape(a)}</code></td><td><code>{escape(v)}</code></td>"
                                            "</tr>" for a, v in rows) + "</tbody></table>"
                + (f"<p>{escape(last)}</p>" if last else ""))
        return page(f"vboplan state: {env}", body)
    from vboplan.output.fit import fit_rows, terminal_width

    table = fit_rows([list(r) for r in rows], ["address", "value"], width or terminal_width(), address=0,
                     values=(1,))
    return "\n".join([_title(env, snapshot), tabulate(table, headers=["address", "value"], tablefmt="simple",
                                                      disable_numparse=True)] + ([last] if last else [])) + "\n"
