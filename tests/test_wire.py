"""The wire under the client (vboplan.api.transport, http.client) against a scripted HTTP/1.1 server on a socket:
connections kept alive and given back, an idle connection the server closed not reused, chunked answers decoded as
they arrive, and a broken answer reported in one line that names no secret."""

from __future__ import annotations

import json
import os
import select
import socket
import sys
import time
from collections.abc import Callable

import pytest
from conftest import API_SECRET
from scripted_server import Request, ScriptedServer

from vboplan.api.client import VboClient
from vboplan.errors import ApiError
from vboplan.project.config import Environment

TOKEN = "secret-access-token-123"
Answer = Callable[[str, str], bytes]  # (method, path) -> the bytes sent back


def _plain(body: bytes, extra: str = "") -> bytes:
    return (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
            .encode() + body)


def _chunked(body: bytes, size: int) -> bytes:
    pieces = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size]) for i in range(0, len(body), size))
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + pieces + \
        b"0\r\n\r\n"


def _token(method: str, path: str) -> bytes | None:
    if path.endswith("/token"):
        return _plain(json.dumps({"access_token": TOKEN, "refresh_token": "r", "token_type": "bearer"}).encode())
    return None


class Scripted(ScriptedServer):
    """Answers each request on 127.0.0.1 as ``answer`` says; ``one_per_connection`` closes every connection after
    its first answer (while answering HTTP/1.1 without ``Connection: close``, as a server whose keep-alive expired).
    :attr:`sent` lists the requests as "METHOD path"."""

    def __init__(self, answer: Answer, one_per_connection: bool = False) -> None:
        def script(request: Request, connection: socket.socket, count: int) -> bytes | None:
            reply = _token(request.method, request.path) or answer(request.method, request.path)
            if not one_per_connection:
                return reply
            connection.sendall(reply)
            return None

        super().__init__(script, script_token=True)

    @property
    def sent(self) -> list[str]:
        return [f"{request.method} {request.path}" for request in self.requests]


def _client(url: str, **options: object) -> VboClient:
    env = Environment(name="t", server=url, api_version="v8", timeout=5)
    return VboClient(env.connection, "admin", API_SECRET, backoff=0.01, **options)  # type: ignore[arg-type]


SETTINGS = json.dumps({"smtpServer": "smtp.contoso.com", "port": 25}).encode()


def test_requests_share_one_kept_alive_connection() -> None:
    with Scripted(lambda method, path: _plain(SETTINGS)) as server, _client(server.url) as vbo:
        for _ in range(10):
            assert vbo.get_settings("AuditEmailSettings")["port"] == 25
    assert server.connections == 1 and len(server.sent) == 12  # token, ten reads, logout


def test_an_idle_connection_the_server_closed_is_not_reused() -> None:
    with Scripted(lambda method, path: _plain(SETTINGS), one_per_connection=True) as server, \
            _client(server.url) as vbo:
        for _ in range(5):
            assert vbo.get_settings("AuditEmailSettings")["port"] == 25
    assert server.sent.count("GET /v8/AuditEmailSettings") == 5  # none failed and was sent again
    # Token, five reads, logout; the logout (a write, never sent twice) is lost when it races the server's hang-up.
    assert server.connections in (6, 7)


def test_a_write_after_the_server_closed_the_idle_connection_goes_out_on_a_new_one() -> None:
    # A read on a dead kept-alive connection is sent again, which would hide a broken idle check; a write is never
    # sent twice once it has left whole, so each DELETE here (no body: it leaves in one piece) succeeds only if the
    # connection the server closed was seen closed before it.
    with Scripted(lambda method, path: b"HTTP/1.1 204 No Content\r\n\r\n", one_per_connection=True) as server, \
            _client(server.url) as vbo:
        vbo.request("GET", "Jobs", expect=(204,))  # logs in (a read: sent again if the token's connection is gone)
        for job in range(5):
            for idle in vbo._wire._idle:  # the server's hang-up has reached the kept-alive socket (loopback delivers
                select.select([idle.sock.sock], [], [], 5)  # it a moment after the server's close() on a busy machine)
            vbo.request("DELETE", f"Jobs/{job}", expect=(204,))
    assert [sent for sent in server.sent if sent.startswith("DELETE")] == [f"DELETE /v8/Jobs/{job}" for job in range(5)]


