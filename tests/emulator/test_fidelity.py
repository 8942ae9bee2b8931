"""What real clients of VBO servers notice, one test per difference, each citing its evidence (the emulator's
README, "What real clients notice", has the decisions and sources in full). Every response here is still validated
against Veeam's full documents by the clients of helpers.py."""

from __future__ import annotations

import json
import re
import socket
import ssl
from email.utils import parsedate_to_datetime

import httpx
import pytest

from vboplan.emulator import Emulator, Store, start
from vboplan.emulator.wire import JSON_CONTENT_TYPE

from .helpers import ADMIN, LENIENT, VERSIONS, Api, FakeClock, seed_data, validated_client, wsgi_client


def _token(client: httpx.Client, version: str = "v8", **fields: str) -> httpx.Response:
    return client.post(f"/{version}/token", data=fields)


# -- unset fields ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("version", ["v7", "v8"])
def test_errors_leave_unset_error_code_and_stack_trace_out(client: httpx.Client, version: str) -> None:
    # veeam-365 (generated from Veeam's documents) cannot parse "errorCode": null; Veeam's v8 reference leaves unset
    # properties out; a real v5 capture omits unset fields (README: "Unset fields").
    api = Api(client, version).login()
    conflict = api.get(f"/Organizations/{api.org_id()}/Users", params={"limit": 0})
    assert conflict.status_code == 400
    body = conflict.json()
    assert "stackTrace" not in body and None not in body.values()
    assert body.get("errorCode") == ("ParameterValidationFailure" if version == "v8" else None)


def test_settings_leave_unset_fields_out_consistently(client: httpx.Client) -> None:
    # Before: tenantId null on AuditEmailSettings (nullable) but no tenantId on VboEmailSettings (not nullable).
    api = Api(client, "v8").login()
    for path in ("/AuditEmailSettings", "/VboEmailSettings"):
        body = api.get(path).json()
        assert None not in body.values() and "tenantId" not in body and "clientId" not in body, path


# -- 401 ---------------------------------------------------------------------------------------------------------

def test_401_has_an_empty_body(client: httpx.Client, version: str) -> None:
    # veeam-365 0.4.1 VeeamClient.call: "VB365 answers a rejected token with an empty body" (it re-logs in on it).
    response = client.get(f"/{version}/AuditEmailSettings", headers={"Authorization": "Bearer expired"})
    assert response.status_code == 401 and response.content == b""
    assert response.headers["content-length"] == "0" and response.headers["www-authenticate"] == "Bearer"


# -- organizations, users, groups, audit items -------------------------------------------------------------------

@pytest.mark.parametrize("version", ["v6", "v7", "v8"])
def test_organization_shape_of_a_real_server(client: httpx.Client, version: str) -> None:
    # the_auditor (Rust, strict serde) models GET /v7/Organizations of a real server: both connection settings,
    # _actions, and _links self/jobs/groups/users/sites/teams/usedRepositories/rbacRoles (no auditItems).
    api = Api(client, version).login()
    org_id = api.org_id()
    org = api.get(f"/Organizations/{org_id}").json()
    assert org["exchangeOnlineSettings"]["useApplicationOnlyAuth"] is True
    assert org["sharePointOnlineSettings"]["officeOrganizationName"] == "contoso"
    assert "password" not in org["exchangeOnlineSettings"] and "applicationSecret" not in org["exchangeOnlineSettings"]
    assert org["_actions"] == {}
    assert set(org["_links"]) == {"self", "jobs", "groups", "users", "sites", "teams", "usedRepositories",
                                  "rbacRoles"}
    jobs = org["_links"]["jobs"]["href"]
    assert jobs == (f"/v8/Jobs?organizationId={org_id}" if version == "v8" else f"/{version}/Organizations/{org_id}/Jobs")
    assert isinstance(org["isTeamsChatsOnline"], bool)


def test_extended_view_adds_the_backup_state(client: httpx.Client, version: str) -> None:
    # The v8 reference: with extendedView=false the controller leaves isBackedup/firstBackuptime/lastBackuptime out;
    # the default is true in v6's document, false in v7/v8's.
    api = Api(client, version).login()
    org_id = api.org_id()
    default = api.get(f"/Organizations/{org_id}").json()
    assert ("isBackedup" in default) == (version in ("v5", "v6"))
    assert api.get(f"/Organizations/{org_id}", params={"extendedView": "true"}).json()["isBackedup"] is False
    assert "isBackedup" not in api.get(f"/Organizations/{org_id}", params={"extendedView": "false"}).json()
    listed = api.get("/Organizations", params={"extendedView": "true"}).json()
    assert all(o["isBackedup"] is False for o in (listed["results"] if version == "v8" else listed))


