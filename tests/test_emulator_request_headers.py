"""The emulator's server reads a request's header section itself (not through the email package): over a raw
socket, the answers a client sees for header fields in any case, folded or repeated, Connection and Expect, and
http.server's bounds (431) are those of the standard library's parser."""

from __future__ import annotations

import copy
import socket
from collections.abc import Iterator

import pytest
from conftest import API_SECRET, SEED

from vboplan.emulator import start


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, int]]:
    with start(copy.deepcopy(SEED)) as running:
        yield "127.0.0.1", running.port


def exchange(address: tuple[str, int], request: bytes) -> tuple[bytes, bool]:
    """What the server answers to ``request`` and whether it then closed the connection."""
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        while len(body) < length:
            body += sock.recv(65536)
        sock.settimeout(0.5)
        try:
            closed = sock.recv(1) == b""
        except TimeoutError:
            closed = False
        return head + b"\r\n\r\n" + body, closed


def token_request(*lines: str, version: str = "HTTP/1.1") -> bytes:
    body = f"grant_type=password&username=admin&password={API_SECRET}".encode()
    head = [f"POST /v8/token {version}", "Host: vbo", *lines, f"content-LENGTH: {len(body)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def test_fields_in_any_case_and_folded_are_read(server: tuple[str, int]) -> None:
    answer, closed = exchange(server, token_request("CONTENT-type:", " application/x-www-form-urlencoded"))
    assert answer.startswith(b"HTTP/1.1 200 ") and b"access_token" in answer and not closed


def test_a_request_without_a_content_type_is_refused_as_before(server: tuple[str, int]) -> None:
    answer, _ = exchange(server, token_request())
    assert answer.startswith(b"HTTP/1.1 400 ") or answer.startswith(b"HTTP/1.1 415 "), answer[:200]


@pytest.mark.parametrize("line,version,closes", [
    ("Connection: CLOSE", "HTTP/1.1", True), ("Connection: keep-alive", "HTTP/1.0", False),
    ("X-Other: 1", "HTTP/1.0", True), ("X-Other: 1", "HTTP/1.1", False)])
def test_connection_is_kept_or_closed_as_http_server_does(server: tuple[str, int], line: str, version: str,
                                                          closes: bool) -> None:
    answer, closed = exchange(server, token_request("Content-Type: application/x-www-form-urlencoded", line,
                                                    version=version))
    assert b" 200 " in answer.split(b"\r\n")[0] and closed is closes


def test_expect_100_continue_is_answered_before_the_body(server: tuple[str, int]) -> None:
    answer, _ = exchange(server, token_request("Content-Type: application/x-www-form-urlencoded",
                                               "expect: 100-Continue"))
    assert answer.startswith(b"HTTP/1.1 100 Continue\r\n")


@pytest.mark.parametrize("extra", [[f"X-{n}: v" for n in range(101)], ["X-Long: " + "v" * 70000]],
                         ids=["101-fields", "long-line"])
def test_http_servers_bounds_answer_431(server: tuple[str, int], extra: list[str]) -> None:
    answer, closed = exchange(server, token_request(*extra))
    assert answer.startswith(b"HTTP/1.1 431 ") and closed

