"""Plans: the changes that would turn live settings into desired ones, their checksum, and the plan file."""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec

from vboplan import progress
from vboplan.api.client import VboClient
from vboplan.errors import PlanError, ProjectError
from vboplan.jsontext import Encodings, canonical_digest, document_chunks, document_text
from vboplan.kinds import refs
from vboplan.kinds.base import AfterApply, Basis, Write
from vboplan.kinds.hooks import ConcealsLive, Condenses, Declares, FollowsReplaces, Refers, Repoints, Uses
from vboplan.kinds.lifecycle import marked, protects
from vboplan.kinds.registry import KINDS, capable
from vboplan.planning.changes import ACTIONS, Address, Change, Drift
from vboplan.planning.selection import select_changes
from vboplan.project.config import Environment, current_user, name_problem
from vboplan.project.render import Rendered
from vboplan.sensitive import MASK, Sensitive, conceal_live, digest_of, is_digest, mask_recorded
from vboplan.shapes import PLAN_FILE, problem, read_json
from vboplan.state import atomic_write, now
from vboplan.threads import ThreadPoolExecutor

FORMAT_VERSION = 1


@dataclass
class Plan:
    """What would change on one environment's server, and the live values that was computed against."""

    environment: str
    server: str
    api_version: str
    changes: list[Change]
    live: dict[str, Any]
    scope: dict[str, Any]
    created_by: str = field(default_factory=current_user)
    created_at: str = field(default_factory=now)
    drift: list[Drift] = field(default_factory=list)
    approvals: list[dict[str, Any]] = field(default_factory=list)
    digests: dict[str, Any] = field(default_factory=dict)   # change id -> salted hash of a sensitive value
    allow_mass_delete: bool = False   # planned with --allow-mass-delete (see vboplan.planning.guard)
    targets: list[str] = field(default_factory=list)   # --target: a partial plan when not empty
    excluded: list[str] = field(default_factory=list)  # --exclude: a partial plan when not empty
    variables: dict[str, Any] = field(default_factory=dict)  # --var KEY=VALUE, as apply renders them again
    # --refresh-only: no change is planned; apply records the live values in the state and writes nothing.
    refresh_only: bool = False
    checksum: str = ""
    expires_at: str = ""
    secret_fields: dict[str, list[str]] = field(default_factory=dict)  # resource -> fields whose value is secret
    author_key: str | None = None          # the author's SSH public key, when the plan is signed
    author_signature: dict[str, Any] | None = None
    # Where the plan came from (vboplan.trust.commits): the commits that touched its inputs since the last apply.
    commits: dict[str, Any] | None = None
    # What the plan's author should know that is no change (e.g. an address forgotten with 'state rm'); not saved.
    notes: list[str] = field(default_factory=list, repr=False, compare=False)
    verdicts: list[dict[str, Any]] = field(default_factory=list)   # policy verdicts (see vboplan.policy)
    policy_exceptions: list[dict[str, Any]] = field(default_factory=list)   # the exceptions the verdicts used
    # The JSON of large values (``live``, ``scope``) as the checksum encoded them, reused when the file is written.
    _encoded: Encodings = field(default_factory=dict, repr=False, compare=False)
    _rated: tuple[tuple[str, ...] | None, dict[str, Any]] = field(default=(None, {}), repr=False, compare=False)
    # The change records last made (see change_records), with the changes and digests they were made of.
    _records: tuple[tuple[Change, ...], dict[str, Any], list[dict[str, Any]]] | None = field(
        default=None, repr=False, compare=False)

    def counts(self) -> Counter[str]:
        return Counter(change.action for change in self.changes)

    def summary(self) -> str:
        if self.refresh_only:
            count = len(self.drift)
            return (f"Refresh only: {count} value{'s' if count != 1 else ''} changed outside vboplan will be recorded "
                    "in the state; nothing is sent to the server." if count else
                    "Refresh only: nothing changed outside vboplan; apply would record the live values as they are.")
        if not self.changes and (self.targets or self.excluded):
            if self.targets:
                named = " ".join(f"--target {t}" for t in self.targets)
                return f"No changes: {named} matched no change (anything else is left out of this plan)."
            return f"No changes outside {' '.join(f'--exclude {x}' for x in self.excluded)}."
        if not self.changes:
            return "No changes. The server matches the templates."
        counts = self.counts()
        parts = [f"{counts[action]} to {action}" for action in ACTIONS]
        return f"Plan: {', '.join(parts)}."

    @property
    def severities(self) -> dict[str, Any]:
        """Each change's :class:`~vboplan.policy.severity.Severity` by change id, as its kind rates it."""
        from vboplan.policy.severity import rate_all

        key = tuple(c.id for c in self.changes)
        if self._rated[0] != key:
            self._rated = (key, rate_all(self.changes))
        return self._rated[1]

    def change(self, change_id: str) -> Change:
        for change in self.changes:
            if change.id == change_id:
                return change
        raise PlanError(f"plan for '{self.environment}' has no change '{change_id}' "
                        f"(changes: {', '.join(c.id for c in self.changes) or 'none'})")

    # -- serialisation -----------------------------------------------------------------------------------------

    def change_records(self) -> list[dict[str, Any]]:
        """The changes as the plan file records them. The same list while the changes and their digests are the same
        objects: the checksum (computed twice when planning) and the file then encode them once (``_encoded``)."""
        held = self._records
        if held is not None and len(held[0]) == len(self.changes) \
                and all(a is b for a, b in zip(held[0], self.changes, strict=True)) \
                and held[1].keys() == self.digests.keys() and all(held[1][k] is v for k, v in self.digests.items()):
            return held[2]
        records = []
        severities = self.severities
        for change in self.changes:
            rated = severities[change.id]
            record: dict[str, Any] = {
                "id": change.id, "address": str(change.address), "action": change.action,
                "before": None if change.sensitive else change.before,
                "after": None if change.sensitive else change.after,
                "sensitive": change.sensitive, "kind": change.kind, "detail": change.detail,
                "severity": rated.level, "severity_reason": rated.reason,
            }
            if change.sensitive:
                record["after_digest"] = self.digests.get(change.id)
            records.append(record)
        self._records = (tuple(self.changes), dict(self.digests), records)
        return records

    def compute_checksum(self) -> str:
        """The plan's digest: sha256 over everything in the plan file except the signatures made over it."""
        # Encoded straight from the plan (json's C encoder, sensitive values masked), not through a decoded copy:
        # the plan's values are JSON data already, so the bytes are those plan_digest gives for the saved file.
        return plan_digest(self.to_dict(), default=_no_secrets, cache=self._encoded)

    def to_dict(self) -> dict[str, Any]:
        counts = self.counts()
        return {
            "format_version": FORMAT_VERSION, "environment": self.environment, "server": self.server,
            "api_version": self.api_version, "created_by": self.created_by, "created_at": self.created_at,
            "checksum": self.checksum, "summary": {action: counts[action] for action in ACTIONS},
            "changes": self.change_records(),
            "changed_outside": [{"address": str(d.address), "recorded": d.recorded, "live": d.live,
                                 **({"status": d.status} if d.status else {})} for d in self.drift],
            "live": self.live, "scope": self.scope, "expires_at": self.expires_at,
            "allow_mass_delete": self.allow_mass_delete, "partial": bool(self.targets or self.excluded),
            "targets": self.targets,
            # Only when used, so that the plan files (and digests) of plans without them stay as they were.
            **({"excluded": self.excluded} if self.excluded else {}),
            **({"variables": self.variables} if self.variables else {}),
            **({"refresh_only": True} if self.refresh_only else {}),
            "secret_fields": self.secret_fields, "author_key": self.author_key,
            "author_signature": self.author_signature, "approvals": self.approvals,
            **({"commits": self.commits} if self.commits is not None else {}),
            "verdicts": self.verdicts, "exceptions": self.policy_exceptions,
        }

    def to_json(self) -> str:
        """The plan file's text (see :func:`jsontext.document_text`)."""
        return document_text(self.to_dict(), default=_no_secrets, cache=self._encoded)

    def save(self, path: Path) -> None:
        atomic_write(path, document_chunks(self.to_dict(), default=_no_secrets, cache=self._encoded), mode=0o600)

    @classmethod
    def load(cls, path: Path) -> Plan:
        """Read a plan file and prove it was not altered since planning (its checksum still holds)."""
        # Keys named twice are refused: a JSON reader an approver uses might show the other value than vboplan's.
        data = read_json(path, str(path), PlanError, "plan file", unique_keys=True)
        if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
            raise PlanError(f"{path}: not a vboplan plan file of format {FORMAT_VERSION}")
        wrong = problem(data, PLAN_FILE)
        if wrong:
            raise PlanError(f"{path}: not a valid plan file: {wrong}")
        if name_problem(data["environment"]):  # it names files and is printed: no path, no control character
            raise PlanError(f"{path}: not a valid plan file: its environment is not an environment name")
        try:
            if any(r["action"] not in ACTIONS for r in data["changes"]):
                raise PlanError(f"{path}: plan file names an unknown action")
            plan = cls(environment=data["environment"], server=data["server"], api_version=data["api_version"],
                       changes=[], live=data["live"], scope=data["scope"], created_by=data["created_by"],
                       created_at=data["created_at"], approvals=list(data.get("approvals") or []),
                       digests={r["id"]: r.get("after_digest") for r in data["changes"] if r.get("sensitive")},
                       drift=[Drift(d["address"], d["recorded"], d["live"], status=str(d.get("status") or ""))
                              for d in data.get("changed_outside", [])],
                       checksum=data["checksum"], expires_at=str(data.get("expires_at") or ""),
                       allow_mass_delete=bool(data.get("allow_mass_delete", False)),
                       targets=[str(t) for t in data.get("targets") or []],
                       excluded=[str(t) for t in data.get("excluded") or []],
                       variables=dict(data.get("variables") or {}),
                       refresh_only=data.get("refresh_only") is True,
                       secret_fields=dict(data.get("secret_fields") or {}), author_key=data.get("author_key"),
                       author_signature=data.get("author_signature"), commits=data.get("commits"),
                       verdicts=list(data.get("verdicts") or []),
                       policy_exceptions=list(data.get("exceptions") or []))
        except (KeyError, TypeError) as exc:
            raise PlanError(f"{path}: plan file is incomplete (missing {exc})") from None
        _check_variables(path, plan.variables)
        # The digest is computed from the file as it is, so that nothing in it escapes the signatures over it.
        if plan_digest(data) != plan.checksum:
            raise PlanError(f"{path}: the plan file was altered after planning (its checksum no longer matches); "
                            "run 'vboplan plan' again")
        # What apply acts on is derived from each row's address, action and desired value, the schema and the
        # recorded live values; a row that says anything else was edited.
        plan.changes = derived_rows(plan, data["changes"], str(path))
        _check_selection(plan, str(path))
        from vboplan.policy.severity import check_recorded

        check_recorded(plan, data["changes"], str(path))
        return plan


