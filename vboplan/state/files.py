"""Portable atomic file writes: a reader sees the old file or the new one, never a mix, on POSIX and Windows."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path


def now() -> str:
    """The current UTC time as ISO 8601 with a ``Z``, to the second."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def atomic_write(path: Path, text: str | Iterable[str], mode: int = 0o600) -> None:
    """Write ``text`` (a string, or its pieces) to ``path`` atomically: temp file in the same folder, fsync,
    ``os.replace``.

    Only portable calls: ``os.chmod`` on the temp file's path (``os.fchmod`` is missing on Windows before Python
    3.13), and a folder fsync only where the platform can open a folder (it cannot on Windows)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            if isinstance(text, str):
                handle.write(text)
            else:
                for piece in text:
                    handle.write(piece)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.chmod(tmp, mode)
        except OSError:
            pass  # a file system without POSIX modes (FAT, some shares): the folder's permissions decide
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_folder(path.parent)


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
