"""The wire under the client: HTTP/1.1 over the standard library's :mod:`http.client`, with a keep-alive connection
pool per session whose every connect, write and read is bounded by the current request's total deadline and by a
size bound, one shared SSL context per ``verify`` setting, the in-flight bound per server, and the description of a
failed connection (TLS, refused, unknown host).

http.client parses the status line, the headers (at most 100 of at most 64 KiB each), Content-Length and chunked
bodies; what is added here is what a hostile or dying server needs: the socket's timeout is set to what is left of
the request's deadline before every read and write (a server dripping one byte just before each timeout cannot hold
a request longer than its deadline), every byte read counts against the size bound, and an idle connection the
server closed is not reused. httpx (with httpcore and h11 under it) cost ~1.0 ms of CPU a request against ~0.2 ms for
this (see benchmarks/fleet.py); httpx remains for transports given to a session (the in-process emulator's WSGI
transport): :mod:`vboplan.api.inprocess`."""

from __future__ import annotations

import http.client
import io
import json
import os
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from vboplan.api.certs import default_context, ssl_context, unverified_context

#: Largest answer vboplan reads whole (a directory page of 10,000 users is ~12 MB).
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
#: Largest long list vboplan decodes as it arrives, never holding it whole (audit items: ~1.2 KB an audited user in
#: Veeam's shape, so about 900,000 users in one organization).
MAX_STREAMED_BYTES = 1024 * 1024 * 1024
#: Bytes asked of the socket at a time for an answer read whole, and for a list decoded as it arrives (with eight
#: in flight, what is held at once while 100,000 audit items arrive stays small).
READ_BYTES = 1024 * 1024
STREAM_READ_BYTES = 256 * 1024
#: Seconds an idle kept-alive connection is reused for (httpx's default); older ones are closed.
KEEPALIVE_SECONDS = 5.0
USER_AGENT = "vboplan"


def response_bounds() -> tuple[int, int]:
    """(answers read whole, lists decoded as they arrive) in bytes: :data:`MAX_RESPONSE_BYTES` and
    :data:`MAX_STREAMED_BYTES`, or both as ``VBOPLAN_MAX_RESPONSE_MIB`` says."""
    from vboplan.limits import RESPONSE_ENV, bound

    given = bound(RESPONSE_ENV, 0)
    return (given, given) if given else (MAX_RESPONSE_BYTES, MAX_STREAMED_BYTES)


class WireError(Exception):
    """A request that could not be completed: the connection broke, or the answer is not HTTP."""


class ConnectFailed(WireError):
    """Nothing reached the server: refused, unknown host, TLS handshake failed."""


class TimedOut(WireError):
    """The request's total deadline passed."""


class NameTimedOut(TimedOut):
    """The server's host name did not resolve within the request's deadline."""


class ResponseTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit


class EncodingRefused(Exception):
    def __init__(self, encoding: str) -> None:
        super().__init__(encoding)
        self.encoding = encoding


class Bounds:
    """One request's deadline (``time.monotonic()``) and size bound, and the bytes read so far."""

    __slots__ = ("deadline", "limit", "received")

    def __init__(self, deadline: float, limit: int) -> None:
        self.deadline, self.limit, self.received = deadline, limit, 0

    def left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimedOut("the request's total deadline passed")
        return left


class _Reader(io.RawIOBase):
    """The socket as http.client reads it: each read bounded by the deadline, each byte counted."""

    def __init__(self, wrapped: _Socket) -> None:
        self._wrapped = wrapped

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        bounds = self._wrapped.bounds
        sock = self._wrapped.sock
        sock.settimeout(bounds.left())
        try:
            count = sock.recv_into(buffer)
        except TimeoutError:
            raise TimedOut("the server did not answer in time") from None
        bounds.received += count
        if bounds.received > bounds.limit:
            raise ResponseTooLarge(bounds.limit)
        return count

    def close(self) -> None:
        if not self.closed:
            super().close()
            self._wrapped.reader_closed()


class _Buffered(io.BufferedReader):
    """http.client reads a body of known length (Content-Length, a chunk's size) with one ``read(n)``, for which
    the buffer allocates ``n`` bytes at once: a length beyond the size bound is refused before anything is
    allocated (a server announcing 10**12 bytes was a MemoryError, 10**20 an OverflowError)."""

    def read(self, size: int | None = -1) -> bytes:
        if size is not None and size > self.raw._wrapped.bounds.limit:  # type: ignore[attr-defined]
            raise ResponseTooLarge(self.raw._wrapped.bounds.limit)  # type: ignore[attr-defined]
        return super().read(size)


