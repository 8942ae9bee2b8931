"""What a managed resource kind is: a few functions over JSON-able data."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from vboplan.api.client import VboClient
from vboplan.planning.changes import Address, Change, Drift
from vboplan.sensitive import MASK, Sensitive

KNOWN_AFTER_APPLY = "(known after apply)"


@dataclass(frozen=True)
class AfterApply:
    """A value the server assigns during the apply (the id of an object created by an earlier write of it), written
    in a request where the id goes: shown as ``(known after apply)``, filled in by the executor from the
    :class:`WriteContext` when the request is sent."""

    address: str  # the address of the created object whose id this is

    def __str__(self) -> str:
        return KNOWN_AFTER_APPLY


@dataclass(frozen=True)
class Request:
    """One request apply sends, declared in full before anything is sent: ``path`` is relative to ``/vN/`` and may
    name ``{placeholders}`` filled from ``ids`` (each an :class:`AfterApply`); ``body`` is JSON data that may hold
    :class:`~vboplan.sensitive.Sensitive` values (shown as ``(sensitive)``, sent in clear) and :class:`AfterApply`
    ones. ``expect`` lists the statuses that mean success; ``assigns`` names the address whose server-assigned id is
    the answer's ``id_field`` (a create that answers with the new object)."""

    method: str
    path: str
    body: Any = None
    expect: tuple[int, ...] = (200,)
    ids: Mapping[str, AfterApply] = field(default_factory=dict)
    assigns: str = ""
    id_field: str = "id"

    def shown(self, version: str) -> dict[str, Any]:
        """The request as approvers read it (``show --requests``): secrets as ``(sensitive)``, ids the server assigns
        during the apply as ``(known after apply)``."""
        path = self.path
        for name in self.ids:
            path = path.replace("{" + name + "}", KNOWN_AFTER_APPLY)
        shown: dict[str, Any] = {"method": self.method, "path": f"/{version}/{path}"}
        if self.body is not None:
            shown["body"] = masked(self.body)
        return shown


def masked(value: Any) -> Any:
    """``value`` as it may be shown: every secret ``(sensitive)``, every id assigned during the apply
    ``(known after apply)``."""
    if isinstance(value, Sensitive):
        return MASK
    if isinstance(value, AfterApply):
        return KNOWN_AFTER_APPLY
    if isinstance(value, dict):
        return {key: masked(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [masked(item) for item in value]
    return value


@dataclass
class WriteContext:
    """What earlier writes of one apply learnt: ids the server assigned, by the address of what was created.
    A request that refers to another kind's new object (a job to its repository) carries an :class:`AfterApply`
    the executor looks up here."""

    ids: dict[str, str] = field(default_factory=dict)
    # Ids a kind can learn only with another request (its POST answers without them): asked for the first time a
    # later write needs one, so an apply nothing depends on never spends the round trip.
    _later: list[tuple[frozenset[str], Callable[[], dict[str, str]]]] = field(default_factory=list)

    def record(self, address: Address | str, server_id: str) -> None:
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
class Basis:
    """What a kind derives a change and its requests from, besides the change's own address, action and desired
    value: the plan's API version (whose schema says which fields exist and which are write-only), this kind's live
    values as the plan file records them (the directory answer included) and its scope, and the fields the
    templates fill from ``secret()``. Nothing else in a plan file decides what apply sends."""

    version: str
    live: Any
    scope: Any
    secret_fields: tuple[str, ...] = ()
    # Every kind's recorded live values (this one's included), by kind: where a kind finds the ids of the objects
    # of other kinds it refers to by name (a job's repository).
    every_live: Mapping[str, Any] = field(default_factory=dict)
    # The objects (addresses) the same apply replaces: their ids are the server's to assign again, so a request that
    # refers to one carries an AfterApply (set by ordered_writes; derive does not use it).
    replaced: frozenset[str] = frozenset()


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
    """Some changes carried out by ``requests``, sent in order exactly as declared. ``learn`` is the follow-up read
    of a kind whose create answers without the new ids: given the client it returns them by address, and is sent
    only when a later request needs one of ``learns``."""

    description: str
    changes: list[Change]
    requests: list[Request] = field(default_factory=list)
    learn: Callable[[VboClient], dict[str, str]] | None = None
    learns: list[Address] = field(default_factory=list)


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

    def derive(self, basis: Basis, address: Address, action: str, after: Any) -> Change:
        """The change a plan row at ``address`` with ``action`` and desired value ``after`` is, with everything apply
        acts on (its kind, target object and ids, field, sensitivity, ``before``) derived from the address, the
        schema of ``basis.version`` and the recorded live values, never read from the row. Raises
        :class:`~vboplan.errors.PlanError` when no such change fits the live values (the row was edited). The plan
        makes its rows with it (from :meth:`diff`), plan files are checked with it at load, and apply derives every
        approved change again against the live values it re-read. ``after`` of a sensitive change may be unknown
        (``None``: a plan file holds only its hash); the derived change then carries ``Sensitive(None)``."""

    def desired_value(self, desired: Any, change: Change) -> Any:
        """The desired value ``change`` was planned from (to put a secret back before an apply)."""

    def writes(self, basis: Basis, changes: list[Change]) -> list[Write]:
        """The requests that carry out ``changes`` (derived ones), in order: a pure function of its arguments, so
        ``show --requests`` lists what apply sends."""

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


@runtime_checkable
class ConfirmsWithServer(Protocol):
    """A kind whose derived changes rest on a recorded answer the plan file alone cannot prove (the directory answer
    that names the principal an audit item adds): apply asks the server before it sends anything."""

    def confirm(self, client: VboClient, changes: list[Change]) -> None:
        """Raise :class:`~vboplan.errors.PlanError` naming the change when the server disagrees with what
        ``changes`` (derived and approved) take from the plan's recorded answers."""


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
