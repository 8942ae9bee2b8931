"""How much a change matters: ``info``, ``warning`` or ``critical``, with the reason, decided by the change's kind.

A kind says it with a ``severity(change)`` method (the :class:`RatesChanges` capability, checked with
``isinstance``); a kind without one is rated by :func:`default`, which knows the fields Veeam's documents make
dangerous for the named collections (retention, immutability, encryption, a job's repository, a role's scope), so a
collection rates its changes before its module says anything about them. The rating depends on the change alone
(kind, address, action, before, after), so an apply recomputes it from what it derives and a plan file cannot
soften it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from vboplan.planning.changes import Address, Change, object_key

LEVELS = ("info", "warning", "critical")
RANK = {level: i for i, level in enumerate(LEVELS)}


@dataclass(frozen=True)
class Severity:
    """A change's severity and why."""

    level: str
    reason: str

    def record(self) -> dict[str, str]:
        return {"level": self.level, "reason": self.reason}


@runtime_checkable
class RatesChanges(Protocol):
    """The optional capability of a resource kind that rates its own changes (``None``: the default rating)."""

    def severity(self, change: Change) -> Severity | None:
        """The severity of ``change``, one of this kind's changes."""


INFO = Severity("info", "")


def field_of(change: Change) -> str | None:
    """The field an update changes (the address's last part when it is a field), else None."""
    parts = change.address.parts
    return parts[-1][1] if parts and parts[-1][0] == "." else None


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def turned_off(level: str, reason: str) -> Callable[[Change], Severity | None]:
    """A rater for a boolean field: ``level`` when it goes from true to false."""
    def rate(change: Change) -> Severity | None:
        if change.action == "update" and _truthy(change.before) and not _truthy(change.after):
            return Severity(level, reason)
        return None
    return rate


def turned_on(level: str, reason: str) -> Callable[[Change], Severity | None]:
    """A rater for a boolean field: ``level`` when it goes from false (or unset) to true."""
    def rate(change: Change) -> Severity | None:
        if change.action == "update" and not _truthy(change.before) and _truthy(change.after):
            return Severity(level, reason)
        return None
    return rate


def lowered(level: str, reason: str, order: Callable[[Any], float | None] | None = None) \
        -> Callable[[Change], Severity | None]:
    """A rater for a number (or a value ``order`` turns into one): ``level`` when it decreases."""
    def number(value: Any) -> float | None:
        if order is not None:
            return order(value)
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            return None
        try:
            return float(value)
        except ValueError:
            return None

    def rate(change: Change) -> Severity | None:
        before, after = number(change.before), number(change.after)
        if change.action == "update" and before is not None and after is not None and after < before:
            return Severity(level, f"{reason} ({change.before} -> {change.after})")
        return None
    return rate


def changed(level: str, reason: str) -> Callable[[Change], Severity | None]:
    """A rater for any field: ``level`` whenever an existing value changes."""
    def rate(change: Change) -> Severity | None:
        if change.action == "update" and change.before is not None and change.before != change.after:
            return Severity(level, reason)
        return None
    return rate


def removed(level: str, reason: str) -> Callable[[Change], Severity | None]:
    """A rater for a field that refers to something (a key, a bucket): ``level`` when it is emptied."""
    def rate(change: Change) -> Severity | None:
        if change.action == "update" and change.before not in (None, "", []) and change.after in (None, "", []):
            return Severity(level, reason)
        return None
    return rate


# Veeam's yearly retention choices, in days (Keep: forever).
_YEARLY = {"Year1": 1, "Years2": 2, "Years3": 3, "Years5": 5, "Years7": 7, "Years10": 10, "Years25": 25,
           "Keep": float("inf")}


def _years(value: Any) -> float | None:
    return _YEARLY.get(value) if isinstance(value, str) else None


FieldRaters = dict[str, list[Callable[[Change], Severity | None]]]