class _Socket:
    """What http.client sees of the socket (``sendall``, ``makefile``, ``close``): writes bounded by the deadline
    (since Python 3.5 a socket's timeout bounds a whole ``sendall``), reads through :class:`_Reader`; the socket is
    closed once both the connection and the answer's reader let go of it, as ``socket.makefile`` would."""

    def __init__(self, sock: socket.socket, bounds: Bounds) -> None:
        self.sock, self.bounds = sock, bounds
        self._readers, self._closed = 0, False

    def sendall(self, data: Any) -> None:
        self.sock.settimeout(self.bounds.left())
        try:
            self.sock.sendall(data)
        except TimeoutError:
            raise TimedOut("the server did not take the request in time") from None

    def makefile(self, mode: str, *args: Any, **kwargs: Any) -> io.BufferedReader:
        self._readers += 1
        return _Buffered(_Reader(self), READ_BYTES)

    def reader_closed(self) -> None:
        self._readers -= 1
        if self._closed and self._readers <= 0:
            self.sock.close()

    def close(self) -> None:
        self._closed = True
        if self._readers <= 0:
            self.sock.close()

    def idle_and_open(self) -> bool:
        """Whether a kept-alive connection can take another request: an idle socket that is readable was closed
        (or written to) by the server."""
        try:
            if hasattr(select, "poll"):  # POSIX: poll() watches any descriptor; select() none above FD_SETSIZE (1024)
                watch = select.poll()
                watch.register(self.sock, select.POLLIN)
                return not watch.poll(0)
            readable, _, _ = select.select([self.sock], [], [], 0)  # Windows: select() takes any socket
        except (OSError, ValueError):
            return False
        return not readable


def _addresses(host: str, port: int, bounds: Bounds) -> list[tuple[Any, ...]]:
    """The addresses of ``host`` (getaddrinfo), within the request's deadline: the resolver has no timeout of its
    own (a dead DNS server held a request for as long as the system's resolver retries, 30 s and more), so a name is
    resolved on a daemon thread waited for until the deadline; an address literal needs no resolver."""
    try:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except socket.gaierror:
        pass  # a name, not an address
    found: list[Any] = []

    def resolve() -> None:
        try:
            found.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except BaseException as exc:  # handed to the waiting thread, raised there
            found.append(exc)

    resolver = threading.Thread(target=resolve, name="vboplan-resolve", daemon=True)
    resolver.start()
    resolver.join(bounds.left())
    if not found:
        raise NameTimedOut(f"the host name {host!r} did not resolve in time")
    if isinstance(found[0], BaseException):
        raise found[0]
    return found[0]  # type: ignore[no-any-return]


def _connect(addresses: list[tuple[Any, ...]], bounds: Bounds) -> socket.socket:
    """A connected socket to the first of ``addresses`` that takes the connection, as ``socket.create_connection``
    tries them, each attempt bounded by what is left of the deadline."""
    failed: OSError | None = None
    for family, kind, proto, _, address in addresses:
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(bounds.left())
            sock.connect(address)
            return sock
        except OSError as exc:
            sock.close()
            failed = exc
            if isinstance(exc, TimeoutError):
                raise
    raise failed or OSError("the host name has no address")


#: As http.client bounds them: the length of a header line, the header lines of one answer.
_MAX_LINE = 65536
_MAX_HEADERS = 100
_NO_BODY = frozenset({204, 304})


class Headers(dict[str, str]):
    """An answer's header fields by lower-case name (a repeated name keeps its first value, as http.client's
    ``HTTPMessage.get`` returns), with the two lookups vboplan makes: :meth:`get` ignoring the case of the name and
    :meth:`get_content_charset`."""

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return dict.get(self, name.lower(), default)

    def get_content_charset(self) -> str | None:
        """The ``charset`` parameter of Content-Type, lower case and unquoted; None when there is none."""
        for parameter in dict.get(self, "content-type", "").split(";")[1:]:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "charset":
                return value.strip().strip('"').lower() or None
        return None


