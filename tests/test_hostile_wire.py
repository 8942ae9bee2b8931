"""A hostile or broken server against the wire (vboplan.api.transport on http.client), and a hostile plan author
against the scope checks of the jobs stream.

The servers are real sockets served by threads of the test, each scripted to misbehave one way: drip bytes, send
endless or huge headers, lie about lengths, hang up after taking a write, compress, redirect elsewhere, echo the
tokens and the password, present a certificate it should not be trusted with. Each must end in one line naming no
secret, within the request's deadline, and a write must reach the server at most once. The plan author's attacks
run against the emulator over real HTTP (the hostile author's module-wide server and project) and count the
writes it receives: none."""

from __future__ import annotations

import copy
import datetime as dt
import ipaddress
import json
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, unquote_plus

import pytest
from conftest import API_SECRET, ProjectDir, one_server_project
from scripted_server import REFRESH, TOKEN, Request, Script
from scripted_server import ScriptedServer as Hostile
from scripted_server import answer as _answer
from test_hostile_today import ORG, Shared, shared  # noqa: F401 (the hostile author's server and project)

from vboplan.api.client import VboClient
from vboplan.emulator.server import make_certificate
from vboplan.errors import ApiError
from vboplan.project.config import Environment

SETTINGS = json.dumps({"smtpServer": "smtp.contoso.com", "port": 25}).encode()


def _client(url: str, timeout: float = 5, verify: bool | str = True) -> VboClient:
    env = Environment(name="t", server=url, api_version="v8", timeout=timeout, verify=verify)
    return VboClient(env.connection, "admin", API_SECRET, backoff=0.01)


def _one_line(error: pytest.ExceptionInfo[ApiError], *fragments: str) -> str:
    message = str(error.value)
    assert "\n" not in message and message.startswith("environment 't'"), message
    for secret in (TOKEN, REFRESH, API_SECRET):
        assert secret not in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


def _settings(request: Request, connection: socket.socket, count: int) -> bytes:
    return _answer(SETTINGS)


# -- a write is sent at most once ----------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["PUT", "POST"])
def test_a_write_the_server_took_and_hung_up_on_is_not_sent_again(method: str) -> None:
    """The server reads the write whole on the kept-alive connection of an earlier read, then hangs up without an
    answer: it may have acted on it, so the write is not sent again (it was, on a new connection, as a request that
    'never reached the server'), and the error says the connection failed."""
    def script(request: Request, connection: socket.socket, count: int) -> bytes | None:
        return None if request.method == method else _answer(SETTINGS)

    with Hostile(script) as server, _client(server.url) as vbo:
        assert vbo.get_settings("AuditEmailSettings")["port"] == 25
        with pytest.raises(ApiError) as caught:
            if method == "PUT":
                vbo.put_settings("AuditEmailSettings", {"port": 26})
            else:
                vbo.add_audit_items("org", [{"type": "user", "user": {"id": "u1"}}])
        _one_line(caught, "the connection failed", "closed the connection without answering")
    assert len(server.writes()) == 1, server.writes()


def test_a_read_the_server_hung_up_on_is_sent_again() -> None:
    """A read is safe to send again: the kept-alive connection closed under it, it is asked again and answered."""
    def script(request: Request, connection: socket.socket, count: int) -> bytes | None:
        return None if count == 3 else _answer(SETTINGS)  # token, a read, then the read it hangs up on

    with Hostile(script) as server, _client(server.url) as vbo:
        assert [vbo.get_settings("AuditEmailSettings")["port"] for _ in range(3)] == [25, 25, 25]
    assert [f"{r.method} {r.path}" for r in server.requests].count("GET /v8/AuditEmailSettings") == 4