def test_v8_organizations_page_has_a_set_id(client: httpx.Client) -> None:
    # PageOfRestOrganizationComposed has setId (v8 document; NOTES §5 page shape).
    api = Api(client, "v8").login()
    first, again = (api.get("/Organizations", params={"limit": 1}).json() for _ in range(2))
    assert first["setId"] == again["setId"] and len(first["setId"]) == 36


def test_users_link_their_onedrives(client: httpx.Client, version: str) -> None:
    # the_auditor's model of a real v7 Users page: _links self, organization, onedrives.
    api = Api(client, version).login()
    org_id = api.org_id()
    jane = api.user(org_id, "jane@contoso.com")
    assert jane["_links"]["onedrives"]["href"].endswith(f"/Organizations/{org_id}/Users/{jane['id']}/onedrives")


def test_groups_have_an_owner_and_a_site(client: httpx.Client, version: str) -> None:
    # RESTGroup's managedBy and site (v6-v8 documents); a real server fills them for Microsoft 365 groups.
    api = Api(client, version).login()
    hr = api.group(api.org_id(), "HR Department")
    assert hr["managedBy"] == "Jane Doe" and hr["site"] == "https://contoso.sharepoint.com/sites/hr"


def test_principals_inside_audit_items_are_the_documents_user_and_group(client: httpx.Client, version: str) -> None:
    # RESTAuditUserOrGroup's user/group are RESTUser/RESTGroup in v6-v8's documents; a real v5 server adds _links;
    # the_auditor (models/audit.rs, strict serde) requires locationType of a v7 user, type and locationType of a
    # group (README: "Audit items").
    api = Api(client, version).login()
    org_id = api.org_id()
    harry, finance = api.user(org_id, "harry@contoso.com"), api.group(org_id, "Finance")
    api.post(f"/Organizations/{org_id}/AuditItems", json=[{"type": "User", "user": {"id": harry["id"]}},
                                                          {"type": "Group", "group": {"id": finance["id"]}}])
    user_item, group_item = api.get(f"/Organizations/{org_id}/AuditItems").json()
    assert user_item["user"] == harry == api.get(f"/Organizations/{org_id}/Users/{harry['id']}").json()
    assert group_item["group"] == finance
    assert {"id", "displayName", "name", "locationType", "_links"} <= set(user_item["user"])
    assert {"id", "displayName", "name", "type", "locationType"} <= set(group_item["group"])
    assert (user_item["user"]["locationType"], group_item["group"]["type"]) == ("Hybrid", "Security")
    assert user_item["user"]["_links"]["self"]["href"].endswith(f"/Organizations/{org_id}/Users/{harry['id']}")
    assert ("office" in harry) == (version in ("v7", "v8"))  # v7 added office and onPremisesSid
    assert ("assignedLicenses" in harry) == (version == "v8")
    assert user_item["_links"]["user"]["href"] == user_item["user"]["_links"]["self"]["href"]