#: What Veeam's documents make dangerous in the named collections, by kind and field (see each reason). A kind that
#: implements :class:`RatesChanges` decides for itself; these apply to kinds that do not.
COLLECTION_FIELDS: dict[str, FieldRaters] = {
    "backup_repositories": {
        "dailyRetentionPeriod": [lowered("critical", "retention period shortened: older restore points are removed")],
        "monthlyRetentionPeriod": [lowered("critical", "retention period shortened: older restore points are "
                                                       "removed")],
        "yearlyRetentionPeriod": [lowered("critical", "retention period shortened: older restore points are "
                                                      "removed", _years)],
        "retentionPeriodType": [changed("warning", "retention period type changes: check the retention length")],
        "objectStorageEncryptionEnabled": [turned_off("critical", "object storage encryption removed")],
        "encryptionKey": [removed("critical", "encryption key removed"),
                          changed("warning", "encryption key changes")],
        "enableImmutability": [turned_off("critical", "immutability removed")],
        "immutabilityEnabled": [turned_off("critical", "immutability removed")],
        "proxy": [changed("warning", "the repository moves to another proxy")],
    },
    "backup_jobs": {
        "repository": [changed("warning", "the job's repository changes: the next run is a full backup")],
        "isEnabled": [turned_off("warning", "the job is disabled: nothing it covers is backed up")],
        "backupType": [changed("warning", "the job's backup type changes: what it covers changes")],
    },
    "copy_jobs": {
        "repository": [changed("warning", "the copy job's repository changes: the next run copies everything")],
        "isEnabled": [turned_off("warning", "the copy job is disabled")],
    },
    "restore_operator_roles": {
        "roleType": [lambda c: Severity("critical", "restore operator scope widened to the entire organization")
                     if c.action == "update" and c.after == "EntireOrganization" else None],
        "organization": [changed("critical", "the role moves to another organization")],
    },
}


def _list_entry(change: Change) -> tuple[str, str, str] | None:
    """For an address ``kind["NAME"].LIST.TYPE["KEY"]`` (an entry of an object's list): (LIST, TYPE, KEY)."""
    parts = change.address.parts
    if len(parts) >= 4 and parts[-1][0] == "[" and parts[-2][0] == "." and parts[-3][0] == ".":
        return parts[-3][1], parts[-2][1], parts[-1][1]
    return None


def default(change: Change) -> Severity:
    """The rating of a kind that does not rate its own changes."""
    deposed = _deposed(change)
    if deposed is not None:
        return deposed
    fields = COLLECTION_FIELDS.get(change.kind, {})
    name = field_of(change)
    for rater in fields.get(name or "", []):
        found = rater(change)
        if found is not None:
            return found
    entry = _list_entry(change) if change.kind == "restore_operator_roles" else None
    if entry is not None:
        where = entry[0]
        if (where == "selectedItems" and change.action == "create") or \
                (where == "excludedItems" and change.action == "delete") or \
                (where == "operators" and change.action == "create"):
            return Severity("critical", f"restore operator scope widened ({where} {change.action}d)")
    if change.action == "delete" and len(change.address.parts) == 1:
        return Severity("warning", "the object is removed from the server")
    if change.action == "replace":
        how = "a new object is created, what uses the old one is moved to it, then the old one is deleted" \
            if change.detail.get("create_before_destroy") else "the object is deleted, then created again"
        return Severity("warning", f"replaced: {how}, because "
                        f"{change.detail.get('reason') or 'it cannot change in place'}")
    return INFO


#: Said of a deposed object (see vboplan.kinds.refs.deposed_name), in every view.
DEPOSED_NOTE = ("the old object a create_before_destroy replace left beside the new one of its key when its apply was "
                "cut short (deposed)")


