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


def main() -> None:
    utf8_streams()
    without_httpx_cli()
    try:
        from vboplan.cli.main import main as cli
    except KeyboardInterrupt:
        sys.stderr.write("\nError: interrupted while starting; nothing was done.\n")
        sys.exit(1)
    cli()
