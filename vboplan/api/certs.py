"""The SSL contexts ``verify`` stands for. A CA bundle it names: PEM (one or more certificates) or a single DER
certificate, the ``.cer`` that Windows exports by default; both load into an SSL context, anything else is refused with
the file named. ``verify: true``: the public CA bundle vboplan installs with (certifi's), and only that.

Every context is built from explicit certificates, never from OpenSSL's default locations: those honour the
``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` environment variables (so do ``ssl.create_default_context()`` without a CA and
``httpx.create_ssl_context()``), which would let whatever set them widen what a run trusts."""

from __future__ import annotations

import ssl
from pathlib import Path

from vboplan.errors import ProjectError
from vboplan.shapes import NotRegularFile, read_regular

_PEM_MARKER = b"-----BEGIN CERTIFICATE-----"
_MAX_BYTES = 4 * 1024 * 1024


def _read(path: Path, what: str) -> bytes:
    try:
        data = read_regular(path, _MAX_BYTES)
    except NotRegularFile as exc:
        raise ProjectError(f"{what}: {exc.strerror}") from None
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


def default_context() -> ssl.SSLContext:
    """``verify: true``: certifi's bundle. ``cafile`` given, ``create_default_context`` loads nothing else (no
    ``load_default_certs``, so no ``SSL_CERT_FILE``/``SSL_CERT_DIR``)."""
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def unverified_context() -> ssl.SSLContext:
    """``verify: false``: TLS without checking the certificate or the host name (vboplan warns on every run)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def check_ca_file(path: Path, what: str) -> None:
    """Refuse a ``verify`` file that holds no certificate (before any connection is tried)."""
    _context(_read(path, what), what)


def ssl_context(path: str | Path, what: str) -> ssl.SSLContext:
    """A verifying client context that trusts the certificates in ``path`` (PEM or DER)."""
    return _context(_read(Path(path), what), what)