def header_fields(fp: Any) -> list[tuple[str, str]]:
    """The fields of an HTTP header section read from ``fp`` (up to its empty line), in order, repeats included,
    names as written, with http.client's bounds (a line of more than 64 KiB, more than 100 lines) and its
    exceptions. http.client and http.server hand the lines to the email package's parser (~22 us of CPU for the
    emulator's four header lines, against ~4 us here, measured in-process): here each line is split at its colon,
    a line folded onto the one before (obs-fold) is joined to it, and a line with no colon is skipped. The client's
    answers (:func:`read_headers`) and the emulator's requests read their headers with it."""
    fields: list[tuple[str, str]] = []
    for _ in range(_MAX_HEADERS + 1):
        line = fp.readline(_MAX_LINE + 1)
        if len(line) > _MAX_LINE:
            raise http.client.LineTooLong("header line")
        if line in (b"\r\n", b"\n", b""):
            return fields
        if line[:1] in (b" ", b"\t"):
            if fields:
                name, value = fields[-1]
                fields[-1] = (name, f"{value} {str(line, 'iso-8859-1').strip()}")
            continue
        name, colon, value = line.partition(b":")
        if colon:
            fields.append((str(name, "iso-8859-1").strip(), str(value, "iso-8859-1").strip()))
    raise http.client.HTTPException(f"got more than {_MAX_HEADERS} headers")


def read_headers(fp: Any) -> Headers:
    """The header section of an answer from ``fp`` (see :func:`header_fields`), each name's first value kept."""
    headers = Headers()
    for name, value in header_fields(fp):
        headers.setdefault(name.lower(), value)
    return headers


class _Answer(http.client.HTTPResponse):
    """http.client's response with its header section read by :func:`read_headers` (the body, chunked or of a
    length, is read by http.client as before)."""

    def begin(self) -> None:
        if self.headers is not None:
            return
        while True:
            version, status, reason = self._read_status()  # type: ignore[attr-defined]
            if status != http.client.CONTINUE:
                break
            read_headers(self.fp)  # a 100 Continue's headers: skipped
        self.code = self.status = status
        self.reason = reason.strip()
        if version in ("HTTP/1.0", "HTTP/0.9"):
            self.version = 10
        elif version.startswith("HTTP/1."):
            self.version = 11
        else:
            raise http.client.UnknownProtocol(version)
        self.headers = self.msg = read_headers(self.fp)  # type: ignore[assignment]
        self.chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"
        self.chunk_left = None
        self.will_close = self._check_close()  # type: ignore[attr-defined]
        self.length = None
        length = self.headers.get("content-length")
        if length and not self.chunked:
            try:
                self.length = int(length)
            except ValueError:
                self.length = None
            if self.length is not None and self.length < 0:
                self.length = None
        if status in _NO_BODY or 100 <= status < 200 or self._method == "HEAD":  # type: ignore[attr-defined]
            self.length = 0
        if not self.will_close and not self.chunked and self.length is None:
            self.will_close = True  # no length: the body ends when the server closes the connection


class _Connection(http.client.HTTPConnection):
    response_class = _Answer

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None) -> None:
        super().__init__(host, port)
        self._tls = tls
        self.bounds = Bounds(0.0, 0)
        self.idle_since = 0.0

    def connect(self) -> None:
        bounds = self.bounds
        try:
            sock = _connect(_addresses(self.host, self.port, bounds), bounds)
        except TimeoutError:
            raise TimedOut("connecting timed out") from None
        except (OSError, UnicodeError) as exc:  # UnicodeError: a host name IDNA cannot encode
            raise ConnectFailed(str(exc) or type(exc).__name__) from exc
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:
                sock.settimeout(bounds.left())
                sock = self._tls.wrap_socket(sock, server_hostname=self.host)
        except TimeoutError:
            sock.close()
            raise TimedOut("the TLS handshake timed out") from None
        except (OSError, ssl.SSLError) as exc:
            sock.close()
            raise ConnectFailed(str(exc) or type(exc).__name__) from exc
        self.sock = _Socket(sock, bounds)  # type: ignore[assignment]


