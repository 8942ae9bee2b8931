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
from vboplan.shapes import MAX_FILE_BYTES, read_regular
from vboplan.state import atomic_write, now
from vboplan.trust import commits, signing

STATEMENT = "vboplan-approval"
AUTHOR_STATEMENT = "vboplan-plan"
CLOCK_SKEW = timedelta(minutes=5)  # how far ahead of this machine's clock another machine's may be
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


def _utc(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- what is signed ---------------------------------------------------------------------------------------------


def approval_statement(plan: Plan, change_ids: list[str], ticket: str | None, comment: str | None) -> dict[str, Any]:
    """The statement an approver signs: which plan (its digest), where, which changes, why, when."""
    return {"type": STATEMENT, "version": 1, "plan": plan.checksum, "environment": plan.environment,
            "server": plan.server, "changes": change_ids, "ticket": ticket, "comment": comment, "at": now()}


def author_statement(plan: Plan, at: str) -> dict[str, Any]:
    """The statement a plan's author signs: this plan (its digest, which covers the author's public key), where,
    and when it was signed."""
    return {"type": AUTHOR_STATEMENT, "version": 1, "plan": plan.checksum, "environment": plan.environment,
            "server": plan.server, "at": at}


def sign_plan(plan: Plan, key: str | Path) -> None:
    """Sign ``plan`` as its author (namespace ``vboplan-plan``): its author's key then never counts as an approver.
    The public key becomes part of the plan (and of its digest), so the signature cannot be stripped unnoticed."""
    plan.author_key = " ".join(signing.public_key_of(key).split()[:2])
    plan.checksum = plan.compute_checksum()
    statement = author_statement(plan, now())
    signature = signing.sign(signing.canonical(statement), key, signing.PLAN_NAMESPACE)
    signed = signing.parse(signature)
    if signed.blob != signing.key_blob(plan.author_key):
        raise ApprovalError(f"'{key}' signed with another key than its public half ({signed.fingerprint})")
    plan.author_signature = {"statement": statement, "signature": signature}


def how_to_sign(plan: Plan, policy: ApprovalPolicy) -> str:
    return (f"its author signs it with 'vboplan plan --env {plan.environment} --out FILE --sign-key KEY', KEY listed "
            f"in {policy.display or 'the allowed_signers file'}")


# -- who wrote the plan -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Author:
    """Who wrote the plan. ``name`` (``created_by``) is unsigned text; ``principals`` are proven by the author
    signature's key in the trust file; ``commits`` are the recorded commits, each with whoever signed it.
    ``problem`` says why the author is not proven (None: signed by a listed key); ``broken`` marks a signature that
    is there but does not verify, which no environment accepts."""

    name: str
    principals: tuple[str, ...] = ()
    key: bytes | None = None
    signed_at: str | None = None
    problem: str | None = None
    broken: bool = False
    commits: tuple[commits.Commit, ...] = ()
    earlier: signing.TrustList | None = None  # the trust file at the last apply's commit, when recorded

    @property
    def who(self) -> str:
        return ",".join(self.principals) or "unknown signer"

    def describe(self) -> str:
        """``alice@contoso.com (verified)``, or ``unverified (why)``: what ``show`` prints after ``author:``."""
        if self.problem is None:
            return f"{self.who} (verified)"
        return f"unverified ({self.problem}; created_by {self.name} is only a name)"

    def excludes(self, verdict: Verdict) -> str | None:
        """Why the signer of ``verdict`` wrote this plan (None when nothing says they did)."""
        if self.key is not None and verdict.key == self.key:
            return "signed by the author's key"
        if set(self.principals) & set(verdict.principals):
            return f"the author signature's key is {self.who}'s"
        if self.name in verdict.principals:
            return f"created_by {self.name}"
        for commit in self.commits:
            # Whoever's key made a commit's signature wrote it, whether or not that key may sign commits here.
            if set(commit.principals) & set(verdict.principals):
                return f"signed commit {commit.short} this plan was rendered from"
            if {e.lower() for e in commit.emails} & {p.lower() for p in verdict.principals}:
                return f"named in commit {commit.short} this plan was rendered from"
        return None


def author_of(plan: Plan, trust: signing.TrustList | None, moment: datetime | None = None) -> Author:
    """The plan's author as far as its signature and the trust file prove it (never raises: see ``problem``)."""
    moment = moment or datetime.now(timezone.utc)
    recorded = tuple(commits.check(plan.commits, trust))
    if not plan.author_key:
        if plan.author_signature:
            return Author(plan.created_by, problem="it carries an author signature but names no author key",
                          broken=True, commits=recorded)
        return Author(plan.created_by, problem="the plan is not signed by its author", commits=recorded)
    record = plan.author_signature if isinstance(plan.author_signature, dict) else {}
    statement, armored = record.get("statement"), record.get("signature")
    try:
        key = signing.key_blob(plan.author_key)
        if not isinstance(statement, dict) or not isinstance(armored, str):
            raise signing.SigningError("the plan names an author key but carries no author signature")
        signed = signing.verify(signing.canonical(statement), armored, signing.PLAN_NAMESPACE)
        if signed.blob != key:
            raise signing.SigningError(f"signed by {signed.fingerprint}, not by the author key the plan names")
        at = statement.get("at")
        if statement != author_statement(plan, at) or not isinstance(at, str):
            raise signing.SigningError("the signed statement is for another plan")
        problem = _author_time_problem(plan, at, moment)
        if problem:
            raise signing.SigningError(problem)
    except signing.SigningError as exc:
        return Author(plan.created_by, problem=f"the author signature does not verify: {exc}", broken=True,
                      commits=recorded)
    principals = trust.principals(key) if trust else ()
    earlier = commits.earlier_trust(plan.commits, trust.display if trust else "allowed_signers")
    if trust is None:
        problem = "the environment has no allowed_signers file to check the author's key against"
    else:
        problem = trust.key_problem(key, signing.PLAN_NAMESPACE, moment, parse_time(at) or moment)
        problem = f"signed with {problem}" if problem and problem.startswith("key ") else problem
    return Author(plan.created_by, principals, key, at, problem, commits=recorded, earlier=earlier)


def _author_time_problem(plan: Plan, at: str, moment: datetime) -> str | None:
    signed, created = parse_time(at), parse_time(plan.created_at)
    if signed is None:
        return "its time is not readable"
    if signed > moment + CLOCK_SKEW:
        return f"it is dated {at}, later than now ({_utc(moment)})"
    if created is not None and signed < created:
        return f"it is dated {at}, before the plan was made ({plan.created_at})"
    return None


def require_author(plan: Plan, policy: ApprovalPolicy, author: Author) -> None:
    """Refuse, in one line, a plan whose author is not proven where approvals count, or whose author signature is
    broken anywhere; and, where ``approvals.signed_commits`` is set, one with a commit no listed key signed."""
    if author.broken or (policy.required > 0 and author.problem):
        raise ApprovalError(f"the plan for '{plan.environment}' is refused: {author.problem}; "
                            f"{how_to_sign(plan, policy)}")
    if not policy.signed_commits:
        return
    if plan.commits is None:
        raise ApprovalError(f"the plan for '{plan.environment}' records no commits (it was not planned in a git "
                            "checkout) but approvals.signed_commits is set; plan it again from the repository")
    unsigned = [c for c in author.commits if c.problem]
    if unsigned:
        first = unsigned[0]
        more = f" (and {len(unsigned) - 1} more)" if len(unsigned) > 1 else ""
        raise ApprovalError(f"the plan for '{plan.environment}' is refused: {first.describe()}{more}; "
                            "approvals.signed_commits needs every commit signed by a key in "
                            f"{policy.display} (git -c gpg.format=ssh -c user.signingkey=KEY commit -S)")
    dirty = (plan.commits or {}).get("uncommitted") or []
    if plan.variables:
        raise ApprovalError(f"the plan for '{plan.environment}' is refused: it was rendered with --var "
                            f"{', '.join(sorted(plan.variables))}, which no commit holds; approvals.signed_commits "
                            "needs every input committed and signed")
    if dirty:
        raise ApprovalError(f"the plan for '{plan.environment}' is refused: it was rendered from uncommitted "
                            f"changes ({', '.join(map(str, dirty[:3]))}); approvals.signed_commits needs every "
                            "input committed and signed")


def check_times(plan: Plan, moment: datetime | None = None) -> None:
    """Refuse a plan dated later than now (beyond :data:`CLOCK_SKEW`) or with no readable creation time."""
    moment = moment or datetime.now(timezone.utc)
    created = parse_time(plan.created_at)
    if created is None:
        raise PlanError(f"the plan for '{plan.environment}' has no readable creation time")
    if created > moment + CLOCK_SKEW:
        raise PlanError(f"the plan for '{plan.environment}' is dated {plan.created_at}, later than now "
                        f"({_utc(moment)}): a plan cannot be made in the future; run 'vboplan plan' again")


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
    verdict.principals = trust.principals(verdict.key) if trust else ()
    try:
        signing.verify(signing.canonical(statement), armored, signing.APPROVE_NAMESPACE)
    except signing.SigningError as exc:
        verdict.problem = f"its signature does not verify: {exc}"
        return verdict
    verdict.problem = _statement_problem(plan, statement, verdict) or _time_problem(plan, verdict, author, moment) \
        or _trust_problem(trust, verdict, moment)
    if verdict.problem is None and author.earlier is not None and not author.earlier.lookup(verdict.key):
        verdict.problem = (f"key {verdict.fingerprint} was added to {trust.display if trust else 'allowed_signers'} "
                           "after the last apply, by a commit this plan was rendered from: it approves plans made "
                           "after that change is applied")
    reason = author.excludes(verdict) if verdict.problem is None else None
    if reason:
        verdict.problem = f"{verdict.who} wrote this plan ({reason}); the author's own approval never counts " \
                          "(four-eyes rule)"
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
    # A refresh-only plan has no changes: an approval of it names none and covers it whole.
    if (not verdict.changes and not plan.refresh_only) or unknown:
        return f"it names changes this plan does not have ({', '.join(unknown) or 'none'})"
    return None


def _time_problem(plan: Plan, verdict: Verdict, author: Author, moment: datetime) -> str | None:
    """An approval is given after the plan was made and signed, and not later than now."""
    at = parse_time(verdict.at)
    if at is None:
        return "its time is not readable"
    if at > moment + CLOCK_SKEW:
        return f"it is dated {verdict.at}, later than now ({_utc(moment)})"
    created = parse_time(plan.created_at)
    if created is not None and at < created:
        return f"it is dated {verdict.at}, before the plan was made ({plan.created_at})"
    signed = parse_time(author.signed_at)
    if signed is not None and at < signed:
        return f"it is dated {verdict.at}, before the author signed the plan ({author.signed_at})"
    return None


def _trust_problem(trust: signing.TrustList | None, verdict: Verdict, moment: datetime) -> str | None:
    if trust is None:
        return "the environment has no allowed_signers file to check it against"
    return trust.key_problem(verdict.key, signing.APPROVE_NAMESPACE, moment, parse_time(verdict.at) or moment)


@dataclass
class Review:
    """A plan's author and every approval record, as checked against the environment's trust file."""

    author: Author
    verdicts: list[Verdict]
    trust: signing.TrustList | None


def review(plan: Plan, policy: ApprovalPolicy, moment: datetime | None = None) -> Review:
    """Check ``plan``'s author signature, recorded commits and approvals against ``policy``'s trust file."""
    trust = policy.trust_list() if policy.allowed_signers else None
    moment = moment or datetime.now(timezone.utc)
    author = author_of(plan, trust, moment)
    checked = [check(plan, i, record, trust, author, moment) for i, record in enumerate(plan.approvals, 1)]
    return Review(author, checked, trust)


def verdicts(plan: Plan, policy: ApprovalPolicy, moment: datetime | None = None) -> list[Verdict]:
    """Every approval of ``plan`` checked against ``policy``'s trust file."""
    return review(plan, policy, moment).verdicts


# -- approving ----------------------------------------------------------------------------------------------------


def approve(project: Project, path: Path, key: str | Path, ticket: str | None = None,
            change_ids: tuple[str, ...] = (), comment: str | None = None) -> Verdict:
    """``vboplan approve``: sign an approval of some (default all) changes of the plan file at ``path`` with ``key``
    and add it to the file. Concurrent approvals of one file are serialised by a lock, so none is lost."""
    plan = Plan.load(path)
    env = project.environment(plan.environment)
    policy = env.approvals
    if not plan.changes and not plan.refresh_only:  # a refresh-only plan is approved as a whole (no change ids)
        raise ApprovalError(f"the plan for '{plan.environment}' has no changes to approve")
    if plan.refresh_only and change_ids:
        raise ApprovalError("a refresh-only plan has no changes to pick: approve it without --change")
    from vboplan.policy.enforce import extra_trusts

    others = extra_trusts(project, plan)
    if policy.allowed_signers is None and not others:
        raise ApprovalError(f"environment '{plan.environment}' has no approvals.allowed_signers file, so no approval "
                            "could be checked (approvals.required is 0: apply needs none)")
    moment = datetime.now(timezone.utc)
    check_times(plan, moment)
    trust = policy.trust_list() if policy.allowed_signers is not None else None
    author = author_of(plan, trust, moment)
    require_author(plan, policy, author)
    ids = list(dict.fromkeys(change_ids)) or [change.id for change in plan.changes]
    for change_id in ids:
        plan.change(change_id)  # raises, naming the unknown id
    statement = approval_statement(plan, ids, ticket, comment)
    armored = signing.sign(signing.canonical(statement), key, signing.APPROVE_NAMESPACE)
    record = {"statement": statement, "signature": armored}
    verdict = None
    # The environment's approvers first, then those of the policy rules the plan's verdicts ask for.
    for candidate in ([trust] if trust is not None else []) + others:
        verdict = check(plan, len(plan.approvals) + 1, record, candidate, author_of(plan, candidate, moment), moment)
        if verdict.ok:
            trust = candidate
            break
    assert verdict is not None and trust is not None
    if not verdict.ok:
        raise ApprovalError(f"this approval would not count: {verdict.problem}")
    with _locked(path):
        document = _read_document(path)
        if plan_digest(document) != plan.checksum:
            raise ApprovalError(f"{path}: the plan file changed while signing; it is no longer the plan approved")
        existing = document.setdefault("approvals", [])
        mine = _approved_by(plan, existing, trust, verdict)
        if set(ids) <= mine and (ids or _approved_whole(plan, existing, trust, verdict)):
            raise ApprovalError(f"{verdict.who} has already approved {', '.join(ids)} of this plan")
        existing.append(record)
        atomic_write(path, _dump(document), mode=0o600)
    verdict.index = len(existing)
    return verdict


@dataclass
class Merged:
    """What ``approve --merge`` did: how many records it added and, one line each, those it dropped and why."""

    added: int = 0
    dropped: list[str] = field(default_factory=list)


def merge(project: Project, path: Path, copies: list[Path]) -> Merged:
    """Add to the plan file at ``path`` the approvals found in ``copies`` of the same plan (same digest) that
    verify and count; each other record is dropped and named. Refuses a copy of another plan."""
    plan = Plan.load(path)
    policy = project.environment(plan.environment).approvals
    moment = datetime.now(timezone.utc)
    trust = policy.trust_list() if policy.allowed_signers else None
    author = author_of(plan, trust, moment)
    require_author(plan, policy, author)
    result = Merged()
    gathered = []
    for copy in copies:
        other = Plan.load(copy)
        if other.checksum != plan.checksum:
            raise ApprovalError(f"{copy} is another plan ({other.checksum[:12]}…), not a copy of {path} "
                                f"({plan.checksum[:12]}…)")
        for index, record in enumerate(other.approvals, 1):
            verdict = check(plan, index, record, trust, author, moment)
            if verdict.ok:
                gathered.append(record)
            else:
                result.dropped.append(f"{copy}: {verdict.describe()}: {verdict.problem}")
    with _locked(path):
        document = _read_document(path)
        if plan_digest(document) != plan.checksum:
            raise ApprovalError(f"{path}: the plan file changed while merging")
        existing = document.setdefault("approvals", [])
        for record in gathered:
            if record not in existing:
                existing.append(record)
                result.added += 1
        if result.added:
            atomic_write(path, _dump(document), mode=0o600)
    return result


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


def _approved_whole(plan: Plan, records: list[Any], trust: signing.TrustList, verdict: Verdict) -> bool:
    """Whether the same key or principal as ``verdict`` already approved a plan that has no change ids to name."""
    author = Author(plan.created_by)
    moment = datetime.now(timezone.utc)
    return any(other.ok and (other.key == verdict.key or set(other.principals) & set(verdict.principals))
               for other in (check(plan, i, r, trust, author, moment) for i, r in enumerate(records, 1)))


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
        document = json.loads(read_regular(path, MAX_FILE_BYTES).decode("utf-8"))
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


people = _people  # what the approvers of a policy rule are counted by too (vboplan.policy.enforce)


def _trusted_elsewhere(plan: Plan, verdict: Verdict, others: list[signing.TrustList], moment: datetime) -> bool:
    """Whether an approval that ``verdict`` says does not count for the environment verifies against one of
    ``others`` (the approvers of a policy rule, who sign beside the environment's own)."""
    record = plan.approvals[verdict.index - 1]
    return any(check(plan, verdict.index, record, trust, author_of(plan, trust, moment), moment).ok
               for trust in others)


def clear(plan: Plan, policy: ApprovalPolicy, moment: datetime | None = None,
          also_trusted: list[signing.TrustList] | None = None) -> Clearance:
    """Decide which changes the approvals clear. Raises :class:`ApprovalError` when the author is not proven (where
    approvals count) or when a change is short of ``policy.required`` distinct approvals, listing one line each the
    changes short and every approval that does not count. Records that do not count never block a plan their
    others approve: they are named in the notes. ``also_trusted``: the trust files of policy rules whose approvers
    sign too; their approvals are no problem here (they count for their rules, never towards ``policy.required``)."""
    result = Clearance()
    checked = review(plan, policy, moment)
    require_author(plan, policy, checked.author)
    result.verdicts = checked.verdicts
    at = moment or datetime.now(timezone.utc)
    problems = [f"{v.describe()}: {v.problem}" for v in result.verdicts
                if not v.ok and not (also_trusted and _trusted_elsewhere(plan, v, also_trusted, at))]
    if policy.required == 0:
        result.approved = list(plan.changes)
        return result
    good = [v for v in result.verdicts if v.ok]
    if not plan.changes and problems and not good:
        # Nothing left to send and no approval of it verifies (its rows were dropped after they were approved):
        # refused, not recorded as an apply that nobody approved.
        raise ApprovalError(f"the plan for '{plan.environment}' is refused: it has no change left and none of its "
                            "approvals verifies:\n" + "\n".join(f"  - {x}" for x in problems))
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
    if partial or (plan.changes and not result.approved):
        lines = problems + partial
        if plan.changes and not result.approved and not partial:
            lines.append(f"no change has {policy.required} distinct approvals; approvers sign with "
                         f"'vboplan approve PLANFILE --key KEY' (keys in {policy.display})")
        raise ApprovalError(f"the plan for '{plan.environment}' is refused:\n" + "\n".join(f"  - {x}" for x in lines))
    result.notes = [f"ignoring {line} (the other approvals suffice)" for line in problems]
    return result


def check_fresh(plan: Plan, policy: ApprovalPolicy, snapshot: dict[str, Any] | None,
                moment: datetime | None = None) -> None:
    """Refuse a plan dated in the future, too old (``max_age`` counts from the later of its creation and its
    author's signature), applied already, or older than a later apply of its environment."""
    moment = moment or datetime.now(timezone.utc)
    check_times(plan, moment)
    created = parse_time(plan.created_at)
    assert created is not None  # check_times refuses a plan without one
    statement = (plan.author_signature or {}).get("statement") if isinstance(plan.author_signature, dict) else None
    signed = parse_time(statement.get("at")) if isinstance(statement, dict) else None
    start = max(created, signed) if signed is not None and signed <= moment + CLOCK_SKEW else created
    limit = start + timedelta(seconds=policy.max_age)
    expires = parse_time(plan.expires_at)
    if expires is not None:
        limit = min(limit, expires)
    if moment > limit:
        raise PlanError(f"the plan for '{plan.environment}' was made at {plan.created_at}"
                        + (f" and signed at {_utc(signed)}" if signed is not None and signed != created else "")
                        + f" and expired at {_utc(limit)} (max_age {_duration(policy.max_age)}); "
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


def last_apply_commit(plan: Plan, applied_all: bool) -> str | None:
    """The commit a later plan of this environment lists commits since: this plan's head when it was applied whole
    (nothing skipped, failed or left out by --target or --exclude; a refresh-only plan applies none), otherwise
    the commit it listed since, so the authors of what is still pending stay authors of the next plan."""
    recorded = plan.commits if isinstance(plan.commits, dict) else {}
    whole = applied_all and not plan.targets and not plan.excluded and not plan.refresh_only
    value = recorded.get("head") if whole else recorded.get("since")
    return value if isinstance(value, str) else None


def applied_entry(plan: Plan) -> dict[str, Any]:
    """What the state snapshot remembers of an applied plan (so it never applies twice)."""
    return {"digest": plan.checksum, "created_at": plan.created_at, "applied_at": now()}


def _duration(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
