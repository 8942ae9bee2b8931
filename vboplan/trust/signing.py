"""SSH signatures (OpenSSH's SSHSIG format, as ``ssh-keygen -Y sign`` makes them) and ``allowed_signers`` trust files.

Signing runs ``ssh-keygen``, so a private key file, a passphrase prompt or a key held by ssh-agent (hardware keys
included) all work as they do for git. Verification runs in-process with ``sshsig`` for Ed25519 and RSA and falls
back to ``ssh-keygen -Y verify`` for the key types that library lacks (ECDSA, ``sk-`` security keys).
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sshsig
from sshsig.allowed_signers import AllowedSigner
from sshsig.sshsig import SshsigSignature

from vboplan.errors import ProjectError, VboplanError
from vboplan.shapes import MAX_FILE_BYTES, read_regular

APPROVE_NAMESPACE = "vboplan-approve"
PLAN_NAMESPACE = "vboplan-plan"
GIT_NAMESPACE = "git"  # what git signs commits in (gpg.format=ssh)
_HASHES = {b"sha256", b"sha512"}  # what ssh-keygen produces and accepts
_TIMEOUT = 120.0  # seconds for one ssh-keygen run (a passphrase prompt is answered by a person)


class SigningError(VboplanError):
    """A signature could not be made or does not verify; the message says why."""


def canonical(document: Any) -> bytes:
    """The exact bytes that are signed or hashed: sorted keys, fixed separators, UTF-8."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def fingerprint(blob: bytes) -> str:
    """A key's SHA256 fingerprint as ``ssh-keygen -l`` prints it."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def key_blob(public_key: str) -> bytes:
    """The wire blob of an OpenSSH public key line (``type base64 [comment]``)."""
    parts = public_key.split()
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except (IndexError, binascii.Error):
        raise SigningError(f"not an OpenSSH public key: {public_key[:40]!r}") from None
    return blob


# -- signing ----------------------------------------------------------------------------------------------------


def _ssh_keygen() -> str:
    found = shutil.which("ssh-keygen")
    if not found:
        raise SigningError("ssh-keygen was not found on PATH; install OpenSSH 8.2 or later to sign with SSH keys")
    return found


def sign(data: bytes, key: str | Path, namespace: str) -> str:
    """Sign ``data`` with ``ssh-keygen -Y sign``: ``key`` is a private key file, or a public key whose private half
    ssh-agent holds. Returns the armored signature."""
    key_path = Path(key).expanduser()
    if not key_path.is_file():
        raise SigningError(f"signing key '{key}' not found (give a private key file, or a public key held by ssh-agent)")
    with tempfile.TemporaryDirectory(prefix="vboplan-sign-") as folder:
        message = Path(folder) / "statement.json"
        message.write_bytes(data)
        try:
            done = subprocess.run([_ssh_keygen(), "-Y", "sign", "-n", namespace, "-f", str(key_path), str(message)],
                                  stdin=subprocess.DEVNULL if not os.isatty(0) else None, capture_output=True,
                                  text=True, timeout=_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise SigningError(f"ssh-keygen did not finish signing with '{key}' within {_TIMEOUT:g}s") from None
        signature = message.with_name("statement.json.sig")
        if done.returncode != 0 or not signature.exists():
            reason = " ".join(line.strip() for line in done.stderr.splitlines()
                              if line.strip() and not line.startswith(("Signing file", "Write signature")))
            raise SigningError(f"ssh-keygen could not sign with '{key}': {reason or f'exit {done.returncode}'}")
        return signature.read_text(encoding="ascii")


def public_key_of(key: str | Path) -> str:
    """The OpenSSH public key line of ``key`` (a public key file, the ``.pub`` beside a private key, or derived)."""
    key_path = Path(key).expanduser()
    for candidate in (key_path, Path(f"{key_path}.pub")):
        try:
            text = candidate.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            continue
        if text and not text.startswith("-----") and len(text.split()) >= 2:
            return text
    try:
        done = subprocess.run([_ssh_keygen(), "-y", "-f", str(key_path)], capture_output=True, text=True,
                              timeout=_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise SigningError(f"ssh-keygen did not read the public half of '{key}' in time") from None
    if done.returncode != 0:
        raise SigningError(f"cannot read the public key of '{key}': {done.stderr.strip() or done.returncode}")
    return done.stdout.strip()


# -- verification -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Signature:
    """What an armored SSHSIG says about itself before it is checked."""

    blob: bytes
    namespace: str
    hash_algo: str

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.blob)

    @property
    def key_type(self) -> str:
        length = int.from_bytes(self.blob[:4], "big")
        return self.blob[4:4 + length].decode("ascii", "replace")


def parse(armored: str) -> Signature:
    """Read the key, namespace and hash named inside an armored signature (nothing is verified yet)."""
    if not isinstance(armored, str) or "-----BEGIN SSH SIGNATURE-----" not in armored:
        raise SigningError("not an SSH signature")
    try:
        outer = SshsigSignature.from_armored(armored)
    except (ValueError, NotImplementedError, binascii.Error, IndexError) as exc:
        raise SigningError(f"not a readable SSH signature ({exc})") from None
    return Signature(bytes(outer.public_key), outer.namespace.decode("ascii", "replace"),
                     outer.hash_algo.decode("ascii", "replace"))


def verify(data: bytes, armored: str, namespace: str) -> Signature:
    """Check that ``armored`` is a valid signature of ``data`` in ``namespace`` by the key it names; returns it.
    Whether that key is trusted is the caller's business (:class:`TrustList`)."""
    signature = parse(armored)
    if signature.namespace != namespace:
        raise SigningError(f"it was signed for namespace '{signature.namespace}', not '{namespace}'")
    if signature.hash_algo.encode() not in _HASHES:
        raise SigningError(f"it uses hash '{signature.hash_algo}' (only sha256 and sha512 are accepted)")
    try:
        sshsig.check_signature(data, armored, namespace)
    except sshsig.InvalidSignature:
        raise SigningError("the signature does not match what it claims to sign (edited after signing)") from None
    except NotImplementedError:
        _verify_with_ssh_keygen(data, armored, namespace, signature)
    return signature