class Response:
    """An answer as the session reads it (the parts of ``httpx.Response`` vboplan uses): status, headers, the body
    read whole (:attr:`content`, :meth:`json`, :attr:`text`) or as it arrives (:meth:`iter_bytes`)."""

    def __init__(self, raw: http.client.HTTPResponse, release: Any, read_bytes: int) -> None:
        self._raw, self._release, self._read_bytes = raw, release, read_bytes
        self.status_code: int = raw.status
        self.reason_phrase: str = raw.reason
        self.headers: Headers = raw.headers  # type: ignore[assignment]
        self._content: bytes | None = None

    @property
    def charset_encoding(self) -> str | None:
        return self.headers.get_content_charset()

    @property
    def encoding(self) -> str:
        return self.charset_encoding or "utf-8"

    def read(self) -> bytes:
        if self._content is None:
            self._content = _reading(self._raw.read)
        return self._content

    @property
    def content(self) -> bytes:
        return self.read()

    @property
    def text(self) -> str:
        try:
            return self.content.decode(self.encoding, errors="replace")
        except LookupError:
            return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)

    def readinto(self, buffer: Any) -> int:
        """Read the body into ``buffer`` (a writable buffer) up to its size; the bytes read, 0 at the end."""
        return _reading(self._raw.readinto, buffer)  # type: ignore[no-any-return]

    def iter_bytes(self) -> Iterator[bytes]:
        read1 = self._raw.read1
        while True:
            chunk = _reading(read1, self._read_bytes)
            if not chunk:
                return
            yield chunk

    def close(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            raw = self._raw
            whole = raw.fp is None or (not raw.chunked and raw.length == 0)
            raw.close()
            release(whole and not raw.will_close)


def _reading(read: Any, *args: Any) -> bytes:
    try:
        return read(*args)  # type: ignore[no-any-return]
    except (http.client.HTTPException, OSError, ValueError) as exc:  # ValueError: a chunk size that is not hex
        raise WireError(f"the answer broke off ({_what(exc)})") from exc


def _what(exc: BaseException, sending: bool = False) -> str:
    """What broke, in words of vboplan's own: the bytes a server sent (which might echo a token) are never quoted.
    ``sending``: the request was still being written (http.client refuses a path or header value holding a character
    HTTP does not allow with a ValueError, before anything leaves)."""
    if sending and isinstance(exc, http.client.InvalidURL):
        return "the request's path holds a character a URL cannot carry"
    if sending and isinstance(exc, ValueError) and not isinstance(exc, OSError):
        return "a header of the request holds a character HTTP does not allow"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "the server closed the connection without answering"
    if isinstance(exc, http.client.BadStatusLine):
        return "the answer is not HTTP"
    if isinstance(exc, http.client.LineTooLong):
        return "a header line of the answer is too long"
    if isinstance(exc, http.client.HTTPException) and not isinstance(exc, http.client.IncompleteRead):
        return f"the answer is not valid HTTP ({type(exc).__name__})"
    if isinstance(exc, http.client.IncompleteRead):
        return f"{len(exc.partial)} bytes read, more expected"
    if isinstance(exc, ValueError) and not isinstance(exc, OSError):
        return "bad chunked encoding"
    return str(exc) or type(exc).__name__


_READS = frozenset({"GET", "HEAD"})


def _param(value: Any) -> str:
    # As httpx writes query values.
    return "true" if value is True else "false" if value is False else "" if value is None else str(value)


class Wire:
    """The connections of one session to one server (``base``: ``scheme://host:port/path/``), kept alive between
    requests, at most ``max_idle`` of them."""

    def __init__(self, base: str, tls: ssl.SSLContext | None, max_idle: int, timeout: float,
                 headers: dict[str, str]) -> None:
        parts = urlsplit(base)
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._tls = tls if parts.scheme == "https" else None
        self._prefix = parts.path if parts.path.endswith("/") else parts.path + "/"
        self._max_idle = max_idle
        self._headers = {"User-Agent": USER_AGENT, **headers}
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def send(self, method: str, path: str, *, bounds: Bounds, read_bytes: int, headers: dict[str, str],
             params: dict[str, Any] | None = None, json: Any = None, data: dict[str, str] | None = None) -> Response:
        """Send one request; its answer with the body not yet read (close it to give the connection back)."""
        # A path may carry its own query (an item removal's ``?ids=``, written quoted): kept as it is, not quoted.
        path, mark, query = path.partition("?")
        target = self._prefix + quote(path, safe="/:@!$&'()*+,;=%~") + mark + query
        if params:
            target += ("&" if mark else "?") + urlencode([(k, _param(v)) for k, v in params.items()])
        sent = {**self._headers, **headers}
        body: bytes | None = None
        if json is not None:
            body = _json_bytes(json)
            sent["Content-Type"] = "application/json"
        elif data is not None:
            body = urlencode(data).encode("ascii")
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        connection, reused = self._take()
        while True:
            connection.bounds = bounds
            if connection.sock is not None:
                connection.sock.bounds = bounds  # type: ignore[attr-defined]
            sending = True
            try:
                connection.request(method, target, body=body, headers=sent)
                sending = False
                raw = connection.getresponse()
            except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, http.client.BadStatusLine) as exc:
                early = _early_answer(connection) if sending and isinstance(exc, OSError) else None
                if early is not None:  # the server answered before taking the body (413): that answer is the result
                    return Response(early, lambda keep, conn=connection: conn.close(), read_bytes)
                connection.close()
                # A kept-alive connection the server closed between two requests: sent again on a new one when the
                # request cannot have been acted on (it broke off while leaving, or it is a read), never twice a
                # write the server may have received whole.
                if reused and bounds.received == 0 and isinstance(exc, OSError) and (sending or method in _READS):
                    connection, reused = self._new(), False
                    continue
                raise WireError(_what(exc)) from exc
            except (WireError, ResponseTooLarge):
                connection.close()
                raise
            except (http.client.HTTPException, OSError, ValueError) as exc:
                connection.close()
                raise WireError(_what(exc, sending)) from exc
            return Response(raw, lambda keep, conn=connection: self._give_back(conn, keep), read_bytes)

    def _new(self) -> _Connection:
        return _Connection(self._host, self._port, self._tls)

    def _take(self) -> tuple[_Connection, bool]:
        now = time.monotonic()
        with self._lock:
            if self._pid != os.getpid():  # a forked worker: the parent's sockets are not its own
                self._idle, self._pid = [], os.getpid()
            while self._idle:
                connection = self._idle.pop()
                sock = connection.sock
                if now - connection.idle_since < KEEPALIVE_SECONDS and sock is not None \
                        and sock.idle_and_open():  # type: ignore[attr-defined]
                    return connection, True
                connection.close()
        return self._new(), False

    def _give_back(self, connection: _Connection, keep: bool) -> None:
        if keep and connection.sock is not None:
            connection.idle_since = time.monotonic()
            with self._lock:
                if len(self._idle) < self._max_idle and self._pid == os.getpid():
                    self._idle.append(connection)
                    return
        connection.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


