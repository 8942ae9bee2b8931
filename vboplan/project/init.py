"""``vboplan init``: a new project that plans against the embedded emulator as it is, an ``allowed_signers`` file
built from public key files, and the move of local state snapshots to a shared backend once vboplan.yaml names one.

Nothing that exists is replaced: a new project's files are written together or not at all (see
:mod:`vboplan.project.newfiles`), and an ``allowed_signers`` file that differs is rewritten only when asked to.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from vboplan.errors import ProjectError

if TYPE_CHECKING:
    from vboplan.project.config import Environment, Project

#: The password of the new project's embedded emulator (a lab server in .vboplan/, never a real one).
LAB_PASSWORD = "dev-emulator-password"
PASSWORD_ENV = "VBO_DEV_PASSWORD"
SIGNERS_FILE = "approvers/allowed_signers"

CONFIG = """\
# vboplan project: which templates make up the desired settings, and the servers they apply to.
templates: ["templates/*.yaml.j2"]
environments:
  dev:
    server: emulator:dev                 # the embedded emulator (data in .vboplan/emulator/); a real server is
                                         # https://vbo.corp.local:4443
    api_version: v8
    username: svc-vboplan
    password_env: VBO_DEV_PASSWORD       # the API password comes from this variable, never from a file
    var_files: [environments/common.yaml, environments/dev.yaml]
    approvals: {required: 0}
  # prod:
  #   server: https://vbo.corp.local:4443
  #   verify: certs/vbo-prod.pem         # the server's certificate (VBO ships a self-signed one)
  #   username: svc-vboplan
  #   password_env: VBO_PROD_PASSWORD
  #   var_files: [environments/common.yaml, environments/prod.yaml]
  #   approvals:                         # four-eyes: two people other than the plan's author
  #     required: 2
  #     allowed_signers: approvers/allowed_signers   # 'vboplan init --signers DIR' builds it from .pub files
  #     max_age: 72h
