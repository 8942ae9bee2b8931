"""Named collections end to end against the emulator: backup proxies (adopted and edited by host name, v6-v8) and
proxy pools (v8, created, edited and deleted, their proxies by name); references by name, never by id; --target
taking in what a target refers to and --exclude leaving out what depends on it; the mass-delete guard; import."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import SEED, ProjectDir, assert_one_clean_error

from vboplan.planning.changes import Address, make
from vboplan.planning.plan import refers_to
from vboplan.planning.select import select

PROXIES = [{"hostName": "proxy01.contoso.local", "port": 9193, "description": ""},
           {"hostName": "proxy02.contoso.local", "port": 9193, "description": "spare"},
           {"hostName": "proxy03.contoso.local", "port": 9193, "description": ""}]


def _config(version: str) -> str:
    return f"""\
templates: ["templates/*.yaml.j2"]
environments:
  dev:
    server: emulator:dev
    api_version: {version}
    username: admin
    password_env: VBO_TEST_PASSWORD
"""


@pytest.fixture
def proxies(project: ProjectDir) -> ProjectDir:
    """The conftest project with proxies (and one pool) on its server and no templates yet."""
    for path in (project.root / "templates").glob("*"):
        path.unlink()
    project.seed("dev", {**SEED, "proxies": PROXIES,
                         "proxy_pools": {"Old pool": {"description": "", "proxies": ["proxy03.contoso.local"]}}})
    return project


def _changes(result: Any) -> dict[str, tuple[str, Any, Any]]:
    assert result.exit_code in (0, 2), result.output
    plan = json.loads(result.stdout)["plans"][0]
    return {c["address"]: (c["action"], c["before"], c["after"]) for c in plan["changes"]}


def _server(project: ProjectDir, path: str) -> list[dict[str, Any]]:
    body = project.api("dev").get(f"/v8/{path}").json()
    return body["results"] if isinstance(body, dict) else body


def _converged(project: ProjectDir) -> None:
    again = project.run("plan", "--env", "dev", "--detailed-exitcode")
    assert again.exit_code == 0, again.output


POOLS = """\
backup_proxies:
  proxy01.contoso.local: {description: EU proxy, enableNetworkThrottling: true, throttlingValue: 200,
                          throttlingUnit: Mbps}
proxy_pools:
  EU pool: {description: EU proxies, proxies: [proxy02.contoso.local, PROXY01.contoso.local]}
