"""Options several commands share that are not about environments or formats."""

from __future__ import annotations

import re
from typing import Any

import click

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)?")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
MAX_LOCK_WAIT = 24 * 3600.0


def parse_wait(text: str) -> float:
    """Seconds from ``60s``, ``5m``, ``1h``, ``500ms`` or a bare number of seconds; ``0`` means do not wait."""
    found = _DURATION.fullmatch(text.strip().lower())
    if not found:
        raise ValueError(f"'{text}' is not a duration like 60s, 5m or 1h")
    seconds = float(found[1]) * _SECONDS[found[2] or "s"]
    if seconds > MAX_LOCK_WAIT:
        raise ValueError(f"'{text}' is longer than {MAX_LOCK_WAIT / 3600:g}h")
    return seconds


def _set_lock_timeout(ctx: click.Context, param: click.Parameter, value: str | None) -> float:
    try:
        seconds = parse_wait(value) if value is not None else 0.0
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None
    from vboplan.state import LOCK_TIMEOUT

    # For this command only: a library caller (or the next command in one process) starts from the default again.
    token = LOCK_TIMEOUT.set(seconds)
    ctx.call_on_close(lambda: LOCK_TIMEOUT.reset(token))
    return seconds


def lock_timeout_option(func: Any) -> Any:
    """``--lock-timeout DURATION``: wait up to that long for an environment lock another run holds."""
    return click.option("--lock-timeout", "lock_timeout", metavar="DURATION", callback=_set_lock_timeout,
                        expose_value=False, is_eager=False,
                        help="Wait up to DURATION (e.g. 60s, 5m) for the environment's lock when another run "
                             "holds it (default: do not wait).")(func)
