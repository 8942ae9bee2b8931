"""Approvals: SSH-signed statements in a plan file, checked against the environment's ``allowed_signers`` file, and
the policy that decides which changes they clear for apply.

An approval is ``{"statement": {...}, "signature": "-----BEGIN SSH SIGNATURE-----..."}``. Nothing outside the
signed statement is trusted: who approved comes from the trust file (the key that signed), never from the record.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from vboplan.errors import ApprovalError, PlanError
from vboplan.jsontext import document_text
from vboplan.planning.changes import Change
from vboplan.planning.plan import Plan, plan_digest
from vboplan.project.config import ApprovalPolicy, Project
from vboplan.state import atomic_write, now
from vboplan.trust import signing

STATEMENT = "vboplan-approval"
AUTHOR_STATEMENT = "vboplan-plan"
_LOCK_TIMEOUT = 60.0  # seconds to wait for another approver writing the same plan file


def parse_time(text: Any) -> datetime | None:
    """An ISO time as vboplan writes it (``2026-01-01T00:00:00Z``), or None."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


# -- what is signed ---------------------------------------------------------------------------------------------


def approval_statement(plan: Plan, change_ids: list[str], ticket: str | None, comment: str | None) -> dict[str, Any]:
    """The statement an approver signs: which plan (its digest), where, which changes, why, when."""
    return {"type": STATEMENT, "version": 1, "plan": plan.checksum, "environment": plan.environment,
            "server": plan.server, "changes": change_ids, "ticket": ticket, "comment": comment, "at": now()}


def author_statement(plan: Plan) -> dict[str, Any]:
    return {"type": AUTHOR_STATEMENT, "version": 1, "plan": plan.checksum, "environment": plan.environment,
            "server": plan.server, "at": plan.created_at}


def sign_plan(plan: Plan, key: str | Path) -> None:
    """Sign ``plan`` as its author (namespace ``vboplan-plan``): its author's key then never counts as an approver.
    The public key becomes part of the plan (and of its digest), so the signature cannot be stripped unnoticed."""
    plan.author_key = " ".join(signing.public_key_of(key).split()[:2])
    plan.checksum = plan.compute_checksum()
    statement = author_statement(plan)
    signature = signing.sign(signing.canonical(statement), key, signing.PLAN_NAMESPACE)
    signed = signing.parse(signature)
    if signed.blob != signing.key_blob(plan.author_key):
        raise ApprovalError(f"'{key}' signed with another key than its public half ({signed.fingerprint})")
    plan.author_signature = {"statement": statement, "signature": signature}


# -- checking one approval --------------------------------------------------------------------------------------


@dataclass
class Verdict:
    """One approval record as checked: who (from the trust file), which key, what, and why it does not count."""

    index: int
    principals: tuple[str, ...] = ()
    key: bytes = b""
    fingerprint: str = ""
    ticket: str | None = None
    comment: str | None = None
    changes: list[str] = field(default_factory=list)
    at: str | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def who(self) -> str:
        name = ",".join(self.principals) if self.principals else "unknown signer"
        return f"{name} ({self.fingerprint})" if self.fingerprint else name

    def describe(self) -> str:
        return f"approval {self.index} by {self.who}"


@dataclass(frozen=True)
class Author:
    """Who wrote the plan: the unsigned name always, and the signing key and its principals when signed."""

    name: str
    principals: tuple[str, ...] = ()
    key: bytes | None = None

    def is_author(self, verdict: Verdict) -> bool:
        return (self.key is not None and verdict.key == self.key) or self.name in verdict.principals \
            or bool(set(self.principals) & set(verdict.principals))


def author_of(plan: Plan, trust: signing.TrustList | None) -> Author:
    """The plan's author; refuses when the plan claims an author signature that does not verify."""
    if not plan.author_key:
        return Author(plan.created_by)
    record = plan.author_signature if isinstance(plan.author_signature, dict) else {}
    statement, armored = record.get("statement"), record.get("signature")
    try:
        key = signing.key_blob(plan.author_key)
        if not isinstance(statement, dict) or not isinstance(armored, str):
            raise signing.SigningError("the plan names an author key but carries no author signature")
        signed = signing.verify(signing.canonical(statement), armored, signing.PLAN_NAMESPACE)
        if signed.blob != key:
            raise signing.SigningError(f"signed by {signed.fingerprint}, not by the author key the plan names")
        if statement != author_statement(plan):
            raise signing.SigningError("the signed statement is for another plan")
    except signing.SigningError as exc:
        raise ApprovalError(f"the plan's author signature does not verify: {exc}; run 'vboplan plan' again") from None
    principals = tuple(p for entry in (trust.lookup(key) if trust else []) for p in entry.principals)
    return Author(plan.created_by, principals, key)


