"""Secrets stay secret: planted in readable fields, pushed through every Jinja filter and test, and echoed back by a
server, they never reach any output or any file vboplan writes."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
from conftest import API_SECRET, SEED, SMTP_SECRET, ProjectDir, Result
from jinja2.defaults import DEFAULT_FILTERS, DEFAULT_TESTS

HOST_SECRET = "smtp-h0st-s3cret.example"
USER_SECRET = "m4il-user-s3cret"
SUBJECT_SECRET = "subj3ct-s3cret-w0rd"
PLANTED = (SMTP_SECRET, API_SECRET, HOST_SECRET, USER_SECRET, SUBJECT_SECRET)

READABLE = """\
audit_email_settings:
  enableNotification: true
  smtpServer: {{ secret("HOST_SECRET") }}
  port: 587
  useAuthentication: true
  username: svc-{{ secret("USER_SECRET") }}
  userPassword: {{ secret("SMTP_PASSWORD") }}
  subject: "{{ '[Audit] ' ~ secret('SUBJECT_SECRET') ~ ' %Action%' }}"
"""


def _clean(*results: Result) -> None:
    for result in results:
        for secret in PLANTED:
            assert secret not in result.output, (secret, result.output)
            # A message shortened after redaction could leave a prefix of a secret: none may show.
            assert secret[:8] not in result.output, (secret[:8], result.output)


def _files_clean(root: Path) -> None:
    """No file vboplan wrote holds a planted secret (the emulated servers' own data is theirs to hold)."""
    for path in root.rglob("*"):
        if path.is_file() and "emulator" not in path.parts:
            data = path.read_bytes()
            for secret in PLANTED:
                assert secret.encode() not in data, (secret, path)


@pytest.fixture
def planted(project: ProjectDir, monkeypatch: pytest.MonkeyPatch) -> ProjectDir:
    monkeypatch.setenv("HOST_SECRET", HOST_SECRET)
    monkeypatch.setenv("USER_SECRET", USER_SECRET)
    monkeypatch.setenv("SUBJECT_SECRET", SUBJECT_SECRET)
    project.write("templates/audit.yaml.j2", READABLE)
    return project


def test_secrets_in_readable_fields_are_masked_everywhere(planted: ProjectDir, tmp_path: Path) -> None:
    project = planted
    plans = project.root / "plans"
    outputs = [project.run("validate", "--all"),
               project.run("plan", "--env", "dev", "--out", str(plans / "dev.json"))]
    for fmt in ("table", "json", "markdown", "html"):
        outputs.append(project.run("plan", "--env", "dev", "--format", fmt))
        outputs.append(project.run("show", str(plans / "dev.json"), "--format", fmt))
    assert all(r.exit_code == 0 for r in outputs), [r.output for r in outputs if r.exit_code]
    table = outputs[2].stdout
    assert "audit_email_settings.smtpServer" in table and "audit_email_settings.subject" in table
    assert table.count("(sensitive)") >= 4
    applied = project.run("apply", str(plans / "dev.json"))
    assert applied.exit_code == 0, applied.output
    server = project.server("dev")["audit_email_settings"]
    assert server["smtpServer"] == HOST_SECRET and server["username"] == f"svc-{USER_SECRET}"
    # Now the live values are the secrets themselves: every later output must still mask them.
    later = [project.run("plan", "--env", "dev", "--detailed-exitcode"),
             project.run("state", "show", "--env", "dev"),
             project.run("state", "show", "--env", "dev", "--format", "json")]
    assert later[0].exit_code == 0, later[0].output  # converged, compared through the hashes
    assert "audit_email_settings.smtpServer" in later[1].stdout
    # Someone changes a secret-filled field on the server: reported as changed, values masked.
    project.api("dev").put("/v8/AuditEmailSettings", json={"smtpServer": "changed-" + HOST_SECRET})
    moved = project.run("plan", "--env", "dev", "--format", "json")
    document = json.loads(moved.stdout)
    change = next(c for c in document["plans"][0]["changes"] if c["address"] == "audit_email_settings.smtpServer")
    assert change["sensitive"] is True and change["before"] is None and change["after"] is None
    assert [d["address"] for d in document["plans"][0]["changed_outside"]] == ["audit_email_settings.smtpServer"]
    markdown = project.run("plan", "--env", "dev", "--format", "markdown")
    _clean(*outputs, applied, *later, moved, markdown)
    _files_clean(project.root)


def _template_line(project: ProjectDir, expression: str) -> Result:
    (project.root / "templates/jobs.yaml.j2").unlink(missing_ok=True)  # the probe takes its place
    project.write("templates/probe.yaml.j2", "job_email_settings:\n  enableNotification: true\n"
                                             f"  notifyOnSuccess: {expression}\n")
    return project.run("validate", "--env", "dev")


def _refused_at_line_3(result: Result) -> None:
    assert result.exit_code == 1, result.output
    assert "templates/probe.yaml.j2:3: a secret() value may only be written out as it is" in result.stderr, \
        result.stderr
    assert "Traceback" not in result.output
    _clean(result)


@pytest.mark.parametrize("name", sorted(DEFAULT_FILTERS))
def test_every_builtin_filter_on_a_secret_is_refused(project: ProjectDir, name: str) -> None:
    _refused_at_line_3(_template_line(project, f'{{{{ secret("SMTP_PASSWORD") | {name} }}}}'))
    _refused_at_line_3(_template_line(project, f'{{{{ ("x" ~ secret("SMTP_PASSWORD")) | {name} }}}}'))


@pytest.mark.parametrize("name", sorted(n for n in DEFAULT_TESTS if n.isidentifier()))  # "==" etc. are aliases
def test_every_builtin_test_on_a_secret_is_refused(project: ProjectDir, name: str) -> None:
    _refused_at_line_3(_template_line(project, f'{{{{ secret("SMTP_PASSWORD") is {name} }}}}'))


@pytest.mark.parametrize("expression", [
    '{{ secret("SMTP_PASSWORD").upper() }}', '{{ secret("SMTP_PASSWORD")[0] }}', '{{ secret("SMTP_PASSWORD")[1:] }}',
    '{{ ("x" ~ secret("SMTP_PASSWORD")).lower() }}', '{{ ("x" ~ secret("SMTP_PASSWORD"))[2:] }}',
    '{{ secret("SMTP_PASSWORD") == "x" }}', '{{ "x" == secret("SMTP_PASSWORD") }}', '{{ secret("SMTP_PASSWORD") < "m" }}',
    '{{ "a" in secret("SMTP_PASSWORD") }}', '{{ secret("SMTP_PASSWORD") in ["a"] }}',
    '{{ "yes" if secret("SMTP_PASSWORD") else "no" }}', '{{ not secret("SMTP_PASSWORD") }}',
    '{% for c in secret("SMTP_PASSWORD") %}{{ c }}{% endfor %}', '{{ {secret("SMTP_PASSWORD"): 1} }}',
    '{{ {"a": 1}[secret("SMTP_PASSWORD")] }}', '{{ secret("SMTP_PASSWORD") + "x" }}', '{{ secret("SMTP_PASSWORD") * 2 }}',
    '{{ "%s" % secret("SMTP_PASSWORD") }}', '{{ "{}".format(secret("SMTP_PASSWORD")) }}',
    '{{ [secret("SMTP_PASSWORD")] }}', '{{ dict(a=secret("SMTP_PASSWORD")) }}', '{{ -secret("SMTP_PASSWORD") }}',
    '{{ range(secret("SMTP_PASSWORD")) }}', '{{ secret(secret("SMTP_PASSWORD")) }}',
    '{{ "x"|replace("x", secret("SMTP_PASSWORD")) }}', '{{ undefined_name|default(secret("SMTP_PASSWORD")) }}',
])
def test_other_uses_of_a_secret_are_refused(project: ProjectDir, expression: str) -> None:
    _refused_at_line_3(_template_line(project, expression))


def test_plain_and_joined_secrets_are_allowed(project: ProjectDir) -> None:
    project.write("templates/audit.yaml.j2", """\
{% set password = secret("SMTP_PASSWORD") %}
audit_email_settings:
  userPassword: {{ password }}
  username: {{ "svc-" ~ secret("SMTP_PASSWORD") }}
  subject: pre-{{ secret("SMTP_PASSWORD") }}-post
""")
    result = project.run("validate", "--env", "dev")
    assert result.exit_code == 0, result.output
    _clean(result)


@pytest.mark.parametrize("template, fragment", [
    ('audit_items:\n  contoso.onmicrosoft.com:\n    users: [{{ secret("SMTP_PASSWORD") }}]\n',
     "templates/probe.yaml.j2:3: a secret() value cannot be an item of a list"),
    ('job_email_settings:\n  {{ secret("SMTP_PASSWORD") }}: true\n',
     "templates/probe.yaml.j2:2: a secret() value cannot be a key"),
])
def test_secrets_as_names_or_keys_are_refused(project: ProjectDir, template: str, fragment: str) -> None:
    (project.root / "templates/jobs.yaml.j2").unlink(missing_ok=True)
    project.write("templates/probe.yaml.j2", template)
    result = project.run("validate", "--env", "dev")
    assert result.exit_code == 1 and fragment in result.stderr, result.output
    _clean(result)


# -- a server that echoes what it was sent --------------------------------------------------------------------


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def echoing_server() -> Iterator[dict[str, Any]]:
    """The emulator behind a front that, when asked, answers a request with an error quoting the request's body
    (as some servers and proxies do), over real HTTP on a free port."""
    from vboplan.emulator import Emulator, Store

    emulator = Emulator(Store.from_data(SEED))
    echo: dict[str, Any] = {"token": False, "put": False}

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        wants = (echo["token"] and method == "POST" and path.endswith("/token")) or \
                (echo["put"] and method == "PUT")
        if wants:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length).decode()
            status = "500 Internal Server Error" if path.endswith("/token") else "400 Bad Request"
            payload = json.dumps({"message": f"cannot process request {body}"}).encode()
            start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
            return [payload]
        return emulator(environ, start_response)

    server = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    echo["url"] = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield echo
    finally:
        server.shutdown()
        server.server_close()


