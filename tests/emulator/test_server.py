"""The emulator over real sockets: ``vboplan emulator serve`` as a subprocess (HTTP and verified HTTPS), and
``start()`` in a thread, as vboplan's other tests and benchmarks use it."""

from __future__ import annotations

import json
import queue
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import yaml
from click.testing import CliRunner

from vboplan.emulator import Store, start
from vboplan.emulator.cli import emulator as emulator_cli

from .helpers import ADMIN, SECRETS, Api, seed_data, validated_client

REPO = Path(__file__).resolve().parents[2]
SMTP_PASSWORD = SECRETS[1]


@contextmanager
def serve_process(*args: str) -> Iterator[tuple[str, str | None, subprocess.Popen[str]]]:
    """``python -m vboplan.emulator.cli serve --port 0 ...``; yields (url, CA path, process); always killed."""
    if not {"--profile", "--versions"} & set(args):
        args = ("--versions", "v5,v6,v7,v8", *args)  # these sessions cover every version
    process = subprocess.Popen([sys.executable, "-m", "vboplan.emulator.cli", "serve", "--port", "0", *args],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    assert process.stderr is not None
    stderr = process.stderr
    threading.Thread(target=lambda: [lines.put(line) for line in stderr], daemon=True).start()
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"the emulator did not start (exit code {process.poll()})")
            found = re.search(r"listening on (\S+) \(Veeam [^,]+, API v[\d, v]+\)(?:.*CA bundle: (\S+))?", line)
            if found:
                break
            if time.monotonic() > deadline:
                pytest.fail("the emulator did not say where it listens")
        yield found.group(1), found.group(2), process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def at_once(call: object, count: int) -> None:
    """Run ``call`` on ``count`` threads at once and wait for them all."""
    threads = [threading.Thread(target=call) for _ in range(count)]  # type: ignore[arg-type]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _session(client: httpx.Client, version: str, data_file: Path) -> None:
    """A client's whole day: login, settings, lookups with paging, audit items, refresh."""
    login = client.post(f"/{version}/token", data={"grant_type": "password", **ADMIN})
    assert login.status_code == 200
    api = Api(client, version)
    api.token, api.refresh_token = login.json()["access_token"], login.json()["refresh_token"]
    put = api.put("/AuditEmailSettings", json={"enableNotification": True, "smtpServer": "smtp.contoso.com",
                                               "port": 587, "userPassword": SMTP_PASSWORD, "to": "soc@contoso.com"})
    assert put.status_code in (200, 204)
    settings = api.get("/AuditEmailSettings")
    assert settings.json()["smtpServer"] == "smtp.contoso.com" and SMTP_PASSWORD not in settings.text
    fabrikam = api.org_id("fabrikam.onmicrosoft.com")
    for kind, total in (("Users", 75), ("Groups", 40)):
        seen, params = 0, {"limit": 25}
        while True:
            page = api.get(f"/Organizations/{fabrikam}/{kind}", params=params).json()
            seen += len(page["results"])
            if "next" not in page["_links"]:
                break
            params = {"offset": page["offset"] + page["limit"], "limit": 25, "setId": page["setId"]}
        assert seen == total
    contoso = api.org_id()
    ceo = api.user(contoso, "ceo@contoso.com")
    assert api.post(f"/Organizations/{contoso}/AuditItems", json=[{"type": "User", "user": ceo}]).status_code \
        in (200, 201, 204)
    items = api.get(f"/Organizations/{contoso}/AuditItems").json()
    assert [i["user"]["id"] for i in items] == [ceo["id"]]
    # The change is on disk before the answer: in the change log beside the data file, secrets hashed.
    text = data_file.with_name(data_file.name + ".changes").read_text(encoding="utf-8")
    # (kept in the two-GUID form; v7+ answers qualify it by the organization, README: "Ids")
    assert ceo["id"].rsplit(":", 1)[-1] in text and "smtp.contoso.com" in text and SMTP_PASSWORD not in text
    assert api.post(f"/Organizations/{contoso}/AuditItems/remove", json={"itemIds": [items[0]["id"]]}
                    ).status_code in (200, 204)
    assert api.get(f"/Organizations/{contoso}/AuditItems").json() == []
    refreshed = client.post(f"/{version}/token", data={"grant_type": "refresh_token",
                                                       "refresh_token": api.refresh_token})
    assert refreshed.status_code == 200
    api.token = refreshed.json()["access_token"]
    assert api.get("/ServiceInstance").status_code == 200


