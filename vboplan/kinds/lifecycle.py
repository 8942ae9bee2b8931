"""``lifecycle``: what a plan may do to an object, per address (Terraform's lifecycle block).

    lifecycle:
      'proxy_pools["EU pool"]': {prevent_destroy: true}
      'backup_repositories["Repo EU"]': {allow_replace: true}
      'encryption_keys["Archive key 2026"]': {allow_replace: true, create_before_destroy: true}

``prevent_destroy: true`` refuses any plan that deletes or replaces the object; ``allow_replace: true`` lets a plan
replace it (a change the server cannot make in place), which is refused otherwise. ``create_before_destroy: true``
(Terraform's) turns a replace around: the new object is created first, the objects that use the old one are moved
to it (one PUT each, with the new id), and only then is the old one deleted, so a key a repository uses can be
rotated without replacing the repository. It applies where the server holds two objects of one key for that while
(an encryption key's description is a hint, not a name); an apply cut short in between leaves the old one
*deposed* (see :func:`vboplan.kinds.refs.depose`), which the next plan finishes. The rules are a template key
like any resource, so they are part of the plan's scope, which its checksum and the approvals cover. The plan file
is its author's, though, and approvers are not shown the rules: an apply of a plan that deletes or replaces
anything also renders the project's templates again and refuses what their rules forbid.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from vboplan.api.client import VboClient
from vboplan.errors import PlanError, RenderError
from vboplan.kinds.base import Basis, Export
from vboplan.planning.changes import Address, Change, Drift, object_key
from vboplan.sensitive import reveal

RULES = ("prevent_destroy", "allow_replace", "create_before_destroy")


@dataclass(frozen=True)
class LifecycleKind:
    """Rules by object address; nothing is read from or written to the server."""

    name: str = "lifecycle"
    requires: tuple[str, ...] = ()

    def normalise(self, version: str, raw: Any, where: Callable[[Any], str]) -> dict[str, dict[str, bool]]:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            raise RenderError(f"{where(None)}: lifecycle must map object addresses to rules ({', '.join(RULES)})")
        rules: dict[str, dict[str, bool]] = {}
        for key, value in raw.items():
            try:
                address = Address.parse(str(reveal(key)))
            except PlanError as exc:
                raise RenderError(f"{where(key)}: lifecycle: {exc}") from None
            if len(address.parts) != 1 or address.parts[0][0] != "[":
                raise RenderError(f"{where(key)}: lifecycle: '{key}' is not an object's address (e.g. "
                                  'proxy_pools["EU pool"])')
            if not isinstance(value, dict) or not value or any(k not in RULES for k in value) \
                    or not all(isinstance(v, bool) for v in value.values()):
                raise RenderError(f"{where(key)}: lifecycle[{key!r}] must set {' and/or '.join(RULES)} to true or "
                                  "false")
            rules[str(address)] = {str(k): bool(v) for k, v in value.items()}
        return rules

    def scope(self, desired: dict[str, dict[str, bool]]) -> dict[str, dict[str, bool]]:
        return dict(sorted(desired.items()))

    def addresses(self, scope: Any) -> set[Address]:
        return set()

    def read(self, client: VboClient, scope: Any) -> None:
        return None

    def diff(self, version: str, live: Any, desired: Any, recorded: Any | None) -> list[Change]:
        return []

    def derive(self, basis: Basis, address: Address, action: str, after: Any) -> Change:
        raise PlanError(f"{address}: lifecycle rules make no changes")

    def desired_value(self, desired: Any, change: Change) -> Any:
        return None

    def writes(self, basis: Basis, changes: list[Change]) -> list[Any]:
        return []

    def verify(self, change: Change, live: Any) -> bool:
        return True

    def snapshot(self, live: Any, applied: list[Change], recorded: Any | None) -> Any:
        return {}  # nothing on the server (a snapshot's resources are objects)

    def state_rows(self, recorded: Any) -> list[tuple[str, Any]]:
        return []

    def drift(self, recorded: Any, live: Any) -> list[Drift]:
        return []

    def export(self, client: VboClient) -> Export:
        return Export(unavailable="lifecycle rules live in the templates only")


def rule_of(rules: Any, address: Any) -> dict[str, bool]:
    """The rules of ``address`` (an object's) in ``rules`` (by address, as normalised), compared case-insensitively
    as the server compares names."""
    if not isinstance(rules, dict) or not rules:
        return {}
    text = str(address)
    found = rules.get(text)
    if found is None:
        found = next((r for a, r in rules.items() if str(a).lower() == text.lower()), None)
    return found if isinstance(found, dict) else {}


def marked(change: Change, rules: Any) -> Change:
    """``change`` as the rules make it: a replace of an object whose lifecycle has ``create_before_destroy: true``
    says so in its detail (what the views show and the order of its writes follows). A pure function of the change
    and the plan's rules, applied alike when a plan is made, loaded and applied."""
    if change.action != "replace" or not rule_of(rules, Address(change.kind, change.address.parts[:1])).get(
            "create_before_destroy"):
        return change
    return replace(change, detail={**change.detail, "create_before_destroy": True})


def refusals(changes: list[Change], rules: dict[str, dict[str, bool]]) -> list[str]:
    """Why ``rules`` refuse ``changes`` (empty when they allow them)."""
    found = []
    for change in changes:
        if len(change.address.parts) != 1:
            continue
        rule = rule_of(rules, change.address)
        if change.action in ("delete", "replace") and protects(rules, change.address):
            found.append(f"{change.id} ({change.address}) would {change.action} an object whose lifecycle has "
                         "prevent_destroy: true")
        if change.action == "replace" and not rule.get("allow_replace"):
            found.append(f"{change.id} ({change.address}) would replace the object; allow it with lifecycle "
                         f"{{'{change.address}': {{allow_replace: true}}}}")
    return found


def protects(rules: dict[str, dict[str, bool]], address: Address) -> bool:
    """Whether a ``prevent_destroy`` rule names the object at ``address``, in any case (as the server compares
    names) or by the other spelling of its key: a job's or role's ``ORGANIZATION/NAME`` (as templates may key it) for
    the bare name the server keys it by, or the reverse. Where it cannot tell two such objects apart it protects
    both (a refusal, never a delete nobody meant)."""
    key = str(address.parts[0][1]).lower()
    bare = key.rsplit("/", 1)[-1]
    for text, rule in rules.items():
        if not rule.get("prevent_destroy"):
            continue
        named = object_key(text)
        if named is None or named[0] != address.kind:
            continue
        other = named[1].lower()
        if other == key or ("/" in other or "/" in key) and other.rsplit("/", 1)[-1] == bare:
            return True
    return False
