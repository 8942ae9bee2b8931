"""Progress on stderr for runs that take a while: a live line on a terminal, a plain line every ten seconds in CI.

The code that does the work only calls :func:`phase` and :func:`request` (both do nothing unless the CLI opened a
:func:`shown` block), so the library stays unaware of terminals, and nothing here ever writes to stdout.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

# On a terminal the line appears once a run has taken this long; quick runs stay quiet.
LIVE_DELAY = 2.0
LIVE_REFRESH = 0.2
# Without a terminal (CI logs), one line this often; VBOPLAN_PROGRESS_EVERY (seconds) changes it.
PLAIN_EVERY = 10.0

_lock = threading.RLock()
_current: Reporter | None = None
#: The name of the thread that draws the line (a worker process may be forked beside it, see planning/parallel.py).
THREAD_NAME = "vboplan-progress"


class Reporter:
    """Keeps what each environment is doing and shows it on ``stream`` from a background thread."""

    def __init__(self, action: str, stream: TextIO, live: bool, every: float) -> None:
        self.action = action
        self.stream = stream
        self.live = live
        self.every = every
        self.started = time.monotonic()
        self.requests = 0
        self.phases: dict[str, str] = {}
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._drawn = False
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)

    def line(self) -> str:
        elapsed = int(time.monotonic() - self.started)
        doing = "; ".join(f"{env}: {text}" if env else text for env, text in self.phases.items()) or "starting"
        noun = "request" if self.requests == 1 else "requests"
        return f"Still {self.action}... {doing} [{self.requests} {noun}, {elapsed}s elapsed]"

    def _run(self) -> None:
        if self.live:
            if self._stop.wait(LIVE_DELAY):
                return
            while not self._stop.is_set():
                if not self._paused.is_set():
                    self._draw()
                self._stop.wait(LIVE_REFRESH)
        else:
            while not self._stop.wait(self.every):
                if not self._paused.is_set():
                    self._write(self.line() + "\n")

    def _draw(self) -> None:
        width = shutil.get_terminal_size((80, 24)).columns
        text = self.line()
        if len(text) > width - 1:
            text = text[: max(width - 2, 10)] + "…"
        with _lock:
            if self._paused.is_set():
                return
            self._write("\r\x1b[2K" + text)
            self._drawn = True

    def clear(self) -> None:
        with _lock:
            if self.live and self._drawn:
                self._write("\r\x1b[2K")
                self._drawn = False

    def _write(self, text: str) -> None:
        with _lock:
            try:
                self.stream.write(text)
                self.stream.flush()
            except (OSError, ValueError):  # stderr closed under us: progress is not worth failing a run for
                self._stop.set()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.clear()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty() and os.environ.get("TERM") != "dumb" and not os.environ.get("CI")
    except (AttributeError, ValueError):
        return False


@contextmanager
def shown(action: str, enabled: bool = True, stream: TextIO | None = None) -> Iterator[Reporter | None]:
    """Show progress of ``action`` ("planning", "applying") on stderr while the block runs."""
    global _current
    if not enabled:
        yield None
        return
    out = stream or sys.stderr
    try:
        every = float(os.environ.get("VBOPLAN_PROGRESS_EVERY", PLAIN_EVERY))
    except ValueError:
        every = PLAIN_EVERY
    reporter = Reporter(action, out, live=_is_terminal(out), every=max(every, 0.05))
    previous, _current = _current, reporter
    reporter.start()
    try:
        yield reporter
    finally:
        reporter.stop()
        _current = previous


@contextmanager
def suspended() -> Iterator[None]:
    """Hide the live line while the user is asked something (a prompt shares stderr with it)."""
    reporter = _current
    if reporter is None:
        yield
        return
    reporter._paused.set()
    reporter.clear()
    try:
        yield
    finally:
        reporter._paused.clear()


@contextmanager
def still() -> Iterator[None]:
    """No progress line is written while the block runs: a process forked in it is never copied mid-write (with
    the stream's own lock held by the drawing thread, which the copy does not have)."""
    with _lock:
        yield


def forget() -> None:
    """In a forked copy of this process: no progress block is open here (the parent's goes on there)."""
    global _current
    _current = None


def phase(text: str, env: str = "") -> None:
    """What ``env`` is doing now ("reading audit_items", "writing change 3 of 9")."""
    reporter = _current
    if reporter is not None:
        reporter.phases[env] = text


def request() -> None:
    """One more request sent to a server."""
    reporter = _current
    if reporter is not None:
        reporter.requests += 1
