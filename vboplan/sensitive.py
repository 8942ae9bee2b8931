"""Values that must never be shown: the marker type, and the salted hashes that stand in for them on disk."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import html
import html.entities
import json
import logging
import re
import secrets
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "(sensitive)"
_ITERATIONS = 200_000


class Sensitive:
    """A secret value. It prints as ``(sensitive)`` everywhere; only :meth:`reveal` gives the value."""

    __slots__ = ("_value", "_digest")

    def __init__(self, value: Any, digest: dict[str, Any] | None = None) -> None:
        self._value = value
        self._digest = digest  # a salted hash known to be of this value (see digest_of)

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
    return {"algorithm": "pbkdf2-sha256", "iterations": _ITERATIONS, "salt": salt,
            "hash": _derive(str(value), bytes.fromhex(salt), _ITERATIONS)}


def digest_of(value: Any) -> dict[str, Any]:
    """The salted hash of a sensitive value, made once per value: a :class:`Sensitive` keeps the hash it was
    made with or checked against (the plan's, at apply), so the journal and the snapshot store that one rather than
    paying the slow hash again with a new salt. A plain value gets a new hash."""
    if not isinstance(value, Sensitive):
        return digest(value)
    if value._digest is None:
        value._digest = digest(value._value)
    return value._digest


def matches(value: Any, stored: Any) -> bool:
    """Whether ``value`` hashes to the stored digest (False when ``stored`` is not a digest)."""
    if not isinstance(stored, dict) or stored.get("algorithm") != "pbkdf2-sha256":
        return False
    try:
        raw = _derive(str(value), bytes.fromhex(stored["salt"]), int(stored["iterations"]))
    except (KeyError, ValueError, TypeError):
        return False
    return hmac.compare_digest(raw, str(stored.get("hash", "")))


@functools.lru_cache(maxsize=256)
def _derive(text: str, salt: bytes, iterations: int) -> str:
    """PBKDF2-HMAC-SHA256 of ``text`` (hex). A pure function, so a process pays for each (value, salt) once: a plan
    and its apply in one process, a snapshot's hash checked by the next plan of a library caller (the tests run the
    CLI in-process). It holds at most 256 values the process has already held in the clear."""
    if not 1 <= iterations <= 10_000_000:
        raise ValueError(f"{iterations} iterations")  # a plan file's digest names its own count: bound the work
    return hashlib.pbkdf2_hmac("sha256", text.encode(), salt, iterations).hex()


def is_digest(value: Any) -> bool:
    """Whether ``value`` is a salted hash made by :func:`digest` (how a secret live value is kept)."""
    return isinstance(value, dict) and value.get("algorithm") == "pbkdf2-sha256" and "hash" in value


def conceal_live(live: Any, desired: Any, recorded: Any = None) -> tuple[Any, list[str]]:
    """``live`` with the value of every field whose desired value is secret replaced by a salted hash, and the
    names of those fields. A field filled from ``secret()`` is secret as a whole, whatever its live value is. So is
    a field the snapshot record ``recorded`` keeps as a hash (it was secret when last applied), even once the
    template fills it otherwise: the value the server still holds is the old secret (it is not among the names
    returned, which say what the template fills from ``secret()`` now)."""
    if not isinstance(live, dict) or not isinstance(desired, dict):
        return live, []
    fields = sorted(str(k) for k, v in desired.items() if isinstance(v, Sensitive))
    kept = sorted(recorded_secrets(recorded).get(None, set()) - set(fields))
    return conceal_fields(live, fields + kept), fields


def hashed_fields(values: Any) -> list[str]:
    """The top-level fields of ``values`` (a plan's recorded live object) kept as salted hashes."""
    return sorted(str(k) for k, v in values.items() if is_digest(v)) if isinstance(values, dict) else []


def recorded_secrets(recorded: Any) -> dict[str | None, set[str]]:
    """The readable fields a snapshot record keeps as salted hashes (filled from ``secret()`` when last applied):
    {None: fields} for a server-wide object, {organization: fields} for one kept per organization."""
    if not isinstance(recorded, dict):
        return {}
    records = recorded.get("organizations") if "organizations" in recorded else {None: recorded}
    found: dict[str | None, set[str]] = {}
    for org, record in (records or {}).items():
        values = record.get("values") if isinstance(record, dict) else None
        fields = {str(k) for k, v in values.items() if is_digest(v)} if isinstance(values, dict) else set()
        if fields:
            found[org] = fields
    return found


def mask_recorded(changes: list[Any], recorded: Any) -> list[Any]:
    """``changes`` with the live value (``before``) of each field ``recorded`` keeps as a hash masked: the server
    still holds the old secret, whatever the template now wants there (which stays shown)."""
    secret = recorded_secrets(recorded)
    if not secret:
        return changes
    from dataclasses import replace

    masked = []
    for change in changes:
        fields = secret.get(change.detail.get("org"), set())
        if change.detail.get("field") in fields and not change.sensitive and change.before is not None \
                and not isinstance(change.before, Sensitive):
            change = replace(change, before=Sensitive(change.before))
        masked.append(change)
    return masked


def keep_recorded_hashes(resources: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
    """``resources`` (a new snapshot's) with every field the ``previous`` snapshot kept as a hash still kept so
    while the value read is the one hashed: the server still holds that secret (an apply that did not change it,
    or a template that stopped filling it from ``secret()`` before the change was applied)."""
    kept = dict(resources)
    for kind, before in previous.items():
        for org, fields in recorded_secrets(before).items():
            record = kept.get(kind)
            if not isinstance(record, dict):
                continue
            if org is None:
                kept[kind] = _kept(record, before, fields)
            elif isinstance(record.get("organizations"), dict) and org in record["organizations"]:
                organizations = dict(record["organizations"])
                organizations[org] = _kept(organizations[org], before["organizations"][org], fields)
                kept[kind] = {**record, "organizations": organizations}
    return kept


def _kept(record: Any, before: dict[str, Any], fields: set[str]) -> Any:
    values = record.get("values") if isinstance(record, dict) else None
    if not isinstance(values, dict):
        return record
    hashed = before["values"]
    same = {k for k in fields if k in values and values[k] is not None and not is_digest(values[k])
            and matches(values[k], hashed[k])}
    if not same:
        return record
    return {**record, "values": {k: (hashed[k] if k in same else v) for k, v in values.items()}}


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
#
# A server may send a secret back in a form other than the one it was sent: quoted in JSON (``\u0026``, ``\/``), in
# an HTML error page (``&amp;``, ``&#39;``, ``&#x27;``), URL-encoded (``%2F`` or ``%2f``, ``+`` for a space),
# base64 (an echoed ``Authorization`` header, a token that embeds the login), or with its case changed. Each
# remembered secret becomes one pattern that matches it character by character in any of those spellings (mixed
# too: encoders differ in which characters they escape), case-insensitively, plus its base64 forms.

SHORTEST = 4
"""Secrets shorter than this are refused where they enter (``remember``): a value of one to three characters
cannot be masked in free text without masking ordinary words and numbers, and cannot be let through either."""
_JSON_SHORT = {'"': '\\"', "\\": "\\\\", "/": "\\/", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b",
               "\f": "\\f", "'": "\\'"}


def _spellings(char: str) -> list[str]:
    """Regular expressions for ``char`` as itself and as each encoding a server may apply, once or twice."""
    code = ord(char)
    data = char.encode("utf-8")
    once = {re.escape(char)}
    once.add("".join(f"%{b:02x}" for b in data))  # URL-encoded (case is ignored by the pattern)
    if char == " ":
        once.add(re.escape("+"))
    once.add(f"&#0*{code};")
    once.add(f"&#x0*{code:x};")
    name = html.entities.codepoint2name.get(code) or {"'": "apos"}.get(char)
    if name:
        once.add(f"&{name};")
    units = [code] if code < 0x10000 else [0xD800 + ((code - 0x10000) >> 10), 0xDC00 + ((code - 0x10000) & 0x3FF)]
    once.add(re.escape("".join(f"\\u{u:04x}" for u in units)))
    once.add(re.escape(f"\\x{code:02x}") if code < 0x100 else re.escape(f"\\u{code:04x}"))
    if char in _JSON_SHORT:
        once.add(re.escape(_JSON_SHORT[char]))
    # A second layer: one of the above, then escaped again as a whole (JSON inside an HTML page, a URL in JSON).
    plain = {char, "".join(f"%{b:02X}" for b in data), f"&#{code};", "".join(f"\\u{u:04x}" for u in units)}
    if char in _JSON_SHORT:
        plain.add(_JSON_SHORT[char])
    if name:
        plain.add(f"&{name};")
    twice = {re.escape(encoded) for text in plain for encoded in (quote(text, safe=""), quote_plus(text),
                                                                 html.escape(text), json.dumps(text)[1:-1])}
    return sorted(once | twice, key=len, reverse=True)


def _text_pattern(text: str) -> str:
    return "".join(map(_char_pattern, text))


@functools.lru_cache(maxsize=1024)
def _char_pattern(char: str) -> str:
    """One character's alternation of :func:`_spellings`, made once per character a process meets (every secret of
    every run is spelt out character by character)."""
    return f"(?:{'|'.join(_spellings(char))})"


def _base64_forms(text: str) -> set[str]:
    """The stretches of base64 that encode ``text`` wherever it sits in the encoded data: for each of the three
    alignments, the characters made only of its bits (standard and URL-safe alphabets)."""
    data = text.encode("utf-8")
    forms = set()
    for offset in range(3):
        encoded = base64.b64encode(bytes(offset) + data).decode("ascii")
        start = (0, 2, 3)[offset]
        end = (offset + len(data)) * 8 // 6
        for fragment in (encoded[start:end], encoded[start:end].replace("+", "-").replace("/", "_")):
            if len(fragment) >= SHORTEST:
                forms.add(fragment)
    return forms


_ANCHOR = re.compile(r"[A-Za-z0-9_.~-]+")  # characters that URL, HTML and JSON encoders all leave as they are


@dataclass(frozen=True)
class _Known:
    """One remembered secret, ready to be found: a pattern for its spellings, the base64 stretches that encode it,
    and its longest stretch that every encoding keeps readable (case-folded), which any textual match contains.
    The pattern is compiled when a text first holds that stretch (most runs never print one: compiling it is a
    few milliseconds of every run's start, for the API password alone)."""

    text: str
    base64: tuple[str, ...]
    anchor: str

    @functools.cached_property
    def pattern(self) -> re.Pattern[str]:
        cased = sorted({self.text, self.text.upper(), self.text.lower(), self.text.casefold()}, key=len,
                       reverse=True)
        return re.compile("|".join(_text_pattern(form) for form in cased), re.IGNORECASE)


def _prepare(text: str) -> _Known:
    anchor = max(_ANCHOR.findall(text), key=len, default="").casefold()
    return _Known(text, tuple(sorted(_base64_forms(text), key=len, reverse=True)), anchor)


_known: dict[str, _Known] = {}
_known_lock = threading.Lock()
_order: list[_Known] = []


def remember(value: Any, what: str = "a secret value") -> None:
    """Note a secret value of this run (API password, every ``secret()``) so :func:`redact` masks it. A value of
    one to three characters is refused (:data:`SHORTEST`); ``what`` names it in the message."""
    global _order
    text = str(value) if value is not None else ""
    if not text or text in _known:
        return
    if len(text) < SHORTEST:
        from vboplan.errors import ProjectError

        raise ProjectError(f"{what} is shorter than {SHORTEST} characters: vboplan cannot keep so short a secret out "
                           "of what a server echoes without masking ordinary text; use a longer one")
    prepared = _prepare(text)
    with _known_lock:
        _known[text] = prepared
        _order = sorted(_known.values(), key=lambda k: len(k.text), reverse=True)  # a longer secret first


def remembered() -> list[str]:
    """Every secret value remembered in this process (for a parent process to mask them too)."""
    with _known_lock:
        return sorted(_known)


def remember_forms(values: list[str]) -> None:
    """Mask these values as well (what :func:`remembered` gave in a worker process)."""
    for value in values:
        remember(value)


def forget() -> None:
    """Start a new run: drop the secret values remembered so far (each CLI invocation is one run)."""
    global _order
    with _known_lock:
        _known.clear()
        _order = []


def redact(text: str) -> str:
    """``text`` with every remembered secret value, in any spelling a server may send back, as ``(sensitive)``."""
    known = _order
    if not known or not isinstance(text, str):
        return text
    for secret in known:
        for fragment in secret.base64:
            if fragment in text:
                text = text.replace(fragment, MASK)
    folded = text.casefold()
    for secret in known:
        # The pattern is tried only where the text holds the secret's readable stretch: plain substring search is
        # fast; the pattern, with every spelling of every character, is not (megabytes of plan output pass here).
        if secret.anchor in folded:
            masked = secret.pattern.sub(MASK, text)
            if masked != text:
                text, folded = masked, masked.casefold()
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that redacts every record's message (attach it to the handler)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _known:
            record.msg = redact(record.getMessage())
            record.args = None
        return True
