"""Every settings object of the catalog, served on exactly the versions whose document has it: GET, a PUT of every
writable field, the round trip, write-only values never answered, the test e-mail action, per-organization objects.
Every request and response here is validated against Veeam's full documents by the client's hooks."""

from __future__ import annotations

from typing import Any

import pytest

from vboplan.emulator import Store
from vboplan.emulator.store import HASH_SUFFIX, password_hash
from vboplan.kinds import catalog
from vboplan.kinds.catalog import SettingsSpec
from vboplan.schema import properties, resolve

from .helpers import SECRETS, VERSIONS, Api

SPECS = {spec.key: spec for spec in catalog.settings()}
PUT_STATUS = {"v5": 200, "v6": 200, "v7": 200, "v8": 204}
# Fields whose values need a sign-in or a server-side flow: left to the OAuth tests of test_settings.py.
FLOW_FIELDS = {"requestId"}


SERVED = [(version, key) for key, spec in sorted(SPECS.items()) for version in spec.versions]
ABSENT = [(version, key) for key, spec in sorted(SPECS.items()) for version in VERSIONS if version not in spec.versions]
MAILED = [(version, key) for version, key in SERVED if SPECS[key].endpoints[version].test_mail]


@pytest.fixture
def spec(key: str) -> SettingsSpec:
    return SPECS[key]


def sample(version: str, prop: dict[str, Any], name: str) -> Any:
    """A value of every writable field that differs from what a fresh server holds."""
    prop = resolve(version, prop)
    if prop.get("format") == "password":
        return SECRETS[2]
    if "enum" in prop:
        return "CustomSmtp" if "CustomSmtp" in prop["enum"] else prop["enum"][-1]
    kind = prop.get("type")
    if kind == "boolean":
        return True
    if kind == "integer":
        return 2525 if name == "port" else 12
    if kind == "object" or "properties" in prop:
        return {k: sample(version, v, k) for k, v in prop.get("properties", {}).items() if not k.startswith("_")}
    return f"{name}.example"


def body_for(version: str, spec: SettingsSpec) -> dict[str, Any]:
    writable, _, _ = spec.fields(version)
    return {name: sample(version, prop, name) for name, prop in writable.items() if name not in FLOW_FIELDS}


def path_of(api: Api, spec: SettingsSpec, version: str | None = None) -> str:
    endpoint = spec.endpoints.get(version or api.version) or next(iter(spec.endpoints.values()))
    return "/" + endpoint.path.replace(catalog.ORGANIZATION_ID, api.org_id() if spec.per_organization else "")


@pytest.mark.parametrize("version, key", ABSENT)
def test_not_served_where_the_document_lacks_it(api: Api, spec: SettingsSpec) -> None:
    assert api.get(path_of(api, spec)).status_code == 404
    assert api.put(path_of(api, spec), json={}, lenient=True).status_code == 404


@pytest.mark.parametrize("version, key", SERVED)
def test_put_every_field_then_get_round_trips(api: Api, spec: SettingsSpec, store: Store) -> None:
    fresh = api.get(path_of(api, spec))
    assert fresh.status_code == 200
    if "_links" in fresh.json():
        assert fresh.json()["_links"]["self"]["href"].endswith(path_of(api, spec))
    body = body_for(api.version, spec)
    response = api.put(path_of(api, spec), json=body)
    assert response.status_code == PUT_STATUS[api.version], response.text
    held = api.get(path_of(api, spec)).json()
    _, readable, write_only = spec.fields(api.version)
    for name, value in body.items():
        if name in readable:
            assert held[name] == value, name
    assert not write_only & set(held)
    org = store.find_organization("contoso.onmicrosoft.com") if spec.per_organization else None
    stored = store.settings_of(spec.key, org)
    for name in write_only - FLOW_FIELDS:
        assert stored[name + HASH_SUFFIX] == password_hash(body[name])
    assert SECRETS[2] not in repr(store.to_data())
    # Partial: a PUT of one field (and what the document requires) leaves the others as they are.
    first = sorted(k for k in body if k in readable)[0]
    required = {name: body[name] for name in spec.required(api.version)}
    api.put(path_of(api, spec), json={**required, first: body[first]})
    assert api.get(path_of(api, spec)).json() == held


def test_a_required_field_left_out_is_400(client) -> None:  # type: ignore[no-untyped-def]
    api = Api(client, "v8").login()
    response = api.put("/Configuration/Updates", json={"updateSettings": {"installUpdatesAutomatically": True}},
                       lenient=True)
    assert response.status_code == 400 and "enableCheckForUpdates" in response.json()["message"]


