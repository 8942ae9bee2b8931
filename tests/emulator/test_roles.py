"""Restore operator roles as the emulator serves them (v6, v7, v8), every request and answer validated against
Veeam's document of its version (helpers.py): created under the organization (200, v8 201), listed there and at
/RbacRoles, the lists only at their own paths (never in the role's answer), entries by the principal's id, a
principal twice refused, operators users and groups only, a SpecificObjects role kept with selected items, names
unique per organization, removal by ``?ids=`` (an unknown id: 404, nothing removed), delete."""

from __future__ import annotations

from typing import Any

import pytest

from .helpers import Api

FABRIKAM = "fabrikam.onmicrosoft.com"


def _user(api: Api, org_id: str, name: str) -> dict[str, Any]:
    found = api.user(org_id, name)
    return {"id": found["id"], "type": "User",
            "user": {"id": found["id"], "displayName": found["displayName"], "name": found["name"], "type": "User"}}


def _group(api: Api, org_id: str, name: str) -> dict[str, Any]:
    found = api.group(org_id, name)
    return {"id": found["id"], "type": "Group",
            "group": {"id": found["id"], "displayName": found["displayName"], "name": found["name"],
                      "type": found.get("type", "Office365")}}


def _site(api: Api, org_id: str) -> dict[str, Any]:
    found = api.get(f"/Organizations/{org_id}/Sites", params={"limit": 10}).json()["results"][0]
    return {"id": found["id"], "type": "Site",
            "site": {"id": found["id"], "url": found["url"], "title": found["title"], "isCloud": True,
                     "isPersonal": False}}


@pytest.mark.parametrize("role_version", ["v6", "v7", "v8"])
def test_roles_and_their_lists(client: Any, role_version: str) -> None:
    api = Api(client, role_version).login()
    org_id = api.org_id(FABRIKAM)
    operator, sales = _group(api, org_id, "Fabrikam Group 01"), _group(api, org_id, "Fabrikam Group 02")
    boss = _user(api, org_id, "user001@fabrikam.com")
    role = {"name": "Helpdesk", "organizationId": org_id, "description": "desk", "roleType": "SpecificObjects",
            "operators": [operator], "selectedItems": [sales, _site(api, org_id)], "excludedItems": [boss]}
    made = api.post(f"/Organizations/{org_id}/RbacRoles", json=role)
    assert made.status_code == (201 if role_version == "v8" else 200), made.text
    created = made.json()
    assert (created["name"], created["roleType"], created["organizationId"]) == ("Helpdesk", "SpecificObjects", org_id)
    assert "operators" not in created and "selectedItems" not in created
    role_id = created["id"]
    assert [r["id"] for r in api.get("/RbacRoles").json()] == [role_id]
    assert [r["id"] for r in api.get(f"/Organizations/{org_id}/RbacRoles").json()] == [role_id]
    assert [r["id"] for r in api.get(f"/Organizations/{api.org_id()}/RbacRoles").json()] == []
    operators = api.get(f"/RbacRoles/{role_id}/operators").json()
    assert [(o["type"], o["id"], o["group"]["name"]) for o in operators] == [("Group", operator["id"],
                                                                             "group01@fabrikam.com")]
    assert api.get(f"/RbacRoles/{role_id}/operators/{operator['id']}").json()["id"] == operator["id"]
    assert {e["type"] for e in api.get(f"/RbacRoles/{role_id}/selectedItems").json()} == {"Group", "Site"}

    # The same name in the organization; a site as operator; a principal twice: 400, nothing changed.
    assert api.post(f"/Organizations/{org_id}/RbacRoles", json=role, lenient=True).status_code == 400
    site_operator = api.post(f"/RbacRoles/{role_id}/operators", json=[_site(api, org_id)], lenient=True)
    assert site_operator.status_code == 400, site_operator.text
    twice = api.post(f"/RbacRoles/{role_id}/operators", json=[operator], lenient=True)
    assert twice.status_code == 400 and "already" in twice.json()["message"]
    empty = {**role, "name": "Empty", "selectedItems": []}
    assert api.post(f"/Organizations/{org_id}/RbacRoles", json=empty, lenient=True).status_code == 400

    # Add and remove through the sub-endpoints (204); an unknown id: 404 and nothing removed.
    assert api.post(f"/RbacRoles/{role_id}/operators", json=[boss]).status_code == 204
    assert len(api.get(f"/RbacRoles/{role_id}/operators").json()) == 2
    unknown = api.delete(f"/RbacRoles/{role_id}/operators", params={"ids": f"{boss['id']},nobody"}, lenient=True)
    assert unknown.status_code == 404 and len(api.get(f"/RbacRoles/{role_id}/operators").json()) == 2
    assert api.delete(f"/RbacRoles/{role_id}/operators", params={"ids": boss["id"]}).status_code == 204
    assert api.delete(f"/RbacRoles/{role_id}/excludedItems", params={"ids": boss["id"]}).status_code == 204
    assert api.get(f"/RbacRoles/{role_id}/excludedItems").json() == []
    # The last selected item of a SpecificObjects role stays.
    ids = ",".join(e["id"] for e in api.get(f"/RbacRoles/{role_id}/selectedItems").json())
    assert api.delete(f"/RbacRoles/{role_id}/selectedItems", params={"ids": ids}, lenient=True).status_code == 400

    # PUT (204) edits the fields and keeps the lists it leaves out; the organization stays.
    edited = api.put(f"/RbacRoles/{role_id}", json={"name": "Helpdesk", "organizationId": org_id,
                                                     "description": "all", "roleType": "EntireOrganization"})
    assert edited.status_code == 204, edited.text
    shown = api.get(f"/RbacRoles/{role_id}").json()
    assert (shown["description"], shown["roleType"]) == ("all", "EntireOrganization")
    assert len(api.get(f"/RbacRoles/{role_id}/operators").json()) == 1
    moved = api.put(f"/RbacRoles/{role_id}", json={"name": "Helpdesk", "organizationId": api.org_id()},
                    lenient=True)
    assert moved.status_code == 400

    assert api.delete(f"/RbacRoles/{role_id}").status_code == 204
    assert api.get("/RbacRoles").json() == []
    assert api.get(f"/RbacRoles/{role_id}", lenient=True).status_code == 404


def test_teams_are_items_from_v7(client: Any) -> None:
    for version, status in (("v6", 400), ("v7", 204)):
        api = Api(client, version).login()
        org_id = api.org_id(FABRIKAM)
        made = api.post(f"/Organizations/{org_id}/RbacRoles", json={"name": f"Teams {version}", "organizationId": org_id,
                                                                   "roleType": "EntireOrganization"})
        assert made.status_code == 200, made.text
        team = api.get(f"/Organizations/{org_id}/Teams", params={"limit": 5}).json()["results"][0]
        entry = {"id": team["id"], "type": "Team",
                 "team": {"id": team["id"], "displayName": team["displayName"], "mail": team["mail"],
                          "description": ""}}
        added = api.post(f"/RbacRoles/{made.json()['id']}/selectedItems", json=[entry], lenient=version == "v6")
        assert added.status_code == status, added.text
