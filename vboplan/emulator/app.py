"""The emulated VBO REST server as a plain WSGI application.

:class:`Emulator` serves ``/v5`` ... ``/v8`` of the resources vboplan manages, with token authentication, Veeam's
status codes and body shapes per version, and fault injection for testing clients:

* ``latency_ms`` is slept on every request, outside any lock, so concurrent requests overlap.
* ``fail_rate`` answers that fraction of requests with 500 (a version-shaped RESTExceptionInfo) and ``drop_rate``
  that fraction by closing the connection without an answer. Neither applies to ``POST /vN/token``: a client's
  retry logic is exercised on the calls it makes with a token, and a flaky login would only make every test about
  logging in. Use :meth:`Emulator.fail_next` to fail the token endpoint on purpose.
* A dropped connection reaches an httpx client as ``httpx.RemoteProtocolError``: over a socket the server closes
  the connection; in process (``httpx.WSGITransport``) the app raises :class:`ConnectionDropped`, a subclass of it.
* ``fail_on(method, path) -> int | None`` is consulted on every request (path as sent, e.g.
  ``/v8/AuditEmailSettings``); a status it returns is answered instead, ``0`` (:data:`DROP`) drops the
  connection. :meth:`Emulator.fail_next` is the simple way:
  ``emulator.fail_next("PUT", r"/AuditEmailSettings$", status=500, after=1)`` fails the second PUT.
* :meth:`Emulator.expire_tokens` makes every access token issued so far expire at once.
* ``profile`` picks the server generation imitated (``vbo5``, ``vb365-7``, ``vb365-8``, see
  :mod:`vboplan.emulator.profiles`): the versions served (``versions`` overrides them) and the build reported.
* The token endpoint of a v6+ server is limited per client address to 1/s, 5/min and 1500/h (429), like the real
  server's WebApiThrottle defaults, which exempt loopback callers. ``throttle=True`` applies the limits to every
  caller (loopback too), ``throttle=False`` to none, ``None`` (default) does what the profile's server does.
* ``token_lifetime`` (seconds) and an injectable ``clock`` make token expiry testable without sleeping; ``seed``
  makes the random faults reproducible.

Tokens: opaque random strings, not bound to a version. Refreshing rotates both tokens: the old refresh token stops
working at once, the old access token stays valid until it expires (as with OWIN's self-contained tickets).
``POST /token/logout`` (v7+) revokes the access token it is called with and the refresh token issued with it.

``emulator.stats`` counts requests by ``"METHOD /vN/Template"`` (e.g. ``"GET /v8/Organizations/{organizationId}/
Users"``; unrouted requests under their raw path); ``stats.total`` is the number of requests, ``stats.reset()``
starts again. ``answered(method, path, status, started, finished)``, when set, is called after each answer with
``time.monotonic()`` at arrival and at the answer (``serve --request-log`` writes them: benchmarks compute the
round-trip floor from the requests a server actually received).
"""

from __future__ import annotations

import collections
import functools
import ipaddress
import random
import re
import secrets
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import formatdate
from functools import partial
from typing import Any
from urllib.parse import parse_qsl

from vboplan.emulator import collections as named
from vboplan.emulator import jobs, roles
from vboplan.emulator import resources as res
from vboplan.emulator.profiles import DEFAULT_PROFILE, SERVER_PROFILES, ServerProfile
from vboplan.emulator.store import Store, StoreError
from vboplan.emulator.versions import PROFILES, Profile, error_body
from vboplan.emulator.wire import (
    MAX_BODY_BYTES,
    ApiError,
    ConnectionDropped,
    Response,
    is_json_content_type,
    parse_json,
    parse_query,
)
from vboplan.kinds import catalog
from vboplan.schema import SchemaError, bind, document, operation

DROP = 0  # a fail hook returning this closes the connection instead of answering
UNAUTHORIZED = "Authorization has been denied for this request."
# WebApiThrottle's OWIN middleware answers a refused request with this reason phrase, a Retry-After and no body
# (README: "Token throttling").
QUOTA_EXCEEDED = "API calls quota exceeded! maximum admitted {limit} per {period}."
THROTTLE_LIMITS = ((1.0, 1, "Second"), (60.0, 5, "Minute"), (3600.0, 1500, "Hour"))
REFRESH_TOKEN_LIFETIME = 14 * 24 * 3600  # not documented; long enough never to matter in a session
# Grant types each version's document lists (POST /token, grant_type); v5 had no document, only these two are known.
GRANT_TYPES = {
    "v5": ("password", "refresh_token"),
    "v6": ("password", "refresh_token", "urn:ietf:params:oauth:grant-type:jwt-bearer", "integration", "operator"),
    "v7": ("password", "refresh_token", "urn:ietf:params:oauth:grant-type:jwt-bearer", "integration", "operator"),
    "v8": ("password", "refresh_token", "urn:ietf:params:oauth:grant-type:jwt-bearer", "operator"),
}
# Headers every answer of the self-hosted ASP.NET server carries (README: "Server and security headers").
COMMON_HEADERS = [("Server", "Microsoft-HTTPAPI/2.0"), ("X-Content-Type-Options", "nosniff"),
                  ("X-Frame-Options", "SAMEORIGIN"), ("X-XSS-Protection", "1; mode=block")]
