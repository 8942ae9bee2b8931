"""Irregular collections: a create sent under its parent (the path's placeholder filled from the object's
reference, then moved by a ``PlacesCreate`` hook) and fields read elsewhere (a ``ReadsMore`` hook), as v6/v7 jobs
need: created under ``/Organizations/{organizationId}/Jobs``, which alone says which organization a job has."""

from __future__ import annotations

import json
from typing import Any

from conftest import SEED, ProjectDir

from vboplan.api.rest import Operation
from vboplan.kinds.hooks import PlacesCreate, ReadsMore
from vboplan.kinds.registry import registered_collection
from vboplan.kinds.spec import Api, CollectionSpec, Reference

ORG = "contoso.onmicrosoft.com"


class UnderOrganization:
    """Notes are listed at /ThrowawayNotes without their organization; /Organizations/{id}/ThrowawayNotes lists an
    organization's notes and is where one is created, the organization named only by the path."""

    def more(self, client: Any, version: str, item: dict[str, Any]) -> dict[str, Any]:
        for org in client.organizations():
            listed = client.get(f"Organizations/{org['id']}/ThrowawayNotes")["results"]
            if any(note["id"] == item["id"] for note in listed):
                return {"organizationId": org["id"]}
        return {}

    def place(self, version: str, path: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return path, {k: v for k, v in body.items() if k != "organizationId"}


NOTES = CollectionSpec(
    key="throwaway_notes", key_field="hostName",
    versions={"v8": Api(list=Operation("GET", "ThrowawayNotes", (200,), True), request="RESTProxy",
                        response="RESTProxy", get=Operation("GET", "ThrowawayNotes/{noteId}"),
                        create=Operation("POST", "Organizations/{organizationId}/ThrowawayNotes", (201,)),
                        update=Operation("PUT", "ThrowawayNotes/{noteId}", (204,)),
                        delete=Operation("DELETE", "ThrowawayNotes/{noteId}", (204,)))},
    references=(Reference("organizationId", "organizations"),), hooks=UnderOrganization())


def test_a_create_under_its_parent_and_fields_read_elsewhere(project: ProjectDir) -> None:
    assert isinstance(NOTES.hooks, ReadsMore) and isinstance(NOTES.hooks, PlacesCreate)
    for path in (project.root / "templates").glob("*"):
        path.unlink()
    project.seed("dev", SEED)
    with registered_collection(NOTES):
        project.write("templates/notes.yaml.j2", f"throwaway_notes:\n  n1: {{description: one, organization: {ORG}}}\n")
        planned = project.run("plan", "--env", "dev", "--format", "json")
        assert planned.exit_code == 0, planned.output
        rows = {c["address"]: c["after"] for c in json.loads(planned.stdout)["plans"][0]["changes"]}
        assert rows == {'throwaway_notes["n1"]': {"description": "one", "organization": f'organizations["{ORG}"]'}}
        applied = project.run("apply", "--env", "dev", "--auto-approve")
        assert applied.exit_code == 0, applied.output
        api = project.api("dev")
        org_id = next(o["id"] for o in api.get("/v8/Organizations").json()["results"] if o["name"] == ORG)
        under = api.get(f"/v8/Organizations/{org_id}/ThrowawayNotes").json()["results"]
        assert [n["hostName"] for n in under] == ["n1"]
        again = project.run("plan", "--env", "dev", "--detailed-exitcode")
        assert again.exit_code == 0, again.output


class UnderPool:
    """Notes created under /ProxyPools/{proxyPoolId}/ThrowawayNotes, which alone says which pool a note has."""

    def more(self, client: Any, version: str, item: dict[str, Any]) -> dict[str, Any]:
        for pool in client.get("ProxyPools")["results"]:
            if any(n["id"] == item["id"] for n in client.get(f"ProxyPools/{pool['id']}/ThrowawayNotes")["results"]):
                return {"proxyPoolId": pool["id"]}
        return {}


POOL_NOTES = CollectionSpec(
    key="throwaway_pool_notes", key_field="hostName",
    versions={"v8": Api(list=Operation("GET", "ThrowawayNotes", (200,), True), request="RESTProxy",
                        response="RESTProxy", get=Operation("GET", "ThrowawayNotes/{noteId}"),
                        create=Operation("POST", "ProxyPools/{proxyPoolId}/ThrowawayNotes", (201,)),
                        update=Operation("PUT", "ThrowawayNotes/{noteId}", (204,)),
                        delete=Operation("DELETE", "ThrowawayNotes/{noteId}", (204,)))},
    references=(Reference("proxyPoolId", "proxy_pools"),), hooks=UnderPool())


def test_a_create_under_a_parent_the_same_apply_creates(project: ProjectDir) -> None:
    """The parent's id is the server's to assign: the path shows (known after apply), and apply sends the create
    under the id the parent's POST answered with."""
    for path in (project.root / "templates").glob("*"):
        path.unlink()
    project.seed("dev", {**SEED, "proxies": [{"hostName": "proxy01.contoso.local", "port": 9193}]})
    with registered_collection(POOL_NOTES):
        project.write("templates/notes.yaml.j2", "proxy_pools:\n  EU pool: {proxies: [proxy01.contoso.local]}\n"
                      "throwaway_pool_notes:\n  n1: {description: one, proxyPool: EU pool}\n")
        planfile = project.root / "plan.json"
        assert project.run("plan", "--env", "dev", "--out", str(planfile)).exit_code == 0
        shown = project.run("show", "--requests", "--format", "json", str(planfile))
        requests = json.loads(shown.stdout)["plans"][0]["requests"]
        assert [(r["method"], r["path"]) for r in requests] == [
            ("POST", "/v8/ProxyPools"), ("POST", "/v8/ProxyPools/(known after apply)/ThrowawayNotes")], requests
        applied = project.run("apply", str(planfile))
        assert applied.exit_code == 0, applied.output
        api = project.api("dev")
        [pool] = api.get("/v8/ProxyPools").json()["results"]
        assert [n["hostName"] for n in api.get(f"/v8/ProxyPools/{pool['id']}/ThrowawayNotes").json()["results"]] == \
            ["n1"]
        again = project.run("plan", "--env", "dev", "--detailed-exitcode")
        assert again.exit_code == 0, again.output
