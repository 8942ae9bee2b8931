"""File-mode checks that hold on every platform: on POSIX the permission bits themselves; on Windows, which has no
such bits (``os.chmod`` sets only the read-only flag and access comes from the ACL a file inherits from its folder),
what can be checked there: the kind of entry and that its owner can read and replace it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

POSIX_MODES = os.name != "nt"
NO_POSIX_MODES = "Windows has no POSIX permission bits (os.chmod sets only the read-only flag; the ACL decides)"


def assert_private(path: Path) -> None:
    """``path`` is a file only its owner can read and write (0600), or a folder only its owner can enter (0700)."""
    info = path.stat()
    folder = stat.S_ISDIR(info.st_mode)
    assert folder or stat.S_ISREG(info.st_mode), f"{path} is neither a regular file nor a folder"
    assert os.access(path, os.R_OK | os.W_OK | (os.X_OK if folder else 0)), f"{path}: its owner cannot use it"
    assert info.st_mode & stat.S_IWRITE, f"{path} is read-only"
    if POSIX_MODES:
        expected = 0o700 if folder else 0o600
        assert stat.S_IMODE(info.st_mode) == expected, f"{path}: mode {oct(stat.S_IMODE(info.st_mode))}, not {oct(expected)}"
