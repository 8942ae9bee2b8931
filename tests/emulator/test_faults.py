"""Fault injection and request counting: what a client's retry logic and a benchmark are tested with."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import httpx
import pytest

from vboplan.emulator import DROP, ConnectionDropped, Emulator

from .helpers import ADMIN, Api, wsgi_client


def test_fail_rate_one_fails_everything_but_the_token_endpoint(make_emulator) -> None:
    with wsgi_client(make_emulator(fail_rate=1.0)) as client:
        api = Api(client, "v8").login()  # logging in still works
        for path in ("/AuditEmailSettings", "/Organizations", "/ServiceInstance"):
            response = api.get(path)
            assert response.status_code == 500
            # unset errorCode and stackTrace are left out, never null (README: "Unset fields")
            assert response.json() == {"message": "An error has occurred. (emulated server fault)"}
        assert Api(client, "v6").login().get("/AuditEmailSettings").json() == {
            "message": "An error has occurred. (emulated server fault)"}


def test_fail_rate_is_a_fraction_and_reproducible(make_emulator) -> None:
    def statuses(seed: int) -> list[int]:
        with wsgi_client(make_emulator(fail_rate=0.3, seed=seed)) as client:
            api = Api(client, "v8").login()
            return [api.get("/ServiceInstance").status_code for _ in range(200)]

    first = statuses(7)
    assert first == statuses(7)
    assert 30 <= first.count(500) <= 90 and set(first) == {200, 500}


def test_drop_raises_a_transport_error_in_process(make_emulator) -> None:
    with wsgi_client(make_emulator(drop_rate=1.0)) as client:
        api = Api(client, "v8").login()
        with pytest.raises(httpx.TransportError) as caught:
            api.get("/AuditEmailSettings")
        assert isinstance(caught.value, ConnectionDropped)
        assert isinstance(caught.value, httpx.RemoteProtocolError)


def test_fail_next_fails_the_chosen_request(emulator: Emulator, client: httpx.Client) -> None:
    api = Api(client, "v8").login()
    emulator.fail_next("PUT", r"/AuditEmailSettings$", status=503, after=1)
    assert api.get("/AuditEmailSettings").status_code == 200  # other methods are not counted
    assert api.put("/AuditEmailSettings", json={"port": 1}).status_code == 204
    failed = api.put("/AuditEmailSettings", json={"port": 2})
    assert failed.status_code == 503 and failed.json()["message"]
    assert api.put("/AuditEmailSettings", json={"port": 3}).status_code == 204  # only once
    assert api.get("/AuditEmailSettings").json()["port"] == 3


def test_fail_next_can_fail_logins_and_drop(emulator: Emulator, client: httpx.Client) -> None:
    emulator.fail_next("POST", r"/token$", status=500, count=2)
    for _ in range(2):
        assert client.post("/v8/token", data={"grant_type": "password", **ADMIN}).status_code == 500
    api = Api(client, "v8").login()
    emulator.drop_next("*", r"/organizations")
    with pytest.raises(httpx.RemoteProtocolError):
        api.get("/Organizations")
    assert api.get("/Organizations").status_code == 200


def test_fail_on_hook(make_emulator) -> None:
    seen: list[tuple[str, str]] = []

    def hook(method: str, path: str) -> int | None:
        seen.append((method, path))
        if path.endswith("/ServiceInstance"):
            return 418
        return DROP if path.endswith("/Organizations") else None

    with wsgi_client(make_emulator(fail_on=hook)) as client:
        api = Api(client, "v7").login()
        assert api.get("/ServiceInstance").status_code == 418
        with pytest.raises(httpx.TransportError):
            api.get("/Organizations")
        assert api.get("/AuditEmailSettings").status_code == 200
    assert ("POST", "/v7/token") in seen and ("GET", "/v7/AuditEmailSettings") in seen


def test_failed_requests_change_nothing(emulator: Emulator, client: httpx.Client) -> None:
    api = Api(client, "v8").login()
    emulator.fail_next("PUT", "AuditEmailSettings")
    assert api.put("/AuditEmailSettings", json={"port": 99}).status_code == 500
    assert "port" not in api.get("/AuditEmailSettings").json()


def test_latency_is_slept_outside_the_lock(make_emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    emulator = make_emulator(latency_ms=200)
    with wsgi_client(emulator) as client:
        token = Api(client, "v8").login().token
    # Each request's latency waits until all six are in it at once: only possible if no lock is held meanwhile
    # (under a lock the first would wait alone and the barrier break, answering 500).
    barrier = threading.Barrier(6, timeout=20)
    monkeypatch.setattr("vboplan.emulator.app.time", SimpleNamespace(sleep=lambda seconds: barrier.wait(),
                                                                      monotonic=time.monotonic, time=time.time))
    statuses: list[int] = []

    def call() -> None:
        with wsgi_client(emulator) as client:
            statuses.append(client.get("/v8/AuditEmailSettings", headers={"Authorization": f"Bearer {token}"}
                                       ).status_code)

    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 6
    assert not barrier.broken


def test_stats_count_requests_by_route_template(emulator: Emulator, client: httpx.Client) -> None:
    api = Api(client, "v8").login()
    org_id = api.org_id()
    api.get(f"/Organizations/{org_id}/Users")
    api.get(f"/organizations/{org_id}/users", params={"offset": 30})
    api.put("/AuditEmailSettings", json={"port": 1})
    client.get("/v9/whatever")
    stats = emulator.stats
    assert stats["GET /v8/Organizations/{organizationId}/Users"] == 2
    assert stats["PUT /v8/AuditEmailSettings"] == 1 and stats["POST /v8/token"] == 1
    assert stats["GET /v8/Organizations"] == 1 and stats["GET /v9/whatever"] == 1
    assert stats.total == 6 and stats.total() == 6
    stats.reset()
    assert stats.total == 0 and not stats


def test_stats_are_thread_safe(emulator: Emulator) -> None:
    def hammer() -> None:
        with wsgi_client(emulator) as client:
            for _ in range(100):
                client.get("/v8/ServiceInstance")

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert emulator.stats["GET /v8/ServiceInstance"] == 800 and emulator.stats.total == 800


def test_concurrent_writers_lose_nothing(emulator: Emulator, store) -> None:
    with wsgi_client(emulator) as client:
        api = Api(client, "v8").login()
        org_id = api.org_id("fabrikam.onmicrosoft.com")
        users = api.get(f"/Organizations/{org_id}/Users", params={"limit": 40}).json()["results"]

    def add(chunk: list[dict]) -> None:
        with wsgi_client(emulator) as client:
            worker = Api(client, "v8")
            worker.token = api.token
            for user in chunk:
                assert worker.post(f"/Organizations/{org_id}/AuditItems",
                                   json=[{"type": "User", "user": {"id": user["id"]}}]).status_code == 204

    threads = [threading.Thread(target=add, args=(users[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(store.organizations[1].audit_items) == 40


def test_a_raising_fail_hook_is_a_500_not_a_dead_connection(make_emulator, capsys) -> None:
    def hook(method: str, path: str) -> int | None:
        raise RuntimeError("hook bug")

    with wsgi_client(make_emulator(fail_on=hook)) as client:
        response = client.get("/v8/ServiceInstance")
    assert response.status_code == 500 and "hook bug" in response.json()["message"]
    assert "RuntimeError" in capsys.readouterr().err