HSTS = ("Strict-Transport-Security", "max-age=31536000")

Handler = Callable[[res.Call], Response]


@dataclass(frozen=True)
class Route:
    """A path template (after ``/vN``, spelled as Veeam's document spells it) and its handlers by method."""

    template: str
    handlers: dict[str, Handler]
    regex: re.Pattern[str]
    anonymous: bool = False  # the token endpoint
    writes: bool = False  # changes the store: served under its cross-process lock, then saved
    #: For a GET whose answer is kept (:class:`_KeptLists`): what the answer is of and the count of its writes.
    kept: Callable[[res.Call], tuple[Any, int]] | None = None


def _route(template: str, handlers: dict[str, Handler], **options: Any) -> Route:
    pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
    return Route(template, handlers, re.compile(pattern + "/?", re.IGNORECASE), **options)


def _audit_list_writes(call: res.Call) -> tuple[Any, int]:
    org = call.organization()  # 404 for an unknown organization, as the handler answers
    return org, org.audit_writes


class _KeptLists:
    """Answers of long lists (an organization's audit items: 122 MB and ~1.7 s of CPU for 100,000 entries) kept as
    they were encoded, per version, link base, query and the object listed, and served again while that object is
    the store's (a data file re-read makes new ones) and has had no write since (its count of writes is the one
    kept). At most :attr:`BUDGET` bytes are kept, the least recently served dropped first."""

    BUDGET = 512 * 1024 * 1024

    def __init__(self) -> None:
        self._kept: collections.OrderedDict[tuple[Any, ...], tuple[Any, int, Response]] = collections.OrderedDict()
        self._bytes = 0

    def answer(self, call: res.Call, route: Route, handler: Handler) -> Response:
        """``handler``'s answer to ``call`` (the caller holds the store's lock)."""
        assert route.kept is not None
        owner, writes = route.kept(call)
        link_base = call.base_url if call.profile.absolute_links else ""
        key = (call.version, route.template, link_base, id(owner), tuple(sorted(call.query.items())))
        found = self._kept.get(key)
        if found is not None and found[0] is owner and found[1] == writes:
            self._kept.move_to_end(key)
            return found[2]
        response = handler(call)
        if found is not None:
            self._drop(key)
        size = len(response.raw or b"")
        if response.status == 200 and response.raw is not None and size <= self.BUDGET:
            while self._kept and self._bytes + size > self.BUDGET:
                self._drop(next(iter(self._kept)))
            self._kept[key] = (owner, writes, response)
            self._bytes += size
        return response

    def _drop(self, key: tuple[Any, ...]) -> None:
        self._bytes -= len(self._kept.pop(key)[2].raw or b"")