def test_https_session_with_certificate_verification(tmp_path: Path) -> None:
    data_file = tmp_path / "vbo.yaml"
    data_file.write_text(yaml.safe_dump(seed_data()), encoding="utf-8")
    with serve_process("--data", str(data_file), "--tls") as (url, ca_path, process):
        assert url.startswith("https://127.0.0.1:") and ca_path and Path(ca_path).is_file()
        context = ssl.create_default_context(cafile=ca_path)
        with validated_client(base_url=url, verify=context) as client:
            _session(client, "v8", data_file)
            _session(client, "v7", data_file)
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"{url}/v8/ServiceInstance")  # the system trust store does not know this certificate
        from cryptography import x509
        cert = x509.load_pem_x509_certificate(Path(ca_path).read_bytes())
        assert cert.issuer.rfc4514_string() == "OU=Veeam Software,O=Veeam Software,CN=Veeam Software"
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert "localhost" in sans.get_values_for_type(x509.DNSName)
        with validated_client(base_url=url.replace("127.0.0.1", "localhost"), verify=context) as client:
            assert client.get("/v8/ServiceInstance").status_code == 401
    assert process.returncode == 0  # SIGTERM stops it cleanly
    assert not Path(ca_path).exists()


def test_plain_http_session_expired_token_and_v5(tmp_path: Path) -> None:
    data_file = tmp_path / "vbo.json"
    data_file.write_text(json.dumps(seed_data()), encoding="utf-8")
    with serve_process("--data", str(data_file), "--token-lifetime", "1") as (url, ca_path, _):
        assert url.startswith("http://") and ca_path is None
        with validated_client(base_url=url) as client:
            api = Api(client, "v5").login()
            org_id = api.org_id()
            page = api.get(f"/Organizations/{org_id}/Users").json()
            assert page["_links"]["self"]["href"].startswith(url + "/v5/")  # v5 links are absolute
            time.sleep(1.2)
            assert api.get("/AuditEmailSettings").status_code == 401
            refreshed = client.post("/v5/token", data={"grant_type": "refresh_token",
                                                       "refresh_token": api.refresh_token})
            assert refreshed.status_code == 200


def test_cli_throttle_says_quota_exceeded_over_the_wire() -> None:
    with serve_process("--throttle") as (url, _, _):
        with validated_client(base_url=url) as client:
            statuses = [client.post("/v8/token", data={"grant_type": "password", "username": "admin",
                                                       "password": "admin"}) for _ in range(2)]
    assert statuses[0].status_code == 200
    # WebApiThrottle puts its message in the status line and sends no body (README: "Token throttling")
    assert statuses[1].status_code == 429
    assert statuses[1].reason_phrase == "API calls quota exceeded! maximum admitted 1 per Second."
    assert statuses[1].content == b"" and statuses[1].headers["retry-after"] == "1"


def test_request_log_has_each_answer_with_its_times(tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    with serve_process("--request-log", str(log)) as (url, _, _):
        with validated_client(base_url=url) as client:
            client.post("/v8/token", data={"grant_type": "password", "username": "admin", "password": "admin"})
            client.get("/v8/NoSuchThing")
    lines = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    assert [(r["method"], r["path"], r["status"]) for r in lines] == [("POST", "/v8/token", 200),
                                                                      ("GET", "/v8/NoSuchThing", 404)]
    assert all(r["started"] <= r["finished"] for r in lines) and lines[0]["finished"] <= lines[1]["started"]


def test_start_in_a_thread_keep_alive_concurrency_and_drops(monkeypatch: pytest.MonkeyPatch) -> None:
    with start(Store.from_data(seed_data()), latency_ms=100) as server:
        assert server.ca_path is None and server.url == f"http://127.0.0.1:{server.port}"
        with validated_client(base_url=server.url) as client:
            api = Api(client, "v8").login()
            token = api.token
            for _ in range(3):
                assert api.get("/ServiceInstance").status_code == 200
        assert server.emulator.stats.total == 4
        results: list[int] = []

        def call() -> None:
            with httpx.Client(base_url=server.url) as own:
                results.append(own.get("/v8/ServiceInstance", headers={"Authorization": f"Bearer {token}"}
                                       ).status_code)

        # The eight requests' latencies must overlap: each waits until all eight are in it, which a server that
        # served them one at a time could never reach (the barrier would break and the requests answer 500).
        barrier = threading.Barrier(8, timeout=20)
        monkeypatch.setattr("vboplan.emulator.app.time", SimpleNamespace(sleep=lambda seconds: barrier.wait(),
                                                                          monotonic=time.monotonic))
        at_once(call, 8)
        monkeypatch.undo()
        assert results == [200] * 8 and not barrier.broken
        server.emulator.drop_next("GET", "AuditEmailSettings")
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}) as client:
            with pytest.raises(httpx.RemoteProtocolError):
                client.get("/v8/AuditEmailSettings")
            assert client.get("/v8/AuditEmailSettings").status_code == 200  # a new connection works
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/v8/ServiceInstance", timeout=2)


