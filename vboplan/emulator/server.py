"""Serving the emulator over HTTP or HTTPS: a threaded stdlib WSGI server with HTTP/1.1 keep-alive.

:func:`start` runs it in a background thread for tests and benchmarks; :func:`serve` blocks (the CLI).
With ``tls=True`` a fresh self-signed certificate (issuer "CN=Veeam Software, O=Veeam Software, OU=Veeam Software",
like a new VBO server's, with SANs for localhost, 127.0.0.1, ::1 and the host given) is written to a temporary
directory; its path, :attr:`RunningServer.ca_path`, is the CA bundle a client verifies against.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import io
import ipaddress
import os
import queue
import shutil
import socket
import ssl
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer

from vboplan.api.transport import header_fields
from vboplan.emulator.app import Emulator
from vboplan.emulator.store import Store
from vboplan.emulator.wire import MAX_BODY_BYTES, ConnectionDropped
from vboplan.errors import VboplanError


class ListenError(VboplanError):
    """The server cannot listen where it was asked to (port in use, bad address)."""


class _ServerHandler(ServerHandler):
    """wsgiref's handler, except that :class:`ConnectionDropped` sends nothing at all."""

    dropped = False

    def handle_error(self) -> None:
        if isinstance(sys.exc_info()[1], ConnectionDropped):
            self.dropped = True
            return
        super().handle_error()


class _RequestHeaders:
    """A request's header fields as http.server's ``HTTPMessage`` shows them to wsgiref and to this module: ``get``
    (any case of the name, the first value), ``[name]``, ``items()`` (every field in order, repeats included) and
    ``get_content_type()``. http.server hands the lines to the email package's parser, about a third of the
    emulator's CPU for a small answer; here the fields are those :func:`~vboplan.api.transport.header_fields` reads,
    with http.server's bounds (100 lines of at most 64 KiB)."""

    def __init__(self, fields: list[tuple[str, str]]) -> None:
        self._fields = fields
        self._first: dict[str, str] = {}
        for name, value in fields:
            self._first.setdefault(name.lower(), value)

    def get(self, name: str, default: Any = None) -> Any:
        return self._first.get(name.lower(), default)

    def __getitem__(self, name: str) -> str | None:
        return self._first.get(name.lower())

    def items(self) -> list[tuple[str, str]]:
        return list(self._fields)

    def get_content_type(self) -> str:
        kind = self._first.get("content-type", "").split(";")[0].strip().lower()
        return kind if kind.count("/") == 1 else "text/plain"  # email.message's rule for a missing or bad type


