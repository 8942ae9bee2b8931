"""A page of users is written from a template (vboplan/emulator/templates.py): each entry must be, byte for byte, what
``GET .../Users/{id}`` answers for that user, which builds the view itself, for every version and for users the
template must leave to the view (escapes, other key orders, values that are not strings, ids of other forms)."""

from __future__ import annotations

import json

import pytest

from vboplan.emulator import Emulator, Store

from .helpers import ADMIN, VERSIONS, Api, wsgi_client

PLAIN = [{"displayName": f"Plain User {i}", "name": f"user{i}@contoso.com"} for i in range(40)]
AWKWARD = [
    {"displayName": 'Quote "Q" Person', "name": "quote@contoso.com"},
    {"displayName": "Back\\slash", "name": "slash@contoso.com"},
    {"displayName": "Tab\tbed", "name": "tab@contoso.com"},
    {"displayName": "Zoë Ünïcødé 東京", "name": "zoe@contoso.com"},
    {"displayName": "Percent %s %d 100%", "name": "percent%@contoso.com"},
    {"name": "namefirst@contoso.com", "displayName": "Name First"},  # another key order
    {"displayName": "Hybrid Harry", "name": "harry@contoso.com", "locationType": "Hybrid", "office": "Building 7",
     "onPremisesSid": "S-1-5-21-1004336348-1177238915-682003330-512"},
    {"displayName": "Licensed", "name": "licensed@contoso.com", "assignedLicenses": []},
    {"displayName": "Given Ids", "name": "given@contoso.com", "id": "abc", "msid": "5e7d1c2a-0000-4000-8000-1"},
    {"displayName": "Colon Id", "name": "colon@contoso.com", "id": "x:y:z", "msid": "5e7d1c2a-0000-4000-8000-2"},
    {"displayName": "Only Display"},
]


def _entries(page: bytes) -> list[bytes]:
    """The page's results, each as the bytes it was sent as (split where one entry's object closes)."""
    results = page[page.index(b'"results":[') + len(b'"results":['):]
    out, depth, start, in_string, escaped = [], 0, 0, False, False
    for at, byte in enumerate(results):
        char = chr(byte)
        if in_string:
            in_string = not (char == '"' and not escaped)
            escaped = char == "\\" and not escaped
        elif char == '"':
            in_string = True
        elif char == "{":
            depth, start = depth + 1, start if depth else at
        elif char == "}":
            depth -= 1
            if not depth:
                out.append(results[start:at + 1])
        elif char == "]" and not depth:
            break
    return out


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("users", [PLAIN, PLAIN[:20] + AWKWARD + PLAIN[20:]], ids=["plain", "mixed"])
def test_a_page_holds_each_users_own_answer(version: str, users: list[dict]) -> None:
    data = {"credentials": [dict(ADMIN)], "organizations": [{"name": "contoso.onmicrosoft.com", "users": users}]}
    with wsgi_client(Emulator(Store.from_data(data), versions=VERSIONS)) as client:
        api = Api(client, version).login()
        org_id = api.org_id()
        page = api.get(f"/Organizations/{org_id}/Users", params={"limit": 1000})
        assert page.status_code == 200
        entries = _entries(page.content)
        assert [json.loads(entry) for entry in entries] == page.json()["results"]
        assert len(entries) == len(users)
        for entry, user in zip(entries, users, strict=True):
            assert json.loads(entry).get("name") == user.get("name")
            own = api.get(f"/Organizations/{org_id}/Users/{json.loads(entry)['id']}")
            assert own.status_code == 200 and own.content == entry
        again = api.get(f"/Organizations/{org_id}/Users", params={"limit": 1000})  # from the kept entries
        assert again.content == page.content
