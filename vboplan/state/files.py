"""Portable file writes: atomic (a reader sees the old file or the new one, never a mix, on POSIX and Windows) and,
for state, private (folders 0700, files 0600, whatever the umask)."""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path


def now() -> str:
    """The current UTC time as ISO 8601 with a ``Z``, to the second."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


_TEMP_CHARACTERS = "abcdefghijklmnopqrstuvwxyz0123456789_"


def write_temp(path: Path, text: str | bytes | Iterable[str], mode: int | None = 0o600) -> Path:
    """``text`` (a string, bytes, or a string's pieces) in a new, synced temporary file beside ``path``, named
    ``.<name>.<8 random characters>.tmp`` (what a state backend sweeps after a killed run), with ``mode``; with
    ``mode=None``, the mode any new file gets under the umask. Nothing is left behind when it fails.

    Only portable calls: ``O_EXCL`` (never writes through a name someone else made), ``os.chmod`` on the path
    (``os.fchmod`` is missing on Windows before Python 3.13)."""
    return _temp_then(path, text, mode, None)


def _temp_then(path: Path, text: str | bytes | Iterable[str], mode: int | None,
               then: Callable[[Path], None] | None) -> Path:
    """:func:`write_temp`, then ``then(temp)`` inside the same guard: a Ctrl-C (a KeyboardInterrupt raised between
    any two bytecodes) at any point from the name's choice to ``then``'s end removes the temporary file. The name
    is held from before the ``open`` that may create it, so an interrupt landing just after the file appears, before
    Python has stored the descriptor, still finds it (a name is random among 37**8 and opened ``O_EXCL``: it is
    ours whenever the open did not fail with FileExistsError)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0)
    temp: Path | None = None
    try:
        for _ in range(100):
            temp = path.with_name(f".{path.name}.{''.join(secrets.choice(_TEMP_CHARACTERS) for _ in range(8))}.tmp")
            try:
                fd = os.open(temp, flags, 0o600 if mode is not None else 0o666)
                break
            except FileExistsError:
                temp = None  # someone else's name: never ours to remove
        else:  # pragma: no cover - 100 collisions of 37**8 names
            raise FileExistsError(17, "no free temporary name", str(path))
        with os.fdopen(fd, "wb") as handle:
            if isinstance(text, bytes):
                handle.write(text)
            elif isinstance(text, str):
                handle.write(text.encode("utf-8"))
            else:
                for piece in text:
                    handle.write(piece.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            try:
                os.chmod(temp, mode)
            except OSError:
                pass  # a file system without POSIX modes (FAT, some shares): the folder's permissions decide
        if then is not None:
            then(temp)
    except BaseException:
        if temp is not None:
            discard(temp)
        raise
    return temp


def place(temp: Path, path: Path, *, replace: bool = True) -> None:
    """Give the temporary file ``temp`` the name ``path``, atomically: replacing whatever is there, or with
    ``replace=False`` only if nothing is (FileExistsError otherwise; ``temp`` is then left to the caller)."""
    if replace:
        os.replace(temp, path)
        return
    try:
        os.link(temp, path)  # fails with FileExistsError when the name is taken, atomically
    except FileExistsError:
        raise
    except OSError:
        # No hard links here (some file systems): Windows' rename refuses an existing name by itself; elsewhere
        # check just before renaming.
        if os.name != "nt" and (path.exists() or path.is_symlink()):
            raise FileExistsError(17, "exists", str(path)) from None
        os.rename(temp, path)
        return
    temp.unlink()


def discard(temp: Path | str) -> None:
    """Remove a temporary file that will not be placed (no error when it is already gone)."""
    try:
        os.unlink(temp)
    except OSError:
        pass


def atomic_write(path: Path, text: str | bytes | Iterable[str], mode: int | None = 0o600, *,
                 replace: bool = True) -> None:
    """Write ``text`` to ``path`` atomically: temporary file in the same folder (:func:`write_temp`), fsync,
    :func:`place`, then the folder fsynced where the platform can open a folder (not on Windows). A reader sees the
    old file or the new one; an interrupted write leaves the old one and no temporary file (a killed one leaves a
    temporary file that the state backends sweep). ``replace=False``: create only, FileExistsError if it exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _temp_then(path, text, mode, lambda temp: place(temp, path, replace=replace))
    _fsync_folder(path.parent)


def private_folder(folder: Path) -> None:
    """Make sure ``folder`` exists and only its owner can enter it (0700), whatever the umask: missing folders are
    created so (parents too), an existing one is tightened. On Windows ``os.chmod`` sets only the read-only flag, so
    this creates the folders and leaves access to the ACL they inherit (the user's profile, typically)."""
    missing = []
    probe = folder
    while not probe.is_dir():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            if not path.is_dir():
                raise
    tighten(folder, 0o700)


def tighten(path: Path, mode: int) -> None:
    """``chmod`` to ``mode`` when the bits differ (no call, no error where the platform or file system has none)."""
    if os.name == "nt":
        return
    try:
        if stat.S_IMODE(path.stat().st_mode) != mode:
            os.chmod(path, mode)
    except OSError:
        pass  # not ours to change (another owner, a file system without modes): the folder's permissions decide


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable where the platform allows opening a folder (POSIX); Windows has no such call."""
    directory_flag = getattr(os, "O_DIRECTORY", None)
    if directory_flag is None or os.name == "nt":
        return
    try:
        dir_fd = os.open(folder, os.O_RDONLY | directory_flag)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass  # some file systems refuse fsync on a folder; the rename itself already happened
    finally:
        os.close(dir_fd)