def _deposed(change: Change) -> Severity | None:
    """The rating of deleting a deposed object, or of moving an object from one onto the current one of its key."""
    if change.action == "delete" and len(change.address.parts) == 1 and change.detail.get("deposed"):
        return Severity("warning", f"{DEPOSED_NOTE} is deleted, now that nothing uses it")
    if change.action != "update" or not isinstance(change.before, (str, list)):
        return None
    from vboplan.kinds.refs import deposed_key, is_deposed_kind

    before = change.before if isinstance(change.before, list) else [change.before]
    after = change.after if isinstance(change.after, list) else [change.after]
    # Only an object of a kind that can be deposed is (its read refuses a real one named like a deposed one).
    names = [found[1] if (found := object_key(a)) is not None and is_deposed_kind(found[0]) else None
             for a in before]
    if any(n is not None and deposed_key(n) is not None for n in names) and \
            {(deposed_key(n) or n).lower() for n in names if n is not None} == \
            {str(_name_in(a) or "").lower() for a in after}:
        return Severity("info", f"moves from {DEPOSED_NOTE} onto the new one, which it was to use")
    return None


def _name_in(address: Any) -> str | None:
    """The object key in an object's address (``kind["KEY"]``), or None."""
    found = object_key(address)
    return found[1] if found is not None else None


_RATES: dict[type, bool] = {}


def _rates(kind: Any) -> bool:
    """Whether ``kind`` is :class:`RatesChanges`, asked once per class: the Protocol's check costs about 16 µs, and a
    plan of a 2,000-user job asked it for every row."""
    found = _RATES.get(type(kind))
    if found is None:
        found = _RATES[type(kind)] = isinstance(kind, RatesChanges)
    return found


def rate(change: Change, kind: Any = None) -> Severity:
    """``change``'s severity: from its kind (``kind``, or the registry's) when it rates its changes, else
    :func:`default`. Every severity has a reason; an unremarkable change says what kind of change it is."""
    if kind is None:
        from vboplan.kinds.registry import KINDS

        kind = KINDS.get(change.kind)
    found = kind.severity(change) if _rates(kind) else None
    found = found or default(change)
    if not found.reason:
        found = Severity(found.level, {"create": "added", "update": "a setting changes",
                                       "replace": "replaced", "delete": "removed"}[change.action])
    return found


def moved(changes: Iterable[Change], rated: dict[str, Severity]) -> dict[str, Severity]:
    """An object taken out of one job's list and put in another's in the same plan is moved: the job it moves to
    backs it up in full at its next run (a warning at least, on both changes)."""
    by_entry: dict[tuple[str, str, str], list[Change]] = {}
    for change in changes:
        entry = _list_entry(change)
        if entry is not None and entry[0] == "selectedItems" and change.action in ("create", "delete"):
            by_entry.setdefault((change.kind, entry[1], entry[2].lower()), []).append(change)
    result = dict(rated)
    for group in by_entry.values():
        actions = {c.action for c in group}
        if actions == {"create", "delete"}:
            for change in group:
                current = result[change.id]
                # A move's own reason beats a lesser one of either half (a removal's "in no other job" is untrue).
                if RANK[current.level] < RANK["critical"]:
                    result[change.id] = Severity("warning", "moved to another job: the next run of the job it "
                                                            "moves to is a full backup of it")
    return result


def rate_all(changes: list[Change]) -> dict[str, Severity]:
    """Severity of each change of a plan, by change id."""
    from vboplan.kinds.registry import KINDS

    rated = {change.id: rate(change, KINDS.get(change.kind)) for change in changes}
    return removed_everywhere(changes, moved(changes, rated))


def removed_everywhere(changes: Iterable[Change], rated: dict[str, Severity]) -> dict[str, Severity]:
    """A principal taken out of a job whose other holders (``detail["elsewhere"]``, the live jobs that back it up,
    by address) all drop it in the same plan is in no job afterwards: a warning on each of those removals, which
    each, rated alone, saw the others still holding it."""
    changes = list(changes)
    dropped: dict[tuple[str, str, str], set[str]] = {}
    added: set[tuple[str, str, str]] = set()
    for change in changes:
        entry = _list_entry(change)
        if entry is None or entry[0] != "selectedItems":
            continue
        ident = (change.kind, entry[1], entry[2].lower())
        if change.action == "delete":
            dropped.setdefault(ident, set()).add(str(Address(change.kind, change.address.parts[:1])))
        elif change.action == "create":
            added.add(ident)
    result = dict(rated)
    for change in changes:
        entry = _list_entry(change)
        others = change.detail.get("elsewhere") if isinstance(change.detail, dict) else None
        if entry is None or entry[0] != "selectedItems" or change.action != "delete" or not others:
            continue
        ident = (change.kind, entry[1], entry[2].lower())
        if ident not in added and set(others) <= dropped.get(ident, set()) \
                and RANK[result[change.id].level] < RANK["warning"]:
            result[change.id] = Severity("warning", f"{entry[1]} {entry[2]} is in no job after this plan: its data "
                                                    "is no longer backed up")
    return result


