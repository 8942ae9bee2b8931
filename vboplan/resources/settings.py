"""Server-wide settings singletons (``GET``/``PUT`` of one object), such as AuditEmailSettings.

A PUT on these endpoints is a partial update: fields left out keep their values. So vboplan manages exactly the
fields a template names, sends only the ones that change, and never touches the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from deepdiff import DeepDiff

from .. import schema
from ..api.client import VboClient
from ..changes import Change, Drift
from ..errors import RenderError
from ..sensitive import Sensitive, digest, is_digest, matches, reveal, same_live
from .base import Write


@dataclass(frozen=True)
class SettingsKind:
    """A settings singleton, described by data: its name in templates, its endpoint and its two schemas."""

    name: str
    endpoint: str                      # path after /vN/
    request_schema: str
    response_schema: str
    endpoint_v5: str | None = None     # where v5 spells the path differently

    def path(self, version: str) -> str:
        return self.endpoint_v5 if version == "v5" and self.endpoint_v5 else self.endpoint

    def fields(self, version: str) -> tuple[dict[str, dict[str, Any]], set[str], set[str]]:
        """(writable fields, readable field names, write-only field names) for ``version``."""
        writable = schema.properties(version, self.request_schema)
        readable = {name for name, prop in schema.properties(version, self.response_schema).items()
                    if not name.startswith("_")}
        return writable, readable, set(writable) - readable

    # -- templates ---------------------------------------------------------------------------------------------

    def normalise(self, version: str, raw: Any, where: Callable[[Any], str]) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise RenderError(f"{where(None)}: {self.name} must be a mapping of API fields")
        writable, readable, write_only = self.fields(version)
        by_lower = {name.lower(): name for name in writable}
        response_only = {name.lower(): name for name in readable - set(writable)}
        desired: dict[str, Any] = {}
        for key, value in raw.items():
            name = by_lower.get(str(key).lower())
            if name is None:
                if str(key).lower() in response_only:
                    raise RenderError(f"{where(key)}: {self.name}.{key} is set by the server (response-only in API "
                                      f"{version}) and cannot be managed; remove it")
                hint = schema.nearest(str(key), sorted(writable))
                raise RenderError(f"{where(key)}: {self.name}: unknown field '{key}' for API {version}"
                                  + (f"; did you mean '{hint}'?" if hint else ""))
            if name in desired:
                raise RenderError(f"{where(key)}: {self.name}.{name} is given twice")
            sensitive = isinstance(value, Sensitive) or writable[name].get("format") == "password"
            try:
                bound = schema.bind(version, writable[name], reveal(value), f"{self.name}.{name}", unknown="error")
            except schema.SchemaError as exc:
                shown = exc.message if not sensitive else "the value has the wrong type"
                raise RenderError(f"{where(key)}: {exc.where}: {shown}") from None
            desired[name] = Sensitive(bound) if sensitive else bound
        return desired

    # -- plan --------------------------------------------------------------------------------------------------

    def scope(self, desired: dict[str, Any]) -> list[str]:
        return sorted(desired)

    def read(self, client: VboClient, scope: list[str]) -> dict[str, Any]:
        body = client.get_settings(self.path(client.version))
        _, readable, _ = self.fields(client.version)
        by_lower = {k.lower(): k for k in body}
        live = {}
        for name in scope:
            if name in readable:
                key = by_lower.get(name.lower())
                live[name] = body.get(key) if key else None
        return live

    def diff(self, version: str, live: dict[str, Any], desired: dict[str, Any],
             recorded: dict[str, Any] | None) -> list[Change]:
        _, readable, write_only = self.fields(version)
        secrets = (recorded or {}).get("secrets", {})
        changes: list[Change] = []
        comparable = {k: reveal(v) for k, v in desired.items() if k in readable}
        delta = DeepDiff({k: live.get(k) for k in comparable}, comparable, ignore_order=True)
        for name in sorted(delta.affected_root_keys):
            value = desired[name]
            sensitive = isinstance(value, Sensitive)
            before = Sensitive(live.get(name)) if sensitive else live.get(name)
            changes.append(Change(self.name, f"{self.name}.{name}", "update", before, value, sensitive,
                                  {"field": name}))
        for name in sorted(set(desired) & write_only):
            value = desired[name]
            if matches(reveal(value), secrets.get(name)):
                continue  # the value recorded at the last apply: nothing to do
            # Write-only: the server never returns it, so without a recorded hash we can only say it will be set.
            changes.append(Change(self.name, f"{self.name}.{name}", "update", None,
                                  value if isinstance(value, Sensitive) else Sensitive(value), True,
                                  {"field": name, "write_only": True, "recorded": name in secrets}))
        return changes

    # -- apply -------------------------------------------------------------------------------------------------

    def writes(self, client: VboClient, changes: list[Change]) -> list[Write]:
        if not changes:
            return []
        body = {change.detail["field"]: reveal(change.after) for change in changes}
        path = self.path(client.version)
        fields = ", ".join(change.detail["field"] for change in changes)
        return [Write(f"PUT /{client.version}/{path} ({fields})", changes,
                      lambda: client.put_settings(path, body))]

    def verify(self, change: Change, live: dict[str, Any]) -> bool:
        if change.detail.get("write_only"):
            return True  # cannot be read back; the PUT's success is all the server tells
        return live.get(change.detail["field"]) == reveal(change.after)

    def snapshot(self, live: dict[str, Any], applied: list[Change], recorded: dict[str, Any] | None) -> dict[str, Any]:
        secrets = dict((recorded or {}).get("secrets", {}))
        for change in applied:
            if change.detail.get("write_only"):
                secrets[change.detail["field"]] = digest(reveal(change.after))
        values = dict((recorded or {}).get("values", {}))
        values.update(live)
        return {"values": values, "secrets": secrets}

    def drift(self, recorded: dict[str, Any], live: dict[str, Any]) -> list[Drift]:
        values = recorded.get("values", {}) if isinstance(recorded, dict) else {}
        return [Drift(f"{self.name}.{name}", values[name], live[name], sensitive=is_digest(values[name]))
                for name in sorted(live) if name in values and not same_live(values[name], live[name])]
