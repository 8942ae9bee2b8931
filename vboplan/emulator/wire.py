"""Small HTTP pieces the emulator's handlers share: responses, API errors, and reading bodies and queries the lenient
way the real ASP.NET/JSON.NET server does."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

import httpx

JSON_CONTENT_TYPE = "application/json; charset=utf-8"
MAX_BODY_BYTES = 32 * 1024 * 1024


class ConnectionDropped(httpx.RemoteProtocolError):
    """Raised by the WSGI app to close the connection without answering (fault injection).

    Over a socket the server closes the connection, which httpx reports as ``httpx.RemoteProtocolError`` ("Server
    disconnected without sending a response"). In process through ``httpx.WSGITransport`` this exception itself
    reaches the client; it is an ``httpx.RemoteProtocolError`` too, so ``except httpx.TransportError`` catches both.
    """

    def __init__(self, message: str = "Server disconnected without sending a response.") -> None:
        super().__init__(message)


@dataclass
class Response:
    """What a handler answers: a status, an optional JSON body and extra headers."""

    status: int
    body: Any = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    reason: str | None = None
    #: Members of a JSON object ``body`` given already encoded (their value in ``body`` is a placeholder), as bytes
    #: or as a list of the encoded elements of an array: a page of directory entries reuses the bytes of each entry
    #: instead of encoding 10,000 of them again, and is copied once into the answer.
    encoded: dict[str, bytes | list[bytes]] = field(default_factory=dict)
    #: The whole JSON body, already encoded (instead of ``body``).
    raw: bytes | None = None

    def encode(self) -> tuple[str, list[tuple[str, str]], bytes]:
        """The WSGI status line, headers and body bytes."""
        payload = b""
        headers = list(self.headers)
        if self.raw is not None:
            payload = self.raw
            headers.append(("Content-Type", JSON_CONTENT_TYPE))
        elif self.body is not None:
            payload = self._joined() if self.encoded else compact_json(self.body)
            headers.append(("Content-Type", JSON_CONTENT_TYPE))
        headers.append(("Content-Length", str(len(payload))))
        reason = self.reason or _phrase(self.status)
        return f"{self.status} {reason}", headers, payload


    def _joined(self) -> bytes:
        """The object ``body`` with its :attr:`encoded` members, joined once."""
        parts: list[bytes] = []
        for key, value in self.body.items():
            parts += [b"," if parts else b"{", compact_json(key), b":"]
            given = self.encoded.get(key)
            if given is None:
                parts.append(compact_json(value))
            elif isinstance(given, list):
                parts += [b"[", b",".join(given), b"]"]
            else:
                parts.append(given)
        return b"".join([*parts, b"}"]) if parts else b"{}"


def compact_json(value: Any) -> bytes:
    """Compact JSON in UTF-8, as the server sends it."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class ApiError(Exception):
    """An error answer. ``plain`` errors come from the web framework (routing, authorization), not from VBO's own
    exception filter, so they carry only ``message``; ``body`` replaces the body entirely (OAuth errors); ``empty``
    answers with no body at all (401 from the authorization filter, 429 from the throttle)."""

    def __init__(self, status: int, message: str, *, plain: bool = False, body: Any = None,
                 headers: list[tuple[str, str]] | None = None, reason: str | None = None,
                 empty: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.plain = plain
        self.body = body
        self.headers = headers or []
        self.reason = reason
        self.empty = empty


def parse_json(raw: bytes) -> Any:
    """Parse a JSON request body as JSON.NET would: a UTF-8 BOM and trailing commas are accepted (Veeam's own doc
    samples have them); anything else malformed is a 400."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ApiError(400, "The request body is not valid UTF-8.") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise ApiError(400, "The request body is nested too deeply.") from None
    except ValueError:
        pass
    try:
        return json.loads(_strip_trailing_commas(text))
    except RecursionError:
        raise ApiError(400, "The request body is nested too deeply.") from None
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"The request body is not valid JSON: {exc.msg} at line {exc.lineno}, "
                            f"column {exc.colno}.") from None


def _strip_trailing_commas(text: str) -> str:
    """``text`` without commas that directly precede ``}`` or ``]`` (outside strings)."""
    out: list[str] = []
    in_string = escaped = False
    pending_comma = -1
    for char in text:
        if in_string:
            out.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char in "}]" and pending_comma >= 0:
            out[pending_comma] = ""
        if char == ",":
            pending_comma = len(out)
        elif not char.isspace():
            pending_comma = -1
        if char == '"':
            in_string = True
        out.append(char)
    return "".join(out)


def is_json_content_type(content_type: str) -> bool:
    """Whether a request's Content-Type is one ASP.NET's JSON formatter reads."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media in ("application/json", "text/json") or media.endswith("+json")


def parse_query(query_string: str) -> dict[str, list[str]]:
    """Query parameters by lower-cased name (ASP.NET binds them case-insensitively), values in order."""
    out: dict[str, list[str]] = {}
    for name, value in parse_qsl(query_string, keep_blank_values=True):
        out.setdefault(name.lower(), []).append(value)
    return out


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"
