"""``verify: true`` trusts the CA bundle vboplan ships (certifi's) and nothing the process environment adds: the
OpenSSL variables ``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` that Python's default context (and httpx's) would read
never widen what a run trusts. Each case runs the CLI in a fresh process, so no SSL context built earlier is reused."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ProjectDir

REPO = Path(__file__).resolve().parents[1]


def _plan(project: ProjectDir, url: str, verify: str, **environ: str) -> subprocess.CompletedProcess[str]:
    config = (project.root / "vboplan.yaml").read_text().replace("emulator:dev", url, 1)
    config = config.replace("    api_version: v8\n", f"    api_version: v8\n    verify: {verify}\n    timeout: 5\n", 1)
    project.write("vboplan.yaml", config)
    # Neither variable inherited (a machine may set both): each case sets exactly the one it tests.
    env = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    env.update(PYTHONPATH=str(REPO), **environ)
    return subprocess.run([sys.executable, "-m", "vboplan", "-C", str(project.root), "--no-color", "plan", "--env",
                           "dev", "--target", "audit_email_settings.port"], env=env, capture_output=True, text=True,
                          timeout=120)


def _hashed_folder(ca: Path, folder: Path) -> Path:
    """An OpenSSL CA folder (``c_rehash`` layout): the certificate under ``<subject hash>.0``."""
    subject_hash = subprocess.run(["openssl", "x509", "-hash", "-noout", "-in", str(ca)], capture_output=True,
                                  text=True, check=True).stdout.strip()
    folder.mkdir()
    shutil.copy(ca, folder / f"{subject_hash}.0")
    return folder


def test_the_emulators_ca_is_what_makes_it_trusted(project: ProjectDir, tls_server) -> None:  # type: ignore[no-untyped-def]
    """The control: the same certificate named by ``verify`` is trusted, so the refusals below are about trust."""
    result = _plan(project, tls_server.url, str(tls_server.ca_path))
    assert result.returncode == 0, result.stderr
    assert "audit_email_settings.port" in result.stdout


@pytest.mark.parametrize("variable", ["SSL_CERT_FILE", "SSL_CERT_DIR"])
def test_ssl_environment_variables_never_widen_trust(project: ProjectDir, tls_server, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                     variable: str) -> None:
    if variable == "SSL_CERT_DIR" and shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to lay out a hashed CA folder")
    ca = Path(tls_server.ca_path)
    value = str(ca) if variable == "SSL_CERT_FILE" else str(_hashed_folder(ca, tmp_path / "certs"))
    result = _plan(project, tls_server.url, "true", **{variable: value})
    assert result.returncode == 1, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "TLS verification failed" in lines[0] and "'dev'" in lines[0], lines[0]
