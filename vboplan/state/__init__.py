"""State: per environment, the snapshot of what the last apply left on the server, its backup, the apply lock and
the write journal of an apply in progress, kept in the backend vboplan.yaml's ``state:`` names (local by default).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from vboplan.errors import StateBackendError, StateError, StateLockedError
from vboplan.jsontext import document_text
from vboplan.sensitive import keep_recorded_hashes
from vboplan.shapes import STATE_FILE, problem
from vboplan.state.base import Backend, Held, LockBusy, Stored
from vboplan.state.config import StateConfig
from vboplan.state.files import atomic_write, now

if TYPE_CHECKING:
    from vboplan.project.config import Environment, Project

FORMAT_VERSION = 1
JOURNAL_FORMAT = 2  # one JSON line per event; 1: one JSON document, rewritten whole each time
# Plans made before the latest apply are refused anyway, so only recent digests need remembering.
_APPLIED_KEPT = 200
log = logging.getLogger("vboplan")
#: How long a command waits for a busy environment lock before it gives up (seconds; ``--lock-timeout``).
LOCK_TIMEOUT: ContextVar[float] = ContextVar("vboplan_lock_timeout", default=0.0)

# Top-level snapshot fields this module writes; anything else found in a snapshot (such as the digests of the plans
# already applied) is carried over to the next one untouched.
_OWN_FIELDS = {"format_version", "lineage", "serial", "environment", "server", "api_version", "updated_at",
               "resources", "last_apply"}

__all__ = ["FORMAT_VERSION", "StateStore", "StateConfig", "atomic_write", "now", "open_backend"]


def open_backend(project: Project) -> Backend:
    """The backend vboplan.yaml's ``state:`` names; a missing library says which extra to install."""
    config: StateConfig = getattr(project, "state", None) or StateConfig()
    if config.backend == "s3":
        try:
            from vboplan.state.s3 import S3Backend
        except ImportError:
            raise StateBackendError("the s3 state backend needs boto3: pip install 'vboplan[s3]'") from None
        return S3Backend(config)
    if config.backend == "azurerm":
        try:
            from vboplan.state.azurerm import AzureBackend
        except ImportError:
            raise StateBackendError("the azurerm state backend needs azure-storage-blob: "
                                    "pip install 'vboplan[azure]'") from None
        return AzureBackend(config)
    from vboplan.state.local import LocalBackend

    folder = (project.root / config.path) if config.path else project.work_path("state")
    return LocalBackend(folder, project.root)


def lock_info(operation: str) -> dict[str, Any]:
    """Who takes a lock, readable by anyone who finds it held."""
    from vboplan.project.config import current_user

    return {"id": str(uuid.uuid4()), "who": current_user(), "host": socket.gethostname(), "pid": os.getpid(),
            "operation": operation, "when": now()}


def describe_holder(info: dict[str, Any]) -> str:
    pid = f", pid {info['pid']}" if info.get("pid") else ""
    return (f"{info.get('who')} ({info.get('operation')}, on {info.get('host')}{pid}, since {info.get('when')}; "
            f"lock id {info.get('id')})")


