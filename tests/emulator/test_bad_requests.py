"""Whatever a client sends, the emulator answers with a documented error: never a 500, never a hang."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from vboplan.emulator import Emulator
from vboplan.emulator.app import ROUTES

from .helpers import BASE_URL, LENIENT, VERSIONS, Api, check_response, wsgi_client

BODIES: list[bytes] = [
    b"", b"{", b"[", b"null", b'"text"', b"123", b"true", b'{"a":', b"\x00\xff\xfe", b"[" * 50_000,
    b'{"port": 1e400}', b'{"itemIds": null}', b'{"itemIds": [null, 1, {}]}', b'[{"type": null}]',
    b'[{"type": "User", "user": {"id": null}}]', b'[{"type": "Group", "group": []}]', b'{"remove": 5}',
    b'{"remove": {"itemIds": "x"}}', b'{"sendTest": null}', b'{"enableNotification": {"$gt": ""}}',
    b'{"code": 1, "state": []}', b'{"authenticationServiceKind": "Carrier Pigeon"}', b'{"grant_type": 5}',
]
QUERIES = ["", "limit=abc&offset=x", "offset=-9999999999999", "setId=not-a-guid", "displayName=%00%ff[*?",
           "locationFilter=Moon", "extendedView=maybe", "includePersonalSites=2", "itemIds=,,,", "msid=zz"]


def _concrete(template: str, org_id: str, user_id: str) -> list[str]:
    """The template with real ids, unknown ids and junk in its parameters."""
    fills = [{"organizationId": org_id, "userId": user_id, "groupId": user_id, "siteId": user_id, "teamId": user_id},
             {"organizationId": "3f2504e0-4f89-11d3-9a0c-0305e82c3301", "userId": "x", "groupId": "y",
              "siteId": "3f2504e0-4f89-11d3-9a0c-0305e82c3301", "teamId": "z"},
             {"organizationId": "junk%20id", "userId": "%2e%2e", "groupId": "a" * 3000, "siteId": "%00",
              "teamId": "b" * 3000}]
    # Any other id (a collection's: proxyId, poolId...) is filled like a site id: a GUID, an unknown GUID, junk.
    return [re.sub(r"\{(\w+)\}", lambda m, f=fill: f.get(m.group(1), f["siteId"]), template) for fill in fills]


def send_malformed(emulator: Emulator, version: str, every: bool = False) -> Iterator[tuple[str, str, bytes, int]]:
    """Every route of ``version`` by every method (and PATCH), its ids real, unknown and junk, with malformed
    bodies and queries; yields (method, path, body, status). With real ids every body is sent; with unknown and
    junk ids four of them, a different four for each route and method, so that across the routes each body
    reaches each kind of id (``every``: all bodies with every kind of id, as benchmarks/emulator_bad_requests.py
    sends them). Each answer is checked against Veeam's document as every client of these tests checks it; the
    requests go to the emulator's WSGI transport without a client's cookie, redirect and URL-merging work around
    each of the thousands of them."""
    with wsgi_client(emulator) as client:
        api = Api(client, version).login()
        org_id = api.org_id()
        user_id = api.user(org_id, "jane@contoso.com")["id"]
    transport = httpx.WSGITransport(app=emulator)
    headers = {"Authorization": f"Bearer {api.token}", "Content-Type": "application/json", LENIENT: "1"}
    urls: dict[str, httpx.URL] = {}
    turn = 0
    for route in ROUTES[version]:
        for fill, path in enumerate(_concrete(route.template, org_id, user_id)):
            for method in sorted({*route.handlers, "PATCH"}):
                turn += 1
                chosen = range(len(BODIES)) if every or fill == 0 else \
                    [(turn * 4 + k) % len(BODIES) for k in range(4)]
                for index in chosen:
                    body = BODIES[index]
                    query = QUERIES[index % len(QUERIES)]
                    url = f"{BASE_URL}/{version}{path}?{query}"
                    if url not in urls:  # parsed once for the methods sent there
                        urls[url] = httpx.URL(url)
                    request = httpx.Request(method, urls[url], content=body, headers=headers)
                    response = transport.handle_request(request)
                    response.request = request
                    check_response(response)
                    yield method, path, body, response.status_code
                    assert response.status_code < 500, (method, path, body[:40], response.text)


@pytest.mark.parametrize("version", VERSIONS)
def test_malformed_requests_never_500(emulator: Emulator, version: str) -> None:
    sent = sum(1 for _ in send_malformed(emulator, version))
    assert sent > 1000


@pytest.mark.parametrize("headers", [
    {"Content-Type": "application/x-www-form-urlencoded"}, {"Content-Type": "text/plain"}, {"Content-Type": ""},
    {"Content-Type": "application/json; charset=utf-16"}, {"Content-Length": "12"},
])
def test_token_endpoint_with_odd_bodies(client: httpx.Client, headers: dict[str, str]) -> None:
    for body in (b"grant_type=password&username=%ff", b"\xff\xfe{}", b"{", b"", b"grant_type"):
        response = client.post("/v8/token", content=body, headers={**headers, LENIENT: "1"})
        assert response.status_code == 400 and response.json()["error"], (headers, body)


def test_a_handler_bug_still_answers_500_with_a_body(emulator: Emulator, client: httpx.Client,
                                                      monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    def broken(call):  # type: ignore[no-untyped-def]
        raise KeyError("boom")

    api = Api(client, "v8").login()
    route = next(r for r in ROUTES["v8"] if r.template == "/ServiceInstance")
    monkeypatch.setitem(route.handlers, "GET", broken)
    response = api.get("/ServiceInstance")
    assert response.status_code == 500 and "KeyError" in response.json()["message"]
    assert "boom" in capsys.readouterr().err  # the traceback is logged, not swallowed
    monkeypatch.undo()
    assert api.get("/ServiceInstance").status_code == 200  # the server goes on answering with the real handler


def test_oversized_bodies_are_refused(client: httpx.Client) -> None:
    response = client.put("/v8/AuditEmailSettings", headers={"Content-Length": str(64 * 1024 * 1024), LENIENT: "1"},
                          content=b"{}")
    assert response.status_code == 413
