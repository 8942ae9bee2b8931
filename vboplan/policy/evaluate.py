"""Evaluating rules: each rule on each object of its kind in each environment it applies to, giving verdicts.

A verdict is one rule's outcome in one environment: the objects it does not hold for (``advisory``, ``warn``,
``block``) or the changes it selects (``approve``), with the exception that waives it if one does. Verdicts are
part of the plan file (covered by its digest, so by every signature) and an apply evaluates the rules again and
requires the same verdicts before it trusts any of them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from vboplan.kinds.registry import KINDS
from vboplan.planning.changes import Address, Change
from vboplan.policy import engine
from vboplan.policy.objects import PolicyObject, masked, objects_of
from vboplan.policy.rules import Policies, Rule
from vboplan.policy.severity import Severity, rate_all
from vboplan.project.config import Environment
from vboplan.sensitive import MASK

#: How many evaluation errors a verdict quotes (the count says how many there were).
_NOTES = 3


@dataclass
class Verdict:
    """One rule's outcome in one environment."""

    rule: str
    level: str
    message: str
    source: str
    objects: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    exception: dict[str, Any] | None = None
    approvers: dict[str, Any] | None = None

    @property
    def stands(self) -> bool:
        """Whether it still binds: no live exception waives it."""
        return self.exception is None

    @property
    def blocks(self) -> bool:
        return self.level == "block" and self.stands

    def record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"rule": self.rule, "level": self.level, "message": self.message,
                                  "source": self.source, "objects": self.objects, "changes": self.changes,
                                  "exception": self.exception}
        if self.notes:
            record["notes"] = self.notes
        if self.approvers is not None:
            record["approvers"] = self.approvers
        return record


@dataclass
class Evaluation:
    """The verdicts of one environment, and the exceptions they used."""

    verdicts: list[Verdict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)   # rules not evaluated (they name change; check has none)

    @property
    def blocked(self) -> bool:
        return any(v.blocks for v in self.verdicts)

    def records(self) -> list[dict[str, Any]]:
        return [v.record() for v in self.verdicts]

    def exceptions(self) -> list[dict[str, Any]]:
        used: dict[str, dict[str, Any]] = {}
        for verdict in self.verdicts:
            if verdict.exception is not None:
                used[verdict.exception["source"]] = verdict.exception
        return list(used.values())


def change_record(change: Change, severity: Severity) -> dict[str, Any]:
    """What ``change`` is in an expression (secrets masked)."""
    return {"id": change.id, "address": str(change.address), "action": change.action,
            "before": MASK if change.sensitive else masked(change.before),
            "after": MASK if change.sensitive else masked(change.after),
            "severity": severity.level, "reason": severity.reason}


def evaluate(policies: Policies, env: Environment, desired: dict[str, Any], live: dict[str, Any] | None,
             changes: list[Change] | None, moment: dt.datetime | None = None) -> Evaluation:
    """Every rule of ``policies`` that applies to ``env``, over ``desired`` (kind -> rendered value), ``live``
    (kind -> live value as a plan keeps it; None offline) and ``changes`` (None: no plan, so rules that name
    ``change`` are skipped). Exceptions count if they have not expired at ``moment`` (default now)."""
    moment = moment or dt.datetime.now(dt.timezone.utc)
    result = Evaluation()
    rules = policies.for_env(env)
    if changes is None:
        result.skipped = [r.id for r in rules if r.uses_change]
        rules = [r for r in rules if not r.uses_change]
    rated = rate_all(changes) if changes else {}
    by_kind: dict[str, list[Rule]] = {}
    for rule in rules:
        by_kind.setdefault(rule.resource, []).append(rule)
    found: dict[str, Verdict] = {}
    for name, kind_rules in by_kind.items():
        if name not in desired and (live is None or name not in live):
            continue  # not managed in this environment: nothing to hold a rule against
        mine = [c for c in changes or () if c.kind == name]
        if not mine and all(rule.uses_change for rule in kind_rules):
            continue  # rules over changes only, and none planned: no object to split (100,000 names, say)
        objects = objects_of(name, KINDS[name], desired.get(name), (live or {}).get(name))
        _evaluate_kind(kind_rules, objects, mine, rated, found)
    for rule in rules:
        verdict = found.get(rule.id)
        if verdict is None:
            continue
        exception = policies.exception(rule, env, moment)
        if exception is not None:
            verdict.exception = exception.record()
        result.verdicts.append(verdict)
    return result


