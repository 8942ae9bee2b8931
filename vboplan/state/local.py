"""The ``local`` backend: files in ``.vboplan/state/`` (or a configured folder), an operating-system file lock.

The lock is ``filelock``'s (``flock`` on POSIX, ``msvcrt.locking`` on Windows): the operating system releases it when
the process that holds it ends, however it ends, so a killed run never leaves a stuck lock, and taking over after a
vanished run is the same atomic call as any other acquisition. Who holds it is written beside it, readable.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vboplan.errors import StateConflictError, StateError
from vboplan.shapes import MAX_FILE_BYTES, NotRegularFile, read_regular
from vboplan.state.base import ANY, Backend, Held, LockBusy, Stored, parse_info
from vboplan.state.files import atomic_write, private_folder, tighten

if TYPE_CHECKING:
    from filelock import FileLock


def _version(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class LocalBackend(Backend):
    kind = "local"

    def __init__(self, folder: Path, display_root: Path | None = None) -> None:
        self.folder = folder
        self.display_root = display_root

    def path(self, key: str) -> Path:
        return self.folder / key

    def location(self, key: str) -> str:
        path = self.path(key)
        if self.display_root is not None:
            try:
                return str(path.relative_to(self.display_root))
            except ValueError:
                pass
        return str(path)

    def get(self, key: str) -> Stored | None:
        try:
            raw = read_regular(self.path(key), MAX_FILE_BYTES)
        except FileNotFoundError:
            return None
        except NotRegularFile as exc:
            raise StateError(f"{self.location(key)}: {exc.strerror}") from None
        except OSError as exc:
            raise StateError(f"{self.location(key)}: cannot be read ({exc.strerror or exc})") from None
        if len(raw) > MAX_FILE_BYTES:
            raise StateError(f"{self.location(key)}: larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB; not a file "
                             "vboplan wrote")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StateError(f"{self.location(key)}: cannot be read ({exc})") from None
        return Stored(text, _version(text))

    def put(self, key: str, text: str, expect: str | None = ANY) -> str:
        if expect != ANY:
            # The environment's lock is held around every conditional write, so this check cannot be raced by a
            # vboplan run; it catches a file changed by hand or by a run whose lock was broken.
            current = self.get(key)
            if (current.version if current else None) != expect:
                raise StateConflictError(f"{self.location(key)} was changed by someone else since this run read it")
        try:
            private_folder(self.folder)
            atomic_write(self.path(key), text, mode=0o600)
        except OSError as exc:
            raise StateError(f"{self.location(key)}: cannot be written ({exc.strerror or exc})") from None
        return _version(text)

    def append(self, key: str, added: str, whole: str) -> None:
        """Append ``added`` to the file ``key`` (created whole by :meth:`put` first) and fsync it: one fsync, the
        folder untouched (no file is created or renamed). A write cut short (a full disk) is cut off again, so the
        file never ends in half a line that a later append would run into; a killed run can still leave one, which
        the reader drops (the record after it was never written)."""
        data = added.encode("utf-8")
        flags = os.O_WRONLY | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
        try:
            fd = os.open(self.path(key), flags)
        except OSError as exc:
            raise StateError(f"{self.location(key)}: cannot be written ({exc.strerror or exc})") from None
        try:
            size = os.fstat(fd).st_size
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            except OSError as exc:
                try:
                    os.ftruncate(fd, size)
                except OSError:
                    pass  # the reader drops a last line cut short
                raise StateError(f"{self.location(key)}: cannot be written ({exc.strerror or exc})") from None
        finally:
            os.close(fd)

    def delete(self, key: str) -> None:
        try:
            self.path(key).unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StateError(f"{self.location(key)}: cannot be removed ({exc.strerror or exc})") from None

    def sweep(self, keys: list[str]) -> list[str]:
        """Remove the temporary files (``.<key>.<8 random characters>.tmp``, see atomic_write) that a run killed
        in the middle of writing one of ``keys`` left behind. Only exact names match: another environment's files
        (``dev.json`` beside ``dev.json.json``) are never taken for these."""
        names = "|".join(re.escape(k) for k in keys + [self._info_key(k) for k in keys if k.endswith(".lock")])
        pattern = re.compile(rf"\.(?:{names})\.[a-z0-9_]{{8}}\.tmp")
        removed = []
        try:
            entries = list(os.scandir(self.folder))
        except OSError:
            return removed
        for entry in entries:
            if pattern.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                try:
                    os.unlink(entry.path)
                    removed.append(entry.name)
                except OSError:
                    pass  # another process's file after all, or not removable: left alone
        return removed

    # -- the lock ----------------------------------------------------------------------------------------------

    def _info_key(self, key: str) -> str:
        return f"{key}.json"

    def _os_lock(self, key: str) -> FileLock:
        from filelock import FileLock  # loaded by the commands that lock (plan only reads): 15-40 ms of imports

        try:
            private_folder(self.folder)
        except OSError as exc:
            raise StateError(f"{self.folder}: cannot create the state folder ({exc.strerror or exc})") from None
        return FileLock(str(self.path(key)), timeout=0)

    def _try(self, lock: FileLock) -> bool:
        from filelock import Timeout

        try:
            lock.acquire(timeout=0)
        except Timeout:
            return False
        except OSError as exc:
            raise StateError(f"{self.folder}: cannot take the lock ({exc.strerror or exc})") from None
        return True

    def _read_info(self, key: str) -> dict[str, Any] | None:
        try:
            stored = self.get(self._info_key(key))
        except StateError:
            return None
        return parse_info(stored.text) if stored else None

    def _holder_info(self, key: str) -> dict[str, Any] | None:
        """The info of the run holding the busy lock ``key``; raises LockBusy when there is none to name: empty, or
        left by a run that has ended (the run that took the lock over has yet to write its own)."""
        holder = self._read_info(key)
        if holder is None:
            raise LockBusy(None, f"its lock info {self.location(self._info_key(key))} is empty or unreadable (the "
                                 "run may be starting)")
        if _ended(holder):
            raise LockBusy(None, f"its lock info {self.location(self._info_key(key))} is still that of a run that has "
                                 f"ended (pid {holder.get('pid')}): the run that holds it now is starting")
        return holder

    def acquire(self, key: str, info: dict[str, Any]) -> Held:
        lock = self._os_lock(key)
        if not self._try(lock):
            raise LockBusy(self._holder_info(key))
        tighten(self.path(key), 0o600)  # created 0600 less the umask: an odd umask must not leave it unreadable
        held = Held(info["id"], info, lock)
        left = self._read_info(key)
        if left is not None:
            held.notes.append(f"the run that held it before ({left.get('who')}, {left.get('operation')}, lock id "
                              f"{left.get('id')}) ended without releasing it; the operating system released it")
        try:
            self.put(self._info_key(key), _dump(info))
        except StateError:
            lock.release()
            raise
        return held

    def release(self, key: str, held: Held) -> None:
        try:
            if (self._read_info(key) or {}).get("id") == held.id:
                self.delete(self._info_key(key))
        finally:
            held.handle.release()

    def holder(self, key: str) -> dict[str, Any] | None:
        if not self.path(key).exists():
            return None
        probe = self._os_lock(key)
        if self._try(probe):
            probe.release()
            return None  # any info left beside it is from a run that is gone
        return self._holder_info(key)

    def holder_seen_by(self, key: str, held: Held) -> dict[str, Any] | None:
        # This process holds the operating-system lock it took (probing it from here would only find it taken);
        # what 'state unlock' changes is the info beside it: removed, then written anew by whoever takes it next.
        return self._read_info(key)

    def break_lock(self, key: str, lock_id: str) -> dict[str, Any]:
        probe = self._os_lock(key)
        free = self._try(probe)
        try:
            info = self._read_info(key)
            if info is None:
                if free:
                    raise StateError("it is not locked")
                raise StateError(f"it is held by a running process whose lock info "
                                 f"{self.location(self._info_key(key))} is empty or unreadable, so no lock id can be "
                                 "checked; wait for that run to end or stop it (its lock ends with it)")
            if not free and _ended(info):
                raise StateError(f"it is held by a running process that has yet to write its lock info (the info "
                                 f"{self.location(self._info_key(key))} is still that of pid {info.get('pid')}, "
                                 "which has ended); wait for that run to end or stop it (its lock ends with it)")
            if info.get("id") != lock_id:
                raise StateError(f"lock id {lock_id} is not the id of its lock ({info.get('id')}, held by "
                                 f"{info.get('who')}); nothing was changed")
            if not free:
                # POSIX lets the file go (the holder keeps a lock on a name nobody uses any more); Windows refuses
                # while the holder runs, which is then the honest answer.
                try:
                    os.remove(self.path(key))
                except FileNotFoundError:
                    pass
                except OSError:
                    raise StateError(f"the process holding it (pid {info.get('pid')} on {info.get('host')}) is still "
                                     "running and the operating system keeps its lock; stop that process and its "
                                     "lock ends with it") from None
            self.delete(self._info_key(key))
            return info
        finally:
            if free:
                probe.release()


def _ended(info: dict[str, Any]) -> bool:
    """Whether ``info`` names a process of this machine that is no longer running (POSIX only: elsewhere nothing is
    known, and the info is taken as it says)."""
    import socket

    pid, probe = info.get("pid"), getattr(os, "kill", None)
    if os.name == "nt" or probe is None or not isinstance(pid, int) or pid <= 0 \
            or info.get("host") != socket.gethostname():
        return False
    try:
        probe(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # running, as another user
    return False


def _dump(info: dict[str, Any]) -> str:
    import json

    return json.dumps(info, indent=2, sort_keys=True) + "\n"
