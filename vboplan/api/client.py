"""The VBO REST client: token auth and refresh, TLS, retries, paging, and the per-version shapes of each call.

One client serves one environment for one run; it is safe to share between threads, and it bounds how many
requests are in flight at once so concurrent lookups never flood a server.
"""

from __future__ import annotations

import codecs
import json
import logging
import os
import re
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import httpcore
import httpx

from vboplan import progress
from vboplan.api.certs import ssl_context
from vboplan.api.versions import PAGE_LIMIT_MAX, TRAITS, VersionTraits
from vboplan.errors import ApiError, AuthError
from vboplan.project.config import Environment
from vboplan.sensitive import redact

log = logging.getLogger("vboplan.api")

T = TypeVar("T")

_RETRY_STATUS = {429, 500, 502, 503, 504}
_IDEMPOTENT = {"GET", "HEAD"}
#: Largest response body vboplan accepts (a directory page of 10,000 users is a few MiB).
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
#: Longest vboplan waits, in all, for a throttled token endpoint (VBO's limits: 1 login/s, 5/min per client).
TOKEN_THROTTLE_WAIT = 65.0


class _Budget(threading.local):
    """The time and bytes left to the request this thread is sending. httpx's timeouts bound each read, so a server
    that sends one byte just before every read timeout would hold a request forever; the network backend below
    bounds each read by what is left of the request's total deadline instead."""

    deadline: float | None = None
    received: int = 0


_budget = _Budget()


class _ResponseTooLarge(Exception):
    pass


def _remaining(timeout: float | None, error: type[Exception]) -> float | None:
    if _budget.deadline is None:
        return timeout
    left = _budget.deadline - time.monotonic()
    if left <= 0:
        raise error("the request's total deadline passed")
    return left if timeout is None else min(timeout, left)


_READ_BYTES = 1024 * 1024


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        # httpcore asks for 64 KiB at a time; a page of 10,000 users is ~7 MB, and with several pages arriving at
        # once every read is a wait for the GIL. Reading up to 1 MiB takes a tenth of the reads.
        data = self._stream.read(max(max_bytes, _READ_BYTES), _remaining(timeout, httpcore.ReadTimeout))
        _budget.received += len(data)
        if _budget.received > MAX_RESPONSE_BYTES:
            raise _ResponseTooLarge()
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


class _Transport(httpx.HTTPTransport):
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
                httpx.create_ssl_context(verify=verify)
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


class _EncodingRefused(Exception):
    def __init__(self, encoding: str) -> None:
        super().__init__(encoding)
        self.encoding = encoding


class _GuardedTransport(httpx.BaseTransport):
    """Refuses compressed answers before their body is read: vboplan asks for none (``Accept-Encoding: identity``),
    and a compressed body would escape the size bound, which counts bytes on the wire."""

    def __init__(self, inner: httpx.HTTPTransport) -> None:
        self._inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            response.close()
            raise _EncodingRefused(encoding)
        return response

    def close(self) -> None:
        self._inner.close()


