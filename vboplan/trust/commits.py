"""The commits a plan was rendered from, and who signed them.

A plan made in CI is signed by the runner's key, so its author signature names the runner, not the people who wrote
the change. Those people are found in git: the plan records every commit that touched its inputs (vboplan.yaml, the
templates, the environment's variable files and trust file) since the environment's last apply, each as its raw
commit object. A commit's git SSH signature (``git commit -S`` with ``gpg.format=ssh``: an SSHSIG in namespace
``git`` over the commit object without its ``gpgsig`` header) is checked in-process against the environment's
``allowed_signers`` file, like git's ``gpg.ssh.allowedSignersFile``; the principals it proves are authors of the
plan and never count as its approvers. A commit's author and committer lines are text anyone can write: they are
shown as unverified, and a principal they name is excluded as well (excluding more people is always safe).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from vboplan.errors import PlanError, VboplanError
from vboplan.trust import signing

MAX_COMMITS = 1000  # commits a plan records; more since the last apply means the history needs a look first
_TIMEOUT = 60.0     # seconds for one git command
_SIGNATURE_HEADERS = (b"gpgsig", b"gpgsig-sha256")  # git excludes both from what a commit's signature covers
_IDENT = re.compile(rb"^(?P<name>.*?) ?<(?P<email>[^<>]*)> (?P<time>\d+) [+-]\d{4}$")


# -- recording (at plan time) -------------------------------------------------------------------------------------


def _git(root: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes] | None:
    """Run git in ``root`` (no pager, no signature display, no prompt); None when git is not installed."""
    found = shutil.which("git")
    if not found:
        return None
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}
    try:
        return subprocess.run([found, "-c", "log.showSignature=false", "-c", "core.quotePath=false", *args],
                              cwd=root, input=stdin, capture_output=True, timeout=_TIMEOUT, env=env, check=False)
    except subprocess.TimeoutExpired:
        raise PlanError(f"git {args[0]} did not finish within {_TIMEOUT:g}s in {root}") from None


def inputs(project: Any, env: Any) -> list[str]:
    """git pathspecs (relative to the project) of what ``env``'s plan is rendered from: vboplan.yaml, the folders
    of the template globs (templates may include their neighbours), the policy rule files, the inventory (it holds
    the environment's server, approvals and var files), the variable files and the trust file."""
    root = Path(project.root)
    specs = ["vboplan.yaml"]
    for pattern in project.templates:
        folder = pattern.replace("\\", "/").split("*")[0].rsplit("/", 1)[0] if "/" in pattern else ""
        specs.append(f":(glob){folder}/**" if folder and "*" in pattern else f":(glob){pattern}")
    for pattern in getattr(project, "policies", ()):  # policy rule files decide what may apply, too
        if not pattern.startswith("builtin:"):
            specs.append(f":(glob){pattern}")
    inventory = getattr(project, "inventory", None)
    listed = inventory and str(getattr(env, "where", "")).startswith(f"{inventory}:")  # defined in the inventory
    files = ([root / inventory] if listed else []) + list(env.var_files) \
        + ([env.approvals.allowed_signers] if env.approvals.allowed_signers else [])
    specs += [f":(literal){os.path.relpath(Path(f), root)}" for f in files]
    return list(dict.fromkeys(specs))


def head(root: Path) -> str | None:
    """The commit checked out in ``root`` (None outside a git work tree, before the first commit, or without git)."""
    found = _git(root, "rev-parse", "--verify", "-q", "HEAD^{commit}")
    return found.stdout.decode().strip() if found is not None and found.returncode == 0 else None


def last_commit(snapshot: dict[str, Any] | None) -> str | None:
    """The commit the environment's last apply was planned from, as its state snapshot records it."""
    value = ((snapshot or {}).get("last_apply") or {}).get("commit")
    return value if isinstance(value, str) and re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", value) else None


def record(project: Any, env: Any, since: str | None) -> dict[str, Any] | None:
    """What a plan of ``env`` keeps about where it came from: ``{"head", "since", "commits": [{"id", "object"}],
    "uncommitted"}``, the commits that touched its inputs after ``since`` (all of them when None), newest first.
    None when the project is not in a git work tree (or git is not installed)."""
    root = Path(project.root)
    inside = _git(root, "rev-parse", "--is-inside-work-tree")
    if inside is None or inside.returncode != 0 or inside.stdout.strip() != b"true":
        return None
    specs = inputs(project, env)
    status = _git(root, "status", "--porcelain", "-z", "--untracked-files=all", "--", *specs)
    uncommitted = sorted({entry[3:].decode("utf-8", "replace") for entry in (status.stdout if status else b"")
                          .split(b"\0") if len(entry) > 3 and entry[2:3] == b" "})
    head = _git(root, "rev-parse", "--verify", "-q", "HEAD^{commit}")
    if head is None or head.returncode != 0:
        return {"head": None, "since": since, "commits": [], "uncommitted": uncommitted}  # no commit yet
    head_id = head.stdout.decode().strip()
    if since:
        known = _git(root, "cat-file", "-e", f"{since}^{{commit}}")
        if known is None or known.returncode != 0:
            raise PlanError(f"environment '{env.name}' was last applied from commit {since[:12]}, which this checkout "
                            "does not have: fetch the full history (git fetch --unshallow; in CI, fetch-depth: 0) "
                            "so the plan can name every commit since")
    listed = _git(root, "log", "--format=%H", f"--max-count={MAX_COMMITS + 1}",
                  *([f"{since}..{head_id}"] if since else [head_id]), "--", *specs)
    if listed is None or listed.returncode != 0:
        raise PlanError(f"git log failed in {root}: {(listed.stderr if listed else b'').decode('utf-8', 'replace')}")
    ids = listed.stdout.decode().split()
    if len(ids) > MAX_COMMITS:
        raise PlanError(f"environment '{env.name}': more than {MAX_COMMITS} commits touched its templates and "
                        f"variable files since {'commit ' + since[:12] if since else 'the start of the history'}")
    recorded = {"head": head_id, "since": since, "uncommitted": uncommitted,
                "commits": [{"id": i, "object": base64.b64encode(o).decode("ascii")}
                            for i, o in zip(ids, _objects(root, ids), strict=True)]}
    if since and env.approvals.allowed_signers:
        # The trust file as the last apply knew it: a key a commit since then added does not approve this plan.
        relative = os.path.relpath(Path(env.approvals.allowed_signers), root).replace(os.sep, "/")
        earlier = _git(root, "show", f"{since}:./{relative}")
        recorded["allowed_signers_at_since"] = earlier.stdout.decode("utf-8", "replace") \
            if earlier is not None and earlier.returncode == 0 else ""
    return recorded


def _objects(root: Path, ids: list[str]) -> list[bytes]:
    """The raw commit objects of ``ids``, read by one ``git cat-file --batch``."""
    if not ids:
        return []
    done = _git(root, "cat-file", "--batch", stdin="".join(f"{i}\n" for i in ids).encode())
    if done is None or done.returncode != 0:
        raise PlanError(f"git cat-file failed in {root}")
    out, objects, at = done.stdout, [], 0
    for _ in ids:
        end = out.index(b"\n", at)
        size = int(out[at:end].split()[2])
        objects.append(out[end + 1:end + 1 + size])
        at = end + 1 + size + 1
    return objects


# -- checking (at approve, show and apply) ------------------------------------------------------------------------


@dataclass(frozen=True)
class Commit:
    """One recorded commit as checked: who signed it (from the trust file) and, when that proves nobody, why."""

    id: str
    subject: str = ""
    author: str = ""                  # the author line's "Name <email>": text, not an identity
    emails: tuple[str, ...] = ()      # author and committer emails (unverified)
    principals: tuple[str, ...] = ()  # whom the key that made its signature stands for in allowed_signers
    fingerprint: str = ""
    problem: str | None = None        # None: signed by a listed key whose signature verifies

    @property
    def short(self) -> str:
        return self.id[:10]

    def describe(self) -> str:
        who = ",".join(self.principals) if self.principals and self.problem is None else self.author or "?"
        state = "verified" if self.problem is None else f"unverified: {self.problem}"
        return f"commit {self.short} {self.subject!r} by {who} ({state})"


def earlier_trust(recorded: Any, display: str) -> signing.TrustList | None:
    """The environment's trust file as it was at the last apply's commit (empty when it did not exist or does not
    parse), or None when the plan records no earlier apply to compare with."""
    text = recorded.get("allowed_signers_at_since") if isinstance(recorded, dict) else None
    if not isinstance(text, str):
        return None
    try:
        return signing.TrustList.parse(text, f"{display} (at the last apply)")
    except VboplanError:
        return signing.TrustList(display, [])


def check(recorded: Any, trust: signing.TrustList | None) -> list[Commit]:
    """Every commit a plan records, its object checked against its id and its signature against ``trust``."""
    if not isinstance(recorded, dict) or not isinstance(recorded.get("commits"), list):
        return []
    return [_check_one(entry, trust) for entry in recorded["commits"]]


def _check_one(entry: Any, trust: signing.TrustList | None) -> Commit:
    if not isinstance(entry, dict) or not isinstance(entry.get("id"), str) or not isinstance(entry.get("object"), str):
        return Commit("?", problem="not a recorded commit (no id and object)")
    commit_id = entry["id"]
    try:
        raw = base64.b64decode(entry["object"], validate=True)
    except binascii.Error:
        return Commit(commit_id, problem="its object is not readable")
    algorithm = {40: hashlib.sha1, 64: hashlib.sha256}.get(len(commit_id))
    if algorithm is None or algorithm(b"commit %d\0" % len(raw) + raw).hexdigest() != commit_id:
        return Commit(commit_id, problem="its object is not the commit its id names")
    payload, armored, fields = _split(raw, _SIGNATURE_HEADERS[len(commit_id) == 64])
    emails = tuple(dict.fromkeys(m.group("email").decode("utf-8", "replace").strip()
                                 for m in (fields.get(b"author"), fields.get(b"committer")) if m))
    author = fields.get(b"author")
    shown = Commit(commit_id, subject=fields[b"subject"].decode("utf-8", "replace")[:80],
                   author=(author.group("name") + b" <" + author.group("email") + b">").decode("utf-8", "replace")
                   if author else "", emails=emails)
    if armored is None:
        return _with(shown, problem="it is not signed")
    if "-----BEGIN SSH SIGNATURE-----" not in armored:
        return _with(shown, problem="it is signed with OpenPGP or X.509, not an SSH key")
    try:
        signature = signing.verify(payload, armored, signing.GIT_NAMESPACE)
    except signing.SigningError as exc:
        return _with(shown, problem=f"its signature does not verify: {exc}")
    committed = fields.get(b"committer") or author
    moment = datetime.fromtimestamp(int(committed.group("time")), timezone.utc) if committed else \
        datetime.now(timezone.utc)
    principals = trust.principals(signature.blob) if trust else ()
    problem = trust.key_problem(signature.blob, signing.GIT_NAMESPACE, moment) if trust else \
        "the environment has no allowed_signers file to check it against"
    return _with(shown, principals=principals, fingerprint=signature.fingerprint, problem=problem)


def _with(commit: Commit, **changes: Any) -> Commit:
    from dataclasses import replace

    return replace(commit, **changes)


def _split(raw: bytes, header: bytes) -> tuple[bytes, str | None, dict[bytes, Any]]:
    """A commit object as (what its signature covers, the armored signature in ``header`` or None, its
    author/committer identities and subject). As git does, every signature header is left out of what is signed."""
    head, _, message = raw.partition(b"\n\n")
    kept: list[bytes] = []
    signature: list[bytes] = []
    fields: dict[bytes, Any] = {}
    current = b""
    for line in head.split(b"\n"):
        if line.startswith(b" "):  # a continuation of the header above
            if current == header:
                signature.append(line[1:])
            elif current not in _SIGNATURE_HEADERS:
                kept.append(line)
            continue
        current = line.split(b" ", 1)[0]
        if current in _SIGNATURE_HEADERS:
            if current == header:
                signature = [line[len(current) + 1:]]
            continue
        kept.append(line)
        if current in (b"author", b"committer"):
            fields[current] = _IDENT.match(line[len(current) + 1:])
    fields[b"subject"] = message.split(b"\n", 1)[0]
    payload = b"\n".join(kept) + b"\n\n" + message
    armored = b"\n".join(signature).decode("ascii", "replace") if signature else None
    return payload, armored, fields