class StateStore:
    """One environment's state in the configured backend: ``<env>.json`` (the snapshot), ``<env>.json.bak`` (the
    one before), ``<env>.journal.json`` (the write journal of an apply) and the lock ``<env>.lock``."""

    def __init__(self, project: Project, env: Environment, backend: Backend | None = None) -> None:
        self.env = env
        self.backend = backend or open_backend(project)
        self.key = f"{env.name}.json"
        self.backup_key = f"{env.name}.json.bak"
        self.journal_key = f"{env.name}.journal.json"
        self.lock_key = f"{env.name}.lock"
        self.display = self.backend.location(self.key)
        self._version: str | None = None
        self._read = False
        self._previous: Stored | None = None
        self.held: Held | None = None

    # -- the snapshot ------------------------------------------------------------------------------------------

    def read(self) -> dict[str, Any] | None:
        """The current snapshot, or None before the first apply. Its version is remembered, so that the next
        :meth:`write` is refused if someone else wrote in between."""
        stored = self.backend.get(self.key)
        self._read, self._previous = True, stored
        self._version = stored.version if stored else None
        if stored is None:
            return None
        return self.parse(stored.text)

    def parse(self, text: str) -> dict[str, Any]:
        where = f"{self.display}: "
        backup = f"; the previous snapshot is in {self.backend.location(self.backup_key)}"
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise StateError(f"{where}not valid JSON ({exc}){backup}") from None
        if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
            raise StateError(f"{where}not a vboplan state snapshot of format {FORMAT_VERSION}{backup}")
        problems = []
        if not isinstance(data.get("lineage"), str):
            problems.append("lineage is not a string")
        serial = data.get("serial")
        if not isinstance(serial, int) or isinstance(serial, bool) or serial < 1:
            problems.append("serial is not a positive whole number")
        if not isinstance(data.get("resources", {}), dict):
            problems.append("resources is not a mapping")
        if not isinstance(data.get("last_apply") or {}, dict):
            problems.append("last_apply is not a mapping")
        if data.get("environment") not in (None, self.env.name):
            problems.append(f"it belongs to environment '{data.get('environment')}'")
        if problems:
            raise StateError(f"{where}{'; '.join(problems)}{backup}")
        wrong = problem(data, STATE_FILE)  # and field by field, down to the recorded resources
        if wrong:
            raise StateError(f"{where}not a valid state snapshot: {wrong}{backup}")
        return data

    def resources(self) -> dict[str, Any]:
        snapshot = self.read()
        return snapshot.get("resources", {}) if snapshot else {}

    def write(self, resources: dict[str, Any], last_apply: dict[str, Any],
              applied_plan: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
        """Record a new snapshot (the old one becomes the backup). The serial grows only when the content changes.
        The write is conditional on the snapshot being the one this store read, so two writers never silently
        overwrite each other. ``applied_plan`` is added to ``applied_plans``, which keeps a plan from being applied
        twice. ``extra`` adds or replaces top-level fields; other fields found are carried over."""
        if not self._read:
            self.read()
        previous = self.parse(self._previous.text) if self._previous else None
        carried = {k: v for k, v in (previous or {}).items() if k not in _OWN_FIELDS}
        applied = list(carried.get("applied_plans") or [])
        if applied_plan is not None:
            applied = (applied + [applied_plan])[-_APPLIED_KEPT:]
        carried["applied_plans"] = applied
        carried.update(extra)
        if previous is not None:  # a field kept hashed stays hashed while the server holds the value hashed
            resources = keep_recorded_hashes(resources, previous.get("resources") or {})
        content = {"resources": resources, "last_apply": last_apply, **carried}
        if previous is None:
            lineage, serial = str(uuid.uuid4()), 1
        else:
            lineage = previous["lineage"]
            before = {k: v for k, v in previous.items() if k not in _OWN_FIELDS - {"resources", "last_apply"}}
            serial = previous["serial"] if before == content else previous["serial"] + 1
        snapshot = {
            "format_version": FORMAT_VERSION, "lineage": lineage, "serial": serial, "environment": self.env.name,
            "server": self.env.server, "api_version": self.env.api_version, "updated_at": now(), **content,
        }
        text = document_text(snapshot, sort_keys=True)
        self.check_held()
        if self._previous is not None:
            self.backend.put(self.backup_key, self._previous.text)
        self._version = self.backend.put(self.key, text, expect=self._version)
        self._previous = Stored(text, self._version)
        return snapshot

    # -- the lock ----------------------------------------------------------------------------------------------

    @contextmanager
    def lock(self, operation: str, timeout: float | None = None) -> Iterator[Held]:
        """Hold the environment's lock for the duration; a held lock is a clear error naming its holder and id.
        A busy lock is tried again for up to ``timeout`` seconds (default: :data:`LOCK_TIMEOUT`, which
        ``--lock-timeout`` sets) before that error."""
        held = self._acquire(operation, LOCK_TIMEOUT.get() if timeout is None else timeout)
        for note in held.notes:
            log.warning("environment '%s': %s", self.env.name, note)
        self.held = held
        try:
            swept = self.backend.sweep([self.key, self.backup_key, self.journal_key, self.lock_key])
            if swept:
                log.info("environment '%s': removed %s, left by a run that was killed while writing",
                         self.env.name, ", ".join(swept))
            yield held
        finally:
            self.held = None
            try:
                self.backend.release(self.lock_key, held)
            except StateError as exc:
                log.warning("environment '%s': could not release the lock (%s); break it with "
                            "'vboplan state unlock --env %s %s'", self.env.name, exc, self.env.name, held.id)

    def check_held(self) -> None:
        """Raise StateLockedError when this store took the lock and no longer holds it: ``state unlock`` broke it
        while this run went on. Called before each write this run makes to its state (the write journal before
        every request to the server and after its answer, the snapshot), so such a run stops before it sends or
        records anything more, and names who holds the lock now."""
        held = self.held
        if held is None:
            return  # no lock taken through this store (a library caller): nothing to check
        try:
            holder = self.backend.holder_seen_by(self.lock_key, held)
        except LockBusy as busy:
            holder = busy.info
            if holder is None:
                raise StateLockedError(self._lost(held, f"another run holds it now ({busy.problem})")) from None
        if holder is not None and holder.get("id") == held.id:
            return
        raise StateLockedError(self._lost(held, f"{describe_holder(holder)} holds it now" if holder else
                                          "nobody holds it now"))

    def _lost(self, held: Held, now_held: str) -> str:
        return (f"the lock of environment '{self.env.name}' (lock id {held.id}) was broken while this run held it "
                f"(vboplan state unlock); {now_held}. This run stopped there: it sends and records nothing more")

    def _acquire(self, operation: str, timeout: float) -> Held:
        import time

        deadline = time.monotonic() + timeout
        pause = 0.2
        while True:
            try:
                return self.backend.acquire(self.lock_key, lock_info(operation))
            except LockBusy as busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    waited = f" (waited {timeout:g}s)" if timeout else ""
                    raise StateLockedError(self.locked_message(busy) + waited) from None
                from vboplan import progress

                who = (busy.info or {}).get("who") or "another run"
                progress.phase(f"waiting up to {left:.0f}s for the lock held by {who}", self.env.name)
                time.sleep(min(pause, left))
                pause = min(pause * 2, 2.0)

    def locked_message(self, busy: LockBusy) -> str:
        name = self.env.name
        if busy.info is None:
            return (f"environment '{name}' is locked, but {busy.problem}; wait for that run to end and try again"
                    + ("" if self.backend.kind == "local" else
                       f" (if no run is active, remove {self.backend.location(self.lock_key)})"))
        return (f"environment '{name}' is locked by {describe_holder(busy.info)}. If that run is gone, break the "
                f"lock with 'vboplan state unlock --env {name} {busy.info.get('id')}'")

    def holder(self) -> dict[str, Any] | None:
        """The current lock info, None when unlocked."""
        try:
            return self.backend.holder(self.lock_key)
        except LockBusy as busy:
            raise StateLockedError(self.locked_message(busy)) from None

    def unlock(self, lock_id: str) -> dict[str, Any]:
        """Break the environment's lock, only if ``lock_id`` is its id; returns what it said about its holder."""
        try:
            return self.backend.break_lock(self.lock_key, lock_id)
        except StateBackendError:
            raise
        except StateError as exc:
            raise StateError(f"cannot unlock environment '{self.env.name}': {exc}") from None

    # -- the write journal -------------------------------------------------------------------------------------

    def read_journal(self) -> dict[str, Any] | None:
        """The write journal an interrupted apply left (either format), as one document: the apply's record and its
        ``writes``, each with its latest ``state``; None when there is none."""
        stored = self.backend.get(self.journal_key)
        if stored is None:
            return None
        try:
            return parse_journal(stored.text)
        except ValueError as exc:
            raise StateError(f"{self.backend.location(self.journal_key)}: {exc}; an apply was interrupted while "
                             "writing it: check the server, then remove the file") from None

    def write_journal(self, text: str) -> None:
        """Replace the write journal with ``text`` (its whole record; see ``journal.WriteJournal``), atomically,
        only while this run still holds the lock it took."""
        self.check_held()
        self.backend.put(self.journal_key, text)

    def append_journal(self, added: str, whole: str) -> None:
        """Add the lines ``added`` to the write journal (``whole``: all of it then, for object stores), only while
        this run still holds the lock it took."""
        self.check_held()
        self.backend.append(self.journal_key, added, whole)

    def delete_journal(self) -> None:
        self.check_held()
        self.backend.delete(self.journal_key)

    @property
    def journal_display(self) -> str:
        return self.backend.location(self.journal_key)


def parse_journal(text: str) -> dict[str, Any]:
    """A write journal's text as one document (``writes`` in the order sent, each with its latest ``state``).

    Format 2 is append-only, one JSON object a line: the apply's record (``event: start``), then per request
    ``sent`` (before it goes) and ``answered``. A last line without its newline is one a killed run was writing: it
    is dropped (nothing was sent after a ``sent`` line that is not whole, and an answer not recorded leaves its write
    "sent", which the next command checks against the live values). Format 1 (vboplan before it) is one JSON
    document, read as it is. ValueError says what is wrong."""
    first = text.partition("\n")[0]  # written whole (atomically) with the first request's line
    try:
        head = json.loads(first)
    except ValueError:
        head = None
    if not isinstance(head, dict) or head.get("format_version") != JOURNAL_FORMAT:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"the write journal is not valid JSON ({exc})") from None
        if not isinstance(data, dict) or data.get("format_version") != 1 or not isinstance(data.get("writes"), list):
            raise ValueError(f"not a vboplan write journal of format 1 or {JOURNAL_FORMAT}")
        return data
    # What follows the last newline is empty, or a line a killed run left cut short.
    whole = text.split("\n")[1:-1]
    try:
        events = [head, *(json.loads(line) for line in whole)]
    except ValueError as exc:
        raise ValueError(f"the write journal has a line that is not valid JSON ({exc})") from None
    if not events or not all(isinstance(e, dict) for e in events) or events[0].get("event") != "start":
        raise ValueError(f"not a vboplan write journal of format {JOURNAL_FORMAT}")
    document = {k: v for k, v in events[0].items() if k != "event"}
    writes: list[dict[str, Any]] = []
    for event in events[1:]:
        kind, n = event.get("event"), event.get("n")
        if kind == "sent" and n == len(writes) + 1:
            writes.append({"n": n, "description": event.get("description"), "state": "sent",
                           "sent_at": event.get("sent_at"), "changes": event.get("changes")})
        elif kind == "answered" and isinstance(n, int) and 0 < n <= len(writes) \
                and event.get("state") in ("applied", "failed"):
            writes[n - 1].update({k: v for k, v in event.items() if k in ("state", "answered_at", "error", "assigned")})
        else:
            raise ValueError(f"the write journal has an event vboplan did not write ({str(kind)[:40]!r}, write {n!r})")
    document["writes"] = writes
    return document