def _verify_with_ssh_keygen(data: bytes, armored: str, namespace: str, signature: Signature) -> None:
    """For key types ``sshsig`` lacks: ``ssh-keygen -Y verify`` against a one-line trust file holding exactly the
    key the signature names (trust itself is decided by the caller)."""
    key_line = f"{signature.key_type} {base64.b64encode(signature.blob).decode()}"
    with tempfile.TemporaryDirectory(prefix="vboplan-verify-") as folder:
        signers = Path(folder) / "allowed_signers"
        signers.write_text(f'signer namespaces="{namespace}" {key_line}\n', encoding="ascii")
        sig_file = Path(folder) / "statement.sig"
        sig_file.write_text(armored, encoding="ascii")
        try:
            done = subprocess.run([_ssh_keygen(), "-Y", "verify", "-f", str(signers), "-I", "signer", "-n", namespace,
                                   "-s", str(sig_file)], input=data, capture_output=True, timeout=_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise SigningError("ssh-keygen did not finish verifying in time") from None
    if done.returncode != 0:
        raise SigningError("the signature does not match what it claims to sign (edited after signing)")


# -- allowed_signers ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrustedKey:
    """One line of an ``allowed_signers`` file."""

    principals: tuple[str, ...]
    key_type: str
    blob: bytes
    namespaces: tuple[str, ...] | None
    valid_after: datetime | None
    valid_before: datetime | None
    where: str

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.blob)

    def allows_namespace(self, namespace: str) -> bool:
        if self.namespaces is None:
            return True
        allowed = False
        for pattern in self.namespaces:
            negated = pattern.startswith("!")
            if fnmatch.fnmatchcase(namespace, pattern[1:] if negated else pattern):
                if negated:
                    return False
                allowed = True
        return allowed

    def window_problem(self, moment: datetime) -> str | None:
        """Why the key is not valid at ``moment`` (None when it is)."""
        if self.valid_after and moment < self.valid_after:
            return f"the key is valid only from {_show(self.valid_after)} (valid-after, {self.where})"
        if self.valid_before and moment >= self.valid_before:
            return f"the key was valid only until {_show(self.valid_before)} (valid-before, {self.where})"
        return None