def _check_variables(path: Path, variables: dict[str, Any]) -> None:
    """The ``--var`` values a plan records: dotted names and YAML scalars, as ``plan --var`` makes them."""
    from vboplan.errors import ProjectError
    from vboplan.project.overrides import check_key

    for key, value in variables.items():
        try:
            check_key(key, f"{path}: variables")
        except ProjectError as exc:
            raise PlanError(str(exc)) from None
        if value is not None and not isinstance(value, (str, int, float, bool)):
            raise PlanError(f"{path}: variables.{key} must be a single value, as --var sets it")


UNSIGNED = ("checksum", "approvals", "author_signature")  # what is added to a plan file after its digest


def plan_digest(document: dict[str, Any], default: Callable[[Any], Any] | None = None,
                cache: Encodings | None = None) -> str:
    """sha256 over the canonical JSON of a plan document without its checksum and the signatures over it."""
    covered = {k: v for k, v in document.items() if k not in UNSIGNED}
    return canonical_digest(covered, default, cache)


# Change ids: letters and digits that cannot be misread for one another (no 0/o, 1/l/i).
_ID_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
ID_LENGTH = 5


def change_id(address: Address | str, length: int = ID_LENGTH) -> str:
    """A short id derived from the change's address alone, so the same change keeps its id across re-plans (an
    approval given with ``--change`` names the same change tomorrow): ``c`` and ``length`` letters."""
    number = int.from_bytes(hashlib.sha256(str(address).encode("utf-8")).digest()[:16], "big")
    letters = []
    for _ in range(length):
        number, digit = divmod(number, len(_ID_ALPHABET))
        letters.append(_ID_ALPHABET[digit])
    return "c" + "".join(letters)


