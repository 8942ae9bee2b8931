"""Rule files: the ``policies:`` of vboplan.yaml (globs relative to the project, and ``builtin:recommended``), each
holding ``rules:`` and ``exceptions:``. Every mistake in one is one error naming the file, the line and the rule.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from vboplan.errors import ProjectError
from vboplan.policy import engine
from vboplan.project.config import ApprovalPolicy, Environment, Project
from vboplan.project.yamlfile import Located, load_yaml, parse_yaml
from vboplan.schema import nearest

LEVELS = ("advisory", "warn", "block", "approve")
BUILTIN = "builtin:"
VARIABLES = ("desired", "live", "change")
#: What ``change`` holds in an expression.
CHANGE_FIELDS = ("id", "address", "action", "before", "after", "severity", "reason")
_RULE_KEYS = {"id", "level", "environments", "resource", "expr", "message", "description", "approvers"}
_EXCEPTION_KEYS = {"rule", "environments", "owner", "reason", "expires"}


class PolicyError(ProjectError):
    """A rule file is wrong; the message names the file, the line and the rule."""


@dataclass(frozen=True)
class Scope:
    """Which environments a rule or exception applies to: names, or labels that must all match; neither: all."""

    names: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()

    def applies(self, env: Environment) -> bool:
        if self.names:
            return env.name in self.names
        if self.labels:
            held = dict(getattr(env, "labels", ()) or ())
            return all(held.get(k) == v for k, v in self.labels)
        return True

    def describe(self) -> str:
        if self.names:
            return ", ".join(self.names)
        if self.labels:
            return "label " + ", ".join(f"{k}={v}" for k, v in self.labels)
        return "all environments"


@dataclass(frozen=True)
class Rule:
    """One rule: for ``advisory``, ``warn`` and ``block`` its ``expr`` must hold for each object of ``resource``;
    for ``approve`` it selects the changes that need ``approvers`` as well."""

    id: str
    level: str
    resource: str
    expr: str
    message: str
    source: str                       # file:line of the rule
    scope: Scope = field(default_factory=Scope)
    description: str = ""
    approvers: ApprovalPolicy | None = None
    program: Any = field(default=None, compare=False, repr=False)
    names: frozenset[str] = frozenset()   # which of desired, live and change the expression names
    fields: frozenset[str] = frozenset()  # the fields of desired and live it names (what its verdict concerns)

    @property
    def uses_change(self) -> bool:
        return "change" in self.names


@dataclass(frozen=True)
class Exception_:
    """A standing exception to one rule in some environments, owned by someone, for a reason, until a date."""

    rule: str
    scope: Scope
    owner: str
    reason: str
    expires: dt.date
    source: str

    @property
    def expires_at(self) -> dt.datetime:
        """The moment it stops counting: the end of its ``expires`` day (UTC)."""
        return dt.datetime.combine(self.expires + dt.timedelta(days=1), dt.time(), dt.timezone.utc)

    def active(self, moment: dt.datetime) -> bool:
        return moment < self.expires_at

    def record(self) -> dict[str, Any]:
        return {"rule": self.rule, "owner": self.owner, "reason": self.reason, "expires": self.expires.isoformat(),
                "environments": self.scope.describe(), "source": self.source}


@dataclass
class Policies:
    """Every rule and exception of a project."""

    rules: list[Rule] = field(default_factory=list)
    exceptions: list[Exception_] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def for_env(self, env: Environment) -> list[Rule]:
        return [rule for rule in self.rules if rule.scope.applies(env)]

    def exception(self, rule: Rule, env: Environment, moment: dt.datetime) -> Exception_ | None:
        """The exception that lets ``rule`` pass in ``env`` now, if one does (an expired one does not)."""
        found = [e for e in self.exceptions if e.rule == rule.id and e.scope.applies(env) and e.active(moment)]
        return max(found, key=lambda e: e.expires) if found else None


def load_policies(project: Project) -> Policies:
    """The rules and exceptions of ``project`` (none when vboplan.yaml lists no ``policies``)."""
    patterns = list(getattr(project, "policies", ()) or ())
    policies = Policies()
    seen: dict[str, str] = {}
    for pattern in patterns:
        for display, document, builtin in _documents(project.root, pattern):
            policies.files.append(display)
            rules, exceptions = _parse(project.root, display, document, builtin)
            for rule in rules:
                if rule.id in seen:
                    raise PolicyError(f"{rule.source}: rule '{rule.id}' is also defined at {seen[rule.id]}")
                seen[rule.id] = rule.source
            policies.rules += rules
            policies.exceptions += exceptions
    known = {rule.id for rule in policies.rules}
    for exception in policies.exceptions:
        if exception.rule not in known:
            hint = nearest(exception.rule, sorted(known))
            raise PolicyError(f"{exception.source}: exception for unknown rule '{exception.rule}'"
                              + (f"; did you mean '{hint}'?" if hint else ""))
    return policies


def _documents(root: Path, pattern: str) -> list[tuple[str, Any, bool]]:
    if pattern.startswith(BUILTIN):
        name = pattern[len(BUILTIN):]
        packs = sorted(p.name[:-5] for p in resources.files("vboplan.policy").iterdir()
                       if p.name.endswith(".yaml"))
        if name not in packs:
            raise PolicyError(f"vboplan.yaml: unknown built-in policy pack '{pattern}' (built-in: "
                              + ", ".join(BUILTIN + p for p in packs) + ")")
        text = resources.files("vboplan.policy").joinpath(f"{name}.yaml").read_text(encoding="utf-8")
        return [(pattern, parse_yaml(text, pattern), True)]
    paths = sorted(p for p in root.glob(pattern) if p.is_file())
    if not paths:
        raise PolicyError(f"vboplan.yaml: policies: '{pattern}' matches no file in {root}")
    return [(p.relative_to(root).as_posix(), load_yaml(p, p.relative_to(root).as_posix()), False) for p in paths]


def _parse(root: Path, display: str, document: Any, builtin: bool) -> tuple[list[Rule], list[Exception_]]:
    if document is None:
        return [], []
    if not isinstance(document, Located):
        raise PolicyError(f"{display}:1: a rule file is a mapping with 'rules' (and 'exceptions')")
    for key in document:
        if key not in ("rules", "exceptions"):
            raise PolicyError(f"{document.where(key)}: unknown key '{key}' (a rule file has 'rules' and "
                              "'exceptions')")
    rules = []
    for entry in _list(document, "rules"):
        rule = _rule(root, entry, builtin)
        if rule is not None:
            rules.append(rule)
    exceptions = [_exception(entry) for entry in _list(document, "exceptions")]
    return rules, exceptions


def _list(document: Located, key: str) -> list[Located]:
    entries = document.get(key) or []
    if not isinstance(entries, list):
        raise PolicyError(f"{document.where(key)}: '{key}' must be a list")
    for entry in entries:
        if not isinstance(entry, Located):
            raise PolicyError(f"{document.where(key)}: each of '{key}' must be a mapping")
    return entries


def _text(entry: Located, key: str, label: str, required: bool = True) -> str:
    value = entry.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.strip():
        raise PolicyError(f"{entry.where(key if key in entry else None)}: {label}: '{key}' must be a non-empty text")
    return value


def _rule(root: Path, entry: Located, builtin: bool) -> Rule | None:
    rule_id = entry.get("id")
    if not isinstance(rule_id, str) or not rule_id.strip():
        raise PolicyError(f"{entry.where('id' if 'id' in entry else None)}: a rule needs an 'id'")
    label = f"rule '{rule_id}'"
    for key in entry:
        if key not in _RULE_KEYS:
            hint = nearest(str(key), sorted(_RULE_KEYS))
            raise PolicyError(f"{entry.where(key)}: {label}: unknown key '{key}'"
                              + (f"; did you mean '{hint}'?" if hint else ""))
    level = entry.get("level")
    if level not in LEVELS:
        raise PolicyError(f"{entry.where('level' if 'level' in entry else None)}: {label}: unknown level "
                          f"'{level}' (levels: {', '.join(LEVELS)})")
    from vboplan.kinds.registry import KINDS

    resource = _text(entry, "resource", label)
    if resource not in KINDS:
        if builtin:
            return None  # a kind this vboplan does not manage yet: the rule waits for it
        hint = nearest(resource, sorted(KINDS))
        raise PolicyError(f"{entry.where('resource')}: {label}: unknown resource kind '{resource}'"
                          + (f"; did you mean '{hint}'?" if hint else ""))
    expr = _text(entry, "expr", label)
    program, names, fields = _compile(entry, label, expr, KINDS[resource])
    approvers = None
    if level == "approve":
        if "approvers" not in entry:
            raise PolicyError(f"{entry.where()}: {label}: an approve rule names its 'approvers' "
                              "({required: N, allowed_signers: FILE})")
        approvers = _approvers(root, entry, label)
    elif "approvers" in entry:
        raise PolicyError(f"{entry.where('approvers')}: {label}: only approve rules have 'approvers'")
    return Rule(id=rule_id, level=level, resource=resource, expr=expr,
                message=_text(entry, "message", label, required=False) or f"rule {rule_id} does not hold",
                source=entry.where(), scope=_scope(entry, label), description=_text(entry, "description", label,
                                                                                     required=False),
                approvers=approvers, program=program, names=names, fields=fields)


def _compile(entry: Located, label: str, expr: str, kind: Any) -> tuple[Any, frozenset[str], frozenset[str]]:
    line = entry.line_of("expr")
    first = line + 1 if "\n" in expr.rstrip("\n") else line  # a block scalar starts on the next line

    def at(inner_line: int, column: int) -> str:
        return f"{entry.source}:{first + inner_line - 1} (expr column {column})"

    try:
        program = engine.compile_expression(expr)
    except engine.ExpressionError as exc:
        raise PolicyError(f"{at(exc.line, exc.column)}: {label}: the expression does not parse: {exc}") from None
    unknown = [v for v in program.variables() if v not in VARIABLES and v not in engine.bound_names(expr)]
    if unknown:
        offset = engine.without_strings(expr).find(unknown[0])
        raise PolicyError(f"{at(*engine.position(expr, max(offset, 0)))}: {label}: unknown name '{unknown[0]}' "
                          "(an expression names desired, live and change)")
    from vboplan.policy.objects import fields_of

    known = fields_of(kind)
    for variable, name, offset in engine.fields_named(expr):
        allowed: Any = CHANGE_FIELDS if variable == "change" else known
        if allowed is not None and name not in allowed:
            hint = nearest(name, sorted(allowed))
            owner = "change" if variable == "change" else str(entry.get("resource"))
            raise PolicyError(f"{at(*engine.position(expr, offset))}: {label}: {owner} has no field '{name}'"
                              + (f"; did you mean '{hint}'?" if hint else ""))
    fields = frozenset(name for variable, name, _ in engine.fields_named(expr) if variable != "change")
    return program, frozenset(v for v in program.variables() if v in VARIABLES), fields


def _approvers(root: Path, entry: Located, label: str) -> ApprovalPolicy:
    from vboplan.project.config import _approvals

    spec = entry["approvers"]
    try:
        policy = _approvals(root, spec, entry.where("approvers"))
    except ProjectError as exc:
        raise PolicyError(f"{label}: {exc}") from None
    if policy.required < 1 or policy.allowed_signers is None:
        raise PolicyError(f"{entry.where('approvers')}: {label}: approvers need required: 1 or more and an "
                          "allowed_signers file")
    try:
        policy.trust_list()
    except ProjectError as exc:
        raise PolicyError(f"{entry.where('approvers')}: {label}: {exc}") from None
    return policy


def _scope(entry: Located, label: str) -> Scope:
    value = entry.get("environments")
    if value is None:
        return Scope()
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return Scope(names=tuple(value))
    if isinstance(value, dict) and set(value) == {"label"} and isinstance(value["label"], dict) and value["label"] \
            and all(isinstance(k, str) and isinstance(v, (str, int, bool)) for k, v in value["label"].items()):
        return Scope(labels=tuple(sorted((k, _label_value(v)) for k, v in value["label"].items())))
    raise PolicyError(f"{entry.where('environments')}: {label}: environments must be a list of names or "
                      "{label: {KEY: VALUE}}")


def _label_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _exception(entry: Located) -> Exception_:
    for key in entry:
        if key not in _EXCEPTION_KEYS:
            raise PolicyError(f"{entry.where(key)}: exception: unknown key '{key}' (an exception has "
                              f"{', '.join(sorted(_EXCEPTION_KEYS))})")
    rule = _text(entry, "rule", "exception")
    label = f"exception to '{rule}'"
    owner, reason = _text(entry, "owner", label), _text(entry, "reason", label)
    expires = entry.get("expires")
    if isinstance(expires, dt.datetime):
        expires = expires.date()
    elif isinstance(expires, str):
        try:
            expires = dt.date.fromisoformat(expires)
        except ValueError:
            expires = None
    if not isinstance(expires, dt.date):
        raise PolicyError(f"{entry.where('expires' if 'expires' in entry else None)}: {label}: 'expires' must be "
                          "a date (YYYY-MM-DD); an exception without an end is not an exception")
    if "environments" not in entry:
        raise PolicyError(f"{entry.where()}: {label}: name the 'environments' it applies to")
    return Exception_(rule=rule, scope=_scope(entry, label), owner=owner, reason=reason, expires=expires,
                      source=entry.where())