@pytest.mark.parametrize("version", ["v7", "v8"])
def test_user_and_group_ids_are_qualified_by_the_organization_from_v7(client: httpx.Client, version: str) -> None:
    # Veeam's v7 resource changes: user ids include the organization; the_auditor (audit/mod.rs) splits audit
    # items' user and group ids on ":" and shows segment 3 (README: "Ids").
    api, old = Api(client, version).login(), Api(client, "v6").login()
    org_id = api.org_id()
    jane, hr = api.user(org_id, "jane@contoso.com"), api.group(org_id, "HR Department")
    jane_v6 = old.user(org_id, "jane@contoso.com")
    assert jane["id"].split(":") == [org_id, "User", jane_v6["id"][36:], jane_v6["id"][:36]]
    assert hr["id"].split(":")[:2] == [org_id, "Group"] and len(hr["id"].split(":")) == 4
    assert api.get(f"/Organizations/{org_id}/Users/{jane['id']}").json()["id"] == jane["id"]
    # An id of another version's form, or of another organization, names nobody.
    assert api.get(f"/Organizations/{org_id}/Users/{jane_v6['id']}").status_code == 404
    assert old.get(f"/Organizations/{org_id}/Users/{jane['id']}").status_code == 404
    fabrikam = api.org_id("fabrikam.onmicrosoft.com")
    assert api.get(f"/Organizations/{fabrikam}/Users/{jane['id']}").status_code == 404
    stale = api.post(f"/Organizations/{org_id}/AuditItems", json=[{"type": "User", "user": {"id": jane_v6["id"]}}])
    assert stale.status_code == 404 and api.get(f"/Organizations/{org_id}/AuditItems").json() == []
    added = api.post(f"/Organizations/{org_id}/AuditItems", json=[{"type": "User", "user": {"id": jane["id"]}},
                                                                  {"type": "Group", "group": hr}])
    assert added.status_code in (201, 204)
    items = api.get(f"/Organizations/{org_id}/AuditItems").json()
    shown = [(item.get("user") or item.get("group"))["id"].split(":")[3] for item in items]
    assert shown == [jane["id"].split(":")[3], hr["id"].split(":")[3]]
    # The same audit item read through v6 carries the v6 id: one principal, each version's spelling.
    assert [(i.get("user") or i.get("group"))["id"] for i in old.get(f"/Organizations/{org_id}/AuditItems").json()
            ][0] == jane_v6["id"]


def test_sites_and_teams_by_id(client: httpx.Client, version: str) -> None:
    # GET .../Sites/{siteId} and .../Teams/{teamId} are in every document (v6-v8); they answered 404.
    api = Api(client, version).login()
    org_id = api.org_id("fabrikam.onmicrosoft.com")
    for kind in ("Sites", "Teams"):
        [entry] = api.get(f"/Organizations/{org_id}/{kind}").json()["results"]
        assert api.get(f"/Organizations/{org_id}/{kind}/{entry['id']}").json() == entry
    assert api.get(f"/Organizations/{org_id}/Teams/3f2504e0-4f89-11d3-9a0c-0305e82c3301").status_code == 404


# -- per-organization settings ----------------------------------------------------------------------------------

@pytest.mark.parametrize("version", ["v6", "v7", "v8"])
def test_an_organizations_first_write_copies_the_server_wide_retention_exclusions(client: httpx.Client,
                                                                                  version: str) -> None:
    # Add-VBOOrganizationRetentionExclusion: an organization's policy "has higher priority than the global
    # retention policy", a whole object of its own; Remove- / DELETE drops it (README: "Per-organization settings").
    api = Api(client, version).login()
    org = f"/Organizations/{api.org_id()}/RetentionExclusion"
    api.put("/GlobalRetentionExclusionSettings", json={"contacts": True, "calendar": False})
    assert api.get(org).json() == {"contacts": True, "calendar": False}  # no object of its own: the server's
    api.put(org, json={"calendar": True})  # its own now: a copy of what it reported, with the change
    api.put("/GlobalRetentionExclusionSettings", json={"contacts": False, "calendar": False})
    assert api.get(org).json() == {"contacts": True, "calendar": True}  # no longer follows the server-wide ones
    api.put(org, json={"contacts": False})
    assert api.get(org).json() == {"contacts": False, "calendar": True}
    assert api.delete(org).status_code == 204
    assert api.get(org).json() == {"contacts": False, "calendar": False}  # the server-wide ones again
    api.put("/GlobalRetentionExclusionSettings", json={"calendar": True})
    assert api.get(org).json() == {"contacts": False, "calendar": True}


# -- tokens ------------------------------------------------------------------------------------------------------

