"""GET/PUT /vN/AuditEmailSettings and /vN/VboEmailSettings, and their test e-mails, in every version."""

from __future__ import annotations

import pytest

from vboplan.emulator import Store
from vboplan.emulator.store import password_hash

from .helpers import SECRETS, Api

PUT_STATUS = {"v5": 200, "v6": 200, "v7": 200, "v8": 204}
RESOURCES = {"audit_email_settings": "/AuditEmailSettings", "job_email_settings": "/VboEmailSettings"}
SMTP = {"enableNotification": True, "smtpServer": "smtp.contoso.com", "port": 587, "useAuthentication": True,
        "username": "svc-mail", "userPassword": SECRETS[0], "useSSL": True, "from": "vbo@contoso.com",
        "to": "security@contoso.com;soc@contoso.com",
        "subject": "[Audit] %OrganizationName% - %DisplayName% - %Action%"}


@pytest.fixture(params=sorted(RESOURCES))
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


def test_fresh_server_leaves_unset_fields_out_and_links(api: Api) -> None:
    body = api.get(RESOURCES["audit_email_settings"]).json()  # nothing configured in the seed
    # Unset fields are left out, nullable or not (README: "Unset fields"; Veeam's v8 reference, a v5 capture)
    assert not {"enableNotification", "port", "useSSL", "smtpServer", "tenantId", "clientId"} & set(body)
    assert body["_links"]["self"]["href"].endswith(f"/{api.version}/AuditEmailSettings")
    assert body["_links"]["self"]["href"].startswith("http" if api.version == "v5" else f"/{api.version}/")
    action = next(iter(body["_actions"].values()))
    assert action["method"] == "POST" and action["uri"].endswith(
        {"v5": "/action", "v6": "/SendTest", "v7": "/SendTest", "v8": "/SendTestEmail"}[api.version])
    if api.version in ("v7", "v8"):
        assert body["authenticationType"] == "CustomSmtp"
    else:
        assert "authenticationType" not in body


def test_put_then_get_round_trips(api: Api, kind: str, store: Store) -> None:
    response = api.put(RESOURCES[kind], json=SMTP)
    assert response.status_code == PUT_STATUS[api.version]
    body = api.get(RESOURCES[kind]).json()
    for field, value in SMTP.items():
        if field != "userPassword":
            assert body[field] == value, field
    assert store.settings[kind]["userPasswordSha256"] == password_hash(SMTP["userPassword"])


def test_v5_put_echoes_the_settings_later_versions_answer_empty(api: Api, kind: str) -> None:
    response = api.put(RESOURCES[kind], json={"port": 2525})
    if api.version == "v5":
        assert response.json()["port"] == 2525 and "userPassword" not in response.json()
    else:
        assert response.content == b""


def test_password_is_write_only_everywhere(api: Api, kind: str, store: Store) -> None:
    responses = [api.put(RESOURCES[kind], json=SMTP), api.get(RESOURCES[kind]),
                 api.put(RESOURCES[kind], json={"port": 25})]
    for response in responses:
        assert SMTP["userPassword"] not in response.text
        assert "password" not in response.text.lower()
    assert SMTP["userPassword"] not in repr(store.to_data())


def test_put_is_partial_and_null_keeps_the_value(api: Api, kind: str, store: Store) -> None:
    api.put(RESOURCES[kind], json=SMTP)
    api.put(RESOURCES[kind], json={"port": 25})
    api.put(RESOURCES[kind], json={"smtpServer": None, "useSSL": None}, lenient=True)
    body = api.get(RESOURCES[kind]).json()
    assert body["port"] == 25 and body["smtpServer"] == SMTP["smtpServer"] and body["useSSL"] is True
    assert store.settings[kind]["userPasswordSha256"] == password_hash(SMTP["userPassword"])  # omitted: kept
    api.put(RESOURCES[kind], json={"userPassword": SECRETS[3]})
    assert store.settings[kind]["userPasswordSha256"] == password_hash(SECRETS[3])


