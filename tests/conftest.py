"""Shared fixtures: a throw-away vboplan project, run through the real CLI against the embedded emulator."""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

# The object stores start once per test process, whichever modules use them: a fixture imported into each test
# module would be a fixture of that module, started again for every one.
from state_servers import SharedServers, azurite_server, s3_server  # noqa: F401 (session fixtures)

from vboplan import sensitive
from vboplan.cli.commands import main

# Secrets are stored as PBKDF2 hashes of 200,000 iterations (0.08 s of CPU each): the suite's processes made some
# thousand of them, most of its CPU in the settings and secrets tests. Here they make 1,000-iteration hashes; each
# digest names its own count, so checking one (the same code) is unchanged, and test_secrets checks the shipped count
# in a fresh process. Commands run as their own processes (`python -m vboplan`, spawned workers) still use 200,000.
SHIPPED_ITERATIONS = sensitive._ITERATIONS
sensitive._ITERATIONS = 1_000

# Bytecode is cached (in the checkout's ignored __pycache__ folders) even where PYTHONDONTWRITEBYTECODE is set, as
# on some build machines: without it each of the suite's processes (the test workers, every `python -m vboplan`
# a test starts) compiled vboplan again, and each worker rewrote and compiled every test module (collection 9.6 s
# of CPU per worker against 3.0 s). Set here, in the first process, before it starts the workers.
if os.environ.pop("PYTHONDONTWRITEBYTECODE", None) is not None:
    sys.dont_write_bytecode = False

SMTP_SECRET = "Sm7p-s3cret-Value!"
API_SECRET = "api-pa55-w0rd-xyz"

CONFIG = """\
templates: ["templates/*.yaml.j2"]
environments:
  dev:
    server: emulator:dev
    api_version: v8
    username: admin
    password_env: VBO_TEST_PASSWORD
    var_files: [environments/common.yaml, environments/dev.yaml]
  prod:
    server: emulator:prod
    api_version: v7
    username: admin
    password_env: VBO_TEST_PASSWORD
    var_files: [environments/common.yaml, environments/prod.yaml]
    approvals: {required: 2, allowed_signers: approvers/prod.allowed_signers, max_age: 72h}
"""

# Who may approve prod: one line per key, as git's gpg.ssh.allowedSignersFile. ann (who plans in these tests) is
# listed too, so that her own signature is a real, trusted one that must still not count for her plans.
TRUSTED = ("alice", "bob", "carol", "ann")

AUDIT_TEMPLATE = """\
audit_email_settings:
  enableNotification: "true"
  smtpServer: {{ smtp.host }}
  port: "{{ smtp.port }}"
  useAuthentication: true
  username: svc-mail
  userPassword: {{ secret("SMTP_PASSWORD") }}
  useSSL: true
  from: vbo.audit@{{ domain }}
  to: security@{{ domain }}
"""

JOB_TEMPLATE = """\
job_email_settings:
  enableNotification: true
  notifyOnFailure: true
  notifyOnSuccess: {{ notify_success }}
"""

SEED = {
    "credentials": [{"username": "admin", "password": API_SECRET}],
    "organizations": [{
        "name": "contoso.onmicrosoft.com",
        "users": [{"displayName": "Jane Doe", "name": "jane@contoso.com"},
                  {"displayName": "Chief Executive", "name": "ceo@contoso.com"},
                  {"displayName": "Chief Financial Officer", "name": "cfo@contoso.com"},
                  {"displayName": "Alex Twin", "name": "alex1@contoso.com"},
                  {"displayName": "Alex Twin", "name": "alex2@contoso.com"}],
        "groups": [{"displayName": "HR Department", "name": "hr@contoso.com"},
                   {"displayName": "Finance", "name": "finance@contoso.com"}],
    }, {
        "name": "fabrikam.onmicrosoft.com",
        "users": [{"displayName": "Bob Boss", "name": "bob@fabrikam.com"}],
        "groups": [],
    }],
    "audit_email_settings": {"enableNotification": False, "smtpServer": "old.smtp.local", "port": 25},
    "job_email_settings": {"enableNotification": True, "notifyOnFailure": True, "notifyOnSuccess": False},
}

# What ProjectDir.seed writes for SEED, dumped once (pure-Python YAML, 2 ms a dump, twice for each project).
SEED_YAML = yaml.safe_dump(SEED, sort_keys=False)


