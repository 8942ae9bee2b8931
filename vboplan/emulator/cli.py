"""``vboplan emulator serve`` and ``vboplan emulator generate`` (also ``python -m vboplan.emulator.cli``)."""

from __future__ import annotations

import ctypes
import gc
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import click

from vboplan.emulator.app import Emulator
from vboplan.emulator.profiles import DEFAULT_PROFILE, SERVER_PROFILES
from vboplan.emulator.server import RunningServer, serve
from vboplan.emulator.store import Store, _json_text, _yaml_text
from vboplan.emulator.synth import generate_tenant
from vboplan.emulator.versions import PROFILES
from vboplan.errors import VboplanError
from vboplan.state.files import atomic_write


@click.group("emulator")
def emulator() -> None:
    """Run an emulated Veeam Backup for Microsoft 365 REST server (API v5-v8)."""


@emulator.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=4443, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: any free port; the chosen one is printed).")
@click.option("--data", "data", type=click.Path(dir_okay=False, path_type=Path),
              help="YAML or JSON seed file; the server writes its changes back to it.")
@click.option("--seed", "seed", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Seed to start from when --data does not exist yet (alone: serve it in memory, never written).")
@click.option("--tls", is_flag=True, help="Serve HTTPS with a fresh self-signed certificate (its path is printed).")
@click.option("--latency-ms", default=0.0, type=click.FloatRange(min=0), help="Delay added to every request.")
@click.option("--fail-rate", default=0.0, type=click.FloatRange(0, 1), help="Fraction of requests answered 500.")
@click.option("--drop-rate", default=0.0, type=click.FloatRange(0, 1),
              help="Fraction of requests whose connection is closed without an answer.")
@click.option("--token-lifetime", default=3600, show_default=True, type=click.IntRange(min=1),
              help="Access token lifetime in seconds.")
@click.option("--throttle/--no-throttle", default=None,
              help="Limit the token endpoint to 1/s, 5/min, 1500/h per client, loopback callers too (429); "
                   "default: as the profile's server, which throttles v6+ logins from other hosts only.")
@click.option("--random-seed", type=int, default=None, help="Seed for --fail-rate/--drop-rate (reproducible runs).")
@click.option("--profile", type=click.Choice(sorted(SERVER_PROFILES)), default=DEFAULT_PROFILE, show_default=True,
              help="Server generation to imitate: vbo5 (API v5), vb365-7 (v6, v7), vb365-8 (v6-v8).")
@click.option("--versions", default=None,
              help="API versions to serve, comma-separated, instead of the profile's (e.g. v5,v6,v7,v8).")
@click.option("-v", "--verbose", is_flag=True, help="Log every request to stderr.")
@click.option("--request-log", "request_log", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Append one JSON line per answered request to FILE: method, path, status and the monotonic "
                   "seconds of its arrival and answer (benchmarks compute round-trip floors from it).")
def serve_command(host: str, port: int, data: Path | None, seed: Path | None, tls: bool, latency_ms: float,
                  fail_rate: float, drop_rate: float, token_lifetime: int, throttle: bool | None,
                  random_seed: int | None, profile: str, versions: str | None, verbose: bool,
                  request_log: Path | None) -> None:
    """Serve the emulated REST API until Ctrl-C or SIGTERM."""
    try:
        served = ([v.strip().lower() for v in versions.split(",") if v.strip()] if versions is not None
                  else list(SERVER_PROFILES[profile].versions))
        unknown = sorted(set(served) - set(PROFILES))
        if unknown or not served:
            raise click.BadParameter(f"unknown version {unknown[0] if unknown else '(none)'}; "
                                     f"choose from {', '.join(PROFILES)}", param_hint="--versions")
        store = Store.open(data, seed) if data else (Store.read(seed) if seed else Store.from_data(None))
        app = Emulator(store, token_lifetime=token_lifetime, latency_ms=latency_ms, fail_rate=fail_rate,
                       drop_rate=drop_rate, throttle=throttle, seed=random_seed, versions=served, profile=profile)
        # The loaded tenant lives as long as the process: the collector need not walk its objects again at every
        # full collection (100,000 users made the first request wait 0.2 s and cost a cold walk 0.25 s of CPU).
        gc.collect()
        gc.freeze()
        _keep_freed_memory()
        if request_log is not None:
            app.answered = _request_logger(request_log)

        def ready(running: RunningServer) -> None:
            where = (f"; data in {data}" if data else f"; in memory from {seed}" if seed else
                     "; empty and in memory, log in as admin/admin")
            ca = f"; CA bundle: {running.ca_path}" if running.ca_path else ""
            click.echo(f"vboplan emulator listening on {running.url} ({app.server.product}, API "
                       f"{', '.join(app.versions)}){where}{ca}", err=True)

        def stop(signum: int, frame: FrameType | None) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, stop)
        serve(app, host=host, port=port, tls=tls, verbose=verbose, on_ready=ready)
    except KeyboardInterrupt:
        click.echo("vboplan emulator stopped", err=True)
    except VboplanError as exc:
        raise click.ClickException(str(exc)) from None


