"""The local state snapshot of each environment: atomic writes, a backup of the previous one, and a lock."""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import StateError
from .project import Environment, Project, current_user

FORMAT_VERSION = 1
# Plans made before the latest apply are refused anyway, so only recent digests need remembering.
_APPLIED_KEPT = 200
log = logging.getLogger("vboplan")


def now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def atomic_write(path: Path, text: str, mode: int = 0o600) -> None:
    """Write ``text`` to ``path`` so a reader sees the old file or the new one, never a mix: temp file in the same
    folder, fsync, rename, fsync of the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class StateStore:
    """``.vboplan/state/<env>.json``, its backup ``<env>.json.bak`` and its lock ``<env>.lock``."""

    def __init__(self, project: Project, env: Environment) -> None:
        self.env = env
        self.dir = project.work_dir / "state"
        self.path = self.dir / f"{env.name}.json"
        self.backup_path = self.dir / f"{env.name}.json.bak"
        self.lock_path = self.dir / f"{env.name}.lock"
        self.display = str(self.path.relative_to(project.root))

    def read(self) -> dict[str, Any] | None:
        """The current snapshot, or None before the first apply."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise StateError(f"{self.display}: not valid JSON ({exc}); the previous snapshot is in "
                             f"{self.backup_path.name}") from None
        if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
            raise StateError(f"{self.display}: not a vboplan state snapshot of format {FORMAT_VERSION}")
        return data

    def resources(self) -> dict[str, Any]:
        snapshot = self.read()
        return snapshot.get("resources", {}) if snapshot else {}

    def write(self, resources: dict[str, Any], last_apply: dict[str, Any],
              applied_plan: dict[str, Any] | None = None) -> dict[str, Any]:
        """Record a new snapshot; the serial grows only when the recorded content changes. ``applied_plan`` is
        added to ``applied_plans``, which keeps a plan from being applied twice."""
        previous = self.read()
        applied = list((previous or {}).get("applied_plans") or [])
        if applied_plan is not None:
            applied = (applied + [applied_plan])[-_APPLIED_KEPT:]
        content = {"resources": resources, "last_apply": last_apply, "applied_plans": applied}
        if previous is None:
            lineage, serial = str(uuid.uuid4()), 1
        else:
            lineage = previous["lineage"]
            unchanged = {"resources": previous.get("resources"), "last_apply": previous.get("last_apply"),
                         "applied_plans": previous.get("applied_plans") or []} == content
            serial = previous["serial"] if unchanged else previous["serial"] + 1
        snapshot = {
            "format_version": FORMAT_VERSION, "lineage": lineage, "serial": serial, "environment": self.env.name,
            "server": self.env.server, "api_version": self.env.api_version, "updated_at": now(), **content,
        }
        text = json.dumps(snapshot, indent=2, sort_keys=True) + "\n"
        if previous is not None:
            atomic_write(self.backup_path, self.path.read_text(encoding="utf-8"))
        atomic_write(self.path, text)
        return snapshot

    @contextmanager
    def lock(self, what: str) -> Iterator[None]:
        """Hold the environment's lock for the duration; a held lock is a clear error naming its holder."""
        self.dir.mkdir(parents=True, exist_ok=True)
        info = {"who": current_user(), "host": socket.gethostname(), "pid": os.getpid(), "at": now(), "what": what}
        try:
            fd = os.open(self.lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            if not self._holder_is_gone():
                raise StateError(self._held_message()) from None
            log.warning("Breaking the lock of environment '%s': the run that held it is gone", self.env.name)
            self.lock_path.unlink(missing_ok=True)
            fd = os.open(self.lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(info, handle)
        try:
            yield
        finally:
            try:
                self.lock_path.unlink()
            except FileNotFoundError:
                pass

    def _holder_is_gone(self) -> bool:
        """A lock left by a process of this host that no longer runs (killed mid-apply) can be broken safely."""
        try:
            holder = json.loads(self.lock_path.read_text(encoding="utf-8"))
            pid = int(holder["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return False
        if holder.get("host") != socket.gethostname() or pid == os.getpid():
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def _held_message(self) -> str:
        try:
            holder = json.loads(self.lock_path.read_text(encoding="utf-8"))
            who = f"{holder.get('who')} ({holder.get('what')}, pid {holder.get('pid')} on {holder.get('host')}, " \
                  f"since {holder.get('at')})"
        except (OSError, ValueError):
            who = "an unknown process"
        return (f"environment '{self.env.name}' is locked by {who}. If that run is gone, break the lock with "
                f"'vboplan state unlock --env {self.env.name}'")

    def unlock(self) -> dict[str, Any] | None:
        """Break the lock; returns what it said about its holder."""
        try:
            text = self.lock_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        self.lock_path.unlink(missing_ok=True)
        try:
            return json.loads(text)
        except ValueError:
            return {}
