"""The emulated server's data: credentials, organizations with their directory, audit items and e-mail settings.

A :class:`Store` is loaded from a YAML or JSON file (the seed format of contract.md, optionally with ids and audit
items added) and writes every change back to that file atomically, so that ``vboplan apply`` in one process and
``vboplan plan`` in the next see the same server. Before a request is served the file is re-read if another process
replaced it. Ids are derived from names (uuid5), so a seed file gives the same ids in every process without ever
being rewritten; ids written in the file win.

Write-only values (``userPassword``) are kept only as a sha256 hex digest (``userPasswordSha256``), never in clear.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import json
import os
import re
import tempfile
import threading
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vboplan.api import catalog
from vboplan.api.catalog import SettingsSpec
from vboplan.emulator.versions import fields
from vboplan.errors import VboplanError
from vboplan.schema import SchemaError, bind, properties

try:  # POSIX only: guards read-modify-write of the data file between processes
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_YAML_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

# Namespace of every derived id; fixed so that the same names give the same ids in every process.
_NAMESPACE = uuid.UUID("6f1c3a0e-5b7d-4c1e-9a51-0c6e3f3b7d21")
# The on-premises half of a cloud-only principal id (NOTES §4: "…00000000-0000-0000-0000-000000000000").
_NO_ON_PREMISES_ID = "00000000-0000-0000-0000-000000000000"

# A write-only value (format password) is kept as ``<field>Sha256``; ``userPassword`` is the usual one.
HASH_SUFFIX = "Sha256"
PASSWORD_HASH_KEY = "userPassword" + HASH_SUFFIX
DEFAULT_CREDENTIALS = [{"username": "admin", "password": "admin"}]

# Fields a seed may give for users and groups beyond displayName/name (RESTUser / RESTGroup of v8, the superset).
_PRINCIPAL_COMPONENTS = {"users": "RESTUser", "groups": "RESTGroup", "sites": "RESTSite", "teams": "RESTTeam"}
_PRINCIPAL_LABELS = {"users": "name", "groups": "name", "sites": "url", "teams": "displayName"}
_STRUCTURAL_ORG_KEYS = {"id", "name", "users", "groups", "sites", "teams", "audit_items"}


class StoreError(VboplanError):
    """The data or seed file cannot be read or does not hold valid emulator data."""


def password_hash(password: str) -> str:
    """The sha256 hex digest under which a write-only password is kept."""
    return hashlib.sha256(password.encode("utf-8")).hexdigest()


def derived_uuid(*parts: str) -> str:
    """``str(uuid.uuid5(_NAMESPACE, ...))`` of the parts, computed directly (3x faster on 100,000 users)."""
    digest = bytearray(hashlib.sha1(_NAMESPACE.bytes + "\x1f".join(parts).encode("utf-8")).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    hx = digest.hex()
    return f"{hx[:8]}-{hx[8:12]}-{hx[12:16]}-{hx[16:20]}-{hx[20:]}"


@dataclass
class Directory:
    """The users (or groups, sites, teams) of one organization, in server order, indexed for O(1) exact lookups."""

    kind: str
    items: list[dict[str, Any]] = field(default_factory=list)
    by_id: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_name: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    by_display_name: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def add(self, item: dict[str, Any]) -> None:
        """Append ``item`` (which already has its ``id``) and index it."""
        if item["id"] in self.by_id:
            raise StoreError(f"duplicate {self.kind[:-1]} id {item['id']!r}")
        self.items.append(item)
        self.by_id[item["id"]] = item
        if isinstance(item.get("name"), str):
            self.by_name.setdefault(item["name"].lower(), []).append(item)
        if isinstance(item.get("displayName"), str):
            self.by_display_name.setdefault(item["displayName"].lower(), []).append(item)

    def get(self, item_id: str) -> dict[str, Any] | None:
        """The item with id ``item_id`` (ids compare case-insensitively, as GUIDs do on the server)."""
        return self.by_id.get(item_id) or self.by_id.get(item_id.lower())


@dataclass
class Organization:
    """One Microsoft 365 organization added to the emulated server."""

    id: str
    name: str
    extra: dict[str, Any]
    users: Directory
    groups: Directory
    sites: Directory
    teams: Directory
    audit_items: list[dict[str, Any]] = field(default_factory=list)  # {"id", "type": "User"|"Group", "principalId"}
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)  # per-organization settings by catalog key

    def directory(self, kind: str) -> Directory:
        """``users``, ``groups``, ``sites`` or ``teams``."""
        return getattr(self, kind)

    def to_data(self) -> dict[str, Any]:
        """The persisted form (seed format plus ids and audit items)."""
        data: dict[str, Any] = {"id": self.id, "name": self.name, **self.extra}
        for kind in ("users", "groups", "sites", "teams"):
            items = self.directory(kind).items
            if items or kind in ("users", "groups"):
                data[kind] = items
        data["audit_items"] = self.audit_items
        data.update({key: values for key, values in self.settings.items() if values})
        return data


class Store:
    """The emulated server's data. Not thread-safe by itself: callers hold :attr:`lock` (the Emulator does)."""

    def __init__(self, data: Mapping[str, Any] | None = None, *, path: Path | None = None,
                 source: str = "data") -> None:
        self.path = path
        self.lock = threading.RLock()
        self.dirty = False
        self._locked = False
        self._stamp: tuple[int, int, int] | None = None
        self._source = source
        self._load(dict(data or {}))

    # -- construction ------------------------------------------------------------------------------------------

    @classmethod
    def from_data(cls, data: Mapping[str, Any] | None = None) -> Store:
        """An in-memory store (nothing is persisted) from seed data in the contract's format."""
        return cls(data, path=None)

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> Store:
        """An in-memory store seeded from a YAML/JSON file that is never written back."""
        return cls(_read_file(Path(path)), path=None, source=str(path))

    @classmethod
    def open(cls, path: str | os.PathLike[str], seed: str | os.PathLike[str] | Mapping[str, Any] | None = None
             ) -> Store:
        """A store persisted at ``path`` (YAML, or JSON when it ends in ``.json``).

        Loads ``path`` when it exists, else ``seed`` (a YAML/JSON file or a mapping) when given, else starts empty;
        every later change is written back to ``path``. Raises :class:`StoreError` for unreadable or invalid data.
        """
        target = Path(path)
        if target.exists():
            store = cls(_read_file(target), path=target, source=str(target))
            store._stamp = _file_stamp(target)
            return store
        if seed is None:
            data: dict[str, Any] = {}
            source = str(target)
        elif isinstance(seed, Mapping):
            data, source = dict(seed), "seed data"
        else:
            data, source = _read_file(Path(seed)), str(seed)
        return cls(data, path=target, source=source)

    # -- loading -----------------------------------------------------------------------------------------------

    def _load(self, data: dict[str, Any]) -> None:
        where = self._source
        singletons = [spec for spec in catalog.settings() if not spec.per_organization]
        known = {"credentials", "organizations", "installation_id", "test_emails", *(s.key for s in singletons)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise StoreError(f"{where}: unknown key {unknown[0]!r} (expected one of {', '.join(sorted(known))})")
        self.installation_id = str(data.get("installation_id") or
                                   derived_uuid("installation", str(self.path.resolve()) if self.path else where))
        self.credentials = self._load_credentials(data.get("credentials", DEFAULT_CREDENTIALS), where)
        self.organizations: list[Organization] = []
        self._org_by_id: dict[str, Organization] = {}
        orgs = data.get("organizations") or []
        if not isinstance(orgs, list):
            raise StoreError(f"{where}: organizations must be a list")
        for index, raw in enumerate(orgs):
            org = self._load_organization(raw, f"{where}: organizations[{index}]")
            if org.id in self._org_by_id:
                raise StoreError(f"{where}: organizations[{index}]: duplicate organization {org.name!r}")
            self.organizations.append(org)
            self._org_by_id[org.id] = org
        # Settings objects by catalog key; one registered later starts empty (see settings_of).
        self.settings: dict[str, dict[str, Any]] = {
            spec.key: _load_settings(spec, data.get(spec.key), where) for spec in singletons}
        emails = data.get("test_emails") or {}
        if not isinstance(emails, dict) or not all(isinstance(v, int) for v in emails.values()):
            raise StoreError(f"{where}: test_emails must map a kind to a count")
        self.test_emails: Counter[str] = Counter({str(k): v for k, v in emails.items()})

    @staticmethod
    def _load_credentials(raw: Any, where: str) -> list[dict[str, str]]:
        if not isinstance(raw, list):
            raise StoreError(f"{where}: credentials must be a list of {{username, password}}")
        out = []
        for index, entry in enumerate(raw):
            ok = isinstance(entry, dict) and isinstance(entry.get("username"), str) and (
                isinstance(entry.get("password"), str) or isinstance(entry.get("passwordSha256"), str))
            if not ok or set(entry) - {"username", "password", "passwordSha256"}:
                raise StoreError(f"{where}: credentials[{index}] must be {{username, password}}")
            out.append({k: str(v) for k, v in entry.items()})
        return out

    def _load_organization(self, raw: Any, where: str) -> Organization:
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"]:
            raise StoreError(f"{where}: an organization needs a name")
        name = raw["name"]
        org_id = str(raw.get("id") or derived_uuid("organization", name.lower())).lower()
        try:
            uuid.UUID(org_id)
        except ValueError:
            raise StoreError(f"{where}: id {org_id!r} is not a uuid") from None
        per_org = {spec.key: spec for spec in catalog.settings() if spec.per_organization}
        extra = {k: v for k, v in raw.items() if k not in _STRUCTURAL_ORG_KEYS and k not in per_org}
        try:
            extra = bind("v8", {"type": "object", "properties": dict(properties("v8", "RestOrganizationComposed"))},
                         extra, unknown="error")
        except SchemaError as exc:
            raise StoreError(f"{where}: {exc}") from None
        org = Organization(org_id, name, extra, Directory("users"), Directory("groups"), Directory("sites"),
                           Directory("teams"))
        for kind in ("users", "groups", "sites", "teams"):
            items = raw.get(kind) or []
            if not isinstance(items, list):
                raise StoreError(f"{where}: {kind} must be a list")
            seen: Counter[str] = Counter()
            for index, item in enumerate(items):
                org.directory(kind).add(self._load_principal(kind, org_id, item, seen, f"{where}.{kind}[{index}]"))
        for index, item in enumerate(raw.get("audit_items") or []):
            org.audit_items.append(self._load_audit_item(org, item, f"{where}.audit_items[{index}]"))
        for key, spec in per_org.items():
            if raw.get(key) is not None:
                org.settings[key] = _load_settings(spec, raw[key], where)
        return org

    @staticmethod
    def _load_principal(kind: str, org_id: str, raw: Any, seen: Counter[str], where: str) -> dict[str, Any]:
        label = _PRINCIPAL_LABELS[kind]
        if not isinstance(raw, dict) or not isinstance(raw.get(label) or raw.get("displayName"), str):
            raise StoreError(f"{where}: needs a {label}")
        if not raw.keys() <= _principal_keys(kind):
            unknown = sorted(set(raw) - _principal_keys(kind))
            raise StoreError(f"{where}: unknown field {unknown[0]!r}")
        item = dict(raw)
        for prop in ("displayName", "name", "url", "title", "mail", "id", "msid"):
            if prop in item and not isinstance(item[prop], str):
                raise StoreError(f"{where}: {prop} must be a string")
        # Ids follow names, so every process derives the same ones; a repeated name gets a counter.
        key = str(raw.get(label) or raw.get("displayName")).lower()
        seen[key] += 1
        if "id" in item and ("msid" in item or kind in ("sites", "teams")):
            return item
        object_id = derived_uuid(kind, org_id, key if seen[key] == 1 else f"{key}#{seen[key]}")
        if "id" not in item:
            item["id"] = f"{object_id}{_NO_ON_PREMISES_ID}" if kind in ("users", "groups") else object_id
        if kind in ("users", "groups"):
            item.setdefault("msid", object_id)
        return item

    @staticmethod
    def _load_audit_item(org: Organization, raw: Any, where: str) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise StoreError(f"{where}: must be a mapping")
        if "principalId" in raw:
            kind = str(raw.get("type", "User")).capitalize()
            directory = org.users if kind == "User" else org.groups
            principal = directory.get(str(raw["principalId"]))
        elif "user" in raw or "group" in raw:
            kind = "User" if "user" in raw else "Group"
            directory = org.users if kind == "User" else org.groups
            wanted = str(raw.get("user") or raw.get("group")).lower()
            found = directory.by_name.get(wanted) or directory.by_display_name.get(wanted) or []
            principal = found[0] if found else None
        else:
            raise StoreError(f"{where}: needs principalId (or user/group naming one)")
        if kind not in ("User", "Group") or principal is None:
            raise StoreError(f"{where}: no such {kind.lower()} in {org.name}")
        return {"id": str(raw.get("id") or audit_item_id(org.id, principal["id"])), "type": kind,
                "principalId": principal["id"]}

    # -- persistence -------------------------------------------------------------------------------------------

    def to_data(self) -> dict[str, Any]:
        """Everything the store holds, in the persisted form (no password in clear)."""
        return {
            "installation_id": self.installation_id,
            "credentials": self.credentials,
            "organizations": [org.to_data() for org in self.organizations],
            **{key: values for key, values in self.settings.items()},
            "test_emails": dict(self.test_emails),
        }

    def save(self) -> None:
        """Write the store to its file atomically (temp file in the same directory, fsync, rename)."""
        self.dirty = False
        if self.path is None:
            return
        data = self.to_data()
        if self.path.suffix.lower() == ".json":
            text = _json_text(data)
        else:
            text = _yaml_text(data)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        mode = self.path.stat().st_mode & 0o777 if self.path.exists() else 0o600
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, mode)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._stamp = _file_stamp(self.path)

    def refresh(self) -> None:
        """Re-read the file if another process replaced it since we last read or wrote it."""
        if self.path is None:
            return
        stamp = _file_stamp(self.path)
        if stamp is None or stamp == self._stamp:
            return
        data = _read_file(self.path)
        self._source = str(self.path)
        self._load(data)
        self._stamp = stamp

    @contextlib.contextmanager
    def mutation(self) -> Iterator[Store]:
        """Hold the store (and, across processes, its directory) while reading, changing and saving it."""
        with self.lock, self._file_lock():
            self.refresh()
            try:
                yield self
            finally:
                if self.dirty:
                    self.save()

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        # flock is per open file: a nested mutation must not take it again, it would wait for itself.
        if self.path is None or fcntl is None or self._locked:
            yield
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Locking the directory rather than a lock file leaves nothing beside the user's data file.
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._locked = True
            yield
        finally:
            self._locked = False
            os.close(fd)  # closing releases the lock

    # -- queries and changes (callers hold the lock) -------------------------------------------------------------

    def check_credentials(self, username: str, password: str) -> str | None:
        """The stored spelling of ``username`` if ``password`` is right (user names compare case-insensitively)."""
        for entry in self.credentials:
            if entry["username"].lower() != username.lower():
                continue
            expected = entry.get("passwordSha256") or password_hash(entry.get("password", ""))
            if hmac.compare_digest(expected, password_hash(password)):
                return entry["username"]
        return None

    def organization(self, org_id: str) -> Organization | None:
        """The organization with id ``org_id`` (any GUID spelling)."""
        return self._org_by_id.get(org_id.lower())

    def find_organization(self, name: str) -> Organization | None:
        """The organization called ``name`` (case-insensitive)."""
        return next((o for o in self.organizations if o.name.lower() == name.lower()), None)

    def settings_of(self, key: str, org: Organization | None = None) -> dict[str, Any]:
        """The stored values of settings object ``key`` (of ``org`` when it is per organization)."""
        holder = org.settings if org is not None else self.settings
        return holder.setdefault(key, {})

    def update_settings(self, key: str, values: Mapping[str, Any], org: Organization | None = None) -> None:
        """Merge ``values`` into settings ``key`` (of ``org``); a write-only password is stored as its hash only,
        a nested object is merged the same way."""
        spec = catalog.find(key)
        secret = _password_fields(spec) if spec else {"userPassword"}
        _merge(self.settings_of(key, org), values, secret)
        self.dirty = True

    def reset_settings(self, key: str, org: Organization) -> None:
        """Forget ``org``'s own values of ``key`` (DELETE of a per-organization override)."""
        org.settings.pop(key, None)
        self.dirty = True

    def record_test_email(self, kind: str) -> None:
        """Count a test e-mail sent for settings ``kind``."""
        self.test_emails[kind] += 1
        self.dirty = True

    def add_audit_items(self, org: Organization, principals: list[tuple[str, str]]) -> None:
        """Audit each ``(type, principalId)``; a principal already audited is left as it is."""
        audited = {item["principalId"] for item in org.audit_items}
        for kind, principal_id in principals:
            if principal_id not in audited:
                org.audit_items.append({"id": audit_item_id(org.id, principal_id), "type": kind,
                                        "principalId": principal_id})
                audited.add(principal_id)
        self.dirty = True

    def remove_audit_items(self, org: Organization, item_ids: set[str]) -> None:
        """Stop auditing the items with these ids."""
        org.audit_items = [item for item in org.audit_items if item["id"] not in item_ids]
        self.dirty = True


