"""The OpenAPI checks the other emulator tests lean on must themselves catch what they claim to catch."""

from __future__ import annotations

import json

import httpx
import pytest

from .helpers import check_request, check_response, find_operation


def _response(method: str, path: str, status: int, body: object | None, *,
              content_type: str = "application/json; charset=utf-8") -> httpx.Response:
    request = httpx.Request(method, f"http://vbo{path}")
    content = b"" if body is None else json.dumps(body).encode()
    headers = {"Content-Type": content_type} if body is not None else {}
    return httpx.Response(status, content=content, headers=headers, request=request)


PAGE = {"offset": 0, "limit": 30, "results": [], "_links": {"self": {"href": "/v8/x"}}}


@pytest.mark.parametrize("method, path, status, body", [
    ("GET", "/v8/Organizations/0e4fd0a7-7a63-4b9a-9d5e-6b3c3a1f0c11/Users", 200, {**PAGE, "totalCount": 0}),
    ("GET", "/v6/Organizations/0e4fd0a7-7a63-4b9a-9d5e-6b3c3a1f0c11/Users", 200,
     {**PAGE, "results": [{"id": "x", "office": "Building 7"}]}),
    ("GET", "/v8/AuditEmailSettings", 200, {"smtpServer": None}),
    ("GET", "/v8/AuditEmailSettings", 200, {"userPassword": "secret"}),
    ("GET", "/v7/Organizations", 200, PAGE),
    ("GET", "/v8/Organizations", 200, []),
    ("PUT", "/v8/AuditEmailSettings", 204, {"port": 25}),
    ("PUT", "/v6/AuditEmailSettings", 201, None),
    ("GET", "/v7/AuditEmailSettings", 404, {"message": "x", "errorCode": "ResourceNotFound"}),
    ("GET", "/v6/AuditEmailSettings", 400, {"message": "x", "errorCode": None}),
    ("POST", "/v8/token", 200, {"access_token": "a"}),
    ("POST", "/v8/token", 400, {"message": "bad"}),
    ("POST", "/v5/AuditEmailSettings/action", 200, {"ok": True}),
])
def test_non_conforming_responses_fail(method: str, path: str, status: int, body: object) -> None:
    with pytest.raises((pytest.fail.Exception, AssertionError)):
        check_response(_response(method, path, status, body))


@pytest.mark.parametrize("method, path, status, body", [
    ("GET", "/v8/Organizations/0e4fd0a7-7a63-4b9a-9d5e-6b3c3a1f0c11/Users", 200, PAGE),
    ("GET", "/v6/Organizations/0e4fd0a7-7a63-4b9a-9d5e-6b3c3a1f0c11/Users", 200, {**PAGE, "totalCount": None}),
    ("PUT", "/v8/AuditEmailSettings", 204, None),
    ("PUT", "/v5/AuditEmailSettings", 200, {"port": 25}),
    ("POST", "/v5/Organizations/0e4fd0a7-7a63-4b9a-9d5e-6b3c3a1f0c11/AuditItems", 200, None),
    ("GET", "/v8/AuditEmailSettings", 400, {"message": "x", "errorCode": "ParameterValidationFailure",
                                            "stackTrace": None}),
    ("POST", "/v8/token", 400, {"error": "invalid_grant", "error_description": "no"}),
])
def test_conforming_responses_pass(method: str, path: str, status: int, body: object) -> None:
    check_response(_response(method, path, status, body))


def test_a_secret_in_any_answer_fails() -> None:
    from .helpers import SECRETS
    with pytest.raises(AssertionError, match="write-only"):
        check_response(_response("GET", "/v8/AuditEmailSettings", 200, {"username": SECRETS[0]}))


def test_error_answers_need_json_with_charset() -> None:
    with pytest.raises(AssertionError):
        check_response(_response("GET", "/v8/AuditEmailSettings", 500, {"message": "x"},
                                 content_type="application/json"))


def test_request_bodies_are_checked() -> None:
    bad = httpx.Request("PUT", "http://vbo/v8/AuditEmailSettings", json={"port": "587"})
    with pytest.raises(pytest.fail.Exception):
        check_request(bad)
    check_request(httpx.Request("PUT", "http://vbo/v8/AuditEmailSettings", json={"port": 587}))
    check_request(httpx.Request("POST", "http://vbo/v8/token", data={"grant_type": "password", "username": "a",
                                                                      "password": "b"}))
    with pytest.raises(pytest.fail.Exception):
        check_request(httpx.Request("POST", "http://vbo/v8/token", data={"grant_type": "integration"}))


def test_v5_maps_to_the_v6_document() -> None:
    doc, template, op = find_operation("v5", "GET", "/v5/organizations/0e4fd0a7-7a63-4b9a-9d5e-6b3c3a1f0c11/users")
    assert doc == "v6" and template == "/v6/Organizations/{organizationId}/Users" and op is not None
    assert find_operation("v6", "POST", "/v6/Organizations/x/AuditItems/remove")[1].endswith("/AuditItems/remove")
