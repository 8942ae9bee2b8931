"""Writing a set of new files all together or not at all, never replacing one that exists.

``vboplan import`` writes templates and variable files into a repository the user owns: a file that exists is never
touched, and a run that fails half-way leaves nothing behind. Each file is first written in full under a temporary
name in its own folder; only when every one of them is on disk are they given their names, each with an operation
that refuses an existing name (a hard link, or a rename where the platform's rename refuses one). If any step fails,
what this batch created is removed again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vboplan.errors import VboplanError
from vboplan.state.files import place, write_temp


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
                temps[path] = write_temp(path, text, mode=None)  # a new file's mode, as the umask says
            for path, temp in list(temps.items()):
                current = path
                place(temp, path, replace=False)
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
