"""A collection that exists only for tests: Veeam's RESTProxy schema served at a path of its own, its objects
keyed by host name and referring to a proxy pool. Everything vboplan and the emulator know of it is this module
and the one registry entry the tests make with ``registered_collection(SPEC)``."""

from __future__ import annotations

from vboplan.kinds.spec import CollectionSpec, Reference, per_version

SPEC = CollectionSpec(
    key="throwaway_hosts", key_field="hostName",
    versions=per_version("ThrowawayHosts", "ThrowawayHosts/{hostId}", "RESTProxy", "RESTProxy", versions=("v8",)),
    references=(Reference("proxyPoolId", "proxy_pools"),),
    summary="hosts of a throwaway collection")
