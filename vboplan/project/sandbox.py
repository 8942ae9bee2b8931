"""Jinja's sandbox with bounds on what a template can make vboplan compute.

Jinja's own sandbox stops templates from reaching Python internals and caps a single ``range()``; it does not stop
``{{ 9 ** 9 ** 9 }}`` (hours of big-integer arithmetic), ``{{ "x" * 10 ** 10 }}`` (gigabytes), loops nested over
``range()`` or an endless stream of output. These bounds turn each into a template error instead."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

#: Longest string or list a template may build with ``*``, and most text a template may render.
MAX_SIZE = 32 * 1024 * 1024
#: Largest number (in bits) ``*`` and ``**`` may produce.
MAX_INT_BITS = 4096
#: Most values all ``range()`` calls of one rendering may produce together.
MAX_RANGE_TOTAL = 1_000_000


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """An immutable sandbox whose arithmetic, ``range()`` and output are bounded."""

    intercepted_binops = frozenset({"*", "**"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.range_left = MAX_RANGE_TOTAL
        self.globals["range"] = self._range

    def _range(self, *args: Any) -> range:
        values = range(*args)
        self.range_left -= len(values)
        if self.range_left < 0:
            raise SecurityError(f"range() calls of this template produce more than {MAX_RANGE_TOTAL:,} values")
        return values

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and _is_int(left) and _is_int(right) and abs(left) > 1 \
                and right * max(abs(left).bit_length(), 1) > MAX_INT_BITS:
            raise SecurityError(f"{left} ** {right} is too large a number")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and _is_int(times) and len(seq) * times > MAX_SIZE:
                    raise SecurityError(f"repeating a value {times} times makes it too large")
            if _is_int(left) and _is_int(right) and abs(left).bit_length() + abs(right).bit_length() > MAX_INT_BITS:
                raise SecurityError("the product is too large a number")
        return super().call_binop(context, operator, left, right)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def render_bounded(chunks: Iterator[str]) -> str:
    """Join a template's output, refusing more than :data:`MAX_SIZE` characters (or ``VBOPLAN_MAX_FILE_MIB``)."""
    from vboplan.limits import FILE_ENV, bound, mib, raise_hint

    limit = bound(FILE_ENV, MAX_SIZE)
    parts: list[str] = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise SecurityError(f"the template renders more than {mib(limit)} MiB ({raise_hint(FILE_ENV, limit)})")
        parts.append(chunk)
    return "".join(parts)
