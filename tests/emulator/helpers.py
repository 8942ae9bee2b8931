"""Helpers of the emulator's tests, and the check that makes them worth having: every request a test sends and
every response the emulator gives is validated against Veeam's FULL OpenAPI document of that version (v5 against
v6's, paths mapped), through httpx event hooks on every client these tests use.

Bodies are checked strictly: an object may carry only the properties its schema declares, so a field that a version
lacks (``totalCount`` in v8, ``office`` in v6...) fails the test, as does a body on a response the document says
has none (except v5's PUT .../EmailSettings, which echoes the settings, NOTES §3).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import jsonschema
import pytest

from vboplan.emulator import Emulator

# Veeam's documents: ../shared/vbo-api beside the checkout, or where VBO_API_DOCS points (a checkout elsewhere).
SPEC_DIR = Path(os.environ.get("VBO_API_DOCS") or Path(__file__).resolve().parents[2].parent / "shared" / "vbo-api")
SLICE_DIR = Path(__file__).resolve().parents[2] / "vboplan" / "schema"
VERSIONS = ("v5", "v6", "v7", "v8")
BASE_URL = "http://vbo.lab.local:4443"  # the in-process emulator's address as its tests' clients name it
LENIENT = "X-Test-Lenient"  # a request carrying this header is not checked (tests of bad or lenient input)
ADMIN = {"username": "vbo-admin", "password": "Adm1n-pass"}
# Write-only values the tests send; no response may ever contain one (checked on every response).
SECRETS = ("Sm7p-Secret!", "over-the-wire-secret", "Pa55-word-over-the-API", "Rotated-Secret-2", "seeded-Secret")

# The token endpoint is OWIN's OAuth server: its errors are RFC 6749 bodies (NOTES §2), not RESTExceptionInfo.
OAUTH_ERROR = {"type": "object", "required": ["error"], "additionalProperties": False,
               "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}}}
# Routes only v5 has (no v5 document exists): they answer without a body.
V5_ONLY = [("POST", r"/v5/(AuditEmailSettings|VboEmailSettings)/action"),
           ("POST", r"/v5/Organizations/[^/]+/AuditItems/action"),
           ("DELETE", r"/v5/Organizations/[^/]+/AuditItems")]


# -- the OpenAPI documents as JSON Schema ------------------------------------------------------------------------

@functools.cache
def spec(doc_version: str) -> dict[str, Any]:
    """Veeam's full OpenAPI document (``v6``, ``v7``, ``v8``) from ../shared/vbo-api beside the checkout; in a
    checkout without it, the slice vboplan ships (same operations and schemas, without prose), with a warning."""
    full = SPEC_DIR / f"vb365_rest_{doc_version}.json"
    if not full.exists():
        warnings.warn(f"{full} not found: validating against vboplan's own OpenAPI slice instead", stacklevel=2)
        full = SLICE_DIR / f"vb365_{doc_version}.json"
    return json.loads(full.read_text(encoding="utf-8"))


def to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schema -> JSON Schema: ``nullable`` becomes a null type, refs point into ``$defs``, objects with
    declared properties allow no others."""
    if isinstance(node, list):
        return [to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return {"$ref": "#/$defs/" + node["$ref"].rsplit("/", 1)[1]}
    out = {k: to_json_schema(v) for k, v in node.items()
           if k not in ("nullable", "readOnly", "writeOnly", "example", "discriminator", "xml", "externalDocs",
                        "deprecated", "description", "title") and not k.startswith("x-")}
    for key in ("properties", "$defs"):
        if key in node:
            out[key] = {name: to_json_schema(value) for name, value in node[key].items()}
    if node.get("nullable"):
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
        if "type" in out:
            out["type"] = [out["type"], "null"]
    if "properties" in node and "additionalProperties" not in node:
        out["additionalProperties"] = False
    return out


@functools.cache
def _defs(doc_version: str) -> dict[str, Any]:
    return {name: to_json_schema(schema) for name, schema in spec(doc_version)["components"]["schemas"].items()}


@functools.lru_cache(maxsize=4096)
def _validator(doc_version: str, schema: str) -> jsonschema.Draft202012Validator:
    """One validator per schema (given as its JSON text), kept with what it resolved: a test sends thousands of
    requests whose answers share a few schemas."""
    return jsonschema.Draft202012Validator({**to_json_schema(json.loads(schema)), "$defs": _defs(doc_version)})


# Bodies already found to fit a schema, by (document, schema, digest of the body's bytes): the same bytes fit the
# same schema again, and error answers repeat by the thousand.
_FITTING: set[tuple[str, str, bytes]] = set()


def validate(doc_version: str, schema: dict[str, Any], value: Any, what: str, raw: bytes | None = None) -> None:
    """Fail the test when ``value`` does not fit ``schema`` (an OpenAPI schema of ``doc_version``); ``raw``: the
    bytes ``value`` was decoded from, when it was."""
    text = json.dumps(schema, sort_keys=True)
    seen = (doc_version, text, hashlib.sha256(raw).digest()) if raw is not None else None
    if seen in _FITTING:
        return
    errors = sorted(_validator(doc_version, text).iter_errors(value), key=lambda e: list(e.absolute_path))
    if errors:
        where = "/".join(map(str, errors[0].absolute_path)) or "(root)"
        pytest.fail(f"{what} does not match Veeam's {doc_version} document at {where}: {errors[0].message}",
                    pytrace=False)
    if seen is not None:
        if len(_FITTING) > 100_000:
            _FITTING.clear()
        _FITTING.add(seen)


@functools.cache
def _path_table(doc_version: str) -> list[tuple[re.Pattern[str], str]]:
    table = []
    for template in spec(doc_version)["paths"]:
        pattern = re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(template))
        table.append((re.compile(pattern + "/?", re.IGNORECASE), template))
    # Literal segments before parameters: /Users/{userId} must not swallow /AuditItems/remove and friends.
    table.sort(key=lambda entry: entry[1].count("{"))
    return table