def change_ids(addresses: list[Address]) -> dict[str, str]:
    """Ids for the addresses of one plan: two addresses that would share an id both get longer ones."""
    ids = {str(a): change_id(a) for a in addresses}
    length = ID_LENGTH
    while len(set(ids.values())) < len(ids):
        length += 2
        taken: dict[str, int] = {}
        for i in ids.values():
            taken[i] = taken.get(i, 0) + 1
        ids = {a: (change_id(a, length) if taken[i] > 1 else i) for a, i in ids.items()}
    return ids


def _no_secrets(value: Any) -> Any:
    if isinstance(value, Sensitive):
        return MASK
    raise TypeError(f"cannot serialise {type(value).__name__}")


_ENCODER = msgspec.json.Encoder(enc_hook=_no_secrets)


def make_plan(env: Environment, client: VboClient, rendered: Rendered, recorded: dict[str, Any],
              targets: tuple[str, ...] = (), allow_mass_delete: bool = False, excluded: tuple[str, ...] = (),
              refresh_only: bool = False) -> Plan:
    """Read the live values the templates concern and compare: the plan for ``env`` (only the changes
    ``targets`` and ``excluded`` select, see :func:`~vboplan.planning.selection.select_changes`)."""
    live: dict[str, Any] = {}
    scope: dict[str, Any] = {}
    secret_fields: dict[str, list[str]] = {}
    changes: list[Change] = []
    drift: list[Drift] = []
    names = [name for name in KINDS if name in rendered.resources]  # not in any template: not managed, not read
    for name in names:
        scope[name] = KINDS[name].scope(rendered.resources[name])
    reads = read_live(client, scope)
    for name in names:
        desired, read = rendered.resources[name], reads[name]
        kind = KINDS[name]
        # A field kept as a hash by the snapshot was secret when last applied: its live value stays masked.
        found = mask_recorded(kind.diff(env.api_version, read, desired, recorded.get(name)), recorded.get(name))
        if capable(kind, FollowsReplaces):
            found = kind.follow(env.api_version, read, desired, found, changes)
        if name in recorded:
            drift.extend(kind.drift(recorded[name], read))
        # A field whose desired value is secret is secret when read live too: only a salted hash is kept.
        live[name], secret = kind.conceal(read, desired) if capable(kind, ConcealsLive) else \
            conceal_live(read, desired, recorded.get(name))
        live[name] = condensed(name, live[name], found)
        if secret:
            secret_fields[name] = secret
        # The plan's rows are what the kind derives from each change's address and the recorded live values: what
        # a plan file is checked against when it is loaded, and what apply derives again.
        basis = Basis(env.api_version, live[name], scope[name], tuple(secret), live)
        changes.extend(_derived(kind, basis, change, scope.get("lifecycle")) for change in found)
    check_references(changes, rendered, reads)
    everything = changes
    if targets or excluded:
        managed = {a for name in scope for a in KINDS[name].addresses(scope[name])}
        changes = select_changes(env.name, changes, managed, targets, excluded, refers_to)
    if refresh_only:
        changes = []  # what changed outside vboplan (drift) is what such a plan is about; nothing is written
    check_replacements(changes, rendered, reads, scope.get("lifecycle") or {})
    refs.check_unmanaged_users(client, changes, lambda c: _declared_at(c, rendered), reads)
    split = split_replace(everything, changes)
    if split:
        raise PlanError(f"environment '{env.name}': --target/--exclude keep only part of the replace of {split[0]} "
                        f"(not {', '.join(str(c.address) for c in split[1])}); target the object as a whole")
    changes += move_rows(changes, lambda name: Basis(env.api_version, live[name], scope[name],
                                                     tuple(secret_fields.get(name) or ()), live), live)
    ids = change_ids([c.address for c in changes])
    changes = [replace(c, id=ids[str(c.address)]) for c in changes]
    plan = Plan(environment=env.name, server=env.server, api_version=env.api_version, changes=changes,
                live=live, scope=scope, drift=drift, secret_fields=secret_fields,
                allow_mass_delete=allow_mass_delete, targets=list(targets), excluded=list(excluded),
                variables=dict(env.variables), refresh_only=refresh_only)
    created = datetime.fromisoformat(plan.created_at.replace("Z", "+00:00")).astimezone(timezone.utc)
    plan.expires_at = (created + timedelta(seconds=env.approvals.max_age)).strftime("%Y-%m-%dT%H:%M:%SZ")
    plan.digests = {c.id: digest_of(c.after) for c in changes if isinstance(c.after, Sensitive)}
    plan.checksum = plan.compute_checksum()
    return plan


def _declared_at(change: Change, rendered: Rendered) -> str:
    """Where the templates declare the object ``change`` concerns (``file:line``), or an empty string."""
    kind = KINDS.get(change.kind)
    if not capable(kind, Declares) or change.kind not in rendered.resources:
        return ""
    where = kind.declared_at(rendered.resources[change.kind], change.address.parts[0][1])
    return "" if where == change.kind else where


def refers_to(change: Change) -> list[Address]:
    """The objects ``change`` refers to (none for a kind without references)."""
    kind = KINDS.get(change.kind)
    return kind.refers_to(change) if capable(kind, Refers) else []


def check_references(changes: list[Change], rendered: Rendered, reads: dict[str, Any]) -> None:
    """Refuse a reference to an object that is neither on the server nor created by the same plan, naming the
    file and line that declares the referring object."""
    created = {str(c.address).lower() for c in changes if c.action == "create"}
    for name, desired in rendered.resources.items():
        kind = KINDS.get(name)
        if not capable(kind, Refers) or name not in reads:
            continue
        for change, other, key in kind.pending([c for c in changes if c.kind == name], reads[name]):
            if str(Address(other).entry(key)).lower() in created:
                continue
            where = kind.declared_at(desired, change.address.parts[0][1]) if capable(kind, Declares) else name
            raise ProjectError(f"{where}: {Address(name, change.address.parts[:1])}: no {other} named '{key}' on "
                               "the server or in the templates")
    _check_in_use(changes, reads)


