"""Size bounds a user can raise: the largest server answer and the largest file vboplan reads.

Both guard against runaway input (a hostile or broken server sending without end, a file that is not what it
seems) rather than against large tenants, so a user whose server or lists really are that large raises them, by
an environment variable that every process of a run (fleet workers included) inherits.
"""

from __future__ import annotations

import os

from vboplan.errors import ProjectError

#: Largest server answer, in MiB (``VBOPLAN_MAX_RESPONSE_MIB``).
RESPONSE_ENV = "VBOPLAN_MAX_RESPONSE_MIB"
#: Largest configuration, variable, data or rendered template file, in MiB (``VBOPLAN_MAX_FILE_MIB``).
FILE_ENV = "VBOPLAN_MAX_FILE_MIB"
MIB = 1024 * 1024


def bound(variable: str, default: int) -> int:
    """The bound in bytes that ``variable`` sets (a number of MiB above 0, fractions allowed), else ``default``."""
    given = os.environ.get(variable, "").strip()
    if not given:
        return default
    try:
        mib = float(given)
    except ValueError:
        mib = 0.0
    if not 0 < mib < 1024 * 1024:  # NaN and inf fail this too
        raise ProjectError(f"{variable}={given}: give a number of MiB above 0 (e.g. {variable}=1024)")
    return max(1, int(mib * MIB))


def mib(size: int) -> str:
    """``size`` bytes as the MiB figure messages name (``64``, ``0.5``)."""
    return f"{size / MIB:.4g}"


def raise_hint(variable: str, size: int) -> str:
    """How to raise a bound that stands at ``size`` bytes: the variable and a value four times as large."""
    return f"raise it with {variable}={mib(4 * size)} (MiB)"