@pytest.mark.parametrize("size", [1, 7, 4096])
def test_a_chunked_list_is_decoded_as_it_arrives(size: int) -> None:
    items = [{"id": f"i{n}", "type": "User", "user": {"id": f"u{n}", "name": f"user{n}@contoso.com"}}
             for n in range(300)]
    body = json.dumps(items, separators=(",", ":")).encode()
    with Scripted(lambda method, path: _chunked(body, size)) as server, _client(server.url) as vbo:
        assert vbo.audit_items("org", lambda item: item["id"]) == [item["id"] for item in items]
        assert vbo.audit_items("org") == items  # the connection was given back and serves the next request
    assert server.connections == 1


def test_pages_are_read_into_buffers_whole_chunked_and_again_after_a_break() -> None:
    """A directory walk reads each page's body into a buffer it gives back for the next page: a page with a length
    (straight into the buffer), a chunked one, and one that broke off (read again, into the same buffer) all decode
    to their entries, the later pages larger than the first."""
    from vboplan.kinds.principals import _page_decoder

    users = [{"id": f"u{n}", "name": f"user{n}@contoso.com", "displayName": f"User {n}" * (1 + n)} for n in range(7)]
    attempts: dict[int, int] = {}

    def page(method: str, path: str) -> bytes:
        if "offset=" not in path:
            return b"HTTP/1.1 204 No Content\r\n\r\n"  # the logout
        offset = int(path.split("offset=")[1].split("&")[0])
        attempts[offset] = attempts.get(offset, 0) + 1
        more = {"next": {"href": "/v8/next"}} if offset + 2 < len(users) else {}
        body = json.dumps({"offset": offset, "limit": 2, "setId": "s", "results": users[offset:offset + 2],
                           "_links": {"self": {"href": "/v8/self"}, **more}}).encode()
        if offset == 2 and attempts[offset] == 1:
            return _plain(body)[:-10]  # broken off: the connection closes ten bytes short
        return _chunked(body, 5) if offset == 4 else _plain(body)

    with Scripted(page, one_per_connection=True) as server, _client(server.url) as vbo:
        pages = list(vbo.each_page("Organizations/o/Users", limit=2, ahead=1, decode=_page_decoder()))
    assert [[entry.name for entry in results] for results in pages] == \
        [[user["name"] for user in users[at:at + 2]] for at in range(0, len(users), 2)]
    assert pages[3][0].displayName == "User 6" * 7
    assert attempts == {0: 1, 2: 2, 4: 1, 6: 1}


@pytest.mark.parametrize("broken", [
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"a\":",
    b"HELLO THERE\r\n\r\nnot http at all"], ids=["bad-chunk", "short-body", "not-http"])
def test_a_broken_answer_is_one_line_naming_no_secret(broken: bytes) -> None:
    with Scripted(lambda method, path: broken, one_per_connection=True) as server, _client(server.url) as vbo:
        with pytest.raises(ApiError, match=r"^environment 't'.*: the connection failed \(") as caught:
            vbo.get_settings("AuditEmailSettings")
    message = str(caught.value)
    assert "\n" not in message and TOKEN not in message and API_SECRET not in message
    assert server.sent.count("GET /v8/AuditEmailSettings") == 3  # a read is tried again, within its bound


def test_a_redirect_is_not_followed() -> None:
    moved = b"HTTP/1.1 302 Found\r\nLocation: http://login.example.invalid/\r\nContent-Length: 0\r\n\r\n"
    with Scripted(lambda method, path: moved) as server, _client(server.url) as vbo:
        with pytest.raises(ApiError, match="failed with HTTP 302"):
            vbo.get_settings("AuditEmailSettings")
    assert server.sent == ["POST /v8/token", "GET /v8/AuditEmailSettings", "POST /v8/token/logout"]



