"""What the plan says of a whole object the state and the server disagree on: one forgotten with 'state rm' (on the
server, not in the state: an object vboplan adopts, as import does, or deletes where no template declares it) and
one deleted in the console, in the table, Markdown, HTML and JSON, and a refresh-only apply that records it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import SEED, ProjectDir

POOLS = """\
proxy_pools:
  EU pool: {description: EU proxies, proxies: [proxy01.contoso.local]}
"""
POOL = 'proxy_pools["EU pool"]'


@pytest.fixture
def pools(project: ProjectDir) -> ProjectDir:
    for path in (project.root / "templates").glob("*"):
        path.unlink()
    project.seed("dev", {**SEED, "proxies": [{"hostName": "proxy01.contoso.local", "port": 9193, "description": ""}]})
    project.write("templates/pools.yaml.j2", POOLS)
    applied = project.run("apply", "--env", "dev", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    return project


def _plan(project: ProjectDir, *args: str) -> dict[str, Any]:
    result = project.run("plan", "--env", "dev", "--format", "json", *args)
    assert result.exit_code in (0, 2), result.output
    return json.loads(result.stdout)["plans"][0]  # type: ignore[no-any-return]


def test_an_object_forgotten_with_state_rm_is_one_to_adopt_not_absent_to_present(pools: ProjectDir) -> None:
    assert pools.run("state", "rm", "--env", "dev", POOL).exit_code == 0
    table = pools.run("plan", "--env", "dev", "--detailed-exitcode")
    assert table.exit_code == 0, table.output  # the server holds it as declared: nothing to write
    assert "absent" not in table.stdout and "present" not in table.stdout, table.stdout
    assert (f"{POOL}: on the server but not in the state (forgotten with 'vboplan state rm', or made outside "
            "vboplan): a template declares it, so vboplan manages it from now on") in table.stdout, table.stdout
    assert [d for d in _plan(pools)["changed_outside"] if d["address"] == POOL] == [
        {"address": POOL, "recorded": None, "live": None, "status": "not in state"}]
    for fmt in ("markdown", "html"):
        shown = pools.run("plan", "--env", "dev", "--format", fmt).stdout
        assert "on the server but not in the state" in shown and "absent" not in shown, shown

    # Recorded by a refresh-only plan's apply: the next plan says nothing more of it.
    saved = str(pools.root / "refresh.json")
    assert pools.run("plan", "--env", "dev", "--refresh-only", "--out", saved).exit_code == 0
    assert pools.run("apply", saved).exit_code == 0
    again = pools.run("plan", "--env", "dev", "--detailed-exitcode")
    assert again.exit_code == 0 and "Changed outside" not in again.stdout, again.output


def test_an_object_forgotten_and_in_no_template_is_planned_for_deletion_and_said_so(pools: ProjectDir) -> None:
    assert pools.run("state", "rm", "--env", "dev", POOL).exit_code == 0
    pools.write("templates/pools.yaml.j2", "proxy_pools: {}\n")
    table = pools.run("plan", "--env", "dev").stdout
    assert f"{POOL}: on the server but not in the state" in table and "so this plan deletes it" in table, table
    assert [c["action"] for c in _plan(pools)["changes"] if c["address"] == POOL] == ["delete"]


def test_an_object_deleted_in_the_console_is_said_deleted_and_created_again(pools: ProjectDir) -> None:
    api = pools.api("dev")
    body = api.get("/v8/ProxyPools").json()
    pool = next(p for p in (body["results"] if isinstance(body, dict) else body) if p["name"] == "EU pool")
    assert api.delete(f"/v8/ProxyPools/{pool['id']}").status_code in (200, 204)
    table = pools.run("plan", "--env", "dev").stdout
    assert (f"{POOL}: deleted outside vboplan (the state records it, the server no longer holds it); this plan "
            "creates it again") in table, table
    assert [d["status"] for d in _plan(pools)["changed_outside"] if d["address"] == POOL] == ["deleted"]