# state:                                 # shared state for a team (default: .vboplan/state/)
#   backend: s3
#   bucket: vboplan-state
#   prefix: corp/
"""

TEMPLATE = """\
{# Desired settings: field names are the API's own (see Veeam's REST API reference). #}
audit_email_settings:
  enableNotification: true
  smtpServer: {{ smtp.host }}
  port: {{ smtp.port }}
  useSSL: true
  useAuthentication: false
  {#- With authentication, the password comes from the environment, never from a file:
  useAuthentication: true
  username: {{ smtp.user }}
  userPassword: {{ secret("SMTP_PASSWORD") }}
  #}
  from: vbo.audit@{{ domain }}
  to: security@{{ domain }}
job_email_settings:
  enableNotification: true
  notifyOnFailure: true
  notifyOnSuccess: {{ notify_on_success }}
history_settings:
  keepAllsessions: false
  keeponlyLast: {{ history_weeks }}
"""

COMMON = """\
# Variables every environment shares; an environment's own file (listed after this one) wins.
smtp:
  port: 587
  user: svc-vbo-mail
notify_on_success: false
history_weeks: 53
"""

DEV = """\
# Variables of the dev environment.
domain: lab.contoso.com
smtp:
  host: smtp.lab.contoso.com
notify_on_success: true
"""

EMULATOR = f"""\
# Seed of the embedded emulator behind 'server: emulator:dev' (a lab server, not a real one).
credentials: [{{username: svc-vboplan, password: {LAB_PASSWORD}}}]
organizations:
  - name: contoso.onmicrosoft.com
    users: [{{displayName: Jane Doe, name: jane@contoso.com}}]
    groups: [{{displayName: HR Department, name: hr@contoso.com}}]
audit_email_settings: {{enableNotification: false, smtpServer: smtp.old.contoso.com, port: 25}}
"""

GITIGNORE = """\
# Written by vboplan (state snapshots, locks, plans, the embedded emulator's data): never committed.
.vboplan/
"""

FILES = {"vboplan.yaml": CONFIG, "templates/settings.yaml.j2": TEMPLATE, "environments/common.yaml": COMMON,
         "environments/dev.yaml": DEV, "emulator/dev.yaml": EMULATOR, ".gitignore": GITIGNORE}


@dataclass
class InitResult:
    written: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def new_project(root: Path) -> InitResult:
    """Write the example project into ``root`` (made if missing); files that exist are kept as they are."""
    from vboplan.project.newfiles import NewFiles

    result = InitResult()
    batch = NewFiles()
    for name, text in FILES.items():
        path = root / name
        if path.exists() or path.is_symlink():
            result.kept.append(name)
        else:
            batch.add(path, text)
            result.written.append(name)
    root.mkdir(parents=True, exist_ok=True)
    batch.commit({root / name: name for name in FILES})
    return result


# -- allowed_signers from public key files -------------------------------------------------------------------------

_NOT_IN_PRINCIPAL = set(" \t,*?!\"'#")


def signers_text(folder: Path) -> tuple[str, list[str]]:
    """The ``allowed_signers`` lines for the public key files in ``folder``, each named after its principal
    (``alice@contoso.com.pub``), and the principals, sorted. Every problem names the file and line."""
    from vboplan.trust.signing import Signature

    if not folder.is_dir():
        raise ProjectError(f"--signers {folder}: not a folder of public key files (alice@contoso.com.pub, ...)")
    files = sorted(p for p in folder.iterdir() if p.name.endswith(".pub") and p.is_file())
    if not files:
        raise ProjectError(f"--signers {folder}: no public key files (*.pub, named after their owner: "
                           "alice@contoso.com.pub)")
    lines = ["# Who may sign vboplan plans and approvals: one line per key, built by 'vboplan init --signers' from "
             "the public key files named after their owners.", ""]
    principals = []
    for path in files:
        principal = path.name[:-len(".pub")]
        if not principal or _NOT_IN_PRINCIPAL & set(principal):
            raise ProjectError(f"{path}: the file name must be the key owner's name (alice@contoso.com.pub), without "
                               "spaces, commas, quotes or wildcards")
        keys = 0
        for number, raw in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if "PRIVATE KEY" in line:
                raise ProjectError(f"{path}:{number}: this is a private key; give the public half (.pub) only, "
                                   "and keep the private key to its owner")
            parts = line.split()
            try:
                blob = base64.b64decode(parts[1], validate=True) if len(parts) > 1 else b""
            except binascii.Error:
                blob = b""
            if not blob or Signature(blob, "", "").key_type != parts[0]:
                raise ProjectError(f"{path}:{number}: not an OpenSSH public key line (ssh-ed25519 AAAA... comment)")
            lines.append(f"{principal} {parts[0]} {parts[1]}")
            keys += 1
        if not keys:
            raise ProjectError(f"{path}: holds no public key")
        principals.append(principal)
    return "\n".join(lines) + "\n", principals


def write_signers(root: Path, folder: Path, target: str, force: bool) -> tuple[str, list[str], bool]:
    """Build ``target`` (relative to ``root``) from ``folder``. Returns (what happened, principals, whether it was
    written). An existing file that differs is replaced only with ``force``."""
    from vboplan.trust.signing import TrustList

    text, principals = signers_text(folder)
    path = root / target
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise ProjectError(f"{target}: not a regular file; vboplan writes allowed_signers files only as regular files")
    if path.exists():
        old = path.read_text(encoding="utf-8", errors="replace")
        if old == text:
            return f"{target} is up to date ({', '.join(principals)})", principals, False
        if not force:
            raise ProjectError(f"{target} exists and differs from the keys in {folder} "
                               f"({_who_changes(old, principals)}); review that, then run again with --force")
    from vboplan.project.fmt import _replace
    from vboplan.project.newfiles import NewFiles

    if path.exists():
        _replace(path, text)
    else:
        batch = NewFiles()
        batch.add(path, text)
        batch.commit({path: target})
    TrustList.load(path, target)  # it reads back as vboplan will read it
    return f"Wrote {target} with {len(principals)} signer(s): {', '.join(principals)}", principals, True


def _who_changes(old: str, principals: list[str]) -> str:
    before = {line.split()[0] for line in old.splitlines() if line.strip() and not line.startswith("#")}
    added, removed = sorted(set(principals) - before), sorted(before - set(principals))
    parts = ([f"adds {', '.join(added)}"] if added else []) + ([f"removes {', '.join(removed)}"] if removed else [])
    return "; ".join(parts) or "the same people, other keys"


# -- state migration --------------------------------------------------------------------------------------------


def pending_migrations(project: Project) -> list[tuple[Environment, str]]:
    """The environments whose local snapshot (``.vboplan/state/``) is not yet in the shared backend vboplan.yaml
    configures, with why; nothing when the configured backend is the local one."""
    from vboplan.state import StateStore
    from vboplan.state.local import LocalBackend

    if project.state.backend == "local":
        return []
    local = LocalBackend(project.work_dir / "state", project.root)
    pending = []
    for env in project.environments.values():
        stored = local.get(f"{env.name}.json")
        if stored is None:
            continue
        mine = StateStore(project, env, local).parse(stored.text)
        theirs = StateStore(project, env).read()
        if theirs is None:
            pending.append((env, f"serial {mine['serial']}, not in the shared backend yet"))
        elif theirs["lineage"] == mine["lineage"] and theirs["serial"] < mine["serial"]:
            pending.append((env, f"local serial {mine['serial']} is newer than the shared serial {theirs['serial']}"))
    return pending
