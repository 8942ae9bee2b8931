"""Real object stores for the shared state backends, started by fixtures on free ports: moto's S3 server (in this
process, on its own thread) and Azurite (Microsoft's Blob Storage emulator, a Node.js process from npm).

With VBOPLAN_REQUIRE_STATE_SERVERS=1 (set by .ci/run) a missing server fails the tests; on a developer machine without
Node.js the Azure tests are skipped with the reason.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key, published by Microsoft for the emulator (not a secret).
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
REQUIRED = os.environ.get("VBOPLAN_REQUIRE_STATE_SERVERS") == "1"


def _missing(reason: str) -> None:
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


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        _missing("moto is not installed (pip install -e '.[test]')")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3Server(f"http://{host}:{port}")
    finally:
        server.stop()


def azurite_command() -> str | None:
    local = REPO / ".ci" / "node" / "node_modules" / ".bin" / "azurite-blob"
    for candidate in (os.environ.get("VBOPLAN_AZURITE"), str(local), shutil.which("azurite-blob")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


@pytest.fixture(scope="session")
def azurite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzuriteServer]:
    """Azurite's Blob service, in memory, on a free port."""
    command = azurite_command()
    if command is None:
        _missing("Azurite is not installed (npm install --prefix .ci/node azurite, as .ci/run does)")
    # In memory; run from a scratch folder, where Azurite may still leave a debug log of its own.
    folder = tmp_path_factory.mktemp("azurite")
    process = subprocess.Popen(
        [str(command), "--inMemoryPersistence", "--blobHost", "127.0.0.1", "--blobPort", "0",
         "--skipApiVersionCheck", "--loose", "--disableTelemetry"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=folder)
    try:
        assert process.stdout is not None
        url = None
        for line in process.stdout:
            match = re.search(r"successfully listens on (http://\S+)", line)
            if match:
                url = match.group(1)
                break
        if url is None:
            _missing(f"Azurite did not start ({command})")
        # Keep reading what it prints, so a full pipe never stalls it.
        threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()  # type: ignore[union-attr]
        yield AzuriteServer(f"{url}/{AZURITE_ACCOUNT}")
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