@pytest.mark.skipif(sys.platform == "win32", reason="POSIX descriptors: Windows' select() takes any socket")
def test_a_socket_above_fd_setsize_the_server_closed_is_seen_closed() -> None:
    # A fleet process holds many connections and files: a socket numbered above select()'s FD_SETSIZE (1024) must
    # still be seen closed when idle, or the next request goes out on a dead connection (and a write that may have
    # reached the server is not sent again: it fails).
    import resource

    from vboplan.api.transport import Bounds, _Socket

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200 and (hard == resource.RLIM_INFINITY or hard >= 1200):
        resource.setrlimit(resource.RLIMIT_NOFILE, (1200, hard))
    elif soft < 1200:
        pytest.skip("this machine allows fewer than 1200 open files")
    padding = []
    try:
        while not padding or padding[-1] < 1100:
            padding.append(os.open(os.devnull, os.O_RDONLY))
        ours, theirs = socket.socketpair()
        assert ours.fileno() > 1024
        wire = _Socket(ours, Bounds(time.monotonic() + 5, 1024))
        assert wire.idle_and_open()
        theirs.close()  # the server hangs up on the idle connection
        assert not wire.idle_and_open()
        wire.close()
    finally:
        for fd in padding:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


HEADER_SECTIONS = [
    b"Content-Type: application/json; charset=UTF-8\r\nContent-Length: 12\r\n\r\n",
    b"content-type: text/plain;Charset=\"ISO-8859-1\"\r\nRETRY-AFTER:  3 \r\n\r\n",
    b"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-Folded: one\r\n  two\r\n\tthree\r\nConnection: close\r\n\r\n",
    b"X-Empty:\r\nNot a header line\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"Content-Type: application/json\n\n",  # bare LF line ends
    b"\r\n"]


@pytest.mark.parametrize("section", HEADER_SECTIONS)
def test_the_header_parser_reads_what_http_client_reads(section: bytes) -> None:
    import http.client
    import io

    from vboplan.api.transport import read_headers

    ours, theirs = read_headers(io.BytesIO(section)), http.client.parse_headers(io.BytesIO(section))
    for name in {key.lower() for key in theirs.keys()} | {"content-length", "retry-after", "connection", "x-none"}:
        mine, stdlib = ours.get(name), theirs.get(name)
        assert (mine, ours.get(name.upper())) == (" ".join(stdlib.split()) if stdlib else stdlib, mine), name
    assert ours.get_content_charset() == theirs.get_content_charset()


@pytest.mark.parametrize("section,error", [
    (b"".join(b"X-%d: v\r\n" % n for n in range(101)) + b"\r\n", "more than 100 headers"),
    (b"X-Long: " + b"v" * 70000 + b"\r\n\r\n", "header line")])
def test_the_header_parser_keeps_http_clients_bounds(section: bytes, error: str) -> None:
    import http.client
    import io

    from vboplan.api.transport import read_headers

    with pytest.raises(http.client.HTTPException, match=error):
        read_headers(io.BytesIO(section))


def test_connection_close_and_retry_after_are_read_from_the_headers() -> None:
    # "Connection: close" in any case: the connection is not kept (the next read opens a new one). A 503's
    # Retry-After (in another case than Veeam's) longer than what is left of the 5 s deadline: the read is not
    # sent again after the client's own 0.01 s backoff, it fails with the server's answer.
    busy = b"HTTP/1.1 503 Service Unavailable\r\nretry-AFTER: 9\r\nContent-Length: 0\r\n\r\n"
    with Scripted(lambda method, path: busy if "Busy" in path else _plain(SETTINGS, "CONNECTION: Close\r\n")) \
            as server, _client(server.url) as vbo:
        for _ in range(3):
            assert vbo.get_settings("AuditEmailSettings")["port"] == 25
        with pytest.raises(ApiError, match="HTTP 503"):
            vbo.get_settings("BusySettings")
    assert server.sent.count("GET /v8/BusySettings") == 1
    assert server.connections >= 4  # the token's answer and each read's closed their connection
