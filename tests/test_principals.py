"""The directory machinery audit items, backup jobs and restore-operator roles share: names to principals and back,
against the emulator over HTTP (its WSGI app), per version."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from conftest import API_SECRET

from vboplan.api.client import VboClient
from vboplan.emulator import Emulator, Store
from vboplan.errors import ProjectError
from vboplan.kinds import principals
from vboplan.project.config import Environment

ORG = "contoso.onmicrosoft.com"
SEED = {
    "credentials": [{"username": "admin", "password": API_SECRET}],
    "organizations": [{
        "name": ORG,
        "users": [{"displayName": "Jane Doe", "name": "jane@contoso.com"},
                  {"displayName": "Alex Twin", "name": "alex1@contoso.com"},
                  {"displayName": "Alex Twin", "name": "alex2@contoso.com"}],
        "groups": [{"displayName": "HR Department", "name": "hr@contoso.com"}],
        "sites": [{"url": "https://contoso.sharepoint.com/sites/hr", "title": "HR"},
                  {"url": "https://contoso.sharepoint.com/sites/finance", "title": "Finance"}],
        "teams": [{"displayName": "Finance", "mail": "finance-team@contoso.com"}],
    }],
}


@pytest.fixture(params=["v6", "v7", "v8"])
def client(request: pytest.FixtureRequest) -> Iterator[VboClient]:
    version = request.param
    emulator = Emulator(Store.from_data(SEED), versions=["v6", "v7", "v8"])
    env = Environment(name="t", server="emulator:t", api_version=version)
    with VboClient(env.connection, "admin", API_SECRET, transport=httpx.WSGITransport(app=emulator),
                   base_url=f"http://vbo.invalid/{version}/") as vbo:
        yield vbo


def _org(client: VboClient) -> dict[str, object]:
    return next(o for o in client.organizations() if o["name"] == ORG)


def test_each_kind_resolves_by_its_names_and_back_by_id(client: VboClient) -> None:
    org = _org(client)
    users = principals.resolve(client, org, "User", ["jane@contoso.com", "Jane Doe"])
    assert users["jane@contoso.com"] == users["Jane Doe"]
    assert principals.describe(users["Jane Doe"]) == "Jane Doe <jane@contoso.com>"
    group = principals.resolve(client, org, "Group", ["HR Department"])["HR Department"]
    site = principals.resolve(client, org, "Site", ["https://contoso.sharepoint.com/sites/HR/"])
    team = principals.resolve(client, org, "Team", ["Finance"])["Finance"]
    assert site["https://contoso.sharepoint.com/sites/HR/"]["title"] == "HR"
    assert principals.key(site["https://contoso.sharepoint.com/sites/HR/"]) == "https://contoso.sharepoint.com/sites/hr"
    assert team["mail"] == "finance-team@contoso.com"
    if client.version != "v6":  # from v7 on a user's and a group's id names its organization
        assert str(org["id"]) in users["Jane Doe"]["id"] and str(org["id"]) in group["id"]
    # a walk of the directory finds the same principals as the filtered lookups
    assert principals.walk_directory(client, org, "User", ["Jane Doe"]) == {"Jane Doe": users["Jane Doe"]}
    for kind, found in (("User", users["Jane Doe"]), ("Group", group), ("Team", team)):
        assert principals.by_ids(client, str(org["id"]), kind, [found["id"], "no-such-id"]) == {found["id"]: found}


def test_unknown_name_names_the_file_and_similar_principals(client: VboClient) -> None:
    with pytest.raises(ProjectError) as caught:
        principals.resolve(client, _org(client), "User", ["Jane Do"], where="templates/roles.yaml.j2:4")
    message = str(caught.value)
    assert message.startswith("templates/roles.yaml.j2:4: organization 'contoso.onmicrosoft.com': no user named "
                              "'Jane Do'; did you mean 'Jane Doe <jane@contoso.com>'?")
    with pytest.raises(ProjectError, match="no site named 'https://contoso.sharepoint.com/sites/payroll'"):
        principals.resolve(client, _org(client), "Site", ["https://contoso.sharepoint.com/sites/payroll"])


def test_ambiguous_name_lists_each_match(client: VboClient) -> None:
    with pytest.raises(ProjectError, match="'Alex Twin' matches 2 users: .*alex1@contoso.com.*alex2@contoso.com"):
        principals.resolve(client, _org(client), "User", ["Alex Twin"], where="t.yaml.j2:1")


AWKWARD = [{"displayName": "ΟΔΥΣΣΕΥΣ Σ", "name": "odysseus@contoso.com"},  # final sigmas lower-case apart
           {"displayName": "İlkay Şahin", "name": "ilkay@contoso.com"},  # İ lower-cases to two characters
           {"displayName": "Same@Contoso.com", "name": "same@contoso.com"},  # both names one label
           {"displayName": "Line\nBreak", "name": "line@contoso.com"},
           {"name": "nodisplay@contoso.com"}]


def test_a_walk_finds_what_the_lookups_find(client: VboClient) -> None:
    """The walk searches a page's names all at once (lower-cased joined): it must agree with the server's own
    filters, name by name, on names whose lower case is not letter by letter."""
    seed = {**SEED, "organizations": [{**SEED["organizations"][0], "users": SEED["organizations"][0]["users"] + AWKWARD}]}
    emulator = Emulator(Store.from_data(seed), versions=[client.version])
    env = Environment(name="t", server="emulator:t", api_version=client.version)
    names = ["ΟΔΥΣΣΕΥΣ Σ", "οδυσσευσ σ".upper(), "İlkay Şahin", "same@CONTOSO.com", "Line\nBreak", "NoDisplay@contoso.com",
             "JANE DOE", "alex1@contoso.com"]
    with VboClient(env.connection, "admin", API_SECRET, transport=httpx.WSGITransport(app=emulator),
                   base_url=f"http://vbo.invalid/{client.version}/") as vbo:
        org = _org(vbo)
        walked = principals.walk_directory(vbo, org, "User", names)
        assert walked == principals.look_up_each(vbo, org, "User", names)
        assert {found["name"] for found in walked.values()} == {
            "odysseus@contoso.com", "ilkay@contoso.com", "same@contoso.com", "line@contoso.com",
            "nodisplay@contoso.com", "jane@contoso.com", "alex1@contoso.com"}
        with pytest.raises(ProjectError, match="'Alex Twin' matches 2 users"):
            principals.walk_directory(vbo, org, "User", ["Alex Twin"])