def test_a_server_that_answers_before_reading_a_write_is_heard() -> None:
    """A write of a large body the server refuses after its headers (413, hanging up without reading the body): the
    error is the server's answer, in one line, and the write is not sent again (it was, on a new connection, and the
    line said only that the connection failed)."""
    def script(request: Request, connection: socket.socket, count: int) -> bytes | None:
        if request.method == "PUT":
            connection.sendall(_answer(b'{"message": "too large"}', "413 Payload Too Large", "Connection: close\r\n"))
            return None
        return _answer(SETTINGS)

    with Hostile(script, read_body=False) as server, _client(server.url) as vbo:
        assert vbo.get_settings("AuditEmailSettings")["port"] == 25
        with pytest.raises(ApiError) as caught:
            vbo.put_settings("AuditEmailSettings", {"description": "x" * (16 * 1024 * 1024)})
        _one_line(caught, "HTTP 413", "too large")
    assert server.writes() == ["PUT /v8/AuditEmailSettings"], server.writes()


# -- deadlines and bounds ------------------------------------------------------------------------------------------


def test_a_resolver_that_never_answers_cannot_hold_a_request_past_its_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    """The system's resolver has no timeout of its own (a dead DNS server holds getaddrinfo for its retries): the
    name is resolved within the request's deadline, and the line says the name did not resolve in time. Here the
    resolver answers only once the test has its error (or after a minute, as "not found")."""
    answered = threading.Event()
    resolve = socket.getaddrinfo

    def dead_dns(host: str, *args: Any, **kwargs: Any) -> Any:
        if host != "vbo.dead-dns.test" or kwargs.get("flags", 0) & socket.AI_NUMERICHOST:  # not a name: answered
            return resolve(host, *args, **kwargs)
        answered.wait(60)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", dead_dns)
    try:
        with _client("https://vbo.dead-dns.test:4443", timeout=1) as vbo, pytest.raises(ApiError) as caught:
            vbo.get_settings("AuditEmailSettings")
    finally:
        answered.set()
    _one_line(caught, "host name did not resolve within 1s")


def _drip(head: bytes) -> Script:
    def script(request: Request, connection: socket.socket, count: int) -> bytes | None:
        connection.sendall(head)
        for _ in range(20_000):  # 0.05 s a byte: 1,000 s if nothing but the per-read timeout stopped it
            connection.sendall(b" ")
            time.sleep(0.05)
        return None
    return script


@pytest.mark.parametrize("head", [b"HTTP/1.1 200 OK\r\nContent-Length: 20000\r\n\r\n", b"HTTP/1.1 200 OK\r\nX-Drip:"],
                         ids=["body", "header"])
def test_a_dripping_server_cannot_hold_a_request_past_its_deadline(head: bytes) -> None:
    """A byte arrives well within each read's timeout, forever: the request's total deadline ends it, once."""
    with Hostile(_drip(head)) as server, _client(server.url, timeout=1) as vbo:
        with pytest.raises(ApiError) as caught:
            vbo.get_settings("AuditEmailSettings")
        _one_line(caught, "did not answer within 1s")
    assert [r.path for r in server.requests].count("/v8/AuditEmailSettings") == 1


def _endless(head: bytes, piece: bytes) -> Script:
    def script(request: Request, connection: socket.socket, count: int) -> bytes | None:
        connection.sendall(head)
        for _ in range(1_000_000):
            connection.sendall(piece)
        return None
    return script


def _once(data: bytes) -> Script:
    return lambda request, connection, count: (connection.sendall(data), None)[1]


