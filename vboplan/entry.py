"""The ``vboplan`` executable: UTF-8 output and a clean exit on Ctrl-C before the command line is even parsed.

Kept free of heavy imports so that Ctrl-C while the rest of vboplan loads still ends with one line, not a
traceback."""

from __future__ import annotations

import io
import sys


def utf8_streams() -> None:
    """Write UTF-8 whatever the console code page: redirected output on Windows defaults to the ANSI code page,
    which cannot encode characters such as '→' that plans print."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            try:
                stream.reconfigure(encoding="utf-8", errors="backslashreplace")
            except (ValueError, OSError):  # pragma: no cover - a stream that cannot change (already written to)
                pass


def without_httpx_cli() -> None:
    """Keep httpx from loading its own command-line client: httpx imports it (rich and pygments, a tenth of a second
    of CPU) whenever rich is installed, which common-expression-language requires. vboplan never runs it."""
    if "httpx" in sys.modules:
        return
    import types

    def cli() -> None:
        raise SystemExit("httpx's command line client is not loaded inside vboplan; run it on its own")

    stub = types.ModuleType("httpx._main")
    stub.main = cli  # type: ignore[attr-defined]
    sys.modules.setdefault("httpx._main", stub)


def exit_now(code: object) -> None:
    """End the process with ``code`` (a SystemExit's) once the command is done, without the interpreter's teardown:
    freeing every module, class and function one by one, and collecting them, is 60-80 ms of CPU after a plan, as
    much as its diff. What a normal exit does that matters happens first: the exit handlers (logging's flush,
    temporary directories, worker processes) and the flush of stdout and stderr. Where another thread that is not a
    daemon still runs (an exit waits for it), or the code is too large for an exit status, the exit is the normal one.

    Nothing else is lost: vboplan closes every file it writes (state, journal, plan files are fsynced before the
    command ends), releases its locks in ``with`` blocks, and its worker processes are joined or ended before."""
    import threading

    status = 0 if code is None else code if isinstance(code, int) else 1
    others = any(t is not threading.main_thread() and not t.daemon and t.is_alive() for t in threading.enumerate())
    if others or not -(2**31) <= status < 2**31:
        raise SystemExit(code)
    import atexit
    import os

    if code is not None and not isinstance(code, int):
        sys.stderr.write(f"{code}\n")  # as the interpreter prints a SystemExit's message
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            status = status or 120  # what the interpreter exits with when stdout cannot be flushed
    os._exit(status)


def main() -> None:
    utf8_streams()
    without_httpx_cli()
    try:
        from vboplan.cli.main import main as cli
    except KeyboardInterrupt:
        sys.stderr.write("\nError: interrupted while starting; nothing was done.\n")
        sys.exit(1)
    try:
        cli()
    except SystemExit as done:
        exit_now(done.code)
    exit_now(0)