@functools.lru_cache(maxsize=65536)
def find_operation(version: str, method: str, path: str) -> tuple[str, str | None, dict[str, Any] | None]:
    """(document version, documented template, operation) for a request path like ``/v5/AuditEmailSettings``
    (kept: tests send many requests to one path)."""
    doc_version = "v6" if version == "v5" else version
    doc_path = f"/{doc_version}{path[3:]}" if version == "v5" else path
    for pattern, template in _path_table(doc_version):
        if pattern.fullmatch(doc_path):
            return doc_version, template, spec(doc_version)["paths"][template].get(method.lower())
    return doc_version, None, None


def _version_of(path: str) -> str | None:
    found = re.match(r"/(v\d+)(/|$)", path, re.IGNORECASE)
    return found.group(1).lower() if found and found.group(1).lower() in VERSIONS else None


def check_request(request: httpx.Request) -> None:
    """Fail when a test sends a body its operation's documented request schema does not allow."""
    if LENIENT in request.headers:
        return
    version = _version_of(request.url.path)
    if version is None:
        return
    doc_version, template, op = find_operation(version, request.method, request.url.path)
    body = request.content
    if op is None or "requestBody" not in op:
        return  # v5-only actions and body-less operations: nothing documented to check against
    media = request.headers.get("content-type", "").split(";")[0].strip()
    content = op["requestBody"]["content"]
    assert media in content, f"{request.method} {template} documents {list(content)}, the test sent {media!r}"
    schema = content[media]["schema"]
    if media == "application/x-www-form-urlencoded":
        value: Any = dict(parse_qsl(body.decode(), keep_blank_values=True))
        for name, prop in schema.get("properties", {}).items():
            if prop.get("type") == "boolean" and name in value:
                value[name] = {"true": True, "false": False}.get(value[name].lower(), value[name])
    else:
        value = json.loads(body)
    validate(doc_version, schema, value, f"request body of {request.method} {template}")


