"""Each mistake an admin makes gets exit 1, one clear line naming where, no traceback, no secret."""

from __future__ import annotations

import socket

import pytest
from conftest import AUDIT_TEMPLATE, ProjectDir, assert_one_clean_error


def _break_template(project: ProjectDir, old: str, new: str) -> None:
    assert old in AUDIT_TEMPLATE
    project.write("templates/audit.yaml.j2", AUDIT_TEMPLATE.replace(old, new, 1))


@pytest.mark.parametrize("command", [("plan", "--env", "dev"), ("validate", "--env", "dev")])
def test_undefined_variable(project: ProjectDir, command: tuple[str, ...]) -> None:
    _break_template(project, "{{ smtp.host }}", "{{ smtp.hots }}")
    assert_one_clean_error(project.run(*command), "templates/audit.yaml.j2:3", "hots", "dev")


def test_undefined_top_level_variable(project: ProjectDir) -> None:
    _break_template(project, "{{ domain }}", "{{ domian }}")
    assert_one_clean_error(project.run("plan", "--env", "dev"), "templates/audit.yaml.j2:9", "'domian' is undefined")


def test_jinja_syntax_error(project: ProjectDir) -> None:
    _break_template(project, "{{ smtp.host }}", "{{ smtp.host }")
    assert_one_clean_error(project.run("plan", "--env", "dev"), "templates/audit.yaml.j2:3", "syntax error")


def test_yaml_error(project: ProjectDir) -> None:
    _break_template(project, "  useSSL: true", "  useSSL: [true")
    assert_one_clean_error(project.run("plan", "--env", "dev"), "templates/audit.yaml.j2", "YAML error")


def test_unknown_field_suggests_the_nearest(project: ProjectDir) -> None:
    _break_template(project, "  useSSL: true", "  useSsl2: true")
    assert_one_clean_error(project.run("plan", "--env", "dev"), "templates/audit.yaml.j2:8", "useSsl2",
                           "did you mean 'useSSL'")


def test_wrong_type(project: ProjectDir) -> None:
    _break_template(project, 'port: "{{ smtp.port }}"', "port: five-eight-seven")
    assert_one_clean_error(project.run("plan", "--env", "dev"), "templates/audit.yaml.j2:4", "port",
                           "whole number")


def test_unknown_enum_value(project: ProjectDir) -> None:
    _break_template(project, "  useSSL: true", "  authenticationType: Carrier-Pigeon")
    assert_one_clean_error(project.run("plan", "--env", "dev"), "templates/audit.yaml.j2:8", "CustomSmtp")


def test_field_of_a_newer_api_version(project: ProjectDir) -> None:
    config = (project.root / "vboplan.yaml").read_text().replace("api_version: v8", "api_version: v6")
    project.write("vboplan.yaml", config)
    _break_template(project, "  useSSL: true", "  authenticationType: CustomSmtp")
    assert_one_clean_error(project.run("plan", "--env", "dev"), "authenticationType", "v6")


def test_response_only_field(project: ProjectDir) -> None:
    _break_template(project, "  useSSL: true", "  isAuthenticated: true")
    assert_one_clean_error(project.run("plan", "--env", "dev"), "isAuthenticated", "response-only")


def test_unknown_environment(project: ProjectDir) -> None:
    assert_one_clean_error(project.run("plan", "--env", "stage"), "unknown environment 'stage'", "dev, prod")


