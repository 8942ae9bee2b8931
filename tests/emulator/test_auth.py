"""POST /vN/token, bearer tokens, refresh, logout and throttling, as a client of the real server meets them."""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime
from email.utils import parsedate_to_datetime

import httpx
import pytest

from vboplan.emulator import Emulator

from .helpers import ADMIN, LENIENT, VERSIONS, Api, FakeClock, wsgi_client


def _token(client: httpx.Client, version: str = "v8", **fields: str) -> httpx.Response:
    return client.post(f"/{version}/token", data=fields)


def test_password_grant_answers_an_oauth_token_response(client: httpx.Client, version: str,
                                                        clock: FakeClock) -> None:
    response = _token(client, version, grant_type="password", **ADMIN)
    assert response.status_code == 200
    body = response.json()
    if version == "v5":
        # A real v5 server: no userName, 3599, .NET "r" dates like "Wed, 16 Dec 2020 05:50:09 GMT" (README: Tokens).
        assert list(body) == ["access_token", "token_type", "expires_in", "refresh_token", ".issued", ".expires"]
        issued, expires = (parsedate_to_datetime(body[key]) for key in (".issued", ".expires"))
        assert re.fullmatch(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT", body[".expires"])
    else:
        assert list(body) == ["access_token", "token_type", "expires_in", "refresh_token", "userName", ".issued",
                              ".expires"]
        assert body["userName"] == ADMIN["username"]
        issued = datetime.fromisoformat(body[".issued"].replace("Z", "+00:00"))
        expires = datetime.fromisoformat(body[".expires"].replace("Z", "+00:00"))
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body[".expires"])
    assert body["token_type"] == "bearer" and body["expires_in"] == 3599
    assert issued.timestamp() == int(clock.now) and (expires - issued).total_seconds() == 3600
    assert response.headers["cache-control"] == "no-cache"


def test_tokens_are_opaque_not_jwt(client: httpx.Client) -> None:
    token = _token(client, grant_type="password", **ADMIN).json()["access_token"]
    assert token.count(".") != 2 and token.startswith("AQAAA")
    with pytest.raises(ValueError):  # a JWT header would decode to JSON
        json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))


def test_json_body_and_junk_fields_are_accepted(client: httpx.Client) -> None:
    as_json = client.post("/v7/token", json={"grant_type": "password", **ADMIN, "disable_antiforgery_token": True})
    assert as_json.status_code == 200
    junk = client.post("/v5/token", headers={LENIENT: "1"},
                       data={"grant_type": "password", **ADMIN, "client_id": "", "refresh_token": "",
                             "assertion": "", "rememberMe": " "})
    assert junk.status_code == 200


def test_user_names_compare_case_insensitively(client: httpx.Client) -> None:
    response = _token(client, grant_type="password", username=ADMIN["username"].upper(),
                      password=ADMIN["password"])
    assert response.status_code == 200 and response.json()["userName"] == ADMIN["username"]


@pytest.mark.parametrize("fields, error", [
    ({"grant_type": "password", "username": ADMIN["username"], "password": "wrong"}, "invalid_grant"),
    ({"grant_type": "password", "username": "nobody", "password": ADMIN["password"]}, "invalid_grant"),
    ({"grant_type": "password"}, "invalid_grant"),
    ({"grant_type": "refresh_token", "refresh_token": "not-a-token"}, "invalid_grant"),
    ({"username": ADMIN["username"], "password": ADMIN["password"]}, "unsupported_grant_type"),
    ({"grant_type": "client_credentials"}, "unsupported_grant_type"),
])
def test_bad_grants_are_400_oauth_errors(client: httpx.Client, version: str, fields: dict[str, str],
                                         error: str) -> None:
    response = client.post(f"/{version}/token", data=fields, headers={LENIENT: "1"})
    assert response.status_code == 400
    assert response.json()["error"] == error and response.json()["error_description"]


def test_refresh_rotates_both_tokens(client: httpx.Client, version: str) -> None:
    api = Api(client, version).login()
    old_access, old_refresh = api.token, api.refresh_token
    response = _token(client, version, grant_type="refresh_token", refresh_token=old_refresh)
    assert response.status_code == 200
    new = response.json()
    assert new["access_token"] != old_access and new["refresh_token"] != old_refresh
    # The used refresh token is gone; the old access token lives until it expires (OWIN tickets).
    again = _token(client, version, grant_type="refresh_token", refresh_token=old_refresh)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert api.get("/ServiceInstance").status_code == 200
    api.token = new["access_token"]
    assert api.get("/ServiceInstance").status_code == 200


def test_expired_token_is_401_and_refresh_still_works(make_emulator, clock: FakeClock) -> None:
    with wsgi_client(make_emulator(token_lifetime=60)) as client:
        api = Api(client, "v8").login()
        assert api.get("/AuditEmailSettings").status_code == 200
        clock.advance(59)
        assert api.get("/AuditEmailSettings").status_code == 200
        clock.advance(1)
        expired = api.get("/AuditEmailSettings")
        assert expired.status_code == 401
        assert expired.content == b"" and expired.headers["www-authenticate"] == "Bearer"
        refreshed = _token(client, grant_type="refresh_token", refresh_token=api.refresh_token)
        assert refreshed.status_code == 200 and refreshed.json()["expires_in"] == 59
        api.token = refreshed.json()["access_token"]
        assert api.get("/AuditEmailSettings").status_code == 200


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Bearer nope", "Basic dmJvOnZibw==",
                                           "bearer  AQAAAAtruncated"])
