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
    wanted = [_matching(env_name, "--target", text, known) for text in targets]
    left_out = [_matching(env_name, "--exclude", text, known) for text in excluded]
    return select(changes, wanted, left_out, refers_to or (lambda change: []))


def _matching(env_name: str, option: str, text: str, known: set[Address]) -> Address:
    """``text`` parsed as an address that covers at least one of ``known``; otherwise an error that names the
    nearest address vboplan manages there."""
    address = Address.parse(text)
    if any(address.covers(other) for other in known):
        return address
    names = sorted({str(a) for a in known})
    hint = nearest(text, names)
    kinds = sorted({a.kind for a in known})
    raise PlanError(f"environment '{env_name}': {option} {text} matches nothing vboplan manages there"
                    + (f"; did you mean {hint}?" if hint else f" (resources: {', '.join(kinds) or 'none'})"))