def critical_first(changes: list[Change], rated: dict[str, Severity]) -> list[Change]:
    """``changes`` with the critical ones first, then warnings, then the rest, each group in plan order."""
    return sorted(changes, key=lambda c: -RANK[rated[c.id].level] if c.id in rated else 0)


_TLS_OFF = turned_off("warning", "mail is sent without TLS")

#: Settings objects, by template key and field (``*``: every settings object).
SETTINGS_FIELDS: dict[str, FieldRaters] = {
    "*": {"useSSL": [_TLS_OFF]},
    "audit_email_settings": {
        "enableNotification": [turned_off("critical", "audit notification turned off: restores of audited "
                                                      "mailboxes are no longer reported")],
    },
    "job_email_settings": {
        "enableNotification": [turned_off("warning", "job notifications turned off")],
        "notifyOnFailure": [turned_off("warning", "job failure notifications turned off")],
    },
    "history_settings": {
        "keepAllsessions": [turned_off("warning", "session history is no longer kept in full")],
        "keeponlyLast": [lowered("warning", "session history shortened")],
    },
    "retention_exclusion_settings": {"*": [turned_off("critical", "retention now removes {field} items too "
                                                                  "(excluded from retention until now)")]},
    "organization_retention_exclusions": {"*": [turned_off("critical", "retention now removes {field} items too "
                                                                       "(excluded from retention until now)")]},
    "folder_exclusion_settings": {"*": [turned_on("warning", "the {field} folder is no longer backed up")]},
    "organization_backup_options": {"sharePointBackupMode": [changed("warning", "SharePoint versions backed up "
                                                                                "change")]},
}


def settings_severity(kind_name: str, change: Change) -> Severity | None:
    """The rating of a settings object's change (see :data:`SETTINGS_FIELDS`)."""
    name = field_of(change)
    if name is None:
        return None
    fields = SETTINGS_FIELDS.get(kind_name, {})
    for rater in [*fields.get(name, []), *fields.get("*", []), *SETTINGS_FIELDS["*"].get(name, [])]:
        found = rater(change)
        if found is not None:
            return Severity(found.level, found.reason.replace("{field}", name))
    if change.write_only or change.sensitive:
        return Severity("info", "a secret is set")
    return None


def audit_item_severity(change: Change) -> Severity:
    """An audit item removed is a warning: restores of that principal's data are no longer reported."""
    if change.action == "delete":
        return Severity("warning", "audit item removed: restores of this principal's data are no longer reported")
    return Severity("info", "audit item added")


def check_recorded(plan: Any, rows: list[dict[str, Any]], where: str) -> None:
    """Refuse a plan file whose rows claim another severity than their kind gives (a critical change dressed as
    info for the approvers); rows without one (older plans) are rated afresh."""
    from vboplan.errors import PlanError

    rated = plan.severities
    for row in rows:
        level = row.get("severity") if isinstance(row, dict) else None
        if level is None:
            continue
        found = rated.get(row.get("id"))
        if found is None or level != found.level or row.get("severity_reason") != found.reason:
            raise PlanError(f"{where}: change {row.get('id')} ({row.get('address')}) is recorded as {level!s} but "
                            f"its kind rates it {found.level if found else 'unknown'}: the file was edited; run "
                            "'vboplan plan' again")