def check(plan: Plan, index: int, record: Any, trust: signing.TrustList | None, author: Author,
          moment: datetime) -> Verdict:
    """Check one approval record of ``plan``; the verdict says who signed and, if it does not count, why."""
    verdict = Verdict(index)
    if not isinstance(record, dict) or not isinstance(record.get("statement"), dict) \
            or not isinstance(record.get("signature"), str):
        verdict.problem = "not a signed approval (a hand-written record, or one from an older vboplan): it has " \
                          "no statement and SSH signature"
        return verdict
    statement, armored = record["statement"], record["signature"]
    verdict.ticket = statement.get("ticket") if isinstance(statement.get("ticket"), str) else None
    verdict.comment = statement.get("comment") if isinstance(statement.get("comment"), str) else None
    verdict.at = statement.get("at") if isinstance(statement.get("at"), str) else None
    ids = statement.get("changes")
    verdict.changes = [str(i) for i in ids] if isinstance(ids, list) else []
    try:
        verdict.key = signing.parse(armored).blob
        verdict.fingerprint = signing.fingerprint(verdict.key)
    except signing.SigningError as exc:
        verdict.problem = f"its signature is unreadable ({exc})"
        return verdict
    entries = trust.lookup(verdict.key) if trust else []
    verdict.principals = tuple(dict.fromkeys(p for entry in entries for p in entry.principals))
    try:
        signing.verify(signing.canonical(statement), armored, signing.APPROVE_NAMESPACE)
    except signing.SigningError as exc:
        verdict.problem = f"its signature does not verify: {exc}"
        return verdict
    verdict.problem = _statement_problem(plan, statement, verdict) or _trust_problem(trust, entries, verdict, moment)
    if verdict.problem is None and author.is_author(verdict):
        verdict.problem = (f"{verdict.who} wrote this plan (created_by {author.name}"
                           + (", signed by the author's key" if author.key else "")
                           + "); the author's own approval never counts (four-eyes rule)")
    return verdict


def _statement_problem(plan: Plan, statement: dict[str, Any], verdict: Verdict) -> str | None:
    if statement.get("type") != STATEMENT:
        return f"it signs a '{statement.get('type')}' statement, not an approval"
    if statement.get("plan") != plan.checksum:
        return (f"it was signed for plan {str(statement.get('plan'))[:12]}…, not this plan ({plan.checksum[:12]}…): "
                "the plan was edited after it was approved, or the approval was copied from another plan")
    if statement.get("environment") != plan.environment or statement.get("server") != plan.server:
        return f"it was signed for environment '{statement.get('environment')}' ({statement.get('server')})"
    known = {change.id for change in plan.changes}
    unknown = [i for i in verdict.changes if i not in known]
    if not verdict.changes or unknown:
        return f"it names changes this plan does not have ({', '.join(unknown) or 'none'})"
    if parse_time(verdict.at) is None:
        return "its time is not readable"
    return None


def _trust_problem(trust: signing.TrustList | None, entries: list[signing.TrustedKey], verdict: Verdict,
                   moment: datetime) -> str | None:
    if trust is None:
        return "the environment has no allowed_signers file to check it against"
    if not entries:
        return f"key {verdict.fingerprint} is not in {trust.display}"
    allowed = [e for e in entries if e.allows_namespace(signing.APPROVE_NAMESPACE)]
    if not allowed:
        return (f"key {verdict.fingerprint} may not sign '{signing.APPROVE_NAMESPACE}' "
                f"(namespaces in {entries[0].where})")
    signed_at = parse_time(verdict.at) or moment
    for entry in allowed:
        problem = entry.window_problem(moment) or entry.window_problem(signed_at)
        if problem is None:
            return None
    return allowed[0].window_problem(moment) or allowed[0].window_problem(signed_at)


def verdicts(plan: Plan, policy: ApprovalPolicy, moment: datetime | None = None) -> list[Verdict]:
    """Every approval of ``plan`` checked against ``policy``'s trust file."""
    trust = policy.trust_list() if policy.allowed_signers else None
    author = author_of(plan, trust)
    moment = moment or datetime.now(timezone.utc)
    return [check(plan, i, record, trust, author, moment) for i, record in enumerate(plan.approvals, 1)]


