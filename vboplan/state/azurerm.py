"""The ``azurerm`` backend: a container in Azure Blob Storage, through azure-storage-blob.

The connection string (or an account URL, which may carry a SAS token) is read from an environment variable,
``AZURE_STORAGE_CONNECTION_STRING`` by default, never from vboplan.yaml. The lock is a lease on the blob
``<env>.lock``, taken with vboplan's lock id as the proposed lease id, so the id ``state unlock`` names is the lease id
the service checks: a wrong id cannot release it. Snapshots are written with ETag conditions.
"""

from __future__ import annotations

import json
import os
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.storage.blob import BlobLeaseClient, BlobServiceClient, ContainerClient, ExponentialRetry

from vboplan.errors import StateBackendError, StateConflictError, StateError
from vboplan.state.base import ANY, Backend, Held, LockBusy, Stored, parse_info
from vboplan.state.config import StateConfig


def _options() -> dict[str, Any]:
    # The library's default retries wait 15 s, then 18 s...: an unreachable store would hold a run for a minute.
    return {"connection_timeout": 10, "read_timeout": 30,
            "retry_policy": ExponentialRetry(initial_backoff=1, increment_base=2, retry_total=2)}


class AzureBackend(Backend):
    kind = "azurerm"

    def __init__(self, config: StateConfig) -> None:
        self.container_name = str(config.container)
        self.prefix = config.prefix
        self.container = self._connect(config)

    def _connect(self, config: StateConfig) -> ContainerClient:
        connection = os.environ.get(config.connection_string_env)
        account_url = os.environ.get(config.account_url_env) if config.account_url_env else None
        try:
            if account_url:
                credential = None
                if "sig=" not in account_url:
                    try:
                        from azure.identity import DefaultAzureCredential  # optional: Entra ID sign-in
                    except ImportError:
                        raise StateBackendError(
                            f"state backend azurerm: {config.account_url_env} holds an account URL without a SAS "
                            "token; add one, or install azure-identity to sign in with Entra ID") from None
                    credential = DefaultAzureCredential()
                service = BlobServiceClient(account_url, credential=credential, **_options())
            elif connection:
                service = BlobServiceClient.from_connection_string(connection, **_options())
            else:
                raise StateBackendError(
                    f"state backend azurerm: set {config.connection_string_env} to the storage account's connection "
                    "string" + (f" (or {config.account_url_env} to its URL)" if config.account_url_env else ""))
        except ValueError as exc:
            raise StateBackendError(f"state backend azurerm: the connection string in "
                                    f"{config.connection_string_env} is not valid ({exc})") from None
        self.account = service.account_name
        return service.get_container_client(self.container_name)

    def location(self, key: str) -> str:
        return f"azurerm://{self.account}/{self.container_name}/{self.prefix}{key}"

    def _blob(self, key: str) -> Any:
        return self.container.get_blob_client(self.prefix + key)

    def _error(self, exc: Exception, key: str | None = None) -> StateError:
        where = self.location(key) if key else f"container '{self.container_name}'"
        code = _code(exc) or None
        if code == "ContainerNotFound":
            return StateBackendError(f"state backend azurerm: container '{self.container_name}' does not exist in "
                                     f"storage account '{self.account}'")
        if isinstance(exc, ClientAuthenticationError) or code in ("AuthenticationFailed", "AuthorizationFailure"):
            return StateBackendError(f"state backend azurerm: the storage account '{self.account}' refused the "
                                     f"credentials ({code or 'authentication failed'})")
        if isinstance(exc, ServiceRequestError):
            return StateBackendError(f"state backend azurerm: cannot reach storage account '{self.account}' "
                                     f"({type(exc).__name__})")
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return StateBackendError(f"state backend azurerm: {where}: {code or message}")

    def get(self, key: str) -> Stored | None:
        try:
            download = self._blob(key).download_blob()
            text = download.readall().decode("utf-8")
        except ResourceNotFoundError as exc:
            if _code(exc) == "ContainerNotFound":
                raise self._error(exc, key) from None
            return None
        except AzureError as exc:
            raise self._error(exc, key) from None
        except UnicodeDecodeError:
            raise StateError(f"{self.location(key)}: not UTF-8 text") from None
        return Stored(text, str(download.properties.etag))

    def put(self, key: str, text: str, expect: str | None = ANY, lease: Any = None) -> str:
        options: dict[str, Any] = {"overwrite": True}
        if expect is None:
            options["overwrite"] = False
        elif expect != ANY:
            options.update(etag=expect, match_condition=MatchConditions.IfNotModified)
        if lease is not None:
            options["lease"] = lease
        try:
            answer = self._blob(key).upload_blob(text.encode("utf-8"), **options)
        except (ResourceExistsError, ResourceModifiedError) as exc:
            if _code(exc) == "ContainerNotFound":
                raise self._error(exc, key) from None
            raise StateConflictError(f"{self.location(key)} was changed by another writer since this run read "
                                     "it") from None
        except AzureError as exc:
            raise self._error(exc, key) from None
        return str(answer.get("etag", ""))

    def delete(self, key: str) -> None:
        try:
            self._blob(key).delete_blob()
        except ResourceNotFoundError as exc:
            if _code(exc) == "ContainerNotFound":
                raise self._error(exc, key) from None
        except AzureError as exc:
            raise self._error(exc, key) from None

    # -- the lock: a lease whose id is the lock id --------------------------------------------------------------

    def acquire(self, key: str, info: dict[str, Any]) -> Held:
        blob = self._blob(key)
        try:
            blob.upload_blob(b"", overwrite=False)
        except ResourceExistsError as exc:
            if _code(exc) == "ContainerNotFound":
                raise self._error(exc, key) from None
        except HttpResponseError as exc:
            # A leased lock blob refuses a write without its lease: it exists, which is all this call wanted.
            if _code(exc) not in ("LeaseIdMissing", "BlobAlreadyExists"):
                raise self._error(exc, key) from None
        except AzureError as exc:
            raise self._error(exc, key) from None
        try:
            lease = blob.acquire_lease(lease_duration=-1, lease_id=info["id"])
        except HttpResponseError as exc:
            if _code(exc) == "LeaseAlreadyPresent" or exc.status_code == 409:
                raise LockBusy(self._holder_info(key)) from None
            raise self._error(exc, key) from None
        except AzureError as exc:
            raise self._error(exc, key) from None
        try:
            self.put(key, json.dumps(info, indent=2, sort_keys=True) + "\n", lease=lease)
        except StateError:
            lease.release()
            raise
        return Held(lease.id, info, lease)

    def _holder_info(self, key: str) -> dict[str, Any] | None:
        current = self.get(key)
        return parse_info(current.text) if current else None

    def release(self, key: str, held: Held) -> None:
        lease: BlobLeaseClient = held.handle
        try:
            self._blob(key).upload_blob(b"", overwrite=True, lease=lease)  # no stale holder shown to the next reader
            lease.release()
        except HttpResponseError as exc:
            if _code(exc) in ("LeaseIdMismatchWithLeaseOperation", "LeaseNotPresentWithLeaseOperation",
                                                     "LeaseIdMismatchWithBlobOperation", "LeaseLost"):
                return  # broken by 'state unlock' meanwhile: nothing of ours to give back
            raise self._error(exc, key) from None
        except AzureError as exc:
            raise self._error(exc, key) from None

    def _leased(self, key: str) -> bool:
        try:
            properties = self._blob(key).get_blob_properties()
        except ResourceNotFoundError:
            return False
        except AzureError as exc:
            raise self._error(exc, key) from None
        return str(properties.lease.state) == "leased"

    def holder(self, key: str) -> dict[str, Any] | None:
        if not self._leased(key):
            return None
        info = self._holder_info(key)
        if info is None:
            raise LockBusy(None, f"its lock blob {self.location(key)} is empty or unreadable (the run may be starting)")
        return info

    def break_lock(self, key: str, lock_id: str) -> dict[str, Any]:
        if not self._leased(key):
            raise StateError("it is not locked")
        info = self._holder_info(key)
        # The service checks the id: releasing a lease with another id fails, so a wrong id cannot break it.
        lease = BlobLeaseClient(self._blob(key), lease_id=lock_id)
        try:
            self._blob(key).upload_blob(b"", overwrite=True, lease=lease)
            lease.release()
        except HttpResponseError as exc:
            code = _code(exc)
            if code in (
                    "LeaseIdMismatchWithBlobOperation", "LeaseIdMismatchWithLeaseOperation", "LeaseIdMissing"):
                holder = f" ({(info or {}).get('id')}, held by {(info or {}).get('who')})" if info else ""
                raise StateError(f"lock id {lock_id} is not the id of its lock{holder}; nothing was changed") from None
            if code == "LeaseNotPresentWithBlobOperation":
                raise StateError("it is not locked") from None
            raise self._error(exc, key) from None
        except AzureError as exc:
            raise self._error(exc, key) from None
        return info or {"id": lock_id}


def _code(exc: Exception) -> str:
    """The service's error code as its plain name (azure-storage-blob gives an enum)."""
    code = getattr(exc, "error_code", None)
    return str(getattr(code, "value", code) or "")
