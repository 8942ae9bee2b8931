"""``backup_repositories``: where backups are kept (Veeam's REST API, ``/BackupRepositories``:
helpcenter.veeam.com/docs/vbo365/rest/reference/vbo365-rest.html), by name: a folder on a backup proxy
(``proxy: NAME``) or, in v8, on a proxy pool (``proxyPool: NAME``), optionally encrypted with an encryption key
(``encryptionKey: DESCRIPTION``), with its retention fields. ``retentionType`` is required in every create and PUT;
the retention type and the path are fixed once the repository exists. v8 answers pages, v6/v7 plain arrays."""

from __future__ import annotations

from vboplan.kinds.spec import CollectionSpec, Reference, per_version

SPEC = CollectionSpec(
    key="backup_repositories", key_field="name",
    versions=per_version("BackupRepositories", "BackupRepositories/{repositoryId}", "RESTBackupRepositoryFromClient",
                         "RESTBackupRepository", versions=("v6", "v7", "v8")),
    references=(Reference("proxyId", "backup_proxies"), Reference("proxyPoolId", "proxy_pools"),
                Reference("encryptionKeyId", "encryption_keys")),
    fixed=("retentionType", "path"),
    summary="backup repositories (local, on a proxy or a proxy pool), by name")
