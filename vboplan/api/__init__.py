"""The VBO REST API layer: :func:`connect` returns a ready client for an environment."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import httpx

from ..project import Environment, Project
from .client import VboClient

__all__ = ["VboClient", "connect", "embedded_emulator"]

log = logging.getLogger("vboplan")
_emulators: dict[Path, object] = {}
_emulators_lock = threading.Lock()


def embedded_emulator(project: Project, name: str):  # type: ignore[no-untyped-def]
    """The in-process emulator behind ``server: emulator:<name>``: data in ``.vboplan/emulator/<name>.json``,
    seeded from ``emulator/<name>.yaml`` (or ``.json``) in the project when that exists."""
    from ..emulator import Emulator, Store

    path = project.work_dir / "emulator" / f"{name}.json"
    with _emulators_lock:
        if path not in _emulators:
            seed = next((p for p in (project.root / "emulator" / f"{name}.{ext}" for ext in ("yaml", "yml", "json"))
                         if p.exists()), None)
            path.parent.mkdir(parents=True, exist_ok=True)
            _emulators[path] = Emulator(Store.open(path, seed=seed))
        return _emulators[path]


def connect(project: Project, env: Environment, *, max_in_flight: int = 8) -> VboClient:
    """A client for ``env``, credentials resolved from the environment, not yet logged in."""
    username = env.resolve_username()
    password = env.resolve_password()
    transport: httpx.BaseTransport | None = None
    if env.emulator_name:
        transport = httpx.WSGITransport(app=embedded_emulator(project, env.emulator_name))
    elif env.server.startswith("http://"):
        log.warning("WARNING: environment '%s' uses plain http (%s): the API password and settings cross the "
                    "network unencrypted", env.name, env.server)
    elif env.verify is False:
        log.warning("WARNING: TLS certificate verification is OFF for environment '%s' (%s): "
                    "anyone on the network path could read the API password", env.name, env.server)
    return VboClient(env, username, password, transport=transport, max_in_flight=max_in_flight)