@pytest.mark.parametrize("script, fragment", [
    (_endless(b"HTTP/1.1 200 OK\r\n", b"X-More: header\r\n"), "the answer is not valid HTTP"),
    (_once(b"HTTP/1.1 200 OK\r\nX-Huge: " + b"a" * 200_000 + b"\r\n\r\n{}"), "a header line of the answer is too long"),
    (_endless(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", b"4000\r\n" + b" " * 0x4000 + b"\r\n"),
     "answered with more than 1 MiB"),
    (_endless(b"", b"HTTP/1.1 100 Continue\r\n\r\n"), "answered with more than 1 MiB"),
    (_once(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{}\r\n"), "the answer broke off"),
    (_once(b"HTTP/1.1 200 OK\r\nContent-Length: 4000\r\n\r\n{}"), "2 bytes read, more expected"),
], ids=["endless-headers", "huge-header-line", "endless-chunked", "endless-100-continue", "chunk-size-lies",
        "content-length-lies"])
def test_a_runaway_or_lying_answer_is_one_line(script: Script, fragment: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VBOPLAN_MAX_RESPONSE_MIB", "1")
    with Hostile(script) as server, _client(server.url) as vbo:
        with pytest.raises(ApiError) as caught:
            vbo.get_settings("AuditEmailSettings")
        _one_line(caught, fragment)


@pytest.mark.parametrize("head", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\nContent-Length: 100000000000000000000000\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffff\r\n{}",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffffffff\r\n{}",
], ids=["length-1e12", "length-1e23", "chunk-2e14", "chunk-8e28"])
def test_a_length_beyond_the_bound_is_refused_before_it_is_read(head: bytes) -> None:
    """A length the server announces but never sends: refused as too large at once (it was a MemoryError or an
    OverflowError out of http.client's read of that many bytes: a traceback)."""
    with Hostile(_once(head)) as server, _client(server.url) as vbo:
        with pytest.raises(ApiError) as caught:
            vbo.get_settings("AuditEmailSettings")
        _one_line(caught, "answered with more than 64 MiB")


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "GZIP, identity"])
def test_a_compressed_answer_is_refused(encoding: str) -> None:
    with Hostile(lambda request, connection, count: _answer(b"\x1f\x8b\x08", extra=f"Content-Encoding: {encoding}\r\n")
                 ) as server, _client(server.url) as vbo:
        with pytest.raises(ApiError) as caught:
            vbo.get_settings("AuditEmailSettings")
        _one_line(caught, "compressed body")
    assert server.requests[1].headers.get("accept-encoding") == "identity"


# -- secrets a server echoes ---------------------------------------------------------------------------------------

def test_the_tokens_a_server_echoes_in_an_error_are_masked() -> None:
    """A 400 whose message quotes the Authorization header it was sent, and the refresh token: masked (the server's
    message was printed as it came, the access token in it)."""
    def script(request: Request, connection: socket.socket, count: int) -> bytes | None:
        echoed = f"bad request: Authorization: {request.headers.get('authorization')} (refresh {REFRESH})"
        return _answer(json.dumps({"message": echoed}).encode(), "400 Bad Request")

    with Hostile(script) as server, _client(server.url) as vbo:
        with pytest.raises(ApiError) as caught:
            vbo.get_settings("AuditEmailSettings")
        message = _one_line(caught, "failed with HTTP 400", "bad request: Authorization: Bearer (sensitive)")
    assert "(refresh (sensitive))" in message and server.requests[1].headers["authorization"] == f"Bearer {TOKEN}"


def test_a_401_echoing_the_authorization_header_names_no_token() -> None:
    def script(request: Request, connection: socket.socket, count: int) -> bytes | None:
        return _answer(json.dumps({"message": f"token {request.headers.get('authorization')} rejected"}).encode(),
                       "401 Unauthorized")

    with Hostile(script) as server, _client(server.url) as vbo:
        with pytest.raises(ApiError) as caught:
            vbo.get_settings("AuditEmailSettings")
        _one_line(caught, "rejected a fresh token")


@pytest.mark.parametrize("token", [f"{TOKEN}\r\nX-Injected: 1", f"{TOKEN}\u20ac", f"{TOKEN} {TOKEN}"],
                         ids=["line-break", "not-ascii", "space"])
def test_an_access_token_no_header_can_carry_is_refused(token: str) -> None:
    """A token endpoint answering a token with a line break (a header of the server's choosing, were it sent as it
    is) or a character outside ASCII: refused naming the token response (it was "bad chunked encoding")."""
    tokens = _answer(json.dumps({"access_token": token, "token_type": "bearer"}).encode())

    def script(request: Request, connection: socket.socket, count: int) -> bytes | None:
        return tokens if request.path.endswith("/token") else _answer(SETTINGS)

    with Hostile(script, script_token=True) as server, _client(server.url) as vbo:
        with pytest.raises(ApiError) as caught:
            vbo.get_settings("AuditEmailSettings")
        _one_line(caught, "the token response's access_token is not a bearer token")
    assert [r.path for r in server.requests] == ["/v8/token"]
    assert not any("x-injected" in r.headers for r in server.requests)


def test_a_request_http_cannot_carry_is_named_for_what_it_is() -> None:
    """A path or header value holding a character HTTP does not allow (an id with a space or a line break, from a
    server's answer) is refused before anything leaves, in words saying so (it read "bad chunked encoding")."""
    from vboplan.api.transport import Bounds, Wire, WireError

    with Hostile(_settings) as server:
        wire = Wire(server.url + "/v8/", None, 2, 5, {})
        bounds = Bounds(time.monotonic() + 5, 1 << 20)
        with pytest.raises(WireError, match="^a header of the request holds a character HTTP does not allow$"):
            wire.send("GET", "AuditEmailSettings", bounds=bounds, read_bytes=1024, headers={"X-Id": "a\r\nX-B: 1"})
        with pytest.raises(WireError, match="^the request's path holds a character a URL cannot carry$"):
            wire.send("DELETE", "Jobs/1/SelectedItems?ids=a b", bounds=bounds, read_bytes=1024, headers={})
        wire.close()
    assert server.requests == []


PASSWORD = "p@ss w&rd=1+2%/x"  # every character a form or URL escapes


@pytest.mark.parametrize("status", ["500 Internal Server Error", "302 Found"])
def test_the_password_the_token_endpoint_echoes_never_shows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            status: str) -> None:
    """The token endpoint answers with the form it was sent (as the server read it, and decoded), or redirects
    to another host with it in the query: the CLI's one line names neither form of the password, and the other
    host is never asked."""
    with Hostile(_settings) as elsewhere:
        def script(request: Request, connection: socket.socket, count: int) -> bytes | None:
            sent = request.body.decode()
            message = json.dumps({"message": f"cannot log in with {sent} ({unquote_plus(sent)})"}).encode()
            return _answer(message, status, f"Location: {elsewhere.url}/v8/token?{sent}\r\n")

        with Hostile(script, script_token=True) as server:
            monkeypatch.setenv("VBO_TEST_PASSWORD", PASSWORD)
            project = one_server_project(tmp_path / "p", server.url, "v8")
            project.write("templates/a.yaml.j2", "audit_email_settings: {enableNotification: true}\n")
            result = project.run("plan", "--env", "e")
        assert elsewhere.connections == 0
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert f"POST token failed with HTTP {status.split()[0]}" in result.stderr, result.output
    assert quote_plus(PASSWORD) in server.requests[0].body.decode()  # the password was sent, and echoed
    for form in (PASSWORD, quote_plus(PASSWORD), quote(PASSWORD, safe=""), "w&rd=1+2"):
        assert form not in result.output, result.output


