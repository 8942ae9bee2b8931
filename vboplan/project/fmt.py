"""``vboplan fmt``: the canonical layout of ``vboplan.yaml`` and the variable files, comments kept.

The layout: two spaces per level, list items indented under their key (``- `` two spaces in), one space after
``:`` and ``,``, no trailing spaces, one newline at the end, no line wrapping. Key order, quoting, flow or block style,
comments and blank lines stay as the author wrote them. ruamel.yaml does the round trip (PyYAML drops comments);
the result is read back with vboplan's own YAML reader and must hold exactly the same values, else the file is left
as it is and named. Templates (``*.j2``) are Jinja, not YAML, and are never touched.
"""

from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from vboplan.errors import ProjectError
from vboplan.project.config import CONFIG_NAME, Project
from vboplan.project.yamlfile import parse_yaml, plain, read_text

YAML_SUFFIXES = (".yaml", ".yml")


@dataclass
class FmtReport:
    """Which files a ``fmt`` run would change (or changed), and their new text."""

    checked: list[Path] = field(default_factory=list)
    changed: dict[Path, tuple[str, str]] = field(default_factory=dict)   # path -> (old text, new text)


def project_files(project: Project) -> list[Path]:
    """``vboplan.yaml`` and every YAML variable file its environments list, each once, in that order."""
    files = {project.root / CONFIG_NAME: None}
    for env in project.environments.values():
        for path in env.var_files:
            if path.suffix.lower() in YAML_SUFFIXES and path.exists():
                files.setdefault(path, None)
    return list(files)


def canonical(text: str, display: str) -> str:
    """``text`` (a YAML document) in the canonical layout; the same values, comments kept."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 1 << 16   # never wrap a long value onto a second line
    try:
        data = yaml.load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ProjectError(f"{display}{line}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    if data is None:
        return text if not text.strip() else "\n".join(line.rstrip() for line in text.strip().splitlines()) + "\n"
    out = io.StringIO()
    yaml.dump(data, out)
    formatted = "\n".join(line.rstrip() for line in out.getvalue().splitlines()).strip("\n") + "\n"
    if plain(parse_yaml(formatted, display)) != plain(parse_yaml(text, display)):
        raise ProjectError(f"{display}: the canonical layout would read differently here (a value YAML 1.1 and 1.2 "
                           "read apart, such as an octal number or yes/no?); the file was left as it is")
    return formatted


def format_files(files: list[Path], project: Project, write: bool) -> FmtReport:
    """Lay out each of ``files``; with ``write``, replace those that change (atomically, mode kept)."""
    report = FmtReport()
    for path in files:
        display = project.display(path)
        if path.is_symlink() or not path.is_file():
            raise ProjectError(f"{display}: not a regular file; vboplan only formats regular files")
        old = read_text(path, display)
        new = canonical(old, display)
        report.checked.append(path)
        if new != old:
            report.changed[path] = (old, new)
    if write:
        for path, (_, new) in report.changed.items():
            _replace(path, new)
    return report


def _replace(path: Path, text: str) -> None:
    """Write ``text`` over ``path`` through a temp file in its folder, keeping the file's permissions."""
    mode = path.stat().st_mode & 0o7777
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def diff(path: str, old: str, new: str) -> str:
    """A unified diff of one file's change, for ``fmt --diff``."""
    import difflib

    return "".join(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                        f"{path} (now)", f"{path} (formatted)"))
