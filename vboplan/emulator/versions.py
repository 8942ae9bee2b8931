"""What differs between the API versions the emulator serves, as data, and how responses are cut to a version's
schema.

Every per-version difference the handlers need lives in :data:`PROFILES` (the client's own table,
:data:`vboplan.api.versions.TRAITS`); handlers never test ``version == "v8"``.
Response objects are built once with every field the emulator knows and then passed through :func:`shape`, which
keeps only the properties the version's OpenAPI document declares, so a field that a version lacks (``totalCount``
in v8, ``office`` before v7...) can never leak into its responses.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from vboplan.api.versions import TRAITS, VersionTraits
from vboplan.schema import component, resolve

# One table of per-version traits serves the client and the emulator (vboplan.api.versions).
Profile = VersionTraits
PROFILES: dict[str, VersionTraits] = TRAITS

# v8 error codes by HTTP status (RESTExceptionInfo.errorCode); other statuses carry null.
V8_ERROR_CODES = {400: "ParameterValidationFailure", 403: "ResourceAccessDenied", 404: "ResourceNotFound",
                  409: "OperationConflict"}


# Versions whose user and group ids are qualified by the organization (Veeam's v7 resource changes; README: "Ids").
_QUALIFIED_IDS = frozenset({"v7", "v8"})


def qualified_ids(version: str) -> bool:
    """Whether ``version`` writes user and group ids qualified by their organization (v7 on)."""
    return version in _QUALIFIED_IDS


def error_body(version: str | None, message: str, status: int) -> dict[str, Any]:
    """A RESTExceptionInfo for ``version`` (plain ``{"message"}`` when no version applies).

    Unset fields are left out, never ``null`` (README: "Unset fields"): v7's errorCode enum only has ProxyOffline,
    so v7 errors carry ``message`` alone; v8 adds ``errorCode`` where the status has one; ``stackTrace`` is never
    sent (a production server does not expose it)."""
    body: dict[str, Any] = {"message": message}
    style = PROFILES[version].error_style if version in PROFILES else "message"
    code = V8_ERROR_CODES.get(status) if style == "stackTrace" else None
    if code is not None:
        body["errorCode"] = code
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
    """``values`` cut to component ``name`` of ``version``, in their own order: undeclared keys dropped, and unset
    (``None``) values left out, nullable or not, as a real server does (README: "Unset fields")."""
    declared = _declared(version, name)
    return {prop: value for prop, value in values.items() if prop in declared and value is not None}


@cache
def _declared(version: str, name: str) -> dict[str, bool]:
    return dict(fields(version, name))

