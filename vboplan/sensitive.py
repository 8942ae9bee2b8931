"""Values that must never be shown: the marker type, and the salted hashes that stand in for them on disk."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import threading
from typing import Any
from urllib.parse import quote, quote_plus

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


def is_digest(value: Any) -> bool:
    """Whether ``value`` is a salted hash made by :func:`digest` (how a secret live value is kept)."""
    return isinstance(value, dict) and value.get("algorithm") == "pbkdf2-sha256" and "hash" in value


def conceal_live(live: Any, desired: Any) -> tuple[Any, list[str]]:
    """``live`` with the value of every field whose desired value is secret replaced by a salted hash, and the
    names of those fields. A field filled from ``secret()`` is secret as a whole, whatever its live value is."""
    if not isinstance(live, dict) or not isinstance(desired, dict):
        return live, []
    fields = sorted(str(k) for k, v in desired.items() if isinstance(v, Sensitive))
    return conceal_fields(live, fields), fields


def conceal_fields(live: Any, fields: list[str]) -> Any:
    """``live`` with the named fields kept only as salted hashes."""
    if not isinstance(live, dict) or not fields:
        return live
    return {k: (digest(v) if k in fields and v is not None and not is_digest(v) else v) for k, v in live.items()}


def same_live(recorded: Any, live: Any) -> bool:
    """Whether ``live`` (read from the server) is what ``recorded`` says, comparing secret fields by their hash."""
    if is_digest(recorded):
        return matches(live, recorded)
    if isinstance(recorded, dict) and isinstance(live, dict):
        return recorded.keys() == live.keys() and all(same_live(recorded[k], live[k]) for k in recorded)
    return bool(recorded == live)


# -- redaction: what vboplan prints or stores never holds a secret value of the run ------------------------------

_known: set[str] = set()
_known_lock = threading.Lock()
_SHORTEST = 4  # shorter values would mask ordinary words; vboplan never prints such values unmasked anyway


def remember(value: Any) -> None:
    """Note a secret value of this run (API password, every ``secret()``) so :func:`redact` masks it."""
    text = str(value) if value is not None else ""
    if len(text) < _SHORTEST:
        return
    forms = {text, json.dumps(text)[1:-1], quote(text, safe=""), quote_plus(text), repr(text)[1:-1]}
    with _known_lock:
        _known.update(f for f in forms if len(f) >= _SHORTEST)


def forget() -> None:
    """Start a new run: drop the secret values remembered so far (each CLI invocation is one run)."""
    with _known_lock:
        _known.clear()


def redact(text: str) -> str:
    """``text`` with every remembered secret value replaced by ``(sensitive)``."""
    if not _known or not isinstance(text, str):
        return text
    with _known_lock:
        known = sorted(_known, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, MASK)
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that redacts every record's message (attach it to the handler)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _known:
            record.msg = redact(record.getMessage())
            record.args = None
        return True