def test_job_settings_have_their_notify_fields(api: Api) -> None:
    flags = {"notifyOnSuccess": False, "notifyOnWarning": True, "notifyOnFailure": True,
             "supressUntilLastRetry": True, "attachDetailedReport": False}
    api.put("/VboEmailSettings", json=flags)
    body = api.get("/VboEmailSettings").json()
    assert {k: body[k] for k in flags} == flags
    assert body["smtpServer"] == "smtp.fabrikam.com"  # seeded
    assert "notifyOnFailure" not in api.get("/AuditEmailSettings").json()


def test_v5_path_spelling_and_any_case_work(api: Api) -> None:
    assert api.get("/VBOEmailSettings").status_code == 200
    assert api.get("/auditemailsettings").status_code == 200
    assert api.put("/AUDITEMAILSETTINGS", json={"port": 26}).status_code == PUT_STATUS[api.version]
    assert api.get("/AuditEmailSettings/").json()["port"] == 26


def test_lenient_input_like_json_net(api: Api, kind: str) -> None:
    response = api.put(RESOURCES[kind], lenient=True, json={
        "ENABLENOTIFICATION": "true", "port": "2525", "usessl": "False", "userpassword": "pw",
        "smtpserver": "mail.contoso.com", "subject": 42, "unknownField": {"x": 1}})
    assert response.status_code == PUT_STATUS[api.version]
    body = api.get(RESOURCES[kind]).json()
    assert body["enableNotification"] is True and body["port"] == 2525 and body["useSSL"] is False
    assert body["smtpServer"] == "mail.contoso.com" and body["subject"] == "42"
    assert "unknownField" not in body


def test_trailing_commas_are_tolerated(api: Api) -> None:
    response = api.put("/AuditEmailSettings", lenient=True, content=b'{"port": 465, "useSSL": true, }',
                       headers={"Content-Type": "application/json"})
    assert response.status_code == PUT_STATUS[api.version]
    assert api.get("/AuditEmailSettings").json()["port"] == 465


def test_response_only_fields_are_ignored_on_input(api: Api, kind: str, store: Store) -> None:
    api.put(RESOURCES[kind], lenient=True, json={"port": 30, "clientId": "forged", "tenantId": "forged",
                                                 "isAuthenticated": True, "_links": {"self": {"href": "/x"}},
                                                 "_actions": {}})
    body = api.get(RESOURCES[kind]).json()
    assert body["port"] == 30 and body.get("isAuthenticated") is None and body.get("clientId") is None
    assert "clientId" not in store.settings[kind] and "isAuthenticated" not in store.settings[kind]


@pytest.mark.parametrize("version", ["v7", "v8"])
def test_lowercase_enum_is_accepted(api: Api) -> None:
    api.put("/AuditEmailSettings", json={"authenticationType": "customsmtp"}, lenient=True)
    assert api.get("/AuditEmailSettings").json()["authenticationType"] == "CustomSmtp"


@pytest.mark.parametrize("version", ["v5", "v6"])
def test_fields_of_later_versions_are_ignored(api: Api, store: Store) -> None:
    api.put("/AuditEmailSettings", json={"authenticationType": "Microsoft365", "port": 1}, lenient=True)
    held = store.settings["audit_email_settings"]
    assert "authenticationType" not in held and held["port"] == 1


@pytest.mark.parametrize("body, fragment", [
    ({"port": "five"}, "port"),
    ({"port": 2**40}, "port"),
    ({"enableNotification": "yes"}, "enableNotification"),
    ({"useSSL": []}, "useSSL"),
    ({"smtpServer": {"host": "x"}}, "smtpServer"),
    ([{"port": 25}], "mapping"),
    ("port=25", "mapping"),
])
def test_wrong_types_are_400(api: Api, kind: str, body: object, fragment: str, store: Store) -> None:
    before = dict(store.settings[kind])
    response = api.put(RESOURCES[kind], json=body, lenient=True)
    assert response.status_code == 400 and fragment in response.json()["message"]
    expected_code = {"v5": None, "v6": None, "v7": None, "v8": "ParameterValidationFailure"}[api.version]
    assert response.json().get("errorCode") == expected_code
    assert ("errorCode" in response.json()) == (api.version == "v8")  # unset: left out, never null
    assert store.settings[kind] == before


@pytest.mark.parametrize("version", ["v7", "v8"])
def test_unknown_enum_value_is_400(api: Api) -> None:
    response = api.put("/AuditEmailSettings", json={"authenticationType": "Exchange2003"}, lenient=True)
    assert response.status_code == 400 and "authenticationType" in response.json()["message"]


