"""Structural checks of the JSON files vboplan reads back (plan files, state snapshots) before any code uses them.

A file edited by hand, truncated, or written by another tool must give one message naming the file and the
offending field (``changes[2].id must be text``), never a ``TypeError`` deep inside apply. Fields not described
here are left alone, so a newer vboplan can add fields an older check does not know."""

from __future__ import annotations

import errno
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

#: Largest plan or state file vboplan reads (a plan of 100,000 audit entries is a few tens of MiB).
MAX_FILE_BYTES = 256 * 1024 * 1024

ANY = object()


@dataclass(frozen=True)
class Opt:
    """A field that may be missing (or null when ``nullable``)."""

    shape: Any
    nullable: bool = False


@dataclass(frozen=True)
class ListOf:
    item: Any


@dataclass(frozen=True)
class MapOf:
    value: Any


_NAMES = {str: "text", int: "a whole number", bool: "true or false", dict: "an object", list: "a list",
          float: "a number"}


def _describe(shape: Any) -> str:
    if isinstance(shape, type):
        return _NAMES.get(shape, shape.__name__)
    if isinstance(shape, tuple):
        return " or ".join(_describe(s) for s in shape)
    if isinstance(shape, (ListOf,)):
        return "a list"
    return "an object"


def _matches_type(value: Any, kind: type) -> bool:
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, kind)


def problem(value: Any, shape: Any, path: str = "") -> str | None:
    """What is wrong with ``value`` against ``shape`` (``field: must be ...``), or None."""
    if shape is ANY:
        return None
    label = path or "the file"
    if isinstance(shape, type):
        return None if _matches_type(value, shape) else f"{label} must be {_describe(shape)}"
    if isinstance(shape, tuple):
        if any(problem(value, option, path) is None for option in shape):
            return None
        return f"{label} must be {_describe(shape)}"
    if isinstance(shape, ListOf):
        if not isinstance(value, list):
            return f"{label} must be a list"
        for index, item in enumerate(value):
            found = problem(item, shape.item, f"{path}[{index}]")
            if found:
                return found
        return None
    if isinstance(shape, MapOf):
        if not isinstance(value, dict):
            return f"{label} must be an object"
        for key, item in value.items():
            found = problem(item, shape.value, f"{path}[{json.dumps(key)}]")
            if found:
                return found
        return None
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return f"{label} must be an object"
        for key, field_shape in shape.items():
            where = f"{path}.{key}" if path else key
            if isinstance(field_shape, Opt):
                if key not in value or (field_shape.nullable and value[key] is None):
                    continue
                field_shape = field_shape.shape
            elif key not in value:
                return f"{where} is missing"
            found = problem(value[key], field_shape, where)
            if found:
                return found
        return None
    raise TypeError(f"unknown shape {shape!r}")  # pragma: no cover - a bug in a shape table


# -- reading a file: only a regular one ------------------------------------------------------------------------


class NotRegularFile(OSError):
    """A path that names a FIFO, a device or a socket. Opening a FIFO waits for a writer and a device may never
    end, so vboplan refuses them before opening (``strerror`` says what the path is)."""

    def __str__(self) -> str:
        return str(self.strerror)


_SPECIAL = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
            (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _refuse_special(mode: int, path: str | os.PathLike[str]) -> None:
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _SPECIAL if test(mode)), "not an ordinary file")
        raise NotRegularFile(errno.EINVAL, f"is {kind}, not a regular file; vboplan reads only regular files",
                             str(path))


def check_regular(path: str | os.PathLike[str]) -> None:
    """Raise :class:`NotRegularFile` (or IsADirectoryError, FileNotFoundError) unless ``path`` is a regular file."""
    _refuse_special(os.stat(path).st_mode, path)


def open_regular(path: str | os.PathLike[str]) -> IO[bytes]:
    """``path`` opened for reading in binary, only if it is a regular file (a symbolic link to one is fine).

    The path is checked before it is opened (a FIFO is never opened, so nothing waits for a writer), and the open
    file again, with ``O_NONBLOCK`` where the platform has it, so a FIFO swapped in between cannot block either.
    Raises FileNotFoundError, IsADirectoryError, :class:`NotRegularFile` or another OSError."""
    check_regular(path)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0))
    try:
        _refuse_special(os.fstat(fd).st_mode, path)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | os.PathLike[str], limit: int) -> bytes:
    """At most ``limit + 1`` bytes of the regular file ``path`` (one more than allowed tells the caller it is too
    large); raises as :func:`open_regular`."""
    with open_regular(path) as handle:
        return handle.read(limit + 1)


