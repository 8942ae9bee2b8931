"""The emulator over real HTTP behind a gate: chosen requests wait there until the test lets them through, so a test
can act (break a lock, send a signal) at an exact moment of a run in another process, without timing anything."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


class _Threaded(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class Gate:
    """``hold(name, test)``: the first request for which ``test(method, path)`` is true waits at ``name`` until
    ``release(name)``; ``arrived(name)`` waits until it is there. ``seen`` lists every (method, path) received."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self._rules: dict[str, tuple[Callable[[str, str], bool], threading.Event, threading.Event]] = {}
        self._lock = threading.Lock()
        self.url = ""

    def hold(self, name: str, test: Callable[[str, str], bool]) -> None:
        self._rules[name] = (test, threading.Event(), threading.Event())

    def arrived(self, name: str, timeout: float = 120) -> bool:
        return self._rules[name][1].wait(timeout)

    def release(self, name: str) -> None:
        self._rules[name][2].set()

    def release_all(self) -> None:
        for _, _, gone in self._rules.values():
            gone.set()

    def _wait_if_held(self, method: str, path: str) -> None:
        with self._lock:
            self.seen.append((method, path))
            rule = next(((arrived, gone) for test, arrived, gone in self._rules.values()
                         if not arrived.is_set() and test(method, path)), None)
            if rule is not None:
                rule[0].set()
        if rule is not None:
            rule[1].wait(120)


@contextmanager
def gated_emulator(seed: dict[str, Any]) -> Iterator[Gate]:
    from vboplan.emulator import Emulator, Store

    emulator = Emulator(Store.from_data(seed))
    gate = Gate()

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        gate._wait_if_held(environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""))
        return emulator(environ, start_response)

    server = make_server("127.0.0.1", 0, app, server_class=_Threaded, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    gate.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield gate
    finally:
        gate.release_all()
        server.shutdown()
        server.server_close()