def test_a_server_echoing_secrets_in_errors_is_redacted(project: ProjectDir, echoing_server: dict[str, Any]) -> None:
    config = (project.root / "vboplan.yaml").read_text().replace("server: emulator:dev",
                                                                   f"server: {echoing_server['url']}")
    project.write("vboplan.yaml", config)
    echoing_server["token"] = True
    login = project.run("plan", "--env", "dev")
    assert login.exit_code == 1 and "cannot process request grant_type=password" in login.stderr, login.output
    assert "(sensitive)" in login.stderr
    echoing_server["token"] = False
    echoing_server["put"] = True
    applied = project.run("apply", "--env", "dev", "--auto-approve")
    assert applied.exit_code == 1 and "cannot process request" in applied.stderr, applied.output
    # The echoed body is shortened to one line; whatever of the password field survives is redacted.
    assert '"userPassword":' not in applied.stderr or '"userPassword":"(sensitive)"' in applied.stderr, applied.stderr
    snapshot = json.loads((project.root / ".vboplan/state/dev.json").read_text())
    assert "cannot process request" in snapshot["last_apply"]["error"]
    shown = project.run("state", "show", "--env", "dev", "--format", "json")
    verbose = project.run("-vv", "apply", "--env", "dev", "--auto-approve")
    _clean(login, applied, shown, verbose)
    _files_clean(project.root)


def test_secrets_are_stored_as_slow_hashes_in_a_fresh_process() -> None:
    """The suite's processes hash with fewer iterations (conftest.py); vboplan as shipped, in a process of its own,
    makes 200,000-iteration hashes and checks a digest by the count the digest names."""
    import subprocess
    import sys

    from conftest import SHIPPED_ITERATIONS

    from vboplan.sensitive import digest

    quick = digest("s3cret")
    script = ("import json, sys; from vboplan.sensitive import digest, matches; quick = json.loads(sys.argv[1]); "
              "made = digest('s3cret'); print(json.dumps([made['iterations'], matches('s3cret', made), "
              "matches('s3cret', quick), matches('other', quick)]))")
    out = subprocess.run([sys.executable, "-c", script, json.dumps(quick)], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [SHIPPED_ITERATIONS, True, True, False]
    assert SHIPPED_ITERATIONS >= 200_000 and quick["iterations"] < SHIPPED_ITERATIONS
