"""Which changes of a plan ``--target`` and ``--exclude`` keep.

``--target ADDRESS`` keeps the changes at or under the address and takes in what they refer to: an object the
plan creates and a kept change names (a pool's new proxy, a repository's new pool) comes along, and so do the
changes that move what uses an object the kept changes delete off it, so the partial plan can be applied on its own.
A target covers the deposed objects of its key (the old ones of a replace cut short). ``--exclude ADDRESS``
(OpenTofu's inverse) leaves out the changes at or under it and every change that refers to them, directly or
through another left-out change.
"""

from __future__ import annotations

from collections.abc import Callable

from vboplan.planning.changes import Address, Change

RefersTo = Callable[[Change], list[Address]]


def select(changes: list[Change], targets: list[Address], excludes: list[Address], refers_to: RefersTo) -> list[Change]:
    """The changes ``targets`` (all when empty) and ``excludes`` keep, in their plan order."""
    kept = list(changes)
    if targets:
        kept = _with_references([c for c in changes if any(_covers(t, c) for t in targets)], changes, refers_to)
    if excludes:
        kept = _without_dependants(kept, excludes, refers_to)
    return kept


def _covers(target: Address, change: Change) -> bool:
    """Whether ``target`` covers ``change``: its address, or (a deposed object's delete) the key it was deposed
    from."""
    if target.covers(change.address):
        return True
    deposed = change.detail.get("deposed") if change.action == "delete" else None
    return bool(deposed) and target.covers(Address(change.address.kind).entry(str(deposed)))


def _with_references(chosen: list[Change], changes: list[Change], refers_to: RefersTo) -> list[Change]:
    taken = {id(c) for c in chosen}
    frontier = chosen
    while frontier:
        wanted = [a for c in frontier for a in refers_to(c)]
        gone = {str(c.address) for c in frontier if c.action == "delete" and len(c.address.parts) == 1}
        frontier = [c for c in changes if id(c) not in taken and c.action != "delete"
                    and (any(a.covers(c.address) for a in wanted) or _moves_off(c, gone))]
        taken |= {id(c) for c in frontier}
    return [c for c in changes if id(c) in taken]


def _moves_off(change: Change, gone: set[str]) -> bool:
    """Whether ``change`` points a reference away from one of the objects ``gone`` (their addresses' text)."""
    if not gone or change.action != "update":
        return False
    before = change.before if isinstance(change.before, list) else [change.before]
    after = change.after if isinstance(change.after, list) else [change.after]
    return any(isinstance(b, str) and b in gone and b not in after for b in before)


def _without_dependants(kept: list[Change], excludes: list[Address], refers_to: RefersTo) -> list[Change]:
    dropped = [c for c in kept if any(x.covers(c.address) for x in excludes)]
    # What a kept change may no longer refer to: the excluded addresses, and the objects a left-out change creates.
    gone = list(excludes) + [_object(c.address) for c in dropped if c.action == "create"]
    while True:
        more = [c for c in kept if c not in dropped and any(g.covers(a) for a in refers_to(c) for g in gone)]
        if not more:
            break
        dropped += more
        gone += [_object(c.address) for c in more if c.action == "create"]
    return [c for c in kept if c not in dropped]


def _object(address: Address) -> Address:
    """The object an address lies in (``kind["key"]``), or the address itself when it names a whole kind."""
    return Address(address.kind, address.parts[:1])
