"""``cloud_accounts``: the object-storage accounts repositories write with (Veeam's REST API, ``/Accounts``:
helpcenter.veeam.com/docs/vbo365/rest/reference/vbo365-rest.html), by ``userName`` (the access key id of an S3 or
S3-compatible account, the storage account name of an Azure Blob account; the API wants it in lower case).

The secret (``password``: the secret access key or shared key) is write-only: the server never answers it, so the
plan shows it ``(sensitive) will be set`` until the snapshot holds its salted hash, and a changed secret is an
update that rotates it. ``/Accounts`` answers a plain array and 201 to a create in every version."""

from __future__ import annotations

from typing import Any

from vboplan.kinds.spec import CollectionSpec, Statuses, per_version

_V6_V7 = Statuses(create=201, update=200)


class _LowerCase:
    """The API's rule: "cloud account user name. Must contain only lowercase characters"."""

    def check(self, version: str, key: str, fields: dict[str, Any]) -> str:
        if key != key.lower():
            return f"userName must contain only lower-case characters (write '{key.lower()}')"
        return ""


SPEC = CollectionSpec(
    key="cloud_accounts", key_field="userName",
    versions={**per_version("Accounts", "Accounts/{accountId}", "RESTCredentialToSend", "RESTCredential",
                            versions=("v6", "v7"), paged=(), statuses={"v6": _V6_V7, "v7": _V6_V7}),
              **per_version("Accounts", "Accounts/{accountId}", "RESTAccountToSend", "RESTAccount",
                            versions=("v8",), paged=())},
    secrets=("password",), hooks=_LowerCase(),
    summary="object-storage accounts (S3, S3-compatible, Azure Blob), by userName")