def test_v5_token_answer_is_a_real_v5_servers(client: httpx.Client, clock: FakeClock) -> None:
    # A real v5 capture: no userName, expires_in 3599, dates like "Wed, 16 Dec 2020 05:50:09 GMT".
    body = _token(client, "v5", grant_type="password", **ADMIN).json()
    assert "userName" not in body and body["expires_in"] == 3599
    assert parsedate_to_datetime(body[".issued"]).timestamp() == int(clock.now)
    assert re.fullmatch(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT", body[".expires"])


def test_token_auth_code(client: httpx.Client) -> None:
    # POST /token/AuthCode (v7, v8 documents: RESTAuthCode); it answered 404.
    api = Api(client, "v7").login()
    codes = {api.post("/token/AuthCode").json()["authCode"] for _ in range(2)}
    assert len(codes) == 2
    assert api.post("/token/AuthCode", token=False).status_code == 401
    assert Api(client, "v6").login().post("/token/AuthCode").status_code == 404  # not in v6


@pytest.mark.parametrize("version, fields, status, error", [
    ("v8", {"grant_type": "operator", "username": "operator@contoso.com", "password": "x"}, 400, "invalid_grant"),
    ("v7", {"grant_type": "operator", "assertion": "eyJ0eXAi"}, 400, "invalid_grant"),
    ("v8", {"grant_type": "operator"}, 400, "invalid_request"),
    ("v7", {"grant_type": "integration", "integration_token": "t"}, 400, "invalid_grant"),
    ("v8", {"grant_type": "integration"}, 400, "unsupported_grant_type"),  # gone from v8's enum
    ("v5", {"grant_type": "operator"}, 400, "unsupported_grant_type"),
])
def test_grant_types_follow_each_versions_document(client: httpx.Client, version: str, fields: dict[str, str],
                                                  status: int, error: str) -> None:
    # NOTES §2: grant_type enums per version; operator sign-in needs a restore operator the emulator does not have,
    # so it is refused as credentials (invalid_grant), not as an unknown grant type.
    response = client.post(f"/{version}/token", data=fields, headers={LENIENT: "1"})  # some are undocumented
    assert response.status_code == status and response.json()["error"] == error


# -- throttling --------------------------------------------------------------------------------------------------

def _remote_client(app: Emulator, address: str) -> httpx.Client:
    return validated_client(httpx.WSGITransport(app=app, remote_addr=address), base_url="http://vbo.lab.local:4443")


def test_token_throttling_lets_about_one_a_second_and_five_a_minute_through(make_emulator, clock) -> None:
    # Ben Young's v6 post: WebApiThrottle, 1/s, 5/min, 1500/h per client, loopback exempt; 429 "Quota Exceeded".
    app = make_emulator(throttle=None)  # as the profile's server: other hosts only
    with _remote_client(app, "10.1.2.3") as client:
        passed = 0
        for _ in range(80):  # hammer for 8 seconds, 10 attempts a second
            passed += _token(client, grant_type="password", **ADMIN).status_code == 200
            clock.advance(0.1)
        assert passed == 5
        clock.advance(1.0)  # a new second: refused by the minute now
        refused = _token(client, grant_type="password", **ADMIN)
        assert refused.status_code == 429 and refused.content == b""
        assert 50 <= int(refused.headers["retry-after"]) <= 52
    with _remote_client(app, "10.9.9.9") as other:  # per client address
        assert _token(other, grant_type="password", **ADMIN).status_code == 200
    with _remote_client(app, "127.0.0.1") as local:  # loopback is exempt
        assert all(_token(local, grant_type="password", **ADMIN).status_code == 200 for _ in range(10))


def test_429_is_webapithrottles_answer_over_the_wire(clock: FakeClock) -> None:
    # WebApiThrottle's OWIN ThrottlingMiddleware (the library Ben Young found in the v6 server): the reason phrase
    # "API calls quota exceeded! maximum admitted {limit} per {period}.", Retry-After from RetryAfterFrom (1 for the
    # per-second limit, else the period less the seconds since its window started), and no body (README).
    with start(Store.from_data(seed_data()), throttle=True, clock=clock) as server:
        with validated_client(base_url=server.url) as client:
            login = {"grant_type": "password", **ADMIN}
            assert _token(client, **login).status_code == 200
            refused = _token(client, **login)
            assert (refused.status_code, refused.reason_phrase) == (
                429, "API calls quota exceeded! maximum admitted 1 per Second.")
            assert refused.content == b"" and refused.headers["retry-after"] == "1"
            assert refused.headers["content-length"] == "0" and "content-type" not in refused.headers
            for _ in range(4):
                clock.advance(1.0)
                assert _token(client, **login).status_code == 200
            clock.advance(1.6)  # 5.6 s into the minute: Convert.ToInt32 rounds to 6
            by_minute = _token(client, **login)
            assert (by_minute.status_code, by_minute.reason_phrase) == (
                429, "API calls quota exceeded! maximum admitted 5 per Minute.")
            assert by_minute.headers["retry-after"] == "54" and by_minute.content == b""


def test_a_vbo5_server_does_not_throttle(clock: FakeClock) -> None:
    # Ben Young noticed the 429 after upgrading to v6: the throttle came with v6.
    app = Emulator(Store.from_data(seed_data()), profile="vbo5", clock=clock)
    with _remote_client(app, "10.1.2.3") as client:
        assert all(_token(client, "v5", grant_type="password", **ADMIN).status_code == 200 for _ in range(10))


# -- profiles ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("profile, served, build", [
    ("vbo5", ["v5"], "5.0.3.1063"),
    ("vb365-7", ["v6", "v7"], "7.0.0.2911"),
    ("vb365-8", ["v6", "v7", "v8"], "8.0.2.159"),
])
def test_profiles_serve_their_generations_versions(profile: str, served: list[str], build: str) -> None:
    # NOTES §1: a server serves several versions and drops old ones (a VB365 8 server serves v6-v8); clients probe
    # GET /{v}/ServiceInstance anonymously: 401 where served, 404 where not.
    app = Emulator(Store.from_data(seed_data()), profile=profile)
    with wsgi_client(app) as client:
        assert [v for v in VERSIONS if client.get(f"/{v}/ServiceInstance").status_code == 401] == served
        api = Api(client, served[-1]).login()
        assert api.get("/ServiceInstance").json()["version"] == build