def _routes(profile: Profile) -> list[Route]:
    """Every route ``profile``'s version serves."""
    routes = [
        _route("/token", {"POST": lambda call: call.emulator._token(call)}, anonymous=True),
        _route("/ServiceInstance", {"GET": res.service_instance}),
        _route("/Organizations", {"GET": res.list_organizations}),
        _route("/Organizations/{organizationId}", {"GET": res.get_organization}),
        _route("/Organizations/{organizationId}/Users", {"GET": partial(res.list_directory, kind="users")}),
        _route("/Organizations/{organizationId}/Users/{userId}", {"GET": partial(res.get_principal, kind="users")}),
        _route("/Organizations/{organizationId}/Groups", {"GET": partial(res.list_directory, kind="groups")}),
        _route("/Organizations/{organizationId}/Groups/{groupId}",
               {"GET": partial(res.get_principal, kind="groups")}),
        _route("/Organizations/{organizationId}/Sites", {"GET": partial(res.list_directory, kind="sites")}),
        _route("/Organizations/{organizationId}/Teams", {"GET": partial(res.list_directory, kind="teams")}),
        _route("/Organizations/{organizationId}/Sites/{siteId}", {"GET": partial(res.get_principal, kind="sites")}),
        _route("/Organizations/{organizationId}/Teams/{teamId}", {"GET": partial(res.get_principal, kind="teams")}),
    ]
    audit_items: dict[str, Handler] = {"GET": res.list_audit_items, "POST": res.add_audit_items}
    if profile.audit_remove_path == "action":
        # v5's other documented removal form (helpcenter.veeam.com/docs/vbo365/rest/delete_audititems.html, v5 page)
        audit_items["DELETE"] = res.delete_audit_items
        routes.append(_route("/Organizations/{organizationId}/AuditItems/action", {"POST": res.audit_items_action},
                             writes=True))
    else:
        routes.append(_route("/Organizations/{organizationId}/AuditItems/remove", {"POST": res.remove_audit_items},
                             writes=True))
    routes.append(_route("/Organizations/{organizationId}/AuditItems", audit_items, writes=True,
                         kept=_audit_list_writes))
    for spec in catalog.settings():
        endpoint = spec.endpoint(profile.name)
        if endpoint is None:
            continue  # not in this version's document: 404, as on a real server
        base = "/" + endpoint.path
        handlers: dict[str, Handler] = {"GET": partial(res.get_settings, key=spec.key),
                                        "PUT": partial(res.put_settings, key=spec.key)}
        if spec.per_organization and operation(profile.name, "DELETE", f"/{profile.name}{base}"):
            handlers["DELETE"] = partial(res.delete_settings, key=spec.key)
        routes.append(_route(base, handlers, writes=True))
        if endpoint.test_mail:
            routes.append(_route(f"{base}/{endpoint.test_mail}", {"POST": partial(res.send_test_email, key=spec.key)},
                                 writes=True))
        if endpoint.oauth:
            routes.append(_route(f"{base}/PrepareOAuthSignIn", {"POST": partial(res.prepare_oauth, key=spec.key)}))
            routes.append(_route(f"{base}/CompleteOAuthSignIn", {"POST": partial(res.complete_oauth, key=spec.key)}))
    if profile.name in ("v6", "v7", "v8"):
        routes += jobs.routes(profile.name, _route)  # before the generic collection routes, which they refine
        routes += roles.routes(profile.name, _route)
    routes += named.routes(profile.name, _route)
    if profile.logout_status is not None:
        routes.append(_route("/token/logout", {"POST": lambda call: call.emulator._logout(call)}))
        routes.append(_route("/token/AuthCode", {"POST": lambda call: call.emulator._auth_code(call)}))
    return routes


_routes_lock = threading.Lock()
_routes_cache: tuple[tuple[int, int], dict[str, list[Route]], dict[str, _RouteIndex]] | None = None


class _RouteIndex:
    """A version's routes by the first segment of their template, so a request is matched against the few routes
    that can match it rather than all ~90 in turn. A route fullmatches a path only if the path's first segment is
    its template's, in any case (``re.IGNORECASE``): for an ASCII segment that is the lower-cased one, so the routes
    tried are those of that segment (and any whose first segment is a parameter), in the table's order; a segment
    with other characters (which IGNORECASE folds in ways ``str.lower`` does not, e.g. U+017F to ``s``) is tried
    against every route, as before."""

    def __init__(self, table: list[Route]) -> None:
        self.table = table
        firsts = [route.template.split("/", 2)[1] if route.template.count("/") else "" for route in table]
        self.wildcard = [route for route, first in zip(table, firsts, strict=True) if "{" in first]
        self.by_first: dict[str, list[Route]] = {}
        for key in dict.fromkeys(first.lower() for first in firsts if "{" not in first):
            self.by_first[key] = [route for route, first in zip(table, firsts, strict=True)
                                  if "{" in first or first.lower() == key]

    def candidates(self, rest: str) -> list[Route]:
        """The routes, in order, that can fullmatch ``rest`` (``/segment/...``)."""
        first = rest.split("/", 2)[1] if rest.startswith("/") else None
        if first is None or not first.isascii():
            return self.table
        return self.by_first.get(first.lower(), self.wildcard)


def _route_tables() -> tuple[dict[str, list[Route]], dict[str, _RouteIndex]]:
    global _routes_cache
    with _routes_lock:
        generation = (catalog.generation(), named.generation())
        if _routes_cache is None or _routes_cache[0] != generation:
            tables = {v: _routes(profile) for v, profile in PROFILES.items()}
            _routes_cache = (generation, tables, {v: _RouteIndex(table) for v, table in tables.items()})
        return _routes_cache[1], _routes_cache[2]


def routes() -> dict[str, list[Route]]:
    """The routes of every version, rebuilt when the settings catalog changes (a kind registered at run time)."""
    return _route_tables()[0]


@dataclass(frozen=True)
class _Parameter:
    name: str
    where: str | None
    schema: dict[str, Any]


_operations_lock = threading.Lock()
_operations: dict[tuple[str, str, str], tuple[dict[str, Any], tuple[_Parameter, ...]]] = {}