class VboClient:
    """Talks to one VBO server as one user, at one API version."""

    def __init__(self, env: Environment, username: str, password: str, *, transport: httpx.BaseTransport | None = None,
                 base_url: str | None = None, max_in_flight: int = 8, retries: int = 3, backoff: float = 0.2,
                 throttle_wait: float = TOKEN_THROTTLE_WAIT) -> None:
        """``transport`` (default: HTTPS with TLS verification and per-request deadlines) carries the requests;
        ``base_url`` (default ``{server}/{api_version}/``) is where they go, e.g. an in-process server's name;
        ``throttle_wait`` (at most the environment's timeout) bounds how long, in all, a login waits for a throttled
        token endpoint."""
        self.env = env
        self.version = env.api_version
        self.traits: VersionTraits = TRAITS[env.api_version]
        self._username = username
        self._password = password
        self._retries = retries
        self._backoff = backoff
        # A throttled login waits as the server asks, but never longer than the environment's own timeout.
        self._throttle_wait = min(throttle_wait, env.timeout)
        self._token_lock = threading.Lock()
        self._access_token: str | None = None
        self._refresh_token: str | None = None
        # Why the server cannot be used this run, once that is known: the login failed, or a request found the
        # server unreachable or silent. Later requests (and concurrent first ones) fail at once with the same
        # message, so a run waits for a dead server about once, not once per request, and a wrong password is
        # tried once, not by every reading thread.
        self._unusable: ApiError | None = None
        self._slots = server_slots(env.server, max_in_flight)
        self.max_in_flight = max_in_flight
        self._count_lock = threading.Lock()
        self._organizations: list[dict[str, Any]] | None = None
        self._organizations_lock = threading.Lock()
        self.request_count = 0
        base = base_url or f"{env.server}/{env.api_version}/"
        limits = httpx.Limits(max_connections=max_in_flight, max_keepalive_connections=max_in_flight)
        # No SSL context at all for plain HTTP or an in-process transport; one per verify setting otherwise.
        tls: ssl.SSLContext | None = None
        if transport is None:
            if base.startswith("https://"):
                tls = shared_tls(env.verify, f"environment '{env.name}': verify '{env.verify}'")
            transport = _GuardedTransport(_Transport(tls, limits))
        # Every request goes through ``transport`` (the deadline, the size bound, the shared TLS context). httpx
        # mounts no proxies from HTTP(S)_PROXY beside a transport it is given; trust_env=False says so outright and
        # keeps ~/.netrc and SSL_CERT_FILE out of it too: the server is reached directly, trusted as ``verify`` says.
        self._http = httpx.Client(
            base_url=base, transport=transport, trust_env=False, timeout=httpx.Timeout(env.timeout), limits=limits,
            headers={"Accept": "application/json", "Accept-Encoding": "identity"})

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Log out (where the API can) and close the connections; every run ends here."""
        try:
            self.logout()
        finally:
            self._http.close()

    def __enter__(self) -> VboClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def where(self) -> str:
        return f"environment '{self.env.name}' ({self.env.server})"

    # -- auth --------------------------------------------------------------------------------------------------

    def login(self) -> None:
        """Get a token pair with the password grant (once per run; the token endpoint is throttled)."""
        with self._token_lock:
            self._password_grant()

    def _password_grant(self) -> None:
        self._raise_if_unusable()
        try:
            self._grant({"grant_type": "password", "username": self._username, "password": self._password,
                         "disable_antiforgery_token": "true"})
        except ApiError as exc:
            self._unusable = self._unusable or exc
            raise

    def _raise_if_unusable(self) -> None:
        failed = self._unusable
        if failed is not None:
            raise type(failed)(str(failed), status=failed.status)

    def _ensure_token(self) -> str:
        token = self._access_token
        if token is None:
            # Concurrent first requests wait for one login instead of each asking for a token.
            with self._token_lock:
                if self._access_token is None:
                    self._password_grant()
                token = self._access_token
        assert token is not None
        return token

    def _renew(self, rejected: str) -> None:
        """Replace a token the server rejected: refresh grant first, password grant if that fails."""
        with self._token_lock:
            if self._access_token != rejected:
                return  # another thread already renewed it
            if self._refresh_token:
                try:
                    self._grant({"grant_type": "refresh_token", "refresh_token": self._refresh_token})
                    return
                except AuthError:
                    log.debug("refresh token refused; logging in again")
            self._password_grant()

    def _grant(self, form: dict[str, str]) -> None:
        waited = 0.0
        while True:
            response = self._send("POST", "token", data=form, authenticated=False, retry=True,
                                  retry_status=_RETRY_STATUS - {429})
            if response.status_code != 429:
                break
            # VBO throttles logins per client (1/s, 5/min): wait as the server says (Retry-After), or for the next
            # one-second window when it does not say, within a bound; never hammer it.
            retry_after = response.headers.get("Retry-After", "")
            delay = float(retry_after) if retry_after.isdigit() else 1.0
            if waited + delay > self._throttle_wait:
                raise ApiError(f"{self.where}: the token endpoint is throttling logins (429 "
                               f"{response.reason_phrase or 'Too Many Requests'}) and asks to wait {delay:g}s more "
                               f"after {waited:g}s; try again later", status=429)
            log.warning("%s: the token endpoint is throttling logins; waiting %gs as it asks", self.where, delay)
            time.sleep(delay)
            waited += delay
        if response.status_code == 200:
            body = self._json(response, "token")
            if not isinstance(body, dict):
                raise ApiError(f"{self.where}: the token response is not a JSON object")
            token, refresh = body.get("access_token"), body.get("refresh_token")
            if not isinstance(token, str) or not token:
                raise ApiError(f"{self.where}: the token response has no access_token")
            self._access_token, self._refresh_token = token, refresh if isinstance(refresh, str) else None
            return
        if response.status_code == 404:
            raise ApiError(f"{self.where}: the server does not serve API {self.version} "
                           f"(check api_version; VBO 8 serves v6-v8, VBO 7 v5-v7)", status=404)
        if response.status_code in (400, 401):
            if form["grant_type"] == "refresh_token":
                raise AuthError(f"{self.where}: the server refused the refresh token", status=response.status_code)
            password_var = self.env.password_env or "the password variable"
            raise AuthError(f"{self.where}: wrong username or password for user '{self._username}' "
                            f"(check {password_var})", status=response.status_code)
        raise self._failure(response, "POST token")

    def logout(self) -> None:
        """Revoke the access token where the API has a logout call (v7+); best effort, and not tried against a
        server already found unreachable or silent (the token then simply expires)."""
        if self._access_token and self.traits.has_logout and self._unusable is None:
            try:
                self._send("POST", "token/logout", authenticated=True, retry=False)
            except ApiError:
                pass

    # -- requests ----------------------------------------------------------------------------------------------

    def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
                expect: tuple[int, ...] = (200,), consume: Callable[[httpx.Response], None] | None = None
                ) -> httpx.Response:
        """Send an authenticated request to ``path`` (relative to ``/vN/``), renewing the token once on 401.
        ``consume`` (see :meth:`_send`) reads a 200 answer's body as it arrives."""
        token = self._ensure_token()
        response = self._send(method, path, json=json, params=params, authenticated=True,
                              retry=method in _IDEMPOTENT, consume=consume)
        if response.status_code == 401:
            self._renew(token)
            response = self._send(method, path, json=json, params=params, authenticated=True,
                                  retry=method in _IDEMPOTENT, consume=consume)
            if response.status_code == 401:
                raise AuthError(f"{self.where}: the server rejected a fresh token for {method} /{self.version}/{path}",
                                status=401)
        if response.status_code not in expect:
            raise self._failure(response, f"{method} /{self.version}/{path}")
        return response

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self._json(self.request("GET", path, params=params), f"GET /{self.version}/{path}")

    def _send(self, method: str, path: str, *, json: Any = None, data: dict[str, str] | None = None,
              params: dict[str, Any] | None = None, authenticated: bool, retry: bool,
              retry_status: frozenset[int] | set[int] = _RETRY_STATUS,
              consume: Callable[[httpx.Response], None] | None = None) -> httpx.Response:
        """One request, tried again as ``retry`` and the errors allow, within one total deadline. With ``consume``
        the answer is streamed: a 200 answer's body is passed to ``consume`` while the request still holds its
        deadline and in-flight slot (and again on a retry); any other answer is read whole."""
        self._raise_if_unusable()
        attempt = 0
        # One total deadline for the request, its retries included: a slow server cannot hold a run longer
        # than the environment's timeout, however it paces its bytes.
        deadline = time.monotonic() + self.env.timeout
        while True:
            attempt += 1
            headers = {"Authorization": f"Bearer {self._access_token}"} if authenticated else {}
            try:
                with self._slots:
                    self._count()
                    _budget.deadline, _budget.received = deadline, 0
                    try:
                        if consume is None:
                            response = self._http.request(method, path, json=json, data=data, params=params,
                                                          headers=headers)
                        else:
                            response = self._http.send(self._http.build_request(
                                method, path, json=json, data=data, params=params, headers=headers), stream=True)
                            try:
                                if response.status_code == 200:
                                    consume(response)
                                else:
                                    response.read()  # an error answer: small, and its message is wanted
                            finally:
                                response.close()
                    finally:
                        _budget.deadline = None
            except (_EncodingRefused, _ResponseTooLarge, httpx.TransportError) as exc:
                self._pause_or_raise(exc, f"{method} /{self.version}/{path}", retry, attempt, deadline)
                continue
            if retry and response.status_code in retry_status and attempt < self._retries \
                    and self._sleep(attempt, deadline, response.headers.get("Retry-After")):
                log.debug("%s %s answered %s; retrying", method, path, response.status_code)
                continue
            return response

    def _pause_or_raise(self, exc: Exception, what: str, retry: bool, attempt: int, deadline: float) -> None:
        """After a failed attempt of ``what``: return (after a pause) when it may be made again, otherwise raise the
        error that says why it failed."""
        if isinstance(exc, _EncodingRefused):
            raise ApiError(f"{self.where}: {what} answered with a compressed body ({exc.encoding}), which vboplan "
                           "did not ask for") from None
        if isinstance(exc, _ResponseTooLarge):
            raise ApiError(f"{self.where}: {what} answered with more than {MAX_RESPONSE_BYTES // (1024 * 1024)} MiB; "
                           "refusing it") from None
        assert isinstance(exc, httpx.TransportError)
        if isinstance(exc, httpx.ConnectError):
            # Nothing reached the server: safe to try again whatever the method.
            if attempt < self._retries and not _is_tls_error(exc) and self._sleep(attempt, deadline):
                return
        elif not isinstance(exc, httpx.TimeoutException) and retry and attempt < self._retries \
                and self._sleep(attempt, deadline):
            return
        raise self._transport_error(exc) from None

    def _count(self) -> None:
        with self._count_lock:
            self.request_count += 1
        progress.request()

    def _sleep(self, attempt: int, deadline: float, retry_after: str | None = None) -> bool:
        """Wait before another attempt; False (no wait) when the request's deadline leaves no time for one."""
        delay = self._backoff * (2 ** (attempt - 1))
        if retry_after and retry_after.isdigit():
            delay = max(delay, min(float(retry_after), 10.0))
        if time.monotonic() + delay >= deadline:
            return False
        time.sleep(delay)
        return True

    def _json(self, response: httpx.Response, what: str) -> Any:
        try:
            return response.json()
        except (ValueError, RecursionError):
            raise ApiError(f"{self.where}: {what} did not answer with JSON (HTTP {response.status_code})") from None

    def _failure(self, response: httpx.Response, what: str) -> ApiError:
        message = ""
        try:
            body = response.json()
            if isinstance(body, dict):
                message = str(body.get("message") or body.get("Message") or body.get("error_description") or "")
        except (ValueError, RecursionError):
            message = response.text[:4000]
        # Redact before shortening: a cut through a secret echoed by the server would leave a prefix no redactor knows.
        # One line, printable: a server's HTML error page or control characters must not break the message.
        message = " ".join("".join(ch if ch.isprintable() else " " for ch in redact(message)).split())[:200]
        detail = f": {message}" if message else ""
        return ApiError(f"{self.where}: {what} failed with HTTP {response.status_code}{detail}",
                        status=response.status_code)

    def _transport_error(self, exc: httpx.TransportError) -> ApiError:
        """The error for a request that could not be completed (retries spent). A server that cannot be reached or
        did not answer in time is remembered as such for the rest of the run; a connection dropped under one request
        is not (an apply reads back after it, to learn whether its write landed)."""
        error = self._describe(exc)
        if isinstance(exc, (httpx.TimeoutException, httpx.ConnectError)):
            self._unusable = self._unusable or error
        return error

    def _describe(self, exc: httpx.TransportError) -> ApiError:
        if _is_tls_error(exc):
            return ApiError(
                f"{self.where}: TLS verification failed ({_tls_reason(exc)}). VBO ships a self-signed certificate: "
                "set 'verify' to the path of its CA bundle (or verify: false, which is not recommended)")
        if isinstance(exc, httpx.TimeoutException):
            return ApiError(f"{self.where}: the server did not answer within {self.env.timeout:g}s")
        if isinstance(exc, httpx.ConnectError):
            return ApiError(f"{self.where}: cannot connect to the server ({_reason(exc)})")
        return ApiError(f"{self.where}: the connection failed ({_reason(exc)})")

    # -- the calls vboplan makes, with their per-version shapes --------------------------------------------------

    def get_settings(self, path: str) -> dict[str, Any]:
        body = self.get(path)
        if not isinstance(body, dict):
            raise ApiError(f"{self.where}: GET /{self.version}/{path} did not return an object")
        return body

    def put_settings(self, path: str, body: dict[str, Any]) -> None:
        # v5 echoes the settings with 200, v6/v7 answer 200, v8 204; any of them means done.
        self.request("PUT", path, json=body, expect=(200, 204))

    def organizations(self) -> list[dict[str, Any]]:
        """The server's organizations, read once per client: every kind that works per organization needs them,
        and nothing vboplan writes adds, removes or renames one."""
        with self._organizations_lock:
            if self._organizations is None:
                if self.traits.organizations_paged:
                    self._organizations = list(self.iter_pages("Organizations"))
                else:
                    body = self.get("Organizations")
                    if not isinstance(body, list) or not all(isinstance(item, dict) for item in body):
                        raise ApiError(f"{self.where}: GET /{self.version}/Organizations did not return a list of "
                                       "organizations")
                    self._organizations = body
            return self._organizations

    def iter_pages(self, path: str, params: dict[str, Any] | None = None, limit: int = PAGE_LIMIT_MAX,
                   ahead: int = 0) -> Iterator[dict[str, Any]]:
        """Every item of a paged collection, in order. The first page comes alone (it names the ``setId`` the others
        reuse, and ``totalCount`` where the version has it); the rest are fetched concurrently: every remaining
        page at once when the total is known (v6/v7), else ``ahead`` pages speculatively beyond the last one
        received (v8: a page past the end comes back empty and only costs its round trip). ``ahead`` defaults to
        the client's in-flight bound."""
        first = self._page(path, {**(params or {}), "offset": 0, "limit": limit})
        results = first["results"]
        yield from results
        set_id = first.get("setId")
        total = first.get("totalCount")
        links = first.get("_links") or {}
        if not results or len(results) < limit or (isinstance(total, int) and len(results) >= total) \
                or (links and "next" not in links):
            return
        query = {**(params or {}), "limit": limit, **({"setId": set_id} if set_id else {})}
        step = len(results)
        window = max(1, ahead or self.max_in_flight)
        with ThreadPoolExecutor(max_workers=window) as pool:
            if isinstance(total, int):
                offsets = range(step, total, step)
                for page in pool.map(lambda offset: self._page(path, {**query, "offset": offset}), offsets):
                    yield from page["results"]
                return
            pending: deque[Future[dict[str, Any]]] = deque()
            offset = step
            while True:
                while len(pending) < window:
                    pending.append(pool.submit(self._page, path, {**query, "offset": offset}))
                    offset += step
                page = pending.popleft().result()
                results = page["results"]
                yield from results
                links = page.get("_links") or {}
                if len(results) < step or (links and "next" not in links):
                    for late in pending:
                        late.cancel()
                    return

    def _page(self, path: str, query: dict[str, Any]) -> dict[str, Any]:
        page = self.get(path, query)
        if not isinstance(page, dict) or not isinstance(page.get("results"), list) \
                or not all(isinstance(item, dict) for item in page["results"]) \
                or not isinstance(page.get("_links") or {}, dict):
            raise ApiError(f"{self.where}: GET /{self.version}/{path} did not return a page")
        return page

    def first_page(self, path: str, params: dict[str, Any], limit: int = 100) -> list[dict[str, Any]]:
        page = self.get(path, {**params, "offset": 0, "limit": limit})
        if not isinstance(page, dict) or not isinstance(page.get("results"), list) \
                or not all(isinstance(item, dict) for item in page["results"]):
            raise ApiError(f"{self.where}: GET /{self.version}/{path} did not return a page")
        return page["results"]

    def audit_items(self, org_id: str, each: Callable[[dict[str, Any]], T] | None = None) -> list[Any]:
        """The organization's audit items (one unpaged list, however long), each passed through ``each`` as soon as
        it is decoded: an organization auditing 100,000 users answers ~60 MB, which is decoded as it arrives and
        never held whole, as bytes or as decoded items."""
        return self._each_of_list(f"Organizations/{org_id}/AuditItems", "audit items", each)

    def _each_of_list(self, path: str, noun: str, each: Callable[[dict[str, Any]], T] | None) -> list[Any]:
        """GET ``path``, a JSON list of objects, decoded as it arrives (see :meth:`_send`'s ``consume``)."""
        what = f"GET /{self.version}/{path}"
        items: list[Any] = []

        def consume(response: httpx.Response) -> None:
            items.clear()  # a retried request reads the list again
            try:
                for item in _each_in_array(_decoded(response.iter_bytes(), response.encoding or "utf-8")):
                    if not isinstance(item, dict):
                        raise ApiError(f"{self.where}: {what} did not return a list of {noun}")
                    items.append(each(item) if each is not None else item)
            except (ValueError, RecursionError):
                raise ApiError(f"{self.where}: {what} did not answer with a JSON list") from None

        self.request("GET", path, consume=consume)
        return items

    def add_audit_items(self, org_id: str, items: list[dict[str, Any]]) -> None:
        self.request("POST", f"Organizations/{org_id}/AuditItems", json=items,
                     expect=(self.traits.audit_add_status, 200, 201, 204))

    def remove_audit_items(self, org_id: str, item_ids: list[str]) -> None:
        if self.traits.audit_remove_v5_form:
            self.request("POST", f"Organizations/{org_id}/AuditItems/action",
                         json={"remove": {"itemIds": item_ids}}, expect=(200, 204))
        else:
            self.request("POST", f"Organizations/{org_id}/AuditItems/remove", json={"itemIds": item_ids},
                         expect=(self.traits.audit_remove_status, 200, 204))


