"""The emulator keeps the encoded answer of an audit list and serves it again: over real HTTP, a write to that
list (through the server, or by another server process sharing the data file) is seen by the very next list."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import API_SECRET, SEED

from vboplan.emulator import start
from vboplan.emulator.app import Emulator
from vboplan.emulator.store import Store

ORG = "contoso.onmicrosoft.com"


class Api:
    """A logged-in httpx client of one emulated server and version."""

    def __init__(self, url: str, version: str) -> None:
        self.http = httpx.Client(base_url=f"{url}/{version}", timeout=30)
        token = self.http.post("/token", data={"grant_type": "password", "username": "admin",
                                               "password": API_SECRET}).json()["access_token"]
        self.http.headers["Authorization"] = f"Bearer {token}"
        orgs = self.http.get("/Organizations").json()
        orgs = orgs["results"] if isinstance(orgs, dict) else orgs
        self.org = next(org["id"] for org in orgs if org["name"] == ORG)
        users = self.http.get(f"/Organizations/{self.org}/Users", params={"limit": 100}).json()["results"]
        self.users = {user["name"]: user["id"] for user in users}

    def audited(self) -> list[str]:
        answer = self.http.get(f"/Organizations/{self.org}/AuditItems")
        assert answer.status_code == 200, answer.text
        return sorted(item["user"]["name"] for item in answer.json())

    def items(self) -> dict[str, str]:
        return {item["user"]["name"]: item["id"] for item in self.http.get(f"/Organizations/{self.org}/AuditItems")
                .json()}

    def add(self, *names: str) -> None:
        answer = self.http.post(f"/Organizations/{self.org}/AuditItems",
                                json=[{"type": "User", "user": {"id": self.users[name]}} for name in names])
        assert answer.status_code < 300, answer.text

    def remove(self, version: str, *names: str) -> None:
        ids = [self.items()[name] for name in names]
        if version == "v5":
            answer = self.http.post(f"/Organizations/{self.org}/AuditItems/action", json={"remove": {"itemIds": ids}})
        else:
            answer = self.http.post(f"/Organizations/{self.org}/AuditItems/remove", json={"itemIds": ids})
        assert answer.status_code < 300, answer.text


@pytest.mark.parametrize("profile,version", [("vb365-8", "v8"), ("vbo5", "v5")])
def test_a_write_is_seen_by_the_next_list(profile: str, version: str) -> None:
    emulator = Emulator(Store.from_data(copy.deepcopy(SEED)), profile=profile)
    with start(emulator) as server:
        api = Api(server.url, version)
        assert api.audited() == []
        api.add("jane@contoso.com", "ceo@contoso.com")
        first = api.audited()
        assert first == ["ceo@contoso.com", "jane@contoso.com"]
        assert emulator._lists._bytes > 0  # the answer is kept...
        assert api.audited() == first  # ...and served again while nothing is written
        api.add("cfo@contoso.com")
        assert api.audited() == ["ceo@contoso.com", "cfo@contoso.com", "jane@contoso.com"]
        api.remove(version, "jane@contoso.com")
        assert api.audited() == ["ceo@contoso.com", "cfo@contoso.com"]
        api.add("jane@contoso.com")
        api.remove(version, "ceo@contoso.com")  # one added, one removed: the same length as before
        assert api.audited() == ["cfo@contoso.com", "jane@contoso.com"]


def test_a_write_by_another_server_on_the_same_data_file_is_seen_by_the_next_list(tmp_path: Path) -> None:
    data = tmp_path / "emulator" / "vbo.json"  # a server's own data (it holds the API login it checks)
    seeded: dict[str, Any] = copy.deepcopy(SEED)
    with start(Emulator(Store.open(data, seeded))) as one:
        first = Api(one.url, "v8")
        first.add("jane@contoso.com")  # the data file is written
        with start(Emulator(Store.open(data))) as other:
            second = Api(other.url, "v8")
            assert first.audited() == second.audited() == ["jane@contoso.com"]
            second.add("ceo@contoso.com")  # through the other server: the change log
            assert first.audited() == ["ceo@contoso.com", "jane@contoso.com"]
            second.remove("v8", "jane@contoso.com")
            assert first.audited() == ["ceo@contoso.com"]
            first.add("cfo@contoso.com")
            assert second.audited() == ["ceo@contoso.com", "cfo@contoso.com"]


def test_an_unknown_organization_is_still_404_and_lists_are_kept_per_organization() -> None:
    emulator = Emulator(Store.from_data(copy.deepcopy(SEED)))
    with start(emulator) as server:
        api = Api(server.url, "v8")
        api.add("jane@contoso.com")
        assert api.audited() == ["jane@contoso.com"]
        orgs = api.http.get("/Organizations").json()
        other = next(org["id"] for org in (orgs["results"] if isinstance(orgs, dict) else orgs) if org["name"] != ORG)
        assert api.http.get(f"/Organizations/{other}/AuditItems").json() == []
        missing = api.http.get("/Organizations/00000000-0000-0000-0000-000000000001/AuditItems")
        assert missing.status_code == 404