def _parameters(version: str, method: str, template: str) -> tuple[_Parameter, ...]:
    """The documented parameters of ``method`` on ``template`` (``operation``'s, looked up once per document: the
    lookup compares every path of the document in lower case, ~0.1 ms a request)."""
    doc = document(version)
    key = (version, method, template)
    held = _operations.get(key)
    if held is None or held[0] is not doc:
        op = operation(version, method, f"/{version}{template}") or {}
        parameters = tuple(_Parameter(p["name"], p.get("in"), p.get("schema", {})) for p in op.get("parameters", []))
        held = (doc, parameters)
        with _operations_lock:
            _operations[key] = held
    return held[1]


class _RouteTable(Mapping[str, list[Route]]):
    """``ROUTES[version]``: always the current :func:`routes`."""

    def __getitem__(self, version: str) -> list[Route]:
        return routes()[version]

    def __iter__(self) -> Iterator[str]:
        return iter(routes())

    def __len__(self) -> int:
        return len(routes())


ROUTES: Mapping[str, list[Route]] = _RouteTable()
_VERSION_PATH = re.compile(r"/(v\d+)(/.*)?", re.IGNORECASE)


class _Total(int):
    """An int that can also be called, so ``stats.total`` and Counter's ``stats.total()`` both work."""

    def __call__(self) -> int:
        return int(self)


