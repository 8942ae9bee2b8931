"""Which server the emulator imitates: a VBO 5 server, a VB365 6/7 server or a VB365 8 server.

A real server serves several API versions at once and drops old ones on upgrade (Veeam's versioning page,
https://helpcenter.veeam.com/docs/vbo365/rest/versioning.html: a VB365 8 server serves v6-v8). A profile names the
versions served, the build ``GET /ServiceInstance`` reports, and whether the token endpoint is throttled
(WebApiThrottle arrived with v6: Ben Young's post on the v6 token endpoint's throttles,
github.com/benyoungnz/benyoung-blog). What differs between API *versions*
(paths, status codes, shapes) lives in :mod:`vboplan.emulator.versions`, not here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServerProfile:
    """One server generation."""

    name: str
    product: str
    versions: tuple[str, ...]
    build: str  # GET /ServiceInstance "version"
    throttled: bool  # the token endpoint is limited per client (v6+ servers; loopback callers are exempt)


SERVER_PROFILES: dict[str, ServerProfile] = {
    "vbo5": ServerProfile("vbo5", "Veeam Backup for Microsoft Office 365 5", ("v5",), "5.0.3.1063", False),
    "vb365-7": ServerProfile("vb365-7", "Veeam Backup for Microsoft 365 7", ("v6", "v7"), "7.0.0.2911", True),
    "vb365-8": ServerProfile("vb365-8", "Veeam Backup for Microsoft 365 8", ("v6", "v7", "v8"), "8.0.2.159", True),
}
DEFAULT_PROFILE = "vb365-8"


def profile_for(api_versions: set[str] | list[str] | tuple[str, ...]) -> str:
    """The profile of the newest server generation that serves the newest of ``api_versions``."""
    newest = max(api_versions, key=lambda v: int(v[1:])) if api_versions else "v8"
    return {"v5": "vbo5", "v6": "vb365-7", "v7": "vb365-7"}.get(newest, DEFAULT_PROFILE)
