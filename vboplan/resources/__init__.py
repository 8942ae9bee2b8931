"""The registry of managed resource kinds, in the order their changes are applied."""

from __future__ import annotations

from .audit_items import AuditItemsKind
from .base import ResourceKind, Write
from .settings import SettingsKind

KINDS: dict[str, ResourceKind] = {
    kind.name: kind for kind in (
        SettingsKind("audit_email_settings", "AuditEmailSettings",
                     "RESTAuditEmailSettingsRequest", "RESTAuditEmailSettingsResponse"),
        SettingsKind("job_email_settings", "VboEmailSettings",
                     "RESTNotificationEmailSettingsRequest", "RESTNotificationEmailSettingsResponse",
                     endpoint_v5="VBOEmailSettings"),
        AuditItemsKind(),
    )
}

__all__ = ["KINDS", "ResourceKind", "Write", "SettingsKind"]
