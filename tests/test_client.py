"""The API client against the emulator: token reuse and renewal, retries only where they are safe."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from conftest import API_SECRET, SEED

from vboplan.api.client import VboClient
from vboplan.emulator import Emulator, Store
from vboplan.errors import ApiError
from vboplan.project.config import Environment


@pytest.fixture
def emulator() -> Emulator:
    return Emulator(Store.from_data(SEED), versions=["v5", "v6", "v7", "v8"])  # every version vboplan speaks


def _client(emulator: Emulator, version: str = "v8") -> VboClient:
    env = Environment(name="t", server="emulator:t", api_version=version)
    return VboClient(env.connection, "admin", API_SECRET, transport=httpx.WSGITransport(app=emulator),
                     base_url=f"http://vbo.invalid/{version}/", backoff=0.01)


@pytest.fixture
def client(emulator: Emulator) -> Iterator[VboClient]:
    with _client(emulator) as vbo:
        yield vbo


def _count(emulator: Emulator, suffix: str, method: str = "") -> int:
    return sum(n for key, n in emulator.stats.items() if key.endswith(suffix) and key.startswith(method))


def test_one_login_for_many_requests(client: VboClient, emulator: Emulator) -> None:
    for _ in range(5):
        client.get_settings("AuditEmailSettings")
    assert _count(emulator, "/token") == 1


def test_expired_token_mid_run_is_renewed_once(client: VboClient, emulator: Emulator) -> None:
    client.get_settings("AuditEmailSettings")
    emulator.expire_tokens()
    assert client.get_settings("AuditEmailSettings")["smtpServer"] == "old.smtp.local"
    assert _count(emulator, "/token") == 2  # the refresh grant, not a new password login per request
    client.get_settings("VboEmailSettings")
    assert _count(emulator, "/token") == 2


def test_get_is_retried_after_a_server_error(client: VboClient, emulator: Emulator) -> None:
    emulator.fail_next("GET", r"/AuditEmailSettings$", status=500)
    assert client.get_settings("AuditEmailSettings")["port"] == 25
    assert _count(emulator, "/AuditEmailSettings", "GET") == 2


def test_get_is_retried_after_a_dropped_connection(client: VboClient, emulator: Emulator) -> None:
    emulator.drop_next("GET", r"/Organizations$")
    assert len(client.organizations()) == 2


def test_post_is_never_retried(client: VboClient, emulator: Emulator) -> None:
    org = next(o for o in client.organizations() if o["name"] == "contoso.onmicrosoft.com")
    user = client.first_page(f"Organizations/{org['id']}/Users", {"userName": "jane@contoso.com"})[0]
    emulator.fail_next("POST", r"/AuditItems$", status=500)
    with pytest.raises(ApiError, match="HTTP 500"):
        client.add_audit_items(org["id"], [{"type": "User", "user": user}])
    assert _count(emulator, "/AuditItems", "POST") == 1
    emulator.drop_next("POST", r"/AuditItems$")
    with pytest.raises(ApiError):
        client.add_audit_items(org["id"], [{"type": "User", "user": user}])
    assert _count(emulator, "/AuditItems", "POST") == 2
    assert client.audit_items(org["id"]) == []


def test_persistent_errors_are_reported_with_the_servers_message(client: VboClient, emulator: Emulator) -> None:
    with pytest.raises(ApiError, match="HTTP 404"):
        client.audit_items("00000000-0000-0000-0000-000000000000")


@pytest.mark.parametrize("version", ["v5", "v6", "v7", "v8"])
def test_organizations_array_or_page(emulator: Emulator, version: str) -> None:
    with _client(emulator, version) as vbo:
        names = sorted(o["name"] for o in vbo.organizations())
    assert names == ["contoso.onmicrosoft.com", "fabrikam.onmicrosoft.com"]
    assert _count(emulator, "/Organizations") == 1


def test_paging_follows_offsets(client: VboClient, emulator: Emulator) -> None:
    org = next(o for o in client.organizations() if o["name"] == "contoso.onmicrosoft.com")
    users = list(client.iter_pages(f"Organizations/{org['id']}/Users", limit=2, ahead=1))
    assert len(users) == 5 and len({u["id"] for u in users}) == 5
    assert _count(emulator, "/Users") == 3


@pytest.mark.parametrize("version", ["v7", "v8"])
def test_pages_after_the_first_are_fetched_together(emulator: Emulator, version: str) -> None:
    """v7 names the total, so the four remaining pages of one user are asked at once; v8 does not, so they are
    asked ahead of the answers. Each of those four requests waits at a barrier until all four have arrived: sent
    one after another, the first would time out there."""
    barrier = threading.Barrier(4, timeout=20)

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        query = environ.get("QUERY_STRING", "")
        if environ["PATH_INFO"].endswith("/Users") and "offset=0" not in query and "offset=5" not in query \
                and int(dict(p.split("=") for p in query.split("&"))["offset"]) < 5:
            barrier.wait()
        return emulator(environ, start_response)

    env = Environment(name="t", server="emulator:paging", api_version=version)
    with VboClient(env.connection, "admin", API_SECRET, transport=httpx.WSGITransport(app=app),
                   base_url=f"http://vbo.invalid/{version}/") as vbo:
        org = next(o for o in vbo.organizations() if o["name"] == "contoso.onmicrosoft.com")
        users = list(vbo.iter_pages(f"Organizations/{org['id']}/Users", limit=1))
    assert [u["name"] for u in users] == [u["name"] for u in SEED["organizations"][0]["users"]]
    # v7: exactly the five pages; v8: a few more, asked beyond the end before it was known
    assert _count(emulator, "/Users") == 5 if version == "v7" else 5 < _count(emulator, "/Users") <= 5 + 8


def test_pages_read_ahead_past_the_end_are_not_waited_for_but_end_before_the_logout(emulator: Emulator) -> None:
    """v8 names no total, so pages are asked ahead, past the end: the walk returns at the last page without waiting
    for those (held here until it has returned), and closing the session waits for their answers before it logs
    out, so none meets a revoked token (no second login) and the logout is the last request."""
    walked = threading.Event()
    answered: list[tuple[str, str, str]] = []

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        query = dict(p.split("=") for p in environ.get("QUERY_STRING", "").split("&") if "=" in p)
        if environ["PATH_INFO"].endswith("/Users") and int(query.get("offset", 0)) >= 5:
            walked.wait(timeout=5)

        def start(status: str, headers: Any, *rest: Any) -> Any:
            answered.append((environ["REQUEST_METHOD"], environ["PATH_INFO"], status))
            return start_response(status, headers, *rest)

        return emulator(environ, start)

    env = Environment(name="t", server="emulator:ahead", api_version="v8")
    with VboClient(env.connection, "admin", API_SECRET, transport=httpx.WSGITransport(app=app),
                   base_url="http://vbo.invalid/v8/") as vbo:
        org = next(o for o in vbo.organizations() if o["name"] == "contoso.onmicrosoft.com")
        users = list(vbo.iter_pages(f"Organizations/{org['id']}/Users", limit=1))
        ahead = sum(path.endswith("/Users") for _, path, _ in answered) - 5
        walked.set()
    assert (len(users), ahead) == (5, 0)  # returned before any page past the end was answered
    assert answered[-1] == ("POST", "/v8/token/logout", "204 No Content")
    assert sum(path == "/v8/token" for _, path, _ in answered) == 1
    assert all(status == "200 OK" for _, _, status in answered[:-1])
    assert sum(path.endswith("/Users") for _, path, _ in answered) > 5


def test_version_the_server_does_not_serve() -> None:
    vbo8 = Emulator(Store.from_data(SEED), versions=["v6", "v7", "v8"])
    with _client(vbo8, "v5") as vbo, pytest.raises(ApiError, match="does not serve API v5"):
        vbo.get_settings("AuditEmailSettings")
    with _client(vbo8, "v6") as vbo:
        assert vbo.get_settings("AuditEmailSettings")["port"] == 25


def test_audit_items_read_as_they_arrive_keep_retries_and_token_renewal(client: VboClient,
                                                                         emulator: Emulator) -> None:
    # The audit items are read from the answer as it streams in, with the same care as every other request.
    org = next(o for o in client.organizations() if o["name"] == "contoso.onmicrosoft.com")
    user = client.first_page(f"Organizations/{org['id']}/Users", {"userName": "jane@contoso.com"})[0]
    client.add_audit_items(org["id"], [{"type": "User", "user": user}])
    emulator.fail_next("GET", r"/AuditItems$", status=503)
    emulator.drop_next("GET", r"/AuditItems$")
    assert [item["user"]["name"] for item in client.audit_items(org["id"])] == ["jane@contoso.com"]
    assert _count(emulator, "/AuditItems", "GET") == 3  # a 503 and a dropped connection, each tried again
    emulator.expire_tokens()
    assert client.audit_items(org["id"], lambda item: item["id"]) == [item["id"] for item in
                                                                       client.audit_items(org["id"])]
    emulator.fail_next("GET", r"/AuditItems$", status=404, count=5)
    with pytest.raises(ApiError, match="HTTP 404"):
        client.audit_items(org["id"])
