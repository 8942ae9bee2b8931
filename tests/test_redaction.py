"""A server that sends a secret back, in whatever spelling, never gets it printed: the API password and a
``secret()`` echoed HTML-escaped, JSON-escaped, URL-encoded, base64-encoded or with another case, in a JSON error or
an HTML error page, over real HTTP. And a secret too short to be masked safely is refused where it enters."""

from __future__ import annotations

import base64
import html
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, quote, quote_plus
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
from conftest import SEED, ProjectDir, Result

from vboplan.sensitive import MASK, forget, redact, remember

# Both hold every character an encoder treats specially: & < > " ' / \ + space, and one beyond ASCII.
API_PASSWORD = "Api&<P4ss>/w\"rd's+ é\\x"
SMTP_PASSWORD = "Smtp+M4il &'pa<ss>/\"wörd"

FORMS: dict[str, Callable[[str], str]] = {
    "as sent": lambda s: s,
    "upper case": str.upper,
    "lower case": str.lower,
    "JSON-escaped": lambda s: json.dumps(s)[1:-1],
    "JSON-escaped, non-ASCII kept": lambda s: json.dumps(s, ensure_ascii=False)[1:-1],
    "HTML-escaped": html.escape,
    "HTML-escaped, quotes kept": lambda s: html.escape(s, quote=False),
    "URL-encoded": lambda s: quote(s, safe=""),
    "URL-encoded, lower-case hex": lambda s: quote(s, safe="").lower(),
    "form-encoded": quote_plus,
    "base64": lambda s: base64.b64encode(s.encode()).decode(),
    "base64 of user:password": lambda s: base64.b64encode(f"admin:{s}".encode()).decode(),
    "URL-safe base64": lambda s: base64.urlsafe_b64encode(f"xy{s}".encode()).decode(),
    "JSON inside HTML": lambda s: html.escape(json.dumps(s)),
}


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def echoing() -> Iterator[dict[str, Any]]:
    """The emulator behind a front that, when asked, answers a login (``token``) or a settings write (``put``)
    with an error quoting the password it was sent, spelt as ``form`` says, as JSON or as an HTML page."""
    from vboplan.emulator import Emulator, Store

    emulator = Emulator(Store.from_data({**SEED, "credentials": [{"username": "admin", "password": API_PASSWORD}]}))
    echo: dict[str, Any] = {"on": None, "form": "as sent", "page": False}

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        token = method == "POST" and path.endswith("/token")
        if (echo["on"] == "token" and token) or (echo["on"] == "put" and method == "PUT"):
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)).decode()
            sent = parse_qs(body)["password"][0] if token else json.loads(body)["userPassword"]
            shown = FORMS[echo["form"]](sent)
            if echo["page"]:
                payload = f"<html><body><h1>Bad Request</h1><pre>value: {shown}</pre></body></html>".encode()
                kind = "text/html; charset=utf-8"
            else:
                payload = json.dumps({"message": f"rejected value: {shown}"}).encode()
                kind = "application/json"
            # A login refused with 400 is "wrong password" (its text unused) and a 5xx is retried: 403 is neither.
            status = "403 Forbidden" if token else "400 Bad Request"
            start_response(status, [("Content-Type", kind), ("Content-Length", str(len(payload)))])
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


@pytest.fixture
def echoed(project: ProjectDir, echoing: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("VBO_TEST_PASSWORD", API_PASSWORD)
    monkeypatch.setenv("SMTP_PASSWORD", SMTP_PASSWORD)
    config = (project.root / "vboplan.yaml").read_text().replace("server: emulator:dev", f"server: {echoing['url']}")
    project.write("vboplan.yaml", config)
    echoing["project"] = project
    return echoing


def _assert_masked(result: Result, secret: str, form: str) -> None:
    assert result.exit_code == 1, result.output
    assert "rejected value" in result.stderr or "value:" in result.stderr, result.output
    assert MASK in result.stderr, result.output
    for spelling in {secret, FORMS[form](secret)}:
        assert spelling not in result.output, (form, spelling, result.output)


@pytest.mark.parametrize("form", list(FORMS))
def test_the_api_password_echoed_by_the_login_is_masked(echoed: dict[str, Any], form: str) -> None:
    echoed.update(on="token", form=form)
    result = echoed["project"].run("plan", "--env", "dev")
    _assert_masked(result, API_PASSWORD, form)


# Each apply hashes its secret (a slow hash, on purpose): the write path is checked with a few spellings, every
# spelling through the login and in-process below.
@pytest.mark.parametrize("form", ["upper case", "HTML-escaped", "base64"])
def test_a_secret_echoed_in_an_html_error_page_is_masked(echoed: dict[str, Any], form: str) -> None:
    echoed.update(on="put", form=form, page=True)
    result = echoed["project"].run("apply", "--env", "dev", "--auto-approve")
    _assert_masked(result, SMTP_PASSWORD, form)


@pytest.mark.parametrize("form", ["as sent", "JSON-escaped", "URL-encoded, lower-case hex", "base64 of user:password",
                                  "JSON inside HTML"])
def test_a_template_secret_echoed_by_a_write_is_masked(echoed: dict[str, Any], form: str) -> None:
    echoed.update(on="put", form=form)
    result = echoed["project"].run("apply", "--env", "dev", "--auto-approve")
    _assert_masked(result, SMTP_PASSWORD, form)
    recorded = (echoed["project"].root / ".vboplan/state/dev.json").read_text(encoding="utf-8")
    assert "rejected value" in recorded
    for spelling in {SMTP_PASSWORD, FORMS[form](SMTP_PASSWORD)}:
        assert spelling not in recorded and json.dumps(spelling)[1:-1] not in recorded, (form, recorded)


def test_masking_keeps_the_text_around_a_secret() -> None:
    forget()
    try:
        remember(SMTP_PASSWORD)
        for form, spell in FORMS.items():
            assert redact(f"before {spell(SMTP_PASSWORD)} after").startswith("before "), form
            assert MASK in redact(f"before {spell(SMTP_PASSWORD)} after"), form
        assert redact("port 587, smtp.office365.com, Api, pass") == "port 587, smtp.office365.com, Api, pass"
    finally:
        forget()


@pytest.mark.parametrize("variable", ["VBO_TEST_PASSWORD", "SMTP_PASSWORD"])
def test_a_secret_of_fewer_than_four_characters_is_refused(project: ProjectDir, monkeypatch: pytest.MonkeyPatch,
                                                           variable: str) -> None:
    monkeypatch.setenv(variable, "25!")
    result = project.run("plan", "--env", "dev")
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "shorter than 4 characters" in lines[0], result.stderr
    assert ("VBO_TEST_PASSWORD" if variable == "VBO_TEST_PASSWORD" else "secret('SMTP_PASSWORD')") in lines[0]
    assert "25!" not in result.output
