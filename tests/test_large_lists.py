"""Large lists read at scale: audit items decoded in batches as they arrive (msgspec) giving what json gives, and the
bound on one answer that a user raises with VBOPLAN_MAX_RESPONSE_MIB; the emulator served over real HTTP."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from conftest import API_SECRET, CONFIG, ProjectDir, Result, assert_one_clean_error

from vboplan.api.streaming import NotOfShape, batches_in_array
from vboplan.emulator import RunningServer, start
from vboplan.emulator.synth import generate_tenant
from vboplan.errors import ApiError, ProjectError
from vboplan.kinds.audit_items import ITEM_SHAPE, _item
from vboplan.project.yamlfile import parse_yaml, plain

ORG = "org1.onmicrosoft.com"
USERS = 300  # an audit-items answer of ~360 KB: more than one batch of the fast decoder
HTTP_CONFIG = CONFIG.replace("server: emulator:dev", "server: {url}").replace("{required", "{{required").replace(
    "72h}", "72h}}")


@pytest.fixture
def audited(project: ProjectDir, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[RunningServer, list[str]]]:
    """dev served over HTTP, its organization auditing every one of its users, and a template declaring them."""
    monkeypatch.delenv("VBOPLAN_MAX_RESPONSE_MIB", raising=False)
    tenant = generate_tenant(1, USERS, 3)
    names = [user["name"] for user in tenant["organizations"][0]["users"]]
    tenant["organizations"][0]["audit_items"] = [{"user": name} for name in names]
    seed = {"credentials": [{"username": "admin", "password": API_SECRET}], **tenant}
    with start(seed) as running:
        project.write("vboplan.yaml", HTTP_CONFIG.format(url=running.url))
        project.write("templates/audit_items.yaml.j2", f"audit_items:\n  {ORG}:\n    users: {{{{ users | tojson }}}}\n")
        project.write("environments/dev.yaml", f"domain: dev.contoso.com\nsmtp:\n  host: smtp.dev.local\n"
                      f"users: {json.dumps(names)}\n")
        yield running, names


def _quiet(result: Result) -> Result:
    kept = "".join(line for line in result.stderr.splitlines(keepends=True) if "uses plain http" not in line)
    return Result(result.exit_code, result.stdout, kept)


def test_a_converged_organization_plans_no_change_over_http(project: ProjectDir, audited: Any) -> None:
    result = project.run("plan", "--env", "dev", "--format", "json", "--target", "audit_items")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["plans"][0]["changes"] == []
    # One name dropped from the template: exactly its removal, so the fast decoder kept every item's names.
    _, names = audited
    project.write("environments/dev.yaml", "domain: dev.contoso.com\nsmtp:\n  host: smtp.dev.local\n"
                  f"users: {json.dumps(names[:150] + names[151:])}\n")
    result = project.run("plan", "--env", "dev", "--format", "json", "--target", "audit_items")
    assert result.exit_code == 0, result.output
    assert [(c["action"], c["address"]) for c in json.loads(result.stdout)["plans"][0]["changes"]] == \
        [("delete", f'audit_items["{ORG}"].user["{names[150]}"]')]


def test_the_answer_bound_names_how_to_raise_it(project: ProjectDir, audited: Any,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VBOPLAN_MAX_RESPONSE_MIB", "0.1")  # the answer is ~0.35 MiB
    result = _quiet(project.run("plan", "--env", "dev", "--target", "audit_items"))
    assert_one_clean_error(result, "environment 'dev'", "/AuditItems answered with more than 0.1 MiB",
                           "VBOPLAN_MAX_RESPONSE_MIB=")
    monkeypatch.setenv("VBOPLAN_MAX_RESPONSE_MIB", "1")
    result = project.run("plan", "--env", "dev", "--target", "audit_items")
    assert result.exit_code == 0, result.output
    assert "No changes" in result.stdout
    monkeypatch.setenv("VBOPLAN_MAX_RESPONSE_MIB", "lots")
    assert_one_clean_error(_quiet(project.run("plan", "--env", "dev")), "VBOPLAN_MAX_RESPONSE_MIB=lots",
                           "a number of MiB above 0")


def _wire(count: int, rng: random.Random) -> list[Any]:
    """Audit items as a server might send them, odd ones included (numbers for ids, nulls, a group, '},{' in names)."""
    items: list[Any] = []
    for k in range(count):
        principal = {"id": f"p{k}", "name": f"u{k}@x.com", "displayName": "A },{ B" if k % 7 == 0 else f"U {k}",
                     "_links": {"self": {"href": f"/Users/{k}"}}, "assigned": [{"a": 1}, {"b": [2]}]}
        kind = rng.choice(["User", "Group", "group", None])
        item: dict[str, Any] = {"id": k if k % 5 == 0 else f"i{k}", "type": kind}
        item["group" if kind in ("Group", "group") else "user"] = principal if k % 11 else None
        items.append(item)
    return items


@pytest.mark.parametrize("piece", [1, 3, 4096, 1 << 20])
def test_batches_give_what_json_gives(piece: int) -> None:
    rng = random.Random(piece)
    wire = _wire(2000 if piece > 1 else 300, rng)
    body = json.dumps(wire, separators=(",", ":")).encode()
    pieces = [body[i:i + piece] for i in range(0, len(body), piece)]
    got = [item for batch in batches_in_array(pieces, ITEM_SHAPE, _item) for item in batch]
    assert got == [_item(raw) for raw in wire]
    # Not compact (spaces between elements): json's scanner reads it, to the same items.
    spaced = json.dumps(wire[:200], indent=1).encode()
    assert [i for b in batches_in_array([spaced[i:i + piece] for i in range(0, len(spaced), piece)], ITEM_SHAPE,
                                        _item) for i in b] == [_item(raw) for raw in wire[:200]]


@pytest.mark.parametrize("body", [b"", b"{}", b"[", b'[{"id":1}', b'[{"id":1}]]', b'[{"id":1},]', b"[1,]",
                                  b'[{"id":"a"}] x'])
def test_a_malformed_list_is_an_error(body: bytes) -> None:
    with pytest.raises(ValueError):
        list(batches_in_array([body], ITEM_SHAPE, _item))


@pytest.mark.parametrize("body", [b'[{"user":"x"}]', b"[1]", b'[{"user":0}]', b'[{"id":1},[2]]'])
def test_an_element_of_another_shape_is_refused_by_both_paths(body: bytes) -> None:
    with pytest.raises(NotOfShape):
        list(batches_in_array([body], ITEM_SHAPE, _item))
    with pytest.raises(NotOfShape):
        for raw in json.loads(body):
            if not isinstance(raw, dict):
                raise NotOfShape()
            _item(raw)


def test_a_json_list_in_a_template_parses_as_yaml_would() -> None:
    names = [f"user{k}@contoso.com" for k in range(3000)] + ['quote " and \\ back', "é", "<&>'"]
    text = ("audit_items:\n  contoso.onmicrosoft.com:\n"
            f"    users: {json.dumps(names)}\n    groups: [\"HR\", 7]\n"
            "notes: |\n  users: [\"not\", \"lifted\"]\nlast: 1\n")
    document = parse_yaml(text, "t.yaml")
    assert plain(document) == yaml.safe_load(text)
    assert document["audit_items"]["contoso.onmicrosoft.com"].line_of("groups") == 4
    assert document.line_of("last") == 7
    # What tojson writes for a name outside the BMP (a surrogate pair) is read as JSON reads it.
    assert parse_yaml(f"users: {json.dumps(['smile 😀'])}\n", "t.yaml")["users"] == ["smile 😀"]
    with pytest.raises(ProjectError, match=r"t.yaml:4: YAML error"):
        parse_yaml(f"a:\n  users: {json.dumps(names)}\n  b: [\n", "t.yaml")


def test_a_json_list_of_objects_in_a_template_parses_as_yaml_would() -> None:
    """What ``{{ items | tojson }}`` writes for a job's 2,000 selected items is read by the JSON parser, into the
    same values YAML builds, each object naming the line it came from; what YAML reads otherwise is left to it."""
    items = [{"mailbox": True, "user": f"user{k}@contoso.com"} for k in range(2000)] + [
        {"group": 'quote " \\ é <&>', "archive": False, "note": None, "count": 7, "nested": {"a": ["b"]}}]
    text = f"backup_jobs:\n  Mail:\n    organization: contoso\n    selectedItems: {json.dumps(items)}\nlast: 1\n"
    document = parse_yaml(text, "t.yaml")
    assert plain(document) == yaml.safe_load(text)
    selected = document["backup_jobs"]["Mail"]["selectedItems"]
    assert selected[0].where("user") == "t.yaml:4" and selected[-1]["nested"].where() == "t.yaml:4"
    assert document.line_of("last") == 5
    for odd in ('[{"user": "a", "weight": 1e3}]', '[{"user": "a", "weight": 1.5}]', '[{"n": NaN}]'):
        assert plain(parse_yaml(f"items: {odd}\n", "t.yaml")) == yaml.safe_load(f"items: {odd}\n")
    with pytest.raises(ProjectError, match=r"t.yaml:2: 'user' is given twice"):
        parse_yaml('a: 1\nitems: [{"user": "a", "user": "b"}]\n', "t.yaml")


def test_the_file_bound_names_how_to_raise_it(project: ProjectDir, monkeypatch: pytest.MonkeyPatch) -> None:
    names = [f"user{k:05d}@contoso.com" for k in range(2000)]  # a variable file of ~50 KB
    project.write("templates/audit_items.yaml.j2", "audit_items:\n  contoso.onmicrosoft.com:\n"
                  "    users: {{ users | tojson }}\n")
    project.write("environments/dev.yaml", f"domain: dev.contoso.com\nsmtp:\n  host: smtp.dev.local\n"
                  f"users: {json.dumps(names)}\n")
    monkeypatch.setenv("VBOPLAN_MAX_FILE_MIB", "0.02")
    assert_one_clean_error(project.run("validate", "--env", "dev"), "environments/dev.yaml",
                           "larger than 0.02 MiB", "VBOPLAN_MAX_FILE_MIB=0.08")
    monkeypatch.setenv("VBOPLAN_MAX_FILE_MIB", "0.2")
    result = project.run("validate", "--env", "dev")
    assert result.exit_code == 0, result.output


def test_a_data_file_holds_the_list(project: ProjectDir, audited: Any) -> None:
    _, names = audited
    project.write("data/users.csv", "name\n" + "\n".join(names) + "\n")
    project.write("environments/dev.yaml", "domain: dev.contoso.com\nsmtp:\n  host: smtp.dev.local\n"
                  "users: {data_file: data/users.csv}\n")
    result = project.run("plan", "--env", "dev", "--format", "json", "--target", "audit_items")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["plans"][0]["changes"] == []
    # The same list as JSON, one name dropped: its removal.
    project.write("data/users.json", json.dumps(names[1:], indent=1))
    project.write("environments/dev.yaml", "domain: dev.contoso.com\nsmtp:\n  host: smtp.dev.local\n"
                  "users: {data_file: data/users.json}\n")
    result = project.run("plan", "--env", "dev", "--format", "json", "--target", "audit_items")
    assert result.exit_code == 0, result.output
    assert [c["address"] for c in json.loads(result.stdout)["plans"][0]["changes"]] == \
        [f'audit_items["{ORG}"].user["{names[0]}"]']


@pytest.mark.parametrize(("path", "text", "fragments"), [
    ("data/users.csv", "name\na@x.com\nb@x.com\n\nA@X.com\n", ("data/users.csv:5:", "'A@X.com' is given twice",
                                                                "first on line 2")),
    ("data/users.csv", "name,kind\na@x.com,user\nb@x.com\n", ("data/users.csv:3:", "1 fields where the header has 2")),
    ("data/users.csv", "name\na@x.com\n  \n\"\"\n", ("data/users.csv:4:", "an empty name")),
    # One column, no quotes (read line by line, without csv): blank lines skipped, lines still counted.
    ("data/users.csv", "name\n\na@x.com\n\n\nb@x.com\n\x1f \n", ("data/users.csv:7:", "an empty name")),
    ("data/users.csv", "users\n\n b@x.com\na@x.com\n\nB@x.com \n", ("data/users.csv:6:", "'B@x.com' is given twice",
                                                                     "first on line 3")),
    ("data/users.json", '[\n "a@x.com",\n "b@x.com",\n ""\n]', ("data/users.json:4:", "an empty name")),
    ("data/users.json", '[\n "a@x.com",\n "b@x.com"\n "c"]', ("data/users.json:4:", "JSON error")),
    ("../users.csv", None, ("environments/dev.yaml:4:", "must be a path inside the project")),
    ("data/users.txt", "a\n", ("environments/dev.yaml:4:", "a data file is .csv")),
    ("data/none.csv", None, ("environments/dev.yaml:4:", "'data/none.csv' not found")),
])
def test_a_bad_data_file_names_its_line(project: ProjectDir, path: str, text: str | None,
                                        fragments: tuple[str, ...]) -> None:
    project.write("templates/audit_items.yaml.j2", "audit_items:\n  contoso.onmicrosoft.com:\n"
                  "    users: {{ users | tojson }}\n")
    if text is not None:
        project.write(path, text)
    project.write("environments/dev.yaml", "domain: dev.contoso.com\nsmtp:\n  host: smtp.dev.local\n"
                  f"users: {{data_file: {path}}}\n")
    assert_one_clean_error(project.run("validate", "--env", "dev"), *fragments)


def test_an_unpaged_collection_list_is_read_as_it_arrives(monkeypatch: pytest.MonkeyPatch) -> None:
    from vboplan.api.client import ConnectionSettings, VboClient
    from vboplan.api.rest import Operation

    monkeypatch.delenv("VBOPLAN_MAX_RESPONSE_MIB", raising=False)
    proxies = [{"hostName": f"proxy{k:03d}.contoso.local", "port": 9193, "description": "x" * 200} for k in range(60)]
    seed = {"credentials": [{"username": "admin", "password": API_SECRET}], "proxies": proxies}
    listing = Operation("GET", "Proxies", query=(("extendedView", "true"),))
    with start(seed) as running:
        settings = ConnectionSettings(name="t", server=running.url, api_version="v7")
        with VboClient(settings, "admin", API_SECRET) as vbo:
            found = vbo.list_objects(listing)
            assert sorted(p["hostName"] for p in found) == [p["hostName"] for p in proxies]
            assert found == vbo.get("Proxies", {"extendedView": "true"})
        monkeypatch.setenv("VBOPLAN_MAX_RESPONSE_MIB", "0.002")  # 2 KiB: less than the list
        with VboClient(settings, "admin", API_SECRET) as vbo, pytest.raises(ApiError) as refused:
            vbo.list_objects(listing)
        assert "GET /v7/Proxies answered with more than 0.002 MiB" in str(refused.value)
        assert "VBOPLAN_MAX_RESPONSE_MIB=" in str(refused.value)


@pytest.mark.parametrize("odd", [None, "number id", "null name", "no principal", "lower-case type", "no name"])
def test_items_of_the_usual_shape_decode_as_odd_ones_do(odd: str | None) -> None:
    """Batches of items whose fields are all strings take msgspec's strict type (one comprehension); a batch with
    one odd item in it falls back to the lenient one: both give what json and :func:`_item` give."""
    wire: list[Any] = []
    for k in range(3000):
        kind = "Group" if k % 3 == 0 else "User"
        wire.append({"id": f"i{k}", "type": kind, kind.lower(): {"id": f"p{k}", "name": f"u{k}@x.com",
                                                                 "displayName": f"U {k}", "_links": {"a": "},{"}}})
    odd_item = wire[1700]
    if odd == "number id":
        odd_item["id"] = 1700
    elif odd == "null name":
        odd_item["user"]["name"] = None
    elif odd == "no principal":
        odd_item["user"] = None
    elif odd == "lower-case type":
        odd_item["type"] = "user"
    elif odd == "no name":
        del odd_item["user"]["displayName"]
    body = json.dumps(wire, separators=(",", ":")).encode()
    got = [item for batch in batches_in_array([body[i:i + 65536] for i in range(0, len(body), 65536)], ITEM_SHAPE,
                                              _item) for item in batch]
    assert got == [_item(raw) for raw in wire]
    assert all(list(item) == ["id", "type", "principalId", "name", "displayName"] for item in got)