@pytest.mark.parametrize("raw", [b"{", b'{"port": 25', b"nope", b'{"port": 25}}', b"\xff\xfe"])
def test_malformed_json_is_400(api: Api, raw: bytes) -> None:
    response = api.put("/AuditEmailSettings", content=raw, lenient=True,
                       headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["message"]


def test_empty_body_is_400_and_other_media_types_415(api: Api) -> None:
    empty = api.put("/AuditEmailSettings", content=b"", lenient=True, headers={"Content-Type": "application/json"})
    assert empty.status_code == 400
    text = api.put("/AuditEmailSettings", content=b'{"port": 25}', lenient=True,
                   headers={"Content-Type": "text/plain"})
    assert text.status_code == 415


def _send_test(api: Api, kind: str):
    resource = RESOURCES[kind]
    if api.version == "v5":
        return api.post(f"{resource}/action", json={"sendTest": None})
    return api.post(f"{resource}/{'SendTestEmail' if api.version == 'v8' else 'SendTest'}")


def test_send_test_email_per_version(api: Api, kind: str, store: Store) -> None:
    api.put(RESOURCES[kind], json=SMTP)
    response = _send_test(api, kind)
    assert response.status_code == (204 if api.version == "v8" else 200) and response.content == b""
    assert store.test_emails[kind] == 1


def test_send_test_refused_when_disabled_or_unconfigured(api: Api, store: Store) -> None:
    refused = _send_test(api, "audit_email_settings")  # nothing configured
    assert refused.status_code == 400 and "disabled" in refused.json()["message"]
    api.put("/AuditEmailSettings", json={"enableNotification": True, "to": "soc@contoso.com"})
    no_server = _send_test(api, "audit_email_settings")
    assert no_server.status_code == 400 and "SMTP server" in no_server.json()["message"]
    assert store.test_emails["audit_email_settings"] == 0


def test_send_test_paths_of_other_versions_do_not_exist(api: Api) -> None:
    api.put("/AuditEmailSettings", json=SMTP)
    others = {"action", "SendTest", "SendTestEmail"} - {
        {"v5": "action", "v6": "SendTest", "v7": "SendTest", "v8": "SendTestEmail"}[api.version]}
    for path in others:
        assert api.post(f"/AuditEmailSettings/{path}", json={"sendTest": None}, lenient=True).status_code == 404


def test_v5_action_needs_send_test(client) -> None:
    api = Api(client, "v5").login()
    api.put("/AuditEmailSettings", json=SMTP)
    assert api.post("/AuditEmailSettings/action", json={"explode": True}).status_code == 400
    assert api.post("/AuditEmailSettings/action", json={"SENDTEST": None}).status_code == 200


@pytest.mark.parametrize("version", ["v7", "v8"])
def test_oauth_sign_in_then_put_authenticates(api: Api, store: Store) -> None:
    prepared = api.post("/AuditEmailSettings/PrepareOAuthSignIn", json={
        "authenticationServiceKind": "Microsoft365", "tenantId": "contoso.onmicrosoft.com",
        "redirectUrl": "http://localhost/callback"}).json()
    assert prepared["signInUrl"].startswith("https://login.microsoftonline.com/contoso.onmicrosoft.com/")
    completed = api.post("/AuditEmailSettings/CompleteOAuthSignIn",
                         json={"code": "0.AX4A", "state": prepared["requestId"]}).json()
    assert completed["requestId"] == prepared["requestId"] and completed["userId"]
    api.put("/AuditEmailSettings", json={"enableNotification": True, "authenticationType": "Microsoft365",
                                         "userId": completed["userId"], "requestId": prepared["requestId"],
                                         "from": "vbo@contoso.com", "to": "soc@contoso.com"})
    body = api.get("/AuditEmailSettings").json()
    assert body["isAuthenticated"] is True and body["authenticationType"] == "Microsoft365"
    assert body["tenantId"] == "contoso.onmicrosoft.com"
    assert _send_test(api, "audit_email_settings").status_code in (200, 204)
    stale = api.put("/AuditEmailSettings", json={"requestId": "00000000-0000-0000-0000-000000000000"})
    assert stale.status_code == 400
