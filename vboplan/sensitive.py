"""Values that must never be shown: the marker type, and the salted hashes that stand in for them on disk."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

MASK = "(sensitive)"
_ITERATIONS = 200_000


class Sensitive:
    """A secret value. It prints as ``(sensitive)`` everywhere; only :meth:`reveal` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: Any) -> None:
        self._value = value

    def reveal(self) -> Any:
        return self._value

    def __repr__(self) -> str:
        return MASK

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sensitive) and hmac.compare_digest(str(self._value), str(other._value))

    def __hash__(self) -> int:
        return hash(MASK)


def reveal(value: Any) -> Any:
    """The plain value inside ``value`` (recursively), for sending to the server and nowhere else."""
    if isinstance(value, Sensitive):
        return value.reveal()
    if isinstance(value, dict):
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v) for v in value]
    return value


def digest(value: Any, salt: str | None = None) -> dict[str, Any]:
    """A salted, slow hash of ``value`` that can be stored in plan and state files."""
    salt = salt or secrets.token_hex(16)
    raw = hashlib.pbkdf2_hmac("sha256", str(value).encode(), bytes.fromhex(salt), _ITERATIONS)
    return {"algorithm": "pbkdf2-sha256", "iterations": _ITERATIONS, "salt": salt, "hash": raw.hex()}


def matches(value: Any, stored: Any) -> bool:
    """Whether ``value`` hashes to the stored digest (False when ``stored`` is not a digest)."""
    if not isinstance(stored, dict) or stored.get("algorithm") != "pbkdf2-sha256":
        return False
    try:
        raw = hashlib.pbkdf2_hmac("sha256", str(value).encode(), bytes.fromhex(stored["salt"]),
                                  int(stored["iterations"]))
    except (KeyError, ValueError, TypeError):
        return False
    return hmac.compare_digest(raw.hex(), str(stored.get("hash", "")))
