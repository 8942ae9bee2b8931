"""The settings objects VBO exposes, each described once: template key, endpoint and schemas per API version,
test-mail action. The client side (:mod:`vboplan.kinds.registry`) and the emulator are both driven by this list, so adding
a settings object is one :class:`SettingsSpec` below plus regenerating the schema slices
(``python -m vboplan.schema.extract ../shared/vbo-api``, which reads the paths from here).

Every settings object is a GET/PUT of one JSON object where the PUT is a partial update ("The properties you omit
will remain unchanged": Veeam Help Center, REST API v5, "Edit Audit Email Notification Settings",
https://helpcenter.veeam.com/archive/vbo365/50/rest/put_vbo_audit_settings.html; the v6 page for VboEmailSettings
says the same). The versions listed for each are those whose OpenAPI document has the endpoint; v5 has no published
document and only the two e-mail settings objects are documented for it (Veeam Help Center, REST API v5:
https://helpcenter.veeam.com/archive/vbo365/50/rest/get_vbo_audit_settings.html and
https://helpcenter.veeam.com/archive/vbo365/50/rest/get_vbo_email_settings.html).
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from vboplan import schema
from vboplan.api.versions import VERSIONS

ORGANIZATION_ID = "{organizationId}"


@dataclass(frozen=True)
class Endpoint:
    """Where a settings object lives in one API version and the components that describe it."""

    path: str                     # after /vN/, e.g. "HistorySettings" or "Organizations/{organizationId}/..."
    request: str                  # component of the PUT body
    response: str                 # component of the GET answer
    test_mail: str | None = None  # the send-test action after ``path`` ("SendTest", "SendTestEmail", v5 "action")
    oauth: bool = False           # PrepareOAuthSignIn / CompleteOAuthSignIn after ``path``


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: one object per settings kind
class SettingsSpec:
    """One settings object: its key in templates and, per API version that has it, its endpoint."""

    key: str
    endpoints: Mapping[str, Endpoint]
    summary: str = ""
    fresh: Mapping[str, Any] = field(default_factory=dict)  # what the emulator reports before anything is set

    @property
    def per_organization(self) -> bool:
        """Whether there is one object per organization (the path names ``{organizationId}``)."""
        return any(ORGANIZATION_ID in e.path for e in self.endpoints.values())

    @property
    def versions(self) -> tuple[str, ...]:
        return tuple(v for v in VERSIONS if v in self.endpoints)

    def endpoint(self, version: str) -> Endpoint | None:
        return self.endpoints.get(version)

    def fields(self, version: str) -> tuple[dict[str, dict[str, Any]], set[str], set[str]]:
        """(writable fields with their schemas, readable field names, write-only field names) in ``version``.
        Write-only: fields of the PUT body the GET never returns (``userPassword``, ``requestId``)."""
        writable, readable, write_only = _fields(self, version)
        return dict(writable), set(readable), set(write_only)  # copies: the caller may change them

    def required(self, version: str) -> list[str]:
        """Fields every PUT body must carry (``enableCheckForUpdates`` of Configuration/Updates)."""
        return list(schema.component(version, self.endpoints[version].request).get("required", []))


@functools.lru_cache(maxsize=1024)
def _fields(spec: SettingsSpec, version: str) -> tuple[dict[str, dict[str, Any]], frozenset[str], frozenset[str]]:
    """:meth:`SettingsSpec.fields`, worked out from the schema once per settings object and version (a fleet asks
    a dozen times for every environment it plans)."""
    endpoint = spec.endpoints[version]
    writable = {name: prop for name, prop in schema.properties(version, endpoint.request).items()
                if not name.startswith("_")}
    readable = frozenset(name for name in schema.properties(version, endpoint.response) if not name.startswith("_"))
    return writable, readable, frozenset(set(writable) - readable)


def _versions(path: str, request: str, response: str, versions: tuple[str, ...] = ("v6", "v7", "v8"), *,
              test_mail: Mapping[str, str] | None = None, oauth: tuple[str, ...] = (),
              paths: Mapping[str, str] | None = None) -> dict[str, Endpoint]:
    return {v: Endpoint((paths or {}).get(v, path), request, response, (test_mail or {}).get(v), v in oauth)
            for v in versions}


_MAIL_TEST = {"v5": "action", "v6": "SendTest", "v7": "SendTest", "v8": "SendTestEmail"}
_ALL = ("v5", "v6", "v7", "v8")

_SPECS: list[SettingsSpec] = [
    SettingsSpec("audit_email_settings", _versions(
        "AuditEmailSettings", "RESTAuditEmailSettingsRequest", "RESTAuditEmailSettingsResponse", _ALL,
        test_mail=_MAIL_TEST, oauth=("v7", "v8")),
        "audit e-mail notifications"),
    SettingsSpec("job_email_settings", _versions(
        "VboEmailSettings", "RESTNotificationEmailSettingsRequest", "RESTNotificationEmailSettingsResponse", _ALL,
        test_mail=_MAIL_TEST, oauth=("v7", "v8"), paths={"v5": "VBOEmailSettings"}),
        "job e-mail notifications"),
    SettingsSpec("history_settings", _versions("HistorySettings", "RESTHistorySettings", "RESTHistorySettings"),
                 "how long session history is kept", {"keepAllsessions": False, "keeponlyLast": 53}),
    SettingsSpec("internet_proxy_settings", _versions(
        "InternetProxySettings", "RESTInternetProxyFromClient", "RESTInternetProxy"),
        "the internet proxy of the server", {"useInternetProxy": False, "port": 3128, "useAuthentication": False}),
    SettingsSpec("folder_exclusion_settings", _versions(
        "ExclusionSettings", "RESTExclusionSettings", "RESTExclusionSettingsToClient"),
        "mailbox folders excluded from every backup",
        {"deletedItems": False, "drafts": False, "junkEmail": False, "outbox": False, "syncIssues": False,
         "litigationHold": False, "inPlaceHold": False}),
    SettingsSpec("retention_exclusion_settings", _versions(
        "GlobalRetentionExclusionSettings", "RESTRetentionExclusion", "RESTRetentionExclusion"),
        "item types retention never removes", {"contacts": False, "calendar": False}),
    SettingsSpec("license_auto_update", _versions("License/AutoUpdate", "RESTLicenseAutoUpdate",
                                                  "RESTLicenseAutoUpdate"),
                 "automatic licence update", {"isEnabled": False}),
    SettingsSpec("update_settings", _versions(
        "Configuration/Updates", "RESTUpdateProductConfig", "RESTUpdateProductConfig", ("v8",)),
        "product update checks",
        {"enableCheckForUpdates": True,
         "updateSettings": {"sendEmailOnAvailableUpdates": False, "installUpdatesAutomatically": False}}),
    SettingsSpec("exchange_explorer_email_settings", _versions(
        "VexEmailSettings", "RestSmtpSettingsFromClient", "RESTSmtpSettings",
        test_mail={"v6": "SendTest", "v7": "SendTest", "v8": "SendTestEmail"}, oauth=("v8",)),
        "SMTP of Veeam Explorer for Exchange"),
    SettingsSpec("sharepoint_explorer_email_settings", _versions(
        "VespEmailSettings", "RESTSharePointSmtpSettingsFromClient", "RESTSharePointSmtpSettings",
        test_mail={"v6": "SendTestEmail", "v7": "SendTestEmail", "v8": "SendTestEmail"}, oauth=("v8",)),
        "SMTP of Veeam Explorer for SharePoint"),
    SettingsSpec("onedrive_explorer_email_settings", _versions(
        "VeodEmailSettings", "RESTSharePointSmtpSettingsFromClient", "RESTSharePointSmtpSettings",
        test_mail={"v6": "SendTestEmail", "v7": "SendTestEmail", "v8": "SendTestEmail"}, oauth=("v8",)),
        "SMTP of Veeam Explorer for OneDrive"),
    SettingsSpec("teams_explorer_email_settings", _versions(
        "VetEmailSettings", "RESTTeamsSmtpSettingsFromClient", "RESTSmtpSettings",
        test_mail={"v6": "sendTest", "v7": "sendTest", "v8": "SendTestEmail"}, oauth=("v8",)),
        "SMTP of Veeam Explorer for Teams"),
    SettingsSpec("organization_retention_exclusions", _versions(
        "Organizations/{organizationId}/RetentionExclusion", "RESTRetentionExclusion", "RESTRetentionExclusion"),
        "item types retention never removes, per organization"),
    SettingsSpec("organization_backup_options", _versions(
        "Organizations/{organizationId}/versionBackupOptions", "RESTVersionBackupOptionsFromClient",
        "RESTVersionBackupOptions", ("v8",)),
        "SharePoint version backup mode, per organization", {"sharePointBackupMode": "All"}),
]
_lock = threading.Lock()
_generation = 0


def settings() -> tuple[SettingsSpec, ...]:
    """Every settings object, in the order their changes are applied."""
    with _lock:
        return tuple(_SPECS)


def find(key: str) -> SettingsSpec | None:
    return next((spec for spec in settings() if spec.key == key), None)


def generation() -> int:
    """Changes whenever the list does (lets callers cache what they derive from it)."""
    return _generation


def register(spec: SettingsSpec) -> None:
    """Add a settings object (for extensions and tests; the shipped ones are listed above)."""
    global _generation
    with _lock:
        if any(s.key == spec.key for s in _SPECS):
            raise ValueError(f"settings '{spec.key}' are already registered")
        _SPECS.append(spec)
        _generation += 1


def unregister(key: str) -> None:
    global _generation
    with _lock:
        _SPECS[:] = [s for s in _SPECS if s.key != key]
        _generation += 1


@contextlib.contextmanager
def registered(spec: SettingsSpec) -> Iterator[SettingsSpec]:
    """``spec`` registered for the duration of a ``with`` block."""
    register(spec)
    try:
        yield spec
    finally:
        unregister(spec.key)
