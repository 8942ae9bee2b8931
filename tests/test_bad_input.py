"""Bad input of every kind ends with one clear message and exit 1: no traceback, no hang, bounded memory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import API_SECRET, SMTP_SECRET, ProjectDir, assert_one_clean_error

BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def _set_env_key(project: ProjectDir, line: str) -> None:
    """Add ``line`` to environment dev's settings in vboplan.yaml."""
    config = (project.root / "vboplan.yaml").read_text()
    project.write("vboplan.yaml", config.replace("    api_version: v8\n", f"    api_version: v8\n    {line}\n", 1))


def test_billion_laughs_variable_file_is_refused_with_its_line(project: ProjectDir) -> None:
    project.write("environments/dev.yaml", BILLION_LAUGHS)
    result = project.run("plan", "--env", "dev")
    assert_one_clean_error(result, "environments/dev.yaml:7", "aliases")


def test_billion_laughs_in_a_rendered_template_is_refused(project: ProjectDir) -> None:
    project.write("templates/laughs.yaml.j2", BILLION_LAUGHS)
    assert_one_clean_error(project.run("validate", "--env", "dev"), "templates/laughs.yaml.j2:7", "aliases")


def test_ordinary_aliases_still_work(project: ProjectDir) -> None:
    project.write("environments/common.yaml", "base: &base {port: 587}\nsmtp: *base\nnotify_success: false\n")
    result = project.run("validate", "--env", "dev")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("text, fragment", [
    ("a: " + "[" * 300 + "]" * 300 + "\n", "nested"),
    ("smtp: {host: x}\nsmtp: {host: y}\n", "environments/dev.yaml:2: 'smtp' is given twice"),
    ("smtp: [1, 2\nport: 3\n", "environments/dev.yaml:2: YAML error"),
    ("a: \x00\n", "NUL"),
])
def test_broken_yaml_variable_files(project: ProjectDir, text: str, fragment: str) -> None:
    project.write("environments/dev.yaml", text)
    assert_one_clean_error(project.run("validate", "--env", "dev"), fragment)


def test_variable_file_that_is_not_utf8(project: ProjectDir) -> None:
    (project.root / "environments/dev.yaml").write_bytes(b"domain: caf\xe9.local\n")
    assert_one_clean_error(project.run("validate", "--env", "dev"), "environments/dev.yaml:1", "not UTF-8")


def test_json_variable_files_are_read_as_json(project: ProjectDir) -> None:
    config = (project.root / "vboplan.yaml").read_text().replace("environments/dev.yaml", "environments/dev.json")
    project.write("vboplan.yaml", config)
    project.write("environments/dev.json", '{"domain": "dev.contoso.com",\n "smtp": {"host": "smtp.dev.local"}}\n')
    result = project.run("plan", "--env", "dev", "--target", "audit_email_settings.smtpServer")
    assert result.exit_code == 0, result.output
    assert "smtp.dev.local" in result.stdout
    project.write("environments/dev.json", '{"domain": "dev.contoso.com",\n "smtp": {"host": }}\n')
    assert_one_clean_error(project.run("validate", "--env", "dev"), "environments/dev.json:2", "JSON error")
    project.write("environments/dev.json", '{"domain": "a",\n "domain": "b"}\n')
    assert_one_clean_error(project.run("validate", "--env", "dev"), "environments/dev.json", "'domain' is given twice")


@pytest.mark.parametrize("name", ["../../x", "team/dev", "..", "a..b", "nul", "COM1.x", "-dev", "a" * 65, "dév"])
def test_unsafe_environment_names_are_refused(project: ProjectDir, name: str) -> None:
    config = (project.root / "vboplan.yaml").read_text().replace("\n  dev:\n", f"\n  '{name}':\n", 1)
    project.write("vboplan.yaml", config)
    result = project.run("plan", "--env", name, "--out", str(project.root / "p.json"))
    assert_one_clean_error(result, "vboplan.yaml:3", "environment name")
    written = {p for p in project.root.parent.rglob("*") if p.is_file()}
    assert all(project.root in p.parents for p in written), written


def test_environments_that_differ_only_in_case_are_refused(project: ProjectDir) -> None:
    """On Windows and macOS their plan and state files would be one file."""
    config = (project.root / "vboplan.yaml").read_text().replace("\n  prod:\n", "\n  DEV:\n", 1)
    project.write("vboplan.yaml", config)
    assert_one_clean_error(project.run("validate", "--all"), "environment 'DEV' differs only in case from 'dev' "
                           "(at vboplan.yaml:3)")