class RequestStats(collections.Counter):  # type: ignore[type-arg]
    """Requests counted by ``"METHOD /vN/Template"``; thread-safe to update; ``total`` counts them all."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def record(self, key: str) -> None:
        """Count one request."""
        with self._lock:
            self[key] += 1

    def reset(self) -> None:
        """Forget every count."""
        with self._lock:
            self.clear()

    @property  # type: ignore[override]
    def total(self) -> _Total:
        """How many requests were counted."""
        with self._lock:
            return _Total(sum(self.values()))


@dataclass
class _Grant:
    username: str
    access_token: str
    refresh_token: str
    access_expires: float
    refresh_expires: float


@dataclass
class _FailRule:
    method: str
    path: re.Pattern[str]
    status: int
    count: int
    skip: int


class Emulator:
    """The emulated VBO REST API as a WSGI application (see the module docstring for faults, tokens and stats)."""

    def __init__(self, store: Store, *, token_lifetime: int = 3600, latency_ms: float = 0.0, fail_rate: float = 0.0,
                 drop_rate: float = 0.0, throttle: bool | None = None,
                 fail_on: Callable[[str, str], int | None] | None = None,
                 clock: Callable[[], float] = time.time, seed: int | None = None,
                 refresh_token_lifetime: int = REFRESH_TOKEN_LIFETIME, versions: Iterable[str] | None = None,
                 profile: str = DEFAULT_PROFILE) -> None:
        self.store = store
        if profile not in SERVER_PROFILES:
            raise ValueError(f"unknown server profile {profile!r} (known: {', '.join(SERVER_PROFILES)})")
        self.server: ServerProfile = SERVER_PROFILES[profile]
        # A real server serves some versions only (VBO 8: v6-v8); the others answer 404 like an unknown path.
        self.versions = tuple(v.lower() for v in (versions or self.server.versions))
        unknown = set(self.versions) - set(PROFILES)
        if unknown:
            raise ValueError(f"unknown API version {sorted(unknown)[0]} (known: {', '.join(PROFILES)})")
        self.token_lifetime = token_lifetime
        self.refresh_token_lifetime = refresh_token_lifetime
        self.latency_ms = latency_ms
        self.fail_rate = fail_rate
        self.drop_rate = drop_rate
        self.throttle = throttle
        self.fail_on = fail_on
        self.clock = clock
        self.stats = RequestStats()
        # Every request received (method, path, body bytes) once a test sets this to a list: what a test compares
        # with what vboplan said it would send.
        self.received: list[tuple[str, str, bytes]] | None = None
        self.answered: Callable[[str, str, int, float, float], None] | None = None
        self._random = random.Random(seed)
        self._lock = threading.Lock()  # tokens, throttle windows, fail rules, OAuth requests, randomness
        self._grants: dict[str, _Grant] = {}
        self._refresh: dict[str, _Grant] = {}
        self._windows: dict[tuple[str, float], list[float]] = {}
        self._rules: list[_FailRule] = []
        self._oauth: dict[str, dict[str, Any]] = {}
        self._issued = 0
        self._lists = _KeptLists()

    # -- test helpers --------------------------------------------------------------------------------------------

    def fail_next(self, method: str, path_regex: str, status: int = 500, count: int = 1, after: int = 0) -> None:
        """Answer the next ``count`` requests whose method is ``method`` (``"*"``: any) and whose path matches
        ``path_regex`` (``re.search``, case-insensitive) with ``status``, after letting ``after`` of them through.
        ``status=DROP`` (0) closes the connection instead. Applies to every route, the token endpoint included."""
        with self._lock:
            self._rules.append(_FailRule(method.upper(), re.compile(path_regex, re.IGNORECASE), status, count, after))

    def drop_next(self, method: str, path_regex: str, count: int = 1, after: int = 0) -> None:
        """Like :meth:`fail_next`, closing the connection without an answer."""
        self.fail_next(method, path_regex, DROP, count, after)

    def expire_tokens(self) -> None:
        """Make every access token issued so far expire now (refresh tokens stay valid)."""
        with self._lock:
            now = self.clock()
            for grant in self._grants.values():
                grant.access_expires = min(grant.access_expires, now)

    # -- WSGI ----------------------------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        response = self.handle(environ)
        try:
            status, headers, payload = response.encode()
        except Exception:  # an unencodable body is a bug: answer it like one
            traceback.print_exc(file=environ.get("wsgi.errors") or sys.stderr)
            status, headers, payload = Response(500, {"message": "An error has occurred."}).encode()
        headers = [*COMMON_HEADERS, *([HSTS] if environ.get("wsgi.url_scheme") == "https" else []), *headers]
        start_response(status, headers)
        # A HEAD answer carries the headers of the full answer but never its body (keep-alive framing).
        return [b""] if str(environ.get("REQUEST_METHOD", "")).upper() == "HEAD" else [payload]

    def handle(self, environ: dict[str, Any]) -> Response:
        """Answer one request (raises :class:`ConnectionDropped` to drop the connection)."""
        started = time.monotonic() if self.answered is not None else 0.0
        try:
            response = self._handle(environ)
        except ConnectionDropped:
            raise
        except Exception as exc:  # a bug, or a fail_on hook that raised: still an answer, never a dead connection
            traceback.print_exc(file=environ.get("wsgi.errors") or sys.stderr)
            response = self._error(None, ApiError(500, f"An error has occurred: {type(exc).__name__}: {exc}"))
        if self.answered is not None:
            self.answered(str(environ.get("REQUEST_METHOD", "GET")).upper(), str(environ.get("PATH_INFO", "")),
                          response.status, started, time.monotonic())
        return response

    def _handle(self, environ: dict[str, Any]) -> Response:
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        path = str(environ.get("PATH_INFO", "") or "/")
        try:
            body = _read_body(environ)
        except ApiError as exc:
            return self._error(None, exc)
        match = _VERSION_PATH.fullmatch(path)
        version = match.group(1).lower() if match else None
        rest = (match.group(2) or "") if match else ""
        route, params = self._match(version, rest) if version in self.versions else (None, {})
        self.stats.record(f"{method} /{version}{route.template}" if route else f"{method} {path}")
        if self.received is not None:
            self.received.append((method, path, body))
        if self.latency_ms > 0:
            time.sleep(self.latency_ms / 1000.0)  # outside every lock, so concurrent requests overlap
        fault = self._fault(method, path, route)
        if fault == DROP:
            raise ConnectionDropped()
        profile = PROFILES.get(version or "") if version in self.versions else None
        if fault is not None:
            return self._error(version, ApiError(fault, "An error has occurred. (emulated server fault)"))
        if profile is None or route is None:
            return self._error(None, ApiError(404, f"No HTTP resource was found that matches the request URI "
                                                   f"'{_request_uri(environ)}'.", plain=True))
        handler = route.handlers.get(method)
        if handler is None:
            # The real server routes every method Veeam's document has for the path: Allow names them all.
            documented = _documented_methods(version, route.template)
            if method in documented:
                # Refused as a server refuses an operator it does not permit (403), not as a server fault: a
                # client or fuzzer meeting it learns the call exists and is not allowed here.
                return self._error(version, ApiError(403, f"{method} /{version}{route.template} is not permitted "
                                                          "on this emulated server."))
            allowed = ", ".join(sorted(documented | set(route.handlers)))
            return self._error(version, ApiError(405, f"The requested resource does not support http method "
                                                      f"'{method}'.", plain=True, headers=[("Allow", allowed)]))
        try:
            # Authorization runs before model binding on the real server: no token means 401, even for bad input.
            token = None if route.anonymous else self._authenticate(environ)
            call = self._call(environ, profile, method, route, params, body)
            call.access_token = token
            if route.writes and method != "GET":
                with self.store.mutation():
                    return handler(call)
            with self.store.lock:
                self.store.refresh()
                if route.kept is not None and method == "GET":
                    return self._lists.answer(call, route, handler)
                return handler(call)
        except ApiError as exc:
            return self._error(version, exc)
        except StoreError as exc:  # someone broke the data file under a running server: say so, no traceback
            return self._error(version, ApiError(500, f"The emulator's data file cannot be used: {exc}"))
        except Exception as exc:  # a bug must still answer, never hang or kill the connection
            traceback.print_exc(file=environ.get("wsgi.errors") or sys.stderr)
            return self._error(version, ApiError(500, f"An error has occurred: {type(exc).__name__}: {exc}"))

    # -- routing -------------------------------------------------------------------------------------------------

    @staticmethod
    def _match(version: str, rest: str) -> tuple[Route | None, dict[str, str]]:
        for route in _route_tables()[1][version].candidates(rest):
            found = route.regex.fullmatch(rest)
            if found:
                return route, found.groupdict()
        return None, {}

    def _call(self, environ: dict[str, Any], profile: Profile, method: str, route: Route, params: dict[str, str],
              body: bytes) -> res.Call:
        raw_query = parse_query(str(environ.get("QUERY_STRING", "")))
        query: dict[str, Any] = {}
        for parameter in _parameters(profile.name, method, route.template):
            name, where, schema = parameter.name, parameter.where, parameter.schema
            values = raw_query.get(name.lower()) or []
            raw: str | None = params.get(name) if where == "path" else (values[0] if values else None)
            if raw is None or (raw == "" and where == "query"):
                continue  # an empty query value binds as absent, the method's default applies
            value = _bind_parameter(profile.name, name, schema, raw)
            if where == "path":
                params[name] = value
            elif where == "query":
                query[name] = value
        scheme = environ.get("wsgi.url_scheme", "http")
        host = environ.get("HTTP_HOST") or f"{environ.get('SERVER_NAME', 'localhost')}:{environ.get('SERVER_PORT')}"
        return res.Call(self, self.store, profile, method, route.template, params, query, raw_query, body,
                        str(environ.get("CONTENT_TYPE") or ""), f"{scheme}://{host}",
                        str(environ.get("REMOTE_ADDR") or ""))

    # -- faults --------------------------------------------------------------------------------------------------

    def _fault(self, method: str, path: str, route: Route | None) -> int | None:
        if self.fail_on is not None:
            status = self.fail_on(method, path)
            if status is not None:
                return status
        with self._lock:
            for rule in self._rules:
                if rule.method in ("*", method) and rule.path.search(path):
                    if rule.skip > 0:
                        rule.skip -= 1
                        continue
                    rule.count -= 1
                    if rule.count <= 0:
                        self._rules.remove(rule)
                    return rule.status
            if route is not None and route.anonymous:
                return None
            if self.drop_rate and self._random.random() < self.drop_rate:
                return DROP
            if self.fail_rate and self._random.random() < self.fail_rate:
                return 500
        return None

    def _error(self, version: str | None, exc: ApiError) -> Response:
        if exc.empty:
            return Response(exc.status, None, exc.headers, exc.reason)
        if exc.body is not None:
            body = exc.body
        elif exc.plain or version is None:
            body = {"message": exc.message}
        else:
            body = error_body(version, exc.message, exc.status)
        return Response(exc.status, body, exc.headers, exc.reason)

    # -- authentication ------------------------------------------------------------------------------------------

    def _authenticate(self, environ: dict[str, Any]) -> str:
        header = str(environ.get("HTTP_AUTHORIZATION") or "")
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        with self._lock:
            grant = self._grants.get(token) if scheme.lower() == "bearer" and token else None
            if grant is None or self.clock() >= grant.access_expires:
                # An empty body, as real servers answer (README: "401"); clients re-login on the status alone.
                raise ApiError(401, UNAUTHORIZED, empty=True, headers=[("WWW-Authenticate", "Bearer")])
        return token

    def _token(self, call: res.Call) -> Response:
        """POST /vN/token: grants ``password`` and ``refresh_token``, form-encoded or JSON."""
        self._check_throttle(call.client)
        fields = _token_fields(call)
        grant_type = fields.get("grant_type")
        if not grant_type:
            raise _oauth_error("unsupported_grant_type", "The grant_type parameter is missing.")
        if grant_type == "password":
            username, password = fields.get("username"), fields.get("password")
            user = (self.store.check_credentials(username, password)
                    if isinstance(username, str) and isinstance(password, str) else None)
            if user is None:
                raise _oauth_error("invalid_grant", "The user name or password is incorrect.")
            return self._issue(user, call.version)
        if grant_type == "refresh_token":
            token = fields.get("refresh_token")
            with self._lock:
                grant = self._refresh.pop(token, None) if isinstance(token, str) else None
            if grant is None or self.clock() >= grant.refresh_expires:
                raise _oauth_error("invalid_grant", "The refresh token is invalid, expired or already used.")
            return self._issue(grant.username, call.version)
        if grant_type in GRANT_TYPES.get(call.version, ()):
            # Known to the server but needing an identity the emulator has none of: a restore operator's
            # Microsoft 365 sign-in, an assertion, an integration token. A server where such sign-in is not set up
            # refuses the credentials (invalid_grant), it does not call the grant type unknown.
            if grant_type == "operator" and not (fields.get("assertion") or fields.get("username")):
                raise _oauth_error("invalid_request", "Restore operator sign-in needs an assertion or a user name.")
            raise _oauth_error("invalid_grant", f"Sign-in with grant type '{grant_type}' was refused: no restore "
                                                "operator or integration is set up for these credentials.")
        raise _oauth_error("unsupported_grant_type", f"The grant type '{grant_type}' is not supported.")

    def _issue(self, username: str, version: str) -> Response:
        now = self.clock()
        # Opaque like the real server's OWIN tickets (which start "AQAAANCMnd8BFdERjHoAwE_Cl-sBAAAA"), never a JWT.
        grant = _Grant(username, "AQAAANCMnd8BFdERjHoAwE_Cl-sBAAAA" + secrets.token_urlsafe(96),
                       secrets.token_urlsafe(48), now + self.token_lifetime, now + self.refresh_token_lifetime)
        with self._lock:
            self._grants[grant.access_token] = grant
            self._refresh[grant.refresh_token] = grant
            self._issued += 1
            if self._issued % 256 == 0:
                self._sweep(now)
        # OWIN computes expires_in from the ticket a moment after issuing it: 3599 for a 60-minute token, as a
        # real v5 server answers. v5 (no document) also has OWIN's RFC 1123 dates and no userName; v6+ documents
        # declare ISO 8601 date-times and userName, which generated clients rely on (README: "Tokens").
        expires_in = max(1, self.token_lifetime - 1)
        if version == "v5":
            body = {"access_token": grant.access_token, "token_type": "bearer", "expires_in": expires_in,
                    "refresh_token": grant.refresh_token, ".issued": _rfc1123(now),
                    ".expires": _rfc1123(grant.access_expires)}
        else:
            body = {"access_token": grant.access_token, "token_type": "bearer", "expires_in": expires_in,
                    "refresh_token": grant.refresh_token, "userName": username, ".issued": _iso(now),
                    ".expires": _iso(grant.access_expires)}
        headers = [("Cache-Control", "no-cache"), ("Pragma", "no-cache"), ("Expires", "-1")]
        return Response(200, body, headers)

    def _sweep(self, now: float) -> None:
        self._grants = {k: g for k, g in self._grants.items() if g.access_expires > now}
        self._refresh = {k: g for k, g in self._refresh.items() if g.refresh_expires > now}

    def _logout(self, call: res.Call) -> Response:
        """POST /vN/token/logout (v7+): revoke the bearer token and the refresh token issued with it."""
        with self._lock:
            grant = self._grants.pop(call.access_token or "", None)
            if grant is not None:
                self._refresh.pop(grant.refresh_token, None)
        return Response(call.profile.logout_status or 204)

    def _auth_code(self, call: res.Call) -> Response:
        """POST /vN/token/AuthCode (v7+): a one-time authorization code for the signed-in user."""
        return Response(200, {"authCode": secrets.token_urlsafe(32)})

    def _throttled(self, client: str) -> bool:
        if self.throttle is not None:
            return self.throttle
        if not self.server.throttled:
            return False
        try:  # WebApiThrottle on the real server exempts loopback callers (Ben Young's v6 post)
            return not ipaddress.ip_address(client.split("%", 1)[0]).is_loopback
        except ValueError:
            return True

    def _check_throttle(self, client: str) -> None:
        if not self._throttled(client):
            return
        now = self.clock()
        with self._lock:
            # WebApiThrottle's order: per period, shortest first, count the request in a fixed window that starts
            # with its first request, and stop at the first limit exceeded; a request refused per second is not
            # counted per minute, so a client hammering the endpoint still gets about 1 in per second, 5 per minute.
            for period, limit, label in THROTTLE_LIMITS:
                window = self._windows.get((client, period))
                if window is None or now - window[0] >= period:
                    window = self._windows[(client, period)] = [now, 0]
                window[1] += 1
                if window[1] > limit:
                    reason = QUOTA_EXCEEDED.format(limit=limit, period=label)
                    raise ApiError(429, reason, empty=True, reason=reason,
                                   headers=[("Retry-After", _retry_after(period, now - window[0]))])

    # -- OAuth mail sign-in (v7+) ----------------------------------------------------------------------------------

    def prepare_oauth(self, kind: str, request: dict[str, Any]) -> str:
        """Remember a PrepareOAuthSignIn request; returns its ``requestId``."""
        request_id = res.new_request_id()
        with self._lock:
            self._oauth[request_id] = {"kind": kind, "request": request, "userId": None}
        return request_id

    def finish_oauth(self, kind: str, request_id: str) -> str:
        """Complete a sign-in started by :meth:`prepare_oauth`; returns the signed-in mailbox's user id."""
        with self._lock:
            pending = self._oauth.get(request_id)
            if pending is None or pending["kind"] != kind:
                raise ApiError(400, f"The sign-in request '{request_id}' was not found or has expired.")
            pending["userId"] = pending["userId"] or str(uuid.uuid4())
            return str(pending["userId"])

    def complete_oauth_settings(self, kind: str, request_id: str) -> dict[str, Any]:
        """The settings a PUT with a completed ``requestId`` sets (``isAuthenticated``, ``clientId``, ...)."""
        with self._lock:
            pending = self._oauth.get(request_id)
        if pending is None or pending["kind"] != kind or pending["userId"] is None:
            raise ApiError(400, f"The sign-in request '{request_id}' was not completed.")
        request = pending["request"]
        return {"isAuthenticated": True, "authenticationType": request["authenticationServiceKind"],
                "clientId": request.get("clientId"), "tenantId": request.get("tenantId"),
                "userId": pending["userId"]}