def _early_answer(connection: _Connection) -> http.client.HTTPResponse | None:
    """The answer a server sent before it hung up on a request still leaving (a 413 for a body it will not read, a
    401 before a large upload), or None when there is none to read: the client reports what the server said rather
    than a broken connection, and does not send the request again."""
    try:
        raw = connection.getresponse()
    except (http.client.HTTPException, OSError, ValueError, WireError, ResponseTooLarge):
        return None
    if raw.status < 400:  # an answer to a request the server did not read whole can only be a refusal
        raw.close()
        return None
    return raw


def _json_bytes(value: Any) -> bytes:
    # As httpx writes a JSON body: compact, UTF-8, no NaN.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


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
    origin = server
    if "://" in server:
        parts = urlsplit(server)
        origin = f"{parts.scheme}://{(parts.hostname or '').lower()}:{parts.port}"
    with _slots_lock:
        return _server_slots.setdefault((origin, max_in_flight), threading.BoundedSemaphore(max_in_flight))


def is_tls_error(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError) or "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


# What OpenSSL says when the other end answers a TLS hello with plain HTTP (by version and platform).
_PLAIN_HTTP = ("WRONG_VERSION_NUMBER", "wrong version number", "HTTP_REQUEST", "http request", "record layer failure",
               "RECORD_LAYER_FAILURE", "packet length too long", "PACKET_LENGTH_TOO_LONG")


def answers_plain_http(exc: BaseException) -> bool:
    """Whether a TLS handshake failed because the server speaks plain HTTP on that port."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError) and any(marker in str(seen) for marker in _PLAIN_HTTP):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def tls_reason(exc: BaseException) -> str:
    text = str(exc)
    if "self-signed" in text or "self signed" in text:
        return "self-signed certificate"
    if "unable to get local issuer" in text:
        return "certificate issuer not trusted"
    if "hostname" in text.lower() or "IP address mismatch" in text:
        return "certificate does not match the host name"
    return "certificate not trusted"


def reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if "Connection refused" in text or "Errno 111" in text:
        return "connection refused"
    if "Name or service not known" in text or "nodename nor servname" in text or "Errno -2" in text:
        return "host name not found"
    return text