def test_a_redirect_of_a_write_to_another_host_takes_nothing_there() -> None:
    with Hostile(_settings) as elsewhere:
        moved = f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {elsewhere.url}/v8/AuditEmailSettings\r\n" \
                "Content-Length: 0\r\n\r\n"
        with Hostile(lambda request, connection, count: moved.encode()) as server, _client(server.url) as vbo:
            with pytest.raises(ApiError) as caught:
                vbo.put_settings("AuditEmailSettings", {"port": 26})
            _one_line(caught, "failed with HTTP 307")
        assert elsewhere.connections == 0 and server.writes() == ["PUT /v8/AuditEmailSettings"]


@pytest.mark.parametrize("server", ["https://admin:{pw}@vbo.example:4443", "htps://admin:{pw}@vbo.example:4443",
                                    "https://admin:{pw}@vbo.example:99999/v8"])
def test_a_user_and_password_in_the_server_url_are_refused_without_showing_them(tmp_path: Path, server: str) -> None:
    """The password written before the host (the API password, as like as not) was quoted in the refusal."""
    written = "In-the-url-Pa55word"
    project = ProjectDir(tmp_path / "p")
    project.write("vboplan.yaml", f"templates: [templates/*.yaml.j2]\nenvironments:\n  e:\n"
                                  f"    server: '{server.format(pw=written)}'\n    username: admin\n"
                                  "    password_env: VBO_TEST_PASSWORD\n")
    project.write("templates/a.yaml.j2", "audit_email_settings: {enableNotification: true}\n")
    result = project.run("validate", "--env", "e")
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "vbo.example" in result.stderr and written not in result.output and "admin:" not in result.output, \
        result.output
    (tmp_path / "p" / "vboplan.yaml").unlink()  # the suite's own check looks for secrets in what tests leave