def test_stop_ends_open_keep_alive_connections() -> None:
    server = start(Store.from_data(seed_data()))
    client = httpx.Client(base_url=server.url)
    assert client.get("/v8/ServiceInstance").status_code == 401
    server.stop()
    with pytest.raises(httpx.TransportError):
        client.get("/v8/ServiceInstance", timeout=2)
    client.close()


def test_serve_errors_are_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = runner.invoke(emulator_cli, ["serve", "--port", str(port)])
    assert result.exit_code == 1 and "cannot listen on 127.0.0.1" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("organizations: [{name: x, users: [{displayName: 3}]}]\n", encoding="utf-8")
    result = runner.invoke(emulator_cli, ["serve", "--data", str(bad)])
    assert result.exit_code == 1 and "bad.yaml" in result.output and "users[0]" in result.output
    assert len(result.output.strip().splitlines()) == 1
    unreadable = tmp_path / "dir.json"
    unreadable.mkdir()
    result = runner.invoke(emulator_cli, ["serve", "--data", str(unreadable)])
    assert result.exit_code != 0 and "Traceback" not in result.output


@pytest.mark.parametrize("suffix", ["yaml", "json"])
def test_generate_writes_a_seed_the_server_loads(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"big.{suffix}"
    result = CliRunner().invoke(emulator_cli, ["generate", "--organizations", "2", "--users", "500", "--groups",
                                               "20", "--password", "s3cret", "--out", str(out)])
    assert result.exit_code == 0, result.output
    store = Store.open(out)
    assert [len(o.users.items) for o in store.organizations] == [250, 250]
    assert store.check_credentials("admin", "s3cret") == "admin"


def test_seed_alone_is_served_in_memory_and_never_written(tmp_path: Path) -> None:
    seed = tmp_path / "seed.yaml"
    seed.write_text(yaml.safe_dump(seed_data()), encoding="utf-8")
    before = seed.read_text(encoding="utf-8")
    store = Store.read(seed)
    store.update_settings("audit_email_settings", {"port": 1})
    store.save()
    assert store.path is None and seed.read_text(encoding="utf-8") == before


def test_head_requests_keep_the_connection_usable() -> None:
    with start(Store.from_data(seed_data())) as server, httpx.Client(base_url=server.url) as client:
        head = client.head("/v8/AuditEmailSettings")
        assert head.status_code == 405 and head.content == b""
        assert client.get("/v8/AuditEmailSettings").status_code == 401  # same connection, still in step


def _connection_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "vbo-emulator-connection"]


def test_connections_are_served_on_kept_threads_each_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    before = set(_connection_threads())
    with start(Store.from_data(seed_data())) as server:
        # One connection after another: the thread that served the first serves the next ones.
        for _ in range(5):
            with httpx.Client(base_url=server.url) as client:
                assert client.get("/v8/ServiceInstance").status_code == 401
        time.sleep(0.2)  # the last one's thread goes back to idle after the client's close is read
        assert len(set(_connection_threads()) - before) == 1
        # Eight open connections at once, each with a request in hand that waits for the other seven: each has a
        # thread of its own at once (a connection never waits for another's thread to be free).
        barrier = threading.Barrier(8, timeout=20)
        monkeypatch.setattr("vboplan.emulator.app.time", SimpleNamespace(sleep=lambda seconds: barrier.wait(),
                                                                          monotonic=time.monotonic))
        server.emulator.latency_ms = 1
        results: list[int] = []

        def call() -> None:
            with httpx.Client(base_url=server.url) as own:
                results.append(own.get("/v8/ServiceInstance").status_code)

        at_once(call, 8)
        monkeypatch.undo()
        assert results == [401] * 8 and not barrier.broken
        assert len(set(_connection_threads()) - before) == 8
    deadline = time.monotonic() + 10
    while set(_connection_threads()) - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not set(_connection_threads()) - before  # a stopped server's threads end


def test_an_idle_connection_thread_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    from vboplan.emulator.server import _Workers

    monkeypatch.setattr(_Workers, "IDLE_SECONDS", 0.2)
    before = set(_connection_threads())
    with start(Store.from_data(seed_data())) as server:
        with httpx.Client(base_url=server.url) as client:
            assert client.get("/v8/ServiceInstance").status_code == 401
        deadline = time.monotonic() + 10
        while set(_connection_threads()) - before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not set(_connection_threads()) - before
        with httpx.Client(base_url=server.url) as client:  # and a new connection starts a new one
            assert client.get("/v8/ServiceInstance").status_code == 401