def test_the_default_server_is_a_vb365_8_server() -> None:
    assert Emulator(Store.from_data(seed_data())).versions == ("v6", "v7", "v8")


# -- HTTP --------------------------------------------------------------------------------------------------------

def test_server_and_security_headers(client: httpx.Client) -> None:
    # The real server is self-hosted on HTTP.sys (NOTES §1): Server: Microsoft-HTTPAPI/2.0, not WSGIServer.
    for response in (client.get("/v8/ServiceInstance"), _token(client, grant_type="password", **ADMIN)):
        assert response.headers["server"] == "Microsoft-HTTPAPI/2.0"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "SAMEORIGIN"
        assert "strict-transport-security" not in response.headers  # plain http here


def test_hsts_and_server_header_over_https() -> None:
    with start(Store.from_data(seed_data()), tls=True) as server:
        with httpx.Client(base_url=server.url, verify=ssl.create_default_context(cafile=server.ca_path)) as client:
            response = client.get("/v8/ServiceInstance")
    assert response.headers["server"] == "Microsoft-HTTPAPI/2.0"
    assert response.headers["strict-transport-security"] == "max-age=31536000"


def test_chunked_request_bodies_are_accepted_over_the_wire() -> None:
    # HTTP.sys de-chunks request bodies; the emulator answered 411 with an HTML page.
    with start(Store.from_data(seed_data())) as server, validated_client(base_url=server.url) as client:
        api = Api(client, "v8").login()
        body = json.dumps({"smtpServer": "smtp.chunked.example", "port": 2525}).encode()
        chunks = (body[i:i + 7] for i in range(0, len(body), 7))  # a generator: httpx sends it chunked
        with httpx.Client(base_url=server.url) as plain:  # the validating hooks would read the stream first
            response = plain.put("/v8/AuditEmailSettings", content=chunks, headers={
                "Authorization": f"Bearer {api.token}", "Content-Type": "application/json"})
        assert response.status_code == 204 and "chunked" in response.request.headers["transfer-encoding"]
        assert api.get("/AuditEmailSettings").json()["smtpServer"] == "smtp.chunked.example"
        # a malformed chunk size is a 400, and the server goes on serving
        with socket.create_connection((server.host, server.port)) as raw:
            raw.sendall(b"PUT /v8/AuditEmailSettings HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
            assert raw.recv(100).startswith(b"HTTP/1.1 400")
        assert api.get("/ServiceInstance").status_code == 200


def test_allow_lists_what_the_document_routes(client: httpx.Client) -> None:
    # A real server routes every method its document has for a path: Allow names them; a documented method the
    # emulator does not emulate is refused with 403 (it said 405 and listed only GET).
    api = Api(client, "v8").login()
    org_id = api.org_id()
    patch = api.request("PATCH", f"/Organizations/{org_id}", lenient=True)
    assert patch.status_code == 405 and patch.headers["allow"] == "DELETE, GET, PUT"
    put = api.put(f"/Organizations/{org_id}", json={"name": "x"}, lenient=True)
    assert put.status_code == 403 and put.json()["errorCode"] == "ResourceAccessDenied"
    assert put.headers["content-type"] == JSON_CONTENT_TYPE
    assert api.request("DELETE", "/token", lenient=True).headers["allow"] == "POST"