def _check_in_use(changes: list[Change], reads: dict[str, Any]) -> None:
    """Refuse deleting an object another live object still refers to after the plan (the server refuses it)."""
    found = _deleted_in_use(changes, reads)
    if found:
        change, user, through = found
        raise ProjectError(_remedied(f"{change.address} cannot be deleted: {user} uses it ({through}); change or "
                           f"delete {user} in the same plan first", user, reads))


def _deleted_in_use(changes: list[Change], reads: dict[str, Any]) -> tuple[Change, Address, str] | None:
    """The first delete of ``changes`` whose object a live object of ``reads`` still uses after them, with that
    object and its field (None: none)."""
    deleted = {str(c.address).lower() for c in changes if c.action == "delete" and len(c.address.parts) == 1}
    changed = {str(c.address).lower() for c in changes if c.action == "update"}
    for change in (c for c in changes if str(c.address).lower() in deleted):
        key = change.address.parts[0][1]
        for name, live in reads.items():
            kind = KINDS.get(name)
            if not capable(kind, Uses):
                continue
            for user, through in kind.users(live, change.kind, key):
                if str(user).lower() in deleted or str(user.field(through)).lower() in changed:
                    continue
                return change, user, through
    return None


def check_still_used(changes: list[Change], live: dict[str, Any]) -> None:
    """Refuse ``changes`` (a plan file's, or the part of them approved) when one deletes or replaces an object that
    a live object the plan recorded still uses after them: what planning refuses (see :func:`check_references` and
    :func:`check_replacements`) or plans with it (a copy job replaced with its job), held again to the rows apply
    carries out, so that no DELETE is sent that leaves an object pointing at nothing or that the server refuses
    halfway through."""
    if not any(c.action in ("delete", "replace") for c in changes):
        return
    found = _deleted_in_use(changes, live)
    if found:
        change, user, through = found
        raise PlanError(_remedied(f"{change.id} ({change.address}) would be deleted while {user} uses it ({through}), "
                                  "which the same apply does not change or delete; run 'vboplan plan' again", user,
                                  live))
    for change in (c for c in changes if c.action == "replace" and len(c.address.parts) == 1):
        user_of = _dependant(change, changes, live)
        if user_of:
            raise PlanError(_remedied(f"{change.id} ({change.address}) would be replaced while {user_of[0]} "
                                      f"({user_of[1]}) uses it, which the same apply does not replace, delete or "
                                      "point to another object; run 'vboplan plan' again", user_of[0], live))


def check_replacements(changes: list[Change], rendered: Rendered, reads: dict[str, Any],
                       rules: dict[str, dict[str, bool]]) -> None:
    """Refuse a delete or replace of an object whose ``lifecycle`` has ``prevent_destroy`` (as Terraform refuses
    such a plan, rather than leaving its apply to), a replace its ``lifecycle`` does not allow (``allow_replace``),
    and one of an object something else still refers to after the plan (the server would refuse the DELETE), naming
    the file and line of the replaced object, its address and why it cannot change in place."""
    for change in changes:
        if change.action == "delete" and len(change.address.parts) == 1 and protects(rules, change.address):
            raise ProjectError(f"{change.address}: no template declares the object any more, so the plan would "
                               "delete it, but its lifecycle has prevent_destroy: true; declare it again, or set "
                               "prevent_destroy: false for it first")
    replacing = [c for c in changes if c.action == "replace"]
    if not replacing:
        return
    protected = rules
    rules = {address.lower(): rule for address, rule in rules.items()}
    for change in replacing:
        key = change.address.parts[0][1]
        kind = KINDS[change.kind]
        where = kind.declared_at(rendered.resources.get(change.kind), key) if capable(kind, Declares) else \
            change.kind
        reason = str(change.detail.get("reason") or "it cannot change in place")
        rule = rules.get(str(change.address).lower()) or {}
        if protects(protected, change.address):
            raise ProjectError(f"{where}: {change.address}: {reason}, so the plan would replace the object (delete it, "
                               "then create it again), but its lifecycle has prevent_destroy: true")
        if not rule.get("allow_replace"):
            raise ProjectError(f"{where}: {change.address}: {reason}, so the plan would replace the object (delete it, "
                               f"then create it again); allow that with lifecycle: {{'{change.address}': "
                               "{allow_replace: true}}")
        if change.detail.get("create_before_destroy"):
            spec = getattr(kind, "spec", None)
            if not getattr(spec, "shared_key", False):
                raise ProjectError(f"{where}: {change.address}: {reason}, and its lifecycle has create_before_destroy: "
                                   f"true, but the server keeps one {change.kind} object per "
                                   f"{getattr(spec, 'key_field', 'name')}: the new one cannot be created beside the "
                                   "old one")
        user = _dependant(change, changes, reads)
        if user:
            raise ProjectError(_remedied(f"{where}: {change.address}: {reason}, so the plan would replace the object, "
                                         f"but {user[0]} ({user[1]}) uses it; replace or delete that in the same "
                                         "plan, or point it to another object first", user[0], reads))


def split_replace(changes: list[Change], kept: list[Change]) -> tuple[Address, list[Change]] | None:
    """A replace that ``kept`` (a part of ``changes``: a selection, the approved changes) splits, with the rows of
    its object left out: its DELETE must not go without the POST of everything the new object needs (its secrets),
    nor a secret without its object. None when ``kept`` keeps each replaced object whole or not at all."""
    objects = {(c.kind, c.address.parts[:1]) for c in changes if c.action == "replace"}
    if not objects:
        return None
    held = {str(c.address) for c in kept}
    for kind, parts in sorted(objects):
        rows = [c for c in changes if (c.kind, c.address.parts[:1]) == (kind, parts)]
        out = [c for c in rows if str(c.address) not in held]
        if out and len(out) < len(rows):
            return Address(kind, parts), out
    return None


