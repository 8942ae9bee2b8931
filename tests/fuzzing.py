"""Malformed inputs for every file and answer vboplan reads, and a hostile HTTP server of the tests' own.

Used by tests/test_fuzz.py (a bounded run) and benchmarks/fuzz.py (a larger one). Every case built by
:func:`malformed_cases` is malformed by construction: vboplan must refuse it with one message and exit 1.
:func:`mutated_cases` adds random text mutations that may or may not still be valid: those must never
crash, and exit 0 only when the input still means something.
"""

from __future__ import annotations

import copy
import functools
import gzip
import json
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import yaml

PLAN_FILE = "plans/dev.json"
STATE_FILE = ".vboplan/state/dev.json"


@dataclass
class Case:
    """Files to write (None deletes) before running ``args``; the original files come back afterwards."""

    category: str
    label: str
    args: list[str]
    files: dict[str, bytes | None] = field(default_factory=dict)
    input: str | None = None
    must_fail: bool = True


# -- a hostile server -------------------------------------------------------------------------------------------

TOKEN = json.dumps({"access_token": "t0k3n", "refresh_token": "r3fresh", "token_type": "bearer",
                    "expires_in": 3600}).encode()
SETTINGS = json.dumps({"enableNotification": False, "smtpServer": "old.smtp.local", "port": 25}).encode()
JOB = json.dumps({"enableNotification": True, "notifyOnFailure": True, "notifyOnSuccess": False}).encode()
HUGE_BYTES = 70 * 1024 * 1024  # above the client's 64 MiB bound


