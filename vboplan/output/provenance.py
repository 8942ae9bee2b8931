"""Who wrote a saved plan and where it came from, as ``show`` verified them (never as the file claims): the lines
the table prints under the changes, and the same facts in Markdown, HTML and JSON."""

from __future__ import annotations

from html import escape
from typing import Any


def provenance_lines(saved: Any, author: Any | None, reason: str = "") -> list[str]:
    """``created: ...``, ``author: ...``, ``author signed: ...``, ``commits: ...`` and one line per commit.
    ``author`` is the checked :class:`~vboplan.trust.approvals.Author`; None when it cannot be checked (``reason``)."""
    lines = [f"created: {saved.created_at} (created_by {saved.created_by})"]
    if author is None:
        return [*lines, f"author: cannot be checked here: {reason}"]
    lines.append(f"author: {author.describe()}")
    if saved.author_key:
        lines.append(f"author signed: {author.signed_at or '-'} (key {key_fingerprint(saved.author_key)})")
    recorded = saved.commits if isinstance(saved.commits, dict) else None
    if recorded is None:
        return lines
    since = recorded.get("since")
    uncommitted = recorded.get("uncommitted")
    lines.append(f"commits: {len(author.commits)} touched its inputs "
                 + (f"since commit {str(since)[:10]} (the last apply)" if since else "(no earlier apply recorded)")
                 + (f"; uncommitted: {', '.join(map(str, uncommitted))}" if uncommitted else ""))
    lines += [f"  {commit.describe()}" for commit in author.commits]
    return lines


def provenance_json(saved: Any, author: Any | None, reason: str = "") -> dict[str, Any]:
    """The same as :func:`provenance_lines`, as data: ``show --format json`` puts it under ``"provenance"``."""
    entry: dict[str, Any] = {"created_at": saved.created_at, "created_by": saved.created_by,
                             "lines": provenance_lines(saved, author, reason)}
    if author is None:
        entry["author"] = {"verified": False, "problem": f"cannot be checked here: {reason}"}
        return entry
    entry["author"] = {"verified": author.problem is None, "principals": list(author.principals),
                       "problem": author.problem, "signed_at": author.signed_at,
                       "key": key_fingerprint(saved.author_key) if saved.author_key else None}
    if isinstance(saved.commits, dict):
        entry["commits"] = [{"id": c.id, "subject": c.subject, "author": c.author, "principals": list(c.principals),
                             "verified": c.problem is None, "problem": c.problem} for c in author.commits]
    return entry


def provenance_markdown(lines: list[str]) -> str:
    """The lines as a Markdown list of literal code spans (commit subjects are the author's text)."""
    from vboplan.output.markdown import code

    return "\n**Provenance and approvals** (as `vboplan show` verified them):\n\n" + "".join(f"- {code(line.strip())}\n"
                                                                          for line in lines)


def provenance_html(page: str, lines: list[str]) -> str:
    """``page`` (a plan's HTML report) with a Provenance section before its footer."""
    section = ('<section class="provenance"><h2>Provenance</h2><p class="muted">As <code>vboplan show</code> '
               "verified it.</p><ul>" + "".join(f"<li><code>{escape(line.strip())}</code></li>" for line in lines)
               + "</ul></section>\n")
    # Every text of the plan is escaped on the page, so the renderer's own footer is the only one.
    at = page.rfind("<footer>")
    return page[:at] + section + page[at:] if at >= 0 else page.replace("</body>", section + "</body>", 1)


def key_fingerprint(public_key: str) -> str:
    """The SHA256 fingerprint of an author key (``unreadable`` when it is not an SSH public key)."""
    from vboplan.trust.signing import SigningError, fingerprint, key_blob

    try:
        return fingerprint(key_blob(public_key))
    except SigningError:
        return "unreadable"
