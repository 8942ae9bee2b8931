"""The emulated server's data: credentials, organizations with their directory, audit items and e-mail settings.

A :class:`Store` is loaded from a YAML or JSON file (the seed format of contract.md, optionally with ids and audit
items added). Changes are not written by rewriting that file, which takes seconds on a 100,000-user tenant: each
change is appended (and fsynced) to a change log beside it, ``<data file>.changes``, before the request is answered,
and the log is folded into the data file in the background once it grows past :data:`COMPACT_BYTES` (and when a
served emulator stops). So ``vboplan apply`` in one process and ``vboplan plan`` in the next see the same server, a
killed server loses nothing it answered, and reads never wait for a save. Before a request is served the store
catches up with what other processes appended, and re-reads the data file if it was replaced.

The log's first line names the data file it extends (a digest of its bytes); a log of another data file (the data
file was replaced by hand, or a compaction was cut short between its two renames, after which the data file already
holds every change) is ignored. Ids are derived from names (uuid5), so a seed file gives the same ids in every
process without ever being rewritten; ids written in the file win, and derived ones are never written.

Write-only values (``userPassword``) are kept only as a sha256 hex digest (``userPasswordSha256``), never in clear.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import hmac
import json
import os
import re
import threading
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import filelock
import yaml

from vboplan.emulator import collections as named
from vboplan.emulator.versions import fields
from vboplan.errors import ProjectError, VboplanError
from vboplan.kinds import catalog
from vboplan.kinds.catalog import SettingsSpec
from vboplan.project.yamlfile import load_plain
from vboplan.schema import SchemaError, bind, properties
from vboplan.state.files import place, write_temp

_YAML_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

# Namespace of every derived id; fixed so that the same names give the same ids in every process.
_NAMESPACE = uuid.UUID("6f1c3a0e-5b7d-4c1e-9a51-0c6e3f3b7d21")
# The on-premises half of a cloud-only principal id (Veeam's v5 "Get Audit Items" example,
# https://helpcenter.veeam.com/archive/vbo365/50/rest/get_audititems.html: "…00000000-0000-0000-0000-000000000000").
_NO_ON_PREMISES_ID = "00000000-0000-0000-0000-000000000000"

# A write-only value (format password) is kept as ``<field>Sha256``; ``userPassword`` is the usual one.
HASH_SUFFIX = "Sha256"
DEFAULT_CREDENTIALS = [{"username": "admin", "password": "admin"}]
CHANGES_SUFFIX = ".changes"
LOCK_SUFFIX = ".lock"
COMPACT_BYTES = 4 * 1024 * 1024  # a change log past this is folded into the data file in the background
_DERIVED_ID_AND_MSID = ("id", "msid")
_DERIVED_ID = ("id",)
_DERIVED_MSID = ("msid",)

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
    derived: dict[str, tuple[str, ...]] = field(default_factory=dict)  # keys derived at load, never written back
    # Each entry as the API shows it, encoded, by entry id, per (version, link base): a directory never changes
    # after it is loaded, so a page of 10,000 entries is joined from these instead of built and encoded again.
    views: dict[tuple[str, str], dict[str, bytes]] = field(default_factory=dict, repr=False, compare=False)
    # What writes those entries, per (version, link base): the emulator's templates of users' views.
    writers: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False, compare=False)

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

    def persisted(self) -> list[dict[str, Any]] | _Entries:
        """The items as the data file holds them (derived ids left out), computed when iterated: the API never
        changes a directory, so a snapshot can share it and render it outside every lock."""
        return _Entries(self.items, self.derived) if self.items else []


class _Entries:
    """Directory items without their derived keys, produced while a data file is being written."""

    def __init__(self, items: list[dict[str, Any]], derived: dict[str, tuple[str, ...]]) -> None:
        self.items, self.derived = items, derived

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        derived = self.derived
        for item in self.items:
            drop = derived.get(item["id"]) if derived else None
            yield {k: v for k, v in item.items() if k not in drop} if drop else item


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
    id_derived: bool = False
    #: Changes of :attr:`audit_items` applied so far (from this process or caught up from another): an answer kept
    #: for this organization's audit list is good while the count is the one it was built at.
    audit_writes: int = field(default=0, compare=False)

    def directory(self, kind: str) -> Directory:
        """``users``, ``groups``, ``sites`` or ``teams``."""
        return getattr(self, kind)

    def snapshot(self) -> dict[str, Any]:
        """The persisted form (the seed format plus audit items and settings; derived ids left out), sharing the
        directory, so it is cheap to take under the store's lock."""
        data: dict[str, Any] = {} if self.id_derived else {"id": self.id}
        data["name"] = self.name
        data.update(copy.deepcopy(self.extra))
        for kind in ("users", "groups", "sites", "teams"):
            directory = self.directory(kind)
            if directory.items or kind in ("users", "groups"):
                data[kind] = directory.persisted()
        if self.audit_items:
            data["audit_items"] = [dict(item) for item in self.audit_items]
        data.update({key: copy.deepcopy(values) for key, values in self.settings.items() if values})
        return data

    def to_data(self) -> dict[str, Any]:
        """The persisted form with plain lists."""
        return {k: list(v) if isinstance(v, _Entries) else v for k, v in self.snapshot().items()}