@pytest.mark.parametrize("server, fragment", [
    ("emulator:../x", "emulator name"),
    ('"emulator:"', "emulator name"),
    ('"https://vbo\\0.lab:4443"', "control character"),
    ("https://:4443", "names no host"),
    ('"https://[::1:4443"', "not a valid URL"),
    ("https://vbo.lab:99999", "out of range"),
    ('"https://vbo.lab:"', "port"),
    ("https://admin:pw@vbo.lab:4443", "user name or password"),
    ('"https://vbo lab:4443"', "space"),
    ("ftp://vbo.lab", "must start with https://"),
])
def test_bad_server_names(project: ProjectDir, server: str, fragment: str) -> None:
    config = (project.root / "vboplan.yaml").read_text().replace("emulator:dev", server, 1)
    project.write("vboplan.yaml", config)
    assert_one_clean_error(project.run("plan", "--env", "dev"), "vboplan.yaml:4", fragment)


@pytest.mark.parametrize("value", [".nan", ".inf", "-1", "0", "'20'", "1e9", "true"])
def test_bad_timeouts(project: ProjectDir, value: str) -> None:
    _set_env_key(project, f"timeout: {value}")
    assert_one_clean_error(project.run("validate", "--env", "dev"), "vboplan.yaml:6", "timeout")


def test_verify_file_that_is_not_a_certificate(project: ProjectDir) -> None:
    project.write("certs/vbo.cer", "this is not a certificate\n")
    _set_env_key(project, "verify: certs/vbo.cer")
    assert_one_clean_error(project.run("validate", "--env", "dev"), "vboplan.yaml:6", "holds no certificate")


def test_der_certificate_is_accepted(project: ProjectDir, tls_server) -> None:  # type: ignore[no-untyped-def]
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    pem = Path(tls_server.ca_path).read_bytes()
    (project.root / "vbo.cer").write_bytes(x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER))
    config = (project.root / "vboplan.yaml").read_text().replace("emulator:dev", tls_server.url, 1)
    project.write("vboplan.yaml", config)
    _set_env_key(project, "verify: vbo.cer")
    result = project.run("plan", "--env", "dev", "--target", "audit_email_settings.port")
    assert result.exit_code == 0, result.output
    assert "audit_email_settings.port" in result.stdout


def test_plan_out_under_a_file_is_one_line(project: ProjectDir) -> None:
    project.write("blocker", "a file, not a folder\n")
    result = project.run("plan", "--env", "dev", "--out", str(project.root / "blocker" / "plan.json"))
    assert_one_clean_error(result, "blocker")


