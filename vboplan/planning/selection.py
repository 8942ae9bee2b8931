"""Which changes a partial plan keeps: ``--target ADDRESS`` (only what is at or under it) and ``--exclude ADDRESS``
(everything but that). Both are checked against what the environment's templates manage, so that a typo is an
error with a suggestion rather than a plan that silently leaves out (or keeps) the wrong thing."""

from __future__ import annotations

from collections.abc import Iterable

from vboplan.errors import PlanError
from vboplan.planning.changes import Address, Change
from vboplan.planning.select import RefersTo, select
from vboplan.schema import nearest


def select_changes(env_name: str, changes: list[Change], managed: Iterable[Address], targets: Iterable[str] = (),
                   excluded: Iterable[str] = (), refers_to: RefersTo | None = None) -> list[Change]:
    """The changes a plan with ``targets`` and ``excluded`` keeps, in their order (see
    :func:`vboplan.planning.select.select`: a target takes in what it refers to, an exclusion leaves out what
    refers to it). Each address given must match something the templates manage (``managed``: every address a plan
    of the scope can name), else the error names the nearest one."""
    targets, excluded = list(targets), list(excluded)
    if not targets and not excluded:
        return changes
    known = {*managed, *(c.address for c in changes)}
    changed = {_object_key(c.address) for c in changes} - {None}
    wanted = [_matching(env_name, "--target", text, known, changed) for text in targets]
    left_out = [_matching(env_name, "--exclude", text, known, changed) for text in excluded]
    return select(changes, wanted, left_out, refers_to or (lambda change: []))


def _object_key(address: Address) -> tuple[str, str] | None:
    """(kind, lower-cased key) of the object an address lies in, or None for a kind's own fields."""
    if not address.parts or address.parts[0][0] != "[":
        return None
    return address.kind, address.parts[0][1].lower()


def _keyed(env_name: str, option: str, address: Address, known: set[Address],
           changed: set[tuple[str, str] | None]) -> Address | None:
    """``address`` with its object's key as the plan keys it, where a job's or role's name and its
    ``ORGANIZATION/NAME`` key differ: a bare name that one organization's object has (an error naming them when
    several have it), or ``ORGANIZATION/NAME`` of an object the server keys by its name alone. None: as written."""
    spot = _object_key(address)
    if spot is None or (spot in changed):
        return None
    key = spot[1]
    keys = {a.parts[0][1] for a in known if _object_key(a) is not None and a.kind == address.kind}
    if "/" in key:
        bare = key.rsplit("/", 1)[1]
        found = sorted(k for k in keys if k.lower() == bare and (address.kind, bare) in changed)
    else:
        found = sorted(k for k in keys if k.lower().endswith("/" + key))
    if not found:
        return None
    if len(found) > 1:
        names = ", ".join(str(Address(address.kind).entry(k)) for k in found)
        raise PlanError(f"environment '{env_name}': {option} {address} names objects of several organizations "
                        f"({names}); write the one you mean")
    return Address(address.kind, (("[", found[0]), *address.parts[1:]))


def _named(env_name: str, option: str, text: str, known: set[Address],
           changed: set[tuple[str, str] | None]) -> Address | None:
    """The object a bare name (``Contoso mail``, written without its kind) names: the one object of any kind whose
    key is ``text``, or ends in ``/`` and ``text`` (a job's or role's ``ORGANIZATION/NAME``), compared
    case-insensitively; an error listing them when several objects have it. None: no object has it. An object the
    templates key ``ORGANIZATION/NAME`` and the server (its rows) by its name alone is one object, as in
    :func:`_keyed`: its rows' address."""
    wanted = text.strip().lower()
    found = sorted({Address(a.kind, a.parts[:1]) for a in known if (key := _object_key(a)) is not None
                    and (key[1] == wanted or key[1].endswith("/" + wanted))}, key=str)
    found = [a for a in found if "/" not in a.parts[0][1] or (a.kind, wanted) not in changed]
    if len(found) > 1:
        raise PlanError(f"environment '{env_name}': {option} {text} names several objects "
                        f"({', '.join(str(a) for a in found)}); write the address of the one you mean")
    return found[0] if found else None


def _matching(env_name: str, option: str, text: str, known: set[Address],
              changed: set[tuple[str, str] | None]) -> Address:
    """``text`` parsed as an address that covers at least one of ``known`` (its key as the plan keys it, see
    :func:`_keyed`), or as the bare name of one object (see :func:`_named`) where it names no kind the templates
    manage; otherwise an error that names the nearest address vboplan manages there."""
    try:
        address = Address.parse(text)
    except PlanError:
        named = _named(env_name, option, text, known, changed)
        if named is not None:
            return named
        hint = _nearest_object(text, known)
        if hint is None:
            raise  # not an address, nor any object's name: the parser's message says what is wrong
        raise PlanError(f"environment '{env_name}': {option} {text} matches nothing vboplan manages there; did you "
                        f"mean {hint}?") from None
    if address.kind not in {a.kind for a in known}:
        named = _named(env_name, option, text, known, changed)
        if named is not None:
            return named
    address = _keyed(env_name, option, address, known, changed) or address
    if any(address.covers(other) for other in known):
        return address
    names = sorted({str(a) for a in known})
    hint = nearest(text, names) or _nearest_object(text, known)
    kinds = sorted({a.kind for a in known})
    raise PlanError(f"environment '{env_name}': {option} {text} matches nothing vboplan manages there"
                    + (f"; did you mean {hint}?" if hint else f" (resources: {', '.join(kinds) or 'none'})"))


def _nearest_object(text: str, known: set[Address]) -> str | None:
    """The address of the object whose key looks most like ``text`` (a bare name, mistyped), if any does."""
    objects = {a.parts[0][1]: str(Address(a.kind, a.parts[:1])) for a in known if _object_key(a) is not None}
    near = nearest(text, sorted(objects))
    return objects[near] if near else None