_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]*")
_NUMBER_GOES_ON = frozenset("0123456789.eE+-")


class _Pieces:
    """Text arriving in pieces, read from a position that only moves forward: what has been read is let go."""

    def __init__(self, pieces: Iterable[str]) -> None:
        self._pieces = iter(pieces)
        self.text, self.at, self.done = "", 0, False

    def more(self) -> bool:
        """Append the next piece (keeping only the unread text); False when there is none."""
        for piece in self._pieces:
            if piece:
                self.text, self.at = self.text[self.at:] + piece, 0
                return True
        self.done = True
        return False

    def skip_space(self) -> str:
        """Move past whitespace; the next character, or "" at the end of everything."""
        if self.at < len(self.text) and self.text[self.at] not in " \t\n\r":
            return self.text[self.at]  # compact JSON: nothing to skip
        while True:
            self.at = _SPACE.match(self.text, self.at).end()  # type: ignore[union-attr]
            if self.at < len(self.text):
                return self.text[self.at]
            if not self.more():
                return ""

    def value(self) -> Any:
        """The JSON value at the position (json's C scanner), reading more pieces while it runs past the end."""
        while True:
            try:
                value, end = _DECODER.raw_decode(self.text, self.at)
            except ValueError:
                if self.more():
                    continue
                raise
            if (end == len(self.text) or isinstance(value, (int, float)) and self.text[end] in _NUMBER_GOES_ON) \
                    and self.more():
                continue  # a value cut at the end of a piece may go on in the next one (-1 of -1.5e3)
            self.at = end
            return value


