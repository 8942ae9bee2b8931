"""The wire under the client: a connection pool whose every read, write and connect is bounded by the current
request's total deadline and by a size bound, one shared SSL context per ``verify`` setting, the in-flight bound
per server, and the description of a failed connection (TLS, refused, unknown host)."""

from __future__ import annotations

import os
import ssl
import threading
import time
from typing import Any

import httpcore
import httpx

from vboplan.api.certs import default_context, ssl_context, unverified_context

#: Largest answer vboplan reads whole (a directory page of 10,000 users is ~12 MB).
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
#: Largest long list vboplan decodes as it arrives, never holding it whole (audit items: ~1.2 KB an audited user in
#: Veeam's shape, so about 900,000 users in one organization).
MAX_STREAMED_BYTES = 1024 * 1024 * 1024


def response_bounds() -> tuple[int, int]:
    """(answers read whole, lists decoded as they arrive) in bytes: :data:`MAX_RESPONSE_BYTES` and
    :data:`MAX_STREAMED_BYTES`, or both as ``VBOPLAN_MAX_RESPONSE_MIB`` says."""
    from vboplan.limits import RESPONSE_ENV, bound

    given = bound(RESPONSE_ENV, 0)
    return (given, given) if given else (MAX_RESPONSE_BYTES, MAX_STREAMED_BYTES)


class Budget(threading.local):
    """The time and bytes left to the request this thread is sending. httpx's timeouts bound each read, so a server
    that sends one byte just before every read timeout would hold a request forever; the network backend below
    bounds each read by what is left of the request's total deadline instead."""

    deadline: float | None = None
    received: int = 0
    limit: int = MAX_RESPONSE_BYTES
    read_bytes: int = 1024 * 1024  # see _DeadlineStream.read


budget = Budget()


class ResponseTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit


def _remaining(timeout: float | None, error: type[Exception]) -> float | None:
    if budget.deadline is None:
        return timeout
    left = budget.deadline - time.monotonic()
    if left <= 0:
        raise error("the request's total deadline passed")
    return left if timeout is None else min(timeout, left)


READ_BYTES = 1024 * 1024
STREAM_READ_BYTES = 256 * 1024


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        # httpcore asks for 64 KiB at a time; a page of 10,000 users is ~7 MB, and with several pages arriving at
        # once every read is a wait for the GIL. Reading up to 1 MiB takes a tenth of the reads. A list decoded as
        # it arrives is read 256 KiB at a time (STREAM_READ_BYTES): with eight in flight, what is held at once
        # while 100,000 audit items arrive is ~30 MB less, for the same CPU time.
        data = self._stream.read(max(max_bytes, budget.read_bytes), _remaining(timeout, httpcore.ReadTimeout))
        budget.received += len(data)
        if budget.received > budget.limit:
            raise ResponseTooLarge(budget.limit)
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _remaining(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname,
                                                      _remaining(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        self._backend = backend

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Any = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._backend.connect_tcp(host, port, _remaining(timeout, httpcore.ConnectTimeout),
                                                         local_address, socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Any = None) -> httpcore.NetworkStream:  # pragma: no cover
        return _DeadlineStream(self._backend.connect_unix_socket(path, _remaining(timeout, httpcore.ConnectTimeout),
                                                                 socket_options))

    def sleep(self, seconds: float) -> None:  # pragma: no cover
        self._backend.sleep(seconds)


class DeadlineTransport(httpx.HTTPTransport):
    """httpx's transport over a connection pool built here: one shared SSL context (or none for plain HTTP) and a
    network backend that bounds every read, write and connect by the current request's total deadline."""

    def __init__(self, tls: ssl.SSLContext | None, limits: httpx.Limits) -> None:  # noqa: D107
        # httpx.HTTPTransport.__init__ would build (and load CA certificates into) a new SSL context for every
        # client, even for http://; the pool below never builds one unless given it.
        self._pool = httpcore.ConnectionPool(
            ssl_context=tls, max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections, keepalive_expiry=limits.keepalive_expiry,
            network_backend=_DeadlineBackend(httpcore.SyncBackend()))


_tls_lock = threading.Lock()
_tls_contexts: dict[Any, ssl.SSLContext] = {}


def shared_tls(verify: bool | str, what: str = "") -> ssl.SSLContext:
    """The SSL context for a ``verify`` setting, built once per process and shared by every client: loading the CA
    store costs tens of milliseconds, and an SSL context is safe to share between connections and threads."""
    key: Any = verify
    if isinstance(verify, str):
        try:
            stat = os.stat(verify)
            key = (verify, stat.st_mtime_ns, stat.st_size)  # a CA file replaced on disk is read again
        except OSError:
            key = (verify, None, None)
    with _tls_lock:
        context = _tls_contexts.get(key)
        if context is None:
            context = _tls_contexts[key] = ssl_context(verify, what) if isinstance(verify, str) else \
                default_context() if verify else unverified_context()
        return context


_slots_lock = threading.Lock()
_server_slots: dict[tuple[str, int], threading.BoundedSemaphore] = {}


def server_slots(server: str, max_in_flight: int) -> threading.BoundedSemaphore:
    """The requests in flight to one server, shared by every client of this process that talks to it (several
    environments may name the same server)."""
    url = httpx.URL(server) if "://" in server else None
    origin = f"{url.scheme}://{url.host}:{url.port}" if url is not None else server
    with _slots_lock:
        return _server_slots.setdefault((origin, max_in_flight), threading.BoundedSemaphore(max_in_flight))


class EncodingRefused(Exception):
    def __init__(self, encoding: str) -> None:
        super().__init__(encoding)
        self.encoding = encoding


class GuardedTransport(httpx.BaseTransport):
    """Refuses compressed answers before their body is read: vboplan asks for none (``Accept-Encoding: identity``),
    and a compressed body would escape the size bound, which counts bytes on the wire."""

    def __init__(self, inner: httpx.HTTPTransport) -> None:
        self._inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            response.close()
            raise EncodingRefused(encoding)
        return response

    def close(self) -> None:
        self._inner.close()



def is_tls_error(exc: Exception) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError) or "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


# What OpenSSL says when the other end answers a TLS hello with plain HTTP (by version and platform).
_PLAIN_HTTP = ("WRONG_VERSION_NUMBER", "wrong version number", "HTTP_REQUEST", "http request", "record layer failure",
               "RECORD_LAYER_FAILURE", "packet length too long", "PACKET_LENGTH_TOO_LONG")


def answers_plain_http(exc: Exception) -> bool:
    """Whether a TLS handshake failed because the server speaks plain HTTP on that port."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError) and any(marker in str(seen) for marker in _PLAIN_HTTP):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def tls_reason(exc: Exception) -> str:
    text = str(exc)
    if "self-signed" in text or "self signed" in text:
        return "self-signed certificate"
    if "unable to get local issuer" in text:
        return "certificate issuer not trusted"
    if "hostname" in text.lower() or "IP address mismatch" in text:
        return "certificate does not match the host name"
    return "certificate not trusted"


def reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    if "Connection refused" in text or "Errno 111" in text:
        return "connection refused"
    if "Name or service not known" in text or "nodename nor servname" in text or "Errno -2" in text:
        return "host name not found"
    return text
