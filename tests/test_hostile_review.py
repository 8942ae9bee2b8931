"""A hostile plan author, and an unlucky operator, against the promise of review: only what the required number of
real, identified people other than the author approved reaches a server, exactly as they were shown it, and the
record (snapshot, journal) is true whatever happens. Real runs: the emulator over real HTTP (held at chosen requests
by a gate where a test must act at an exact moment), keys from ssh-keygen, vboplan commands in processes of their
own where two runs race or one is killed."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import API_SECRET, SEED, ProjectDir
from forked import Forked
from gates import Gate, gated_emulator

POSIX_ONLY = pytest.mark.skipif(os.name == "nt", reason="SIGKILL and forked processes are POSIX only")
STATE = Path(".vboplan/state")


# -- helpers ---------------------------------------------------------------------------------------------------------

def _approved(project: ProjectDir, name: str, *args: str, who: tuple[str, ...] = ("alice", "bob")) -> Path:
    """``plan --env dev --out plans/NAME.json ARGS`` (signed by its author, ann), approved by ``who``."""
    path = project.root / "plans" / f"{name}.json"
    planned = project.run("plan", "--env", "dev", "--out", str(path), *args)
    assert planned.exit_code == 0, planned.output
    for person in who:
        approved = project.run("approve", str(path), "--key", str(project.keys[person]), "--ticket", "CHG-21")
        assert approved.exit_code == 0, approved.output
    return path


def _against(project: ProjectDir, url: str, approvals: bool = True) -> None:
    """Point the project's dev environment at ``url``; with ``approvals``, two approvals are required there."""
    config = project.root.joinpath("vboplan.yaml").read_text().replace("server: emulator:dev", f"server: {url}", 1)
    if approvals:
        config = config.replace("var_files: [environments/common.yaml, environments/dev.yaml]\n",
                                "var_files: [environments/common.yaml, environments/dev.yaml]\n"
                                "    approvals: {required: 2, allowed_signers: approvers/prod.allowed_signers}\n", 1)
    project.write("vboplan.yaml", config)


def _environ() -> dict[str, str]:
    return {**os.environ, "VBO_TEST_PASSWORD": API_SECRET, "VBOPLAN_USER": "ann"}


def _forked(project: ProjectDir, name: str, *argv: str) -> Forked:
    """``vboplan -C PROJECT ARGV`` in a process of its own (forked, see forked.py); output in ``name``.out/.err."""
    return Forked(["-C", str(project.root), "--no-color", *argv], _environ(), project.root.parent, name)


def _kill(run: Forked) -> None:
    os.kill(run.process.pid, signal.SIGKILL)
    run.process.join(30)
    assert run.process.exitcode == -signal.SIGKILL, run.process.exitcode


def _puts(gate: Gate, path: str = "") -> list[str]:
    return [p for m, p in gate.seen if m == "PUT" and p.endswith(path)]