def _each_in_array(pieces: Iterable[str]) -> Iterator[Any]:
    """The elements of the JSON array whose text arrives as ``pieces``, decoded one at a time; ValueError when the
    text is not one JSON array."""
    text = _Pieces(pieces)
    if text.skip_space() != "[":
        raise ValueError("not a JSON array")
    text.at += 1
    if text.skip_space() == "]":
        text.at += 1
    else:
        scan = _DECODER.raw_decode
        while True:
            # The common case, compact JSON with the whole element in the text at hand, without a call per step.
            buffer, at = text.text, text.at
            try:
                value, end = scan(buffer, at)
            except ValueError:
                end = -1
            if 0 <= end < len(buffer) - 1 and buffer[end] == "," and not isinstance(value, (int, float)):
                text.at = end + 1
                yield value
                continue
            text.skip_space()
            yield text.value()
            separator = text.skip_space()
            text.at += 1
            if separator == "]":
                break
            if separator != ",":
                raise ValueError("not a JSON array")
    if text.skip_space():
        raise ValueError("extra data after the JSON array")


def _decoded(chunks: Iterable[bytes], encoding: str) -> Iterator[str]:
    """The text of a body arriving as ``chunks`` (a character split between two chunks is put together)."""
    try:
        decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    except LookupError:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # a charset Python does not know
    for chunk in chunks:
        yield decoder.decode(chunk)
    yield decoder.decode(b"", final=True)


def _is_tls_error(exc: Exception) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError) or "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _tls_reason(exc: Exception) -> str:
    text = str(exc)
    if "self-signed" in text or "self signed" in text:
        return "self-signed certificate"
    if "unable to get local issuer" in text:
        return "certificate issuer not trusted"
    if "hostname" in text.lower() or "IP address mismatch" in text:
        return "certificate does not match the host name"
    return "certificate not trusted"


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    if "Connection refused" in text or "Errno 111" in text:
        return "connection refused"
    if "Name or service not known" in text or "nodename nor servname" in text or "Errno -2" in text:
        return "host name not found"
    return text