def _evaluate_kind(rules: list[Rule], objects: list[PolicyObject], changes: list[Change],
                   rated: dict[str, Severity], found: dict[str, Verdict]) -> None:
    by_object = _changes_by_object(objects, changes)
    names = set().union(*(r.names for r in rules)) - {"change"}
    plain = [r for r in rules if not r.uses_change]
    per_change = [r for r in rules if r.uses_change]
    for obj in objects:
        mine = by_object.get(obj.address, [])
        evaluated = [r for r in plain if obj.desired is not None or "desired" not in r.names]
        if not evaluated and not (per_change and mine):
            continue
        # One context per object, shared by every rule over it: its values are converted to CEL once.
        variables = {n: (obj.desired if n == "desired" else obj.live) for n in names}
        context = engine.context(variables) if variables or per_change else None
        for rule in evaluated:
            outcome, note = _run(rule, context)
            _note(rule, outcome, note, obj, _concerned(rule, obj, mine), found)
        for change in mine if per_change else ():
            context.add_variable("change", change_record(change, rated[change.id]))
            for rule in per_change:
                outcome, note = _run(rule, context)
                _note(rule, outcome, note, obj, [change], found)


def _concerned(rule: Rule, obj: PolicyObject, changes: list[Change]) -> list[Change]:
    """The changes of ``obj`` a rule over its values concerns: those of the fields its expression names (all of
    the object's changes when it names none, or names the object as a whole)."""
    if not rule.fields:
        return changes
    depth = len(obj.address.parts)
    return [c for c in changes if len(c.address.parts) <= depth
            or (c.address.parts[depth][0] == "." and c.address.parts[depth][1] in rule.fields)]


def _changes_by_object(objects: list[PolicyObject], changes: list[Change]) -> dict[Address, list[Change]]:
    known = {obj.address for obj in objects}
    depths = sorted({len(a.parts) for a in known}, reverse=True)
    result: dict[Address, list[Change]] = {}
    for change in changes:
        for depth in depths:
            owner = Address(change.kind, change.address.parts[:depth])
            if owner in known:
                result.setdefault(owner, []).append(change)
                break
    return result


def _run(rule: Rule, context: Any) -> tuple[bool | None, str]:
    """The expression's value (None when it cannot be evaluated or is not a boolean) and why not."""
    try:
        value = rule.program.execute(context)
    except Exception as exc:  # noqa: BLE001 - any failure of an expression is the rule's problem, reported as such
        text = str(exc).split(". ")[0]
        return None, f"{type(exc).__name__}: {text}" if type(exc).__name__ == "KeyError" else text
    if not isinstance(value, bool):
        return None, f"the expression gave {type(value).__name__} {value!r}, not true or false"
    return value, ""


def _note(rule: Rule, outcome: bool | None, note: str, obj: PolicyObject, changes: list[Change],
          found: dict[str, Verdict]) -> None:
    """Record ``outcome`` of ``rule`` on ``obj``. Fails closed: an expression that cannot be evaluated is a
    violation (advisory, warn, block) and selects the changes (approve)."""
    if rule.level == "approve":
        if outcome is False or not changes:
            return
    elif outcome is True:
        return
    verdict = found.get(rule.id)
    if verdict is None:
        approvers = None
        if rule.approvers is not None:
            approvers = {"required": rule.approvers.required, "allowed_signers": rule.approvers.display}
        verdict = found[rule.id] = Verdict(rule.id, rule.level, rule.message, rule.source, approvers=approvers)
    address = str(obj.address)
    if not verdict.objects or verdict.objects[-1] != address:
        verdict.objects.append(address)
    verdict.changes.extend(c.id for c in changes)
    if outcome is None:
        if len(verdict.notes) < _NOTES:
            verdict.notes.append(f"{address}: cannot be evaluated ({note})")
        elif len(verdict.notes) == _NOTES:
            verdict.notes.append("... and more that cannot be evaluated")
