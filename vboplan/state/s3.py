"""The ``s3`` backend: any S3-compatible store (AWS, MinIO, Wasabi...), through boto3.

Credentials come only from the standard AWS chain (environment variables, profile, instance role), never from
vboplan.yaml. The lock is an object created with a conditional write (``If-None-Match: *``), so of two machines
racing for it exactly one gets it, as Terraform's S3 backend does; the snapshot is written with ``If-Match`` on the
ETag that was read, so a writer whose lock was broken cannot silently overwrite a newer snapshot.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import boto3
import botocore.loaders
import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, PartialCredentialsError

from vboplan.errors import StateBackendError, StateConflictError, StateError
from vboplan.state.base import ANY, Backend, Held, LockBusy, Stored, parse_info
from vboplan.state.config import StateConfig

_LOADER_LOCK = threading.Lock()
_LOADER: botocore.loaders.Loader | None = None


def _session() -> boto3.session.Session:
    """A new session, so credentials are looked up now and never cached from an earlier call, sharing one loader of
    botocore's service models: parsing those JSON files again for every client costs about 0.1 s each."""
    global _LOADER
    with _LOADER_LOCK:
        if _LOADER is None:
            _LOADER = botocore.loaders.create_loader()
        core = botocore.session.Session()
        core.register_component("data_loader", _LOADER)
        return boto3.session.Session(botocore_session=core)


_CREDENTIALS = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "ExpiredToken", "InvalidToken",
                "InvalidClientTokenId", "AuthorizationHeaderMalformed"}


class S3Backend(Backend):
    kind = "s3"

    def __init__(self, config: StateConfig) -> None:
        self.bucket = str(config.bucket)
        self.prefix = config.prefix
        self.endpoint = config.endpoint_url
        try:
            self.client = _session().client(
                "s3", endpoint_url=config.endpoint_url, region_name=config.region,
                config=Config(connect_timeout=10, read_timeout=30, retries={"max_attempts": 3, "mode": "standard"}))
        except (BotoCoreError, ValueError) as exc:
            raise StateBackendError(f"state backend s3: {exc}") from None

    def location(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"

    def _error(self, exc: Exception, key: str | None = None) -> StateError:
        """One clear message for what went wrong talking to the store."""
        where = self.location(key) if key else f"s3://{self.bucket}"
        via = f" at {self.endpoint}" if self.endpoint else ""
        if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
            return StateBackendError(f"state backend s3: no AWS credentials found for {where} (set AWS_ACCESS_KEY_ID "
                                     "and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)")
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            if code == "NoSuchBucket":
                return StateBackendError(f"state backend s3: bucket '{self.bucket}' does not exist{via}")
            if code in _CREDENTIALS or code == "403":
                return StateBackendError(f"state backend s3: the AWS credentials were refused for {where}{via} "
                                         f"({code})")
            return StateBackendError(f"state backend s3: {where}{via}: {code} {error.get('Message', '')}".rstrip())
        return StateBackendError(f"state backend s3: cannot reach {where}{via} ({exc})")

    def get(self, key: str) -> Stored | None:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)
            text = answer["Body"].read().decode("utf-8")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise self._error(exc, key) from None
        except (BotoCoreError, ValueError) as exc:
            raise self._error(exc, key) from None
        return Stored(text, str(answer.get("ETag", "")))

    def put(self, key: str, text: str, expect: str | None = ANY) -> str:
        conditions: dict[str, str] = {}
        if expect is None:
            conditions["IfNoneMatch"] = "*"
        elif expect != ANY:
            conditions["IfMatch"] = expect
        try:
            answer = self.client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=text.encode("utf-8"),
                                            ContentType="application/json", **conditions)
        except ClientError as exc:
            if _precondition_failed(exc):
                raise StateConflictError(f"{self.location(key)} was changed by another writer since this run read "
                                         "it") from None
            raise self._error(exc, key) from None
        except (BotoCoreError, ValueError) as exc:
            raise self._error(exc, key) from None
        return str(answer.get("ETag", ""))

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.prefix + key)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, key) from None

    # -- the lock: an object only one writer can create ---------------------------------------------------------

    def acquire(self, key: str, info: dict[str, Any]) -> Held:
        text = json.dumps(info, indent=2, sort_keys=True) + "\n"
        for _ in range(3):
            try:
                self.put(key, text, expect=None)
            except StateConflictError:
                holder = self.holder(key)
                if holder is None:
                    continue  # released in between: try again, still conditional
                raise LockBusy(holder) from None
            return Held(info["id"], info)
        raise LockBusy(None, f"its lock object {self.location(key)} keeps appearing and vanishing")

    def release(self, key: str, held: Held) -> None:
        current = self.get(key)
        if current is not None and (parse_info(current.text) or {}).get("id") == held.id:
            self.delete(key)

    def holder(self, key: str) -> dict[str, Any] | None:
        current = self.get(key)
        if current is None:
            return None
        info = parse_info(current.text)
        if info is None:
            raise LockBusy(None, f"its lock object {self.location(key)} is empty or unreadable")
        return info

    def break_lock(self, key: str, lock_id: str) -> dict[str, Any]:
        current = self.get(key)
        if current is None:
            raise StateError("it is not locked")
        info = parse_info(current.text)
        if info is None:
            raise StateError(f"its lock object {self.location(key)} is empty or unreadable, so no lock id can be "
                             "checked; if no run is active, delete that object")
        if info.get("id") != lock_id:
            raise StateError(f"lock id {lock_id} is not the id of its lock ({info.get('id')}, held by "
                             f"{info.get('who')}); nothing was changed")
        self.delete(key)
        return info


def _precondition_failed(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return status in (409, 412) or str(error.get("Code")) in ("PreconditionFailed", "ConditionalRequestConflict")
