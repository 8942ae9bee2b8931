"""Settings objects (``GET``/``PUT`` of one JSON object), server-wide or one per organization, all driven by their
:class:`~vboplan.kinds.catalog.SettingsSpec`.

A PUT on these endpoints is a partial update: fields left out keep their values. So vboplan manages exactly the
fields a template names and never touches the rest: a server-wide object's PUT sends the fields that change, an
organization's every field its template declares (so the organization converges in one apply whatever the
server-wide values it would otherwise fall back on). A field the GET never returns
(``userPassword``) is planned as "will be set" until a snapshot holds a salted hash of the value last applied.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vboplan import schema
from vboplan.api.client import VboClient
from vboplan.errors import PlanError, RenderError
from vboplan.kinds import catalog, refs
from vboplan.kinds.base import Basis, Export, Request, Write, WriteOnly, named_organizations
from vboplan.kinds.catalog import SettingsSpec
from vboplan.planning.changes import Address, Change, Drift, make
from vboplan.project.yamlfile import where_of
from vboplan.sensitive import MASK, Sensitive, digest_of, is_digest, matches, reveal, same_live
from vboplan.threads import ThreadPoolExecutor


@dataclass(frozen=True)
class SettingsKind:
    """The resource kind of one settings object of the catalog."""

    spec: SettingsSpec
    requires: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.spec.key

    @property
    def per_organization(self) -> bool:
        return self.spec.per_organization

    def fields(self, version: str) -> tuple[dict[str, dict[str, Any]], set[str], set[str]]:
        """(writable fields, readable field names, write-only field names) in ``version``."""
        return self.spec.fields(version)

    def path(self, version: str, org_id: str = "") -> str:
        return self.spec.endpoints[version].path.replace(catalog.ORGANIZATION_ID, org_id)

    def _base(self, org: str | None) -> Address:
        return Address(self.name) if org is None else Address(self.name).entry(org)

    # -- templates ---------------------------------------------------------------------------------------------

    def normalise(self, version: str, raw: Any, where: Callable[[Any], str]) -> dict[str, Any]:
        if self.spec.endpoint(version) is None:
            raise RenderError(f"{where(None)}: {self.name} is not in API {version}; it exists in "
                              f"{', '.join(self.spec.versions)} (set api_version of the environment, or render "
                              f"{self.name} only where environment.api_version has it)")
        if not self.per_organization:
            return self._fields(version, raw, where, self.name)
        if not isinstance(raw, dict):
            raise RenderError(f"{where(None)}: {self.name} must map organization names to API fields")
        desired: dict[str, Any] = {}
        for org, fields in raw.items():
            name = str(org)
            if name.lower() in (o.lower() for o in desired):
                raise RenderError(f"{where(org)}: organization '{name}' is listed twice")
            line = where_of(fields, lambda _key, _org=org: where(_org))
            hidden = [key for key, value in (fields or {}).items() if isinstance(value, Sensitive)] \
                if isinstance(fields, dict) else []
            if hidden:
                # Live values are kept in plans and snapshots as read; a secret() here would be kept in clear there.
                raise RenderError(f"{line(hidden[0])}: {self._base(name).field(hidden[0])} is not a secret field; "
                                  "secret() cannot be used for per-organization settings")
            desired[name] = self._fields(version, {} if fields is None else fields, line, str(self._base(name)))
        return desired

    def _fields(self, version: str, raw: Any, where: Callable[[Any], str], label: str) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise RenderError(f"{where(None)}: {label} must be a mapping of API fields")
        writable, readable, _ = self.spec.fields(version)
        by_lower = {name.lower(): name for name in writable}
        response_only = {name.lower() for name in readable - set(writable)}
        desired: dict[str, Any] = {}
        for key, value in raw.items():
            name = by_lower.get(str(key).lower())
            if name is None:
                if str(key).lower() in response_only:
                    raise RenderError(f"{where(key)}: {label}.{key} is set by the server (response-only in API "
                                      f"{version}) and cannot be managed; remove it")
                hint = schema.nearest(str(key), sorted(writable))
                raise RenderError(f"{where(key)}: {label}: unknown field '{key}' for API {version}"
                                  + (f"; did you mean '{hint}'?" if hint else ""))
            if name in desired:
                raise RenderError(f"{where(key)}: {label}.{name} is given twice")
            sensitive = isinstance(value, Sensitive) or writable[name].get("format") == "password"
            try:
                bound = schema.bind(version, writable[name], reveal(value), f"{label}.{name}", unknown="error")
            except schema.SchemaError as exc:
                shown = exc.message if not sensitive else "the value has the wrong type"
                raise RenderError(f"{where(key)}: {exc.where}: {shown}") from None
            desired[name] = Sensitive(bound) if sensitive else bound
        return desired

    # -- plan --------------------------------------------------------------------------------------------------

    def scope(self, desired: dict[str, Any]) -> Any:
        if self.per_organization:
            return {org: sorted(fields) for org, fields in sorted(desired.items())}
        return sorted(desired)

    def addresses(self, scope: Any) -> set[Address]:
        found = {Address(self.name)}
        instances = scope.items() if self.per_organization else [(None, scope)]
        for org, fields in instances:
            base = self._base(org)
            found |= {base} | {base.field(name) for name in fields}
        return found

    def read(self, client: VboClient, scope: Any) -> dict[str, Any]:
        if not self.per_organization:
            return self._read_fields(client, self.path(client.version), scope)
        if not scope:
            return {}
        resolver = refs.resolver(client)
        orgs = {org.lower(): resolver.organization(org, self.name) for org in scope}

        def one(org: str) -> dict[str, Any]:
            org_id = str(orgs[org.lower()]["id"])
            return {"id": org_id, "values": self._read_fields(client, self.path(client.version, org_id), scope[org])}

        # One GET per organization, independent of each other: sent together (the client bounds what is in flight).
        with ThreadPoolExecutor(max_workers=min(len(scope), 8)) as pool:
            return dict(zip(scope, pool.map(one, scope), strict=True))

    def refresh(self, client: VboClient, scope: Any, live: Any) -> dict[str, Any]:
        """``scope`` read again; per organization by the ids ``live`` (an earlier read) holds, without listing the
        organizations."""
        if not self.per_organization or not isinstance(live, dict) or set(live) != set(scope) \
                or not all(isinstance(data, dict) and "id" in data for data in live.values()):
            return self.read(client, scope)

        def one(org: str) -> dict[str, Any]:
            org_id = str(live[org]["id"])
            return {"id": org_id, "values": self._read_fields(client, self.path(client.version, org_id), scope[org])}

        if not scope:
            return {}
        with ThreadPoolExecutor(max_workers=min(len(scope), 8)) as pool:
            return dict(zip(scope, pool.map(one, scope), strict=True))

    def _read_fields(self, client: VboClient, path: str, fields: list[str]) -> dict[str, Any]:
        body = client.get_settings(path)
        _, readable, _ = self.spec.fields(client.version)
        by_lower = {k.lower(): k for k in body}
        live = {}
        # Fields every PUT must carry are read (and recorded in the plan) even when no template names them: the
        # PUT's body is then known in full when the plan is shown, and never read again at apply.
        for name in [*fields, *(f for f in self.spec.required(client.version) if f not in fields)]:
            if name in readable:
                key = by_lower.get(name.lower())
                live[name] = body.get(key) if key else None
        return live

    def diff(self, version: str, live: Any, desired: dict[str, Any], recorded: Any | None) -> list[Change]:
        if not self.per_organization:
            return self._diff(version, None, {}, live, desired, (recorded or {}).get("secrets", {}))
        changes: list[Change] = []
        for org, fields in sorted(desired.items()):
            org_live = live[org]
            secrets = _org_record(recorded, org).get("secrets", {})
            changes += self._diff(version, org, {"org": org, "orgId": org_live["id"]}, org_live["values"], fields,
                                  secrets)
        return changes

    def _diff(self, version: str, org: str | None, where: dict[str, Any], live: dict[str, Any],
              desired: dict[str, Any], secrets: dict[str, Any]) -> list[Change]:
        _, readable, write_only = self.spec.fields(version)
        base = self._base(org)
        changes: list[Change] = []
        comparable = {k: reveal(v) for k, v in desired.items() if k in readable}
        seen = {k: _project(live.get(k), v) for k, v in comparable.items()}
        differing = {name for name, value in comparable.items() if _differs(seen[name], value)}
        for name in sorted(differing):
            value = desired[name]
            sensitive = isinstance(value, Sensitive)
            before = Sensitive(seen.get(name)) if sensitive else seen.get(name)
            changes.append(make("update", self.name, base.field(name), before, value, sensitive,
                                {**where, "field": name}))
        for name in sorted(set(desired) & write_only):
            value = desired[name]
            if matches(reveal(value), secrets.get(name)):
                continue  # the value recorded at the last apply: nothing to do
            # Write-only: the server never returns it, so without a recorded hash we can only say it will be set.
            changes.append(make("update", self.name, base.field(name), None,
                                value if isinstance(value, Sensitive) else Sensitive(value), True,
                                {**where, "field": name, "write_only": True, "recorded": name in secrets}))
        return changes

    def derive(self, basis: Basis, address: Address, action: str, after: Any) -> Change:
        org, name = self._target(address)
        if action != "update":
            raise PlanError(f"{address}: a settings field is only ever updated, not {action}d")
        if self.spec.endpoint(basis.version) is None:
            raise PlanError(f"{address}: {self.name} is not in API {basis.version}")
        writable, readable, write_only = self.spec.fields(basis.version)
        if name not in writable:
            raise PlanError(f"{address}: {self.name} has no field '{name}' a request can set in API {basis.version}")
        declared = (basis.scope or {}).get(org) if org is not None else basis.scope
        if not isinstance(declared, list) or name not in declared:
            raise PlanError(f"{address}: no template of the plan declares this field (it is not in the plan's scope)")
        values, where = self._live_of(basis.live, org, address)
        secret = name in write_only or writable[name].get("format") == "password" or name in basis.secret_fields
        detail: dict[str, Any] = {**where, "field": name}
        if name in write_only:
            return make("update", self.name, address, None, Sensitive(reveal(after)), True,
                        {**detail, "write_only": True, "recorded": False})
        if name not in values:
            raise PlanError(f"{address}: the plan records no live value for this field")
        if secret:
            return make("update", self.name, address, Sensitive(values[name]), Sensitive(reveal(after)), True, detail)
        if is_digest(values[name]):
            # Kept as a hash (the field was secret when last applied): the old secret's value stays masked.
            return make("update", self.name, address, Sensitive(values[name]), after, False, detail)
        before = _project(values[name], after)
        if _canonical(before) == _canonical(after):
            raise PlanError(f"{address}: the live value is already {_canonical(after)}; this is no change")
        return make("update", self.name, address, before, after, False, detail)

    def _target(self, address: Address) -> tuple[str | None, str]:
        """(organization or None, field) an address of this kind names."""
        parts = address.parts
        if address.kind == self.name and not self.per_organization and len(parts) == 1 and parts[0][0] == ".":
            return None, parts[0][1]
        if address.kind == self.name and self.per_organization and len(parts) == 2 and parts[0][0] == "[" \
                and parts[1][0] == ".":
            return parts[0][1], parts[1][1]
        shape = f'{self.name}["ORGANIZATION"].FIELD' if self.per_organization else f"{self.name}.FIELD"
        raise PlanError(f"{address}: not an address of a {self.name} field ({shape})")

    def _live_of(self, live: Any, org: str | None, address: Address) -> tuple[dict[str, Any], dict[str, Any]]:
        """The recorded live values of the object ``org`` names (the server's for None) and the ids that locate it."""
        if org is None:
            if not isinstance(live, dict):
                raise PlanError(f"{address}: the plan records no live values of {self.name}")
            return live, {}
        data = live.get(org) if isinstance(live, dict) else None
        if not isinstance(data, dict) or not isinstance(data.get("values"), dict) or not isinstance(data.get("id"), str):
            raise PlanError(f"{address}: the plan records no live values of organization '{org}'")
        return data["values"], {"org": org, "orgId": data["id"]}

    def severity(self, change: Change) -> Any:
        """How much ``change`` matters (see :mod:`vboplan.policy.severity`)."""
        from vboplan.policy.severity import settings_severity

        return settings_severity(self.name, change)

    def desired_value(self, desired: Any, change: Change) -> Any:
        fields = desired.get(change.detail.get("org"), {}) if self.per_organization else desired
        return (fields or {}).get(change.detail["field"])

    # -- apply -------------------------------------------------------------------------------------------------

    def writes(self, basis: Basis, changes: list[Change]) -> list[Write]:
        """One PUT per object. A server-wide object's PUT carries the changed fields (a PUT is a partial update); an
        organization's carries every field the templates declare for it, the unchanged ones at their recorded live
        values, so the organization's own values never fall back on server-wide ones that the same apply changes.
        Fields every PUT must carry come from the recorded live values too."""
        version = basis.version
        groups: dict[str | None, list[Change]] = {}
        for change in changes:
            groups.setdefault(change.detail.get("org"), []).append(change)
        _, readable, write_only = self.spec.fields(version)
        writes = []
        for org, group in groups.items():
            values, where = self._live_of(basis.live, org, group[0].address)
            body: dict[str, Any] = {}
            if org is not None:
                body.update((name, values[name]) for name in basis.scope.get(org, [])
                            if name in readable and name not in write_only and name in values)
            body.update((change.detail["field"], change.after) for change in group)
            missing = [name for name in self.spec.required(version) if name not in body]
            unknown = [name for name in missing if name not in values]
            if unknown:
                raise PlanError(f"{group[0].address}: the plan records no live value of {', '.join(unknown)}, "
                                "which every PUT must carry; run 'vboplan plan' again")
            body = {**{name: values[name] for name in missing}, **body}
            path = self.path(version, where.get("orgId", ""))
            fields = ", ".join(change.detail["field"] for change in group)
            writes.append(Write(f"PUT /{version}/{path} ({fields})", group,
                                requests=[Request("PUT", path, body, expect=(200, 204))]))
        return writes

    def verify(self, change: Change, live: Any) -> bool:
        if change.write_only:
            return True  # cannot be read back; the PUT's success is all the server tells
        values = live.get(change.detail["org"], {}).get("values", {}) if self.per_organization else live
        wanted = reveal(change.after)
        return _project(values.get(change.detail["field"]), wanted) == wanted

    def snapshot(self, live: Any, applied: list[Change], recorded: Any | None) -> dict[str, Any]:
        if not self.per_organization:
            return _snapshot_fields(live, applied, recorded)
        organizations = dict((recorded or {}).get("organizations", {}))
        for org, data in live.items():
            mine = [c for c in applied if c.detail.get("org") == org]
            organizations[org] = {"id": data["id"], **_snapshot_fields(data["values"], mine, _org_record(recorded,
                                                                                                          org))}
        return {"organizations": organizations}

    def state_rows(self, recorded: Any) -> list[tuple[str, Any]]:
        if not isinstance(recorded, dict):
            return []
        instances = recorded.get("organizations", {}).items() if self.per_organization else [(None, recorded)]
        rows: list[tuple[str, Any]] = []
        for org, record in sorted(instances, key=lambda i: str(i[0])):
            base = self._base(org)
            rows += [(str(base.field(k)), MASK if is_digest(v) else v)
                     for k, v in sorted(record.get("values", {}).items())]
            rows += [(str(base.field(k)), MASK) for k in sorted(record.get("secrets", {}))]
        return rows

    def drift(self, recorded: Any, live: Any) -> list[Drift]:
        if not isinstance(recorded, dict):
            return []
        instances = live.items() if self.per_organization else [(None, {"values": live})]
        drifts = []
        for org, data in instances:
            values = (_org_record(recorded, org) if org is not None else recorded).get("values", {})
            now = data["values"]
            drifts += [Drift(self._base(org).field(name), values[name], now[name], sensitive=is_digest(values[name]))
                       for name in sorted(now) if name in values and not same_live(values[name], now[name])]
        return drifts


    # -- import ------------------------------------------------------------------------------------------------

    def export(self, client: VboClient) -> Export:
        """Every field that can be both set and read back, as a template names it; organizations by name."""
        version = client.version
        if self.spec.endpoint(version) is None:
            return Export(unavailable=f"{self.name} is not in API {version} (it exists in "
                                      f"{', '.join(self.spec.versions)})")
        summary = self.spec.summary
        if not self.per_organization:
            values, write_only, warnings = self._export_fields(version, client.get_settings(self.path(version)),
                                                               Address(self.name))
            return Export(values, (), summary, write_only, warnings)
        exported = Export({}, ("organization",), summary)
        organizations = named_organizations(client, exported.warnings)
        with ThreadPoolExecutor(max_workers=max(1, min(len(organizations), 8))) as pool:
            bodies = list(pool.map(lambda o: client.get_settings(self.path(version, str(o["id"]))),
                                   organizations.values()))
        for (name, _), body in zip(organizations.items(), bodies, strict=True):
            values, write_only, warnings = self._export_fields(version, body, self._base(name))
            exported.values[name] = values
            exported.write_only += [w for w in write_only if w.field not in {x.field for x in exported.write_only}]
            exported.warnings += warnings
        return exported

    def _export_fields(self, version: str, body: dict[str, Any], base: Address
                       ) -> tuple[dict[str, Any], list[WriteOnly], list[str]]:
        writable, readable, write_only = self.spec.fields(version)
        by_lower = {k.lower(): k for k in body}
        values: dict[str, Any] = {}
        warnings: list[str] = []
        secret = {name for name, prop in writable.items() if prop.get("format") == "password"}
        for name, prop in writable.items():
            key = by_lower.get(name.lower())
            if name not in readable or name in secret or prop.get("readOnly") or key is None or body[key] is None:
                continue  # response-only, write-only, a password, or unset: nothing a template should hold
            try:
                # The request schema decides: a nested field the server sets itself is dropped here.
                values[name] = schema.bind(version, prop, body[key], f"{base}.{name}", read_only="ignore")
            except schema.SchemaError as exc:
                warnings.append(f"{base}.{name}: the server's value does not fit API {version} ({exc.message}); "
                                "not imported")
        left_out = [WriteOnly(str(base.field(name)), name,
                              f"{self.name}_{_snake(name)}".upper() if name in secret else "")
                    for name in sorted(write_only | (secret & readable))]
        return values, left_out, warnings


def _org_record(recorded: Any, org: str) -> dict[str, Any]:
    organizations = recorded.get("organizations", {}) if isinstance(recorded, dict) else {}
    return organizations.get(org) or {}


def _differs(live: Any, desired: Any) -> bool:
    """Whether a field's live value differs from the desired one. The JSON text tells true from 1 and 1 from 1.0, as
    deepdiff does, and settles every scalar; deepdiff (order-blind lists) only for a list or object that is not as
    wanted (most plans find most settings as wanted, and deepdiff costs a millisecond a call)."""
    if json.dumps(live, sort_keys=True, default=repr) == json.dumps(desired, sort_keys=True, default=repr):
        return False
    if not isinstance(live, (dict, list)) or not isinstance(desired, (dict, list)):
        return True
    from deepdiff import DeepDiff

    return bool(DeepDiff(live, desired, ignore_order=True))


def _project(live: Any, desired: Any) -> Any:
    """``live`` cut to the shape of ``desired``: of a nested object only the keys the template names count."""
    if isinstance(desired, dict) and isinstance(live, dict):
        return {key: _project(live.get(key), value) for key, value in desired.items()}
    return live


def _snapshot_fields(live: dict[str, Any], applied: list[Change], recorded: Any | None) -> dict[str, Any]:
    secrets = dict((recorded or {}).get("secrets", {}))
    for change in applied:
        if change.write_only:
            secrets[change.detail["field"]] = digest_of(change.after)
    values = dict((recorded or {}).get("values", {}))
    values.update(live)
    return {"values": values, "secrets": secrets}


def _canonical(value: Any) -> str:
    """JSON text that tells true from 1 and 1 from 1.0 (how two values are compared)."""
    return json.dumps(value, sort_keys=True, default=repr, ensure_ascii=False)


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()