def _remedied(message: str, user: Address, reads: dict[str, Any]) -> str:
    """``message`` (ending in what to do about ``user``, a live object in the way of a delete or replace), told
    instead, when no template declares ``user``'s kind (a kind that knows what uses its objects reports it: a
    backup job its copy job), that vboplan leaves it as it is and how to change that."""
    if user.kind in reads:
        return message
    return (f"{message.rsplit('; ', 1)[0]}; no template declares {user.kind}, so vboplan leaves {user} as it is: "
            "declare it in a template ('vboplan import' writes it) so that the plan replaces or deletes it too, or "
            "remove it on the server first")


def _dependant(replaced: Change, changes: list[Change], reads: dict[str, Any]) -> tuple[Address, str] | None:
    """A live object that still refers to ``replaced`` after the plan without being replaced or deleted itself, with
    its field (None: none): its reference the plan leaves as it is. An object the plan creates, or one it points at the
    replaced object, is sent after the replace's create, with the new id (see :func:`ordered_writes`)."""
    gone = {str(c.address).lower() for c in changes if c.action in ("replace", "delete") and len(c.address.parts) == 1}
    target = str(replaced.address).lower()
    moved = {str(c.address).lower(): c for c in changes if c.action == "update"}
    ahead = bool(replaced.detail.get("create_before_destroy"))
    for user, through in _users(reads, replaced):
        update = moved.get(str(user.field(through)).lower())
        if str(user).lower() in gone or (update is not None and target not in
                                         (str(a).lower() for a in refers_to(update))):
            continue
        if ahead and "." not in through and capable(KINDS.get(user.kind), Repoints):
            continue  # moved to the new object before the old one is deleted
        return user, through
    return None


def waves(names: list[str]) -> list[list[str]]:
    """``names`` in groups read one after the other: each kind after the kinds it requires (which it may use, through
    the client's resolver, without reading them again)."""
    left, done, out = list(names), set(), []
    while left:
        ready = [n for n in left if all(r in done or r not in names for r in KINDS[n].requires)] or left[:1]
        out.append(ready)
        done |= set(ready)
        left = [n for n in left if n not in done]
    return out


def read_live(client: VboClient, scope: dict[str, Any], read: Callable[[str], Any] | None = None,
              doing: str = "reading") -> dict[str, Any]:
    """The live values of every kind in ``scope`` (``read(name)``, by default the kind's full read), in waves (see
    :func:`waves`); the kinds of one wave are read concurrently, so this costs the longest chain of dependent round
    trips, not their sum (the client bounds what is in flight). Progress names the kinds still being read."""
    found: dict[str, Any] = {}
    for wave in waves(list(scope)):
        found.update(_read_wave(client, {name: scope[name] for name in wave}, read, doing))
    return {name: found[name] for name in scope}


def _read_wave(client: VboClient, scope: dict[str, Any], read: Callable[[str], Any] | None,
               doing: str) -> dict[str, Any]:
    reader = read or (lambda name: KINDS[name].read(client, scope[name]))
    pending = list(scope)
    lock = threading.Lock()

    def one(name: str) -> Any:
        try:
            return reader(name)
        finally:
            with lock:
                pending.remove(name)
                if pending:
                    progress.phase(f"{doing} {', '.join(pending)}", client.settings.name)

    if pending:
        progress.phase(f"{doing} {', '.join(pending)}", client.settings.name)
    if len(scope) <= 1:
        return {name: one(name) for name in scope}
    with ThreadPoolExecutor(max_workers=len(scope)) as pool:
        futures = {name: pool.submit(one, name) for name in scope}
        return {name: future.result() for name, future in futures.items()}


def condensed(name: str, live: Any, changes: list[Change] | None = None) -> Any:
    """``live`` of kind ``name`` in the form a plan file keeps (and an apply compares): what the kind's ``condense``
    makes of it, where it has one (keeping what ``changes`` refer to)."""
    kind = KINDS.get(name)
    return kind.condense(live, changes) if capable(kind, Condenses) else live


def basis(plan: Plan, name: str, live: dict[str, Any] | None = None, replaced: frozenset[str] = frozenset()) -> Basis:
    """What kind ``name``'s changes in ``plan`` are derived from: the recorded live values, or ``live`` (every
    kind's, read again by apply); ``replaced``: the objects the writes replace (see :func:`ordered_writes`)."""
    every = plan.live if live is None else live
    return Basis(plan.api_version, every.get(name), plan.scope.get(name), tuple(plan.secret_fields.get(name) or ()),
                 every, replaced)


