"""Optional capabilities of a resource kind, each a Protocol checked with ``isinstance``: the planner and apply ask
``isinstance(kind, Refers)`` rather than looking for an attribute by name, so a kind's capability is part of its
type and a typo is an error a type checker finds.

A kind implements :class:`~vboplan.kinds.base.ResourceKind` and any of these; :class:`~vboplan.kinds.collection.
CollectionKind` implements the kind-level ones for every named collection, and a spec's ``hooks`` object the
per-collection ones (:class:`ReadsMore`, :class:`PlacesCreate`, :class:`ChecksObject`, :class:`MakesKind`, and for a
collection kept under another kind's objects :class:`InParent`, :class:`ResolvesNames`, :class:`WritesInBulk`).
Audit items implement :class:`Guarded`, :class:`Condenses` and :class:`Forgets` on their own kind.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from vboplan.planning.changes import Address, Change


@runtime_checkable
class Refers(Protocol):
    """A kind whose objects refer to other kinds' objects."""

    def pending(self, changes: list[Change], live: Any) -> list[tuple[Change, str, str]]:
        """``(change, kind, name)`` for each reference of ``changes`` to an object the server does not hold: the
        plan must create it, or the reference is an error."""

    def refers_to(self, change: Change) -> list[Address]:
        """The addresses of the objects ``change``'s values refer to (what ``--target`` takes in)."""


@runtime_checkable
class Guarded(Protocol):
    """A kind the mass-delete guard counts."""

    def deletions(self, changes: list[Change], live: Any) -> list[tuple[Any, ...]]:
        """``(scope, deleted, total)`` for each scope the changes delete objects of, or ``(scope, deleted, total,
        noun)`` where the guard's message should not call them objects (``audit items``). A kind that counts only
        deletions above a floor of its own (more than 10 of a list's items) leaves the others out."""


@runtime_checkable
class ConcealsLive(Protocol):
    """A kind whose live values nest the fields a template may fill from ``secret()``."""

    def conceal(self, live: Any, desired: Any) -> tuple[Any, list[str]]:
        """``live`` with every value the desired one fills from ``secret()`` kept as a salted hash, and the
        fields that names (each as :meth:`conceal_fields` takes them)."""

    def conceal_fields(self, live: Any, fields: list[str]) -> Any:
        """``live`` with ``fields`` (as :meth:`conceal` named them) kept as salted hashes."""


@runtime_checkable
class Declares(Protocol):
    """A kind that says where each of its desired objects was declared (``file:line``), for messages."""

    def declared_at(self, desired: Any, key: str) -> str:
        """Where ``desired``'s object ``key`` was declared."""


@runtime_checkable
class ReadsMore(Protocol):
    """A collection's irregular read (``CollectionSpec.hooks``): its objects' answers leave out fields the API lists
    elsewhere (a v6/v7 job's selected items)."""

    def more(self, client: Any, version: str, item: dict[str, Any]) -> dict[str, Any]:
        """API fields of ``item`` (one object as the list answered it) read from elsewhere; merged into it."""


@runtime_checkable
class PlacesCreate(Protocol):
    """A collection's irregular create (``CollectionSpec.hooks``): the request goes where the object's fields say
    and carries another body (a v6/v7 job is created under its organization and names it only in the path)."""

    def place(self, version: str, path: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The path and body of the create otherwise sent to ``path`` with ``body`` (ids already filled in; the id of
        an object the same apply creates stays a ``{placeholder}`` of the path, filled in when it is sent)."""


@runtime_checkable
class ChecksObject(Protocol):
    """A collection's rule on its objects beyond what the schema types (``CollectionSpec.hooks``): checked when a
    template is rendered, and by the emulator, which answers 400 as the server does (a cloud account's
    ``userName`` must be lower case)."""

    def check(self, version: str, key: str, fields: dict[str, Any]) -> str:
        """What is wrong with object ``key`` (its API fields), or an empty string."""


@runtime_checkable
class Uses(Protocol):
    """A kind whose live objects refer to other kinds' objects, so that a plan deleting one in use is refused (the
    server would refuse it too: Veeam answers that an object in use cannot be removed)."""

    def users(self, live: Any, kind: str, key: str) -> list[tuple[Address, str]]:
        """``(address, field)`` of each live object that refers to ``kind``'s object ``key`` through ``field``."""


