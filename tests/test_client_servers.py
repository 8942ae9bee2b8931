"""vboplan's client against every server generation the emulator imitates, and against the way real servers refuse:
401 without a body mid-run, 429 on the token endpoint."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from conftest import API_SECRET, SEED

from vboplan.api.client import VboClient
from vboplan.emulator import Emulator, Store
from vboplan.errors import ApiError, AuthError
from vboplan.project.config import Environment


def _client(app: Emulator, version: str, **options: object) -> VboClient:
    env = Environment(name="t", server="emulator:t", api_version=version)
    return VboClient(env.connection, "admin", API_SECRET, transport=httpx.WSGITransport(app=app),
                     base_url=f"http://vbo.invalid/{version}/", backoff=0.01, **options)  # type: ignore[arg-type]


def _tokens(app: Emulator) -> int:
    return sum(n for key, n in app.stats.items() if key.endswith("/token"))


@pytest.mark.parametrize("profile, version", [("vbo5", "v5"), ("vb365-7", "v6"), ("vb365-7", "v7"),
                                              ("vb365-8", "v6"), ("vb365-8", "v7"), ("vb365-8", "v8")])
def test_a_whole_session_against_each_server_generation(profile: str, version: str) -> None:
    app = Emulator(Store.from_data(SEED), profile=profile)
    with _client(app, version) as vbo:
        vbo.put_settings("AuditEmailSettings", {"smtpServer": "smtp.contoso.com", "port": 25})
        assert vbo.get_settings("AuditEmailSettings")["port"] == 25
        org = next(o for o in vbo.organizations() if o["name"] == "contoso.onmicrosoft.com")
        users = list(vbo.iter_pages(f"Organizations/{org['id']}/Users", limit=2))
        assert len(users) == len(SEED["organizations"][0]["users"])
        vbo.add_audit_items(org["id"], [{"type": "User", "user": {"id": users[0]["id"]}}])
        [item] = vbo.audit_items(org["id"])
        vbo.remove_audit_items(org["id"], [item["id"]])
        assert vbo.audit_items(org["id"]) == []
    assert _tokens(app) == 1  # one login for the whole run


def test_a_401_without_a_body_mid_run_renews_the_token_once() -> None:
    # Real servers answer a rejected token with an empty body (emulator README: "401").
    app = Emulator(Store.from_data(SEED))
    with _client(app, "v8") as vbo:
        vbo.get_settings("AuditEmailSettings")
        app.expire_tokens()
        assert vbo.get_settings("AuditEmailSettings") is not None
        assert _tokens(app) == 2  # the login, then one refresh


def test_threads_starting_together_share_one_login() -> None:
    app = Emulator(Store.from_data(SEED))
    vbo = _client(app, "v8")
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def read() -> None:
        barrier.wait()
        try:
            vbo.get_settings("AuditEmailSettings")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    vbo.close()
    assert errors == [] and _tokens(app) == 1


def test_a_throttled_login_waits_as_the_server_says(caplog: pytest.LogCaptureFixture) -> None:
    # WebApiThrottle (1 login a second per client): another login just took this second's slot.
    app = Emulator(Store.from_data(SEED), throttle=True)
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://vbo.invalid") as other:
        assert other.post("/v8/token", data={"grant_type": "password", "username": "admin",
                                              "password": API_SECRET}).status_code == 200
    with caplog.at_level(logging.WARNING, logger="vboplan.api"), _client(app, "v8") as vbo:
        assert vbo.get_settings("AuditEmailSettings") is not None
    assert _tokens(app) == 3  # the other login, one refused attempt, one after waiting
    assert "throttling logins; waiting 1s as it asks" in caplog.text


def test_a_throttled_login_gives_up_within_its_bound_without_hammering() -> None:
    app = Emulator(Store.from_data(SEED), throttle=True)
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://vbo.invalid") as other:
        other.post("/v8/token", data={"grant_type": "password", "username": "admin", "password": API_SECRET})
    with _client(app, "v8", throttle_wait=0.5) as vbo, pytest.raises(ApiError, match="throttling logins"):
        vbo.login()
    assert _tokens(app) == 2


def _together(count: int, call: Callable[[], object]) -> list[BaseException]:
    """Run ``call`` in ``count`` threads released at once; the exceptions they raised."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def run() -> None:
        barrier.wait()
        try:
            call()
        except BaseException as exc:  # noqa: BLE001 - returned to the test
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_a_wrong_password_is_tried_once_however_many_readers_start_together() -> None:
    # Every refused login counts towards the account's lockout: concurrent readers must not each try it.
    app = Emulator(Store.from_data(SEED))
    env = Environment(name="t", server="emulator:t", api_version="v8")
    vbo = VboClient(env.connection, "admin", "not-the-password", transport=httpx.WSGITransport(app=app),
                    base_url="http://vbo.invalid/v8/")
    errors = _together(8, lambda: vbo.get_settings("AuditEmailSettings"))
    with pytest.raises(AuthError, match="wrong username or password"):
        vbo.get_settings("VboEmailSettings")
    vbo.close()
    assert len(errors) == 8 and all(isinstance(e, AuthError) and "wrong username" in str(e) for e in errors)
    assert _tokens(app) == 1