def ordered_writes(plan: Plan, changes: list[Change]) -> list[Write]:
    """The writes that carry out ``changes`` (derived from ``plan``), in the fixed order: creates and updates kind by
    kind (a kind after the kinds it requires); then replaces, their DELETEs in the reverse order (an object that
    refers to another before it) and their POSTs in order (the other first, its new id known after apply); then the
    creates and updates that refer to a replaced object (or to an object created after one), with its new id; then
    deletes in the reverse order. So nothing is removed while something still needs it (a plan whose changes would
    leave a deleted or replaced object in use is refused, see :func:`check_still_used`) and nothing is created
    before what it refers to. A pure function of the plan: what ``show --requests`` lists is what apply sends."""
    check_still_used(changes, plan.live)
    order = list(KINDS)
    # The rows of a replaced object (the replace and its secrets) are carried out by its replace.
    objects = {(c.kind, c.address.parts[:1]) for c in changes if c.action == "replace"}
    replaced = frozenset(str(Address(kind, parts)) for kind, parts in objects)
    inside = [c for c in changes if (c.kind, c.address.parts[:1]) in objects] if objects else []
    rest = [c for c in changes if (c.kind, c.address.parts[:1]) not in objects] if objects else changes
    later = _after_replaces(rest, replaced) if replaced else []
    if later:  # the moves of create_before_destroy (see move_rows) by address, whatever the file's order of rows
        later = [c for c in later if not c.detail.get("moves_to")] + sorted(
            (c for c in later if c.detail.get("moves_to")), key=lambda c: str(c.address).lower())
    if later:
        rest = [c for c in rest if not any(c is d for d in later)]
    # An object deleted that uses a replaced one (a copy job in no template's list, of a job moved) goes before the
    # replace's DELETE, which the server refuses while it is in use.
    using = {str(u).lower() for c in changes if c.action == "replace" for u, _ in _users(plan.live, c)}
    first = [c for c in rest if c.action == "delete" and len(c.address.parts) == 1 and str(c.address).lower() in using]
    if first:
        rest = [c for c in rest if not any(c is d for d in first)]
    writes: list[Write] = []

    def creates_and_updates(of: list[Change]) -> None:
        nonlocal writes
        for name in order:
            mine = [c for c in of if c.kind == name and c.action == "create"]
            mine += [c for c in of if c.kind == name and c.action == "update"]
            writes += KINDS[name].writes(basis(plan, name, replaced=replaced), mine) if mine else []

    creates_and_updates(rest)
    halves = {name: KINDS[name].writes(basis(plan, name, replaced=replaced), [c for c in inside if c.kind == name])
              for name in order if any(c.kind == name for c in inside)}
    for name in reversed(order):
        mine = [c for c in first if c.kind == name]
        writes += KINDS[name].writes(basis(plan, name, replaced=replaced), mine) if mine else []
    for name in reversed(order):
        writes += [w for w in halves.get(name, []) if _removes(w) and not _before_destroy(w)]
    for name in order:
        writes += [w for w in halves.get(name, []) if not _removes(w)]
    creates_and_updates(later)
    writes += _moves(plan, changes, replaced)
    for name in reversed(order):
        # A create_before_destroy replace deletes its old object here, once the moves above left nothing using it.
        writes += [w for w in halves.get(name, []) if _removes(w) and _before_destroy(w)]
        mine = [c for c in rest if c.kind == name and c.action == "delete"]
        writes += KINDS[name].writes(basis(plan, name, replaced=replaced), mine) if mine else []
    _check_assigned(writes)
    return writes


def _check_assigned(writes: list[Write]) -> None:
    """Refuse ``writes`` when a request uses the id of an object no earlier write creates: a reference by name to
    something neither the recorded live values hold nor the apply creates (a row naming another object, or whose
    create is left out of the approvals). Refused before anything is sent, not when that request comes up."""
    known: set[str] = set()
    for write in writes:
        for request in write.requests:
            missing = next((v.address for v in _assigned_ids(request.ids, request.body) if v.address not in known),
                           None)
            if missing is not None:
                rows = ", ".join(f"{c.id} ({c.address})" for c in write.changes)
                raise PlanError(f"{rows} refers to {missing}, which the server did not hold when the plan was made "
                                "and which this apply does not create (the plan file was edited, or its create is "
                                "not approved); run 'vboplan plan' again")
            if request.assigns:
                known.add(str(request.assigns))
        known.update(str(a) for a in write.learns)


def _assigned_ids(*values: Any) -> list[AfterApply]:
    """Every :class:`AfterApply` in ``values`` (request paths' ids and bodies), at any depth."""
    found: list[AfterApply] = []
    stack = list(values)
    while stack:
        value = stack.pop()
        if isinstance(value, AfterApply):
            found.append(value)
        elif isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, (list, tuple)):
            stack.extend(value)
    return found


def _before_destroy(write: Write) -> bool:
    """A write of a replace that creates the new object before it deletes the old (``create_before_destroy``)."""
    return any(c.detail.get("create_before_destroy") or "replaces" in c.detail for c in write.changes)


def _moves(plan: Plan, changes: list[Change], replaced: frozenset[str]) -> list[Write]:
    """Refuse ``changes`` (the approved rows) when a ``create_before_destroy`` replace goes without the rows moving
    the live objects that use the old object onto the new one (see :func:`move_rows`), or such a row without its
    replace: the moves are rows like any other, sent (after the replace's create, before its DELETE) as updates that
    refer to the replaced object, so nothing is sent that approvers were not shown. Returns no writes of its own."""
    moving = [c for c in changes if c.detail.get("moves_to")]
    ahead = {str(c.address).lower(): c for c in changes if c.action == "replace" and c.detail.get("create_before_destroy")}
    for move in moving:
        if str(move.detail["moves_to"]).lower() not in ahead:
            raise PlanError(f"{move.id} ({move.address}) moves onto the new object of {move.detail['moves_to']}, "
                            "whose replace this apply does not carry out; approve both, or run 'vboplan plan' again")
    if not ahead:
        return []
    held = {str(c.address).lower() for c in moving}
    for row in move_rows(list(ahead.values()) + [c for c in changes if c.action != "replace"],
                         lambda name: basis(plan, name), plan.live):
        if str(row.address).lower() not in held:
            replaced_by = ahead[str(row.detail["moves_to"]).lower()]
            raise PlanError(f"{replaced_by.id} ({replaced_by.address}) creates the new object before deleting the old "
                            f"one, but the row moving {row.address} onto it is not part of this apply; approve it too, "
                            "or run 'vboplan plan' again")
    return []


def move_rows(changes: list[Change], basis_of: Callable[[str], Basis], live: dict[str, Any]) -> list[Change]:
    """For each ``create_before_destroy`` replace of ``changes``, the rows moving the live objects that use the old
    object onto the new one (a PUT each, with the new id), from the recorded live values ``live``: all but those
    the plan deletes or replaces itself, or whose reference it changes anyway (that update, sent after the
    replace's create, carries the new id). A pure function of the other rows and the recorded live values: made
    when planning, derived again when a plan file is loaded (a file's row is never taken as written)."""
    ahead = [c for c in changes if c.action == "replace" and c.detail.get("create_before_destroy")]
    if not ahead:
        return []
    gone = {str(c.address).lower() for c in changes if c.action in ("replace", "delete") and len(c.address.parts) == 1}
    changed = {str(c.address).lower() for c in changes if c.action == "update" and not c.detail.get("moves_to")}
    rows: dict[str, Change] = {}
    for change in ahead:
        for user, through in _users(live, change):
            if str(user).lower() in gone or str(user.field(through)).lower() in changed:
                continue
            kind = KINDS.get(user.kind)
            if not capable(kind, Repoints) or "." in through:
                raise PlanError(f"{change.address}: {user} uses it through {through}, which vboplan cannot move to a "
                                "new object; create_before_destroy does not apply")
            row = kind.move_row(basis_of(user.kind), user.parts[0][1], through, str(change.address))
            rows.setdefault(str(row.address).lower(), row)
    return list(rows.values())