# -- TLS -----------------------------------------------------------------------------------------------------------

def _certificate(folder: Path, hosts: list[str]) -> tuple[Path, Path]:
    """A self-signed certificate (its own CA) for exactly ``hosts``, and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30)).add_extension(x509.SubjectAlternativeName(names), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True).sign(key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _serving(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    folder = tmp_path_factory.mktemp("certs")
    return {"local": make_certificate(folder, []), "elsewhere": _certificate(folder / "elsewhere",
                                                                            ["vbo.elsewhere.example"])}


def test_a_self_signed_certificate_is_refused_by_default(certificates: dict[str, tuple[Path, Path]]) -> None:
    """verify: true (the default) trusts the public CAs only: the emulator-style self-signed certificate is refused
    at the handshake, so the password never left; verify: false (the contract's way out) connects."""
    with Hostile(_settings, tls=_serving(*certificates["local"])) as server:
        with _client(server.url) as vbo, pytest.raises(ApiError) as caught:
            vbo.get_settings("AuditEmailSettings")
        _one_line(caught, "TLS verification failed (self-signed certificate)")
        assert server.requests == [] and server.connections == 1  # not tried again either
        with _client(server.url, verify=False) as vbo:
            assert vbo.get_settings("AuditEmailSettings")["port"] == 25
        with _client(server.url, verify=str(certificates["local"][0])) as vbo:
            assert vbo.get_settings("AuditEmailSettings")["port"] == 25


def test_a_certificate_for_another_host_is_refused_even_by_its_own_ca(
        certificates: dict[str, tuple[Path, Path]]) -> None:
    cert, key = certificates["elsewhere"]
    with Hostile(_settings, tls=_serving(cert, key)) as server, _client(server.url, verify=str(cert)) as vbo:
        with pytest.raises(ApiError) as caught:
            vbo.get_settings("AuditEmailSettings")
        _one_line(caught, "TLS verification failed (certificate does not match the host name)")
    assert server.requests == []


def test_plain_http_on_the_https_port_is_named(certificates: dict[str, tuple[Path, Path]]) -> None:
    """A plain HTTP server answers the TLS hello with a 400 of its own: named as plain HTTP, not a certificate."""
    listener = socket.create_server(("127.0.0.1", 0))

    def answer() -> None:
        with listener:
            connection, _ = listener.accept()
            with connection:
                connection.recv(4096)
                connection.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    threading.Thread(target=answer, daemon=True).start()
    url = f"https://127.0.0.1:{listener.getsockname()[1]}"
    with _client(url, verify=str(certificates["local"][0])) as vbo, pytest.raises(ApiError) as caught:
        vbo.get_settings("AuditEmailSettings")
    _one_line(caught, "answered in plain HTTP, not HTTPS")


# -- IPv6 ----------------------------------------------------------------------------------------------------------

def _ipv6() -> bool:
    try:
        socket.create_server(("::1", 0), family=socket.AF_INET6).close()
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6(), reason="no IPv6 loopback here")
@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_an_ipv6_literal_host_is_reached_and_named_in_brackets(tls: bool,
                                                               certificates: dict[str, tuple[Path, Path]]) -> None:
    context = _serving(*certificates["local"]) if tls else None  # make_certificate's names include ::1
    with Hostile(_settings, host="::1", tls=context) as server, \
            _client(server.url, verify=str(certificates["local"][0])) as vbo:
        assert vbo.get_settings("AuditEmailSettings")["port"] == 25
    assert server.requests[1].headers["host"] == f"[::1]:{server.port}"