def audit_item_id(org_id: str, principal_id: str) -> str:
    """The server-assigned id of the audit item for a principal: a GUID followed by the principal id (NOTES §4)."""
    return derived_uuid("audit", org_id, principal_id) + principal_id


def settings_schema(spec: SettingsSpec) -> dict[str, Any]:
    """What a seed may give for ``spec``: the request and response fields together (no links) of the newest
    version that has it."""
    endpoint = spec.endpoints[spec.versions[-1]]
    merged = {**properties(spec.versions[-1], endpoint.response), **properties(spec.versions[-1], endpoint.request)}
    return {"type": "object", "properties": {k: v for k, v in merged.items() if not k.startswith("_")}}


@functools.cache
def _password_fields(spec: SettingsSpec) -> frozenset[str]:
    version = spec.versions[-1]
    return frozenset(name for name, prop in properties(version, spec.endpoints[version].request).items()
                     if prop.get("format") == "password")


def _merge(current: dict[str, Any], values: Mapping[str, Any], secret: Any) -> None:
    for key, value in values.items():
        if key in secret:
            current[key + HASH_SUFFIX] = password_hash(value)
        elif isinstance(value, dict) and isinstance(current.get(key), dict):
            _merge(current[key], value, ())
        else:
            current[key] = value


def _load_settings(spec: SettingsSpec, raw: Any, where: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise StoreError(f"{where}: {spec.key} must be a mapping")
    secret = _password_fields(spec)
    values = dict(raw)
    stored = {name: values.pop(name + HASH_SUFFIX) for name in secret if isinstance(values.get(name + HASH_SUFFIX),
                                                                                   str)}
    try:
        bound = bind(spec.versions[-1], settings_schema(spec), values, spec.key, unknown="error")
    except SchemaError as exc:
        raise StoreError(f"{where}: {exc}") from None
    for name in secret:
        password = bound.pop(name, None)
        if password is not None:
            bound[name + HASH_SUFFIX] = password_hash(password)
        elif name in stored:
            bound[name + HASH_SUFFIX] = stored[name]
    bound.pop("requestId", None)
    return bound


_LISTS = ("users", "groups", "sites", "teams", "audit_items")


def _json_text(data: dict[str, Any]) -> str:
    """``data`` as indented JSON with one directory entry per line (``json.dumps(indent=...)`` falls back to the
    pure-Python encoder, several times slower on a 100,000-user tenant)."""
    def compact(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False)

    def pretty(value: Any, indent: str) -> str:
        return json.dumps(value, indent=1, ensure_ascii=False).replace("\n", "\n" + indent)

    top = []
    for key, value in data.items():
        if key != "organizations" or not value:
            top.append(f" {compact(key)}: {pretty(value, ' ')}")
            continue
        orgs = []
        for org in value:
            members = []
            for name, item in org.items():
                if name in _LISTS and item:
                    rows = ",\n".join("    " + compact(entry) for entry in item)
                    members.append(f"   {compact(name)}: [\n{rows}\n   ]")
                else:
                    members.append(f"   {compact(name)}: {pretty(item, '   ')}")
            orgs.append("  {\n" + ",\n".join(members) + "\n  }")
        top.append(' "organizations": [\n' + ",\n".join(orgs) + "\n ]")
    return "{\n" + ",\n".join(top) + "\n}\n"


def _yaml_text(data: dict[str, Any]) -> str:
    """``data`` as YAML, with directory entries and audit items as one JSON flow mapping per line (JSON is valid
    YAML): PyYAML's representer takes seconds on a 100,000-user tenant, this takes a fraction of one."""
    def dump(value: Any) -> str:
        return yaml.dump(value, Dumper=_YAML_DUMPER, sort_keys=False, allow_unicode=True, width=1000)

    head = {k: v for k, v in data.items() if k in ("installation_id", "credentials")}
    tail = {k: v for k, v in data.items() if k not in head and k != "organizations"}
    parts = [dump(head)]
    organizations = data.get("organizations") or []
    parts.append("organizations:\n" if organizations else "organizations: []\n")
    for org in organizations:
        parts.append(dump([{k: v for k, v in org.items() if k not in _LISTS}]))
        for kind in _LISTS:
            if kind not in org:
                continue
            items = org[kind]
            parts.append(f"  {kind}:" + ("\n" if items else " []\n"))
            parts.extend(f"  - {json.dumps(item, ensure_ascii=False)}\n" for item in items)
    parts.append(dump(tail))
    return "".join(parts)


@functools.cache
def _principal_keys(kind: str) -> frozenset[str]:
    return frozenset(prop for prop, _ in fields("v8", _PRINCIPAL_COMPONENTS[kind])) - {"_links"}


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise StoreError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.load(text, Loader=_YAML_LOADER)
    except (ValueError, yaml.YAMLError) as exc:
        first = re.sub(r"\s+", " ", str(exc)).strip()
        raise StoreError(f"{path} is not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}: {first}"
                         ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise StoreError(f"{path}: expected a mapping at the top level")
    return data


def _file_stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)
