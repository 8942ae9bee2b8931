"""What differs between API versions, in one table used by the client and the emulator alike.

Sources: Veeam's OpenAPI documents (v6-v8, as published at https://helpcenter.veeam.com/references/vbo365/8/rest and
collected in github.com/Cenvora/veeam-365 ``openapi_schemas/``); for v5, which has no published document, Veeam's
Help Center v5 pages (https://helpcenter.veeam.com/archive/vbo365/50/rest/) and Ben Young's walkthrough against a real
v5 server (github.com/benyoungnz/benyoung-blog ``src/content/blog/audit-api-notification-setup-in-veeam-backup-for-
office365.md``). Nothing above the API layer tests
a version name; it reads a trait here. Paths of settings endpoints per version live in :mod:`vboplan.kinds.catalog`.
"""

from __future__ import annotations

from dataclasses import dataclass

VERSIONS = ("v5", "v6", "v7", "v8")


@dataclass(frozen=True)
class VersionTraits:
    """How one API version behaves where the versions differ."""

    name: str
    organizations_paged: bool   # GET /Organizations: an array before v8, a page in v8
    settings_put_status: int    # PUT of a settings object: v5-v7 200, v8 204
    settings_put_echoes: bool   # v5 answers the PUT with the settings (Ben Young's v5 audit post, a real server)
    send_test_status: int       # test e-mail actions: v5-v7 200, v8 204
    audit_add_status: int       # POST .../AuditItems: v5 200, v6/v7 201, v8 204
    audit_remove_path: str      # v5 POST .../AuditItems/action {"remove": {...}}, later .../AuditItems/remove
    audit_remove_status: int    # v5-v7 200, v8 204
    logout_status: int | None   # POST /token/logout, absent before v7
    absolute_links: bool        # v5 examples show absolute hrefs, later versions relative ones
    page_total_count: bool      # PageOf*.totalCount: declared in v6/v7 only
    error_style: str            # RESTExceptionInfo fields: "message", "errorCode" (v7), "stackTrace" (v8)

    @property
    def has_logout(self) -> bool:
        return self.logout_status is not None

    @property
    def audit_remove_v5_form(self) -> bool:
        return self.audit_remove_path == "action"


TRAITS: dict[str, VersionTraits] = {
    "v5": VersionTraits("v5", False, 200, True, 200, 200, "action", 200, None, True, False, "message"),
    "v6": VersionTraits("v6", False, 200, False, 200, 201, "remove", 200, None, False, True, "message"),
    "v7": VersionTraits("v7", False, 200, False, 200, 201, "remove", 200, 200, False, True, "errorCode"),
    "v8": VersionTraits("v8", True, 204, False, 204, 204, "remove", 204, 204, False, False, "stackTrace"),
}

PAGE_LIMIT_MAX = 10_000  # "The maximum supported number of items per page is 10,000" (OpenAPI v7/v8)
