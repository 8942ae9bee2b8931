"""vboplan's client against every server generation the emulator imitates, and against the way real servers refuse:
401 without a body mid-run, 429 on the token endpoint."""

from __future__ import annotations

import logging
import threading

import httpx
import pytest
from conftest import API_SECRET, SEED

from vboplan.api.client import VboClient
from vboplan.emulator import Emulator, Store
from vboplan.errors import ApiError
from vboplan.project import Environment


def _client(app: Emulator, version: str, **options: object) -> VboClient:
    env = Environment(name="t", server="emulator:t", api_version=version)
    return VboClient(env, "admin", API_SECRET, transport=httpx.WSGITransport(app=app),
                     base_url=f"http://vbo.invalid/{version}/", backoff=0.01, **options)  # type: ignore[arg-type]


def _tokens(app: Emulator) -> int:
    return sum(n for key, n in app.stats.items() if key.endswith("/token"))


@pytest.mark.parametrize("profile, version", [("vbo5", "v5"), ("vb365-7", "v6"), ("vb365-7", "v7"),
                                              ("vb365-8", "v6"), ("vb365-8", "v7"), ("vb365-8", "v8")])
def test_a_whole_session_against_each_server_generation(profile: str, version: str) -> None:
    app = Emulator(Store.from_data(SEED), profile=profile)
    with _client(app, version) as vbo:
        vbo.put_settings("AuditEmailSettings", {"smtpServer": "smtp.contoso.com", "port": 25})
        assert vbo.get_settings("AuditEmailSettings")["port"] == 25
        org = next(o for o in vbo.organizations() if o["name"] == "contoso.onmicrosoft.com")
        users = list(vbo.iter_pages(f"Organizations/{org['id']}/Users", limit=2))
        assert len(users) == len(SEED["organizations"][0]["users"])
        vbo.add_audit_items(org["id"], [{"type": "User", "user": {"id": users[0]["id"]}}])
        [item] = vbo.audit_items(org["id"])
        vbo.remove_audit_items(org["id"], [item["id"]])
        assert vbo.audit_items(org["id"]) == []
    assert _tokens(app) == 1  # one login for the whole run


def test_a_401_without_a_body_mid_run_renews_the_token_once() -> None:
    # Real servers answer a rejected token with an empty body (emulator README: "401").
    app = Emulator(Store.from_data(SEED))
    with _client(app, "v8") as vbo:
        vbo.get_settings("AuditEmailSettings")
        app.expire_tokens()
        assert vbo.get_settings("AuditEmailSettings") is not None
        assert _tokens(app) == 2  # the login, then one refresh


def test_threads_starting_together_share_one_login() -> None:
    app = Emulator(Store.from_data(SEED))
    vbo = _client(app, "v8")
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def read() -> None:
        barrier.wait()
        try:
            vbo.get_settings("AuditEmailSettings")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    vbo.close()
    assert errors == [] and _tokens(app) == 1


def test_a_throttled_login_waits_as_the_server_says(caplog: pytest.LogCaptureFixture) -> None:
    # WebApiThrottle (1 login a second per client): another login just took this second's slot.
    app = Emulator(Store.from_data(SEED), throttle=True)
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://vbo.invalid") as other:
        assert other.post("/v8/token", data={"grant_type": "password", "username": "admin",
                                              "password": API_SECRET}).status_code == 200
    with caplog.at_level(logging.WARNING, logger="vboplan.api"), _client(app, "v8") as vbo:
        assert vbo.get_settings("AuditEmailSettings") is not None
    assert _tokens(app) == 3  # the other login, one refused attempt, one after waiting
    assert "throttling logins; waiting 1s as it asks" in caplog.text


def test_a_throttled_login_gives_up_within_its_bound_without_hammering() -> None:
    app = Emulator(Store.from_data(SEED), throttle=True)
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://vbo.invalid") as other:
        other.post("/v8/token", data={"grant_type": "password", "username": "admin", "password": API_SECRET})
    with _client(app, "v8", throttle_wait=0.5) as vbo, pytest.raises(ApiError, match="throttling logins"):
        vbo.login()
    assert _tokens(app) == 2