def check_response(response: httpx.Response) -> None:
    """Fail when a response does not match what the version's document says that operation answers."""
    response.read()
    request = response.request
    method, path, status = request.method, request.url.path, response.status_code
    version = _version_of(path)
    doc_version, template, op = find_operation(version or "v8", method, path)
    what = f"{status} answer to {method} {path}"
    body = response.content
    leaked = [secret for secret in SECRETS if secret.encode() in body]
    assert not leaked, f"{what}: a write-only value came back: {leaked}"
    if body:
        assert response.headers.get("content-type") == "application/json; charset=utf-8", (
            f"{what}: content type {response.headers.get('content-type')!r}")
        value = json.loads(body)
    if status in (401, 429):
        # The authorization filter and the throttle answer without a body (README: "401", "Token throttling").
        assert not body, f"{what}: a {status} answer has no body, got {body[:200]!r}"
        return
    if status >= 400:
        assert body, f"{what}: an error answer needs a RESTExceptionInfo body"
        if template is not None and template.lower().endswith("/token") and status == 400:
            schema: dict[str, Any] = OAUTH_ERROR
        elif op is not None and "default" in op["responses"]:
            schema = op["responses"]["default"]["content"]["application/json"]["schema"]
        else:
            schema = {"$ref": "#/components/schemas/RESTExceptionInfo"}
        validate(doc_version, schema, value, what, body)
        return
    assert version is not None, f"{what}: success on an unserved version"
    if op is None:
        assert version == "v5" and any(m == method and re.fullmatch(p, path, re.IGNORECASE) for m, p in V5_ONLY), (
            f"{what}: {method} {path} is not a documented operation")
        assert not body, f"{what}: v5 action answered with a body"
        return
    documented = op["responses"].get(str(status))
    if version == "v5" and template.lower().endswith("/token") and status == 200:
        # A real v5 server's token answer: no userName, RFC 1123 dates (README: "Tokens"); otherwise v6's shape.
        token = dict(spec(doc_version)["components"]["schemas"]["OAuthTokenResponse"])
        token["required"] = [name for name in token["required"] if name != "userName"]
        assert "userName" not in value, f"{what}: a v5 token answer has no userName"
        assert re.fullmatch(r"\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} GMT", value[".issued"]), value[".issued"]
        validate(doc_version, token, value, what)
        return
    if version == "v5" and method == "PUT" and path.lower().endswith("emailsettings"):
        get = spec(doc_version)["paths"][template]["get"]["responses"]["200"]["content"]["application/json"]
        assert status == 200 and body, f"{what}: v5 echoes the settings with 200"
        validate(doc_version, get["schema"], value, what, body)
        return
    if documented is None:
        # v5 differs from v6's document only in success codes (NOTES §3, §4), always without a body.
        assert version == "v5", f"{what}: status {status} is not documented for {method} {template}"
        assert not body, f"{what}: unexpected body"
        return
    content = documented.get("content")
    if not content:
        assert not body, f"{what}: the document says no content, got {body[:200]!r}"
        return
    media = content.get("application/json") or content.get("*/*")
    assert body, f"{what}: the document promises a body"
    validate(doc_version, media["schema"], value, what, body)


# -- clients, servers, data --------------------------------------------------------------------------------------

def validated_client(transport: httpx.BaseTransport | None = None, **options: Any) -> httpx.Client:
    """An httpx client whose every request and response is checked against Veeam's documents."""
    return httpx.Client(transport=transport, event_hooks={"request": [check_request], "response": [check_response]},
                        **options)