def _deep_json(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: HostileServer

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str = "application/json",
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._answer("GET")

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self._answer("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self.do_POST()

    def _answer(self, method: str) -> None:
        parts = self.path.strip("/").split("/")
        mode = parts[0]
        is_token = self.path.split("?")[0].endswith("/token")
        answer = MODES.get(mode)
        if answer is None:
            self._send(404, b"{}")
            return
        try:
            answer(self, is_token, self.path)
        except (BrokenPipeError, ConnectionResetError, TimeoutError, OSError):
            pass

    def drip(self, head: bytes, stop: threading.Event) -> None:
        """Send ``head`` one byte at a time, then a body one byte at a time, until told to stop."""
        for byte in head:
            if stop.wait(self.server.drip_seconds):
                return
            self.wfile.write(bytes([byte]))
            self.wfile.flush()
        while not stop.wait(self.server.drip_seconds):
            self.wfile.write(b" ")
            self.wfile.flush()


def _token_then(after: Callable[[_Handler, str], None]) -> Callable[[_Handler, bool, str], None]:
    def answer(handler: _Handler, is_token: bool, path: str) -> None:
        if is_token:
            handler._send(200, TOKEN)
        else:
            after(handler, path)
    return answer


def _all(status: int, body: bytes, content_type: str = "application/json",
         headers: dict[str, str] | None = None) -> Callable[[_Handler, bool, str], None]:
    def answer(handler: _Handler, is_token: bool, path: str) -> None:
        handler._send(status, body, content_type, headers)
    return answer


def _token_body(body: bytes, status: int = 200) -> Callable[[_Handler, bool, str], None]:
    def answer(handler: _Handler, is_token: bool, path: str) -> None:
        handler._send(status, body if is_token else SETTINGS)
    return answer


def _drip_all(handler: _Handler, is_token: bool, path: str) -> None:
    handler.drip(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{",
                 handler.server.stop)


def _drip_body(handler: _Handler, is_token: bool, path: str) -> None:
    handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
    handler.wfile.flush()
    handler.drip(b"{", handler.server.stop)


def _silent(handler: _Handler, is_token: bool, path: str) -> None:
    handler.server.stop.wait(120)


def _close(handler: _Handler, is_token: bool, path: str) -> None:
    handler.close_connection = True
    handler.connection.shutdown(socket.SHUT_RDWR)


def _garbage(handler: _Handler, is_token: bool, path: str) -> None:
    handler.wfile.write(b"HELLO THERE\r\n\r\nnot http at all")
    handler.close_connection = True


def _short_body(handler: _Handler, is_token: bool, path: str) -> None:
    handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"a\":")
    handler.close_connection = True


def _bad_chunks(handler: _Handler, is_token: bool, path: str) -> None:
    handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                        b"zz\r\n{}\r\n0\r\n\r\n")
    handler.close_connection = True


def _huge(handler: _Handler, is_token: bool, path: str) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(HUGE_BYTES))
    handler.end_headers()
    block = b" " * (1024 * 1024)
    for _ in range(HUGE_BYTES // len(block)):
        handler.wfile.write(block)


@functools.lru_cache(maxsize=1)
def _bomb() -> bytes:
    return gzip.compress(b" " * (80 * 1024 * 1024), compresslevel=9)


def _gzip_bomb(handler: _Handler, is_token: bool, path: str) -> None:
    handler._send(200, _bomb(), headers={"Content-Encoding": "gzip"})


def _settings(body: bytes, status: int = 200, content_type: str = "application/json") -> Callable[..., None]:
    def after(handler: _Handler, path: str) -> None:
        if "Organizations" in path:
            handler._send(200, b"[]")
        elif path.split("?")[0].endswith("EmailSettings") and "Vbo" not in path:
            handler._send(status, body, content_type)
        else:
            handler._send(200, JOB)
    return _token_then(after)


def _organizations(body: bytes) -> Callable[..., None]:
    def after(handler: _Handler, path: str) -> None:
        if path.split("?")[0].endswith("/Organizations"):
            handler._send(200, body)
        elif "EmailSettings" in path:
            handler._send(200, SETTINGS if "Audit" in path else JOB)
        else:
            handler._send(200, b"[]")
    return _token_then(after)


MODES: dict[str, Callable[[_Handler, bool, str], None]] = {
    "html": _all(200, b"<html><body><h1>Welcome to IIS</h1></body></html>", "text/html"),
    "html-error": _all(500, b"<html><body>Server Error\r\n<script>x</script></body></html>", "text/html"),
    "redirect-loop": _all(302, b"", headers={"Location": "/redirect-loop/v8/token"}),
    "redirect-away": _all(301, b"", headers={"Location": "http://login.example.invalid/"}),
    "not-json": _all(200, b"{this is not json", "application/json"),
    "deep-json": _all(200, _deep_json(200_000)),
    "bad-utf8": _all(200, b'{"access_token": "\xff\xfe"}'),
    "empty-200": _all(200, b""),
    "status-999": _all(999, b"{}"),
    "status-204": _all(204, b""),
    "token-list": _token_body(b"[]"),
    "token-string": _token_body(b'"token"'),
    "token-null": _token_body(b"null"),
    "token-empty": _token_body(b"{}"),
    "token-int": _token_body(b'{"access_token": 5}'),
    "token-blank": _token_body(b'{"access_token": ""}'),
    "token-nan": _token_body(b'{"access_token": NaN}'),
    "token-401-empty": _token_body(b"", 401),
    "token-400-html": _token_body(b"<html>bad</html>", 400),
    "token-429": _token_body(b'{"message": "Quota Exceeded"}', 429),
    "token-403": _token_body(b'{"message": "Forbidden"}', 403),
    "settings-list": _settings(b"[]"),
    "settings-string": _settings(b'"settings"'),
    "settings-html": _settings(b"<html>oops</html>", 200, "text/html"),
    "settings-500": _settings(b'{"message": "An error has occurred."}', 500),
    "settings-404": _settings(b"", 404),
    "settings-deep": _settings(_deep_json(100_000)),
    "orgs-object": _organizations(b'{"results": 5}'),
    "orgs-strings": _organizations(b'["contoso.onmicrosoft.com"]'),
    "orgs-no-name": _organizations(b'[{"id": 5}]'),
    "orgs-page-junk": _organizations(b'{"results": [1, 2], "setId": [], "_links": 5}'),
    "drip-head": _drip_all,
    "drip-body": _drip_body,
    "silent": _silent,
    "close": _close,
    "garbage": _garbage,
    "short-body": _short_body,
    "bad-chunks": _bad_chunks,
    "huge": _huge,
    "gzip-bomb": _gzip_bomb,
}
SLOW_MODES = {"drip-head", "drip-body", "silent"}
# Modes whose plan ends only at the request's deadline: the slow ones, and a token endpoint that keeps saying 429.
DEADLINE_MODES = SLOW_MODES | {"token-429"}


class HostileServer(ThreadingHTTPServer):
    """Answers ``/<mode>/...`` the way ``MODES[mode]`` says, on a free port of 127.0.0.1."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hanging up on a hostile answer is the point

    def __init__(self, drip_seconds: float = 0.5) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.drip_seconds = drip_seconds
        self.stop = threading.Event()
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.shutdown()
        self.server_close()


# -- malformed inputs --------------------------------------------------------------------------------------------

def _config_with(config: str, old: str, new: str) -> bytes:
    assert old in config, old
    return config.replace(old, new, 1).encode()


def _env_line(config: str, line: str) -> bytes:
    """Environment dev's settings with ``line`` added (after its api_version)."""
    return _config_with(config, "    api_version: v8\n", f"    api_version: v8\n    {line}\n")


BILLION_LISTS = "".join(f"{c}: &{c} [{','.join([f'*{p}'] * 9) if p else ','.join(['lol'] * 9)}]\n"
                        for p, c in zip([""] + list("abcdefgh"), "abcdefghi", strict=True))
BILLION_MAPS = "a: &a {x: 1, y: 2, z: 3, w: 4, v: 5, u: 6, t: 7, s: 8, r: 9}\n" + "".join(
    f"{c}: &{c} {{{', '.join(f'k{i}: *{p}' for i in range(9))}}}\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True))
BILLION_MERGE = "a: &a {x: [1, 2, 3, 4, 5, 6, 7, 8, 9]}\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True))


def config_cases(config: str) -> Iterator[Case]:
    run = ["validate", "--env", "dev"]

    def case(label: str, text: bytes | str, args: list[str] | None = None) -> Case:
        data = text.encode() if isinstance(text, str) else text
        return Case("vboplan.yaml", label, args or run, {"vboplan.yaml": data})

    for label, text in [("empty", ""), ("list", "[1, 2]\n"), ("scalar", "5\n"), ("null", "null\n"),
                        ("templates int", "templates: 5\n" + config.split("\n", 1)[1]),
                        ("templates ints", "templates: [1]\n" + config.split("\n", 1)[1]),
                        ("templates map", "templates: {a: b}\n" + config.split("\n", 1)[1]),
                        ("templates none match", "templates: [nothing/*.j2]\n" + config.split("\n", 1)[1]),
                        ("environments list", "environments: [dev]\n"), ("environments int", "environments: 5\n"),
                        ("environments empty", "environments: {}\n"), ("environments null", "environments:\n"),
                        ("unknown top key", config + "enviroments: {}\n"),
                        ("billion laughs", config + BILLION_LISTS.replace("a: &a", "x_a: &a")),
                        ("tab indent", config.replace("    server", "\tserver", 1)),
                        ("not utf-8", config.encode() + b"# caf\xe9\n"),
                        ("nul", config + "\x00\n")]:
        yield case(label, text)
    for value in ["5", "[https://a]", "null", '""', '"emulator:"', "emulator:a/b", "emulator:../../x",
                  "https://", '"https://[::1"', "https://h:0", "https://h:-1", '"http://h\\0x"', "https://h:4443/?q=1",
                  "https://h#frag", "file:///etc/passwd", "https://h:port", "https://u:p@h:4443",
                  '"https://h\\u2028x"', "https://exa mple.com"]:
        yield case(f"server {value}", _config_with(config, "server: emulator:dev", f"server: {value}"))
    for value in ["v9", "8", "null", "[v8]", "v"]:
        yield case(f"api_version {value}", _config_with(config, "api_version: v8", f"api_version: {value}"))
    for value in ["5", "[1]", "{a: b}", "[missing.yaml]", "[environments]", "['']", "[.]"]:
        yield case(f"var_files {value}", _config_with(config, "var_files: [environments/common.yaml, "
                                                      "environments/dev.yaml]", f"var_files: {value}"))
    for line in ["approvals: [1]", "approvals: x", "approvals: {required: -1}", "approvals: {required: '2'}",
                 "approvals: {required: true}", "approvals: {approvers: 5}", "approvals: {approvers: [1]}",
                 "approvals: {required: 3, approvers: [a]}", "approvals: {unknown: 1}", "approvals: {required: 1.5}",
                 "timeout: .nan", "timeout: .inf", "timeout: -.inf", "timeout: -1", "timeout: 0", "timeout: '20'",
                 "timeout: [1]", "timeout: 1e9", "timeout: true", "timeout: null",
                 "verify: 5", "verify: []", "verify: missing.pem", "verify: ''", "verify: templates",
                 "verify: environments/dev.yaml", "verify: null",
                 "username: 5", "username: []", "username: ''", "password_env: 5", "password_env: ''",
                 "password_env: A=B", "username_env: []", "colour: true", "server: twice"]:
        yield case(line, _env_line(config, line))
    for name in ["../../x", "team/dev", "nul", "..", "a b", "dév", "-x", "x" * 65, "5", "''", "con.txt", "a..b"]:
        yield case(f"environment name {name}", _config_with(config, "\n  dev:\n", f"\n  {name}:\n"),
                   ["validate", "--all"])
    for spec in ["5", "[1]", "null", "x"]:
        yield case(f"environment spec {spec}", _config_with(config, "\n  dev:\n", f"\n  dev: {spec}\n  old_dev:\n"))


def var_file_cases(config: str) -> Iterator[Case]:
    run = ["validate", "--env", "dev"]
    target = "environments/dev.yaml"
    texts: list[tuple[str, bytes | str]] = [
        ("billion laughs lists", BILLION_LISTS), ("billion laughs maps", BILLION_MAPS),
        ("billion laughs nested", BILLION_MERGE),
        ("deep flow 300", "a: " + "[" * 300 + "]" * 300), ("deep flow 100000", "a: " + "[" * 100_000),
        ("deep maps 150", "a: " + "{b: " * 150 + "1" + "}" * 150),
        ("deep block 200", "".join("  " * i + f"k{i}:\n" for i in range(200)) + "  " * 200 + "v\n"),
        ("top-level list", "- a\n- b\n"), ("top-level scalar", "just text\n"),
        ("python tag", "a: !!python/object/apply:os.system ['echo hi']\n"), ("binary tag", "a: !!binary '#'\n"),
        ("bad int tag", "a: !!int x\n"), ("duplicate key", "domain: a\ndomain: b\n"),
        ("tab indentation", "smtp:\n\thost: x\n"), ("unclosed quote", 'domain: "abc\n'),
        ("undefined alias", "domain: *nothing\n"), ("self alias", "a: &a [*a]\n"),
        ("nul", "domain: a\x00b\n"), ("not utf-8", b"domain: caf\xe9\n"),
        ("utf-16", "domain: x\n".encode("utf-16")), ("unhashable key", "? [a, b]\n: c\n"),
        ("map key", "{a: 1}: b\n"), ("smtp int", "domain: x\nsmtp: 5\n"), ("smtp list", "domain: x\nsmtp: [1]\n"),
        ("smtp null", "domain: x\nsmtp: null\n"), ("too big", b"a: " + b"x" * (33 * 1024 * 1024)),
        ("document stream", "a: 1\n---\nb: 2\n"), ("directive junk", "%YAML 9.9\n---\na: 1\n"),
        ("control chars", "domain: \x07\x1b[31m\n"), ("lone surrogate escape", 'domain: "\\ud800"\n'),
    ]
    for label, text in texts:
        data = text.encode() if isinstance(text, str) else text
        yield Case("variable file", label, run, {target: data})
    json_target = "environments/dev.json"
    for label, text in [("json broken", '{"domain": }'), ("json duplicate", '{"domain": "a", "domain": "b"}'),
                        ("json deep", "[" * 100_000 + "]" * 100_000), ("json list", "[1]"), ("json trailing", "{} x"),
                        ("json not utf-8", b'{"domain": "caf\xe9"}'), ("json empty", "")]:
        data = text.encode() if isinstance(text, str) else text
        yield Case("variable file", label, run, {json_target: data, target: None, "vboplan.yaml": _config_with(
            config, "environments/dev.yaml", json_target)})


def template_cases() -> Iterator[Case]:
    plan = ["plan", "--env", "dev"]
    validate = ["validate", "--env", "dev"]
    target = "templates/audit.yaml.j2"
    bodies = [
        ("macro recursion", "{% macro loop(n) %}{{ loop(n) }}{% endmacro %}{{ loop(1) }}", validate),
        ("deep parentheses", "x: {{ " + "(" * 3000 + "1" + ")" * 3000 + " }}", validate),
        ("deep if", "{% if true %}" * 500 + "x" + "{% endif %}" * 500, validate),
        ("huge power", "x: {{ 7 ** 100000000 }}", validate),
        ("huge repeat", "x: {{ 'ab' * 10 ** 9 }}", validate),
        ("huge list repeat", "x: {{ [1] * 10 ** 9 }}", validate),
        ("nested ranges", "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
         validate),
        ("huge output", "{% for i in range(60000) %}{{ 'x' * 1000 }}{% endfor %}", validate),
        ("undefined", "x: {{ nothing }}", validate), ("unclosed if", "{% if true %}x", validate),
        ("empty expression", "x: {{ }}", validate), ("stray endfor", "{% endfor %}", validate),
        ("unknown filter", "x: {{ 1 | nofilter }}", validate), ("missing extends", "{% extends 'no.j2' %}", validate),
        ("missing include", "{% include 'no.j2' %}", validate),
        ("include outside", "{% include '../../../etc/passwd' %}", validate),
        ("class escape", "x: {{ ''.__class__.__mro__[1].__subclasses__() }}", validate),
        ("globals escape", "x: {{ cycler.__init__.__globals__ }}", validate),
        ("lipsum escape", "x: {{ lipsum.__globals__['os'] }}", validate),
        ("list", "- a\n- b\n", validate), ("scalar", "hello", validate),
        ("unknown resource", "audit_mail_settings: {port: 25}", validate),
        ("port text", "audit_email_settings: {port: abc}", validate),
        ("port list", "audit_email_settings: {port: [1]}", validate),
        ("boolean maybe", "audit_email_settings: {enableNotification: maybe}", validate),
        ("settings string", "audit_email_settings: x", validate),
        ("settings list", "audit_email_settings: [1]", validate),
        ("unknown field", "audit_email_settings: {smtpServr: x}", validate),
        ("read-only field", "audit_email_settings: {clientId: x}", validate),
        ("audit items int", "audit_items: 5", validate), ("audit items org int", "audit_items: {org: 5}", validate),
        ("audit users int", "audit_items: {org: {users: 5}}", validate),
        ("audit users nested", "audit_items: {org: {users: [[1]]}}", validate),
        ("audit unknown org", "audit_items: {nowhere.example: {users: [a@b.c]}}", plan),
        ("audit unknown user", "audit_items: {contoso.onmicrosoft.com: {users: [ghost@contoso.com]}}", plan),
        ("secret upper", "audit_email_settings: {userPassword: '{{ secret(\"SMTP_PASSWORD\") | upper }}'}", plan),
        ("secret slice", "audit_email_settings: {userPassword: '{{ secret(\"SMTP_PASSWORD\")[1:] }}'}", plan),
        ("secret unset", "audit_email_settings: {userPassword: '{{ secret(\"NOT_SET_ANYWHERE\") }}'}", plan),
        ("duplicate resource", "job_email_settings: {notifyOnFailure: true}", validate),
        ("not utf-8", b"x: caf\xe9", validate),
        ("nul", "x: a\x00b", validate),
        ("yaml error", "audit_email_settings: {port: 25", validate),
        ("billion laughs", BILLION_LISTS, validate),
    ]
    for label, body, args in bodies:
        data = body.encode() if isinstance(body, str) else body
        yield Case("template", label, args, {target: data})
    yield Case("template", "directory named like a template", validate,
               {"templates/dir.yaml.j2/x": b"a", target: None})


def _json_bytes(data: Any) -> bytes:
    return json.dumps(data, indent=2).encode()


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data[:2]):
            yield from _paths(value, (*prefix, index))


def _set(data: Any, path: tuple[Any, ...], value: Any) -> Any:
    data = copy.deepcopy(data)
    if not path:
        return value
    holder = data
    for step in path[:-1]:
        holder = holder[step]
    if value is _DELETE:
        del holder[path[-1]]
    else:
        holder[path[-1]] = value
    return data


_DELETE = object()
_WRONG = [None, 5, "x", [], {}, True, -1, 1e308, [[[]]]]


def _structural(data: dict[str, Any], rng: random.Random, wanted: int, required: set[str],
                open_fields: tuple[str, ...] = (), max_depth: int = 99) -> Iterator[tuple[str, bytes]]:
    """Mutations of a JSON document that break its structure: required fields deleted, fields of the wrong type.
    Inside ``open_fields`` any content is valid, so only the field itself is given a wrong type."""
    for key in sorted(required):
        yield f"without {key}", _json_bytes(_set(data, (key,), _DELETE))
    paths = [p for p in _paths(data) if p and len(p) <= max_depth and not (len(p) > 1 and p[0] in open_fields)]
    made = 0
    seen: set[str] = set()
    while made < wanted:
        path = rng.choice(paths)
        current: Any = data
        for step in path:
            current = current[step]
        wrong = rng.choice([w for w in _WRONG if type(w) is not type(current) and w != current
                            and not (w is None and path[-1] in NULLABLE)])
        label = f"{'.'.join(map(str, path))} = {json.dumps(wrong)}"
        if label in seen:
            continue
        seen.add(label)
        made += 1
        yield label, _json_bytes(_set(data, path, wrong))


def _broken_json(text: bytes) -> Iterator[tuple[str, bytes]]:
    yield "empty", b""
    yield "truncated early", text[:20]
    yield "truncated late", text[: len(text) * 3 // 4]
    yield "not utf-8", text.replace(b"{", b"{\xff", 1)
    yield "a list", b"[1, 2]"
    yield "deep", b"[" * 100_000 + b"]" * 100_000
    yield "format 2", text.replace(b'"format_version": 1', b'"format_version": 2', 1)
    yield "format text", text.replace(b'"format_version": 1', b'"format_version": "1"', 1)
    yield "nul bytes", b"\x00" * 64


# Fields where null means "none" (vboplan reads them as empty), so null there is not malformed.
NULLABLE = {"approvals", "last_apply", "applied_plans", "expires_at", "author_key", "author_signature",
            "secret_fields", "detail", "after_digest"}
# Fields every plan file and every state snapshot has.
PLAN_REQUIRED = {"format_version", "environment", "server", "api_version", "created_by", "created_at", "checksum",
                 "changes", "live", "scope"}
STATE_REQUIRED = {"format_version", "lineage", "serial", "environment", "server", "api_version", "updated_at",
                  "resources"}


def plan_file_cases(plan_text: bytes, rng: random.Random, wanted: int, key: str) -> Iterator[Case]:
    data = json.loads(plan_text)
    commands = [["show", PLAN_FILE], ["apply", PLAN_FILE], ["approve", PLAN_FILE, "--key", key],
                ["show", PLAN_FILE, "--format", "json"]]
    mutations = [*_structural(data, rng, wanted, PLAN_REQUIRED, open_fields=("summary",)), *_broken_json(plan_text)]
    for index, (label, text) in enumerate(mutations):
        yield Case("plan file", label, commands[index % len(commands)], {PLAN_FILE: text})
    for label, approvals in [("approvals string", "x"), ("approvals int", 5), ("approvals of ints", [1]),
                             ("approval by int", [{"by": 5, "changes": ["c1"]}]),
                             ("approval changes string", [{"by": "bob", "changes": "c1"}]),
                             ("approvals object", {})]:
        yield Case("plan file", label, ["apply", PLAN_FILE], {PLAN_FILE: _json_bytes({**data, "approvals": approvals})})
    yield Case("plan file", "a directory", ["show", "plans"])
    yield Case("plan file", "missing", ["apply", "plans/none.json"])


def state_file_cases(state_text: bytes, rng: random.Random, wanted: int = 18) -> Iterator[Case]:
    data = json.loads(state_text)
    commands = [["plan", "--env", "dev"], ["state", "show", "--env", "dev"],
                ["apply", "--env", "dev", "--auto-approve"]]
    cases = [*_structural(data, rng, wanted, STATE_REQUIRED, open_fields=("last_apply", "applied_plans"),
                                 max_depth=3),
             *_broken_json(state_text)]
    for index, (label, text) in enumerate(cases):
        yield Case("state file", label, commands[index % len(commands)], {STATE_FILE: text})


def cli_cases(key: str) -> Iterator[Case]:
    for args in [["plan"], ["plan", "--env"], ["plan", "--env", "nope"], ["plan", "--env", "dev", "--format", "xml"],
                 ["plan", "--env", "dev", "--target", "nothing"], ["plan", "--env", "dev", "--target", "audit_items["],
                 ["plan", "--all", "--out", "x.json"], ["apply"], ["apply", PLAN_FILE, "--env", "dev"],
                 ["apply", "missing.json"], ["show"], ["show", "missing.json"], ["approve", "missing.json"],
                 ["state", "show"], ["state", "show", "--env", "nope"], ["nosuchcommand"], ["--nosuchoption"],
                 ["-C", "/nonexistent/dir", "validate"], ["-C", "vboplan.yaml", "validate"],
                 ["plan", "--env", "dev", "--out", "vboplan.yaml/plan.json"], ["validate", "--env", "../x"],
                 ["plan", "--env", "dev", "--format"], ["emulator", "serve", "--latency-ms", "abc"],
                 ["emulator", "serve", "--fail-rate", "x"], ["approve", PLAN_FILE, "--key", key, "--change", "c999"],
                 ["approve", PLAN_FILE, "--key", "no-such-key"],
                 ["state"], ["plan", "--env", "dev", "--env", "nope"], ["-v", "-v", "plan", "--env", "nope"],
                 ["validate", "--env", "\x00"], ["plan", "--env", "dev", "--target", ""]]:
        yield Case("command line", " ".join(args), args)
    changed = {"environments/dev.yaml": b"domain: changed.example\nsmtp:\n  host: smtp.changed.example\n"}
    yield Case("command line", "apply --env dev, no answer", ["apply", "--env", "dev"], changed, input="")
    yield Case("command line", "apply --env dev, answer no", ["apply", "--env", "dev"], changed, input="no\n")


def server_cases(config: str, server_url: str, timeout: float = 2, deadline: float = 1) -> Iterator[Case]:
    """One case per hostile mode: dev's server is ``server_url/<mode>``, so the client's base is under it. Its
    timeout is ``deadline`` for DEADLINE_MODES (each such case lasts that long), ``timeout`` for the rest."""
    for mode in MODES:
        seconds = deadline if mode in DEADLINE_MODES else timeout
        text = config.replace("server: emulator:dev", f"server: {server_url}/{mode}\n    timeout: {seconds}", 1)
        yield Case("server answer", mode, ["plan", "--env", "dev"], {"vboplan.yaml": text.encode()})


def malformed_cases(texts: dict[str, str], plan_text: bytes, state_text: bytes, server_url: str, key: str,
                    seed: int = 9, scale: int = 1) -> list[Case]:
    """Every malformed-by-construction case; ``scale`` multiplies the randomly drawn plan and state mutations."""
    rng = random.Random(seed)
    config = texts["vboplan.yaml"]
    return [*config_cases(config), *var_file_cases(config), *template_cases(),
            *plan_file_cases(plan_text, rng, 30 * scale, key), *state_file_cases(state_text, rng, 18 * scale),
            *cli_cases(key), *server_cases(config, server_url)]


_JUNK = ["\x00", "\t", ":", "{", "}", "[", "]", "&a", "*a", "!", "%", "'", '"', "\\", "\u2028", "\ufeff", "-", "#",
         "\n", "{{", "}}", "{%", "|", "<<: *a", "? ", "\udcff"]


def mutate(text: str, rng: random.Random) -> str:
    """One random text mutation (the result may or may not still be valid)."""
    choice = rng.randrange(5)
    if not text:
        return rng.choice(_JUNK)
    at = rng.randrange(len(text))
    if choice == 0:
        return text[:at]
    if choice == 1:
        return text[:at] + rng.choice(_JUNK) + text[at + 1:]
    if choice == 2:
        return text[:at] + rng.choice(_JUNK) * rng.randint(1, 50) + text[at:]
    lines = text.splitlines(keepends=True)
    index = rng.randrange(len(lines))
    if choice == 3:
        return "".join(lines[:index] + lines[index + 1:])
    return "".join(lines[:index] + [lines[index]] * 2 + lines[index + 1:])


def mutated_cases(texts: dict[str, str], count: int, seed: int = 11) -> list[Case]:
    """Random text mutations of the project's files, each run with validate or plan."""
    rng = random.Random(seed)
    names = sorted(texts)
    cases = []
    for index in range(count):
        name = rng.choice(names)
        text = mutate(texts[name], rng)
        args = ["validate", "--env", "dev"] if index % 2 else ["plan", "--env", "dev"]
        cases.append(Case("mutation", f"{name} #{index}", args,
                          {name: text.encode("utf-8", "surrogateescape")}, must_fail=False))
    return cases


def yaml_text(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False)


def elapsed(since: float) -> float:
    return time.monotonic() - since
