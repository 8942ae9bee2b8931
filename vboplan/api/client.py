"""The VBO REST client: a session (auth, retries, throttling) that reads pages, streams long lists and sends
declared operations, plus the calls of the settings objects and audit items with their per-version shapes.

Its layers, each a module of this package: :mod:`~vboplan.api.transport` (deadlines, size bound, TLS),
:mod:`~vboplan.api.session` (tokens, retries, errors), :mod:`~vboplan.api.paging`, :mod:`~vboplan.api.streaming`
and :mod:`~vboplan.api.rest` (generic calls from a collection's operations).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from vboplan.api.rest import Rest
from vboplan.api.session import ConnectionSettings, Session
from vboplan.api.streaming import Shape, each_of_list
from vboplan.errors import ApiError

__all__ = ["ConnectionSettings", "Session", "VboClient"]

T = TypeVar("T")


class VboClient(Rest):
    """Talks to one VBO server as one user, at one API version (see :class:`~vboplan.api.session.Session` for the
    constructor's options)."""

    def __init__(self, settings: ConnectionSettings, username: str, password: str, **options: Any) -> None:
        super().__init__(settings, username, password, **options)
        self._organizations: list[dict[str, Any]] | None = None
        self._organizations_lock = threading.Lock()

    def get_settings(self, path: str) -> dict[str, Any]:
        body = self.get(path)
        if not isinstance(body, dict):
            raise ApiError(f"{self.where}: GET /{self.version}/{path} did not return an object")
        return body

    def put_settings(self, path: str, body: dict[str, Any]) -> None:
        # v5 echoes the settings with 200, v6/v7 answer 200, v8 204; any of them means done.
        self.request("PUT", path, json=body, expect=(200, 204))

    def organizations(self) -> list[dict[str, Any]]:
        """The server's organizations, read once per client: every kind that works per organization needs them,
        and nothing vboplan writes adds, removes or renames one."""
        with self._organizations_lock:
            if self._organizations is None:
                if self.traits.organizations_paged:
                    self._organizations = list(self.iter_pages("Organizations"))
                else:
                    body = self.get("Organizations")
                    if not isinstance(body, list) or not all(isinstance(item, dict) for item in body):
                        raise ApiError(f"{self.where}: GET /{self.version}/Organizations did not return a list of "
                                       "organizations")
                    self._organizations = body
            return self._organizations

    def audit_items(self, org_id: str, each: Callable[[dict[str, Any]], T] | None = None,
                    shape: Shape | None = None) -> list[Any]:
        """The organization's audit items (one unpaged list, however long), each passed through ``each`` (or
        decoded by ``shape``) as soon as it arrives: an organization auditing 100,000 users answers ~120 MB, which
        is never held whole, as bytes or as decoded items."""
        return each_of_list(self, f"Organizations/{org_id}/AuditItems", "audit items", each, shape)

    def add_audit_items(self, org_id: str, items: list[dict[str, Any]]) -> None:
        self.request("POST", f"Organizations/{org_id}/AuditItems", json=items,
                     expect=(self.traits.audit_add_status, 200, 201, 204))

    def remove_audit_items(self, org_id: str, item_ids: list[str]) -> None:
        if self.traits.audit_remove_v5_form:
            self.request("POST", f"Organizations/{org_id}/AuditItems/action",
                         json={"remove": {"itemIds": item_ids}}, expect=(200, 204))
        else:
            self.request("POST", f"Organizations/{org_id}/AuditItems/remove", json={"itemIds": item_ids},
                         expect=(self.traits.audit_remove_status, 200, 204))

