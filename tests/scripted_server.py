"""A scripted HTTP/1.1 server on a real socket, served by threads of the test: it reads each request whole and
does what its script says with it (answer and keep the connection, or hang up), over TLS when given a context. The
wire's tests (tests/test_wire.py) and the hostile server's (tests/test_hostile_wire.py) script it."""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

TOKEN = "hostile-wire-access-token-5f1c"
REFRESH = "hostile-wire-refresh-token-9a2e"


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


def answer(body: bytes, status: str = "200 OK", extra: str = "") -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
            .encode() + body)


TOKENS = answer(json.dumps({"access_token": TOKEN, "refresh_token": REFRESH, "token_type": "bearer"}).encode())
# What a script does with one request on its connection: the bytes to answer (the connection stays open), or None
# (the script has done what it does, the connection is closed).
Script = Callable[[Request, socket.socket, int], bytes | None]


@dataclass
class ScriptedServer:
    """A server on a real socket: reads each request whole and does what ``script`` says with it (``tls``: an SSL
    context it serves with); the token endpoint answers normally unless ``script_token``."""

    script: Script
    host: str = "127.0.0.1"
    tls: ssl.SSLContext | None = None
    script_token: bool = False
    read_body: bool = True
    requests: list[Request] = field(default_factory=list)
    connections: int = 0
    handshakes_failed: int = 0

    def __post_init__(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self.listener = socket.create_server((self.host, 0), family=family)
        shown = f"[{self.host}]" if ":" in self.host else self.host
        self.port = self.listener.getsockname()[1]
        self.url = f"{'https' if self.tls else 'http'}://{shown}:{self.port}"

    def __enter__(self) -> ScriptedServer:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.listener.close()

    def writes(self) -> list[str]:
        return [f"{r.method} {r.path}" for r in self.requests if r.method not in ("GET", "HEAD")
                and not r.path.endswith(("/token", "/token/logout"))]

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        incoming = None
        try:
            if self.tls is not None:
                try:
                    connection = self.tls.wrap_socket(connection, server_side=True)
                except (OSError, ssl.SSLError):
                    self.handshakes_failed += 1
                    return
            incoming = connection.makefile("rb")
            count = 0
            while True:
                line = incoming.readline()
                if not line:
                    return
                method, path, _ = line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while (header := incoming.readline()) not in (b"\r\n", b""):
                    name, _, value = header.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                body = incoming.read(length) if self.read_body or path.endswith("/token") else b""
                request = Request(method, path, headers, body)
                self.requests.append(request)
                count += 1
                if path.endswith("/token") and not self.script_token:
                    connection.sendall(TOKENS)
                    continue
                answer = self.script(request, connection, count)
                if answer is None:
                    return
                connection.sendall(answer)
        except OSError:
            return
        finally:
            if incoming is not None:
                incoming.close()  # the socket closes only once its reader is closed too
            connection.close()