class _RequestHandler(WSGIRequestHandler):
    """One connection: TLS handshake in this thread (never in the accept loop), then requests until it closes."""

    protocol_version = "HTTP/1.1"
    timeout = 60  # an idle or stuck client never holds a thread for long
    wbufsize = 64 * 1024  # one send per response: separate small writes would meet Nagle and delayed ACKs
    server: _Server

    def setup(self) -> None:
        with contextlib.suppress(OSError):
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(self.timeout)
            self.request.do_handshake()
        super().setup()

    def handle(self) -> None:
        self.close_connection = True
        self._handle_one()
        while not self.close_connection:
            self._handle_one()

    def _handle_one(self) -> None:
        try:
            self.raw_requestline = self.rfile.readline(65537)
        except OSError:
            self.close_connection = True
            return
        if not self.raw_requestline:
            self.close_connection = True
            return
        if len(self.raw_requestline) > 65536:
            self.requestline = self.request_version = self.command = ""
            self.send_error(414)
            self.close_connection = True
            self.wfile.flush()
            return
        if not self._parse_request():
            self.wfile.flush()
            return
        environ = self.get_environ()
        if isinstance(self.request, ssl.SSLSocket):
            environ["HTTPS"] = "on"  # wsgiref derives wsgi.url_scheme from it: v5's absolute links, HSTS
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            # HTTP.sys de-chunks request bodies for the real server: the app sees a body with its length.
            try:
                body = self._read_chunked()
            except ValueError as exc:
                self.send_error(413 if "large" in str(exc) else 400, str(exc))
                self.close_connection = True
                self.wfile.flush()
                return
            environ["CONTENT_LENGTH"] = str(len(body))
            environ.pop("HTTP_TRANSFER_ENCODING", None)
        else:
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length < 0 or length > MAX_BODY_BYTES:
                self.send_error(400 if length < 0 else 413)
                self.close_connection = True
                self.wfile.flush()
                return
            # Reading the whole body here keeps the connection usable whatever the app reads of it.
            body = self.rfile.read(length) if length else b""
        handler = _ServerHandler(io.BytesIO(body), self.wfile,  # type: ignore[arg-type]
                                 self.get_stderr(), environ, multithread=True)
        handler.http_version = "1.1"
        handler.request_handler = self  # type: ignore[attr-defined]
        app = self.server.get_app()
        assert app is not None
        handler.run(app)
        if handler.dropped:
            self.close_connection = True
            return
        try:
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    def _parse_request(self) -> bool:
        """http.server's ``parse_request`` for the request line this server takes (``METHOD target HTTP/1.x``),
        with the header section read by :func:`~vboplan.api.transport.header_fields`; anything else goes to ``parse_request``
        itself (HTTP/0.9, other versions, bad syntax: its error answers)."""
        words = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n").split()
        if len(words) != 3 or words[2] not in ("HTTP/1.1", "HTTP/1.0"):
            return bool(self.parse_request())
        self.requestline = " ".join(words)
        self.command, self.path, self.request_version = words
        self.close_connection = words[2] == "HTTP/1.0"
        if self.path.startswith("//"):
            self.path = "/" + self.path.lstrip("/")
        try:
            self.headers = _RequestHeaders(header_fields(self.rfile))  # type: ignore[assignment]
        except http.client.LineTooLong as err:
            self.send_error(431, "Line too long", str(err))
            return False
        except http.client.HTTPException as err:
            self.send_error(431, "Too many headers", str(err))
            return False
        connection = self.headers.get("Connection", "").lower()
        if connection == "close":
            self.close_connection = True
        elif connection == "keep-alive":
            self.close_connection = False
        if self.headers.get("Expect", "").lower() == "100-continue" and words[2] == "HTTP/1.1":
            return bool(self.handle_expect_100())
        return True

    def _read_chunked(self) -> bytes:
        """A ``Transfer-Encoding: chunked`` body (RFC 9112 §7.1), trailers skipped; ValueError when malformed."""
        parts: list[bytes] = []
        size_total = 0
        while True:
            line = self.rfile.readline(1026)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise ValueError("malformed chunk size") from None
            if size < 0:
                raise ValueError("malformed chunk size")
            if size == 0:
                break
            size_total += size
            if size_total > MAX_BODY_BYTES:
                raise ValueError("request body too large")
            parts.append(self.rfile.read(size))
            if self.rfile.readline(3) not in (b"\r\n", b"\n"):
                raise ValueError("malformed chunk")
        while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
            pass  # trailer fields
        return b"".join(parts)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)