def test_an_unexpected_error_is_one_line_and_v_shows_the_traceback(project: ProjectDir,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    def broken(self, request):  # type: ignore[no-untyped-def]
        raise RuntimeError("transport exploded")

    monkeypatch.setattr(httpx.WSGITransport, "handle_request", broken)
    result = project.run("plan", "--env", "dev")
    assert_one_clean_error(result, "RuntimeError: transport exploded", "run with -v for details")
    verbose = project.run("-v", "plan", "--env", "dev")
    assert verbose.exit_code == 1
    assert "Traceback" in verbose.stderr and "transport exploded" in verbose.stderr


def test_ctrl_c_is_one_line(project: ProjectDir, monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    def interrupted(self, request):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    monkeypatch.setattr(httpx.WSGITransport, "handle_request", interrupted)
    result = project.run("plan", "--env", "dev")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.stderr.strip().splitlines()[-1] == "Error: interrupted."


def _vboplan(project: ProjectDir, *args: str, env: dict[str, str] | None = None, prelude: str = "",
             timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    """Run the installed entry point in a fresh interpreter, as a user's shell would."""
    code = prelude + "import sys; from vboplan.entry import main; sys.argv[0] = 'vboplan'; main()"
    full_env = {**os.environ, "VBO_TEST_PASSWORD": API_SECRET, "SMTP_PASSWORD": SMTP_SECRET, **(env or {})}
    return subprocess.run([sys.executable, "-c", code, "-C", str(project.root), "--no-color", *args],
                          capture_output=True, env=full_env, timeout=timeout)


def test_redirected_output_is_utf8_whatever_the_code_page(project: ProjectDir) -> None:
    config = (project.root / "templates/audit.yaml.j2").read_text()
    project.write("templates/audit.yaml.j2", config.replace("  useSSL: true", '  subject: "alert → ops ✓"'))
    result = _vboplan(project, "plan", "--env", "dev", "--target", "audit_email_settings.subject",
                      env={"PYTHONIOENCODING": "cp1252", "PYTHONUTF8": "0"})
    assert result.returncode == 0, result.stderr.decode("utf-8", "replace")
    assert "alert → ops ✓" in result.stdout.decode("utf-8")


def test_ctrl_c_while_vboplan_loads(project: ProjectDir) -> None:
    # Ctrl-C arriving while vboplan loads (before any command runs) is simulated at the import of click.
    prelude = ("import sys\n"
               "class Interrupt:\n"
               "    def find_spec(self, name, path=None, target=None):\n"
               "        if name == 'click': raise KeyboardInterrupt\n"
               "sys.meta_path.insert(0, Interrupt())\n")
    result = _vboplan(project, "validate", prelude=prelude)
    assert result.returncode == 1
    assert b"Traceback" not in result.stderr
    assert b"interrupted" in result.stderr


@pytest.mark.parametrize("body, fragment", [
    ("{% macro loop(n) %}{{ loop(n) }}{% endmacro %}{{ loop(1) }}", "recurses"),
    ("x: {{ " + "(" * 2000 + "1" + ")" * 2000 + " }}", "templates/evil.yaml.j2"),
    ("x: {{ 7 ** 100000000 }}", "too large a number"),
    ("x: {{ 'ab' * 10 ** 9 }}", "too large"),
    ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "range()"),
    ("{% for i in range(60000) %}{{ 'x' * 1000 }}{% endfor %}", "renders more than"),
    ("x: {{ undefined_thing }}", "templates/evil.yaml.j2:1"),
    ("{% include '../../etc/passwd' %}", "templates/evil.yaml.j2"),
])
def test_hostile_templates(project: ProjectDir, body: str, fragment: str) -> None:
    project.write("templates/evil.yaml.j2", body)
    assert_one_clean_error(project.run("validate", "--env", "dev"), fragment)


def test_everything_vboplan_writes_stays_in_the_project(project: ProjectDir) -> None:
    config = (project.root / "vboplan.yaml").read_text().replace("\n  dev:\n", "\n  dev.eu-1_a:\n", 1)
    project.write("vboplan.yaml", config.replace("emulator:dev", "emulator:dev.eu-1_a"))
    project.seed("dev.eu-1_a", __import__("conftest").SEED)
    outside = project.root.parent
    before = {p for p in outside.rglob("*") if project.root not in p.parents and p != project.root}
    plan_file = str(project.root / "plans" / "dev.json")
    assert project.run("plan", "--env", "dev.eu-1_a", "--out", plan_file).exit_code == 0
    assert project.run("apply", plan_file).exit_code == 0
    assert project.run("state", "show", "--env", "dev.eu-1_a").exit_code == 0
    after = {p for p in outside.rglob("*") if project.root not in p.parents and p != project.root}
    assert after == before
    written = {p.relative_to(project.root / ".vboplan").as_posix() for p in (project.root / ".vboplan").rglob("*")
               if p.is_file()}
    assert "state/dev.eu-1_a.json" in written and "emulator/dev.eu-1_a.json" in written


def test_a_work_folder_pointing_outside_the_project_is_refused(project: ProjectDir, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    try:
        (project.root / ".vboplan").symlink_to(elsewhere, target_is_directory=True)
    except OSError:
        pytest.skip("cannot create symbolic links here")
    result = project.run("plan", "--env", "dev")
    assert_one_clean_error(result, "outside the project")
    assert not any(elsewhere.iterdir())


def test_yaml_goes_through_libyaml_where_pyyaml_has_it() -> None:
    import yaml

    from vboplan.project import yamlfile
    assert yamlfile.C_PARSER == bool(yaml.__with_libyaml__)
    if yaml.__with_libyaml__:
        assert issubclass(yamlfile._Loader, yaml.cyaml.CParser)
    located = yamlfile.parse_yaml("a:\n  b: 1\nc: 2\n", "x.yaml")
    assert located.where("c") == "x.yaml:3" and located["a"].where("b") == "x.yaml:2"