class Store:
    """The emulated server's data. Not thread-safe by itself: callers hold :attr:`lock` (the Emulator does)."""

    def __init__(self, data: Mapping[str, Any] | None = None, *, path: Path | None = None,
                 source: str = "data") -> None:
        self.path = path
        self.lock = threading.RLock()
        # Set by a change that is not journaled: the whole file is then written at the end of the mutation.
        self.dirty = False
        self._stamp: tuple[int, int, int] | None = None
        self._source = source
        self._base = ""  # digest of the data file's bytes as read or written: the log's first line must name it
        self._log_stamp: tuple[int, int] | None = None  # (inode, size) of the change log when last read
        self._log_offset = 0  # bytes of the change log applied
        self._log_header = 0  # bytes of its first line
        self._pending: list[dict[str, Any]] = []  # changes of the current mutation, journaled at its end
        self._compacting = threading.Lock()
        self._cross_process = filelock.FileLock(str(path) + LOCK_SUFFIX) if path is not None else None
        self._load(dict(data or {}))

    # -- construction ------------------------------------------------------------------------------------------

    @classmethod
    def from_data(cls, data: Mapping[str, Any] | None = None) -> Store:
        """An in-memory store (nothing is persisted) from seed data in the contract's format."""
        return cls(data, path=None)

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> Store:
        """An in-memory store seeded from a YAML/JSON file that is never written back."""
        return cls(_read_file(Path(path))[0], path=None, source=str(path))

    @classmethod
    def open(cls, path: str | os.PathLike[str], seed: str | os.PathLike[str] | Mapping[str, Any] | None = None
             ) -> Store:
        """A store persisted at ``path`` (YAML, or JSON when it ends in ``.json``).

        Loads ``path`` when it exists, else ``seed`` (a YAML/JSON file or a mapping) when given, else starts empty;
        every later change is written back to ``path``. Raises :class:`StoreError` for unreadable or invalid data.
        """
        target = Path(path)
        if target.exists():
            stamp = _file_stamp(target)
            data, digest = _read_file(target)
            store = cls(data, path=target, source=str(target))
            store._stamp, store._base = stamp, digest
            store._catch_up()
            return store
        if seed is None:
            data = {}
            source = str(target)
        elif isinstance(seed, Mapping):
            data, source = dict(seed), "seed data"
        else:
            data, source = _read_file(Path(seed))[0], str(seed)
        return cls(data, path=target, source=source)

    # -- loading -----------------------------------------------------------------------------------------------

    def _load(self, data: dict[str, Any]) -> None:
        where = self._source
        singletons = [spec for spec in catalog.settings() if not spec.per_organization]
        known = {"credentials", "organizations", "installation_id", "test_emails", *(s.key for s in singletons),
                 *named.seed_keys()}
        unknown = sorted(set(data) - known)
        if unknown:
            raise StoreError(f"{where}: unknown key {unknown[0]!r} (expected one of {', '.join(sorted(known))})")
        self._installation_given = bool(data.get("installation_id"))
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
        # Named collections of the registry (vboplan.emulator.collections), by kind key.
        try:
            from vboplan.emulator import jobs

            data = jobs.seeded(data, self.organizations, where, derived_uuid)  # jobs seeded by name
            self.collections = named.load(data, where, lambda kind, key: derived_uuid(kind, key))
        except named.SeedError as exc:
            raise StoreError(str(exc)) from None

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
                           Directory("teams"), id_derived=not raw.get("id"))
        for kind in ("users", "groups", "sites", "teams"):
            items = raw.get(kind) or []
            if not isinstance(items, list):
                raise StoreError(f"{where}: {kind} must be a list")
            seen: Counter[str] = Counter()
            directory = org.directory(kind)
            for index, item in enumerate(items):
                principal, derived = self._load_principal(kind, org_id, item, seen, f"{where}.{kind}[{index}]")
                directory.add(principal)
                if derived:
                    directory.derived[principal["id"]] = derived
        for index, item in enumerate(raw.get("audit_items") or []):
            org.audit_items.append(self._load_audit_item(org, item, f"{where}.audit_items[{index}]"))
        for key, spec in per_org.items():
            if raw.get(key) is not None:
                org.settings[key] = _load_settings(spec, raw[key], where)
        return org

    @staticmethod
    def _load_principal(kind: str, org_id: str, raw: Any, seen: Counter[str], where: str
                        ) -> tuple[dict[str, Any], tuple[str, ...]]:
        """The principal with its ids, and which of its keys were derived (never written back)."""
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
            return item, ()
        object_id = derived_uuid(kind, org_id, key if seen[key] == 1 else f"{key}#{seen[key]}")
        id_derived = "id" not in item
        if id_derived:
            item["id"] = f"{object_id}{_NO_ON_PREMISES_ID}" if kind in ("users", "groups") else object_id
        msid_derived = kind in ("users", "groups") and "msid" not in item
        if msid_derived:
            item["msid"] = object_id
        return item, (_DERIVED_ID_AND_MSID if id_derived and msid_derived else _DERIVED_ID if id_derived
                      else _DERIVED_MSID if msid_derived else ())

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

    def snapshot(self) -> dict[str, Any]:
        """Everything the store holds in the persisted form (no password in clear, no derived id), sharing the
        directories: cheap to take under :attr:`lock`, rendered outside it."""
        data: dict[str, Any] = {"installation_id": self.installation_id} if self._installation_given else {}
        data["credentials"] = [dict(entry) for entry in self.credentials]
        data["organizations"] = [org.snapshot() for org in self.organizations]
        data.update({key: copy.deepcopy(values) for key, values in self.settings.items() if values})
        if self.test_emails:
            data["test_emails"] = dict(self.test_emails)
        data.update(named.persisted(self.collections))
        return data

    def to_data(self) -> dict[str, Any]:
        """Everything the store holds, in the persisted form, as plain data."""
        data = self.snapshot()
        data["organizations"] = [{k: list(v) if isinstance(v, _Entries) else v for k, v in org.items()}
                                 for org in data["organizations"]]
        return data

    def save(self) -> None:
        """Write the whole store to its file now (temp file, fsync, rename) and start an empty change log."""
        self.dirty = False
        self._pending = []
        if self.path is None:
            return
        with self.lock, self._lock_files():
            text = self._render(self.snapshot())
            temp = self._write_temp(text)
            self._install(temp, text)

    def compact(self) -> bool:
        """Fold the change log into the data file. The file is rendered and written outside every lock; only the
        two renames hold the locks, and only if nothing was appended meanwhile (else nothing changes and False is
        returned: a later compaction will do it). Safe to run in a thread."""
        if self.path is None or not self._compacting.acquire(blocking=False):
            return False
        try:
            with self.lock:
                self.refresh()
                if self._log_offset <= self._log_header and self.path.exists():
                    return True  # nothing logged
                snapshot, seen = self.snapshot(), (self._base, self._log_stamp, self._log_offset)
            text = self._render(snapshot)
            temp = self._write_temp(text)
            with self.lock, self._lock_files():
                self.refresh()
                if (self._base, self._log_stamp, self._log_offset) != seen:
                    with contextlib.suppress(OSError):
                        os.unlink(temp)
                    return False
                self._install(temp, text)
            return True
        finally:
            self._compacting.release()

    def close(self) -> None:
        """Fold any logged changes into the data file (a server that stops leaves one tidy file)."""
        if self.path is not None and self._log_offset > self._log_header:
            self.compact()

    def _render(self, data: dict[str, Any]) -> str:
        assert self.path is not None
        return _json_text(data) if self.path.suffix.lower() == ".json" else _yaml_text(data)

    def _write_temp(self, text: str) -> str:
        """``text`` in a synced temporary file beside the data file, with the data file's mode."""
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        mode = self.path.stat().st_mode & 0o777 if self.path.exists() else 0o600
        return str(write_temp(self.path, text, mode))

    def _install(self, temp: str, text: str) -> None:
        """Rename ``temp`` over the data file, then start a change log that extends it (callers hold the locks)."""
        assert self.path is not None
        place(Path(temp), self.path)
        self._stamp = _file_stamp(self.path)
        self._base = _digest(text.encode("utf-8"))
        self._start_log()

    def _start_log(self) -> None:
        """A fresh change log naming the current data file (atomic, so readers see the old log or the new)."""
        assert self.path is not None
        header = (json.dumps({"base": self._base}) + "\n").encode("utf-8")
        log = self._log_path()
        place(write_temp(log, header), log)
        st = log.stat()
        self._log_stamp, self._log_offset = (st.st_ino, st.st_size), len(header)
        self._log_header = len(header)

    def _log_path(self) -> Path:
        assert self.path is not None
        return self.path.with_name(self.path.name + CHANGES_SUFFIX)

    def refresh(self) -> None:
        """Catch up with other processes: re-read the data file if it was replaced, then apply what was appended to
        the change log since we last looked. Two ``stat`` calls when nothing changed."""
        if self.path is None:
            return
        stamp = _file_stamp(self.path)
        if stamp is not None and stamp != self._stamp:
            data, digest = _read_file(self.path)
            self._source = str(self.path)
            self._load(data)
            self._stamp, self._base = stamp, digest
            self._log_stamp, self._log_offset = None, 0
        self._catch_up()

    def _catch_up(self) -> None:
        assert self.path is not None
        log = self._log_path()
        try:
            st = log.stat()
        except OSError:
            self._log_stamp, self._log_offset = None, 0
            return
        if (st.st_ino, st.st_size) == self._log_stamp:
            return
        with open(log, "rb") as handle:
            header = handle.readline()
            try:
                base = json.loads(header).get("base") if header.endswith(b"\n") else None
            except (ValueError, AttributeError):
                base = None
            if base != self._base:  # a log of another data file: everything in it is already there, or lost
                self._log_stamp, self._log_offset = (st.st_ino, st.st_size), 0
                return
            self._log_header = len(header)
            offset = self._log_offset if self._log_stamp and self._log_stamp[0] == st.st_ino else len(header)
            handle.seek(offset)
            rest = handle.read()
        complete = rest[:rest.rfind(b"\n") + 1]  # a line still being written waits for the next look
        for number, line in enumerate(complete.splitlines(), 1):
            try:
                change = json.loads(line)
            except ValueError:
                raise StoreError(f"{log}: change {number} after byte {offset} is not valid JSON") from None
            self._apply(change)
        self._log_stamp, self._log_offset = (st.st_ino, st.st_size), offset + len(complete)

    def _record(self, change: dict[str, Any]) -> None:
        """Apply ``change`` and keep it for the change log (written when the mutation ends)."""
        self._apply(change)
        self._pending.append(change)

    def _journal(self) -> None:
        """Append the pending changes to the change log and fsync it (callers hold the locks)."""
        assert self.path is not None
        changes, self._pending = self._pending, []
        if not changes:
            return
        if not self.path.exists():
            self.save()  # a store opened from a seed: its first change writes the data file
            return
        if self._log_offset == 0:
            self._start_log()  # no log yet, or one of another data file
        payload = "".join(json.dumps(change, ensure_ascii=False, separators=(",", ":")) + "\n"
                          for change in changes).encode("utf-8")
        log = self._log_path()
        with open(log, "r+b") as handle:
            size = handle.seek(0, os.SEEK_END)
            if size > self._log_offset:
                # A writer killed mid-line left a torn change after everything we applied: drop it.
                handle.truncate(self._log_offset)
                handle.seek(self._log_offset)
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
            st = os.fstat(handle.fileno())
        self._log_stamp, self._log_offset = (st.st_ino, st.st_size), st.st_size
        if self._log_offset > COMPACT_BYTES:
            threading.Thread(target=self.compact, name="vbo-emulator-compact", daemon=True).start()

    def _apply(self, change: dict[str, Any]) -> None:
        """Carry out one logged change (from this process or, when catching up, from another)."""
        op = change.get("op")
        org = self.organization(str(change["org"])) if change.get("org") else None
        if change.get("org") and org is None:
            raise StoreError(f"a logged change names an unknown organization {change['org']!r}")
        if op == "settings":
            holder = org.settings if org is not None else self.settings
            if change.get("values") is None:
                holder.pop(change["key"], None)
            else:
                holder[change["key"]] = change["values"]
        elif op == "collection":
            named.apply_change(self.collections, change)
        elif op == "test_email":
            self.test_emails[change["kind"]] += 1
        elif op == "audit_add" and org is not None:
            org.audit_writes += 1
            audited = {item["principalId"] for item in org.audit_items}
            for kind, principal_id in change["items"]:
                if principal_id not in audited:
                    org.audit_items.append({"id": audit_item_id(org.id, principal_id), "type": kind,
                                            "principalId": principal_id})
                    audited.add(principal_id)
        elif op == "audit_remove" and org is not None:
            org.audit_writes += 1
            removed = set(change["ids"])
            org.audit_items = [item for item in org.audit_items if item["id"] not in removed]
        else:
            raise StoreError(f"a logged change of an unknown kind: {op!r}")

    @contextlib.contextmanager
    def mutation(self) -> Iterator[Store]:
        """Hold the store (and, across processes, its files) while catching up, changing and journaling."""
        with self.lock, self._lock_files():
            self.refresh()
            self._pending = []
            try:
                yield self
            finally:
                if self.path is not None:
                    if self.dirty:
                        self.save()  # a change made without a journal entry: write everything
                    else:
                        self._journal()
                self._pending = []

    @contextlib.contextmanager
    def _lock_files(self) -> Iterator[None]:
        # filelock counts re-entries, so a nested mutation does not wait for itself.
        if self._cross_process is None:
            yield
            return
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._cross_process:
            yield

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
        merged = copy.deepcopy(self.settings_of(key, org))
        _merge(merged, values, secret)
        # The log holds the merged object (hashes only, never a password in clear).
        self._record({"op": "settings", "key": key, "org": org.id if org else None, "values": merged})

    def reset_settings(self, key: str, org: Organization) -> None:
        """Forget ``org``'s own values of ``key`` (DELETE of a per-organization override)."""
        self._record({"op": "settings", "key": key, "org": org.id, "values": None})

    def collection_change(self, change: dict[str, Any]) -> None:
        """Record a change of a named collection (see :func:`vboplan.emulator.collections.apply_change`)."""
        self._record(change)

    def record_test_email(self, kind: str) -> None:
        """Count a test e-mail sent for settings ``kind``."""
        self._record({"op": "test_email", "kind": kind})

    def add_audit_items(self, org: Organization, principals: list[tuple[str, str]]) -> None:
        """Audit each ``(type, principalId)``; a principal already audited is left as it is."""
        self._record({"op": "audit_add", "org": org.id, "items": [list(p) for p in principals]})

    def remove_audit_items(self, org: Organization, item_ids: set[str]) -> None:
        """Stop auditing the items with these ids."""
        self._record({"op": "audit_remove", "org": org.id, "ids": sorted(item_ids)})


