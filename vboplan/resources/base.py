"""What a managed resource kind is: a few functions over JSON-able data."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..api.client import VboClient
from ..changes import Change, Drift
from ..yamlfile import Located


@dataclass
class Write:
    """One request (or short sequence) that carries out some changes; ``run`` raises on failure."""

    description: str
    changes: list[Change]
    run: Callable[[], None]


class ResourceKind(Protocol):
    """A kind of settings vboplan manages. Adding one is a module implementing this and a line in the registry."""

    @property
    def name(self) -> str:
        """The resource's key in templates and the first part of its addresses."""

    def normalise(self, version: str, raw: Any, where: Callable[[Any], str]) -> Any:
        """Check what a template rendered against the API version's schema and return canonical desired values.
        ``where(key)`` names the file and line of a key of ``raw`` for error messages."""

    def scope(self, desired: Any) -> Any:
        """The JSON-able part of the server this desired value concerns (read live for it)."""

    def read(self, client: VboClient, scope: Any) -> Any:
        """The live values within ``scope``, JSON-able and canonical."""

    def diff(self, version: str, live: Any, desired: Any, recorded: Any | None) -> list[Change]:
        """Changes (without ids) turning ``live`` into ``desired``; ``recorded`` is this kind's last snapshot."""

    def writes(self, client: VboClient, changes: list[Change]) -> list[Write]:
        """The requests that carry out ``changes``, in order."""

    def verify(self, change: Change, live: Any) -> bool:
        """Whether ``live`` (read back after the writes) holds ``change``."""

    def snapshot(self, live: Any, applied: list[Change], recorded: Any | None) -> Any:
        """What the state snapshot keeps for this kind after an apply."""

    def drift(self, recorded: Any, live: Any) -> list[Drift]:
        """Fields whose live value differs from the snapshot's."""


def where_in(mapping: Any, source: str) -> Callable[[Any], str]:
    """A ``where(key)`` function for a mapping parsed from ``source``."""
    if isinstance(mapping, Located):
        return mapping.where
    return lambda key: source