"""


def test_proxies_and_pools_plan_apply_converge_and_delete(proxies: ProjectDir) -> None:
    proxies.write("templates/proxies.yaml.j2", POOLS)
    planned = _changes(proxies.run("plan", "--env", "dev", "--format", "json"))
    assert planned == {
        'backup_proxies["proxy01.contoso.local"].description': ("update", "", "EU proxy"),
        'backup_proxies["proxy01.contoso.local"].enableNetworkThrottling': ("update", None, True),
        'backup_proxies["proxy01.contoso.local"].throttlingUnit': ("update", None, "Mbps"),
        'backup_proxies["proxy01.contoso.local"].throttlingValue': ("update", None, 200),
        # References show the other object's address, as the server spells its key.
        'proxy_pools["EU pool"]': ("create", None, {"description": "EU proxies", "proxies": [
            'backup_proxies["proxy01.contoso.local"]', 'backup_proxies["proxy02.contoso.local"]']}),
        'proxy_pools["Old pool"]': ("delete", {"description": "", "proxies": ['backup_proxies["proxy03.contoso.local"]']},
                                      None),
    }
    applied = proxies.run("apply", "--env", "dev", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    proxy01 = next(p for p in _server(proxies, "Proxies") if p["hostName"] == "proxy01.contoso.local")
    assert (proxy01["description"], proxy01["throttlingValue"], proxy01["throttlingUnit"]) == ("EU proxy", 200, "Mbps")
    pools = {p["name"]: p for p in _server(proxies, "ProxyPools")}
    assert set(pools) == {"EU pool"}
    members = _server(proxies, f"ProxyPools/{pools['EU pool']['id']}/proxies")
    assert sorted(m["hostName"] for m in members) == ["proxy01.contoso.local", "proxy02.contoso.local"]
    _converged(proxies)

    # A field changed, a proxy left: one update each; then the pool leaves the templates and is deleted.
    proxies.write("templates/proxies.yaml.j2", POOLS.replace("proxy02.contoso.local, ", "")
                  .replace("EU proxies", "EU only"))
    assert _changes(proxies.run("plan", "--env", "dev", "--format", "json")) == {
        'proxy_pools["EU pool"].description': ("update", "EU proxies", "EU only"),
        'proxy_pools["EU pool"].proxies': ("update", ['backup_proxies["proxy01.contoso.local"]',
                                                      'backup_proxies["proxy02.contoso.local"]'],
                                           ['backup_proxies["proxy01.contoso.local"]'])}
    assert proxies.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
    _converged(proxies)
    proxies.write("templates/proxies.yaml.j2", "proxy_pools: {}\n")
    assert _changes(proxies.run("plan", "--env", "dev", "--format", "json")) == {
        'proxy_pools["EU pool"]': ("delete", {"description": "EU only",
                                              "proxies": ['backup_proxies["proxy01.contoso.local"]']}, None)}
    assert proxies.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
    assert _server(proxies, "ProxyPools") == []
    _converged(proxies)
    shown = proxies.run("state", "show", "--env", "dev").stdout
    assert "proxy_pools" not in shown or "EU pool" not in shown


@pytest.mark.parametrize("version", ["v6", "v7"])
def test_proxies_on_versions_without_pools(proxies: ProjectDir, version: str) -> None:
    proxies.write("vboplan.yaml", _config(version))
    proxies.write("templates/proxies.yaml.j2", "backup_proxies:\n  proxy02.contoso.local: {description: EU 2, "
                                               "port: 9200}\n")
    assert set(_changes(proxies.run("plan", "--env", "dev", "--format", "json"))) == {
        'backup_proxies["proxy02.contoso.local"].description', 'backup_proxies["proxy02.contoso.local"].port'}
    assert proxies.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
    _converged(proxies)
    # proxy01 and proxy03 are in no template: proxies are adopted, never removed.
    proxies.write("templates/pools.yaml.j2", "proxy_pools: {P: {description: x}}\n")
    assert_one_clean_error(proxies.run("plan", "--env", "dev"), "proxy_pools is not in API", "it exists in v8")


def test_target_takes_in_what_it_refers_to_and_exclude_leaves_out_its_dependants(proxies: ProjectDir,
                                                                                   tmp_path: Any) -> None:
    proxies.write("templates/proxies.yaml.j2", POOLS.replace("proxy02.contoso.local, ", ""))
    whole = json.loads(proxies.run("plan", "--env", "dev", "--format", "json").stdout)["plans"][0]["changes"]
    planfile = tmp_path / "target.json"
    targeted = proxies.run("plan", "--env", "dev", "--format", "json", "--out", str(planfile),
                           "--target", 'proxy_pools["EU pool"]')
    # The pool refers to proxy01, whose changes come along; the old pool's deletion does not.
    proxy01 = {f'backup_proxies["proxy01.contoso.local"].{f}' for f in (
        "description", "enableNetworkThrottling", "throttlingUnit", "throttlingValue")}
    assert set(_changes(targeted)) == {'proxy_pools["EU pool"]'} | proxy01
    assert proxies.run("apply", str(planfile)).exit_code == 0
    assert {p["name"] for p in _server(proxies, "ProxyPools")} == {"EU pool", "Old pool"}

    # --exclude: leaving proxy01 out leaves out the pool that refers to it; leaving a pool out leaves the rest.
    proxies.write("templates/proxies.yaml.j2", POOLS.replace("proxy02.contoso.local, ", "").replace("EU pool", "New"))
    excluded = _changes(proxies.run("plan", "--env", "dev", "--format", "json", "--exclude",
                                    'backup_proxies["proxy01.contoso.local"]'))
    assert set(excluded) == {'proxy_pools["EU pool"]', 'proxy_pools["Old pool"]'}  # both deleted, New not created
    kept = _changes(proxies.run("plan", "--env", "dev", "--format", "json", "--exclude", 'proxy_pools["Old pool"]'))
    assert set(kept) == {'proxy_pools["EU pool"]', 'proxy_pools["New"]'}
    # The selection itself, over the rows of a whole plan.
    changes = [make(c["action"], c["address"].split("[")[0], Address.parse(c["address"]), c["before"], c["after"])
               for c in whole]
    kept_changes = select(changes, [], [Address.parse('backup_proxies["proxy01.contoso.local"]')], refers_to)
    assert {str(c.address) for c in kept_changes} == {'proxy_pools["Old pool"]'}


def test_mass_delete_of_a_collection_needs_the_flag(proxies: ProjectDir, tmp_path: Any) -> None:
    pools = {f"Pool {i}": {"description": "", "proxies": []} for i in range(5)}
    proxies.seed("dev", {**SEED, "proxies": PROXIES, "proxy_pools": pools})
    proxies.write("templates/pools.yaml.j2", "proxy_pools:\n  Pool 0: {description: ''}\n  Pool 1: {description: ''}\n")
    planfile = tmp_path / "plan.json"
    assert proxies.run("plan", "--env", "dev", "--out", str(planfile)).exit_code == 0
    assert_one_clean_error(proxies.run("apply", str(planfile)), "would delete 3 of the 5 objects of proxy_pools",
                           "--allow-mass-delete")
    assert len(_server(proxies, "ProxyPools")) == 5
    # Two of five is under the threshold (at least 3 and more than a third).
    proxies.write("templates/pools.yaml.j2", "proxy_pools:\n" + "".join(f"  Pool {i}: {{description: ''}}\n"
                                                                          for i in range(3)))
    assert proxies.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
    assert len(_server(proxies, "ProxyPools")) == 3


def test_references_by_unknown_name_and_raw_ids_are_refused(proxies: ProjectDir) -> None:
    proxies.write("templates/pools.yaml.j2", "proxy_pools:\n  EU pool:\n    description: x\n"
                                             "    proxies: [proxy01.contoso.local, nope.contoso.local]\n")
    assert_one_clean_error(proxies.run("plan", "--env", "dev"), "templates/pools.yaml.j2:2",
                           'proxy_pools["EU pool"]', "no backup_proxies named 'nope.contoso.local'")
    proxy_id = _server(proxies, "Proxies")[0]["id"]
    proxies.write("templates/pools.yaml.j2", f"proxy_pools:\n  EU pool:\n    description: x\n"
                                             f"    proxyIds: [{{proxyId: {proxy_id}}}]\n")
    assert_one_clean_error(proxies.run("validate", "--env", "dev"), "templates/pools.yaml.j2:4",
                           "ids differ per server", "write proxies:")
    proxies.write("templates/pools.yaml.j2", "backup_proxies:\n  ghost.contoso.local: {description: x}\n")
    assert_one_clean_error(proxies.run("plan", "--env", "dev"), "templates/pools.yaml.j2:2",
                           'backup_proxies["ghost.contoso.local"] is not on the server', "Veeam console")


def test_import_writes_names_and_plans_clean(proxies: ProjectDir) -> None:
    proxies.write("templates/proxies.yaml.j2", POOLS)
    assert proxies.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
    for path in [*(proxies.root / "templates").glob("*"), *(proxies.root / "environments").glob("*")]:
        path.unlink()
    proxies.write("vboplan.yaml", _config("v8") + "    var_files: [environments/dev.yaml]\n")
    imported = proxies.run("import", "--env", "dev", "--resource", "backup_proxies", "--resource", "proxy_pools")
    assert imported.exit_code == 0, imported.output
    assert "Plan of dev after import: No changes" in imported.stdout, imported.stdout
    values = "".join(p.read_text() for p in (proxies.root / "environments").glob("*.yaml"))
    assert "proxy01.contoso.local" in values and "EU pool" in values, imported.stdout + imported.stderr
    ids = {p["id"] for p in _server(proxies, "Proxies")} | {p["id"] for p in _server(proxies, "ProxyPools")}
    assert not any(i in values for i in ids)  # names, never ids
    _converged(proxies)


def test_guard_thresholds_and_lifecycle_rules_from_the_project(proxies: ProjectDir) -> None:
    pools = {f"Pool {i}": {"description": "", "proxies": []} for i in range(4)}
    proxies.seed("dev", {**SEED, "proxies": PROXIES, "proxy_pools": pools})
    # One pool of four goes: below the default threshold, but this project guards pools from a quarter and 1.
    proxies.write("vboplan.yaml", (proxies.root / "vboplan.yaml").read_text()
                  + "guard:\n  proxy_pools: {share: 0.2, minimum: 1}\n")
    proxies.write("templates/pools.yaml.j2", "proxy_pools:\n" + "".join(f"  Pool {i}: {{description: ''}}\n"
                                                                          for i in range(3)))
    assert_one_clean_error(proxies.run("apply", "--env", "dev", "--auto-approve"),
                           "would delete 1 of the 4 objects of proxy_pools")
    # plan warns by the same thresholds
    assert "would delete 1 of the 4 objects of proxy_pools" in proxies.run("plan", "--env", "dev").stderr
    proxies.write("vboplan.yaml", (proxies.root / "vboplan.yaml").read_text().replace("share: 0.2", "share: 7"))
    assert_one_clean_error(proxies.run("plan", "--env", "dev"), "vboplan.yaml", "guard share must be a number")
    proxies.write("vboplan.yaml", (proxies.root / "vboplan.yaml").read_text().replace(
        "guard:\n  proxy_pools: {share: 7, minimum: 1}\n", ""))
    # prevent_destroy refuses the deletion whatever the guard says.
    proxies.write("templates/rules.yaml.j2", "lifecycle:\n  'proxy_pools[\"Pool 3\"]': {prevent_destroy: true}\n")
    assert_one_clean_error(proxies.run("apply", "--env", "dev", "--auto-approve"), 'proxy_pools["Pool 3"]',
                           "prevent_destroy: true")
    assert len(_server(proxies, "ProxyPools")) == 4
    # ... and so does plan (as Terraform's does): no plan file is saved that no apply could carry out.
    saved = proxies.root / "plans" / "protected.json"
    assert_one_clean_error(proxies.run("plan", "--env", "dev", "--out", str(saved)), 'proxy_pools["Pool 3"]',
                           "no template declares the object any more", "prevent_destroy: true")
    assert not saved.exists()
    proxies.write("templates/rules.yaml.j2", "lifecycle:\n  'proxy_pools[\"Pool 3\"]': {prevent_destroy: false}\n")
    assert proxies.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
    assert len(_server(proxies, "ProxyPools")) == 3
    proxies.write("templates/rules.yaml.j2", "lifecycle:\n  'proxy_pools': {prevent_destroy: true}\n")
    assert_one_clean_error(proxies.run("validate", "--env", "dev"), "templates/rules.yaml.j2:2",
                           "is not an object's address")


def test_secrets_at_any_depth_are_masked_in_plans_and_hashed_in_snapshots(proxies: ProjectDir, tmp_path: Any,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROXY_PASSWORD", "Squid-s3cret-Pass")
    monkeypatch.setenv("PROXY_NOTE", "Note-s3cret-Text")
    proxies.write("templates/proxies.yaml.j2", """\
