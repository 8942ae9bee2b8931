"""Writing a set of new files all together or not at all, never replacing one that exists.

``vboplan import`` writes templates and variable files into a repository the user owns: a file that exists is never
touched, and a run that fails half-way leaves nothing behind. Each file is first written in full under a temporary
name in its own folder; only when every one of them is on disk are they given their names, each with an operation
that refuses an existing name (a hard link, or a rename where the platform's rename refuses one). If any step fails,
what this batch created is removed again.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from vboplan.errors import VboplanError


class WriteError(VboplanError):
    """A file could not be written; nothing of the batch was left behind."""


@dataclass
class NewFiles:
    """New files to create together; ``display`` turns a path into what messages show."""

    files: dict[Path, str] = field(default_factory=dict)

    def add(self, path: Path, text: str) -> None:
        if path in self.files:
            raise ValueError(f"{path} is planned twice")
        self.files[path] = text

    def commit(self, display: dict[Path, str] | None = None) -> None:
        """Create every file, or none: raises :class:`WriteError` naming the first file that failed."""
        shown = display or {}
        made_dirs: list[Path] = []
        temps: dict[Path, Path] = {}
        placed: list[Path] = []
        current = Path()
        try:
            for path, text in self.files.items():
                current = path
                if path.exists() or path.is_symlink():
                    raise FileExistsError(f"{path} exists")
                _make_parents(path.parent, made_dirs)
                temps[path] = _write_temp(path, text)
            for path, temp in list(temps.items()):
                current = path
                _place(temp, path)
                placed.append(path)
                del temps[path]
        except FileExistsError:
            _undo(temps, placed, made_dirs)
            raise WriteError(f"{shown.get(current, current)}: appeared while vboplan was writing; nothing was "
                             "written (run again to skip it)") from None
        except OSError as exc:
            _undo(temps, placed, made_dirs)
            reason = exc.strerror or str(exc)
            raise WriteError(f"{shown.get(current, current)}: cannot write ({reason}); nothing was written") from None
        except BaseException:
            _undo(temps, placed, made_dirs)
            raise


def _make_parents(folder: Path, made: list[Path]) -> None:
    missing = []
    probe = folder
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    for path in reversed(missing):
        path.mkdir()
        made.append(path)
    if not folder.is_dir():
        raise NotADirectoryError(20, "a file is in the way of its folder", str(folder))


def _write_temp(path: Path, text: str) -> Path:
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    # O_EXCL: never write through a name someone else made; 0o666 lets the umask decide, as for any new file.
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return temp


def _place(temp: Path, path: Path) -> None:
    """Give ``temp`` the name ``path`` unless ``path`` exists (FileExistsError then)."""
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


def _undo(temps: dict[Path, Path], placed: list[Path], made_dirs: list[Path]) -> None:
    for temp in temps.values():
        temp.unlink(missing_ok=True)
    for path in placed:
        path.unlink(missing_ok=True)
    for folder in reversed(made_dirs):
        try:
            folder.rmdir()
        except OSError:
            pass