@pytest.mark.parametrize("version, key", MAILED)
def test_test_email_action(api: Api, spec: SettingsSpec, store: Store) -> None:
    endpoint = spec.endpoints[api.version]
    assert endpoint.test_mail
    action = f"{path_of(api, spec)}/{endpoint.test_mail}"
    request = {"json": {"sendTest": None}} if endpoint.test_mail == "action" else \
        {"json": {"email": "restore-admin@contoso.com"}} if "Vbo" not in endpoint.path and "Audit" not in \
        endpoint.path else {}
    refused = api.post(action, **request)  # disabled, or no recipient, on the seeded server
    assert refused.status_code == 400 and store.test_emails[spec.key] == 0
    body = body_for(api.version, spec)
    body.pop("authenticationType", None)
    api.put(path_of(api, spec), json=body)
    sent = api.post(action, **request)
    assert sent.status_code == (204 if api.version == "v8" else 200) and sent.content == b""
    assert store.test_emails[spec.key] == 1
    held = api.get(path_of(api, spec)).json()
    assert next(iter(held["_actions"].values()))["uri"].endswith(f"{path_of(api, spec)}/{endpoint.test_mail}")


@pytest.mark.parametrize("version", ["v6", "v7", "v8"])
def test_organization_retention_exclusion_falls_back_to_the_global_one(api: Api, store: Store) -> None:
    org_path = f"/Organizations/{api.org_id()}/RetentionExclusion"
    api.put("/GlobalRetentionExclusionSettings", json={"contacts": True, "calendar": False})
    assert api.get(org_path).json() == {"contacts": True, "calendar": False}
    api.put(org_path, json={"calendar": True})
    assert api.get(org_path).json() == {"contacts": True, "calendar": True}
    assert api.get("/GlobalRetentionExclusionSettings").json() == {"contacts": True, "calendar": False}
    assert api.delete(org_path).status_code == 204
    assert api.get(org_path).json() == {"contacts": True, "calendar": False}
    other = f"/Organizations/{api.org_id('fabrikam.onmicrosoft.com')}/RetentionExclusion"
    assert api.get(other).json()["calendar"] is False


def test_per_organization_settings_persist_with_the_organization(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from .helpers import seed_data

    target = tmp_path / "data.json"
    store = Store.open(target, seed=seed_data())
    org = store.find_organization("contoso.onmicrosoft.com")
    with store.mutation():
        store.update_settings("organization_backup_options", {"sharePointBackupMode": "Latest"}, org)
        store.update_settings("internet_proxy_settings", {"hostName": "proxy", "userPassword": SECRETS[4]})
    again = Store.open(target)
    assert again.settings_of("organization_backup_options", again.find_organization("contoso.onmicrosoft.com")) \
        == {"sharePointBackupMode": "Latest"}
    assert again.settings["internet_proxy_settings"]["userPasswordSha256"] == password_hash(SECRETS[4])
    assert SECRETS[4] not in target.read_text()


@pytest.mark.parametrize("version", ["v6", "v7", "v8"])
def test_unknown_organization_is_404(api: Api) -> None:
    response = api.get("/Organizations/8f2d1f0e-0000-4000-8000-000000000000/RetentionExclusion")
    assert response.status_code == 404


def test_seed_gives_starting_values_per_kind() -> None:
    store = Store.from_data({"history_settings": {"keeponlyLast": "12"},
                             "organizations": [{"name": "contoso.onmicrosoft.com",
                                                "organization_retention_exclusions": {"calendar": "true"}}]})
    assert store.settings["history_settings"] == {"keeponlyLast": 12}
    org = store.find_organization("contoso.onmicrosoft.com")
    assert store.settings_of("organization_retention_exclusions", org) == {"calendar": True}


def test_every_catalog_component_exists_in_the_shipped_slices() -> None:
    for spec in catalog.settings():
        for version, endpoint in spec.endpoints.items():
            assert properties(version, endpoint.request) and properties(version, endpoint.response), spec.key


@pytest.mark.parametrize("version", ["v6", "v7", "v8"])
def test_every_documented_operation_of_a_catalog_path_is_served(api: Api) -> None:
    """Each operation Veeam's full document lists under a settings object's path (GET, PUT, DELETE, test mail,
    OAuth sign-in) is routed by the emulator: never 404 (no route) or 405 (method not served)."""
    from .helpers import spec as full_document

    prefixes = {f"/{api.version}/{e.path}".lower() for s in catalog.settings() for v, e in s.endpoints.items()
                if v == api.version}
    served = 0
    for template, operations in full_document(api.version)["paths"].items():
        if not any(template.lower() == p or template.lower().startswith(p + "/") for p in prefixes):
            continue
        path = template[len(api.version) + 1:].replace("{organizationId}", api.org_id())
        for method in operations:
            if method not in ("get", "put", "post", "delete"):
                continue
            response = api.request(method.upper(), path, json={}, lenient=True)
            assert response.status_code not in (404, 405), f"{method.upper()} {template}: {response.status_code}"
            served += 1
    assert served == {"v6": 31, "v7": 35, "v8": 47}[api.version]  # every operation the documents list there
