"""Name resolution stays cheap: counted requests against a 20,500-user organization (three pages of the directory;
benchmarks/names.py times 100,000)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import API_SECRET, ProjectDir

ORG = "org1.onmicrosoft.com"
USERS = 20_500  # above PAGE_THRESHOLD names the directory is read in pages of 10,000: three here, the last short


@pytest.fixture(scope="module")
def big_seed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from vboplan.emulator import generate_tenant

    data = generate_tenant(1, USERS, 200)
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
    return json.loads(result.stdout)["plans"][0]


def test_converged_plan_makes_no_lookups(big: ProjectDir) -> None:
    names = [f"user{i:05d}@{ORG}" for i in range(1, 101)]
    _declare(big, names)
    assert big.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
    plan = _plan(big)
    assert plan["changes"] == []
    assert _lookups(big) == {}
    assert big.emulator("big").stats.total() <= 4  # token, organizations, audit items (+ logout)


def test_five_new_names_cost_a_handful(big: ProjectDir) -> None:
    _declare(big, [f"user{i:05d}@{ORG}" for i in (7, 70, 700, 7000, USERS - 1)])
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


def test_many_new_names_cost_no_more_than_paging(big: ProjectDir) -> None:
    from vboplan.kinds.principals import PAGE_THRESHOLD

    names = [f"user{i:05d}@{ORG}" for i in range(1, USERS + 1, 20)]
    assert len(names) > 2 * PAGE_THRESHOLD  # one filtered lookup each would be over a thousand requests
    _declare(big, names)
    plan = _plan(big)
    assert len(plan["changes"]) == len(names)
    pages = -(-USERS // 10_000)  # the directory in pages of 10,000, the API's largest
    # v8 pages carry no total, so up to max_in_flight (8) pages are asked for ahead of the end before it shows
    assert pages <= sum(_lookups(big).values()) <= pages + 8


def test_apply_of_a_saved_plan_never_searches_the_directory(big: ProjectDir) -> None:
    # 100 new names: the plan resolves them against the directory; the apply checks and reads back only the
    # audit items of the organization it names, by id, and asks for each new principal by id (the plan file's
    # recorded directory answer is its author's to edit: the server confirms whom each id names).
    names = [f"user{i:05d}@{ORG}" for i in range(1, USERS + 1, USERS // 100)]
    _declare(big, names)
    saved = str(big.root / "plan.json")
    planned = big.run("plan", "--env", "dev", "--out", saved)
    assert planned.exit_code == 0, planned.output
    assert _lookups(big)  # resolving 100 new names did read the directory
    big.emulator("big").stats.reset()
    applied = big.run("apply", saved)
    assert applied.exit_code == 0, applied.output
    assert "100 applied" in applied.output
    stats = dict(big.emulator("big").stats)
    assert _lookups(big) == {}
    assert not any(key.endswith("/Organizations") for key in stats), stats
    items = [key for key in stats if key.endswith("/AuditItems")]
    # One POST of the 100 adds; GETs: the stale check and the read-back (nothing asks for the new items' ids)
    assert stats == {"POST /v8/token": 1, **{key: stats[key] for key in items}, "POST /v8/token/logout": 1,
                     "GET /v8/Organizations/{organizationId}/Users/{userId}": 100}, stats
    assert sorted(stats[key] for key in items) == [1, 2]
    held = big.api("big").get(f"/v8/Organizations/{_org_id(big)}/AuditItems").json()
    assert sorted(item["user"]["name"] for item in held) == sorted(names)


def test_stale_check_still_sees_a_change_to_the_audit_items(big: ProjectDir) -> None:
    _declare(big, [f"user{i:05d}@{ORG}" for i in (11, 12)])
    saved = str(big.root / "plan.json")
    assert big.run("plan", "--env", "dev", "--out", saved).exit_code == 0
    # Someone adds an audit item by hand after the plan was made.
    http = big.api("big")
    org_id = _org_id(big)
    someone = http.get(f"/v8/Organizations/{org_id}/Users", params={"userName": f"user00013@{ORG}"}).json()
    http.post(f"/v8/Organizations/{org_id}/AuditItems", json=[{"type": "User", "user": someone["results"][0]}])
    big.emulator("big").stats.reset()
    applied = big.run("apply", saved)
    assert applied.exit_code == 1
    assert "stale" in applied.output
    assert _lookups(big) == {}
    held = http.get(f"/v8/Organizations/{org_id}/AuditItems").json()
    assert [item["user"]["name"] for item in held] == [f"user00013@{ORG}"]


def _org_id(project: ProjectDir) -> str:
    return project.api("big").get("/v8/Organizations").json()["results"][0]["id"]


def test_a_plan_keeps_a_count_and_digest_of_many_audit_items_and_still_sees_them_change(
        project: ProjectDir) -> None:
    from vboplan.emulator import generate_tenant
    from vboplan.kinds.audit_items import KEEP_ITEMS_UP_TO

    data = generate_tenant(1, 2_000, 10)
    data["credentials"] = [{"username": "admin", "password": API_SECRET}]
    audited = [user["name"] for user in data["organizations"][0]["users"][:KEEP_ITEMS_UP_TO + 200]]
    data["organizations"][0]["audit_items"] = [{"user": name} for name in audited]
    (project.root / "emulator").mkdir(exist_ok=True)
    (project.root / "emulator" / "many.json").write_text(json.dumps(data), encoding="utf-8")
    project.write("vboplan.yaml", (project.root / "vboplan.yaml").read_text().replace("emulator:dev",
                                                                                      "emulator:many", 1))
    for template in ("audit", "jobs"):
        (project.root / "templates" / f"{template}.yaml.j2").unlink()
    one_more = data["organizations"][0]["users"][-1]["name"]
    _declare(project, [*audited, one_more])
    saved = project.root / "plan.json"
    assert project.run("plan", "--env", "dev", "--out", str(saved)).exit_code == 0
    kept = json.loads(saved.read_text())["live"]["audit_items"]["organizations"][ORG]
    assert "items" not in kept and kept["item_count"] == len(audited)
    assert kept["items_sha256"].startswith("sha256:") and len(kept["items_sha256"]) == 7 + 64
    assert audited[0] not in json.dumps(kept)  # the items are not copied into the plan file

    # Someone removes an audit item by hand: the count and digest no longer match, and the apply says so.
    http = project.api("many")
    org_id = http.get("/v8/Organizations").json()["results"][0]["id"]
    first = http.get(f"/v8/Organizations/{org_id}/AuditItems").json()[0]
    http.post(f"/v8/Organizations/{org_id}/AuditItems/remove", json={"itemIds": [first["id"]]})
    stale = project.run("apply", str(saved))
    assert stale.exit_code == 1 and "stale" in stale.output
    assert f".item_count: planned against {len(audited)}, now {len(audited) - 1}" in stale.output, stale.output

    # Planned again, it applies: the one new name, and the one removed by hand back.
    assert project.run("plan", "--env", "dev", "--out", str(saved), "--force").exit_code == 0
    applied = project.run("apply", str(saved))
    assert applied.exit_code == 0, applied.output
    names = {item["user"]["name"] for item in http.get(f"/v8/Organizations/{org_id}/AuditItems").json()}
    assert names == {*audited, one_more}


def test_the_digest_a_plan_keeps_of_many_audit_items_tells_any_two_lists_apart() -> None:
    """What a plan file keeps of a large organization's items instead of the items: equal for the same items
    (whatever the order of their keys), different for any field changed, a field's text moved into the next field,
    two items swapped, or a name only a lone surrogate tells apart (encoded another way)."""
    from vboplan.kinds.audit_items import _items_digest

    def item(n: int, name: str = "", display: str = "") -> dict[str, str]:
        return {"id": f"i{n}", "type": "User", "principalId": f"p{n}", "name": name or f"u{n}@x.com",
                "displayName": display or f"User {n}"}

    items = [item(n) for n in range(2_500)]
    digest = _items_digest(items)
    assert digest.startswith("sha256:") and len(digest) == 7 + 64
    assert _items_digest([dict(reversed(list(i.items()))) for i in items]) == digest
    variants = [
        [*items[:1_700], item(1_700, name="other@x.com"), *items[1_701:]],
        [*items[:-1], {**items[-1], "name": items[-1]["name"] + items[-1]["displayName"][:1],
                       "displayName": items[-1]["displayName"][1:]}],
        [items[1], items[0], *items[2:]],
        [*items[:-1], item(2_499, name="u\ud800@x.com")],
        [*items[:-1], item(2_499, name="u\ufffd@x.com")],
        items[:-1],
    ]
    digests = [_items_digest(v) for v in variants]
    assert digest not in digests and len(set(digests)) == len(digests)