class _DuplicateKey(ValueError):
    pass


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object's pairs as a dict (built in C), refused when a key is named twice."""
    found = dict(pairs)
    if len(found) != len(pairs):
        keys = [key for key, _ in pairs]
        twice = next(key for index, key in enumerate(keys) if key in keys[:index])
        raise _DuplicateKey(f"the key {json.dumps(twice)} appears twice in one object")
    return found


def read_json(path: Path, display: str, error: type[Exception], what: str, *, unique_keys: bool = False) -> Any:
    """Read a JSON file vboplan wrote earlier; every way it can be unusable is ``error`` naming ``display``. With
    ``unique_keys`` an object that names a key twice is refused (readers disagree on which value counts)."""
    try:
        raw = read_regular(path, MAX_FILE_BYTES)
    except FileNotFoundError:
        raise error(f"{display}: {what} not found") from None
    except IsADirectoryError:
        raise error(f"{display}: is a directory, not a {what}") from None
    except NotRegularFile as exc:
        raise error(f"{display}: {exc.strerror}") from None
    except OSError as exc:
        raise error(f"{display}: cannot read the {what} ({exc.strerror or exc})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise error(f"{display}: larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB; not a {what} vboplan wrote")
    try:
        return json.loads(raw.decode("utf-8"), object_pairs_hook=_unique if unique_keys else None)
    except _DuplicateKey as exc:
        raise error(f"{display}: not a {what} vboplan wrote ({exc})") from None
    except UnicodeDecodeError:
        raise error(f"{display}: not a {what} (not UTF-8 text)") from None
    except json.JSONDecodeError as exc:
        raise error(f"{display}:{exc.lineno}: not a {what} (invalid JSON: {exc.msg})") from None
    except RecursionError:
        raise error(f"{display}: not a {what} (nested too deeply)") from None


CHANGE = {"id": str, "address": str, "action": str, "kind": str, "sensitive": bool, "before": ANY, "after": ANY,
          "detail": Opt(dict, nullable=True), "after_digest": Opt(dict, nullable=True),
          "severity": Opt(str), "severity_reason": Opt(str)}
VERDICT = {"rule": str, "level": str, "message": str, "source": str, "objects": ListOf(str), "changes": ListOf(str),
           "exception": Opt(dict, nullable=True), "notes": Opt(ListOf(str)), "approvers": Opt(dict)}
# The statement an author signs (trust.approvals.author_statement): a field of another type is no signature to check.
AUTHOR_STATEMENT = {name: Opt(kind) for name, kind in
                    {"type": str, "version": int, "plan": str, "environment": str, "server": str, "at": str}.items()}
PLAN_FILE = {
    "format_version": int, "environment": str, "server": str, "api_version": str, "created_by": str,
    "created_at": str, "checksum": str, "changes": ListOf(CHANGE), "live": dict, "scope": dict,
    "approvals": Opt(ListOf(dict), nullable=True),  # each approval's content is verified with its signature
    "expires_at": Opt(str, nullable=True), "secret_fields": Opt(MapOf(ListOf(str)), nullable=True),
    "author_key": Opt(str, nullable=True),
    "author_signature": Opt({"statement": AUTHOR_STATEMENT, "signature": str}, nullable=True),
    "changed_outside": Opt(ListOf({"address": str, "recorded": ANY, "live": ANY})),
    "summary": Opt(dict), "verdicts": Opt(ListOf(VERDICT)), "exceptions": Opt(ListOf(dict)),
    "commits": Opt({"head": Opt(str, nullable=True), "since": Opt(str, nullable=True),
                    "commits": ListOf({"id": str, "object": str}), "uncommitted": Opt(ListOf(str)),
                    "allowed_signers_at_since": Opt(str)}, nullable=True),
    "targets": Opt(ListOf(str), nullable=True), "excluded": Opt(ListOf(str), nullable=True),
    "variables": Opt(dict, nullable=True), "refresh_only": Opt(bool),
}
AUDIT_ITEM = {"id": str, "type": str, "principalId": str, "name": str, "displayName": str}
RECORDED_RESOURCE = {
    "values": Opt(dict), "secrets": Opt(MapOf(dict)),
    "organizations": Opt(MapOf({"id": Opt(str), "items": Opt(ListOf(AUDIT_ITEM))})),
    # The old objects of create_before_destroy replaces cut short, by the key they were deposed from.
    "deposed": Opt(MapOf(ListOf({"id": str, "journal": Opt(str)}))),
}
STATE_FILE = {
    "format_version": int, "lineage": str, "serial": int, "environment": str, "server": str, "api_version": str,
    "updated_at": str, "resources": MapOf(RECORDED_RESOURCE), "last_apply": Opt(dict, nullable=True),
    "applied_plans": Opt(ListOf(dict), nullable=True),
}