class FakeClock:
    """A clock tests move by hand: token expiry and throttle windows without sleeping."""

    def __init__(self, now: float = 1_795_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Api:
    """Calls to one API version as a logged-in client makes them: ``api.get("/AuditEmailSettings")``."""

    def __init__(self, client: httpx.Client, version: str) -> None:
        self.client = client
        self.version = version
        self.token: str | None = None
        self.refresh_token: str | None = None

    def login(self, username: str = ADMIN["username"], password: str = ADMIN["password"]) -> Api:
        response = self.client.post(f"/{self.version}/token", data={"grant_type": "password", "username": username,
                                                                     "password": password})
        assert response.status_code == 200, response.text
        self.token, self.refresh_token = response.json()["access_token"], response.json()["refresh_token"]
        return self

    def request(self, method: str, path: str, *, lenient: bool = False, token: bool = True,
                **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if token and self.token:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        if lenient:
            headers[LENIENT] = "1"
        return self.client.request(method, f"/{self.version}{path}", headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", path, **kwargs)

    def org_id(self, name: str = "contoso.onmicrosoft.com") -> str:
        body = self.get("/Organizations", params={"limit": 100} if self.version == "v8" else None).json()
        orgs = body["results"] if self.version == "v8" else body
        return next(o["id"] for o in orgs if o["name"] == name)

    def user(self, org_id: str, user_name: str) -> dict[str, Any]:
        results = self.get(f"/Organizations/{org_id}/Users", params={"userName": user_name}).json()["results"]
        assert len(results) == 1, results
        return results[0]

    def group(self, org_id: str, display_name: str) -> dict[str, Any]:
        results = self.get(f"/Organizations/{org_id}/Groups", params={"displayName": display_name}).json()["results"]
        assert len(results) == 1, results
        return results[0]


def seed_data() -> dict[str, Any]:
    """A small tenant: contoso (named people, one hybrid user with on-premises fields), fabrikam (75 users)."""
    return {
        "credentials": [dict(ADMIN)],
        "organizations": [
            {"name": "contoso.onmicrosoft.com", "users": [
                {"displayName": "Jane Doe", "name": "jane@contoso.com"},
                {"displayName": "Chief Executive", "name": "ceo@contoso.com"},
                {"displayName": "Chief Financial Officer", "name": "cfo@contoso.com"},
                {"displayName": "John Doe", "name": "john@contoso.com"},
                {"displayName": "Janet Doe", "name": "janet@contoso.com"},
                {"displayName": "Jane Doe", "name": "jane.doe2@contoso.com"},
                {"displayName": "Hybrid Harry", "name": "harry@contoso.com", "locationType": "Hybrid",
                 "office": "Building 7", "onPremisesSid": "S-1-5-21-1004336348-1177238915-682003330-512"},
            ], "groups": [
                {"displayName": "HR Department", "name": "hr@contoso.com"},
                {"displayName": "Finance", "name": "finance@contoso.com", "type": "Security"},
                {"displayName": "Finance Auditors", "name": "finance-audit@contoso.com"},
            ]},
            {"name": "fabrikam.onmicrosoft.com", "region": "Germany",
             "users": [{"displayName": f"Fabrikam User {i:03d}", "name": f"user{i:03d}@fabrikam.com"}
                       for i in range(75)],
             "groups": [{"displayName": f"Fabrikam Group {i:02d}", "name": f"group{i:02d}@fabrikam.com"}
                        for i in range(40)],
             "teams": [{"displayName": "Fabrikam Sales", "mail": "sales@fabrikam.com"}],
             "sites": [{"url": "https://fabrikam.sharepoint.com/sites/sales", "title": "Sales"}]},
        ],
        "audit_email_settings": {},
        "job_email_settings": {"enableNotification": True, "smtpServer": "smtp.fabrikam.com", "port": 587,
                               "notifyOnFailure": True},
    }


def wsgi_client(app: Emulator) -> httpx.Client:
    """A validated client calling ``app`` in process."""
    return validated_client(httpx.WSGITransport(app=app), base_url=BASE_URL)
