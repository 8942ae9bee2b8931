"""What differs between the API versions the emulator serves, as data, and how responses are cut to a version's
schema.

Every per-version difference the handlers need lives in :data:`PROFILES`; handlers never test ``version == "v8"``.
Response objects are built once with every field the emulator knows and then passed through :func:`shape`, which
keeps only the properties the version's OpenAPI document declares, so a field that a version lacks (``totalCount``
in v8, ``office`` before v7...) can never leak into its responses.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from vboplan.schema import component, resolve


@dataclass(frozen=True)
class Profile:
    """How one API version behaves where the versions differ (sources: the OpenAPI documents, NOTES.md)."""

    name: str
    settings_put_status: int  # PUT AuditEmailSettings / VboEmailSettings
    settings_put_echoes: bool  # v5 answers the PUT with the settings (NOTES §3, observed on a real v5 server)
    send_test_path: str  # test mail: v5 POST .../action {"sendTest": null}, then SendTest, then SendTestEmail
    send_test_status: int
    audit_add_status: int  # POST .../AuditItems
    audit_remove_path: str  # v5 POST .../AuditItems/action {"remove": {...}}, later .../AuditItems/remove
    audit_remove_status: int
    logout_status: int | None  # POST /token/logout, absent before v7
    organizations_paged: bool  # GET /Organizations: array before v8, page in v8
    absolute_links: bool  # v5 examples show absolute hrefs, later versions relative ones
    page_total_count: bool  # PageOf*.totalCount: declared in v6/v7 only (not in v8; v5 pages are not documented)
    error_style: str  # which RESTExceptionInfo fields the version has: "message", "errorCode", "stackTrace"
    oauth_mail: bool  # PrepareOAuthSignIn / CompleteOAuthSignIn on the e-mail settings (v7+)


PROFILES: dict[str, Profile] = {
    "v5": Profile("v5", 200, True, "action", 200, 200, "action", 200, None, False, True, False, "message", False),
    "v6": Profile("v6", 200, False, "SendTest", 200, 201, "remove", 200, None, False, False, True, "message", False),
    "v7": Profile("v7", 200, False, "SendTest", 200, 201, "remove", 200, 200, False, False, True, "errorCode", True),
    "v8": Profile("v8", 204, False, "SendTestEmail", 204, 204, "remove", 204, 204, True, False, False, "stackTrace",
                  True),
}

# The Veeam build the emulated server reports (the v8 build NOTES.md §1 verifies).
SERVER_BUILD = "8.0.2.159"

# v8 error codes by HTTP status (RESTExceptionInfo.errorCode); other statuses carry null.
V8_ERROR_CODES = {400: "ParameterValidationFailure", 403: "ResourceAccessDenied", 404: "ResourceNotFound",
                  409: "OperationConflict"}


def error_body(version: str | None, message: str, status: int) -> dict[str, Any]:
    """A RESTExceptionInfo for ``version`` (plain ``{"message"}`` when no version applies)."""
    body: dict[str, Any] = {"message": message}
    style = PROFILES[version].error_style if version in PROFILES else "message"
    if style in ("errorCode", "stackTrace"):
        # v7's errorCode enum only has ProxyOffline, so null is the only honest value there.
        body["errorCode"] = V8_ERROR_CODES.get(status) if style == "stackTrace" else None
    if style == "stackTrace":
        body["stackTrace"] = None
    return body


@cache
def fields(version: str, name: str) -> tuple[tuple[str, bool], ...]:
    """The properties of component ``name`` in ``version``, each with whether it may be null."""
    out = []
    for prop, schema in component(version, name).get("properties", {}).items():
        nullable = bool(schema.get("nullable") or resolve(version, schema).get("nullable"))
        out.append((prop, nullable))
    return tuple(out)


def shape(version: str, name: str, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` cut to component ``name`` of ``version``, in their own order: undeclared keys dropped, a None
    dropped where the schema does not allow null (JSON.NET would write null there, but the document says the field
    is not nullable, and the document wins)."""
    declared = _declared(version, name)
    return {prop: value for prop, value in values.items()
            if prop in declared and (value is not None or declared[prop])}


@cache
def _declared(version: str, name: str) -> dict[str, bool]:
    return dict(fields(version, name))


def has_field(version: str, name: str, prop: str) -> bool:
    """Whether component ``name`` of ``version`` declares ``prop``."""
    return any(p == prop for p, _ in fields(version, name))
