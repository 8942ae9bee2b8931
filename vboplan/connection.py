"""Which server an environment means, and a client for it: a VBO server over HTTPS, or the embedded emulator of
``server: emulator:<name>`` served in process (the API layer only ever sees a transport and a base URL)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from vboplan.api.client import VboClient
from vboplan.project.config import Environment, Project

if TYPE_CHECKING:
    from vboplan.emulator import Emulator

__all__ = ["connect", "embedded_emulator"]

log = logging.getLogger("vboplan")
_emulators: dict[Path, Emulator] = {}
_emulators_lock = threading.Lock()


def embedded_emulator(project: Project, name: str) -> Emulator:
    """The in-process emulator behind ``server: emulator:<name>``: data in ``.vboplan/emulator/<name>.json``,
    seeded from ``emulator/<name>.yaml`` (or ``.json``) in the project when that exists. It imitates the server
    generation of the newest API version the project's environments declare for it (build, throttling), and serves
    every API version v5-v8, so that whatever ``api_version`` an environment declares, or changes to, works."""
    from vboplan.emulator import Emulator, Store
    from vboplan.emulator.profiles import profile_for
    from vboplan.emulator.versions import PROFILES

    path = project.work_path("emulator", f"{name}.json")
    with _emulators_lock:
        if path not in _emulators:
            seed = next((p for p in (project.root / "emulator" / f"{name}.{ext}" for ext in ("yaml", "yml", "json"))
                         if p.exists()), None)
            path.parent.mkdir(parents=True, exist_ok=True)
            declared = {env.api_version for env in project.environments.values() if env.emulator_name == name}
            _emulators[path] = Emulator(Store.open(path, seed=seed), profile=profile_for(declared),
                                        versions=PROFILES)
        return _emulators[path]


def connect(project: Project, env: Environment, *, max_in_flight: int | None = None) -> VboClient:
    """A client for ``env``, credentials resolved from the environment, not yet logged in. At most
    ``max_in_flight`` (default: the environment's ``max_in_flight``, 8) requests are in flight to its server."""
    env.check_usable()
    max_in_flight = max_in_flight or env.max_in_flight
    username = env.resolve_username()
    password = env.resolve_password()
    if env.emulator_name:
        import httpx  # only for the in-process emulator's WSGI transport; servers are reached without it

        app = embedded_emulator(project, env.emulator_name)
        # The host name is never resolved: requests go to the WSGI app in this process.
        return VboClient(env.connection, username, password, transport=httpx.WSGITransport(app=app),
                         base_url=f"http://{env.emulator_name}.emulator.invalid/{env.api_version}/",
                         max_in_flight=max_in_flight)
    if env.server.startswith("http://"):
        log.warning("WARNING: environment '%s' uses plain http (%s): the API password and settings cross the "
                    "network unencrypted", env.name, env.server)
    elif env.verify is False:
        log.warning("WARNING: TLS certificate verification is OFF for environment '%s' (%s): "
                    "anyone on the network path could read the API password", env.name, env.server)
    return VboClient(env.connection, username, password, max_in_flight=max_in_flight)
