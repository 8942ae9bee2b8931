"""The named collections the emulator serves from the registry's specs: proxies (v6-v8, adopted: no create or
delete) and proxy pools (v8): server-assigned ids, v8 pages, 400 for an unknown reference, 409 for deleting an
object in use, passwords never answered, changes persisted through the change log. Every request and answer here
is validated against Veeam's document of its version (helpers.py)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from vboplan.emulator import Emulator, Store
from vboplan.kinds.registry import registered_collection
from vboplan.kinds.spec import CollectionSpec, Reference, per_version

from .helpers import Api, seed_data, wsgi_client

PROXIES = [{"hostName": "proxy01.contoso.local", "port": 9193, "description": "EU"},
           {"hostName": "proxy02.contoso.local", "port": 9193, "description": ""}]


def _seeded() -> dict[str, object]:
    return {**seed_data(), "proxies": PROXIES,
            "proxy_pools": {"EU pool": {"description": "EU proxies", "proxies": ["proxy01.contoso.local"]}}}


@pytest.fixture
def store() -> Store:
    return Store.from_data(_seeded())


def _listed(api: Api, path: str) -> list[dict[str, object]]:
    body = api.get(path).json()
    return body["results"] if api.version == "v8" else body


@pytest.mark.parametrize("version", ["v6", "v7", "v8"])
def test_proxies_are_listed_and_edited_never_created_or_removed(client: httpx.Client, version: str) -> None:
    api = Api(client, version).login()
    proxies = _listed(api, "/Proxies")
    assert [p["hostName"] for p in proxies] == ["proxy01.contoso.local", "proxy02.contoso.local"]
    proxy_id = proxies[0]["id"]
    changed = api.put(f"/Proxies/{proxy_id}", json={"hostName": "proxy01.contoso.local", "description": "EU 2",
                                                    "internetProxySettings": {"hostName": "squid",
                                                                              "userPassword": "seeded-Secret"}})
    assert changed.status_code == (204 if version == "v8" else 200)
    shown = api.get(f"/Proxies/{proxy_id}").json()
    assert shown["description"] == "EU 2" and shown["internetProxySettings"] == {"hostName": "squid"}
    assert shown["port"] == 9193  # a field the PUT left out keeps its value
    assert api.delete(f"/Proxies/{proxy_id}", lenient=True).status_code == 405  # no DELETE in any document


def test_v8_lists_are_pages_and_pool_references_are_checked(client: httpx.Client) -> None:
    api = Api(client, "v8").login()
    page = api.get("/ProxyPools", params={"limit": 1, "offset": 0}).json()
    assert page["offset"] == 0 and page["limit"] == 1 and [p["name"] for p in page["results"]] == ["EU pool"]
    proxies = {p["hostName"]: p["id"] for p in _listed(api, "/Proxies")}
    unknown = api.post("/ProxyPools", json={"name": "Bad", "description": "", "proxyIds": [
        {"proxyId": "3f2504e0-4f89-11d3-9a0c-0305e82c3301"}]})
    assert unknown.status_code == 400 and "3f2504e0-4f89-11d3-9a0c-0305e82c3301" in unknown.json()["message"]
    created = api.post("/ProxyPools", json={"name": "US pool", "description": "US", "proxyIds": [
        {"proxyId": proxies["proxy02.contoso.local"]}]})
    assert created.status_code == 201
    pool_id = created.json()["id"]
    assert pool_id not in {p["id"] for p in page["results"]}
    twice = api.post("/ProxyPools", json={"name": "us POOL", "description": "", "proxyIds": []})
    assert twice.status_code == 400
    members = api.get(f"/ProxyPools/{pool_id}/proxies").json()["results"]
    assert [m["hostName"] for m in members] == ["proxy02.contoso.local"]
    assert api.put(f"/ProxyPools/{pool_id}", json={"name": "US pool", "description": "US 2", "proxyIds": []}
                   ).status_code == 204
    assert api.get(f"/ProxyPools/{pool_id}/proxies").json()["results"] == []
    assert api.delete(f"/ProxyPools/{pool_id}").status_code == 204
    assert api.get(f"/ProxyPools/{pool_id}").status_code == 404


@pytest.mark.parametrize("version", ["v6", "v7"])
def test_pools_are_not_served_before_v8(client: httpx.Client, version: str) -> None:
    assert Api(client, version).login().get("/ProxyPools", lenient=True).status_code == 404


def test_deleting_an_object_in_use_is_a_conflict(client: httpx.Client, emulator: Emulator) -> None:
    """A throwaway collection (RESTProxy's schema at a path of its own) refers to pools: the pool it names
    cannot be deleted (409) until it stops naming it."""
    spec = CollectionSpec("throwaway_hosts", "hostName",
                          per_version("ThrowawayHosts", "ThrowawayHosts/{hostId}", "RESTProxy", "RESTProxy",
                                      versions=("v8",)),
                          references=(Reference("proxyPoolId", "proxy_pools"),))
    with registered_collection(spec):
        api = Api(client, "v8").login()
        pool_id = _listed(api, "/ProxyPools")[0]["id"]
        # Not in Veeam's document, so not through the validating client: a path only this test serves.
        plain = httpx.Client(transport=httpx.WSGITransport(app=emulator), base_url="http://vbo.lab.local:4443",
                             headers={"Authorization": f"Bearer {api.token}"})
        made = plain.post("/v8/ThrowawayHosts", json={"hostName": "h1", "proxyPoolId": pool_id})
        assert made.status_code == 201, made.text
        refused = api.delete(f"/ProxyPools/{pool_id}")
        assert refused.status_code == 409 and refused.json()["errorCode"] == "OperationConflict"
        assert "in use" in refused.json()["message"]
        assert plain.delete(f"/v8/ThrowawayHosts/{made.json()['id']}").status_code == 204
        assert api.delete(f"/ProxyPools/{pool_id}").status_code == 204


def test_collections_persist_through_the_change_log(tmp_path: Path) -> None:
    path = tmp_path / "vbo.json"
    first = Emulator(Store.open(path, seed=_seeded()))
    with wsgi_client(first) as client:
        api = Api(client, "v8").login()
        assert api.post("/ProxyPools", json={"name": "New", "description": "", "proxyIds": []}).status_code == 201
    again = Store.open(path)
    assert sorted(p["name"] for p in again.collections["proxy_pools"]) == ["EU pool", "New"]
    assert "userPassword" not in path.read_text()


def test_a_seed_naming_an_unknown_proxy_is_refused() -> None:
    from vboplan.emulator.store import StoreError

    with pytest.raises(StoreError, match="no backup_proxies named 'nope'"):
        Store.from_data({"proxy_pools": {"P": {"description": "", "proxies": ["nope"]}}})