def audit_item_id(org_id: str, principal_id: str) -> str:
    """The server-assigned id of the audit item for a principal: a GUID followed by the principal id (Veeam's v5
    "Get Audit Items" example, https://helpcenter.veeam.com/archive/vbo365/50/rest/get_audititems.html)."""
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
    parts = [dump(head)] if head else []
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
    if tail:
        parts.append(dump(tail))
    return "".join(parts)


@functools.cache
def _principal_keys(kind: str) -> frozenset[str]:
    return frozenset(prop for prop, _ in fields("v8", _PRINCIPAL_COMPONENTS[kind])) - {"_links"}


def _digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:32]


def _read_file(path: Path) -> tuple[dict[str, Any], str]:
    """The data in ``path`` and the digest of its bytes."""
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise StoreError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        # YAML under the configuration files' bounds: aliases that expand past a million values, or nesting past a
        # hundred levels, are refused before anything is built.
        data = json.loads(text) if path.suffix.lower() == ".json" else load_plain(text, str(path))
    except ValueError as exc:
        first = re.sub(r"\s+", " ", str(exc)).strip()
        raise StoreError(f"{path} is not valid JSON: {first}") from None
    except RecursionError:
        raise StoreError(f"{path} is not valid JSON: nested too deeply") from None
    except ProjectError as exc:
        raise StoreError(str(exc)) from None
    if data is None:
        return {}, _digest(raw)
    if not isinstance(data, dict):
        raise StoreError(f"{path}: expected a mapping at the top level")
    return data, _digest(raw)


def _file_stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)