# Key types exercised: Ed25519 and RSA verify in-process (sshsig), ECDSA through ssh-keygen.
KEY_TYPES = {"alice": "ed25519", "bob": "rsa", "carol": "ecdsa", "ann": "ed25519", "mallory": "ed25519",
             "alice2": "ecdsa", "dave": "ed25519"}


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real SSH key pairs made by ssh-keygen, by person: name -> private key file (public half beside it)."""
    import subprocess

    folder = tmp_path_factory.mktemp("keys")
    made = {}
    for name, kind in KEY_TYPES.items():
        path = folder / f"id_{name}"
        extra = ["-b", "2048"] if kind == "rsa" else []
        subprocess.run(["ssh-keygen", "-q", "-t", kind, *extra, "-N", "", "-C", f"{name}@corp", "-f", str(path)],
                       check=True, capture_output=True)
        made[name] = path
    return made


def signer_line(keys: dict[str, Path], key: str, principal: str | None = None, options: str = "") -> str:
    """One allowed_signers line for ``key`` (public half), naming ``principal`` (default: the key's owner)."""
    public = Path(f"{keys[key]}.pub").read_text().split()
    return " ".join(x for x in (principal or key, options, public[0], public[1]) if x)


def reseal(path: Path, document: dict[str, Any], key: Path) -> None:
    """Write an edited plan document back as a hostile author would: its checksum recomputed and its author
    statement signed again, with plain ``ssh-keygen``, by ``key`` (whose public half becomes the author key)."""
    import json
    import subprocess

    from vboplan.planning.plan import plan_digest
    from vboplan.trust.signing import canonical

    document["author_key"] = " ".join(Path(f"{key}.pub").read_text().split()[:2])
    document["checksum"] = plan_digest(document)
    statement = {"type": "vboplan-plan", "version": 1, "plan": document["checksum"],
                 "environment": document["environment"], "server": document["server"],
                 "at": (document.get("author_signature") or {}).get("statement", {}).get("at")
                 or document["created_at"]}
    message = path.with_name(path.name + ".author-statement")
    message.write_bytes(canonical(statement))
    Path(f"{message}.sig").unlink(missing_ok=True)
    subprocess.run(["ssh-keygen", "-Y", "sign", "-n", "vboplan-plan", "-f", str(key), str(message)], check=True,
                   capture_output=True)
    document["author_signature"] = {"statement": statement, "signature": Path(f"{message}.sig").read_text()}
    message.unlink()
    Path(f"{message}.sig").unlink()
    path.write_text(json.dumps(document, indent=2))


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class ProjectDir:
    """A vboplan project in a temp dir, with helpers to run the CLI and peek at the emulated servers."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.keys: dict[str, Path] = {}

    def write(self, relative: str, text: str) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    def seed(self, name: str, data: dict[str, Any]) -> None:
        self.write(f"emulator/{name}.yaml", yaml.safe_dump(data, sort_keys=False))

    def run(self, *args: str, input: str | None = None) -> Result:
        result = CliRunner().invoke(main, ["-C", str(self.root), "--no-color", *args], input=input,
                                    catch_exceptions=True)
        if result.exception and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"vboplan raised instead of reporting: {result.exception!r}\n{result.output}") \
                from result.exception
        assert_no_secret(result.stdout + result.stderr)
        return Result(result.exit_code, result.stdout, result.stderr)

    def server(self, name: str) -> dict[str, Any]:
        """What the emulated server now holds, read through its API: the two settings singletons."""
        http = self.api(name)
        return {"audit_email_settings": http.get("/v8/AuditEmailSettings").json(),
                "job_email_settings": http.get("/v8/VboEmailSettings").json()}

    def api(self, name: str) -> Any:
        """An httpx client logged in to the embedded emulator ``name`` (v8 token)."""
        import httpx

        http = httpx.Client(transport=httpx.WSGITransport(app=self.emulator(name)), base_url="http://vbo")
        token = http.post("/v8/token", data={"grant_type": "password", "username": "admin",
                                               "password": API_SECRET}).json()["access_token"]
        http.headers["Authorization"] = f"Bearer {token}"
        return http

    def emulator(self, name: str) -> Any:
        from vboplan.connection import embedded_emulator
        from vboplan.project.config import load_project

        return embedded_emulator(load_project(self.root), name)


def api_client(url: str, version: str) -> Any:
    """An httpx client of the emulator's API at ``url``, logged in as admin (what a test checks the server with)."""
    import httpx

    http = httpx.Client(base_url=url)
    token = http.post(f"/{version}/token", data={"grant_type": "password", "username": "admin",
                                                 "password": API_SECRET}).json()["access_token"]
    http.headers["Authorization"] = f"Bearer {token}"
    return http


def listed(http: Any, version: str, path: str) -> list[dict[str, Any]]:
    """The objects ``GET /VERSION/PATH`` answers, a page's ``results`` or a plain array."""
    body = http.get(f"/{version}/{path}").json()
    return list(body["results"] if isinstance(body, dict) else body)


@contextmanager
def authored_server(seed: dict[str, Any],
                    keys: dict[str, Path]) -> Iterator[tuple[Any, list[tuple[str, str]], pytest.MonkeyPatch]]:
    """An emulator over real HTTP serving ``seed``; the writes it answers, as (method, path), reads and token
    requests left out; and the environment of a project whose API password is API_SECRET and whose author is ann
    (signing with her key), patched until the block ends, when the server stops too."""
    from vboplan.emulator import Emulator, Store, start

    writes: list[tuple[str, str]] = []
    app = Emulator(Store.from_data(seed))
    app.answered = lambda method, path, status, started, finished: writes.append((method, path)) \
        if method not in ("GET", "HEAD") and "/token" not in path else None
    server = start(app)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("VBO_TEST_PASSWORD", API_SECRET)
            patch.setenv("VBOPLAN_USER", "ann")
            patch.setenv("VBOPLAN_AUTHOR_KEY", str(keys["ann"]))
            yield server, writes, patch
    finally:
        server.stop()


def one_server_project(root: Path, url: str, version: str, env: str = "e") -> ProjectDir:
    """A project of one environment ``env`` against the server at ``url`` (API ``version``, the password from
    VBO_TEST_PASSWORD), with an empty variable file of its own."""
    project = ProjectDir(root)
    project.write("vboplan.yaml", f"templates: [templates/*.yaml.j2]\nenvironments:\n  {env}:\n    server: {url}\n"
                                  f"    api_version: {version}\n    username: admin\n"
                                  f"    password_env: VBO_TEST_PASSWORD\n    var_files: [environments/{env}.yaml]\n")
    project.write(f"environments/{env}.yaml", "{}\n")
    return project


def plan_rows(result: Result) -> dict[str, dict[str, Any]]:
    """The rows of ``plan --format json`` (one environment) by address."""
    import json

    assert result.exit_code in (0, 2), result.output
    return {c["address"]: c for c in json.loads(result.stdout)["plans"][0]["changes"]}


def pytest_configure(config: pytest.Config) -> None:
    """In the process that runs xdist's workers: moto's S3 server and Azurite start there, once for the run, when a
    worker first asks (state_servers.py), instead of in every worker."""
    if not hasattr(config, "workerinput") and config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(SharedServers(), "vboplan-state-servers")


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` (pyproject.toml): one process more than cores, at most four. Much of the suite waits on
    subprocesses, servers and latency; on an idle 2-core machine three processes ran the suite in 235 s, two in 271 s."""

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(cores + 1, 4)


# The suite's longest tests, longest first (--durations, 2 cores): they start first, each worker taking the next test
# as it finishes one (--maxschedchunk=1 in pyproject.toml), so the run does not end waiting on a long test that
# started late. A test missing here (renamed, new) only runs in its usual place.
LONGEST_FIRST = (
    "tests/test_kill.py::",
    "tests/test_repositories_kill.py::",
    "tests/test_fuzz.py::test_malformed_inputs_each_end_with_one_error",
    "tests/test_ci_example.py::",
    "tests/test_fleet.py::test_forked_and_spawned_workers_plan_alike",
    "tests/test_habits.py::test_var_exclude_and_refresh_only_reach_worker_processes",
    "tests/test_state_backends.py::test_one_apply_at_a_time_across_machines",
    "tests/test_create_before_destroy.py::test_an_apply_killed_after_the_new_key_leaves_a_clear_way_back",
    "tests/test_plan.py::test_colour_on_a_terminal_and_never_with_no_color",
    "tests/test_markdown.py::test_a_2000_change_plan_fits_a_github_comment",
    "tests/emulator/test_directory.py::test_large_tenant_lookups",
    "tests/test_approvals.py::test_concurrent_approvals_are_all_kept",
    "tests/test_fuzz.py::test_a_dripping_server_cannot_hold_a_plan",
    "tests/emulator/test_bad_requests.py::test_malformed_requests_never_500",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Moves LONGEST_FIRST's tests to the front, in that order (the same order in every worker, as xdist needs)."""

    def rank(item: pytest.Item) -> int:
        return next((n for n, prefix in enumerate(LONGEST_FIRST) if item.nodeid.startswith(prefix)), len(LONGEST_FIRST))

    items.sort(key=rank)  # stable: the rest keep pytest's order


@pytest.fixture(autouse=True)
def no_inherited_width(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables fit COLUMNS when it is set; test runners set it (pytest-xdist's workers to 80), so every test starts
    without it and sets a width itself where the width is what it tests."""
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("LINES", raising=False)


@pytest.fixture
def secrets_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VBO_TEST_PASSWORD", API_SECRET)
    monkeypatch.setenv("SMTP_PASSWORD", SMTP_SECRET)
    monkeypatch.setenv("VBOPLAN_USER", "ann")
    monkeypatch.delenv("NO_COLOR", raising=False)


@pytest.fixture
def project(tmp_path: Path, secrets_env: None, keys: dict[str, Path],
            monkeypatch: pytest.MonkeyPatch) -> ProjectDir:
    proj = ProjectDir(tmp_path / "project")
    proj.keys = keys
    # ann plans, and signs each saved plan as its author (plan --sign-key), as prod's approvals require.
    monkeypatch.setenv("VBOPLAN_AUTHOR_KEY", str(keys["ann"]))
    proj.write("vboplan.yaml", CONFIG)
    proj.write("approvers/prod.allowed_signers", "\n".join(signer_line(keys, name) for name in TRUSTED) + "\n")
    proj.write("templates/audit.yaml.j2", AUDIT_TEMPLATE)
    proj.write("templates/jobs.yaml.j2", JOB_TEMPLATE)
    proj.write("environments/common.yaml", "smtp:\n  port: 587\nnotify_success: false\n")
    proj.write("environments/dev.yaml", "domain: dev.contoso.com\nsmtp:\n  host: smtp.dev.local\n")
    proj.write("environments/prod.yaml", "domain: contoso.com\nsmtp:\n  host: smtp.office365.com\n"
                                         "notify_success: true\n")
    proj.write("emulator/dev.yaml", SEED_YAML)
    proj.write("emulator/prod.yaml", SEED_YAML)
    return proj


def assert_one_clean_error(result: Result, *fragments: str) -> None:
    """Exit 1, one line on stderr naming what is wrong, no traceback, no secret."""
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: "), lines
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert_no_secret(result.output)


def assert_no_secret(text: str) -> None:
    assert SMTP_SECRET not in text
    assert API_SECRET not in text


@pytest.fixture(scope="session")
def tls_server():  # type: ignore[no-untyped-def]
    """The emulator over a real TLS socket with a fresh self-signed certificate, seeded like the projects."""
    from vboplan.emulator import start

    with start(SEED, tls=True) as running:
        yield running


@pytest.fixture(scope="session", autouse=True)
def no_secret_left_behind(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """After the whole suite: no plan file, snapshot, lock or other file vboplan wrote holds a secret. The emulated
    servers' own data (``emulator/`` folders) holds the API login it checks, but never the SMTP password."""
    yield
    offenders = []
    for path in tmp_path_factory.getbasetemp().rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        server_side = "emulator" in path.parts
        if SMTP_SECRET.encode() in data or (not server_side and API_SECRET.encode() in data):
            offenders.append(str(path))
    assert not offenders, f"secret found in {offenders}"


@pytest.fixture(scope="session", autouse=True)
def tree_left_clean():  # type: ignore[no-untyped-def]
    """After the suite: the checkout holds no file the suite made or changed (``git status`` lists nothing new), so
    a fresh clone stays clean. Outside a git checkout (an unpacked sdist) there is nothing to compare."""
    import shutil
    import subprocess

    root = Path(__file__).resolve().parents[1]

    def status() -> set[str] | None:
        if shutil.which("git") is None or not (root / ".git").exists():
            return None
        done = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=all"],
                              capture_output=True, text=True, check=False)
        return set(done.stdout.splitlines()) if done.returncode == 0 else None

    before = status()
    yield
    after = status()
    if before is not None and after is not None:
        assert not after - before, f"the suite left files in the checkout: {sorted(after - before)}"
