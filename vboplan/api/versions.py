"""What differs between API versions, in one table, so nothing above the API layer needs to know."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VersionTraits:
    """Per-version paths, shapes and success codes of the endpoints vboplan uses (NOTES.md, OpenAPI documents)."""

    name: str
    organizations_paged: bool           # v8 pages /Organizations; v5-v7 return an array
    job_email_path: str                 # v5 documents spell it VBOEmailSettings
    settings_put_status: int            # v5-v7 200, v8 204
    audit_add_status: int               # v5 200, v6/v7 201, v8 204
    audit_remove_status: int            # v5-v7 200, v8 204
    audit_remove_v5_form: bool          # v5: POST .../AuditItems/action {"remove": {"itemIds": [...]}}
    has_logout: bool                    # POST /token/logout exists from v7 on


TRAITS = {
    "v5": VersionTraits("v5", False, "VBOEmailSettings", 200, 200, 200, True, False),
    "v6": VersionTraits("v6", False, "VboEmailSettings", 200, 201, 200, False, False),
    "v7": VersionTraits("v7", False, "VboEmailSettings", 200, 201, 200, False, True),
    "v8": VersionTraits("v8", True, "VboEmailSettings", 204, 204, 204, False, True),
}

PAGE_LIMIT_MAX = 10_000
