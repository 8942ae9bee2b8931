"""The emulator's persistence: each change is appended to a change log before it is answered, the data file is
rewritten only when the log is folded in (in the background, or when a server stops), a second process sees every
change, a killed server loses nothing it answered, and a generated tenant keeps its size on its first save."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
from click.testing import CliRunner

from vboplan.emulator import Emulator, Store
from vboplan.emulator.cli import emulator as emulator_cli

from .helpers import Api, seed_data, wsgi_client
from .test_server import serve_process


def _log(data_file: Path) -> Path:
    return data_file.with_name(data_file.name + ".changes")


def test_a_change_is_logged_not_rewritten_and_another_store_sees_it(tmp_path: Path) -> None:
    data_file = tmp_path / "vbo.json"
    data_file.write_text(json.dumps(seed_data()), encoding="utf-8")
    before = data_file.read_bytes()
    writer, reader = Store.open(data_file), Store.open(data_file)  # two processes' views of one file
    with wsgi_client(Emulator(writer)) as one, wsgi_client(Emulator(reader)) as two:
        a, b = Api(one, "v8").login(), Api(two, "v6").login()
        org_id = a.org_id()
        a.post(f"/Organizations/{org_id}/AuditItems", json=[{"type": "User", "user": a.user(org_id, "ceo@contoso.com")}])
        assert data_file.read_bytes() == before  # not rewritten
        assert [i["user"]["name"] for i in b.get(f"/Organizations/{org_id}/AuditItems").json()] == ["ceo@contoso.com"]
        b.put("/AuditEmailSettings", json={"port": 2525})  # the reader writes too: both logs are one log
        assert a.get("/AuditEmailSettings").json()["port"] == 2525
    assert len(_log(data_file).read_text(encoding="utf-8").splitlines()) == 3  # its base, then two changes


def test_a_killed_server_loses_nothing_it_answered(tmp_path: Path) -> None:
    data_file = tmp_path / "vbo.json"
    data_file.write_text(json.dumps(seed_data()), encoding="utf-8")
    with serve_process("--data", str(data_file)) as (url, _, process), httpx.Client(base_url=url) as client:
        api = Api(client, "v8").login()
        org_id = api.org_id()
        assert api.post(f"/Organizations/{org_id}/AuditItems",
                        json=[{"type": "User", "user": api.user(org_id, "jane@contoso.com")}]).status_code == 204
        process.kill()  # no chance to compact or flush anything
        process.wait()
    store = Store.open(data_file)
    assert [item["principalId"] for item in store.organizations[0].audit_items] == [
        store.organizations[0].users.by_name["jane@contoso.com"][0]["id"]]


def test_a_torn_last_change_is_ignored_and_cut_by_the_next_write(tmp_path: Path) -> None:
    data_file = tmp_path / "vbo.json"
    data_file.write_text(json.dumps(seed_data()), encoding="utf-8")
    store = Store.open(data_file)
    store_org = store.organizations[0]
    with store.mutation():
        store.update_settings("audit_email_settings", {"port": 25})
    with open(_log(data_file), "ab") as handle:
        handle.write(b'{"op":"settings","key":"audit_email_sett')  # a writer killed mid-line
    again = Store.open(data_file)
    assert again.settings["audit_email_settings"]["port"] == 25
    with again.mutation():
        again.add_audit_items(again.organizations[0], [("User", store_org.users.items[0]["id"])])
    third = Store.open(data_file)
    assert third.settings["audit_email_settings"]["port"] == 25 and len(third.organizations[0].audit_items) == 1


def test_a_data_file_replaced_by_hand_wins_over_an_old_log(tmp_path: Path) -> None:
    data_file = tmp_path / "vbo.json"
    data_file.write_text(json.dumps(seed_data()), encoding="utf-8")
    store = Store.open(data_file)
    with store.mutation():
        store.update_settings("audit_email_settings", {"port": 25})
    edited = {**seed_data(), "audit_email_settings": {"port": 587}}
    data_file.write_text(json.dumps(edited), encoding="utf-8")
    assert Store.open(data_file).settings["audit_email_settings"]["port"] == 587
    store.refresh()
    assert store.settings["audit_email_settings"]["port"] == 587


def test_a_generated_tenant_keeps_its_size_on_its_first_save(tmp_path: Path) -> None:
    data_file = tmp_path / "tenant.json"
    result = CliRunner().invoke(emulator_cli, ["generate", "--organizations", "3", "--users", "600", "--groups", "30",
                                               "--out", str(data_file)])
    assert result.exit_code == 0, result.output
    original = data_file.read_bytes()
    store = Store.open(data_file)
    org = store.organizations[0]
    with store.mutation():
        store.add_audit_items(org, [("User", org.users.items[5]["id"])])
    assert store.compact()
    saved = data_file.read_bytes()
    item = json.dumps(org.audit_items[0], ensure_ascii=False)
    # the same bytes, plus the one audit item (its line and the key that holds it); no derived id written back
    assert len(saved) - len(original) == len(f',\n   "audit_items": [\n    {item}\n   ]')
    assert b'"msid"' not in saved and saved.count(b'"id"') == 1  # the audit item's own: no derived id
    assert len(Store.open(data_file).organizations[0].audit_items) == 1


def test_a_stopping_server_folds_its_log_into_the_data_file(tmp_path: Path) -> None:
    data_file = tmp_path / "vbo.yaml"
    data_file.write_text(json.dumps(seed_data()), encoding="utf-8")  # JSON is YAML
    code = ("import sys; from vboplan.emulator import Store, start; s = start(Store.open(sys.argv[1])); "
            "import httpx; t = httpx.post(s.url + '/v8/token', data={'grant_type': 'password', "
            "'username': 'vbo-admin', 'password': 'Adm1n-pass'}).json()['access_token']; "
            "httpx.put(s.url + '/v8/AuditEmailSettings', json={'port': 465}, "
            "headers={'Authorization': 'Bearer ' + t}); s.stop()")
    subprocess.run([sys.executable, "-c", code, str(data_file)], check=True, timeout=60)
    assert "port: 465" in data_file.read_text(encoding="utf-8")
    assert len(_log(data_file).read_text(encoding="utf-8").splitlines()) == 1  # only its base
