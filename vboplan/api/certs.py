"""CA bundles named by ``verify``: PEM (one or more certificates) or a single DER certificate, the ``.cer`` that
Windows exports by default. Both load into an SSL context; anything else is refused with the file named."""

from __future__ import annotations

import ssl
from pathlib import Path

from vboplan.errors import ProjectError

_PEM_MARKER = b"-----BEGIN CERTIFICATE-----"
_MAX_BYTES = 4 * 1024 * 1024


def _read(path: Path, what: str) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(_MAX_BYTES + 1)
    except OSError as exc:
        raise ProjectError(f"{what}: cannot read the file ({exc.strerror or exc})") from None
    if len(data) > _MAX_BYTES:
        raise ProjectError(f"{what}: larger than {_MAX_BYTES // (1024 * 1024)} MiB; not a CA bundle")
    return data


def _context(data: bytes, what: str) -> ssl.SSLContext:
    # With cadata, create_default_context trusts only these certificates (not the system store), as cafile would.
    try:
        if _PEM_MARKER in data:
            return ssl.create_default_context(cadata=data.decode("ascii", errors="replace"))
        return ssl.create_default_context(cadata=data)  # DER: exactly one certificate
    except (ssl.SSLError, ValueError) as exc:
        if _PEM_MARKER in data:
            reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
            problem = f"holds a PEM certificate that cannot be used ({reason})"
        else:
            problem = "holds no certificate (neither PEM nor DER)"
        raise ProjectError(f"{what} {problem}; export the VBO server's certificate as Base-64 (PEM) or "
                           "DER .cer") from None


def check_ca_file(path: Path, what: str) -> None:
    """Refuse a ``verify`` file that holds no certificate (before any connection is tried)."""
    _context(_read(path, what), what)


def ssl_context(path: str | Path, what: str) -> ssl.SSLContext:
    """A verifying client context that trusts the certificates in ``path`` (PEM or DER)."""
    return _context(_read(Path(path), what), what)