# -- a hostile plan author against the scope of jobs and roles -----------------------------------------------------

@pytest.fixture
def jobs_plan(shared: Shared, tmp_path: Path) -> dict[str, Any]:  # noqa: F811
    # An item's flag of the job keyed contoso.onmicrosoft.com/Whole, and the role's description: rows of both kinds.
    plan = shared.plan(tmp_path, onedrive="true", role="Desk restores, edited")
    assert {"backup_jobs", "restore_operator_roles"} <= {row["kind"] for row in plan["changes"]}, plan["changes"]
    return plan


def _ghost_and_ceo(scope: dict[str, Any]) -> None:
    scope["jobs"].append("Ghost")
    scope["names"].setdefault(ORG, {}).setdefault("User", {})["ceo@contoso.com"] = "templates/all.yaml.j2:99"


def test_a_scope_without_its_organizations_is_still_held_to_the_templates(
        shared: Shared, jobs_plan: dict[str, Any], tmp_path: Path) -> None:  # noqa: F811
    """The scope's organizations dropped (or made a list), a job and a principal no template declares added: the
    comparison with the templates was skipped for a scope without its organizations mapping, and the plan applied."""
    for kind in ("backup_jobs", "restore_operator_roles"):
        for organizations in (None, []):
            edited = copy.deepcopy(jobs_plan)
            scope = edited["scope"][kind]
            if organizations is None:
                scope.pop("organizations")
            else:
                scope["organizations"] = organizations
            if kind == "backup_jobs":
                _ghost_and_ceo(scope)
            else:
                scope["roles"].append("Ghost")
            output = shared.refused(tmp_path, edited)
            assert "AttributeError" not in output and "run 'vboplan plan' again" in output, output


def test_a_scope_that_is_only_a_list_of_jobs_is_refused(shared: Shared, jobs_plan: dict[str, Any],  # noqa: F811
                                                        tmp_path: Path) -> None:
    edited = copy.deepcopy(jobs_plan)
    edited["scope"]["backup_jobs"] = [*edited["scope"]["backup_jobs"]["jobs"], "Ghost"]
    shared.refused(tmp_path, edited, "(backup_jobs)")


def test_a_bare_name_excludes_a_job_keyed_organization_and_name(shared: Shared, tmp_path: Path) -> None:  # noqa: F811
    """--exclude Whole (the job the templates key contoso.onmicrosoft.com/Whole, the server Whole) leaves its rows
    out, and --target WHOLE keeps only them: it was "names several objects", the one job under its two keys."""
    excluded = shared.plan(tmp_path, "--exclude", "Whole", onedrive="true", role="Desk restores, edited")
    assert {r["kind"] for r in excluded["changes"]} == {"restore_operator_roles"}, excluded["changes"]
    targeted = shared.plan(tmp_path, "--target", "WHOLE", onedrive="true", role="Desk restores, edited")
    assert {r["kind"] for r in targeted["changes"]} == {"backup_jobs"}, targeted["changes"]


def test_a_partial_plans_target_word_edited_is_refused(shared: Shared, tmp_path: Path) -> None:  # noqa: F811
    """A plan of --target Whole (a bare name, of the job keyed contoso.onmicrosoft.com/Whole): its target word
    turned into the role's name, or into a word naming nothing, and extra principals in its scope's names."""
    plan = shared.plan(tmp_path, "--target", "Whole", onedrive="true", role="Desk restores, edited")
    assert plan["targets"] == ["Whole"] and {r["kind"] for r in plan["changes"]} == {"backup_jobs"}, plan["changes"]
    for word, fragment in (("Desk", "is not what the plan's --target Desk keep"), ("Wholly", "matches nothing")):
        edited = copy.deepcopy(plan)
        edited["targets"] = [word]
        shared.refused(tmp_path, edited, fragment)
    edited = copy.deepcopy(plan)
    _ghost_and_ceo(edited["scope"]["backup_jobs"])
    shared.refused(tmp_path, edited, "which no template declares")