def _until(test: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not test():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _snapshot(project: ProjectDir) -> dict[str, Any]:
    return dict(json.loads((project.root / STATE / "dev.json").read_text()))


def _journal(project: ProjectDir) -> Path:
    return project.root / STATE / "dev.journal.json"


def _converged(project: ProjectDir) -> None:
    """The next plan shows no change, and nothing changed outside vboplan: the record is the server's truth."""
    planned = project.run("plan", "--env", "dev", "--format", "json", "--detailed-exitcode")
    assert planned.exit_code == 0, planned.output
    document = json.loads(planned.stdout)["plans"][0]
    assert document["changes"] == [] and document.get("changed_outside") == [], document


# -- recovery of an interrupted apply (attacks 2 and 3) --------------------------------------------------------------

@pytest.fixture
def gate() -> Iterator[Gate]:
    with gated_emulator(SEED) as held:
        yield held


def _interrupted(project: ProjectDir, gate: Gate, plan: Path, held: str, landed: bool = True) -> None:
    """Apply ``plan`` in a process of its own and SIGKILL it: with ``landed``, once the server has answered its write
    to ``held`` (the apply is reading back); otherwise while the server holds that write, which it keeps holding
    (it never lands while the test runs). Its write journal is left behind, and no snapshot of it."""
    name, sent = f"kill {plan.name}", len(_puts(gate, held))
    if landed:
        gate.hold(name, lambda method, path: method == "GET" and len(_puts(gate, held)) > sent)
    else:
        gate.hold(name, lambda method, path: method == "PUT" and path.endswith(held))
    before = _snapshot(project) if (project.root / STATE / "dev.json").exists() else None
    applying = _forked(project, f"killed-{plan.stem}", "apply", str(plan))
    assert gate.arrived(name), "the apply never sent its write"
    _kill(applying)
    if landed:
        gate.release(name)
    assert _journal(project).exists(), "a killed apply left no write journal"
    assert (_snapshot(project) if before is not None else None) == before


def _settings(gate: Gate) -> dict[str, Any]:
    import httpx

    with httpx.Client(base_url=gate.url) as http:
        token = http.post("/v8/token", data={"grant_type": "password", "username": "admin",
                                             "password": API_SECRET}).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        return {"audit": http.get("/v8/AuditEmailSettings", headers=headers).json(),
                "job": http.get("/v8/VboEmailSettings", headers=headers).json()}


def _two_writes(project: ProjectDir, gate: Gate) -> Path:
    """A converged baseline applied, then the templates edited to make two writes (the audit mail's server, the job
    mail's notifyOnSuccess); a plan of both, approved by alice and bob, applied in a process killed while the server
    holds its second write: the journal says the first landed and the second was sent (it never lands)."""
    _against(project, gate.url)
    baseline = _approved(project, "baseline")
    assert project.run("apply", str(baseline)).exit_code == 0
    project.write("environments/dev.yaml", "domain: dev.contoso.com\nsmtp:\n  host: smtp2.dev.local\n"
                                           "notify_success: true\n")
    both = _approved(project, "both")
    _interrupted(project, gate, both, "/VboEmailSettings", landed=False)
    held = _settings(gate)
    assert held["audit"]["smtpServer"] == "smtp2.dev.local" and held["job"]["notifyOnSuccess"] is False, held
    return both


def _only_the_job_change_is_left(project: ProjectDir) -> None:
    planned = project.run("plan", "--env", "dev", "--format", "json")
    assert planned.exit_code == 0, planned.output
    document = json.loads(planned.stdout)["plans"][0]
    assert [c["address"] for c in document["changes"]] == ["job_email_settings.notifyOnSuccess"], document
    assert document.get("changed_outside") == [], document


@POSIX_ONLY
@pytest.mark.parametrize("wait", [None, "60s"], ids=["refused-at-once", "lock-timeout"])
def test_two_runners_racing_to_recover_an_interrupted_apply(project: ProjectDir, gate: Gate,
                                                            wait: str | None) -> None:
    """Two processes apply the same approved plan while an interrupted apply's journal is there. The first to take
    the lock is held by the server in the middle of folding that journal; the other stops with one clear line
    (locked by the first, or, waiting for the lock, the plan already applied) and sends nothing; the record says
    what reached the server, once."""
    _two_writes(project, gate)
    audit_puts = len(_puts(gate, "/AuditEmailSettings"))
    job_puts = len(_puts(gate, "/VboEmailSettings"))
    _only_the_job_change_is_left(project)
    rest = _approved(project, "rest")
    gate.hold("recovering", lambda method, path: method == "GET" and path.endswith("/VboEmailSettings"))
    extra = ("--lock-timeout", wait) if wait else ()
    try:
        if wait is None:
            # The second runner starts while the first, holding the lock, is folding the journal: refused at once.
            first = _forked(project, "runner-1", "apply", str(rest))
            assert gate.arrived("recovering"), "the first runner never started recovering the journal"
            holder = json.loads((project.root / STATE / "dev.lock.json").read_text())
            assert holder["pid"] == first.process.pid, holder
            lost = _forked(project, "runner-2", "apply", str(rest)).wait(60)
            assert first.process.is_alive()
        else:
            # Both start together; whichever takes the lock first is held folding the journal, the other waits.
            runs = [_forked(project, f"runner-{n}", "apply", str(rest), *extra) for n in (1, 2)]
            assert gate.arrived("recovering"), "no runner started recovering the journal"
            _until(lambda: json.loads((project.root / STATE / "dev.lock.json").read_text())["pid"]
                   in [r.process.pid for r in runs], "the lock info of a runner")
            holder = json.loads((project.root / STATE / "dev.lock.json").read_text())
            first = next(r for r in runs if r.process.pid == holder["pid"])
            second = next(r for r in runs if r is not first)
        gate.release("recovering")
        won = first.wait(60)
        if wait is not None:
            lost = second.wait(60)
    finally:
        gate.release_all()
    assert won.returncode == 0, won.stderr
    assert "was interrupted; its write journal says:" in won.stderr, won.stderr
    errors = [line for line in lost.stderr.splitlines() if line.startswith("Error: ")]
    assert lost.returncode == 1 and len(errors) == 1 and "Traceback" not in lost.stderr, lost.stderr
    if wait is None:
        assert "environment 'dev' is locked by ann (apply rest.json" in errors[0] and holder["id"] in errors[0], errors
    else:
        assert "this plan for 'dev' was already applied at" in errors[0], errors
    # Exactly one write of the remaining change; the landed one never again.
    assert len(_puts(gate, "/VboEmailSettings")) == job_puts + 1, gate.seen
    assert len(_puts(gate, "/AuditEmailSettings")) == audit_puts, gate.seen
    snapshot = _snapshot(project)
    assert snapshot["last_apply"]["checksum"] == json.loads(rest.read_text())["checksum"]
    assert [e["digest"] for e in snapshot["applied_plans"]].count(snapshot["last_apply"]["checksum"]) == 1
    assert not _journal(project).exists()
    assert _settings(gate)["job"]["notifyOnSuccess"] is True
    _converged(project)


@POSIX_ONLY
@pytest.mark.parametrize("moment", ["folding the journal", "sending its own write", "after its own write"])
def test_a_kill_during_the_apply_that_recovers_an_earlier_one(project: ProjectDir, gate: Gate, moment: str) -> None:
    """An interrupted apply's journal is folded by the next apply, which is SIGKILLed too: while it reads the server
    to fold the journal, while the server holds its own write, or once that write was answered. Whatever the
    moment, the next plan shows exactly what is left, nothing changed outside vboplan, nothing is sent twice, and
    one more approved plan converges the server."""
    _two_writes(project, gate)
    audit_puts = len(_puts(gate, "/AuditEmailSettings"))
    rest = _approved(project, "rest")
    journal_before = _journal(project).read_text()
    snapshot_before = _snapshot(project)
    job_puts = len(_puts(gate, "/VboEmailSettings"))
    if moment == "folding the journal":
        gate.hold(moment, lambda method, path: method == "GET" and path.endswith("/VboEmailSettings"))
    elif moment == "sending its own write":
        gate.hold(moment, lambda method, path: method == "PUT" and path.endswith("/VboEmailSettings"))
    else:
        gate.hold(moment, lambda method, path: method == "GET" and len(_puts(gate, "/VboEmailSettings")) > job_puts)
    applying = _forked(project, "recovering", "apply", str(rest))
    assert gate.arrived(moment), f"the apply never got to {moment}"
    _kill(applying)
    if moment != "sending its own write":  # a read goes on; the write stays held (it never lands)
        gate.release(moment)
    if moment == "folding the journal":
        # Killed before it recorded anything: the earlier journal and snapshot are as they were.
        assert _journal(project).read_text() == journal_before
        assert _snapshot(project) == snapshot_before
    else:
        # The earlier journal was folded into the snapshot (the first write recorded as landed), and the killed
        # apply's own journal says what it sent.
        recovered = _snapshot(project)
        assert recovered["serial"] == snapshot_before["serial"] + 1
        assert recovered["last_apply"]["interrupted"] is True
        assert [c["address"] for c in recovered["last_apply"]["applied"]] == ["audit_email_settings.smtpServer"]
        assert json.loads(_journal(project).read_text().partition("\n")[0])["checksum"] == \
            json.loads(rest.read_text())["checksum"]
    assert len(_puts(gate, "/AuditEmailSettings")) == audit_puts, gate.seen
    if moment == "after its own write":
        assert _settings(gate)["job"]["notifyOnSuccess"] is True
        _converged(project)
        assert len(_puts(gate, "/VboEmailSettings")) == job_puts + 1
        return
    _only_the_job_change_is_left(project)
    last = _approved(project, "last")
    applied = project.run("apply", str(last))
    assert applied.exit_code == 0, applied.output
    assert len(_puts(gate, "/AuditEmailSettings")) == audit_puts, gate.seen
    # Held once by the gate (never answered), then sent once by the last apply.
    assert len(_puts(gate, "/VboEmailSettings")) == job_puts + (1 if moment == "sending its own write" else 0) + 1
    assert not _journal(project).exists()
    _converged(project)


@POSIX_ONLY
def test_an_approved_plan_is_not_applied_again_once_its_interrupted_apply_is_recovered(
        project: ProjectDir, gate: Gate, monkeypatch: pytest.MonkeyPatch) -> None:
    """A password rotation (write-only: no read of the server shows it landed), approved, applied in a process
    killed once the server answered the PUT: the journal says it landed. The same plan file applied again must be
    refused (a plan applies once; a later apply of the environment happened since it was made), not sent twice."""
    _against(project, gate.url)
    baseline = _approved(project, "baseline")
    assert project.run("apply", str(baseline)).exit_code == 0
    monkeypatch.setenv("SMTP_PASSWORD", "Rotated-smtp-Pw-0042")
    rotate = _approved(project, "rotate")
    assert [c["address"] for c in json.loads(rotate.read_text())["changes"]] == ["audit_email_settings.userPassword"]
    _interrupted(project, gate, rotate, "/AuditEmailSettings")
    sent = len(_puts(gate, "/AuditEmailSettings"))
    again = project.run("apply", str(rotate))
    assert len(_puts(gate, "/AuditEmailSettings")) == sent, "the approved rotation was sent a second time"
    errors = [line for line in again.stderr.splitlines() if line.startswith("Error: ")]
    assert again.exit_code == 1 and len(errors) == 1 and "run 'vboplan plan' again" in errors[0], again.output
    assert not _journal(project).exists()
    _converged(project)


@POSIX_ONLY
def test_a_busy_lock_is_not_reported_as_held_by_a_run_that_was_killed(project: ProjectDir, gate: Gate) -> None:
    """A killed apply leaves its lock info; the next run has taken the operating-system lock and not yet written its
    own info (BARE_HOLDER, as in that instant). A third run is refused, but must not name the killed run as the
    holder, nor offer to break the lock with the killed run's id; that id breaks nothing."""
    from test_state_lock import BARE_HOLDER, holder

    _two_writes(project, gate)
    left = json.loads((project.root / STATE / "dev.lock.json").read_text())
    assert left["operation"] == "apply both.json"  # the killed run's
    rest = _approved(project, "rest")
    with holder(project, "dev", "", BARE_HOLDER, str(project.root / STATE / "dev.lock")):
        refused = project.run("apply", str(rest))
        # Nor can the killed run's id break the lock the new holder has taken.
        unlocked = project.run("state", "unlock", "--env", "dev", left["id"])
        assert unlocked.exit_code == 1 and (project.root / STATE / "dev.lock").exists(), unlocked.output
    errors = [line for line in refused.stderr.splitlines() if line.startswith("Error: ")]
    assert refused.exit_code == 1 and len(errors) == 1, refused.output
    assert "environment 'dev' is locked" in errors[0], errors
    assert left["id"] not in errors[0] and "locked by" not in errors[0], errors
    assert f"still that of a run that has ended (pid {left['pid']})" in errors[0], errors


# -- secrets: the API password and every secret() (attack 4) ---------------------------------------------------------

# Distinctive values, each planted once; '+', '/', '&' and '%' so that URL-encoded and JSON-escaped forms differ.
PLANTED = {
    "API": "Zq8+api/Review&77%31",
    "SMTP_PASSWORD": "Wv3/smtp+Review&44%19",
    "S3_SECRET_KEY": "Pk2&cloud/Review+99%83",
    "REVIEW_KEY_PASSWORD": "Ek5%key+Review/22&10",
    "REPO_NOTE": "Dx4+note&Review/55%61",
}
ROTATED = {"SMTP_PASSWORD": "Rt7/smtp&Rotated+01%23", "S3_SECRET_KEY": "Rt8+cloud%Rotated/45&67"}
WRONG_API = "Wr0ng/api+Review&00%00"
SECRET_TEMPLATE = """\
cloud_accounts:
  akiahostile01: {accountType: amazonS3Account, description: review account, password: {{ secret("S3_SECRET_KEY") }}}
encryption_keys:
  Review key: {password: {{ secret("REVIEW_KEY_PASSWORD") }}}
backup_repositories:
  Repo R:
    proxy: proxy01.contoso.local
    path: 'D:\\\\R'
    retentionType: ItemLevel
    encryptionKey: Review key
    description: {{ secret("REPO_NOTE") }}
"""


def _forms(value: str) -> set[str]:
    """The spellings a file or a log line could hold ``value`` in."""
    import base64
    from urllib.parse import quote, quote_plus

    forms = {value, value.lower(), value.upper(), quote(value, safe=""), quote_plus(value),
             json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=True)[1:-1], value.replace("/", "\\/"),
             base64.b64encode(value.encode()).decode()}
    return forms | {f.lower() for f in forms}


