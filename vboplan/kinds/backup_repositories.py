"""``backup_repositories``: where backups are kept (Veeam's REST API, ``/BackupRepositories``:
helpcenter.veeam.com/docs/vbo365/rest/reference/vbo365-rest.html), by name: a folder on a backup proxy
(``proxy: NAME``) or, in v8, on a proxy pool (``proxyPool: NAME``), or object storage (``objectStorage: {account:
NAME, ...}``, the cloud account by its userName), optionally encrypted with an encryption key (``encryptionKey:
DESCRIPTION``), with its retention fields. ``retentionType`` is required in every create and PUT; the retention
type, the path and the object-storage target (its type, bucket or container, folder) are fixed once the
repository exists. v8 answers pages, v6/v7 plain arrays.

Object storage: v8 embeds it in the repository (``objectStorage``, Veeam's RESTObjectStorageComposed); v6 and v7
keep it in a collection of its own, ``/objectstoragerepositories`` (RESTObjectStorageRepositoryComposed, with a
name and description of its own), which the repository names by ``objectStorageId``. Templates write the same
``objectStorage`` block in every version: on v6/v7 vboplan creates the object storage (named after the
repository) before the repository, edits it with its own PUT and removes it after the repository (the server
refuses to remove an object storage a repository uses: "You cannot remove an object storage that is in use by an
extended backup repository", v7 document). Fields one version lacks (v8's immutability period, v6's immutability)
are refused where the version's document lacks them.
"""

from __future__ import annotations

from typing import Any

from vboplan.kinds.spec import CollectionSpec, Reference, Separate, per_version

#: What the server fixes once a repository exists (Veeam's documents mark nothing: POST and PUT share one schema;
#: the console cannot move a repository to another folder or bucket, or change its retention type, either).
TARGET = ("type", "amazonBucketS3Aws", "amazonBucketS3Compatible", "azureContainer", "s3Folder", "azureFolder")
FIXED = ("retentionType", "path", "objectStorageId", *(f"objectStorage.{name}" for name in TARGET))

OBJECT_STORAGE = Separate(
    field="objectStorage", link="objectStorageId", key="object_storage_repositories",
    versions=per_version("objectstoragerepositories", "objectstoragerepositories/{repositoryId}",
                         "RESTObjectStorageRepositoryComposed", "RESTObjectStorageRepositoryComposed",
                         versions=("v6", "v7"), paged=()),
    references=(Reference("accountId", "cloud_accounts"),), fixed=TARGET)


class _Encryption:
    """Encryption needs its key: ``objectStorageEncryptionEnabled: true`` without an encryption key, or a key on a
    repository whose encryption is turned off, is refused (the template names ``encryptionKey``, a request
    ``encryptionKeyId``)."""

    def check(self, version: str, key: str, fields: dict[str, Any]) -> str:
        enabled = fields.get("objectStorageEncryptionEnabled")
        has_key = fields.get("encryptionKey") is not None or fields.get("encryptionKeyId") is not None
        if enabled is True and not has_key:
            return "objectStorageEncryptionEnabled is true but no encryptionKey is named (the key to encrypt with)"
        if enabled is False and has_key:
            return "an encryptionKey is named but objectStorageEncryptionEnabled is false (set it true, or leave " \
                   "the key out)"
        return ""


SPEC = CollectionSpec(
    key="backup_repositories", key_field="name",
    versions=per_version("BackupRepositories", "BackupRepositories/{repositoryId}", "RESTBackupRepositoryFromClient",
                         "RESTBackupRepository", versions=("v6", "v7", "v8")),
    references=(Reference("proxyId", "backup_proxies"), Reference("proxyPoolId", "proxy_pools"),
                Reference("encryptionKeyId", "encryption_keys"),
                Reference("objectStorage.accountId", "cloud_accounts")),
    fixed=FIXED, unique=(("proxyId", "path"), ("proxyPoolId", "path")), separate=(OBJECT_STORAGE,),
    hooks=_Encryption(),
    summary="backup repositories (on a proxy or a proxy pool, or object storage), by name")