@runtime_checkable
class FollowsReplaces(Protocol):
    """A kind whose objects must be replaced with another kind's object they depend on (a copy job with the backup
    job it copies): told the rows of the kinds planned before it."""

    def follow(self, version: str, live: Any, desired: Any, found: list[Change], earlier: list[Change]) -> list[Change]:
        """``found`` (this kind's rows) with what ``earlier`` (other kinds' rows) replaces for this kind too."""


@runtime_checkable
class ChecksScope(Protocol):
    """A kind whose scope (what a plan reads and resolves) a plan file carries beyond what its rows say: held to the
    templates' own, rendered again, before an apply (a job's principal names)."""

    def scope_problem(self, planned: Any, templates: Any) -> str:
        """What the plan file's scope ``planned`` says that ``templates`` (the templates' scope) does not, or leaves
        out of it (empty: they agree)."""


@runtime_checkable
class Condenses(Protocol):
    """A kind whose live values a plan file keeps in a shorter form (many audit items by their count and digest)."""

    def condense(self, live: Any, changes: list[Change] | None = None) -> Any:
        """``live`` as a plan file keeps it, with whatever ``changes`` need to be derived again."""


@runtime_checkable
class Forgets(Protocol):
    """A kind whose snapshot records have a shape of their own (``state rm``); a settings object's fields and
    secrets are forgotten without one."""

    def forget(self, record: Any, address: Address) -> Any:
        """A copy of ``record`` (this kind's in a snapshot) without what it holds at or under ``address`` (an address
        of this kind below its top); None when the record has no place for ``address`` on its own."""


@runtime_checkable
class Repoints(Protocol):
    """A kind whose live objects can be moved from one object they refer to onto its replacement (a repository onto
    the new encryption key of a ``create_before_destroy`` replace)."""

    def move_row(self, basis: Any, key: str, through: str, target: str) -> Any:
        """The row (a :class:`~vboplan.planning.changes.Change`, an update) moving object ``key``'s reference
        ``through`` (as templates write it) to the object at address ``target`` that the same apply creates (its id
        known after apply)."""


@runtime_checkable
class MakesKind(Protocol):
    """A collection whose objects need more than the generic implementation (``CollectionSpec.hooks``): a job's
    item lists, kept through their own endpoints. The registry asks it for the collection's resource kind, a
    :class:`~vboplan.kinds.collection.CollectionKind` subclass that adds to the generic one, or a kind of its own on
    :class:`~vboplan.kinds.collection.SpecKind` (audit items, lists of principals rather than objects of fields)."""

    def kind(self, spec: Any) -> Any:
        """The resource kind of ``spec``."""


@runtime_checkable
class InParent(Protocol):
    """A collection kept under the objects of another kind (``CollectionSpec.hooks``): audit items under each
    organization (``Organizations/{organizationId}/AuditItems``), whose templates key them by the organization's
    name."""

    def parent(self, client: Any, key: str) -> dict[str, Any]:
        """The object (its ``id`` and name) a template's ``key`` names; an error naming it when the server has
        none."""


@runtime_checkable
class ResolvesNames(Protocol):
    """A collection whose objects are principals of the parent's directory, written by name (``CollectionSpec.
    hooks``): users by e-mail or display name, groups by group or display name."""

    def resolve(self, client: Any, parent: dict[str, Any], kind: str, names: list[str]) -> dict[str, Any]:
        """The principal of ``kind`` each of ``names`` names in ``parent``'s directory, by name; an error naming
        the first name that names none or more than one."""


@runtime_checkable
class WritesInBulk(Protocol):
    """A collection whose API adds many objects in one request and removes many in another (``CollectionSpec.
    hooks``): the spec's create and delete operations, with the bodies this says."""

    def added(self, version: str, objects: list[dict[str, Any]]) -> Any:
        """The body of the one request adding ``objects`` (each as the API names it)."""

    def removed(self, version: str, ids: list[str]) -> Any:
        """The body of the one request removing the objects of ``ids``."""
