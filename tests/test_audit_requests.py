"""Name resolution stays cheap: counted requests against a 100,000-user organization."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import API_SECRET, ProjectDir

ORG = "org1.onmicrosoft.com"


@pytest.fixture(scope="module")
def big_seed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from vboplan.emulator import generate_tenant

    data = generate_tenant(1, 100_000, 200)
    data["credentials"] = [{"username": "admin", "password": API_SECRET}]
    path = tmp_path_factory.mktemp("seed") / "emulator" / "big.json"
    path.parent.mkdir()
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.fixture
def big(project: ProjectDir, big_seed: Path) -> ProjectDir:
    config = (project.root / "vboplan.yaml").read_text().replace("emulator:dev", "emulator:big", 1)
    project.write("vboplan.yaml", config)
    (project.root / "emulator").mkdir(exist_ok=True)
    (project.root / "emulator" / "big.json").write_bytes(big_seed.read_bytes())
    for template in ("audit", "jobs"):
        (project.root / "templates" / f"{template}.yaml.j2").unlink()
    return project


def _declare(project: ProjectDir, users: list[str]) -> None:
    project.write("templates/items.yaml.j2", "audit_items:\n  " + ORG + ":\n    users: {{ users | tojson }}\n")
    project.write("environments/dev.yaml", f"users: {json.dumps(users)}\n")


def _lookups(project: ProjectDir) -> dict[str, int]:
    stats = project.emulator("big").stats
    return {key: count for key, count in stats.items() if key.endswith(("/Users", "/Groups"))}


def _plan(project: ProjectDir) -> dict:
    project.emulator("big").stats.reset()
    result = project.run("plan", "--env", "dev", "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_converged_plan_makes_no_lookups(big: ProjectDir) -> None:
    names = [f"user{i:05d}@{ORG}" for i in range(1, 101)]
    _declare(big, names)
    assert big.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
    plan = _plan(big)
    assert plan["changes"] == []
    assert _lookups(big) == {}
    assert big.emulator("big").stats.total() <= 4  # token, organizations, audit items (+ logout)


def test_five_new_names_cost_a_handful(big: ProjectDir) -> None:
    _declare(big, [f"user{i:05d}@{ORG}" for i in (7, 70, 700, 7000, 70000)])
    plan = _plan(big)
    assert len(plan["changes"]) == 5
    assert sum(_lookups(big).values()) == 5  # one filtered lookup per e-mail
    assert big.emulator("big").stats.total() <= 10


def test_display_names_resolve_too(big: ProjectDir) -> None:
    http = big.api("big")
    org = http.get("/v8/Organizations").json()["results"][0]
    people = http.get(f"/v8/Organizations/{org['id']}/Users", params={"limit": 3, "offset": 500}).json()["results"]
    _declare(big, [p["displayName"] for p in people])
    plan = _plan(big)
    assert sorted(c["detail"]["principal"]["id"] for c in plan["changes"]) == sorted(p["id"] for p in people)
    assert sum(_lookups(big).values()) == 3


def test_five_thousand_new_names_cost_no_more_than_paging(big: ProjectDir) -> None:
    _declare(big, [f"user{i:05d}@{ORG}" for i in range(1, 100_001, 20)])
    plan = _plan(big)
    assert len(plan["changes"]) == 5000
    pages = -(-100_000 // 10_000)  # the directory in pages of 10,000, the API's largest
    assert sum(_lookups(big).values()) <= pages + 1
