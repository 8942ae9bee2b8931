"""What a managed resource kind is: a few functions over JSON-able data."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from vboplan.api.client import VboClient
from vboplan.planning.changes import Address, Change, Drift


@dataclass
class WriteContext:
    """What earlier writes of one apply learnt: ids the server assigned, by the address of what was created.
    A kind whose creates refer to another kind's new items (a job to its repository) looks them up here."""

    ids: dict[str, str] = field(default_factory=dict)
    # Ids a kind can learn only with another request (its POST answers without them): asked for the first time a
    # later write needs one, so an apply nothing depends on never spends the round trip.
    _later: list[tuple[frozenset[str], Callable[[], dict[str, str]]]] = field(default_factory=list)

    def record(self, address: Address, server_id: str) -> None:
        self.ids[str(address)] = server_id

    def record_later(self, addresses: list[Address], fetch: Callable[[], dict[str, str]]) -> None:
        """``fetch`` gives the ids of ``addresses`` (by address text) when one of them is first asked for."""
        self._later.append((frozenset(str(a) for a in addresses), fetch))

    def id_of(self, address: Address | str) -> str | None:
        key = str(address)
        if key not in self.ids:
            for entry in [e for e in self._later if key in e[0]]:
                self._later.remove(entry)
                self.ids.update(entry[1]())
        return self.ids.get(key)


@dataclass(frozen=True)
class WriteOnly:
    """A field the server accepts but never returns, so ``vboplan import`` cannot read it: ``secret`` names the
    variable to pass to ``secret()`` when the field is a password, else it is empty."""

    address: str
    field: str
    secret: str = ""


@dataclass
class Export:
    """A kind's live values as a template renders them (``vboplan import``): names, not ids; never a response-only
    or write-only field. ``keyed_by`` names the levels of names above the fields (``("organization",)`` for a kind
    kept per organization); ``unavailable`` says why the server's API version lacks the kind."""

    values: Any = None
    keyed_by: tuple[str, ...] = ()
    summary: str = ""
    write_only: list[WriteOnly] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    unavailable: str = ""


@dataclass
class Write:
    """One request (or short sequence) that carries out some changes; ``run`` raises on failure and may record
    server-assigned ids in the context it is given."""

    description: str
    changes: list[Change]
    run: Callable[[WriteContext], None]


class ResourceKind(Protocol):
    """A kind of settings vboplan manages. Adding one is a module implementing this and an entry in the registry
    (settings objects need only a :class:`~vboplan.kinds.catalog.SettingsSpec`)."""

    @property
    def name(self) -> str:
        """The resource's key in templates and the first part of its addresses."""

    @property
    def requires(self) -> tuple[str, ...]:
        """Kinds whose creates must be applied before this kind's (their ids are then in the write context)."""

    def normalise(self, version: str, raw: Any, where: Callable[[Any], str]) -> Any:
        """Check what a template rendered against the API version's schema and return canonical desired values.
        ``where(key)`` names the file and line of a key of ``raw`` for error messages."""

    def scope(self, desired: Any) -> Any:
        """The JSON-able part of the server this desired value concerns (read live for it)."""

    def addresses(self, scope: Any) -> set[Address]:
        """Every address a plan of ``scope`` can name (what ``--target`` may select)."""

    def read(self, client: VboClient, scope: Any) -> Any:
        """The live values within ``scope``, JSON-able and canonical."""

    def diff(self, version: str, live: Any, desired: Any, recorded: Any | None) -> list[Change]:
        """Changes (without ids) turning ``live`` into ``desired``; ``recorded`` is this kind's last snapshot."""

    def is_secret(self, version: str, change: Change, secret_fields: list[str]) -> bool:
        """Whether ``change`` concerns a value the API's schema makes secret (write-only, a password) or one of
        ``secret_fields`` (filled from ``secret()`` when planned): such a change must be sensitive."""

    def desired_value(self, desired: Any, change: Change) -> Any:
        """The desired value ``change`` was planned from (to put a secret back before an apply)."""

    def writes(self, client: VboClient, changes: list[Change]) -> list[Write]:
        """The requests that carry out ``changes``, in order."""

    def verify(self, change: Change, live: Any) -> bool:
        """Whether ``live`` (read back after the writes) holds ``change``."""

    def snapshot(self, live: Any, applied: list[Change], recorded: Any | None) -> Any:
        """What the state snapshot keeps for this kind after an apply."""

    def state_rows(self, recorded: Any) -> list[tuple[str, Any]]:
        """``(address, value)`` rows of ``state show`` for what a snapshot holds (secrets masked)."""

    def drift(self, recorded: Any, live: Any) -> list[Drift]:
        """Fields whose live value differs from the snapshot's."""

    def export(self, client: VboClient) -> Export:
        """Everything of this kind the server holds, as a template would declare it (``vboplan import``)."""


def named_organizations(client: VboClient, warnings: list[str]) -> dict[str, dict[str, Any]]:
    """The server's organizations by name; a name two organizations share cannot say which one is meant, so
    neither is exported (with a warning)."""
    by_lower: dict[str, list[dict[str, Any]]] = {}
    for org in client.organizations():
        by_lower.setdefault(str(org.get("name") or "").lower(), []).append(org)
    named: dict[str, dict[str, Any]] = {}
    for label, orgs in by_lower.items():
        if not label.strip():
            warnings.append(f"{len(orgs)} organization(s) without a name were not imported (vboplan names "
                            "organizations by name)")
            continue
        if len(orgs) > 1:
            warnings.append(f"{len(orgs)} organizations are named '{orgs[0].get('name')}'; vboplan names "
                            "organizations by name, so theirs were not imported")
            continue
        named[str(orgs[0]["name"])] = orgs[0]
    return dict(sorted(named.items(), key=lambda item: item[0].lower()))
