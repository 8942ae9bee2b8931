"""Values and counts as a user reads them in messages: template spelling (``true``, ``(not set)``), right plurals."""

from __future__ import annotations

import json
import re
from typing import Any

from vboplan.sensitive import MASK, Sensitive

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Control characters but tab and newline (C0, DEL, C1): a server's value or a plan file's text holding ESC could
#: otherwise set a terminal's title, write its clipboard (OSC 52) or rewrite what a reviewer sees.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with every control character but tab and newline shown as its escape (``\\u001b``)."""
    return _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


#: What a terminal may be sent besides text: tab, newline (alone or after a carriage return, as Windows ends a line),
#: and the colour codes click.style writes for vboplan (reset, bold, normal intensity, the eight foreground colours
#: and their bright forms): not hidden text, blinking or a cursor move.
_SGR = "(?:0|1|22|3[0-79]|9[0-7])"
_UNSAFE = re.compile(f"\x1b\\[(?:{_SGR};)*{_SGR}?m|\r\n|[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def terminal_safe(text: str) -> str:
    """``text`` with every control character but tab, newline and colour codes shown as its escape: the last
    guard of everything vboplan prints, whatever field of a plan file, a server's answer or a file name it quotes
    (in JSON the escape is the same character, so a JSON document stays the same document)."""
    return _UNSAFE.sub(lambda m: m.group() if len(m.group()) > 1 else f"\\u{ord(m.group()):04x}", text)


def value(v: Any) -> str:
    """A value as it would be written in a template: ``true``, ``587``, ``smtp.local``, ``(not set)``."""
    if isinstance(v, Sensitive):
        return MASK
    if v is None:
        return "(not set)"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return printable(v if v and v.strip() == v else json.dumps(v, ensure_ascii=False))
    if isinstance(v, (dict, list)):
        return printable(json.dumps(v, sort_keys=True, ensure_ascii=False))
    return str(v)


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``1 approval``, ``2 approvals``, ``0 changes``."""
    return f"{count} {noun if count == 1 else many or noun + 's'}"


def child(address: str, key: Any) -> str:
    """The address of ``key`` under ``address``: ``.field`` for a name, ``["..."]`` for anything else."""
    text = str(key)
    return f"{address}.{text}" if _IDENTIFIER.match(text) else f"{address}[{json.dumps(text, ensure_ascii=False)}]"


def differences(address: str, before: Any, after: Any, limit: int = 20) -> list[str]:
    """One line per place where ``after`` differs from ``before``: ``smtpServer: planned against a, now b``."""
    lines: list[str] = []
    _walk(address, before, after, lines)
    if len(lines) > limit:
        lines = lines[:limit] + [f"and {plural(len(lines) - limit, 'more difference')}"]
    return lines


def _walk(address: str, before: Any, after: Any, lines: list[str]) -> None:
    if before == after:
        return
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(set(before) | set(after), key=str):
            _walk(child(address, key), before.get(key), after.get(key), lines)
        return
    if isinstance(before, list) and isinstance(after, list) and _named(before) and _named(after):
        old = {_name(i): i for i in before}
        new = {_name(i): i for i in after}
        added = [n for n in new if n not in old]
        removed = [n for n in old if n not in new]
        if added:
            lines.append(f"{address}: added on the server: {', '.join(added)}")
        if removed:
            lines.append(f"{address}: removed on the server: {', '.join(removed)}")
        for name in (n for n in new if n in old):
            _walk(child(address, name), old[name], new[name], lines)
        return
    lines.append(f"{address}: planned against {value(before)}, now {value(after)}")


def _named(items: list[Any]) -> bool:
    return all(isinstance(i, dict) and (i.get("name") or i.get("displayName")) for i in items)


def _name(item: dict[str, Any]) -> str:
    return str(item.get("name") or item.get("displayName"))
