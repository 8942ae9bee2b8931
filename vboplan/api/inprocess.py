"""Requests through an httpx transport given to a session, such as the in-process emulator's WSGI transport
(``server: emulator:<name>``) or a test's: httpx builds each request and the transport answers it; its errors become
the wire's (:mod:`vboplan.api.transport`), so the session handles both alike. Over the network vboplan sends its
requests through :class:`vboplan.api.transport.Wire` instead, without httpx."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx

from vboplan.api.transport import Bounds, ConnectFailed, ResponseTooLarge, TimedOut, WireError


def _wire(exc: httpx.TransportError) -> WireError:
    if isinstance(exc, httpx.TimeoutException):
        return TimedOut(str(exc) or type(exc).__name__)
    if isinstance(exc, httpx.ConnectError):
        return ConnectFailed(str(exc) or type(exc).__name__)
    return WireError(str(exc) or type(exc).__name__)


class Answer:
    """An httpx response as the session reads it (see :class:`vboplan.api.transport.Response`), its bytes counted
    against the request's size bound."""

    def __init__(self, response: httpx.Response, bounds: Bounds, read_bytes: int) -> None:
        self._response, self._bounds, self._read_bytes = response, bounds, read_bytes
        self.status_code = response.status_code
        self.reason_phrase = response.reason_phrase
        self.headers = response.headers
        self.charset_encoding = response.charset_encoding
        self.encoding = response.encoding or "utf-8"

    def _count(self, size: int) -> None:
        self._bounds.received += size
        if self._bounds.received > self._bounds.limit:
            raise ResponseTooLarge(self._bounds.limit)

    def read(self) -> bytes:
        try:
            if not hasattr(self._response, "_content"):
                self._count(len(self._response.read()))
            return self._response.content
        except httpx.TransportError as exc:
            raise _wire(exc) from exc

    @property
    def content(self) -> bytes:
        return self.read()

    @property
    def text(self) -> str:
        self.read()
        return self._response.text

    def json(self) -> Any:
        self.read()
        return self._response.json()

    def iter_bytes(self) -> Iterator[bytes]:
        try:
            for chunk in self._response.iter_bytes(self._read_bytes):
                self._count(len(chunk))
                yield chunk
        except httpx.TransportError as exc:
            raise _wire(exc) from exc

    def close(self) -> None:
        self._response.close()


class Exchange:
    """A session's requests through ``transport`` to ``base``."""

    def __init__(self, transport: httpx.BaseTransport, base: str, timeout: float, headers: dict[str, str]) -> None:
        self._transport = transport
        # httpx's client only builds the requests (base URL, query, JSON or form body, headers); its cookie jar, auth
        # flow, redirect and event-hook layers are passed by. trust_env=False: no proxies, no ~/.netrc.
        self._http = httpx.Client(base_url=base, transport=transport, trust_env=False, timeout=httpx.Timeout(timeout),
                                  headers=headers)

    def send(self, method: str, path: str, *, bounds: Bounds, read_bytes: int, headers: dict[str, str],
             params: dict[str, Any] | None = None, json: Any = None, data: dict[str, str] | None = None) -> Answer:
        try:
            request = self._http.build_request(method, path, params=params, json=json, data=data, headers=headers)
            response = self._transport.handle_request(request)
        except httpx.TransportError as exc:
            raise _wire(exc) from exc
        response.request = request
        return Answer(response, bounds, read_bytes)

    def close(self) -> None:
        self._http.close()