class _Workers:
    """Threads that serve connections, kept between them: a connection goes to an idle thread when there is one,
    else to a new thread, so each connection has a thread of its own at once, as with a thread per connection
    (ThreadingMixIn), without a thread started and ended per connection (the accept loop waited for each start,
    ~15% of the emulator's Python time when a client opens a connection every few requests). A thread idle for
    :attr:`IDLE_SECONDS` ends; :meth:`close` ends the idle ones and the others as their connections close."""

    IDLE_SECONDS = 30.0

    def __init__(self, serve: Callable[[Any, Any], None]) -> None:
        self._serve = serve
        self._queue: queue.SimpleQueue[tuple[Any, Any] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # threads that will take the next connection queued (each counted once)
        self._threads = 0
        self._closed = False

    def submit(self, request: Any, client_address: Any) -> None:
        with self._lock:
            start = self._idle == 0
            if start:
                self._threads += 1
            else:
                self._idle -= 1
        self._queue.put((request, client_address))
        if start:
            threading.Thread(target=self._run, name="vbo-emulator-connection", daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=self.IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0:  # no connection was handed to this thread: it ends
                        self._idle -= 1
                        self._threads -= 1
                        return
                item = self._queue.get()  # one was, just now: it is on its way
            if item is None:
                return
            self._serve(*item)
            with self._lock:
                if self._closed:
                    self._threads -= 1
                    return
                self._idle += 1

    def close(self) -> None:
        """End the idle threads now, the busy ones when their connections end."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, 0
            self._threads -= idle
        for _ in range(idle):
            self._queue.put(None)


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], ssl_context: ssl.SSLContext | None, verbose: bool) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.ssl_context = ssl_context
        self.verbose = verbose
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        self._workers = _Workers(self.process_request_thread)
        super().__init__(address, _RequestHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would call socket.getfqdn(), a DNS lookup that can take seconds.
        import socketserver
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])
        self.setup_environ()

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = self.socket.accept()
        if self.ssl_context is not None:
            sock = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        self._workers.submit(request, client_address)  # ThreadingMixIn's process_request_thread, on a kept thread

    def server_close(self) -> None:
        super().server_close()
        self._workers.close()

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """End every open keep-alive connection (so a stopped server really stops answering)."""
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Failed TLS handshakes and clients that hang up are normal here; only -v wants their tracebacks.
        if self.verbose:
            super().handle_error(request, client_address)


@dataclass
class RunningServer:
    """A server running in a background thread; ``stop()`` it or use it as a context manager."""

    url: str
    host: str
    port: int
    ca_path: str | None
    emulator: Emulator
    _server: _Server = field(repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _tmpdir: str | None = field(default=None, repr=False)

    def stop(self) -> None:
        """Stop serving, close open connections and remove the certificate directory."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._server.server_close()
        self._server.close_connections()
        self.emulator.store.close()  # fold the change log into the data file: one tidy file after a stop
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def make_certificate(directory: str | os.PathLike[str], hosts: list[str]) -> tuple[Path, Path]:
    """Write a self-signed certificate for ``hosts`` (plus localhost, 127.0.0.1, ::1) and its key (mode 0600) to
    ``directory``; returns their paths. The certificate is its own CA, so it is also the client's CA bundle."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Veeam Software"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Veeam Software"),
                      x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Veeam Software")])
    alt_names: list[x509.GeneralName] = []
    for host in dict.fromkeys(["localhost", "127.0.0.1", "::1", *hosts]):
        if not host or host in ("0.0.0.0", "::"):
            continue
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt_names.append(x509.DNSName(host))
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True, key_cert_sign=True,
                                         content_commitment=False, data_encipherment=False, key_agreement=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(key, hashes.SHA256()))
    folder = Path(directory)
    cert_path, key_path = folder / "vbo-emulator-ca.pem", folder / "vbo-emulator-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.NoEncryption()))
    return cert_path, key_path


def _bind(emulator: Emulator, host: str, port: int, tls: bool, verbose: bool) -> RunningServer:
    context = None
    tmpdir = None
    if tls:
        tmpdir = tempfile.mkdtemp(prefix="vboplan-emulator-tls-")
        # Listening everywhere: clients may also come by this machine's name.
        names = [host, socket.gethostname()] if host in ("", "0.0.0.0", "::") else [host]
        cert_path, key_path = make_certificate(tmpdir, names)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_path, key_path)
    try:
        server = _Server((host, port), context, verbose)
    except (OSError, OverflowError) as exc:
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ListenError(f"cannot listen on {host}:{port}: {reason}") from None
    server.set_app(emulator)
    bound_port = int(server.server_address[1])
    shown = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    shown = f"[{shown}]" if ":" in shown else shown
    url = f"{'https' if tls else 'http'}://{shown}:{bound_port}"
    return RunningServer(url, host, bound_port, str(cert_path) if tls else None, emulator, server, None, tmpdir)


def _emulator(app: Emulator | Store | Mapping[str, Any] | None, options: dict[str, Any]) -> Emulator:
    if isinstance(app, Emulator):
        return app
    store = app if isinstance(app, Store) else Store.from_data(app)
    return Emulator(store, **options)


def start(app: Emulator | Store | Mapping[str, Any] | None = None, *, host: str = "127.0.0.1", port: int = 0,
          tls: bool = False, verbose: bool = False, **options: Any) -> RunningServer:
    """Serve ``app`` in a background thread and return at once.

    ``app`` is an :class:`Emulator`, or a :class:`Store` / seed mapping / None (empty) wrapped in one built with
    ``options`` (``token_lifetime``, ``latency_ms``...). Port 0 picks a free port; read it from ``.port``/``.url``.
    Raises :class:`ListenError` when the address cannot be used.
    """
    running = _bind(_emulator(app, options), host, port, tls, verbose)
    thread = threading.Thread(target=running._server.serve_forever, kwargs={"poll_interval": 0.1},
                              name=f"vbo-emulator-{running.port}", daemon=True)
    thread.start()
    running._thread = thread
    return running


def serve(app: Emulator | Store | Mapping[str, Any] | None = None, *, host: str = "127.0.0.1", port: int = 4443,
          tls: bool = False, verbose: bool = False, on_ready: Callable[[RunningServer], None] | None = None,
          **options: Any) -> None:
    """Serve ``app`` (as for :func:`start`) in this thread until interrupted; ``on_ready`` is called once
    listening."""
    running = _bind(_emulator(app, options), host, port, tls, verbose)
    try:
        if on_ready is not None:
            on_ready(running)
        running._server.serve_forever(poll_interval=0.2)
    finally:
        running.stop()
