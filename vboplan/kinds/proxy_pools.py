"""``proxy_pools``: groups of backup proxies (API v8, ``/ProxyPools``), by name, their proxies by host name. A pool's
answer leaves its proxies out; they are listed at ``/ProxyPools/{poolId}/proxies``."""

from __future__ import annotations

from vboplan.kinds.spec import CollectionSpec, Reference, per_version

SPEC = CollectionSpec(
    key="proxy_pools", key_field="name",
    versions=per_version("ProxyPools", "ProxyPools/{poolId}", "RESTProxyPoolFromClient", "RESTProxyPool",
                         versions=("v8",)),
    references=(Reference("proxyIds", "backup_proxies", name="proxies", each="proxyId",
                          read="ProxyPools/{poolId}/proxies"),),
    summary="backup proxy pools, by name")