# -- approving ----------------------------------------------------------------------------------------------------


def approve(project: Project, path: Path, key: str | Path, ticket: str | None = None,
            change_ids: tuple[str, ...] = (), comment: str | None = None) -> Verdict:
    """``vboplan approve``: sign an approval of some (default all) changes of the plan file at ``path`` with ``key``
    and add it to the file. Concurrent approvals of one file are serialised by a lock, so none is lost."""
    plan = Plan.load(path)
    env = project.environment(plan.environment)
    policy = env.approvals
    if not plan.changes:
        raise ApprovalError(f"the plan for '{plan.environment}' has no changes to approve")
    if policy.allowed_signers is None:
        raise ApprovalError(f"environment '{plan.environment}' has no approvals.allowed_signers file, so no approval "
                            "could be checked (approvals.required is 0: apply needs none)")
    ids = list(dict.fromkeys(change_ids)) or [change.id for change in plan.changes]
    for change_id in ids:
        plan.change(change_id)  # raises, naming the unknown id
    statement = approval_statement(plan, ids, ticket, comment)
    armored = signing.sign(signing.canonical(statement), key, signing.APPROVE_NAMESPACE)
    record = {"statement": statement, "signature": armored}
    trust = policy.trust_list()
    verdict = check(plan, len(plan.approvals) + 1, record, trust, author_of(plan, trust), datetime.now(timezone.utc))
    if not verdict.ok:
        raise ApprovalError(f"this approval would not count: {verdict.problem}")
    with _locked(path):
        document = _read_document(path)
        if plan_digest(document) != plan.checksum:
            raise ApprovalError(f"{path}: the plan file changed while signing; it is no longer the plan approved")
        existing = document.setdefault("approvals", [])
        mine = _approved_by(plan, existing, trust, verdict)
        if set(ids) <= mine:
            raise ApprovalError(f"{verdict.who} has already approved {', '.join(ids)} of this plan")
        existing.append(record)
        atomic_write(path, _dump(document), mode=0o600)
    verdict.index = len(existing)
    return verdict


def merge(project: Project, path: Path, copies: list[Path]) -> int:
    """Add to the plan file at ``path`` the approvals found in ``copies`` of the same plan (same digest).
    Returns how many were added; refuses a copy of another plan."""
    plan = Plan.load(path)
    project.environment(plan.environment)
    gathered = []
    for copy in copies:
        other = Plan.load(copy)
        if other.checksum != plan.checksum:
            raise ApprovalError(f"{copy} is another plan ({other.checksum[:12]}…), not a copy of {path} "
                                f"({plan.checksum[:12]}…)")
        gathered.extend(other.approvals)
    with _locked(path):
        document = _read_document(path)
        if plan_digest(document) != plan.checksum:
            raise ApprovalError(f"{path}: the plan file changed while merging")
        existing = document.setdefault("approvals", [])
        added = 0
        for record in gathered:
            if record not in existing:
                existing.append(record)
                added += 1
        if added:
            atomic_write(path, _dump(document), mode=0o600)
    return added


def _approved_by(plan: Plan, records: list[Any], trust: signing.TrustList, verdict: Verdict) -> set[str]:
    """Change ids already approved, in ``records``, by the same key or principal as ``verdict``."""
    author = Author(plan.created_by)
    moment = datetime.now(timezone.utc)
    ids: set[str] = set()
    for i, record in enumerate(records, 1):
        other = check(plan, i, record, trust, author, moment)
        if other.ok and (other.key == verdict.key or set(other.principals) & set(verdict.principals)):
            ids.update(other.changes)
    return ids


