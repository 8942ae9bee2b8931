"""The emulator's data file: seeds, ids, atomic persistence, two processes converging, and synthetic tenants."""

from __future__ import annotations

import json
import os
import re
import stat
import uuid
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from filemodes import POSIX_MODES, assert_private

from vboplan.cli.commands import main
from vboplan.emulator import Emulator, Store, StoreError, generate_tenant
from vboplan.emulator.store import _json_text, _yaml_text, derived_uuid, password_hash

from .helpers import ADMIN, SECRETS, Api, seed_data, wsgi_client

SECRET = SECRETS[2]


def _write(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data) if path.suffix == ".json" else yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.fixture(params=["json", "yaml"])
def data_file(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    return _write(tmp_path / f"server.{request.param}", seed_data())


def test_changes_persist_and_a_second_store_sees_them(data_file: Path) -> None:
    with wsgi_client(Emulator(Store.open(data_file))) as client:
        api = Api(client, "v8").login()
        api.put("/AuditEmailSettings", json={"enableNotification": True, "smtpServer": "smtp.x",
                                             "userPassword": SECRET})
        org_id = api.org_id()
        api.post(f"/Organizations/{org_id}/AuditItems",
                 json=[{"type": "User", "user": api.user(org_id, "ceo@contoso.com")}])
    # Each change reached the change log before its answer; the data file was not rewritten for it.
    log = data_file.with_name(data_file.name + ".changes").read_text(encoding="utf-8")
    assert SECRET not in log and password_hash(SECRET) in log
    assert "smtp.x" not in data_file.read_text(encoding="utf-8")
    second = Store.open(data_file)
    assert second.settings["audit_email_settings"]["smtpServer"] == "smtp.x"
    assert len(second.organizations[0].audit_items) == 1
    with wsgi_client(Emulator(second)) as client:
        api = Api(client, "v6").login()
        items = api.get(f"/Organizations/{api.org_id()}/AuditItems").json()
        assert [i["user"]["name"] for i in items] == ["ceo@contoso.com"]
    # Compaction folds the log into the data file, in the data file's own format, secrets hashed.
    assert second.compact()
    text = data_file.read_text(encoding="utf-8")
    assert SECRET not in text and password_hash(SECRET) in text
    parsed = json.loads(text) if data_file.suffix == ".json" else yaml.safe_load(text)  # same format back
    assert parsed["audit_email_settings"]["smtpServer"] == "smtp.x"
    assert len(Store.open(data_file).organizations[0].audit_items) == 1


def test_a_running_emulator_rereads_a_file_another_process_replaced(data_file: Path) -> None:
    first, second = Emulator(Store.open(data_file)), Emulator(Store.open(data_file))
    with wsgi_client(first) as one, wsgi_client(second) as two:
        a, b = Api(one, "v8").login(), Api(two, "v7").login()
        assert "port" not in b.get("/AuditEmailSettings").json()
        a.put("/AuditEmailSettings", json={"port": 2525})
        assert b.get("/AuditEmailSettings").json()["port"] == 2525
        b.put("/AuditEmailSettings", json={"useSSL": True})  # b's write keeps a's change
        settings = a.get("/AuditEmailSettings").json()
        assert settings["port"] == 2525 and settings["useSSL"] is True


def test_writes_are_atomic_and_leave_no_temp_files(data_file: Path) -> None:
    mode = 0o640
    os.chmod(data_file, mode)
    store = Store.open(data_file)
    inode = data_file.stat().st_ino
    store.update_settings("job_email_settings", {"port": 1})
    store.save()
    assert data_file.stat().st_ino != inode  # replaced, not rewritten in place
    if POSIX_MODES:  # Windows keeps only the read-only flag, which 0o640 leaves off (checked below)
        assert stat.S_IMODE(data_file.stat().st_mode) == mode
    assert data_file.stat().st_mode & stat.S_IWRITE
    # no temporary file left: the data file, its (empty) change log and the cross-process lock file
    assert sorted(p.name for p in data_file.parent.iterdir()) == sorted(
        [data_file.name, data_file.name + ".changes", data_file.name + ".lock"])


def test_missing_file_starts_from_seed_and_is_written_on_first_change(tmp_path: Path) -> None:
    seed = _write(tmp_path / "seed.yaml", seed_data())
    target = tmp_path / "state" / "dev.json"
    store = Store.open(target, seed=seed)
    assert not target.exists() and store.organizations[0].name == "contoso.onmicrosoft.com"
    with store.mutation():
        store.record_test_email("audit_email_settings")
    assert json.loads(target.read_text())["test_emails"] == {"audit_email_settings": 1}
    assert_private(target)
    assert Store.open(target, seed={"organizations": []}).organizations  # the file now wins over the seed
    assert Store.open(tmp_path / "empty.yaml").organizations == []


def test_ids_are_derived_from_names_and_written_ones_win(tmp_path: Path) -> None:
    one, two = Store.from_data(seed_data()), Store.from_data(seed_data())
    assert [o.id for o in one.organizations] == [o.id for o in two.organizations]
    uuid.UUID(one.organizations[0].id)
    data = seed_data()
    data["organizations"][0]["id"] = "0E4FD0A7-7A63-4B9A-9D5E-6B3C3A1F0C11"
    data["organizations"][0]["users"][0]["id"] = "custom-user-id"
    custom = Store.from_data(data)
    assert custom.organizations[0].id == "0e4fd0a7-7a63-4b9a-9d5e-6b3c3a1f0c11"
    assert custom.organizations[0].users.get("custom-user-id")["name"] == "jane@contoso.com"


def test_seeded_audit_items_and_settings(tmp_path: Path) -> None:
    data = seed_data()
    data["organizations"][0]["audit_items"] = [{"user": "ceo@contoso.com"}, {"group": "HR Department"}]
    data["audit_email_settings"] = {"enableNotification": "true", "port": "25", "userPassword": SECRETS[4],
                                    "authenticationType": "customsmtp"}
    store = Store.from_data(data)
    assert [i["type"] for i in store.organizations[0].audit_items] == ["User", "Group"]
    assert store.settings["audit_email_settings"] == {
        "enableNotification": True, "port": 25, "authenticationType": "CustomSmtp",
        "userPasswordSha256": password_hash(SECRETS[4])}
    assert SECRETS[4] not in json.dumps(store.to_data())


@pytest.mark.parametrize("data, fragment", [
    ({"organisations": []}, "unknown key 'organisations'"),
    ({"organizations": {"name": "x"}}, "must be a list"),
    ({"organizations": [{"users": []}]}, "needs a name"),
    ({"organizations": [{"name": "a", "users": [{"displayName": 5}]}]}, "users[0]"),
    ({"organizations": [{"name": "a", "users": [{"name": "a@a", "mail": "x"}]}]}, "unknown field 'mail'"),
    ({"organizations": [{"name": "a"}, {"name": "A"}]}, "duplicate organization"),
    ({"organizations": [{"name": "a", "region": "Mars"}]}, "region"),
    ({"organizations": [{"name": "a", "audit_items": [{"user": "nobody"}]}]}, "no such user"),
    ({"audit_email_settings": {"smtpserver": "x", "prot": 25}}, "prot"),
    ({"audit_email_settings": {"port": "many"}}, "port"),
    ({"credentials": [{"username": "a"}]}, "credentials[0]"),
])
def test_invalid_data_is_one_clear_error(data: dict, fragment: str) -> None:
    with pytest.raises(StoreError) as caught:
        Store.from_data(data)
    assert fragment in str(caught.value)


def test_unreadable_files_are_store_errors(tmp_path: Path) -> None:
    broken_json = tmp_path / "broken.json"
    broken_json.write_text('{"organizations": [', encoding="utf-8")
    with pytest.raises(StoreError, match="broken.json is not valid JSON"):
        Store.open(broken_json)
    broken_yaml = tmp_path / "broken.yaml"
    broken_yaml.write_text("organizations: [\n  - name: x\n bad", encoding="utf-8")
    with pytest.raises(StoreError, match=r"broken.yaml:2: YAML error: did not find expected node content"):
        Store.open(broken_yaml)
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(StoreError, match="mapping at the top level"):
        Store.open(listing)
    with pytest.raises(StoreError, match="cannot read"):
        Store.open(tmp_path / "missing.yaml", seed=tmp_path / "no-seed.yaml")


BOMB = "".join(f"{c}: &{c} [{','.join([f'*{p}'] * 9) if p else ','.join(['lol'] * 9)}]\n"
               for p, c in zip([""] + list("abcdefgh"), "abcdefghi", strict=True))


@pytest.mark.parametrize("text, fragment", [
    ("organizations: []\n" + BOMB, r"bomb.yaml:\d+: YAML error: aliases here expand to more than 1,000,000"),
    ("organizations: " + "[" * 200 + "]" * 200 + "\n", r"bomb.yaml:1: YAML error: nested more than 100 levels"),
])
def test_a_data_file_that_would_explode_is_refused_before_it_is_built(tmp_path: Path, text: str, fragment: str
                                                                       ) -> None:
    # The same bounds as vboplan's own files: a few hundred bytes must not stand for a billion values.
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(text, encoding="utf-8")
    with pytest.raises(StoreError, match=fragment):
        Store.open(bomb)
    result = CliRunner().invoke(main, ["emulator", "serve", "--port", "0", "--data", str(bomb)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert re.search(fragment, result.stderr), result.stderr


def test_writers_round_trip_awkward_strings() -> None:
    data = seed_data()
    data["organizations"][0]["users"][0]["displayName"] = 'Zoë "Q" O\'Brien: #1 \\ \t {x}, [y]'
    store = Store.from_data(data)
    store.update_settings("audit_email_settings", {"subject": "%Action%: \"quoted\"\nnext", "userPassword": "x"})
    expected = store.to_data()
    assert json.loads(_json_text(expected)) == expected
    assert yaml.safe_load(_yaml_text(expected)) == expected


def test_fast_uuid5_matches_the_standard_library() -> None:
    from vboplan.emulator.store import _NAMESPACE
    for parts in (("a",), ("users", "org", "jane@contoso.com"), ("ünï", "ø")):
        assert derived_uuid(*parts) == str(uuid.uuid5(_NAMESPACE, "\x1f".join(parts)))


def test_generate_tenant_is_deterministic_and_unique() -> None:
    # How long this takes is measured in benchmarks/emulator_tenant.py, not asserted here.
    assert generate_tenant(3, 3_000, 90, seed=5) == generate_tenant(3, 3_000, 90, seed=5)
    data = generate_tenant(3, 100_000, 3_000, seed=5)
    users = [u for org in data["organizations"] for u in org["users"]]
    assert len(users) == 100_000 and len({u["name"] for u in users}) == 100_000
    assert len({u["displayName"] for u in users}) == 100_000
    assert [len(o["users"]) for o in data["organizations"]] == [33_334, 33_333, 33_333]
    assert users[0]["name"] == "user00001@org1.onmicrosoft.com"
    groups = [g for org in data["organizations"] for g in org["groups"]]
    assert len(groups) == 3_000 and len({(g["displayName"]) for g in groups}) == 3_000
    store = Store.from_data({"credentials": [ADMIN], **data})
    assert len(store.organizations[2].users.items) == 33_333


def test_generate_tenant_duplicates_only_when_asked() -> None:
    data = generate_tenant(2, 10, 0, duplicate_display_names=3)
    for org in data["organizations"]:
        names = [u["displayName"] for u in org["users"]]
        assert len(names) - len(set(names)) in (1, 2)
    total = sum(len(o["users"]) - len({u["displayName"] for u in o["users"]}) for o in data["organizations"])
    assert total == 3


def test_nested_mutations_do_not_wait_for_themselves(data_file: Path) -> None:
    store = Store.open(data_file)
    with store.mutation(), store.mutation():
        store.update_settings("audit_email_settings", {"port": 7})
    assert Store.open(data_file).settings["audit_email_settings"]["port"] == 7


def test_a_data_file_broken_under_a_running_server_is_a_clear_500(data_file: Path) -> None:
    with wsgi_client(Emulator(Store.open(data_file))) as client:
        api = Api(client, "v8").login()
        data_file.write_text("organizations: {broken", encoding="utf-8")
        response = api.get("/AuditEmailSettings")
        assert response.status_code == 500 and "data file cannot be used" in response.json()["message"]
        _write(data_file, seed_data())
        assert api.get("/AuditEmailSettings").status_code == 200
