"""``encryption_keys``: the keys object-storage repositories encrypt their backups with (Veeam's REST API,
``/EncryptionKeys``: helpcenter.veeam.com/docs/vbo365/rest/reference/vbo365-rest.html), by ``description`` (the
password's hint; a key has no name). No document has a PUT (v8's breaking changes list ``PUT
/EncryptionKeys/{keyId}`` as removed: helpcenter.veeam.com/docs/vbo365/rest/breaking_changes.html), so keys are
created and deleted only; a new password means a new key. The password is write-only, kept in the snapshot as a
salted hash. A key a repository uses cannot be deleted (the server answers 409). The description is a hint, not a
name: the server holds two keys of one description, so a key in use is rotated with ``create_before_destroy``
(the new key, the repositories moved onto it, then the old key deleted)."""

from __future__ import annotations

from dataclasses import replace

from vboplan.kinds.spec import CollectionSpec, Statuses, per_version

_V6_V7 = Statuses(create=200, update=200)


def _without_update(apis: dict) -> dict:
    return {version: replace(api, update=None) for version, api in apis.items()}


SPEC = CollectionSpec(
    key="encryption_keys", key_field="description",
    versions=_without_update({
        **per_version("EncryptionKeys", "EncryptionKeys/{keyId}", "RESTEncryptionKeyToSend", "RESTEncryptionKey",
                      versions=("v6", "v7"), paged=(), statuses={"v6": _V6_V7, "v7": _V6_V7}),
        **per_version("EncryptionKeys", "EncryptionKeys/{keyId}", "RESTEncryptionKeyToSend", "RESTEncryptionKey",
                      versions=("v8",), paged=())}),
    secrets=("password",), shared_key=True,
    summary="encryption keys of object-storage repositories, by description (created and deleted, never edited)")