def test_requests_without_a_valid_token_are_401(client: httpx.Client, version: str,
                                                authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    for path in ("/AuditEmailSettings", "/Organizations", "/ServiceInstance"):
        response = client.get(f"/{version}{path}", headers=headers)
        assert response.status_code == 401, path
        assert response.content == b"" and "content-type" not in response.headers


def test_bearer_scheme_is_case_insensitive_and_tokens_serve_every_version(client: httpx.Client) -> None:
    token = Api(client, "v7").login().token
    for version in VERSIONS:
        assert client.get(f"/{version}/ServiceInstance", headers={"Authorization": f"bearer {token}"}
                          ).status_code == 200


def test_version_probe_401_where_served_404_elsewhere(client: httpx.Client) -> None:
    # Clients discover versions with an anonymous GET /{v}/ServiceInstance (NOTES §1).
    for version in VERSIONS:
        assert client.get(f"/{version}/ServiceInstance").status_code == 401
    for version in ("v4", "v9", "v10"):
        assert client.get(f"/{version}/ServiceInstance").status_code == 404
        assert client.post(f"/{version}/token", data={"grant_type": "password", **ADMIN}).status_code == 404


def test_service_instance(api: Api, store) -> None:
    body = api.get("/ServiceInstance").json()
    assert body["installationId"] == store.installation_id and re.fullmatch(r"\d+\.\d+\.\d+\.\d+", body["version"])


@pytest.mark.parametrize("version, status", [("v7", 200), ("v8", 204)])
def test_logout_revokes_the_token(client: httpx.Client, version: str, status: int) -> None:
    api = Api(client, version).login()
    response = api.post("/token/logout")
    assert response.status_code == status and response.content == b""
    assert api.get("/AuditEmailSettings").status_code == 401
    refresh = _token(client, version, grant_type="refresh_token", refresh_token=api.refresh_token)
    assert refresh.status_code == 400  # its refresh token went with it
    assert api.post("/token/logout").status_code == 401


@pytest.mark.parametrize("version", ["v5", "v6"])
def test_no_logout_before_v7(client: httpx.Client, version: str) -> None:
    api = Api(client, version).login()
    assert api.post("/token/logout").status_code == 404
    assert api.get("/AuditEmailSettings").status_code == 200


def test_throttle_limits_the_token_endpoint(make_emulator, clock: FakeClock) -> None:
    with wsgi_client(make_emulator(throttle=True)) as client:
        login = {"grant_type": "password", **ADMIN}
        assert _token(client, **login).status_code == 200
        second = _token(client, **login)
        # (httpx's WSGI transport drops reason phrases; test_server checks "429 Quota Exceeded" over the wire)
        assert second.status_code == 429 and second.content == b""
        assert second.headers["retry-after"] == "1"
        for _ in range(4):  # one a second passes (a refusal per second is not counted per minute) until 5 a minute
            clock.advance(1.0)
            assert _token(client, **login).status_code == 200
            assert _token(client, **login).status_code == 429
        clock.advance(1.0)
        blocked = _token(client, **login)
        assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) == 55
        token = Api(client, "v8")
        token.token = _token_after(client, clock, 60)
        # Other endpoints are never throttled.
        assert all(token.get("/ServiceInstance").status_code == 200 for _ in range(20))


def _token_after(client: httpx.Client, clock: FakeClock, seconds: float) -> str:
    clock.advance(seconds)
    response = _token(client, grant_type="password", **ADMIN)
    assert response.status_code == 200
    return response.json()["access_token"]


def test_without_throttle_logins_are_unlimited(client: httpx.Client) -> None:
    assert all(_token(client, grant_type="password", **ADMIN).status_code == 200 for _ in range(10))


def test_credentials_default_to_admin_admin_when_the_data_has_none() -> None:
    from vboplan.emulator import Store
    with wsgi_client(Emulator(Store.from_data({}))) as client:
        assert _token(client, grant_type="password", username="admin", password="admin").status_code == 200
    with wsgi_client(Emulator(Store.from_data({"credentials": []}))) as client:
        assert _token(client, grant_type="password", username="admin", password="admin").status_code == 400


def test_authorization_comes_before_input_checks(client: httpx.Client) -> None:
    assert client.get("/v8/Organizations/not-a-guid/Users", params={"limit": "x"}).status_code == 401
    assert client.put("/v8/AuditEmailSettings", content=b"{", headers={LENIENT: "1"}).status_code == 401
    assert client.delete("/v8/AuditEmailSettings").status_code == 405  # routing comes first of all


def test_expire_tokens_helper(emulator: Emulator, client: httpx.Client) -> None:
    api = Api(client, "v8").login()
    emulator.expire_tokens()
    assert api.get("/ServiceInstance").status_code == 401
    assert _token(client, grant_type="refresh_token", refresh_token=api.refresh_token).status_code == 200