def _users(reads: dict[str, Any], change: Change) -> list[tuple[Address, str]]:
    """The live objects that use the object ``change`` concerns, with the field (as templates write it)."""
    found: list[tuple[Address, str]] = []
    for name, live in reads.items():
        kind = KINDS.get(name)
        if capable(kind, Uses):
            found += kind.users(live, change.kind, change.address.parts[0][1])
    return found


def _after_replaces(changes: list[Change], replaced: frozenset[str]) -> list[Change]:
    """The creates and updates of ``changes`` that must wait for the replaces' creates: each refers to a replaced
    object, or to an object one of them creates (transitively), or belongs to such an object (its secrets, its
    other fields). Sent before the replaces, they would carry the old object's id, or an id not yet assigned."""
    waiting = {a.lower() for a in replaced}
    later: dict[int, Change] = {}
    grown = True
    while grown:
        grown = False
        for change in changes:
            if id(change) in later or change.action not in ("create", "update"):
                continue
            own = str(Address(change.kind, change.address.parts[:1])).lower()
            if any(str(a).lower() in waiting for a in refers_to(change)) or \
                    (own in waiting and own not in {a.lower() for a in replaced}):
                later[id(change)] = change
                if change.action == "create" and own not in waiting:
                    waiting.add(own)
                    grown = True
    return [c for c in changes if id(c) in later]


def _removes(write: Write) -> bool:
    """The half of a replace that deletes the old object (the first, or with create_before_destroy the last)."""
    return bool(write.requests) and all(r.method == "DELETE" for r in write.requests)


def planned_requests(plan: Plan) -> list[dict[str, Any]]:
    """Every request apply sends when every change of ``plan`` is approved, in order, as approvers read them
    (``show --requests``): the change ids each carries out, method, path and body (secrets ``(sensitive)``, ids the
    server assigns during the apply ``(known after apply)``)."""
    listed: list[dict[str, Any]] = []
    for write in ordered_writes(plan, plan.changes):
        ids = [c.id for c in write.changes]
        listed += [{"changes": ids, **request.shown(plan.api_version)} for request in write.requests]
    return listed


def _derived(kind: Any, basis: Basis, change: Change, rules: Any = None) -> Change:
    """``change`` (from a diff) as its kind derives it; they must agree, or a plan file of it could not be loaded.
    Both as the plan's ``lifecycle`` rules mark them (a replace that creates before it destroys)."""
    change = marked(change, rules)
    derived = marked(kind.derive(basis, change.address, change.action, change.after), rules)
    if derived.write_only:
        derived = replace(derived, detail={**derived.detail, "recorded": change.recorded})
    if not agree(derived, change):
        raise PlanError(f"{change.address}: vboplan cannot derive this change from the live values it read (a bug; "
                        "please report it)")
    return derived


def agree(one: Change, other: Change) -> bool:
    """Whether two changes act alike: same kind, address, action, sensitivity, detail, and (not sensitive) values."""
    if (one.kind, one.address, one.action, one.sensitive) != (other.kind, other.address, other.action,
                                                              other.sensitive):
        return False
    if not _same(one.detail, other.detail):
        return False
    return one.sensitive or (_same(one.before, other.before) and _same(one.after, other.after))


def _same(value: Any, other: Any) -> bool:
    """Whether two values write the same JSON text (:func:`_text`). Equal values that msgspec encodes to the same
    bytes do (== alone would let ``1`` stand for ``True`` or ``1.0``): two encodings and a comparison in C instead
    of two sorted JSON texts built, for each of a plan's 2,000 changes; anything else is compared as text."""
    try:
        if value == other and _ENCODER.encode(value) == _ENCODER.encode(other):
            return True
    except (TypeError, ValueError, OverflowError):
        pass
    return _text(value) == _text(other)


def _text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=_no_secrets)


def derived_rows(plan: Plan, rows: list[dict[str, Any]], where: str) -> list[Change]:
    """The changes of a plan file's ``rows``, each derived by its kind from its address, action and desired value
    (and the plan's recorded live values); refuses, naming the change id, any row that says otherwise: its id, kind,
    ``before``, sensitivity or detail, a duplicate, or an action that does not fit the live values."""
    addresses: dict[str, str] = {}
    for row in rows:
        label = f"{where}: change {row['id']} ({row['address']})"
        if row["action"] not in ACTIONS:
            raise PlanError(f"{label}: unknown action '{row['action']}'")
        address = Address.parse(row["address"])
        text = str(address)
        if text in addresses:
            raise PlanError(f"{label}: the plan names this address twice ({addresses[text]} and {row['id']}); "
                            "the file was edited; run 'vboplan plan' again")
        addresses[text] = row["id"]
    ids = change_ids([Address.parse(text) for text in addresses])
    seen: set[str] = set()
    changes: list[Change | None] = []
    moving: dict[int, dict[str, Any]] = {}
    for row in rows:
        label = f"{where}: change {row['id']} ({row['address']})"
        if row["id"] in seen:
            raise PlanError(f"{label}: two changes have this id; the file was edited; run 'vboplan plan' again")
        seen.add(row["id"])
        address = Address.parse(row["address"])
        if row["id"] != ids[str(address)]:
            raise PlanError(f"{label}: the id of this address is {ids[str(address)]}, not {row['id']}; the file was "
                            "edited; run 'vboplan plan' again")
        if isinstance(row.get("detail"), dict) and row["detail"].get("moves_to") and row["action"] == "update":
            moving[len(changes)] = row  # derived below, from the replaces it moves objects for
            changes.append(None)
            continue
        changes.append(_row_change(plan, row, address, label))
    return _moved_rows(plan, changes, moving, where) if moving or any(
        c is not None and c.detail.get("create_before_destroy") for c in changes) else \
        [c for c in changes if c is not None]


