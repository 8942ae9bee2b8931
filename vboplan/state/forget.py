"""``state list`` and ``state rm``: the addresses a snapshot holds, and forgetting some of them.

Forgetting edits only the snapshot, never the server: the next plan no longer knows what the last apply recorded
there, so it reports no "changed outside vboplan" for it and plans a write-only value as "will be set", as for an
object met for the first time (or, once no template declares it, leaves it unmanaged). What was forgotten, by whom
and when is kept in the snapshot (``forgotten``), so that the next plan can say why.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from typing import TYPE_CHECKING, Any

from vboplan.errors import StateError
from vboplan.kinds.hooks import Forgets
from vboplan.kinds.registry import KINDS
from vboplan.planning.changes import Address
from vboplan.schema import nearest
from vboplan.state.files import now

if TYPE_CHECKING:
    from vboplan.state import StateStore

MAX_FORGOTTEN = 200   # entries kept in a snapshot's ``forgotten`` list (the oldest go first)


def held_rows(resources: dict[str, Any], within: Address | None = None) -> list[tuple[str, Any]]:
    """``(address, value)`` rows of what ``resources`` (a snapshot's) records, each kind's own way, sorted by kind;
    with ``within``, only the rows at or under it."""
    rows = [row for name, recorded in sorted(resources.items()) if name in KINDS
            and (within is None or within.kind == name) for row in KINDS[name].state_rows(recorded)]
    if within is None:
        return rows
    return [row for row in rows if within.covers(Address.parse(row[0]))]


def held_addresses(resources: dict[str, Any], within: Address | None = None) -> list[str]:
    """The addresses a snapshot holds (``state list``), in the order ``state show`` lists them."""
    return list(dict.fromkeys(address for address, _ in held_rows(resources, within)))


def forget(resources: dict[str, Any], address: Address) -> tuple[dict[str, Any], int]:
    """``resources`` without what they record at or under ``address``, and how many rows that was. Every other row
    is kept exactly; anything that cannot be forgotten that way is refused, naming the nearest address held."""
    if address.kind not in resources:
        raise StateError(_nothing_held(resources, address))
    before = held_rows({address.kind: resources[address.kind]})
    gone = [row for row in before if address.covers(Address.parse(row[0]))]
    if not address.parts:
        remaining = {k: v for k, v in resources.items() if k != address.kind}
        return remaining, len(gone)
    if not gone:
        raise StateError(_nothing_held(resources, address))
    kind = KINDS[address.kind]
    # A kind whose records have a shape of their own says how; a settings object's are fields and secrets.
    record = kind.forget(resources[address.kind], address) if isinstance(kind, Forgets) else \
        _without(resources[address.kind], address)
    after = kind.state_rows(record)
    if record is None or Counter(map(_row_key, after)) != Counter(_row_key(r) for r in before if r not in gone):
        raise StateError(f"{address} cannot be forgotten on its own: the snapshot records {address.kind} in a way "
                         f"that ties it to other fields; forget {_parent(address)} instead")
    return {**resources, address.kind: record}, len(gone)


def _row_key(row: tuple[str, Any]) -> str:
    return json.dumps(row, sort_keys=True, default=str)


def _parent(address: Address) -> Address:
    return Address(address.kind, address.parts[:-1])


def _nothing_held(resources: dict[str, Any], address: Address) -> str:
    held = [*sorted(k for k in resources if k in KINDS), *held_addresses(resources)]
    hint = nearest(str(address), held)
    return (f"the state snapshot holds nothing at {address}"
            + (f"; did you mean {hint}?" if hint else f" (it holds: {', '.join(held[:5]) or 'nothing'}"
               + (", ..." if len(held) > 5 else "") + "; see 'vboplan state list')"))


def _without(record: Any, address: Address) -> Any:
    """``record`` (a settings object's, kept per server or per organization) without ``address``; None when its
    shape has no place for it."""
    record = copy.deepcopy(record)
    if not isinstance(record, dict):
        return None
    parts = list(address.parts)
    here = record
    if parts[0][0] == "[" and isinstance(record.get("organizations"), dict):
        organizations = record["organizations"]
        org = parts.pop(0)[1]
        if org not in organizations:
            return None
        if not parts:
            del organizations[org]
            return record
        here = organizations[org]
    if not parts or parts[0][0] != "." or not isinstance(here, dict):
        return None
    if len(parts) != 1:
        return None  # a part of a field: the snapshot keeps fields whole
    name = parts[0][1]
    for section in ("values", "secrets"):
        if isinstance(here.get(section), dict):
            here[section].pop(name, None)
    return record


def forget_in_store(store: StateStore, address: Address, by: str) -> tuple[dict[str, Any], int]:
    """``state rm``: forget ``address`` in ``store``'s snapshot (the caller holds the lock). Returns the new
    snapshot and how many rows were forgotten."""
    snapshot = store.read()
    if snapshot is None:
        raise StateError(f"environment '{store.env.name}' has no state snapshot yet; there is nothing to forget")
    if store.read_journal() is not None:
        raise StateError(f"environment '{store.env.name}': an interrupted apply's write journal "
                         f"({store.journal_display}) is not recorded yet; the next apply records it, forget after "
                         "that")
    resources, count = forget(snapshot.get("resources") or {}, address)
    entry = {"address": str(address), "by": by, "at": now(), "rows": count}
    kept = [e for e in still_forgotten(snapshot.get("forgotten"), resources) if e.get("address") != str(address)]
    written = store.write(resources, snapshot.get("last_apply") or {}, forgotten=(kept + [entry])[-MAX_FORGOTTEN:])
    return written, count


def still_forgotten(entries: Any, resources: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``forgotten`` entries of a snapshot whose address it still holds nothing at (an apply since may have
    recorded it again)."""
    if not isinstance(entries, list):
        return []
    found = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("address"), str):
            continue
        try:
            address = Address.parse(entry["address"])
        except Exception:  # noqa: BLE001 - an entry vboplan cannot read is no reason to stop a plan
            continue
        if address.kind in resources and (not address.parts or held_rows(resources, address)):
            continue
        found.append(entry)
    return found


def last_read(store: StateStore) -> dict[str, Any] | None:
    """The snapshot ``store`` last read, parsed again only when it holds a ``forgotten`` list (the common case costs
    a substring search, not a second parse of a large snapshot)."""
    stored = store._previous
    if stored is None or '"forgotten"' not in stored.text:
        return None
    return store.parse(stored.text)


def forgotten_notes(snapshot: dict[str, Any] | None, scope: dict[str, Any]) -> list[str]:
    """What a plan says about addresses forgotten with ``state rm`` that the snapshot still does not hold;
    ``scope`` is the plan's (the kinds the templates declare, and what of each)."""
    if not snapshot or not snapshot.get("forgotten"):
        return []
    notes = []
    for entry in still_forgotten(snapshot.get("forgotten"), snapshot.get("resources") or {}):
        address = Address.parse(entry["address"])
        managed = KINDS[address.kind].addresses(scope[address.kind]) if address.kind in scope else set()
        declared = any(address.covers(a) or a.covers(address) for a in managed)
        told = f"{address} was forgotten with 'state rm' by {entry.get('by')} at {entry.get('at')}"
        notes.append(f"{told}: the snapshot holds no record of it, so this plan treats it as new (no 'changed "
                     "outside vboplan' for it; a write-only value is planned as 'will be set')" if declared else
                     f"{told} and no template declares it: it is not managed (vboplan neither reads nor changes it)")
    return notes