def migrate_to_configured(project: Project, env: Environment) -> tuple[dict[str, Any], str]:
    """Copy ``env``'s local snapshot (and the write journal of an interrupted apply, if any) to the backend
    vboplan.yaml configures, under that backend's lock. Refuses to replace a remote snapshot of another lineage or
    one that is as new or newer. Returns (the snapshot, where it now is)."""
    from vboplan.state.local import LocalBackend

    target = StateStore(project, env)
    if target.backend.kind == "local":
        raise StateError("vboplan.yaml's 'state:' names no shared backend (backend: local); set backend: s3 or "
                         "azurerm there first")
    local = StateStore(project, env, LocalBackend(project.work_dir / "state", project.root))
    stored = local.backend.get(local.key)
    if stored is None:
        raise StateError(f"environment '{env.name}' has no local snapshot in {local.display}; nothing to migrate")
    snapshot = local.parse(stored.text)
    journal = local.backend.get(local.journal_key)
    with target.lock(f"state migrate --env {env.name}"):
        remote = target.read()
        if remote is not None:
            if remote["lineage"] != snapshot["lineage"]:
                raise StateError(f"{target.display} already holds another history of '{env.name}' (lineage "
                                 f"{remote['lineage']}, serial {remote['serial']}); nothing was copied")
            if remote["serial"] >= snapshot["serial"]:
                raise StateError(f"{target.display} already holds serial {remote['serial']}, as new as or newer than "
                                 f"the local serial {snapshot['serial']}; nothing was copied")
            target.backend.put(target.backup_key, target._previous.text if target._previous else "")
        target.backend.put(target.key, stored.text, expect=target._version)
        if journal is not None:
            target.backend.put(target.journal_key, journal.text)
    return snapshot, target.display
