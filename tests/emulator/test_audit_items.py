"""/vN/Organizations/{id}/AuditItems: list, add and remove, with every version's paths and status codes."""

from __future__ import annotations

import pytest

from vboplan.emulator import Store

from .helpers import Api

ADD_STATUS = {"v5": 200, "v6": 201, "v7": 201, "v8": 204}
REMOVE_STATUS = {"v5": 200, "v6": 200, "v7": 200, "v8": 204}


def _items(api: Api, org_id: str) -> list[dict]:
    response = api.get(f"/Organizations/{org_id}/AuditItems")
    assert response.status_code == 200
    return response.json()


def _remove(api: Api, org_id: str, item_ids: list[str]):
    if api.version == "v5":
        return api.post(f"/Organizations/{org_id}/AuditItems/action", json={"remove": {"itemIds": item_ids}})
    return api.post(f"/Organizations/{org_id}/AuditItems/remove", json={"itemIds": item_ids})


def test_add_list_remove(api: Api, store: Store) -> None:
    org_id = api.org_id()
    assert _items(api, org_id) == []
    ceo, hr = api.user(org_id, "ceo@contoso.com"), api.group(org_id, "HR Department")
    added = api.post(f"/Organizations/{org_id}/AuditItems", json=[{"type": "User", "user": ceo},
                                                                  {"type": "Group", "group": hr}])
    assert added.status_code == ADD_STATUS[api.version] and added.content == b""
    items = _items(api, org_id)
    assert [(i["type"], (i.get("user") or i.get("group"))["id"]) for i in items] == [("User", ceo["id"]),
                                                                                   ("Group", hr["id"])]
    # Inside audit items the user or group is the version's whole RESTUser/RESTGroup (README: "Audit items").
    assert items[0]["user"] == ceo and items[1]["group"] == hr
    stored = store.organizations[0].audit_items[0]["principalId"]
    assert items[0]["id"] != ceo["id"] and items[0]["id"].endswith(stored)  # GUID + principal id (NOTES §4)
    assert "group" not in items[0] and "user" not in items[1]
    removed = _remove(api, org_id, [items[0]["id"]])
    assert removed.status_code == REMOVE_STATUS[api.version] and removed.content == b""
    assert [i["id"] for i in _items(api, org_id)] == [items[1]["id"]]
    assert [i["principalId"] for i in store.organizations[0].audit_items] == [hr["id"].rsplit(":", 1)[-1]
                                                                            + hr["id"].split(":")[2]
                                                                            if ":" in hr["id"] else hr["id"]]


def test_minimal_and_lowercase_bodies_work(api: Api) -> None:
    org_id = api.org_id()
    jane = api.user(org_id, "jane@contoso.com")
    # The v5 blog's body: lower-case type, only the id that matters (NOTES §4).
    response = api.post(f"/Organizations/{org_id}/AuditItems", lenient=True,
                        json=[{"type": "user", "USER": {"id": jane["id"], "displayName": "whatever"}}])
    assert response.status_code == ADD_STATUS[api.version]
    no_type = api.post(f"/Organizations/{org_id}/AuditItems", lenient=True,
                       json=[{"user": {"id": api.user(org_id, "cfo@contoso.com")["id"]}}])
    assert no_type.status_code == ADD_STATUS[api.version]  # JSON.NET's enum default is User
    assert [i["user"]["name"] for i in _items(api, org_id)] == ["jane@contoso.com", "cfo@contoso.com"]


def test_adding_twice_is_idempotent(api: Api) -> None:
    org_id = api.org_id()
    ceo = api.user(org_id, "ceo@contoso.com")
    body = [{"type": "User", "user": {"id": ceo["id"]}}]
    assert api.post(f"/Organizations/{org_id}/AuditItems", json=body).status_code == ADD_STATUS[api.version]
    first = _items(api, org_id)
    assert api.post(f"/Organizations/{org_id}/AuditItems", json=body + body).status_code == ADD_STATUS[api.version]
    assert _items(api, org_id) == first


def test_unknown_principal_is_404_and_nothing_is_added(api: Api) -> None:
    org_id = api.org_id()
    ceo = api.user(org_id, "ceo@contoso.com")
    fabrikam_user = api.get(f"/Organizations/{api.org_id('fabrikam.onmicrosoft.com')}/Users").json()["results"][0]
    for ghost in ({"type": "User", "user": {"id": "00000000-dead-beef-0000-000000000000"}},
                  {"type": "User", "user": {"id": fabrikam_user["id"]}},
                  {"type": "Group", "group": {"id": ceo["id"]}}):
        response = api.post(f"/Organizations/{org_id}/AuditItems",
                            json=[{"type": "User", "user": {"id": ceo["id"]}}, ghost])
        assert response.status_code == 404
        assert (ghost.get("user") or ghost.get("group"))["id"] in response.json()["message"]
        assert response.json().get("errorCode") == ("ResourceNotFound" if api.version == "v8" else None)
    assert _items(api, org_id) == []