def test_missing_password_variable(project: ProjectDir, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VBO_TEST_PASSWORD")
    assert_one_clean_error(project.run("plan", "--env", "dev"), "VBO_TEST_PASSWORD", "dev")


def test_missing_secret(project: ProjectDir, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SMTP_PASSWORD")
    assert_one_clean_error(project.run("plan", "--env", "dev"), "SMTP_PASSWORD", "templates/audit.yaml.j2:7")


def test_wrong_password(project: ProjectDir, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VBO_TEST_PASSWORD", "not-the-password")
    result = project.run("plan", "--env", "dev")
    assert_one_clean_error(result, "wrong username or password", "'dev'")
    assert "not-the-password" not in result.output


def test_bad_vboplan_yaml(project: ProjectDir) -> None:
    config = (project.root / "vboplan.yaml").read_text().replace("api_version: v8", "api_versoin: v8")
    project.write("vboplan.yaml", config)
    assert_one_clean_error(project.run("plan", "--env", "dev"), "vboplan.yaml:5", "api_versoin",
                           "did you mean 'api_version'")


def test_missing_var_file(project: ProjectDir) -> None:
    (project.root / "environments" / "dev.yaml").unlink()
    assert_one_clean_error(project.run("plan", "--env", "dev"), "environments/dev.yaml", "not found")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _use_server(project: ProjectDir, url: str, verify: str | bool = True) -> None:
    config = (project.root / "vboplan.yaml").read_text().replace("emulator:dev", url, 1)
    config = config.replace("    api_version: v8\n", f"    api_version: v8\n    verify: {str(verify).lower()}\n"
                            f"    timeout: 5\n", 1)
    project.write("vboplan.yaml", config)


def test_unreachable_server(project: ProjectDir) -> None:
    _use_server(project, f"https://127.0.0.1:{_free_port()}")
    assert_one_clean_error(project.run("plan", "--env", "dev"), "cannot connect", "'dev'")


def test_untrusted_certificate(project: ProjectDir, tls_server) -> None:  # type: ignore[no-untyped-def]
    _use_server(project, tls_server.url)
    assert_one_clean_error(project.run("plan", "--env", "dev"), "TLS verification failed", "'dev'")


def test_trusted_with_ca_bundle(project: ProjectDir, tls_server) -> None:  # type: ignore[no-untyped-def]
    _use_server(project, tls_server.url, verify=str(tls_server.ca_path))
    result = project.run("plan", "--env", "dev", "--target", "audit_email_settings.port")
    assert result.exit_code == 0, result.output
    assert "audit_email_settings.port" in result.stdout


def test_verify_off_is_loud(project: ProjectDir, tls_server) -> None:  # type: ignore[no-untyped-def]
    _use_server(project, tls_server.url, verify=False)
    result = project.run("plan", "--env", "dev", "--target", "audit_email_settings.port")
    assert result.exit_code == 0, result.output
    assert "TLS certificate verification is OFF" in result.stderr


@pytest.mark.parametrize("use", ['{{ secret("SMTP_PASSWORD") | upper }}', '{{ secret("SMTP_PASSWORD")[0:7] }}',
                                 '{{ secret("SMTP_PASSWORD").replace("a", "b") }}'])
def test_a_secret_cannot_be_transformed(project: ProjectDir, use: str) -> None:
    _break_template(project, "  useSSL: true", f"  subject: {use}")
    assert_one_clean_error(project.run("plan", "--env", "dev"), "templates/audit.yaml.j2:8", "secret()")


def test_a_secret_may_be_joined_into_a_string(project: ProjectDir) -> None:
    _break_template(project, "  useSSL: true", '  subject: "pre-{{ secret(\'SMTP_PASSWORD\') }}"')
    result = project.run("plan", "--env", "dev", "--target", "audit_email_settings.subject")
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if "audit_email_settings.subject " in line)
    assert row.rstrip().endswith("(sensitive)")


def test_empty_variable_file_names_the_variable(project: ProjectDir) -> None:
    project.write("environments/dev.yaml", "")
    project.write("environments/common.yaml", "smtp: {port: 587}\n")
    result = project.run("plan", "--env", "dev")
    assert_one_clean_error(result, "templates/audit.yaml.j2:3", "has no attribute 'host'")
    assert "Located" not in result.stderr


def test_plain_http_is_loud(project: ProjectDir) -> None:
    from conftest import SEED

    from vboplan.emulator import start

    with start(SEED) as server:
        _use_server(project, server.url)
        result = project.run("plan", "--env", "dev", "--target", "audit_email_settings.port")
    assert result.exit_code == 0, result.output
    assert "plain http" in result.stderr
