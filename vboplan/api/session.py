"""One logged-in conversation with a VBO server: token auth and renewal, retries within one total deadline, the
token endpoint's throttling, the in-flight bound, and the one-line errors vboplan prints for a failed request.

A session serves one environment for one run; it is safe to share between threads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vboplan import progress
from vboplan.api.transport import MAX_RESPONSE_BYTES as MAX_RESPONSE_BYTES
from vboplan.api.transport import MAX_STREAMED_BYTES as MAX_STREAMED_BYTES
from vboplan.api.transport import (
    READ_BYTES,
    STREAM_READ_BYTES,
    Bounds,
    ConnectFailed,
    EncodingRefused,
    NameTimedOut,
    Response,
    ResponseTooLarge,
    TimedOut,
    Wire,
    WireError,
    answers_plain_http,
    is_tls_error,
    reason,
    response_bounds,
    server_slots,
    shared_tls,
    tls_reason,
)
from vboplan.api.versions import TRAITS, VersionTraits
from vboplan.errors import ApiError, AuthError
from vboplan.limits import RESPONSE_ENV, mib, raise_hint
from vboplan.sensitive import MASK, redact

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("vboplan.api")

_RETRY_STATUS = {429, 500, 502, 503, 504}
_IDEMPOTENT = {"GET", "HEAD"}
#: Longest vboplan waits, in all, for a throttled token endpoint (VBO's limits: 1 login/s, 5/min per client).
TOKEN_THROTTLE_WAIT = 65.0


@dataclass(frozen=True)
class ConnectionSettings:
    """Where and how to reach one server: what the API layer needs of an environment, and nothing else."""

    name: str                    # the environment's name, for messages
    server: str                  # https://host:4443, or emulator:<name>
    api_version: str = "v8"
    verify: bool | str = True    # TLS: on, off, or the path of a CA bundle
    timeout: float = 30.0        # seconds for one request, its retries included
    password_env: str | None = None   # named in the message for a wrong password


class Session:
    """Talks to one VBO server as one user, at one API version."""

    def __init__(self, settings: ConnectionSettings, username: str, password: str, *,
                 transport: httpx.BaseTransport | None = None,
                 base_url: str | None = None, max_in_flight: int = 8, retries: int = 3, backoff: float = 0.2,
                 throttle_wait: float = TOKEN_THROTTLE_WAIT) -> None:
        """``transport`` (default: HTTPS with TLS verification and per-request deadlines) carries the requests;
        ``base_url`` (default ``{server}/{api_version}/``) is where they go, e.g. an in-process server's name;
        ``throttle_wait`` (at most the environment's timeout) bounds how long, in all, a login waits for a throttled
        token endpoint."""
        self.settings = settings
        self.version = settings.api_version
        self.traits: VersionTraits = TRAITS[settings.api_version]
        self._username = username
        self._password = password
        self._retries = retries
        self._backoff = backoff
        # A throttled login waits as the server asks, but never longer than the environment's own timeout.
        self._throttle_wait = min(throttle_wait, settings.timeout)
        self._token_lock = threading.Lock()
        self._access_token: str | None = None
        self._refresh_token: str | None = None
        # Why the server cannot be used this run, once that is known: the login failed, or a request found the
        # server unreachable or silent. Later requests (and concurrent first ones) fail at once with the same
        # message, so a run waits for a dead server about once, not once per request, and a wrong password is
        # tried once, not by every reading thread.
        self._unusable: ApiError | None = None
        self._slots = server_slots(settings.server, max_in_flight)
        # The largest answer read whole, and the largest list decoded as it arrives (VBOPLAN_MAX_RESPONSE_MIB).
        self._whole_bound, self._streamed_bound = response_bounds()
        self.max_in_flight = max_in_flight
        self._count_lock = threading.Lock()
        self.request_count = 0
        # Requests not yet answered (a walk's pages read ahead past the end go on after the walk): close() waits for
        # them before it logs out, so none meets a revoked token and logs in again.
        self._in_flight = 0
        self._settled = threading.Condition(self._count_lock)
        # Requests sent that may change the server (anything but GET/HEAD): what was read before one is stale.
        self.write_count = 0
        base = base_url or f"{settings.server}/{settings.api_version}/"
        headers = {"Accept": "application/json", "Accept-Encoding": "identity"}
        # Over the network: the standard library's http.client (vboplan.api.transport), no proxies from HTTP(S)_PROXY
        # (certs.py keeps SSL_CERT_FILE and SSL_CERT_DIR out of every SSL context): the server is reached directly,
        # trusted as ``verify`` says. A transport given (the in-process emulator's) is used through httpx.
        self._wire: Any
        if transport is None:
            tls = shared_tls(settings.verify, f"environment '{settings.name}': verify '{settings.verify}'") \
                if base.startswith("https://") else None
            self._wire = Wire(base, tls, max_in_flight, settings.timeout, headers)
        else:
            from vboplan.api.inprocess import Exchange

            self._wire = Exchange(transport, base, settings.timeout, headers)

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Log out (where the API can) and close the connections; every run ends here."""
        try:
            with self._settled:  # each request ends within its own deadline
                self._settled.wait_for(lambda: self._in_flight == 0, timeout=self.settings.timeout)
            self.logout()
        finally:
            self._wire.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def where(self) -> str:
        return f"environment '{self.settings.name}' ({self.settings.server})"

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
            if not all(33 <= ord(ch) < 127 for ch in token):
                # A bearer token is printable ASCII (RFC 6750's b64token); anything else cannot go in a header line
                # (a line break would start another header) and failed as "bad chunked encoding".
                raise ApiError(f"{self.where}: the token response's access_token is not a bearer token (it holds "
                               "spaces, line breaks or other characters a header cannot carry)")
            self._access_token, self._refresh_token = token, refresh if isinstance(refresh, str) else None
            return
        if response.status_code == 404:
            raise ApiError(f"{self.where}: the server does not serve API {self.version} "
                           f"(check api_version; VBO 8 serves v6-v8, VBO 7 v5-v7)", status=404)
        if response.status_code in (400, 401):
            if form["grant_type"] == "refresh_token":
                raise AuthError(f"{self.where}: the server refused the refresh token", status=response.status_code)
            password_var = self.settings.password_env or "the password variable"
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
                expect: tuple[int, ...] = (200,), consume: Callable[[Response], None] | None = None,
                held_whole: bool = False) -> Response:
        """Send an authenticated request to ``path`` (relative to ``/vN/``), renewing the token once on 401.
        ``consume`` (see :meth:`_send`) reads a 200 answer's body as it arrives; ``held_whole``: it holds the body
        whole (into a buffer of its own), so the bound of answers read whole applies."""
        with self._count_lock:
            self._in_flight += 1
        try:
            token = self._ensure_token()
            if method not in _IDEMPOTENT:
                with self._count_lock:
                    self.write_count += 1
            response = self._send(method, path, json=json, params=params, authenticated=True,
                                  retry=method in _IDEMPOTENT, consume=consume, held_whole=held_whole)
            if response.status_code == 401:
                self._renew(token)
                response = self._send(method, path, json=json, params=params, authenticated=True,
                                      retry=method in _IDEMPOTENT, consume=consume, held_whole=held_whole)
                if response.status_code == 401:
                    raise AuthError(f"{self.where}: the server rejected a fresh token for {method} "
                                    f"/{self.version}/{path}", status=401)
        finally:
            with self._count_lock:
                self._in_flight -= 1
                if not self._in_flight:
                    self._settled.notify_all()
        if response.status_code not in expect:
            raise self._failure(response, f"{method} /{self.version}/{path}")
        return response

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self._json(self.request("GET", path, params=params), f"GET /{self.version}/{path}")

    def _send(self, method: str, path: str, *, json: Any = None, data: dict[str, str] | None = None,
              params: dict[str, Any] | None = None, authenticated: bool, retry: bool,
              retry_status: frozenset[int] | set[int] = _RETRY_STATUS,
              consume: Callable[[Response], None] | None = None, held_whole: bool = False) -> Response:
        """One request, tried again as ``retry`` and the errors allow, within one total deadline. With ``consume``
        the answer is streamed: a 200 answer's body is passed to ``consume`` while the request still holds its
        deadline and in-flight slot (and again on a retry); any other answer is read whole."""
        self._raise_if_unusable()
        attempt = 0
        # One total deadline for the request, its retries included: a slow server cannot hold a run longer
        # than the environment's timeout, however it paces its bytes.
        deadline = time.monotonic() + self.settings.timeout
        while True:
            attempt += 1
            headers = {"Authorization": f"Bearer {self._access_token}"} if authenticated else {}
            try:
                with self._slots:
                    self._count()
                    whole = consume is None or held_whole
                    bounds = Bounds(deadline, self._whole_bound if whole else self._streamed_bound)
                    response = self._wire.send(method, path, json=json, data=data, params=params, headers=headers,
                                               bounds=bounds,
                                               read_bytes=READ_BYTES if whole else STREAM_READ_BYTES)
                    try:
                        # vboplan asks for no compression (Accept-Encoding: identity), and a compressed body would
                        # escape the size bound, which counts bytes on the wire: refused before it is read.
                        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
                        if encoding not in ("", "identity"):
                            raise EncodingRefused(encoding)
                        if consume is not None and response.status_code == 200:
                            consume(response)
                        else:
                            response.read()  # an error answer of a streamed list: small, and its message is wanted
                    finally:
                        response.close()
            except (EncodingRefused, ResponseTooLarge, WireError) as exc:
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
        if isinstance(exc, EncodingRefused):
            raise ApiError(f"{self.where}: {what} answered with a compressed body ({exc.encoding}), which vboplan "
                           "did not ask for") from None
        if isinstance(exc, ResponseTooLarge):
            raise ApiError(f"{self.where}: {what} answered with more than {mib(exc.limit)} MiB; refusing it (a bound "
                           "against a runaway server; if the server really holds that much, "
                           f"{raise_hint(RESPONSE_ENV, exc.limit)})") from None
        assert isinstance(exc, WireError)
        if isinstance(exc, ConnectFailed):
            # Nothing reached the server: safe to try again whatever the method.
            if attempt < self._retries and not is_tls_error(exc) and self._sleep(attempt, deadline):
                return
        elif not isinstance(exc, TimedOut) and retry and attempt < self._retries \
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

    def _json(self, response: Response, what: str) -> Any:
        try:
            return response.json()
        except (ValueError, RecursionError):
            raise ApiError(f"{self.where}: {what} did not answer with JSON (HTTP {response.status_code})") from None

    def _failure(self, response: Response, what: str) -> ApiError:
        message = ""
        try:
            body = response.json()
            if isinstance(body, dict):
                message = str(body.get("message") or body.get("Message") or body.get("error_description") or "")
        except (ValueError, RecursionError):
            message = response.text[:4000]
        # The session's own tokens are secrets too (a server may echo the Authorization header it was sent).
        for token in (self._access_token, self._refresh_token):
            if token:
                message = message.replace(token, MASK)
        # Redact before shortening: a cut through a secret echoed by the server would leave a prefix no redactor knows.
        # One line, printable: a server's HTML error page or control characters must not break the message.
        message = " ".join("".join(ch if ch.isprintable() else " " for ch in redact(message)).split())[:200]
        detail = f": {message}" if message else ""
        return ApiError(f"{self.where}: {what} failed with HTTP {response.status_code}{detail}",
                        status=response.status_code)

    def _transport_error(self, exc: WireError) -> ApiError:
        """The error for a request that could not be completed (retries spent). A server that cannot be reached or
        did not answer in time is remembered as such for the rest of the run; a connection dropped under one request
        is not (an apply reads back after it, to learn whether its write landed)."""
        error = self._describe(exc)
        if isinstance(exc, (TimedOut, ConnectFailed)):
            self._unusable = self._unusable or error
        return error

    def _describe(self, exc: WireError) -> ApiError:
        if answers_plain_http(exc):
            # Not a certificate problem at all (verify: false changes nothing): the port speaks HTTP, not TLS.
            return ApiError(f"{self.where}: the server answered in plain HTTP, not HTTPS: it is not a TLS port. "
                            "Check the port (VBO's REST API listens on 4443 with TLS), or if the server really "
                            "serves plain HTTP, write server: http://... (the password then crosses unencrypted)")
        if is_tls_error(exc):
            return ApiError(
                f"{self.where}: TLS verification failed ({tls_reason(exc)}). VBO ships a self-signed certificate: "
                "set 'verify' to the path of its CA bundle (or verify: false, which is not recommended)")
        if isinstance(exc, NameTimedOut):
            return ApiError(f"{self.where}: the server's host name did not resolve within {self.settings.timeout:g}s "
                            "(check the DNS servers this machine uses, or write the server's IP address)")
        if isinstance(exc, TimedOut):
            return ApiError(f"{self.where}: the server did not answer within {self.settings.timeout:g}s")
        if isinstance(exc, ConnectFailed):
            return ApiError(f"{self.where}: cannot connect to the server ({reason(exc)})")
        return ApiError(f"{self.where}: the connection failed ({reason(exc)})")