@pytest.mark.parametrize("body, fragment", [
    ({"type": "User", "user": {"id": "x"}}, "array"),
    ("[]", "array"),
    ([{"type": "Site", "site": {"id": "x"}}], "only users and groups"),
    ([{"type": "team", "team": {"id": "x"}}], "only users and groups"),
    ([{"type": "Mailbox", "user": {"id": "x"}}], "type"),
    ([{"type": "User"}], "user.id"),
    ([{"type": "User", "user": {"displayName": "Jane Doe"}}], "user.id"),
    ([{"type": "Group", "user": {"id": "x"}}], "group.id"),
    ([{"type": "User", "user": "jane@contoso.com"}], "user"),
    ([None], "object"),
    ([42], "mapping"),
])
def test_bad_add_bodies_are_400(api: Api, body: object, fragment: str) -> None:
    org_id = api.org_id()
    response = api.post(f"/Organizations/{org_id}/AuditItems", json=body, lenient=True)
    assert response.status_code == 400 and fragment in response.json()["message"], response.json()
    assert _items(api, org_id) == []


def test_empty_array_adds_nothing(api: Api) -> None:
    org_id = api.org_id()
    assert api.post(f"/Organizations/{org_id}/AuditItems", json=[]).status_code == ADD_STATUS[api.version]
    assert _items(api, org_id) == []


def test_removing_unknown_ids_is_404_and_removes_nothing(api: Api) -> None:
    org_id = api.org_id()
    ceo = api.user(org_id, "ceo@contoso.com")
    api.post(f"/Organizations/{org_id}/AuditItems", json=[{"type": "User", "user": {"id": ceo["id"]}}])
    item_id = _items(api, org_id)[0]["id"]
    # A classic client bug: removing by the user's id instead of the audit item's.
    response = _remove(api, org_id, [item_id, ceo["id"]])
    assert response.status_code == 404 and ceo["id"] in response.json()["message"]
    assert [i["id"] for i in _items(api, org_id)] == [item_id]
    assert _remove(api, org_id, []).status_code == REMOVE_STATUS[api.version]
    assert [i["id"] for i in _items(api, org_id)] == [item_id]


@pytest.mark.parametrize("version", ["v6", "v7", "v8"])
def test_bad_remove_bodies_are_400(api: Api) -> None:
    org_id = api.org_id()
    for body in ({}, {"itemIds": "abc"}, [], {"itemIds": [{"id": "x"}]}):
        response = api.post(f"/Organizations/{org_id}/AuditItems/remove", json=body, lenient=True)
        assert response.status_code == 400, body


def test_v5_removal_forms(client) -> None:
    api = Api(client, "v5").login()
    org_id = api.org_id()
    users = [api.user(org_id, name) for name in ("ceo@contoso.com", "cfo@contoso.com", "jane@contoso.com")]
    api.post(f"/Organizations/{org_id}/AuditItems", json=[{"type": "User", "user": u} for u in users])
    ids = [i["id"] for i in _items(api, org_id)]
    assert api.post(f"/Organizations/{org_id}/AuditItems/action", json={"Remove": {"ItemIds": [ids[0]]}},
                    lenient=True).status_code == 200
    assert api.post(f"/Organizations/{org_id}/AuditItems/action", json={"other": {}}).status_code == 400
    deleted = api.delete(f"/Organizations/{org_id}/AuditItems", params={"itemIds": ids[1]})
    assert deleted.status_code == 204
    assert [i["id"] for i in _items(api, org_id)] == [ids[2]]
    assert api.delete(f"/Organizations/{org_id}/AuditItems").status_code == 400
    assert api.post(f"/Organizations/{org_id}/AuditItems/remove", json={"itemIds": ids}).status_code == 404


@pytest.mark.parametrize("version", ["v6", "v7", "v8"])
def test_later_versions_have_neither_action_nor_delete(api: Api) -> None:
    org_id = api.org_id()
    assert api.post(f"/Organizations/{org_id}/AuditItems/action", json={"remove": {"itemIds": []}}).status_code \
        == 404
    assert api.delete(f"/Organizations/{org_id}/AuditItems", params={"itemIds": "x"}).status_code == 405


def test_audit_items_are_per_organization(api: Api) -> None:
    contoso, fabrikam = api.org_id(), api.org_id("fabrikam.onmicrosoft.com")
    api.post(f"/Organizations/{contoso}/AuditItems", json=[{"type": "User", "user": api.user(contoso,
                                                                                            "ceo@contoso.com")}])
    assert _items(api, fabrikam) == [] and len(_items(api, contoso)) == 1
