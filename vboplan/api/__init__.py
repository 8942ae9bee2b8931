"""The VBO REST API layer: a client that talks to a server through the transport it is given, the per-version
traits table and the catalog of settings objects. Which server an environment means (a URL, or the embedded
emulator of ``server: emulator:<name>``) is decided above this layer, in :mod:`vboplan.connection`."""

from __future__ import annotations

from vboplan.api.client import VboClient

__all__ = ["VboClient"]
