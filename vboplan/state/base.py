"""What every state backend provides: small text objects with versions and conditional writes, and a lock."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

ANY = "*any*"   # ``expect=ANY``: write whatever is there; ``expect=None``: only if nothing is there


@dataclass
class Stored:
    """An object's text and the version (ETag or content hash) a conditional write compares against."""

    text: str
    version: str


@dataclass
class Held:
    """A lock this run holds: its id (what ``state unlock`` names) and what the backend needs to release it."""

    id: str
    info: dict[str, Any]
    handle: Any = None
    notes: list[str] = field(default_factory=list)


class LockBusy(Exception):
    """Raised by :meth:`Backend.acquire` when someone else holds the lock. ``info`` is their lock info, or None
    when it is empty or unreadable (``problem`` then says why)."""

    def __init__(self, info: dict[str, Any] | None, problem: str = "") -> None:
        super().__init__(problem or "locked")
        self.info = info
        self.problem = problem


class Backend(ABC):
    """One place where snapshots, backups, write journals and locks of a project's environments live."""

    kind: str = ""

    @abstractmethod
    def location(self, key: str) -> str:
        """Where ``key`` lives, for messages (a path, ``s3://bucket/key``, a blob URL)."""

    @abstractmethod
    def get(self, key: str) -> Stored | None:
        """The object ``key``, or None when there is none."""

    @abstractmethod
    def put(self, key: str, text: str, expect: str | None = ANY) -> str:
        """Write ``key`` atomically; with ``expect`` a version, only if the object still has it; with None, only if
        there is none. Raises StateConflictError otherwise. Returns the new version."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key`` (no error when it is already gone)."""

    @abstractmethod
    def acquire(self, key: str, info: dict[str, Any]) -> Held:
        """Take the lock ``key`` for this run, recording ``info`` where others can read it; LockBusy if held."""

    @abstractmethod
    def release(self, key: str, held: Held) -> None:
        """Give back a lock this run holds."""

    @abstractmethod
    def holder(self, key: str) -> dict[str, Any] | None:
        """The lock info of the current holder, None when unlocked; LockBusy(None, problem) when it is held but
        its info cannot be read."""

    @abstractmethod
    def break_lock(self, key: str, lock_id: str) -> dict[str, Any]:
        """Break the lock ``key`` if and only if its id is ``lock_id``; returns its info. StateError otherwise."""

    def holder_seen_by(self, key: str, held: Held) -> dict[str, Any] | None:
        """:meth:`holder`, asked by the run that took ``held``: the lock info of whoever holds ``key`` now (this
        run's own while its lock stands). LockBusy(None, problem) as :meth:`holder`."""
        return self.holder(key)

    def append(self, key: str, added: str, whole: str) -> None:
        """Add ``added`` at the end of ``key``, whose whole text is then ``whole`` (an append-only record: the write
        journal). Object stores write whole objects (S3 and Blob Storage have no append that a conditional write and
        a lease both honour), so by default the object is written again whole, atomically; a file is appended to."""
        self.put(key, whole)

    def sweep(self, keys: list[str]) -> list[str]:
        """Remove what a killed writer of ``keys`` left half-done (temporary files); called with their lock held.
        Returns what was removed. Object stores write whole objects, so they have nothing to sweep."""
        return []


def parse_info(text: str) -> dict[str, Any] | None:
    """Lock info from its stored text; None when empty or not a JSON object with an id."""
    try:
        info = json.loads(text) if text.strip() else None
    except ValueError:
        return None
    if not isinstance(info, dict) or not isinstance(info.get("id"), str):
        return None
    return info
