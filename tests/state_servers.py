"""Real object stores for the shared state backends, started on free ports when a test first asks for one: moto's
S3 server (on a thread of its own) and Azurite (Microsoft's Blob Storage emulator, a Node.js process from npm).

Under pytest-xdist they are started once for the whole run, by the controlling process (``SharedServers``, which
tests/conftest.py registers there), and every worker's tests use them, each test in buckets and containers of its
own: a worker asks by creating ``want-<server>`` in a folder named in its workerinput, and reads the address from
``<server>.json`` there. Without workers (``-n 0``) the test process starts them itself.

With VBOPLAN_REQUIRE_STATE_SERVERS=1 (set by .ci/run) a missing server fails the tests; on a developer machine without
Node.js the Azure tests are skipped with the reason.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

REPO = Path(__file__).resolve().parents[1]
AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key, published by Microsoft for the emulator (not a secret).
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
REQUIRED = os.environ.get("VBOPLAN_REQUIRE_STATE_SERVERS") == "1"
# The workerinput key naming the folder where the controlling process answers its workers' requests for servers.
WORKERINPUT = "vboplan_state_servers"


def _missing(reason: str) -> NoReturn:
    if REQUIRED:
        pytest.fail(f"{reason} (VBOPLAN_REQUIRE_STATE_SERVERS=1: run .ci/run to install it)")
    pytest.skip(reason)


@dataclass
class S3Server:
    endpoint: str

    def new_bucket(self) -> str:
        import boto3

        name = f"vboplan-{uuid.uuid4().hex[:12]}"
        boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1").create_bucket(Bucket=name)
        return name


@dataclass
class AzuriteServer:
    blob_endpoint: str

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
                f"BlobEndpoint={self.blob_endpoint};")

    def new_container(self) -> str:
        from azure.storage.blob import BlobServiceClient

        name = f"vboplan-{uuid.uuid4().hex[:12]}"
        BlobServiceClient.from_connection_string(self.connection_string).create_container(name)
        return name


class Unavailable(Exception):
    """A server that cannot be started here, and why."""


def _aws_environment() -> None:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


def start_s3() -> tuple[str, Callable[[], None]]:
    """moto's S3 server on a thread of this process: (its endpoint, how to stop it)."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        raise Unavailable("moto is not installed (pip install -e '.[test]')") from None
    _aws_environment()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return f"http://{host}:{port}", server.stop


def azurite_command() -> str | None:
    local = REPO / ".ci" / "node" / "node_modules" / ".bin" / "azurite-blob"
    for candidate in (os.environ.get("VBOPLAN_AZURITE"), str(local), shutil.which("azurite-blob")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def start_azurite(folder: Path) -> tuple[str, Callable[[], None]]:
    """Azurite's Blob service, in memory, on a free port, run from ``folder`` (where it may leave a debug log of its
    own): (its blob endpoint, how to stop it)."""
    command = azurite_command()
    if command is None:
        raise Unavailable("Azurite is not installed (npm install --prefix .ci/node azurite, as .ci/run does)")
    process = subprocess.Popen(
        [str(command), "--inMemoryPersistence", "--blobHost", "127.0.0.1", "--blobPort", "0",
         "--skipApiVersionCheck", "--loose", "--disableTelemetry"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=folder)

    def stop() -> None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)

    assert process.stdout is not None
    url = None
    for line in process.stdout:
        match = re.search(r"successfully listens on (http://\S+)", line)
        if match:
            url = match.group(1)
            break
    if url is None:
        stop()
        raise Unavailable(f"Azurite did not start ({command})")
    # Keep reading what it prints, so a full pipe never stalls it.
    threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()  # type: ignore[union-attr]
    return f"{url}/{AZURITE_ACCOUNT}", stop


class SharedServers:
    """In the controlling process of an xdist run: each server started once, the first time a worker asks for it,
    and stopped when the run ends."""

    def __init__(self) -> None:
        self.folder: Path | None = None
        self.stops: list[Callable[[], None]] = []
        self.done = threading.Event()
        self.thread: threading.Thread | None = None

    def pytest_configure_node(self, node: object) -> None:
        if self.folder is None:
            self.folder = Path(tempfile.mkdtemp(prefix="vboplan-state-servers-"))
            self.thread = threading.Thread(target=self._answer, args=(self.folder,), name="vboplan-state-servers",
                                           daemon=True)
            self.thread.start()
        node.workerinput[WORKERINPUT] = str(self.folder)  # type: ignore[attr-defined]

    def _answer(self, folder: Path) -> None:
        starters = {"s3": start_s3, "azurite": lambda: start_azurite(folder)}
        while starters and not self.done.wait(0.02):
            for name in [n for n in starters if (folder / f"want-{n}").exists()]:
                try:
                    endpoint, stop = starters.pop(name)()
                    self.stops.append(stop)
                    answer = {"endpoint": endpoint}
                except Unavailable as exc:
                    answer = {"unavailable": str(exc)}
                except Exception as exc:  # a worker fails with it instead of waiting  # noqa: BLE001
                    answer = {"unavailable": f"{name} did not start: {exc!r}"}
                written = folder / f".{name}.json"
                written.write_text(json.dumps(answer), encoding="utf-8")
                written.replace(folder / f"{name}.json")

    def pytest_unconfigure(self) -> None:
        self.done.set()
        if self.thread is not None:
            self.thread.join(timeout=60)
        for stop in self.stops:
            stop()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


def _from_controller(config: pytest.Config, name: str) -> str | None:
    """The endpoint of server ``name`` the controlling process started, in an xdist worker; None elsewhere."""
    folder = getattr(config, "workerinput", {}).get(WORKERINPUT)
    if folder is None:
        return None
    (Path(folder) / f"want-{name}").touch()
    answer = Path(folder) / f"{name}.json"
    deadline = time.monotonic() + 120
    while not answer.exists():
        if time.monotonic() > deadline:
            _missing(f"the controlling process did not start {name} within 120 s")
        time.sleep(0.02)
    reply = json.loads(answer.read_text(encoding="utf-8"))
    if "unavailable" in reply:
        _missing(reply["unavailable"])
    return str(reply["endpoint"])


def _served(config: pytest.Config, name: str, start: Callable[[], tuple[str, Callable[[], None]]]) -> Iterator[str]:
    """The endpoint of the ``name`` server: the controller's under xdist, else one ``start`` gives and stops after."""
    endpoint = _from_controller(config, name)
    if endpoint is not None:
        yield endpoint
        return
    try:
        endpoint, stop = start()
    except Unavailable as exc:
        _missing(str(exc))
    try:
        yield endpoint
    finally:
        stop()


@pytest.fixture(scope="session")
def s3_server(pytestconfig: pytest.Config) -> Iterator[S3Server]:
    _aws_environment()
    for endpoint in _served(pytestconfig, "s3", start_s3):
        yield S3Server(endpoint)


@pytest.fixture(scope="session")
def azurite_server(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzuriteServer]:
    """Azurite's Blob service, in memory, on a free port."""
    for endpoint in _served(pytestconfig, "azurite", lambda: start_azurite(tmp_path_factory.mktemp("azurite"))):
        yield AzuriteServer(endpoint)