class _Silent(ThreadingHTTPServer):
    """Answers the token request (unless ``token_too``), then never answers anything; records each request line."""

    daemon_threads = True

    def __init__(self, token_too: bool) -> None:
        self.token_too, self.seen, self.stop = token_too, [], threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                self.do_GET()

            def do_GET(self) -> None:  # noqa: N802
                server.seen.append(f"{self.command} {self.path}")
                if self.path.endswith("/token") and not server.token_too:
                    body = b'{"access_token": "t", "refresh_token": "r", "token_type": "bearer"}'
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                server.stop.wait(30)

        super().__init__(("127.0.0.1", 0), Handler)

    def __enter__(self) -> _Silent:
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.shutdown()
        self.server_close()


@pytest.mark.parametrize("token_too", [True, False], ids=["silent-token", "silent-reads"])
def test_a_silent_server_is_waited_for_once_then_every_request_fails_at_once(token_too: bool) -> None:
    with _Silent(token_too) as server:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        env = Environment(name="t", server=url, api_version="v8", timeout=0.5)
        vbo = VboClient(env.connection, "admin", API_SECRET)
        errors = _together(4, lambda: vbo.get_settings("AuditEmailSettings"))
        with pytest.raises(ApiError, match=r"did not answer within 0.5s"):
            vbo.get_settings("VboEmailSettings")
        vbo.close()  # no logout sent to a server that does not answer
    assert len(errors) == 4 and all("did not answer within 0.5s" in str(e) for e in errors)
    if token_too:
        assert server.seen == ["POST /v8/token"]  # one login waited for; the other readers did not try again
    else:  # one login, the four reads that were already under way, nothing after
        assert server.seen == ["POST /v8/token"] + ["GET /v8/AuditEmailSettings"] * 4


@pytest.mark.parametrize("body, items", [
    (b' [ {"id": "a", "type": "User"} ,\n {"id": "b", "type": "Group"} ] \n', ["a", "b"]),
    (b"[]", []), (b" [ ]\r\n", []),
    (b'[{"id": "a"}', None), (b'[{"id": "a"} {"id": "b"}]', None), (b'[{"id": "a"}]]', None),
    (b'{"id": "a"}', None), (b'["a"]', None), (b"", None), (b"[" * 100_000, None)])
def test_audit_items_are_decoded_one_by_one_and_anything_else_is_one_error(body: bytes, items: list[str] | None
                                                                           ) -> None:
    def app(environ: dict[str, object], start_response: Callable[..., object]) -> list[bytes]:
        if str(environ["PATH_INFO"]).endswith("/token"):
            start_response("200 OK", [("Content-Type", "application/json")])
            return [b'{"access_token": "t", "token_type": "bearer"}']
        start_response("200 OK", [("Content-Type", "application/json; charset=utf-8")])
        return [body]

    env = Environment(name="t", server="emulator:t", api_version="v8")
    with VboClient(env.connection, "admin", API_SECRET, transport=httpx.WSGITransport(app=app),
                   base_url="http://vbo.invalid/v8/") as vbo:
        if items is None:
            with pytest.raises(ApiError, match="AuditItems did not (answer with a JSON list|return a list)"):
                vbo.audit_items("org", lambda item: item["id"])
        else:
            assert vbo.audit_items("org", lambda item: item["id"]) == items


def test_proxy_variables_are_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    # A proxy named in the environment that never answers: requests that went through it would time out.
    from vboplan.emulator import start

    with _Silent(token_too=True) as proxy, start(SEED) as running:
        proxy_url = f"http://127.0.0.1:{proxy.server_address[1]}"
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
            monkeypatch.setenv(name, proxy_url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        env = Environment(name="t", server=running.url, api_version="v8", timeout=2)
        with VboClient(env.connection, "admin", API_SECRET) as vbo:
            assert vbo.get_settings("AuditEmailSettings") is not None
    assert proxy.seen == []


@pytest.mark.parametrize("size", [1, 2, 5, 64])
def test_a_json_array_arriving_in_pieces_decodes_as_a_whole_would(size: int) -> None:
    # Audit items are decoded from the answer a few MiB of text at a time: any cut must give json.loads's result,
    # and any malformed array must still be an error.
    from vboplan.api.streaming import each_in_array as _each_in_array

    def pieces(text: str) -> list[str]:
        return [text[i:i + size] for i in range(0, len(text), size)]

    for text in [" [ ] ", '[1, {"a": [1, 2]} , "x"]\n', '[123456, true, null, "a \\" b", {"k": "v}"}, -1.5e3]']:
        assert list(_each_in_array(pieces(text))) == json.loads(text)
    for text in ["", "[", "[1,", "[1 2]", "[1],", "{}", "[1]]", "[,]", "[1,]", "[12", '["a]']:
        with pytest.raises(ValueError):
            list(_each_in_array(pieces(text)))