backup_proxies:
  proxy01.contoso.local:
    description: {{ secret("PROXY_NOTE") }}
    useInternetProxy: true
    internetProxySettings: {hostName: squid.contoso.local, useAuthentication: true, username: svc,
                            userPassword: {{ secret("PROXY_PASSWORD") }}}
""")
    planfile = tmp_path / "secret.plan.json"
    planned = proxies.run("plan", "--env", "dev", "--out", str(planfile))
    assert planned.exit_code == 0, planned.output
    rows = _changes(proxies.run("plan", "--env", "dev", "--format", "json"))
    password = rows['backup_proxies["proxy01.contoso.local"].internetProxySettings.userPassword']
    assert password == ("update", None, None)  # sensitive: no value in the document
    assert rows['backup_proxies["proxy01.contoso.local"].internetProxySettings'][2] == {
        "hostName": "squid.contoso.local", "useAuthentication": True, "username": "svc"}
    requests = proxies.run("show", str(planfile), "--requests")
    assert requests.exit_code == 0 and "(sensitive)" in requests.stdout
    assert proxies.run("apply", str(planfile)).exit_code == 0
    stored = next(p for p in proxies.emulator("dev").store.collections["backup_proxies"]
                  if p["hostName"] == "proxy01.contoso.local")
    assert "userPasswordSha256" in stored["internetProxySettings"]  # the server got it (and keeps a digest)
    _converged(proxies)
    for path in [planfile, *(proxies.root / ".vboplan").rglob("*.json")]:
        if "emulator" in path.parts:
            continue
        text = path.read_text()
        assert "Squid-s3cret-Pass" not in text and "Note-s3cret-Text" not in text, path
    # The description read back (the secret's value) is kept as a salted hash in the next plan's live values.
    again = tmp_path / "again.plan.json"
    assert proxies.run("plan", "--env", "dev", "--out", str(again)).exit_code == 0
    assert "Note-s3cret-Text" not in again.read_text()