class _locked:
    """An exclusive lock beside the plan file (portable: ``filelock``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = FileLock(str(path) + ".lock", timeout=_LOCK_TIMEOUT)

    def __enter__(self) -> None:
        try:
            self.lock.acquire()
        except Timeout:
            raise ApprovalError(f"{self.path} is locked by another approval for over {_LOCK_TIMEOUT:g}s") from None

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


def _read_document(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PlanError(f"{path}: not a readable plan file ({exc})") from None
    if not isinstance(document, dict) or not isinstance(document.get("approvals", []), list):
        raise PlanError(f"{path}: not a vboplan plan file")
    return document


def _dump(document: dict[str, Any]) -> str:
    return document_text(document)


# -- clearing a plan for apply --------------------------------------------------------------------------------------


@dataclass
class Clearance:
    """Which changes of a plan may be applied, and why the others may not."""

    approved: list[Change] = field(default_factory=list)
    skipped: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)

    def records(self) -> list[dict[str, Any]]:
        """What the state snapshot keeps about the approvals that counted."""
        return [{"principal": ",".join(v.principals), "key": v.fingerprint, "ticket": v.ticket,
                 "changes": v.changes, "at": v.at} for v in self.verdicts if v.ok]


def _people(approvals: list[Verdict]) -> int:
    """How many different people ``approvals`` prove, counting conservatively: approvals that share a key or a
    principal could be one person, so they count once (one person with two keys, one key under two names)."""
    parent = list(range(len(approvals)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, a in enumerate(approvals):
        for j in range(i):
            b = approvals[j]
            if a.key == b.key or set(a.principals) & set(b.principals):
                parent[root(i)] = root(j)
    return len({root(i) for i in range(len(approvals))})


def clear(plan: Plan, policy: ApprovalPolicy, moment: datetime | None = None) -> Clearance:
    """Decide which changes the approvals clear. Raises :class:`ApprovalError` listing, one line each, every
    approval that does not verify and every change short of ``policy.required`` distinct approvals."""
    result = Clearance()
    if policy.required == 0:
        result.approved = list(plan.changes)
        if policy.allowed_signers and plan.approvals:
            result.verdicts = verdicts(plan, policy, moment)
        return result
    result.verdicts = verdicts(plan, policy, moment)
    problems = [f"{v.describe()}: {v.problem}" for v in result.verdicts if not v.ok]
    good = [v for v in result.verdicts if v.ok]
    partial = []
    for change in plan.changes:
        mine = [v for v in good if change.id in v.changes]
        count = _people(mine)
        if count >= policy.required:
            result.approved.append(change)
        elif mine:
            names = ", ".join(sorted({",".join(v.principals) for v in mine}))
            partial.append(f"{change.id} ({change.address}): {count} of {policy.required} distinct approvals "
                           f"({names})")
        else:
            result.skipped.append(change)
    if problems or partial or (plan.changes and not result.approved):
        lines = problems + partial
        if plan.changes and not result.approved and not partial:
            lines.append(f"no change has {policy.required} distinct approvals; approvers sign with "
                         f"'vboplan approve PLANFILE --key KEY' (keys in {policy.display})")
        raise ApprovalError(f"the plan for '{plan.environment}' is refused:\n" + "\n".join(f"  - {x}" for x in lines))
    return result


def check_fresh(plan: Plan, policy: ApprovalPolicy, snapshot: dict[str, Any] | None,
                moment: datetime | None = None) -> None:
    """Refuse a plan that is too old, was applied already, or predates a later apply of its environment."""
    moment = moment or datetime.now(timezone.utc)
    created = parse_time(plan.created_at)
    if created is None:
        raise PlanError(f"the plan for '{plan.environment}' has no readable creation time")
    limit = created + timedelta(seconds=policy.max_age)
    expires = parse_time(plan.expires_at)
    if expires is not None:
        limit = min(limit, expires)
    if moment > limit:
        raise PlanError(f"the plan for '{plan.environment}' was made at {plan.created_at} and expired at "
                        f"{limit.strftime('%Y-%m-%dT%H:%M:%SZ')} (max_age {_duration(policy.max_age)}); "
                        "run 'vboplan plan' again and have it approved")
    if not snapshot:
        return
    applied = snapshot.get("applied_plans") or []
    for entry in applied:
        if isinstance(entry, dict) and entry.get("digest") == plan.checksum:
            raise PlanError(f"this plan for '{plan.environment}' was already applied at {entry.get('applied_at')}; "
                            "a plan applies once: run 'vboplan plan' again")
    times = [parse_time(e.get("applied_at")) for e in applied if isinstance(e, dict)]
    times.append(parse_time((snapshot.get("last_apply") or {}).get("at")))
    latest = max((t for t in times if t is not None), default=None)
    if latest is not None and latest > created:
        raise PlanError(f"environment '{plan.environment}' was applied at {latest.strftime('%Y-%m-%dT%H:%M:%SZ')}, "
                        f"after this plan was made ({plan.created_at}); run 'vboplan plan' again")


def applied_entry(plan: Plan) -> dict[str, Any]:
    """What the state snapshot remembers of an applied plan (so it never applies twice)."""
    return {"digest": plan.checksum, "created_at": plan.created_at, "applied_at": now()}


def _duration(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