def _retry_after(period: float, elapsed: float) -> str:
    """WebApiThrottle's ``RetryAfterFrom``: 1 for the per-second limit, else the period's seconds less the seconds
    since its window started (``Convert.ToInt32``, which rounds half to even, as ``round`` does)."""
    return "1" if period <= 1 else str(int(period) - round(elapsed))


def _read_body(environ: dict[str, Any]) -> bytes:
    stream = environ.get("wsgi.input")
    if not environ.get("CONTENT_LENGTH") and "chunked" in str(environ.get("HTTP_TRANSFER_ENCODING", "")).lower():
        # A chunked body the WSGI server left for the app to read (the socket server de-chunks it itself).
        body = stream.read(MAX_BODY_BYTES + 1) if stream is not None else b""
        if len(body) > MAX_BODY_BYTES:
            raise ApiError(413, "The request body is too large.", plain=True)
        return body
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise ApiError(400, "The Content-Length header is not a number.", plain=True) from None
    if length > MAX_BODY_BYTES:
        raise ApiError(413, "The request body is too large.", plain=True)
    if length <= 0 or stream is None:
        return b""
    return stream.read(length)


@functools.cache
def _documented_methods(version: str, template: str) -> frozenset[str]:
    """The methods Veeam's document of ``version`` has for ``template`` (v5: v6's document)."""
    doc_version = "v6" if version == "v5" else version
    paths = document(doc_version).get("paths", {})
    wanted = f"/{doc_version}{template}".lower()
    item: dict[str, Any] = next((ops for path, ops in paths.items() if path.lower() == wanted), {})
    return frozenset(m.upper() for m in item if m in ("get", "put", "post", "delete", "patch", "head"))