class TrustList:
    """An environment's ``allowed_signers`` file: who may sign, with which key, for what and when."""

    def __init__(self, display: str, keys: list[TrustedKey]) -> None:
        self.display = display
        self.keys = keys

    @classmethod
    def load(cls, path: Path, display: str) -> TrustList:
        """Read ``path``; every error names the file and line."""
        try:
            text = read_regular(path, MAX_FILE_BYTES).decode("utf-8")
        except FileNotFoundError:
            raise ProjectError(f"{display}: allowed_signers file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ProjectError(f"{display}: cannot read the allowed_signers file ({exc})") from None
        return cls.parse(text, display)

    @classmethod
    def parse(cls, text: str, display: str) -> TrustList:
        """The trust file whose content is ``text``; every error names ``display`` and the line."""
        keys = []
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            keys.append(_trusted_key(line, f"{display}:{number}"))
        return cls(display, keys)

    def lookup(self, blob: bytes) -> list[TrustedKey]:
        return [key for key in self.keys if key.blob == blob]

    def principals(self, blob: bytes) -> tuple[str, ...]:
        """Every principal any line gives the key ``blob`` (whatever its namespaces or validity): whom a signature
        by it may stand for, which is what excluding an author needs."""
        return tuple(dict.fromkeys(p for entry in self.lookup(blob) for p in entry.principals))

    def key_problem(self, blob: bytes, namespace: str, *moments: datetime) -> str | None:
        """Why a signature by ``blob`` in ``namespace`` does not count at each of ``moments`` (None when a line of
        this file allows it: the key listed, the namespace allowed, every moment inside its validity window)."""
        entries = self.lookup(blob)
        if not entries:
            return f"key {fingerprint(blob)} is not in {self.display}"
        allowed = [e for e in entries if e.allows_namespace(namespace)]
        if not allowed:
            return f"key {fingerprint(blob)} may not sign '{namespace}' (namespaces in {entries[0].where})"
        problems = []
        for entry in allowed:
            found = next((p for p in (entry.window_problem(m) for m in moments) if p), None)
            if found is None:
                return None
            problems.append(found)
        return problems[0]


def _trusted_key(line: str, where: str) -> TrustedKey:
    try:
        entry = AllowedSigner.parse(line)
    except (ValueError, IndexError) as exc:
        raise ProjectError(f"{where}: not an allowed_signers line ({exc})") from None
    options = entry.options or {}
    if "cert-authority" in options:
        raise ProjectError(f"{where}: cert-authority lines are not supported by vboplan; list each approver's own "
                           "public key")
    principals = tuple(p.strip() for p in entry.principals.split(",") if p.strip())
    if not principals:
        raise ProjectError(f"{where}: no principal names the owner of this key")
    for principal in principals:
        if any(c in principal for c in "*?!"):
            raise ProjectError(f"{where}: principal '{principal}' is a pattern; name each approver, so that "
                               "approvals by different people can be told apart")
    try:
        blob = base64.b64decode(entry.base64_key, validate=True)
    except binascii.Error:
        raise ProjectError(f"{where}: the public key is not valid base64") from None
    if not blob or Signature(blob, "", "").key_type != entry.key_type:
        raise ProjectError(f"{where}: the key does not match its type '{entry.key_type}'")
    namespaces = options.get("namespaces")
    return TrustedKey(
        principals=principals, key_type=entry.key_type, blob=blob,
        namespaces=tuple(n.strip() for n in namespaces.split(",") if n.strip()) if namespaces is not None else None,
        valid_after=_timestamp(options.get("valid-after"), where, "valid-after"),
        valid_before=_timestamp(options.get("valid-before"), where, "valid-before"), where=where)


def _timestamp(value: str | None, where: str, name: str) -> datetime | None:
    """OpenSSH's YYYYMMDD[HHMM[SS]][Z]: UTC with a trailing Z, local time otherwise."""
    if value is None:
        return None
    text = value.strip()
    utc = text.upper().endswith("Z")
    digits = text[:-1] if utc else text
    formats = {8: "%Y%m%d", 12: "%Y%m%d%H%M", 14: "%Y%m%d%H%M%S"}
    try:
        if not digits.isdigit() or len(digits) not in formats:
            raise ValueError(value)
        moment = datetime.strptime(digits, formats[len(digits)])
    except ValueError:
        raise ProjectError(f"{where}: {name}=\"{value}\" is not YYYYMMDD[HHMM[SS]][Z]") from None
    return moment.replace(tzinfo=timezone.utc) if utc else moment.astimezone()


def _show(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