def _moved_rows(plan: Plan, changes: list[Change | None], moving: dict[int, dict[str, Any]],
                where: str) -> list[Change]:
    """``changes`` with the rows ``moving`` (by their place) derived as :func:`move_rows` makes them from the other
    rows and the recorded live values; a move row no replace makes, or one a replace makes that the file lacks, is
    refused."""
    others = [c for c in changes if c is not None]
    try:
        expected = {str(r.address).lower(): r for r in move_rows(others, lambda name: basis(plan, name), plan.live)}
    except PlanError as exc:
        raise PlanError(f"{where}: {exc}; the file was edited or is stale; run 'vboplan plan' again") from None
    for index, row in moving.items():
        label = f"{where}: change {row['id']} ({row['address']})"
        derived = expected.pop(str(Address.parse(row["address"])).lower(), None)
        if derived is None:
            raise PlanError(f"{label}: no replace of this plan moves this object (create_before_destroy); the file "
                            "was edited; run 'vboplan plan' again")
        problem = _row_problem(row, derived)
        if problem:
            raise PlanError(f"{label}: {problem}; the file was edited; run 'vboplan plan' again")
        changes[index] = replace(derived, id=row["id"])
    if expected:
        missing = next(iter(expected.values()))
        raise PlanError(f"{where}: the replace of {missing.detail['moves_to']} creates the new object first, and "
                        f"moves {missing.address} onto it, but the file has no row for that move; the file was "
                        "edited; run 'vboplan plan' again")
    return [c for c in changes if c is not None]


def _check_selection(plan: Plan, where: str) -> None:
    """A partial plan's rows are what its ``--target`` and ``--exclude`` keep of them, selected again as planning
    selected them: a row the selection left out, put back into the file, is refused (the views say the plan holds
    only what the selection keeps)."""
    if not plan.targets and not plan.excluded:
        return
    managed = {a for name in plan.scope if name in KINDS for a in KINDS[name].addresses(plan.scope[name])}
    try:
        kept = select_changes(plan.environment, [c for c in plan.changes if not c.detail.get("moves_to")], managed,
                              plan.targets, plan.excluded, refers_to)
    except (PlanError, ProjectError) as exc:
        raise PlanError(f"{where}: {exc}; the file was edited; run 'vboplan plan' again") from None
    ids = {c.id for c in kept}
    # A move row (see move_rows) is made from the replaces the selection kept, not selected itself.
    outside = next((c for c in plan.changes if c.id not in ids and not c.detail.get("moves_to")), None)
    if outside is not None:
        options = [*(f"--target {t}" for t in plan.targets), *(f"--exclude {t}" for t in plan.excluded)]
        raise PlanError(f"{where}: change {outside.id} ({outside.address}) is not what the plan's "
                        f"{' '.join(options)} keep; the file was edited; run 'vboplan plan' again")


def _row_change(plan: Plan, row: dict[str, Any], address: Address, label: str) -> Change:
    kind = KINDS.get(address.kind)
    if kind is None or row["kind"] != address.kind:
        raise PlanError(f"{label}: the address names resource kind '{address.kind}' but the row says "
                        f"'{row['kind']}'; the file was edited; run 'vboplan plan' again")
    if address.kind not in plan.scope:
        raise PlanError(f"{label}: the plan does not read {address.kind}; the file was edited")
    try:
        # A sensitive row's value is known only by its hash: an unknown secret until apply resolves it.
        derived = marked(kind.derive(basis(plan, address.kind), address, row["action"],
                                     Sensitive(None) if row["sensitive"] else row["after"]), plan.scope.get("lifecycle"))
    except PlanError as exc:
        raise PlanError(f"{label}: {_without(str(exc), str(address))}; the file was edited or is stale; run "
                        "'vboplan plan' again") from None
    if derived.write_only:
        recorded = (row.get("detail") or {}).get("recorded", False)
        derived = replace(derived, detail={**derived.detail, "recorded": recorded is True})
    problem = _row_problem(row, derived)
    if problem:
        raise PlanError(f"{label}: {problem}; the file was edited; run 'vboplan plan' again")
    return replace(derived, id=row["id"])


def _row_problem(row: dict[str, Any], derived: Change) -> str:
    """What a row says that its derived change does not (empty when they agree)."""
    if bool(row["sensitive"]) != derived.sensitive:
        return ("it is marked sensitive, which hides its value, but the schema and the templates' secret() make "
                "it a readable, not secret field") if row["sensitive"] else \
            "it is a secret field but the row carries it as not sensitive"
    if derived.sensitive:
        if row["before"] is not None or row["after"] is not None:
            return "it is a secret field but the row carries a value"
        if not is_digest(row.get("after_digest")):
            return "it is a secret field but the row holds no hash of its value"
        return "" if row.get("detail") in (None, {}) or _text(row["detail"]) == _text(derived.detail) else \
            f"its detail {_text(row['detail'])} is not what its address means ({_text(derived.detail)})"
    if _text(row["before"]) != _text(derived.before):
        return f"its live value is {_text(derived.before)} as the plan recorded it, not {_text(row['before'])}"
    if _text(row["after"]) != _text(derived.after):
        return f"its desired value reads {_text(row['after'])} but its address gives {_text(derived.after)}"
    if row.get("detail") not in (None, {}) and _text(row["detail"]) != _text(derived.detail):
        return f"its detail {_text(row['detail'])} is not what its address means ({_text(derived.detail)})"
    return ""


def _without(message: str, address: str) -> str:
    """A kind's message without the address it starts with (the caller names the change already)."""
    return message[len(address) + 2:] if message.startswith(address + ": ") else message


def reread(client: VboClient, name: str, scope: Any, live: Any) -> Any:
    """``name``'s live values read again from where ``live`` (an earlier read of the same scope) found them, by
    the ids it holds: what an apply compares before and after its writes. No name is resolved again and no
    directory is walked; a kind without such a shortcut is read in full."""
    kind = KINDS[name]
    refresh = getattr(kind, "refresh", None)
    return refresh(client, scope, live) if refresh is not None and live is not None else kind.read(client, scope)
