"""A collection is one module and one registry entry: a throwaway one (tests/throwaway_collection.py) is planned,
applied, converged, deleted, guarded and imported against the emulator, which serves it from the same entry; no
other file knows it."""

from __future__ import annotations

import json
from typing import Any

import throwaway_collection
from conftest import SEED, ProjectDir, assert_one_clean_error

from vboplan.kinds.registry import KINDS, registered_collection

HOSTS = """\
proxy_pools:
  Lab pool: {description: lab, proxies: []}
throwaway_hosts:
  host1: {description: first, port: 9193, proxyPool: Lab pool}
  host2: {description: second}
  host3: {description: third}
  host4: {description: fourth}
"""


def _rows(result: Any) -> dict[str, tuple[str, Any, Any]]:
    assert result.exit_code in (0, 2), result.output
    return {c["address"]: (c["action"], c["before"], c["after"]) for c in json.loads(result.stdout)["plans"][0]["changes"]}


def _hosts(project: ProjectDir) -> dict[str, dict[str, Any]]:
    return {h["hostName"]: h for h in project.api("dev").get("/v8/ThrowawayHosts").json()["results"]}


def test_a_throwaway_collection_is_one_module_and_one_registry_entry(project: ProjectDir) -> None:
    for path in (project.root / "templates").glob("*"):
        path.unlink()
    project.seed("dev", SEED)
    with registered_collection(throwaway_collection.SPEC):
        project.write("templates/hosts.yaml.j2", HOSTS)
        rows = _rows(project.run("plan", "--env", "dev", "--format", "json"))
        assert rows['throwaway_hosts["host1"]'] == ("create", None, {
            "description": "first", "port": 9193, "proxyPool": 'proxy_pools["Lab pool"]'})
        assert len(rows) == 5
        # The host's request names the pool the same apply creates: its id is known after apply.
        planfile = project.root / "hosts.plan.json"
        assert project.run("plan", "--env", "dev", "--out", str(planfile)).exit_code == 0
        requests = project.run("show", str(planfile), "--requests", "--format", "json")
        assert requests.exit_code == 0, requests.output
        sent = json.loads(requests.stdout)["plans"][0]["requests"]
        assert [(r["method"], r["path"]) for r in sent] == [("POST", "/v8/ProxyPools")] + [
            ("POST", "/v8/ThrowawayHosts")] * 4
        assert sent[1]["body"] == {"hostName": "host1", "description": "first", "port": 9193,
                                   "proxyPoolId": "(known after apply)"}
        planfile.unlink()
        applied = project.run("apply", "--env", "dev", "--auto-approve")
        assert applied.exit_code == 0, applied.output
        hosts = _hosts(project)
        pool = project.api("dev").get("/v8/ProxyPools").json()["results"][0]
        # The pool's id, assigned by the server during the apply, reached the host's create.
        assert hosts["host1"]["proxyPoolId"] == pool["id"] and set(hosts) == {"host1", "host2", "host3", "host4"}
        again = project.run("plan", "--env", "dev", "--detailed-exitcode")
        assert again.exit_code == 0, again.output

        # Deleting one of four is no mass deletion; three of four is.
        project.write("templates/hosts.yaml.j2", HOSTS.replace("  host4: {description: fourth}\n", ""))
        assert _rows(project.run("plan", "--env", "dev", "--format", "json")) == {
            'throwaway_hosts["host4"]': ("delete", {"description": "fourth"}, None)}
        assert project.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
        project.write("templates/hosts.yaml.j2", "throwaway_hosts: {}\n")
        assert_one_clean_error(project.run("apply", "--env", "dev", "--auto-approve"),
                               "would delete 3 of the 3 objects of throwaway_hosts", "--allow-mass-delete")
        assert set(_hosts(project)) == {"host1", "host2", "host3"}

        # Import writes it by name (the pool by its name, never its id) and the plan after it is clean.
        for path in [*(project.root / "templates").glob("*"), *(project.root / "environments").glob("*")]:
            path.unlink()
        project.write("vboplan.yaml", "templates: [templates/*.yaml.j2]\nenvironments:\n  dev:\n    server: emulator:dev\n"
                      "    username: admin\n    password_env: VBO_TEST_PASSWORD\n    var_files: [environments/dev.yaml]\n")
        imported = project.run("import", "--env", "dev", "--resource", "throwaway_hosts", "--resource", "proxy_pools")
        assert imported.exit_code == 0, imported.output
        assert "Plan of dev after import: No changes" in imported.stdout
        values = (project.root / "environments" / "dev.yaml").read_text()
        assert "Lab pool" in values and pool["id"] not in values
    assert "throwaway_hosts" not in KINDS
