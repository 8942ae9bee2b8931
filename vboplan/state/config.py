"""The ``state:`` section of vboplan.yaml: which backend keeps snapshots, locks and write journals."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vboplan.errors import ProjectError

BACKENDS = ("local", "s3", "azurerm")
_KEYS = {
    "local": {"backend", "path"},
    "s3": {"backend", "bucket", "prefix", "endpoint_url", "region"},
    "azurerm": {"backend", "container", "prefix", "connection_string_env", "account_url_env"},
}
DEFAULT_CONNECTION_STRING_ENV = "AZURE_STORAGE_CONNECTION_STRING"


@dataclass(frozen=True)
class StateConfig:
    """Where state lives. Credentials are never here: S3 uses the AWS chain, Azure an environment variable."""

    backend: str = "local"
    path: str | None = None                       # local: folder, relative to the project (default .vboplan/state)
    bucket: str | None = None                     # s3
    endpoint_url: str | None = None               # s3: any S3-compatible store
    region: str | None = None                     # s3
    container: str | None = None                  # azurerm
    connection_string_env: str = DEFAULT_CONNECTION_STRING_ENV   # azurerm
    account_url_env: str | None = None            # azurerm: a variable holding the account URL (may carry a SAS)
    prefix: str = ""                              # s3, azurerm: key prefix, e.g. "corp/"
    where: str = "vboplan.yaml"

    @property
    def shared(self) -> bool:
        return self.backend != "local"


def parse_state_config(raw: Any, where: str, key_where: Any = None) -> StateConfig:
    """Check the ``state:`` mapping; every error names vboplan.yaml's line. ``key_where(key)`` locates a key."""
    locate = key_where or (lambda key: where)
    if raw is None:
        return StateConfig(where=where)
    if not isinstance(raw, dict):
        raise ProjectError(f"{where}: 'state' must be a mapping such as {{backend: s3, bucket: NAME}}")
    backend = raw.get("backend", "local")
    if backend not in BACKENDS:
        raise ProjectError(f"{locate('backend')}: state backend '{backend}' is not one of {', '.join(BACKENDS)}")
    for key in raw:
        if key not in _KEYS[backend]:
            hint = ("; credentials come from the AWS chain (environment, profile), never from vboplan.yaml"
                    if backend == "s3" and "key" in str(key).lower() else
                    f"; a {backend} backend takes {', '.join(sorted(_KEYS[backend] - {'backend'}))}")
            raise ProjectError(f"{locate(key)}: unknown state setting '{key}'{hint}")
    values: dict[str, Any] = {}
    for key in _KEYS[backend] - {"backend"}:
        if key in raw:
            if not isinstance(raw[key], str) or not raw[key]:
                raise ProjectError(f"{locate(key)}: state.{key} must be a non-empty string")
            values[key] = raw[key]
    required = {"s3": "bucket", "azurerm": "container"}.get(backend)
    if required and required not in values:
        raise ProjectError(f"{where}: a {backend} state backend needs '{required}'")
    prefix = values.get("prefix", "")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    values["prefix"] = prefix
    return StateConfig(backend=backend, where=where, **values)