def _leaks(text: str, secrets: list[str]) -> list[str]:
    return [f"{secret!r} as {form!r}" for secret in secrets for form in _forms(secret) if form in text]


@POSIX_ONLY
def test_no_secret_anywhere(tmp_path: Path, keys: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Planted API password and secret() values through every command (every output format, -v and -vv), an
    approved apply, an apply SIGKILLed mid-write (journal and lock info left), the next commands reading them, a
    rotation, a wrong API password and an import: in no output, and in no file under the test's tmp, which holds the
    project and, for these runs, the temporary folder (TMPDIR)."""
    import tempfile

    from conftest import signer_line

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    seed = {**SEED, "credentials": [{"username": "admin", "password": PLANTED["API"]}],
            "proxies": [{"hostName": "proxy01.contoso.local", "port": 9193, "description": ""}]}
    outputs: list[str] = []
    files: dict[str, str] = {}  # every file under tmp_path, as it was at each look (the journal is gone at the end)

    def look() -> None:
        for path in tmp_path.rglob("*"):
            if path.is_file():
                files[f"{path} ({len(files)})"] = path.read_bytes().decode("utf-8", errors="replace")

    with gated_emulator(seed) as gate:
        project = ProjectDir(tmp_path / "project")
        project.keys = keys
        project.write("vboplan.yaml", f"""\
templates: ["templates/*.yaml.j2"]
environments:
  dev:
    server: {gate.url}
    username: admin
    password_env: VBO_TEST_PASSWORD
    var_files: [environments/dev.yaml]
    approvals: {{required: 2, allowed_signers: approvers/dev.allowed_signers}}
""")
        project.write("approvers/dev.allowed_signers",
                      "\n".join(signer_line(keys, name) for name in ("alice", "bob", "ann")) + "\n")
        project.write("templates/audit.yaml.j2", __import__("conftest").AUDIT_TEMPLATE)
        project.write("templates/objects.yaml.j2", SECRET_TEMPLATE)
        project.write("environments/dev.yaml", "domain: dev.contoso.com\nsmtp: {host: smtp.dev.local, port: 587}\n")
        monkeypatch.setenv("VBO_TEST_PASSWORD", PLANTED["API"])
        monkeypatch.setenv("VBOPLAN_USER", "ann")
        monkeypatch.setenv("VBOPLAN_AUTHOR_KEY", str(keys["ann"]))
        for name, value in PLANTED.items():
            monkeypatch.setenv(name, value)

        def run(*args: str, codes: tuple[int, ...] = (0, 2)) -> str:
            result = project.run(*args)
            assert result.exit_code in codes, result.output
            outputs.append(result.output)
            return result.output

        first = project.root / "plans" / "first.json"
        run("-vv", "plan", "--env", "dev", "--out", str(first))
        for form in ("table", "markdown", "json", "html"):
            run("-v", "plan", "--env", "dev", "--format", form)
            run("show", "--requests", "--format", form, str(first))
        run("render", "--env", "dev")
        run("render", "--env", "dev", "--format", "json")
        run("validate", "--env", "dev")
        for person in ("alice", "bob"):
            run("approve", str(first), "--key", str(keys[person]), "--ticket", "CHG-21", "--comment", "ok")
        run("-vv", "apply", str(first))
        run("-vv", "plan", "--env", "dev", "--detailed-exitcode")
        # A rotation, applied in a process SIGKILLed while the server holds its first write.
        for name, value in ROTATED.items():
            monkeypatch.setenv(name, value)
        rotation = project.root / "plans" / "rotation.json"
        run("-v", "plan", "--env", "dev", "--out", str(rotation))
        for person in ("alice", "bob"):
            run("approve", str(rotation), "--key", str(keys[person]))
        gate.hold("rotating", lambda method, path: method in ("PUT", "POST") and "/token" not in path)
        killed = Forked(["-C", str(project.root), "-vv", "apply", str(rotation)], dict(os.environ), tmp_path, "killed")
        assert gate.arrived("rotating")
        _kill(killed)
        assert (project.root / STATE / "dev.journal.json").exists()
        assert (project.root / STATE / "dev.lock.json").exists()
        look()
        run("-vv", "plan", "--env", "dev")
        run("-v", "state", "show", "--env", "dev")
        run("state", "show", "--env", "dev", "--format", "json")
        run("state", "list", "--env", "dev")
        run("-vv", "apply", str(rotation), codes=(0, 1))
        run("-vv", "plan", "--env", "dev", "--detailed-exitcode", codes=(0, 1, 2))
        run("-v", "import", "--env", "dev", "--dry-run", codes=(0, 1, 2))
        monkeypatch.setenv("VBO_TEST_PASSWORD", WRONG_API)
        run("-vv", "plan", "--env", "dev", codes=(1,))
        gate.release_all()
    secrets = [*PLANTED.values(), *ROTATED.values(), WRONG_API]
    found = [f"output {n}: {leak}" for n, text in enumerate(outputs) for leak in _leaks(text, secrets)]
    look()
    found += [f"{name}: {leak}" for name, text in files.items() for leak in _leaks(text, secrets)]
    assert not found, found
    # What was looked at holds what the secrets went through: a journal of the killed apply (with the hash of
    # the rotated password), its lock info, its -vv log, the plan files with their approvals.
    looked = {Path(name.rsplit(" (", 1)[0]).name for name in files}
    assert {"dev.journal.json", "dev.lock.json", "killed.err", "rotation.json", "dev.json", "dev.json.bak"} <= looked



# -- references, prevent_destroy, --target/--exclude (attack 5) -------------------------------------------------------

ORG = "contoso.onmicrosoft.com"
COLLECTION_SEED: dict[str, Any] = {
    **SEED,
    "proxies": [{"hostName": "proxy01.contoso.local", "port": 9193, "description": ""}],
    "cloud_accounts": [{"userName": "akiaexample01", "accountType": "amazonS3Account"}],
}
COLLECTIONS = """\
backup_repositories:
  Repo EU: {proxy: proxy01.contoso.local, path: 'D:\\EU', retentionType: ItemLevel}
  Repo US: {proxy: proxy01.contoso.local, path: 'D:\\US', retentionType: ItemLevel}
EXTRAbackup_jobs:
  Board mail:
    organization: contoso.onmicrosoft.com
    repository: Repo EU
    backupType: SelectedItems
    selectedItems: [{user: ceo@contoso.com, mailbox: true}]
JOBSlifecycle:
  'backup_repositories["Repo EU"]': {prevent_destroy: true}
  'backup_jobs["Board mail"]': {prevent_destroy: true}
RULES"""


class Review:
    """One server (over real HTTP, every write it answers recorded) and a project whose dev environment needs two
    approvals, with a baseline applied: two repositories and a job, the job and one repository protected."""

    def __init__(self, project: ProjectDir, writes: list[tuple[str, str]], http: Any) -> None:
        self.project, self.writes, self.http = project, writes, http

    def templates(self, extra: str = "", jobs: str = "", rules: str = "", text: str | None = None) -> None:
        self.project.write("templates/objects.yaml.j2", text if text is not None else
                           COLLECTIONS.replace("EXTRA", extra).replace("JOBS", jobs).replace("RULES", rules))

    def plan(self, name: str, *args: str, code: tuple[int, ...] = (0,)) -> Path:
        path = self.project.root / "plans" / f"{name}.json"
        path.unlink(missing_ok=True)
        planned = self.project.run("plan", "--env", "dev", "--out", str(path), *args)
        assert planned.exit_code in code, planned.output
        return path

    def plan_refused(self, *args: str, fragments: tuple[str, ...] = ("prevent_destroy",)) -> None:
        """``vboplan plan`` refuses (exit 1, one error naming ``fragments``) and saves no plan file."""
        path = self.project.root / "plans" / "refused.json"
        path.unlink(missing_ok=True)
        planned = self.project.run("plan", "--env", "dev", "--out", str(path), *args)
        errors = [line for line in planned.stderr.splitlines() if line.startswith("Error: ")]
        assert planned.exit_code == 1 and len(errors) == 1, planned.output
        assert all(fragment in errors[0] for fragment in fragments), errors
        assert not path.exists()

    def planned_without_rules(self, name: str, text: str, *args: str) -> Path:
        """A plan made, as its author may, from templates with the lifecycle rules dropped; then the templates as
        they were (with ``text``'s rules), which an apply renders again."""
        self.templates(text=text[:text.index("lifecycle:")])
        try:
            return self.plan(name, *args)
        finally:
            self.templates(text=text)

    def approve(self, path: Path, *who: str) -> None:
        for person in who or ("alice", "bob"):
            approved = self.project.run("approve", str(path), "--key", str(self.project.keys[person]))
            assert approved.exit_code == 0, approved.output

    def refused(self, path: Path, *fragments: str) -> str:
        before = len(self.writes)
        result = self.project.run("apply", str(path))
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
        assert result.exit_code == 1 and len(errors) == 1, result.output
        assert "Traceback" not in result.output
        for fragment in fragments:
            assert fragment in result.stderr, result.stderr
        assert self.writes[before:] == [], f"a refused plan reached the server: {self.writes[before:]}"
        return result.stderr

    def names(self, path: str) -> list[str]:
        return sorted(o.get("name") or o.get("hostName") or o.get("userName") for o in
                      self.http.get(f"/v8/{path}").json()["results"])


@contextmanager
def _serving(folder: Path, keys: dict[str, Path]) -> Iterator[Review]:
    """A fresh server and project (see :class:`Review`), the baseline applied."""
    from conftest import api_client, authored_server, signer_line

    with authored_server(COLLECTION_SEED, keys) as (server, writes, _):
        project = ProjectDir(folder / "project")
        project.keys = keys
        project.write("vboplan.yaml", f"templates: [templates/*.yaml.j2]\nenvironments:\n  dev:\n"
                                      f"    server: {server.url}\n    username: admin\n"
                                      "    password_env: VBO_TEST_PASSWORD\n    var_files: [environments/dev.yaml]\n"
                                      "    approvals: {required: 2, allowed_signers: approvers/dev.allowed_signers}\n")
        project.write("environments/dev.yaml", "{}\n")
        project.write("approvers/dev.allowed_signers",
                      "\n".join(signer_line(keys, name) for name in ("alice", "bob", "carol", "ann")) + "\n")
        state = Review(project, writes, api_client(server.url, "v8"))
        state.templates()
        baseline = state.plan("baseline")
        state.approve(baseline)
        applied = project.run("apply", str(baseline))
        assert applied.exit_code == 0, applied.output
        yield state


@pytest.fixture(scope="module")
def review(tmp_path_factory: pytest.TempPathFactory, keys: dict[str, Path]) -> Iterator[Review]:
    """Shared by the attacks that are refused (the baseline stays as it was)."""
    with _serving(tmp_path_factory.mktemp("review"), keys) as state:
        yield state


@pytest.fixture
def fresh(tmp_path: Path, keys: dict[str, Path]) -> Iterator[Review]:
    """A server of its own, for an attack that may get through."""
    with _serving(tmp_path, keys) as state:
        yield state


def _row(document: dict[str, Any], address: str) -> dict[str, Any]:
    return next(r for r in document["changes"] if r["address"] == address)


def _resealed(review: Review, path: Path, document: dict[str, Any]) -> None:
    from conftest import reseal

    reseal(path, document, review.project.keys["ann"])


def test_a_reference_nothing_holds_is_refused_before_anything_is_sent(review: Review) -> None:
    """Two new repositories; the author points the second's proxy at a host the server does not have (nor the
    plan's recorded live values, nor any create of the plan), then has it approved. Apply refuses it naming the
    change and the reference before sending anything (it used to create the first repository, then fail on the
    second); show --requests refuses it alike. A template naming such a proxy is refused at plan, with its file."""
    review.templates(extra="  Repo A: {proxy: proxy01.contoso.local, path: 'D:\\A', retentionType: ItemLevel}\n"
                           "  Repo N: {proxy: proxy01.contoso.local, path: 'D:\\N', retentionType: ItemLevel}\n")
    try:
        path = review.plan("phantom")
        document = json.loads(path.read_text())
        row = _row(document, 'backup_repositories["Repo N"]')
        row["after"]["proxy"] = 'backup_proxies["proxy02.contoso.local"]'
        _resealed(review, path, document)
        review.approve(path)
        review.refused(path, f"{row['id']} (backup_repositories[\"Repo N\"]) refers to "
                             'backup_proxies["proxy02.contoso.local"], which the server did not hold')
        shown = review.project.run("show", "--requests", str(path))
        assert shown.exit_code == 1 and "proxy02.contoso.local" in shown.stderr, shown.output
        assert review.names("BackupRepositories") == ["Repo EU", "Repo US"]
        review.templates(extra="  Repo N: {proxy: proxy02.contoso.local, path: 'D:\\N', retentionType: ItemLevel}\n")
        planned = review.project.run("plan", "--env", "dev")
        assert planned.exit_code == 1 and "templates/objects.yaml.j2" in planned.stderr, planned.output
        assert "proxy02.contoso.local" in planned.stderr and "Traceback" not in planned.output, planned.output
    finally:
        review.templates()


def test_a_create_that_needs_an_unapproved_create_is_refused_before_anything_is_sent(review: Review) -> None:
    """A new repository and a new job on it; the approvers approve only the job's rows (and a change elsewhere).
    The job cannot be created without the repository: refused before anything is sent, naming the job's change."""
    job = ("  New mail:\n    organization: contoso.onmicrosoft.com\n    repository: Repo C\n"
           "    backupType: EntireOrganization\n")
    review.templates(extra="  Repo C: {proxy: proxy01.contoso.local, path: 'D:\\C', retentionType: ItemLevel}\n",
                     jobs=job)
    try:
        path = review.plan("unapproved")
        document = json.loads(path.read_text())
        ids = [r["id"] for r in document["changes"] if r["address"].startswith('backup_jobs["New mail"]')]
        assert ids and len(ids) < len(document["changes"]), document["changes"]
        for person in ("alice", "bob"):
            approved = review.project.run("approve", str(path), "--key", str(review.project.keys[person]),
                                          *[a for i in ids for a in ("--change", i)])
            assert approved.exit_code == 0, approved.output
        review.refused(path, ids[0], 'backup_repositories["Repo C"]', "which this apply does not create")
        assert "New mail" not in [j["name"] for j in review.http.get("/v8/Jobs").json()["results"]]
    finally:
        review.templates()


def _without_repo_eu(rule: str = 'backup_repositories["Repo EU"]', job_rule: str = 'backup_jobs["Board mail"]') -> str:
    """The templates with Repo EU dropped (the job moved to Repo US), its prevent_destroy rule kept as ``rule``."""
    text = COLLECTIONS.replace("EXTRA", "").replace("JOBS", "").replace("RULES", "")
    text = "".join(line for line in text.splitlines(True) if not line.startswith("  Repo EU:"))
    return text.replace("repository: Repo EU", "repository: Repo US").replace(
        "'backup_repositories[\"Repo EU\"]'", f"'{rule}'").replace("'backup_jobs[\"Board mail\"]'", f"'{job_rule}'")


def test_prevent_destroy_holds_whatever_case_its_rule_is_written_in(fresh: Review) -> None:
    """The unlucky operator: the rule names 'repo eu' (the server compares names case-insensitively, and so does
    every other lifecycle lookup); the templates drop Repo EU. The plan is refused, and so is an approved one made
    from the templates without the rule."""
    text = _without_repo_eu('backup_repositories["repo eu"]')
    fresh.templates(text=text)
    fresh.plan_refused(fragments=('backup_repositories["Repo EU"]', "prevent_destroy"))
    path = fresh.planned_without_rules("case", text)
    fresh.approve(path)
    fresh.refused(path, "prevent_destroy")
    assert "Repo EU" in fresh.names("BackupRepositories")


def test_a_delete_row_readdressed_in_another_case_cannot_pass_prevent_destroy(fresh: Review) -> None:
    """The hostile author: a plan of a job edit, with a delete row of the protected repository added under
    'REPO EU' (which the derivation takes for Repo EU, as the server would), resealed and approved."""
    from vboplan.planning.plan import change_id

    text = COLLECTIONS.replace("EXTRA", "").replace("JOBS", "").replace("RULES", "")
    fresh.templates(text=text.replace("repository: Repo EU", "repository: Repo US"))
    path = fresh.plan("readdressed")
    document = json.loads(path.read_text())
    live = document["live"]["backup_repositories"]["objects"]["Repo EU"]
    address = 'backup_repositories["REPO EU"]'
    document["changes"].append({
        "id": change_id(address), "address": address, "action": "delete", "kind": "backup_repositories",
        "before": {"path": "D:\\EU", "proxy": 'backup_proxies["proxy01.contoso.local"]', "retentionType": "ItemLevel"},
        "after": None, "sensitive": False, "detail": {"key": "REPO EU", "id": live["id"]}})
    _resealed(fresh, path, document)
    fresh.approve(path)
    fresh.refused(path, change_id(address), "prevent_destroy")
    assert "Repo EU" in fresh.names("BackupRepositories")


def test_prevent_destroy_of_a_job_keyed_by_organization_and_name_holds(fresh: Review) -> None:
    """The rule keys the job as templates may ('contoso.onmicrosoft.com/Board mail'); the job is dropped from the
    templates, so the plan deletes it by its bare name. The plan is refused, and so is an approved one made from
    the templates without the rule."""
    text = COLLECTIONS.replace("EXTRA", "").replace("JOBS", "").replace("RULES", "")
    text = text[:text.index("backup_jobs:")] + "backup_jobs: {}\n" + text[text.index("lifecycle:"):]
    text = text.replace("'backup_jobs[\"Board mail\"]'", "'backup_jobs[\"contoso.onmicrosoft.com/Board mail\"]'")
    fresh.templates(text=text)
    fresh.plan_refused(fragments=('backup_jobs["Board mail"]', "prevent_destroy"))
    path = fresh.planned_without_rules("job", text)
    fresh.approve(path)
    fresh.refused(path, "prevent_destroy")
    assert [j["name"] for j in fresh.http.get("/v8/Jobs").json()["results"]] == ["Board mail"]


def test_prevent_destroy_holds_through_target_exclude_rename_and_an_added_row(review: Review) -> None:
    """Regression: the protected repository's delete reached by --target, by --exclude of what else changes, by a
    rename in the templates, and by a delete row the author adds to an innocent plan: each plan refused, and each
    approved one made from the templates without the rule (or with the row added) refused at apply naming the
    change and prevent_destroy; nothing sent."""
    from vboplan.planning.plan import change_id

    try:
        review.templates(text=_without_repo_eu())
        for name, args in (("target", ("--target", 'backup_repositories["Repo EU"]')),
                           ("exclude", ("--exclude", "backup_jobs"))):
            review.plan_refused(*args)
            path = review.planned_without_rules(name, _without_repo_eu(), *args)
            delete = _row(json.loads(path.read_text()), 'backup_repositories["Repo EU"]')
            assert delete["action"] == "delete", delete
            review.approve(path)
            review.refused(path, delete["id"], "prevent_destroy")
        text = COLLECTIONS.replace("EXTRA", "").replace("JOBS", "").replace("RULES", "")
        renamed = text.replace("  Repo EU:", "  Repo Europe:").replace("repository: Repo EU", "repository: Repo Europe")
        review.templates(text=renamed)
        review.plan_refused()
        path = review.planned_without_rules("rename", renamed)
        assert 'backup_repositories["Repo Europe"]' in [r["address"] for r in json.loads(path.read_text())["changes"]]
        review.approve(path)
        review.refused(path, change_id('backup_repositories["Repo EU"]'), "prevent_destroy")
        review.templates(text=text.replace("repository: Repo EU", "repository: Repo US"))
        path = review.plan("added")
        document = json.loads(path.read_text())
        live = document["live"]["backup_repositories"]["objects"]["Repo EU"]
        address = 'backup_repositories["Repo EU"]'
        document["changes"].append({
            "id": change_id(address), "address": address, "action": "delete", "kind": "backup_repositories",
            "before": {"path": "D:\\EU", "proxy": 'backup_proxies["proxy01.contoso.local"]',
                       "retentionType": "ItemLevel"},
            "after": None, "sensitive": False, "detail": {"key": "Repo EU", "id": live["id"]}})
        _resealed(review, path, document)
        review.approve(path)
        review.refused(path, change_id(address), "prevent_destroy")
        assert review.names("BackupRepositories") == ["Repo EU", "Repo US"]
    finally:
        review.templates()


# -- rows edited, or the plan re-signed, after approval (attack 1) ---------------------------------------------------

def test_a_plan_edited_or_re_signed_after_it_was_approved_is_refused(review: Review) -> None:
    """An approved plan of a new repository, then changed by its author: a row's value edited, the file edited
    without resealing, re-signed as its author later (same rows), or re-signed by another listed key.
    Each apply is refused naming the approvals or the signature; nothing is sent."""
    import copy
    from datetime import datetime, timedelta, timezone

    review.templates(extra="  Repo P: {proxy: proxy01.contoso.local, path: 'D:\\\\P', retentionType: ItemLevel}\n")
    try:
        path = review.plan("approved")
        review.approve(path)
        approved = json.loads(path.read_text())
        row = _row(approved, 'backup_repositories["Repo P"]')
        hostile = path.with_name("hostile.json")

        def attempt(edit: Any, *fragments: str, reseal: bool = True, key: str = "ann") -> None:
            from conftest import reseal as seal

            document = copy.deepcopy(approved)
            edit(document)
            if reseal:
                seal(hostile, document, review.project.keys[key])
            else:
                hostile.write_text(json.dumps(document, indent=2))
            review.refused(hostile, *fragments)

        attempt(lambda d: _row(d, row["address"])["after"].update(path="D:\\Elsewhere"),
                "approval 1 by alice", "approval 2 by bob", "edited after it was approved")
        attempt(lambda d: _row(d, row["address"])["after"].update(path="D:\\Elsewhere"),
                "altered after planning", reseal=False)
        later = (datetime.now(timezone.utc) + timedelta(seconds=20)).strftime("%Y-%m-%dT%H:%M:%SZ")
        attempt(lambda d: d["author_signature"]["statement"].update(at=later), "before the author signed the plan")
        attempt(lambda d: None, "approval 1 by alice", key="carol")
        assert review.names("BackupRepositories") == ["Repo EU", "Repo US"]
    finally:
        review.templates()


def test_an_approved_plan_with_its_rows_dropped_is_refused(review: Review) -> None:
    """The author drops the only row of an approved plan and reseals it: no approval verifies any more. Apply must
    refuse it (an approval fails verification: the plan was edited) and leave the snapshot as it was, rather than
    record an unapproved plan as the last apply (which makes every approved plan made before it stale)."""
    import copy

    from conftest import reseal

    review.templates(extra="  Repo P: {proxy: proxy01.contoso.local, path: 'D:\\\\P', retentionType: ItemLevel}\n")
    try:
        path = review.plan("emptied")
        review.approve(path)
        document = copy.deepcopy(json.loads(path.read_text()))
        document["changes"] = []
        hostile = path.with_name("emptied-hostile.json")
        reseal(hostile, document, review.project.keys["ann"])
        state = review.project.root / STATE / "dev.json"
        before = state.read_text()
        result = review.project.run("apply", str(hostile))
        assert state.read_text() == before, "the edited, unapproved plan was recorded as an apply"
        assert result.exit_code == 1 and "approval 1 by alice" in result.stderr, result.output
        assert "it has no change left and none of its approvals verifies" in result.stderr, result.output
        assert "Traceback" not in result.output
    finally:
        review.templates()