def _bind_parameter(version: str, name: str, schema: dict[str, Any], raw: str) -> Any:
    """A path or query value read against its documented schema (400 as ASP.NET model binding gives)."""
    try:
        value = bind(version, schema, raw, name)
        if schema.get("format") == "uuid":
            value = str(uuid.UUID(value))
        return value
    except (SchemaError, ValueError):
        raise ApiError(400, f"The value '{raw}' is not valid for {name}.") from None


def _token_fields(call: res.Call) -> dict[str, Any]:
    media = call.content_type.split(";", 1)[0].strip().lower()
    if media == "application/x-www-form-urlencoded":
        try:
            pairs = parse_qsl(call.body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            raise _oauth_error("invalid_request", "The request body is not valid UTF-8.") from None
        fields: dict[str, Any] = {}
        for key, value in pairs:
            fields.setdefault(key.lower(), value)
        return fields
    if is_json_content_type(media) or (not media and call.body.strip().startswith(b"{")):
        try:
            data = parse_json(call.body)
        except ApiError as exc:
            raise _oauth_error("invalid_request", exc.message) from None
        if not isinstance(data, dict):
            raise _oauth_error("invalid_request", "The request body must be a JSON object.")
        return {str(k).lower(): v for k, v in data.items()}
    if not call.body.strip():
        return {}
    raise _oauth_error("invalid_request", "The request must be application/x-www-form-urlencoded or JSON.")


def _oauth_error(error: str, description: str) -> ApiError:
    # The token endpoint is OWIN's OAuth server: errors are RFC 6749 bodies, not RESTExceptionInfo (as
    # github.com/nielsengelen/vbo365-rest veeam.class.php reads them: error, error_description).
    return ApiError(400, description, body={"error": error, "error_description": description})


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _rfc1123(moment: float) -> str:
    """``Wed, 16 Dec 2020 05:50:09 GMT``, as .NET's ``ToString("r")`` writes (a real v5 token response)."""
    return formatdate(moment, usegmt=True)


def _request_uri(environ: dict[str, Any]) -> str:
    query = environ.get("QUERY_STRING")
    return str(environ.get("PATH_INFO", "")) + (f"?{query}" if query else "")