def _keep_freed_memory() -> None:
    """Where the C library is glibc: buffers of a few megabytes (a page of 10,000 users is 8 MB, written and sent
    per request) come from one heap shared by the request threads and stay there when freed, for the next page,
    instead of being mapped fresh from the kernel for each request and given back after it. A cold walk of 100,000
    users took 42,700 page faults of the server and 0.29-0.41 s of its CPU; with this 7,800-11,700 and 0.19-0.29 s
    (benchmarks/names.py's setup, load 5-7)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return
    m_trim_threshold, m_mmap_threshold, m_arena_max = -1, -3, -8  # glibc's malloc.h
    mallopt(m_arena_max, 1)
    mallopt(m_mmap_threshold, 64 * 1024 * 1024)
    mallopt(m_trim_threshold, 256 * 1024 * 1024)


def _request_logger(path: Path) -> Any:
    """A callback writing each answered request as one JSON line to ``path`` (appended, flushed per line)."""
    import json
    import threading

    log = path.open("a", encoding="utf-8")
    lock = threading.Lock()

    def answered(method: str, where: str, status: int, started: float, finished: float) -> None:
        line = json.dumps({"method": method, "path": where, "status": status, "started": started,
                           "finished": finished})
        with lock:
            log.write(line + "\n")
            log.flush()

    return answered


@emulator.command("generate")
@click.option("--organizations", required=True, type=click.IntRange(min=1), help="How many organizations.")
@click.option("--users", required=True, type=click.IntRange(min=0), help="How many users, spread over them.")
@click.option("--groups", required=True, type=click.IntRange(min=0), help="How many groups, spread over them.")
@click.option("--seed", default=0, show_default=True, type=int, help="Same seed, same data.")
@click.option("--duplicate-display-names", default=0, type=click.IntRange(min=0),
              help="How many users repeat another user's display name.")
@click.option("--username", default="admin", show_default=True, help="User name of the API credentials.")
@click.option("--password", default="admin", show_default=True, help="Password of the API credentials.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Seed file to write (.json for JSON, else YAML).")
def generate_command(organizations: int, users: int, groups: int, seed: int, duplicate_display_names: int,
                     username: str, password: str, out: Path) -> None:
    """Write a synthetic seed file for `serve --data`."""
    data = {"credentials": [{"username": username, "password": password}],
            **generate_tenant(organizations, users, groups, seed, duplicate_display_names=duplicate_display_names)}
    # The layout the server writes back, so its first save of a generated tenant keeps the file's size.
    text = _json_text(data) if out.suffix.lower() == ".json" else _yaml_text(data)
    try:
        atomic_write(out, text)
    except OSError as exc:
        raise click.ClickException(f"cannot write {out}: {exc.strerror or exc}") from None
    click.echo(f"wrote {out}: {organizations} organizations, {users} users, {groups} groups", err=True)


if __name__ == "__main__":
    emulator(prog_name="vboplan emulator")
