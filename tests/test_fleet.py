"""Fleets: environments from an inventory with defaults and labels, selected by label or shard, planned into grouped
output, and merged back from shard outputs by ``vboplan report``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import SEED, ProjectDir, assert_one_clean_error

INVENTORY = """\
defaults:
  api_version: v8
  username: admin
  password_env: VBO_TEST_PASSWORD
  labels: {region: eu}
  var_files: [environments/common.yaml, "environments/tier-{labels.tier}.yaml"]
environments:
  - {name: t1, server: "emulator:t1", labels: {tier: gold}}
  - {name: t2, server: "emulator:t2", labels: {tier: gold}}
  - {name: t3, server: "emulator:t3", labels: {tier: gold, region: us}}
  - name: t4
    server: emulator:t4
    labels: {tier: silver}
    var_files: [environments/common.yaml, "environments/tier-{labels.tier}.yaml", "environments/{name}.yaml"]
"""


@pytest.fixture
def fleet(project: ProjectDir) -> ProjectDir:
    """dev and prod of vboplan.yaml, and four tenants t1-t4 from an inventory (three gold alike, one silver)."""
    config = (project.root / "vboplan.yaml").read_text(encoding="utf-8")
    project.write("vboplan.yaml", config.replace("environments:\n", "inventory: inventory.yaml\nenvironments:\n", 1))
    project.write("inventory.yaml", INVENTORY)
    project.write("environments/tier-gold.yaml", "domain: gold.example\nsmtp:\n  host: smtp.gold.example\n")
    project.write("environments/tier-silver.yaml", "domain: silver.example\nsmtp:\n  host: smtp.silver.example\n")
    project.write("environments/t4.yaml", "notify_success: true\n")
    for name in ("t1", "t2", "t3", "t4"):
        project.seed(name, SEED)
    return project


def listed(result: object) -> list[str]:
    return [line.split(":", 1)[0] for line in result.stdout.splitlines()]  # type: ignore[attr-defined]


def test_inventory_entries_take_defaults_labels_and_var_file_placeholders(fleet: ProjectDir) -> None:
    result = fleet.run("validate")
    assert result.exit_code == 0, result.output
    assert listed(result) == ["dev", "prod", "t1", "t2", "t3", "t4"]
    from vboplan.project.config import load_project

    project = load_project(fleet.root)
    t3, t4 = project.environment("t3"), project.environment("t4")
    assert dict(t3.labels) == {"region": "us", "tier": "gold"}          # labels merge over the defaults'
    assert dict(t4.labels) == {"region": "eu", "tier": "silver"}
    assert [p.name for p in t3.var_files] == ["common.yaml", "tier-gold.yaml"]
    assert [p.name for p in t4.var_files] == ["common.yaml", "tier-silver.yaml", "t4.yaml"]
    assert t4.username == "admin" and t4.api_version == "v8"
    rendered = fleet.run("render", "--env", "t4")
    assert "smtp.silver.example" in rendered.stdout and "notifyOnSuccess: true" in rendered.stdout


@pytest.mark.parametrize(("entry", "line", "fragment"), [
    ('  - {name: t5, server: "ftp://x"}\n', 15, "must start with https:// or emulator:"),
    ("  - {name: t5, server: \"emulator:t5\", labels: {tier: gold}, var_files: [\"{labels.size}.yaml\"]}\n", 15,
     "names label 'size', which environment 't5' does not have"),
    ('  - {name: t1, server: "emulator:t9"}\n', 15, "environment 't1' is listed twice in the inventory"),
    ('  - {name: t5, server: "emulator:t5", colour: red}\n', 15, "unknown setting 'colour'"),
    ('  - {server: "emulator:t5"}\n', 15, "environment 5 of the inventory has no name (give it name: NAME)"),
    ('  - {name: "../x", server: "emulator:t5"}\n', 15, "environment name '../x' is not allowed"),
    ('  - {name: dev, server: "emulator:t5", labels: {tier: gold}}\n', 15,
     "environment 'dev' is also defined in vboplan.yaml:"),
    # A label's value (often written by another system) cannot lead a var file out of its folder.
    ('  - {name: t5, server: "emulator:t5", labels: {tier: "../../outside/secrets"}}\n', 15,
     "label 'tier' of environment 't5' is '../../outside/secrets', which is not one file name"),
    ('  - {name: t5, server: "emulator:t5", labels: {tier: ".."}}\n', 15, "which is not one file name"),
    # One file on Windows and macOS: refused beside its twin in the inventory and beside one of vboplan.yaml.
    ('  - {name: T1, server: "emulator:t5"}\n', 15, "environment 'T1' differs only in case from 't1' (at"),
    ('  - {name: Dev, server: "emulator:t5", labels: {tier: gold}}\n', 15,
     "environment 'Dev' differs only in case from 'dev' (at"),
])
def test_a_bad_inventory_entry_is_named_by_file_and_line(fleet: ProjectDir, entry: str, line: int,
                                                         fragment: str) -> None:
    fleet.write("inventory.yaml", INVENTORY + entry)
    assert_one_clean_error(fleet.run("validate"), f"inventory.yaml:{line}:", fragment)


def test_label_selection_needs_every_label_to_match(fleet: ProjectDir) -> None:
    assert listed(fleet.run("validate", "--label", "tier=gold")) == ["t1", "t2", "t3"]
    assert listed(fleet.run("validate", "--label", "tier=gold", "--label", "region=eu")) == ["t1", "t2"]
    assert listed(fleet.run("validate", "--env", "t3", "--env", "t4", "--label", "tier=gold")) == ["t3"]
    # An environment of vboplan.yaml may carry labels too.
    config = (fleet.root / "vboplan.yaml").read_text(encoding="utf-8")
    fleet.write("vboplan.yaml", config.replace("    server: emulator:dev\n", "    server: emulator:dev\n"
                                                                         "    labels: {tier: gold, region: eu}\n"))
    assert listed(fleet.run("validate", "--label", "region=eu", "--label", "tier=gold")) == ["dev", "t1", "t2"]
    assert_one_clean_error(fleet.run("plan", "--label", "tier=platinum"), "no environment matches "
                           "--label tier=platinum", "labels in use: region=eu, region=us, tier=gold, tier=silver")
    assert_one_clean_error(fleet.run("plan", "--label", "tier"), "--label tier: write it as KEY=VALUE")
    # A CI matrix variable that expanded to nothing must not plan the whole fleet.
    assert_one_clean_error(fleet.run("plan", "--all", "--shard", ""), "--shard : write it as I/N")
    planned = fleet.run("plan", "--label", "tier=silver", "--format", "json")
    assert planned.exit_code == 0, planned.output
    assert [p["environment"] for p in json.loads(planned.stdout)["plans"]] == ["t4"]


def test_identical_environments_are_one_block_and_the_fleet_states_its_alignment(fleet: ProjectDir) -> None:
    # t1 is made to match its templates: it is aligned, t2 and t3 (identical changes) are one block.
    planfile = fleet.root / "t1.plan.json"
    assert fleet.run("plan", "--env", "t1", "--out", str(planfile)).exit_code == 0
    assert fleet.run("apply", str(planfile)).exit_code == 0
    table = fleet.run("plan", "--label", "region=eu", "--label", "tier=gold", "--env", "t1", "--env", "t2",
                      "--env", "t4")
    assert table.exit_code == 0, table.output
    assert "Fleet: 2 environments, aligned: 1/2" in table.stdout
    result = fleet.run("plan", "--label", "tier=gold")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "2 environments (t2, t3): identical changes" in text
    assert text.count("audit_email_settings.smtpServer") == 1        # the block is printed once for both
    assert "Environment t2" not in text and "Environment t3" not in text
    assert "Environment t1: emulator:t1" in text and "No changes" in text   # a lone environment as before
    assert "aligned: 1/3" in text

    every = fleet.run("plan", "--env", "t1", "--env", "t2", "--env", "t3", "--env", "t4", "--format", "json")
    document = json.loads(every.stdout)
    groups = document["fleet"]["groups"]
    assert [g["environments"] for g in groups] == [["t2", "t3"], ["t4"], ["t1"]]
    assert document["fleet"]["alignment"] == "1/4" and document["fleet"]["aligned"] == 1
    t4 = next(p for p in document["plans"] if p["environment"] == "t4")
    t2 = next(p for p in document["plans"] if p["environment"] == "t2")
    assert {c["address"] for c in t4["changes"]} != {c["address"] for c in t2["changes"]} or \
        [c["after"] for c in t4["changes"]] != [c["after"] for c in t2["changes"]]
    markdown = fleet.run("plan", "--label", "tier=gold", "--format", "markdown").stdout
    assert "## Fleet: 3 environments, aligned: 1/3" in markdown
    assert "### 2 environments: t2, t3:" in markdown and "| 2: `t2`, `t3` |" in markdown
    html = fleet.run("plan", "--label", "tier=gold", "--format", "html").stdout
    assert "<h2>2 environments: t2, t3</h2>" in html and "aligned: 1/3" in html


def test_the_table_names_a_count_and_the_first_few_of_a_large_group(fleet: ProjectDir) -> None:
    entries = "".join(f'  - {{name: m{i:02d}, server: "emulator:t2", labels: {{tier: gold}}}}\n' for i in range(8))
    fleet.write("inventory.yaml", INVENTORY + entries)
    result = fleet.run("plan", "--label", "tier=gold", "--label", "region=eu")
    assert result.exit_code == 0, result.output
    assert "10 environments (m00, m01, m02, m03, m04 and 5 more): identical changes" in result.stdout
    markdown = fleet.run("plan", "--label", "tier=gold", "--label", "region=eu", "--format", "markdown").stdout
    assert "### 10 environments: m00, m01, m02, m03, m04, m05, m06, m07, t1, t2:" in markdown


def test_an_environment_that_failed_is_listed_apart(fleet: ProjectDir, tmp_path: Path) -> None:
    fleet.write("inventory.yaml", INVENTORY + '  - {name: down, server: "https://127.0.0.1:1", labels: {tier: gold}}\n')
    result = fleet.run("plan", "--label", "region=eu", "--out-dir", str(tmp_path / "plans"))
    assert result.exit_code == 1
    assert "Failed to plan (1):\n  down (https://127.0.0.1:1): environment 'down'" in result.stdout
    assert "aligned: 0/4" in result.stdout and "1 failed" in result.stdout
    assert sorted(p.name for p in (tmp_path / "plans").glob("*.json")) == ["t1.json", "t2.json", "t4.json"]
    assert json.loads((tmp_path / "plans" / "failed" / "down.json").read_text())["environment"] == "down"
    report = fleet.run("report", str(tmp_path / "plans"), "--format", "json")
    assert report.exit_code == 1
    assert [f["environment"] for f in json.loads(report.stdout)["failed"]] == ["down"]


def shard_lists(project: ProjectDir, count: int) -> list[list[str]]:
    return [listed(project.run("validate", "--all", "--shard", f"{i}/{count}")) for i in range(1, count + 1)]


def test_shards_cover_every_environment_exactly_once_and_stay_put(fleet: ProjectDir) -> None:
    entries = "".join(f'  - {{name: s{i:02d}, server: "emulator:t1", labels: {{tier: gold}}}}\n' for i in range(30))
    fleet.write("inventory.yaml", INVENTORY + entries)
    everyone = listed(fleet.run("validate", "--all"))
    assert len(everyone) == 36
    for count in (1, 3, 7):
        shards = shard_lists(fleet, count)
        flat = [name for shard in shards for name in shard]
        assert sorted(flat) == sorted(everyone) and len(flat) == len(set(flat))
        assert shard_lists(fleet, count) == shards                     # the same slices on the next run
    # Adding environments does not move the others (a slice is a hash of the name alone).
    before = shard_lists(fleet, 3)
    fleet.write("inventory.yaml", INVENTORY + entries + '  - {name: zz-new, server: "emulator:t1", labels: {tier: gold}}\n')
    after = shard_lists(fleet, 3)
    assert [[n for n in shard if n != "zz-new"] for shard in after] == before
    # The slice is the same whatever the process (no per-process hash seed): pinned values.
    from vboplan.project.inventory import shard_of

    assert [shard_of(name, 4) for name in ("dev", "prod", "t1", "tenant-001")] == \
        [shard_of(name, 4) for name in ("dev", "prod", "t1", "tenant-001")]
    assert_one_clean_error(fleet.run("plan", "--all", "--shard", "4/3"), "--shard 4/3: write it as I/N")
    # A slice of a small fleet may be empty: nothing to plan, and no error.
    empty = next(i for i in range(1, 41) if not listed(fleet.run("validate", "--env", "dev", "--shard", f"{i}/40")))
    planned = fleet.run("plan", "--env", "dev", "--shard", f"{empty}/40")
    assert planned.exit_code == 0 and "No environment in shard" in planned.stderr and planned.stdout == ""


def test_report_over_shard_outputs_has_the_totals_of_the_unsharded_plan(fleet: ProjectDir, tmp_path: Path) -> None:
    whole = json.loads(fleet.run("plan", "--all", "--format", "json").stdout)["fleet"]
    for i in (1, 2, 3):
        sharded = fleet.run("plan", "--all", "--shard", f"{i}/3", "--out-dir", str(tmp_path / f"shard{i}"))
        assert sharded.exit_code == 0, sharded.output
    dirs = [str(tmp_path / f"shard{i}") for i in (1, 2, 3) if (tmp_path / f"shard{i}").exists()]
    report = fleet.run("report", *dirs, "--format", "json")
    assert report.exit_code == 0, report.output
    merged = json.loads(report.stdout)
    assert merged["totals"] == whole["totals"] and sum(merged["totals"].values()) > 0
    assert merged["environments"] == whole["environments"] == ["dev", "prod", "t1", "t2", "t3", "t4"]
    assert [g["environments"] for g in merged["groups"]] == [g["environments"] for g in whole["groups"]]
    table = fleet.run("report", *dirs)
    assert "2 environments (t1, t2): identical changes" in table.stdout or \
        "3 environments (t1, t2, t3): identical changes" in table.stdout
    assert "aligned: 0/6" in table.stdout
    for fmt in ("markdown", "html"):
        assert "aligned: 0/6" in fleet.run("report", *dirs, "--format", fmt).stdout
    # A plan file altered after planning is refused, naming it.
    planfile = next(Path(dirs[0]).glob("*.json"))
    planfile.write_text(planfile.read_text().replace('"ann"', '"mallory"'))
    assert_one_clean_error(fleet.run("report", *dirs), str(planfile), "altered")


def inventory(project: ProjectDir, entries: str) -> None:
    """The project's environments from an inventory of ``entries`` (its lines, each ``  - {name: ..., server: ...}``),
    with the dev var files as defaults."""
    project.write("inventory.yaml", "defaults: {username: admin, password_env: VBO_TEST_PASSWORD, var_files: "
                                    "[environments/common.yaml, environments/dev.yaml]}\nenvironments:\n" + entries)
    project.write("vboplan.yaml", 'templates: ["templates/*.yaml.j2"]\ninventory: inventory.yaml\n')


def test_worker_processes_plan_what_one_process_plans(project: ProjectDir, monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    """Servers over HTTP planned by two worker processes: the same plans as in one process, secrets still masked,
    a server that is down failed by name, and the plan files written by the parent."""
    from conftest import API_SECRET, SMTP_SECRET

    from vboplan.emulator import start

    with start(SEED) as one, start(SEED) as two:
        servers = {"a1": one.url, "a2": one.url, "b1": two.url, "down": "http://127.0.0.1:9"}
        entries = "".join(f'  - {{name: {name}, server: "{url}"}}\n' for name, url in servers.items())
        inventory(project, entries)
        runs = {}
        for workers in ("1", "2"):
            monkeypatch.setenv("VBOPLAN_WORKERS", workers)
            run = project.run("-v", "plan", "--all", "--format", "json", "--out-dir", str(tmp_path / workers),
                              "--var", "domain=var.example")
            assert run.exit_code == 1, run.output
            assert ("planning 4 environments in 2 worker processes" in run.stderr) == (workers == "2")
            runs[workers] = json.loads(run.stdout)
    assert SMTP_SECRET not in json.dumps(runs) and API_SECRET not in json.dumps(runs)

    def changes(document: dict) -> dict:
        return {p["environment"]: [(c["address"], c["before"], c["after"]) for c in p.get("changes", [])]
                for p in document["plans"]}

    assert changes(runs["2"]) == changes(runs["1"]) and changes(runs["2"])["a1"]
    assert "vbo.audit@var.example" in json.dumps(runs["2"]["plans"][0])   # --var reaches the workers
    assert [p["environment"] for p in runs["2"]["plans"]] == ["a1", "a2", "b1", "down"]
    assert "127.0.0.1:9" in runs["2"]["plans"][3]["error"]
    assert runs["2"]["fleet"]["groups"] == runs["1"]["fleet"]["groups"]
    assert [g["environments"] for g in runs["2"]["fleet"]["groups"]] == [["a1", "a2", "b1"]]
    assert sorted(p.name for p in (tmp_path / "2").glob("*.json")) == ["a1.json", "a2.json", "b1.json"]
    report = project.run("report", str(tmp_path / "2"), "--format", "json")
    assert json.loads(report.stdout)["totals"] == runs["1"]["fleet"]["totals"]


def test_forked_and_spawned_workers_plan_alike(project: ProjectDir, tmp_path: Path) -> None:
    """The CLI as a user runs it (its own process, no thread but its own): on Linux its workers are forked copies
    of it, elsewhere spawned interpreters (VBOPLAN_WORKER_START=spawn takes that path here). Both plan the same."""
    import os
    import subprocess
    import sys

    from vboplan.emulator import start

    with start(SEED) as one, start(SEED) as two:
        entries = "".join(f'  - {{name: e{k}, server: "{(one, two)[k % 2].url}"}}\n' for k in range(6))
        inventory(project, entries)
        documents = {}
        for method in ("fork", "spawn"):
            environment = {**os.environ, "VBOPLAN_WORKERS": "2", "VBOPLAN_WORKER_START": method}
            run = subprocess.run([sys.executable, "-m", "vboplan", "-C", str(project.root), "-v", "plan", "--all",
                                  "--format", "json", "--out-dir", str(tmp_path / method)],
                                 capture_output=True, text=True, env=environment, timeout=300)
            assert run.returncode == 0, run.stderr
            expected = method if sys.platform.startswith("linux") else "spawn"
            assert f"in 2 worker processes of 32 threads ({expected})" in run.stderr, run.stderr
            assert run.stdout.count('"environment": "e') >= 6 and "Traceback" not in run.stderr
            documents[method] = json.loads(run.stdout)

    def changes(document: dict) -> dict:
        return {p["environment"]: [(c["address"], c["before"], c["after"]) for c in p.get("changes", [])]
                for p in document["plans"]}

    assert changes(documents["fork"]) == changes(documents["spawn"]) and changes(documents["fork"])["e0"]
    assert documents["fork"]["fleet"]["totals"] == documents["spawn"]["fleet"]["totals"]
    assert sorted(p.name for p in (tmp_path / "fork").glob("*.json")) == [f"e{k}.json" for k in range(6)]


def test_requests_to_a_shared_server_stay_bounded_across_workers() -> None:
    from vboplan.planning.parallel import server_shares
    from vboplan.project.config import Environment

    envs = [Environment(f"e{i}", "https://shared:4443", max_in_flight=8) for i in range(10)]
    envs.append(Environment("alone", "https://alone:4443", max_in_flight=8))
    shares = server_shares(envs, workers=4)
    assert shares == {"https://shared:4443": 2, "https://alone:4443": 8}   # 4 workers x 2 <= 8; one keeps all 8


POLICY = """\
rules:
  - id: gold-mail-relay
    level: warn
    environments: {label: {tier: gold}}
    resource: audit_email_settings
    expr: desired.smtpServer != "smtp.gold.example"
    message: Gold tenants send audit mail through the shared relay
  - id: no-success-mail
    level: block
    environments: [t4]
    resource: job_email_settings
    expr: desired.notifyOnSuccess == false
    message: Success mails flood the service desk
exceptions:
  - {rule: gold-mail-relay, environments: [t3], owner: alice@contoso.com, reason: CHG-42, expires: 2099-12-31}
"""


def test_report_shows_each_environments_verdicts_and_their_totals(fleet: ProjectDir, tmp_path: Path) -> None:
    """t1-t3 plan identical changes but t3's warning is waived: one block of changes, two entries of verdicts; t4's
    block verdict stands, so the merged report of the shards exits 1 naming it, in every format."""
    config = (fleet.root / "vboplan.yaml").read_text(encoding="utf-8")
    fleet.write("vboplan.yaml", config.replace("inventory: inventory.yaml\n",
                                               "inventory: inventory.yaml\npolicies: [policies/*.yaml]\n", 1))
    fleet.write("policies/fleet.yaml", POLICY)
    for i in (1, 2):
        sharded = fleet.run("plan", "--all", "--shard", f"{i}/2", "--out-dir", str(tmp_path / f"shard{i}"))
        assert sharded.exit_code in (0, 1), sharded.output
    dirs = [str(tmp_path / f"shard{i}") for i in (1, 2)]
    report = fleet.run("report", *dirs, "--format", "json")
    assert report.exit_code == 1, report.output
    policy = json.loads(report.stdout)["policy"]
    assert policy["totals"] == {"block": 1, "approve": 0, "warn": 3, "advisory": 0, "waived": 1, "environments": 4,
                                "blocked": ["t4"]}
    assert [g["environments"] for g in policy["groups"]] == [["t4"], ["t1", "t2"], ["t3"]]
    assert [v["rule"] for v in policy["groups"][0]["verdicts"]] == ["no-success-mail"]
    assert policy["groups"][2]["verdicts"][0]["exception"]["owner"] == "alice@contoso.com"
    groups = json.loads(report.stdout)["groups"]
    assert ["t1", "t2", "t3"] in [g["environments"] for g in groups]   # changes alike: still one group

    table = fleet.run("report", *dirs)
    assert table.exit_code == 1
    text = table.stdout
    assert "3 environments (t1, t2, t3): identical changes" in text
    assert "Policy verdicts of 2 environments: t1, t2:" in text and "Policy verdicts of 1 environment: t3:" in text
    t1_t2 = text[text.index("Policy verdicts of 2 environments"):text.index("Policy verdicts of 1 environment: t3")]
    assert "[warning] gold-mail-relay: Gold tenants send audit mail through the shared relay" in t1_t2
    assert "[warning, waived] gold-mail-relay" in text[text.index("Policy verdicts of 1 environment: t3"):]
    assert "[BLOCKED] no-success-mail" in text[text.index("Policy verdicts of 1 environment: t4"):]
    assert text.count("gold-mail-relay:") == 2   # not also inside the block of changes
    assert ("Policy: 4 verdicts in 4 environments: 1 block, 0 approve, 3 warn, 0 advisory; 1 waived by exceptions; "
            "a block verdict stands in 1 (t4): apply refuses their plans.") in text

    markdown = fleet.run("report", *dirs, "--format", "markdown").stdout
    assert "### Policy verdicts of 2: `t1`, `t2`" in markdown and "### Policy verdicts of 1: `t4`" in markdown
    assert "a block verdict stands in 1 (t4)" in markdown
    page = fleet.run("report", *dirs, "--format", "html").stdout
    assert "<h2>Policy verdicts of 1 environment: t3</h2>" in page and "(waived)" in page


def test_a_worker_killed_mid_plan_fails_its_environments_by_name(project: ProjectDir, monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    """One of two worker processes is killed while its environments wait on a slow server: exactly those fail,
    each with an error saying so and a failure record instead of a plan file; every other environment's plan file
    is whole (report verifies each checksum); the run exits 1 and the report says who failed."""
    import multiprocessing
    import threading
    import time

    from vboplan.emulator import start

    monkeypatch.setenv("VBOPLAN_WORKERS", "2")
    names = [f"e{k:02d}" for k in range(10)]
    killed: list[int] = []
    with start(SEED, latency_ms=150) as slow:
        entries = "".join(f'  - {{name: {name}, server: "{slow.url}"}}\n' for name in names)
        inventory(project, entries)

        def kill_one_worker_mid_plan() -> None:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                workers = multiprocessing.active_children()
                if len(workers) == 2 and slow.emulator.stats.total >= 6:   # both started, requests under way
                    workers[0].kill()
                    killed.append(workers[0].pid or 0)
                    return
                time.sleep(0.02)

        killer = threading.Thread(target=kill_one_worker_mid_plan, daemon=True)
        killer.start()
        run = project.run("plan", "--all", "--out-dir", str(tmp_path / "plans"))
        killer.join()
    assert killed, "no worker was seen planning"
    assert run.exit_code == 1, run.output
    stopped = sorted(line.split("'")[1] for line in run.stderr.splitlines()
                     if "the worker process planning it stopped" in line)
    assert stopped, run.stderr
    assert all(line.startswith("Error: environment '") for line in run.stderr.splitlines()
               if "worker process" in line), run.stderr
    plans = sorted(p.stem for p in (tmp_path / "plans").glob("*.json"))
    failed = sorted(p.stem for p in (tmp_path / "plans" / "failed").glob("*.json"))
    assert failed == stopped and sorted(plans + failed) == names and plans   # each environment once
    record = json.loads((tmp_path / "plans" / "failed" / f"{stopped[0]}.json").read_text())
    assert "the worker process planning it stopped (exit code" in record["error"]
    assert f"Failed to plan ({len(stopped)}):" in run.stdout
    report = project.run("report", str(tmp_path / "plans"), "--format", "json")
    assert report.exit_code == 1, report.output   # every plan file verified whole; the failures named
    merged = json.loads(report.stdout)
    assert [f["environment"] for f in merged["failed"]] == stopped and merged["size"] == len(names)


def test_each_plan_is_settled_as_it_arrives_and_only_what_is_kept_stays(project: ProjectDir,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """plan_many hands each outcome to on_outcome once, in this process, as it arrives from its worker, and
    returns what that kept (the CLI keeps a plan without its live values): the parent need not hold every plan."""
    import threading
    from dataclasses import replace

    from vboplan.core import plan_many
    from vboplan.emulator import start
    from vboplan.project.config import load_project

    monkeypatch.setenv("VBOPLAN_WORKERS", "2")
    with start(SEED) as one:
        entries = "".join(f'  - {{name: n{k}, server: "{one.url}"}}\n' for k in range(4))
        inventory(project, entries)
        loaded = load_project(project.root)
        seen: list[tuple[str, int, bool]] = []

        def settle(outcome):  # type: ignore[no-untyped-def]
            seen.append((outcome.env.name, threading.get_ident(), bool(outcome.plan and outcome.plan.live)))
            outcome.plan = replace(outcome.plan, live={}, scope={})
            return outcome

        outcomes = plan_many(loaded, list(loaded.environments.values()), on_outcome=settle)
    assert sorted(name for name, _, _ in seen) == ["n0", "n1", "n2", "n3"]
    assert {ident for _, ident, _ in seen} == {threading.get_ident()} and all(live for _, _, live in seen)
    assert [o.env.name for o in outcomes] == ["n0", "n1", "n2", "n3"]
    assert all(o.error is None and o.plan.changes and o.plan.live == {} for o in outcomes)


def test_a_workers_window_follows_its_memory_budget() -> None:
    from vboplan.planning.parallel import THREADS, Window, resident_mib

    start = resident_mib()
    if start is None:
        pytest.skip("no way to read this process's memory here")
    window = Window(budget=start + 256)
    assert window.after(in_hand=1) == THREADS  # nothing held yet: the most a worker plans at once
    held = bytearray(128 * 1024 * 1024)  # one environment holding 128 MiB: one more would not fit
    held[::4096] = b"x" * len(held[::4096])  # touched, so resident
    assert window.after(in_hand=1) == 1
    assert window.after(in_hand=8) == 1  # the largest environment seen decides, so the window never grows back
    del held


def window_in_a_process(script: str) -> list[str]:
    """What ``script`` prints, run after ``Window``, ``touched(mib)`` (memory made resident) and the memory readings
    are set up, in a process of its own, so the peaks are its alone (skipped where no memory reading exists)."""
    import subprocess
    import sys

    code = """
from vboplan.planning.parallel import Window, peak_mib, resident_mib
if resident_mib() is None or peak_mib() is None:
    print("skip")
    raise SystemExit
def touched(mib):
    held = bytearray(mib * 1024 * 1024)
    held[::4096] = b"x" * len(held[::4096])
    return held
""" + script
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout
    if out.strip() == "skip":
        pytest.skip("no way to read this process's memory here")
    return out.split()


def test_a_workers_window_counts_what_an_environment_held_at_its_peak() -> None:
    """An environment that held 200 MiB while it was diffed and let go of it before its plan came back still says
    one more would not fit in 256 MiB."""
    assert window_in_a_process("""
window = Window(budget=resident_mib() + 256)
held = touched(200)
del held  # let go of before the plan is sent back
print(window.after(in_hand=1))
""") == ["1"]


def test_a_workers_first_plan_shares_the_peak_only_among_environments_handed_back() -> None:
    """At a worker's first plan two environments are in hand, the second maybe not at its peak yet: the 200 MiB
    peak is the first one's alone, so within 256 MiB one more would not fit (dividing it by the two in hand said
    two would: the worker then went past its budget)."""
    assert window_in_a_process("""
window = Window(budget=resident_mib() + 256)
window.begin(); window.begin()
held = touched(200)
del held  # let go of before the plan is sent back
print(window.after(in_hand=2))
""") == ["1"]


def test_a_workers_window_is_not_held_small_by_its_first_estimate() -> None:
    """The first plan's estimate is conservative, not sticky beyond its due: 20 MiB at the first plan, then 320 MiB
    over 32 environments in hand, is 20 MiB each at most, so 32 stay in hand within 1024 MiB (sharing each later
    peak only among those handed back said 160 MiB each, and held the window at 6 for the whole run)."""
    assert window_in_a_process("""
window = Window(budget=resident_mib() + 1024, most=32)
window.begin(); window.begin()
first = touched(20)
one = window.after(in_hand=2)
for _ in range(31):
    window.begin()
more = touched(300)
print(one, window.after(in_hand=32))
""") == ["32", "32"]


def test_a_kinds_capabilities_are_what_isinstance_says() -> None:
    """The capability cache answers as a Protocol's isinstance for every registered kind and every capability,
    also for an object given a capability on the instance after another of its class was asked about."""
    from vboplan.kinds import base, hooks
    from vboplan.kinds.registry import KINDS, capable

    capabilities = [value for value in vars(hooks).values()
                    if isinstance(value, type) and getattr(value, "_is_runtime_protocol", False)]
    capabilities += [base.ConfirmsWithServer]
    assert hooks.Refers in capabilities and hooks.Condenses in capabilities and len(capabilities) > 10
    for name, kind in KINDS.items():
        for capability in capabilities:
            assert capable(kind, capability) == isinstance(kind, capability), (name, capability.__name__)

    class Plain:
        def declared_at(self, desired: object, key: str) -> str:
            return key

    bare, given = Plain(), Plain()
    given.refers_to = lambda change: []  # type: ignore[attr-defined]
    given.pending = lambda changes, live: []  # type: ignore[attr-defined]
    assert capable(bare, hooks.Declares) and not capable(bare, hooks.Refers)
    assert capable(given, hooks.Refers) and isinstance(given, hooks.Refers)
    assert not capable(None, hooks.Refers)


def test_one_process_plans_within_the_memory_budget(project: ProjectDir, monkeypatch: pytest.MonkeyPatch) -> None:
    """With one worker (VBOPLAN_WORKERS=1, or a fleet too small for two) this process plans every environment
    itself, and its memory budget bounds how many it has in hand as a worker's does: a budget below what it holds
    already leaves one at a time (the server never sees two of its sessions open at once); the default lets many
    run at once. Every plan is made either way, in the order given."""
    import threading

    from vboplan.core import plan_many
    from vboplan.emulator import Emulator, Store, start
    from vboplan.project.config import load_project

    class Sessions(Emulator):
        """The emulator, counting the sessions open at once (a token taken and not yet logged out)."""

        def __init__(self) -> None:
            super().__init__(Store.from_data(SEED), latency_ms=20)
            self.lock, self.open, self.most = threading.Lock(), 0, 0

        def __call__(self, environ, start_response):  # type: ignore[no-untyped-def]
            path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD")
            with self.lock:
                if method == "POST" and path.endswith("/token"):
                    self.open += 1
                    self.most = max(self.most, self.open)
                elif method == "POST" and path.endswith("/token/logout"):
                    self.open -= 1
            return super().__call__(environ, start_response)

    monkeypatch.setenv("VBOPLAN_WORKERS", "1")
    server = Sessions()
    with start(server) as one:
        entries = "".join(f'  - {{name: n{k}, server: "{one.url}"}}\n' for k in range(6))
        inventory(project, entries)
        loaded = load_project(project.root)
        envs = list(loaded.environments.values())
        monkeypatch.setenv("VBOPLAN_WORKER_MEMORY_MIB", "1")
        bounded = plan_many(loaded, envs)
        assert server.most == 1 and server.open == 0
        monkeypatch.delenv("VBOPLAN_WORKER_MEMORY_MIB")
        server.most = 0
        free = plan_many(loaded, envs)
        assert server.most > 1
    for outcomes in (bounded, free):
        assert [o.env.name for o in outcomes] == [f"n{k}" for k in range(6)]
        assert all(o.error is None and o.plan.changes for o in outcomes), [str(o.error) for o in outcomes]
    assert [o.plan.changes for o in bounded] == [o.plan.changes for o in free]


def test_a_worker_takes_in_hand_what_keeps_its_core_busy() -> None:
    """Environments that each wait ~110 ms on their server for 12 ms of CPU keep a core busy at ~9 at once (with
    the spare, 14); slow servers call for the most a worker takes; environments that hardly wait, for the fewest.
    A failed environment says nothing of what a plan costs: only the memory budget bounds the window then."""
    from vboplan.planning.parallel import FIRST_WINDOW, THREADS, Window, enough_in_hand

    assert enough_in_hand(0.110, 0.012) == 14
    assert enough_in_hand(1.0, 0.012) == THREADS
    assert enough_in_hand(0.010, 0.012) == FIRST_WINDOW
    assert enough_in_hand(0.5, 0.0) == THREADS
    window = Window(budget=1024 * 1024)
    assert window.after(in_hand=1, took=None) == THREADS and window.quickest is None
    window.after(in_hand=1, took=0.2)
    window.after(in_hand=1, took=0.1)
    assert window.quickest == 0.1 and window.planned == 2


def _spend_cpu(seconds: float) -> None:
    """Spend ``seconds`` of this process's CPU (as planning an environment does), then return."""
    import time

    until = time.process_time() + seconds
    total = 0
    while time.process_time() < until:
        total += sum(range(1000))


def test_a_workers_window_charges_each_environment_only_the_cpu_spent_while_it_was_in_hand() -> None:
    """The start of a worker: 2 environments in hand spend 40 ms of CPU between them (20 ms each) and the first
    is planned after 210 ms: each costs 20 ms, so ~16 at once keep the core busy (1.5 x 210 / 20), not the 8 that
    charging both environments' CPU to the one planned says. Then 12 more are begun and spend 26 ms among the 13 in
    hand (2 ms each) before the second is planned: it cost 22 ms, and the 12 still in hand are charged none of
    theirs to it. A small memory budget still bounds the window whatever the CPU says."""
    from vboplan.planning.parallel import Window, enough_in_hand, resident_mib

    window = Window(budget=1024 * 1024)
    first, second = window.begin(), window.begin()
    _spend_cpu(0.040)
    opened = window.after(in_hand=2, took=0.210, begun=first)
    cpu_each = window.cpu_each()
    assert cpu_each is not None and 0.018 <= cpu_each <= 0.024, cpu_each
    assert opened == enough_in_hand(0.210, cpu_each) and opened >= 14  # all CPU on the one planned: 8
    later = [window.begin() for _ in range(12)]
    _spend_cpu(0.026)
    opened = window.after(in_hand=13, took=0.250, begun=second)
    cpu_each = window.cpu_each()
    assert cpu_each is not None and 0.019 <= cpu_each <= 0.025, cpu_each  # all CPU on the two planned: 33 ms
    assert opened == enough_in_hand(0.210, cpu_each) and opened >= 13  # all CPU on the two planned: 10
    assert window.held == len(later)

    start = resident_mib()
    if start is None:
        pytest.skip("no way to read this process's memory here")
    small = Window(budget=start + 256)
    begun = [small.begin(), small.begin()]
    _spend_cpu(0.040)
    held = bytearray(128 * 1024 * 1024)  # one environment holding 128 MiB: one more would not fit
    held[::4096] = b"x" * len(held[::4096])  # touched, so resident
    assert small.after(in_hand=1, took=0.210, begun=begun[0]) == 1  # the CPU alone would say ~16
    del held


# An OSC window title, an OSC 52 clipboard write, a screen clear and the 8-bit CSI: what a hostile server or plan
# file could send a reviewer's terminal.
ESCAPES = "old\x1b]0;pwned\x07\x1b]52;c;ZWNobyBwd25lZA==\x07\x1b[2J\x9b31mX"


def test_control_characters_from_a_server_or_a_plan_file_never_reach_the_terminal(fleet: ProjectDir,
                                                                                  tmp_path: Path) -> None:
    fleet.seed("t1", {**SEED, "audit_email_settings": {**SEED["audit_email_settings"], "smtpServer": ESCAPES}})
    planned = fleet.run("plan", "--env", "t1", "--out-dir", str(tmp_path / "plans"))
    assert planned.exit_code == 0, planned.output
    for text in (planned.stdout, fleet.run("report", str(tmp_path / "plans")).stdout):
        assert "\x1b" not in text and "\x9b" not in text and "\x07" not in text, repr(text)
        assert "old\\u001b]0;pwned\\u0007" in text and "\\u009b31mX" in text
    # A failure record is a file anyone could have written.
    (tmp_path / "plans" / "failed").mkdir()
    (tmp_path / "plans" / "t1.json").unlink()
    (tmp_path / "plans" / "failed" / "t1.json").write_text(json.dumps({
        "environment": "t1", "server": "https://ghost.example:4443", "error": ESCAPES}), encoding="utf-8")
    report = fleet.run("report", str(tmp_path / "plans"))
    assert report.exit_code == 1
    assert "\x1b" not in report.stdout and "\x9b" not in report.stdout, repr(report.stdout)
    assert "t1 (https://ghost.example:4443): old\\u001b]0;pwned" in report.stdout


def test_an_out_dir_holding_other_environments_plans_is_refused(fleet: ProjectDir, tmp_path: Path) -> None:
    """A plan file left by an earlier run (an environment since removed, or of another shard) would be counted by
    report beside this run's: the run is refused before it plans, and nothing is removed."""
    plans = tmp_path / "plans"
    first = fleet.run("plan", "--label", "tier=gold", "--out-dir", str(plans))
    assert first.exit_code == 0, first.output
    assert sorted(p.stem for p in plans.glob("*.json")) == ["t1", "t2", "t3"]
    assert_one_clean_error(fleet.run("plan", "--label", "tier=gold", "--label", "region=eu", "--out-dir", str(plans)),
                           f"--out-dir {plans} holds plan files of environments this run does not plan (t3)")
    assert sorted(p.stem for p in plans.glob("*.json")) == ["t1", "t2", "t3"]
    again = fleet.run("plan", "--label", "tier=gold", "--out-dir", str(plans))  # the same environments again: fine
    assert again.exit_code == 0, again.output
    report = fleet.run("report", str(plans), "--format", "json")
    assert json.loads(report.stdout)["environments"] == ["t1", "t2", "t3"]


def test_a_label_keeps_the_text_it_was_written_with(fleet: ProjectDir) -> None:
    """YAML 1.1 reads `no` as false, `010` as 8 and `1.10` as 1.1; a label is the text as written."""
    fleet.write("inventory.yaml", INVENTORY + '  - {name: t5, server: "emulator:t5", '
                                              'labels: {tier: gold, country: no, zone: 010, ver: 1.10, flag: yes}}\n')
    assert listed(fleet.run("validate", "--label", "country=no", "--label", "zone=010", "--label", "ver=1.10",
                            "--label", "flag=yes")) == ["t5"]
    assert listed(fleet.run("validate", "--label", "country=false")) == []


def resealed(path: Path, edit: object) -> None:
    """Edit a plan file as a hostile author would, its (unkeyed) checksum recomputed so it still loads."""
    from vboplan.planning.plan import plan_digest

    document = json.loads(path.read_text(encoding="utf-8"))
    edit(document)  # type: ignore[operator]
    document["checksum"] = plan_digest(document)
    path.write_text(json.dumps(document), encoding="utf-8")


def test_report_checks_each_plans_author_signature(fleet: ProjectDir, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The checksum catches damage, not an edit: report verifies each plan's author signature as show does, so a
    plan changed after it was signed is refused (none of its changes counted), and one apply would refuse for want
    of a proven author makes it exit 1."""
    plans = tmp_path / "plans"
    assert fleet.run("plan", "--all", "--out-dir", str(plans)).exit_code == 0  # ann signs each (VBOPLAN_AUTHOR_KEY)
    whole = json.loads(fleet.run("report", str(plans), "--format", "json").stdout)
    assert [(g["environments"], g["proven"], g["apply_refuses"]) for g in whole["authors"]] == [
        (["dev", "t1", "t2", "t3", "t4"], False, False), (["prod"], True, False)]
    assert whole["authors"][0]["problem"] == "the environment has no allowed_signers file to check the author's key " \
                                             "against"
    assert whole["authors"][1]["signer"] == "ann"
    assert "Authors: 5 not proven (dev, t1, t2, t3, t4): the environment has no allowed_signers file" in \
        fleet.run("report", str(plans)).stdout

    def emptied(document: dict) -> None:
        document["changes"], document["summary"] = [], {k: 0 for k in document["summary"]}

    resealed(plans / "t1.json", emptied)
    tampered = fleet.run("report", str(plans), "--format", "json")
    assert tampered.exit_code == 1
    merged = json.loads(tampered.stdout)
    assert merged["failed"] == [{"environment": "t1", "server": "emulator:t1", "error": "its plan file is refused: the "
                                 "author signature does not verify: the signed statement is for another plan",
                                 "refused": True}]
    assert merged["aligned"] == 0 and merged["totals"]["update"] < whole["totals"]["update"]
    assert "t1" not in [name for g in merged["groups"] for name in g["environments"]]

    # Without its signature, prod's plan (approvals.required: 2) is one apply refuses: report says so, and exits 1.
    def unsigned(document: dict) -> None:
        document["author_key"] = document["author_signature"] = None

    resealed(plans / "prod.json", unsigned)
    (plans / "t1.json").unlink()
    assert fleet.run("plan", "--env", "t1", "--out", str(plans / "t1.json")).exit_code == 0
    stripped = fleet.run("report", str(plans))
    assert stripped.exit_code == 1
    assert "Authors: 1 not proven (prod): the plan is not signed by its author; apply refuses them, as their " \
           "environments need approvals; 5 not proven" in stripped.stdout

    # Away from the project, a signature is still verified, but no trust file says whose key it is.
    from click.testing import CliRunner

    from vboplan.cli.main import main

    monkeypatch.chdir(tmp_path)
    away = CliRunner().invoke(main, ["--no-color", "report", str(plans), "--format", "json"])
    assert away.exit_code == 0, away.output
    assert {g["problem"] for g in json.loads(away.stdout)["authors"]} == {
        "the plan is not signed by its author",
        "the author signature holds, but its key is not checked: give -C PROJECT to name the trust file"}


def test_report_refuses_a_plan_of_an_environment_the_project_does_not_have(fleet: ProjectDir, tmp_path: Path) -> None:
    plans = tmp_path / "plans"
    assert fleet.run("plan", "--label", "tier=gold", "--out-dir", str(plans)).exit_code == 0
    fleet.write("inventory.yaml", INVENTORY.replace('  - {name: t3, server: "emulator:t3", labels: {tier: gold, '
                                                    'region: us}}\n', ""))
    # The folder's manifest says the run split three environments: this project's selection is two now.
    assert_one_clean_error(fleet.run("report", str(plans)), "the shards given split 3 environments, but --label "
                           "tier=gold selects 2 in this project now: plan every shard again from this commit")
    report = fleet.run("report", *(str(p) for p in sorted(plans.glob("*.json"))))
    assert report.exit_code == 1
    assert "t3 (emulator:t3): its plan file is refused: this project" in report.stdout
    assert "has no such environment, so nothing can check who wrote it" in report.stdout


def test_a_plan_files_environment_must_be_an_environment_name(fleet: ProjectDir, tmp_path: Path) -> None:
    plans = tmp_path / "plans"
    assert fleet.run("plan", "--env", "t1", "--out-dir", str(plans)).exit_code == 0

    def renamed(document: dict) -> None:
        document["environment"] = "../../etc/x\x1b]0;t\x07"

    resealed(plans / "t1.json", renamed)
    for args in (("report", str(plans)), ("show", str(plans / "t1.json"))):
        assert_one_clean_error(fleet.run(*args), f"{plans / 't1.json'}: not a valid plan file: its environment is "
                                                 "not an environment name")


def shard_folders(fleet: ProjectDir, tmp_path: Path, count: int, *selection: str) -> list[Path]:
    folders = [tmp_path / f"n{count}s{i}" for i in range(1, count + 1)]
    for i, folder in enumerate(folders, 1):
        planned = fleet.run("plan", *(selection or ("--all",)), "--shard", f"{i}/{count}", "--out-dir", str(folder))
        assert planned.exit_code == 0, planned.output
    return folders


def test_report_refuses_a_fleet_with_a_shard_or_a_plan_file_missing(fleet: ProjectDir, tmp_path: Path) -> None:
    """Every run of plan --out-dir records what it sets out to plan (an empty shard too), so a shard's folder that
    never arrived, or a plan file a killed run did not write, is named instead of a smaller fleet."""
    folders = shard_folders(fleet, tmp_path, 8)
    empty = [f for f in folders if not list(f.glob("*.json"))]
    assert empty and all((f / "_run.manifest").is_file() for f in folders)  # 6 environments over 8 shards
    whole = fleet.run("report", *map(str, folders), "--format", "json")
    assert whole.exit_code == 0, whole.output
    assert json.loads(whole.stdout)["environments"] == ["dev", "prod", "t1", "t2", "t3", "t4"]
    for gone in (empty[0], next(f for f in folders if list(f.glob("*.json")))):
        index = folders.index(gone) + 1
        assert_one_clean_error(fleet.run("report", *(str(f) for f in folders if f != gone)),
                               f"shard {index}/8 of the 6 environments is missing")
    holder = next(f for f in folders if list(f.glob("*.json")))
    victim = next(holder.glob("*.json"))
    victim.rename(tmp_path / victim.name)  # as a run killed before it wrote this plan file leaves its folder
    assert_one_clean_error(fleet.run("report", *map(str, folders)),
                           f"{holder}: its run set out to plan {victim.stem} but holds no plan file or failure record")
    (tmp_path / victim.name).rename(victim)
    # Shards of another split, or of another selection, are not this fleet's.
    thirds = shard_folders(fleet, tmp_path, 3)
    assert_one_clean_error(fleet.run("report", str(folders[0]), *map(str, thirds[1:])), "are not shards of one run")
    gold = shard_folders(fleet, tmp_path / "gold", 2, "--label", "tier=gold")
    everything = shard_folders(fleet, tmp_path / "all", 2)
    assert_one_clean_error(fleet.run("report", str(gold[0]), str(everything[1])), "are not shards of one run")
    assert_one_clean_error(fleet.run("report", *map(str, folders), str(empty[0])),
                           f"both hold shard {folders.index(empty[0]) + 1}/8")
    bare = tmp_path / "bare"
    bare.mkdir()
    assert_one_clean_error(fleet.run("report", *map(str, thirds), str(bare)),
                           f"{bare}: holds no _run.manifest, so it is not a folder 'vboplan plan --out-dir' wrote")


def test_inventory_mistakes_are_told_in_the_inventorys_words(fleet: ProjectDir, tmp_path: Path) -> None:
    # `labels:` with nothing after it adds no label and takes none of the defaults' away.
    fleet.write("inventory.yaml", INVENTORY + '  - {name: t5, server: "emulator:t5", labels: null, '
                                              'var_files: [environments/common.yaml]}\n')
    from vboplan.project.config import load_project

    assert dict(load_project(fleet.root).environment("t5").labels) == {"region": "eu"}
    # A var file the inventory names is the inventory's to fix, at the line that names it.
    fleet.write("inventory.yaml", INVENTORY + '  - {name: t5, server: "emulator:t5", labels: {tier: bronze}}\n')
    assert_one_clean_error(fleet.run("validate", "--env", "t5"), "environments/tier-bronze.yaml: variable file of "
                           "environment 't5' not found (inventory.yaml:6 lists it in var_files;")
    # A label's text reaches an error message with its control characters escaped.
    fleet.write("inventory.yaml", INVENTORY + '  - {name: t5, server: "emulator:t5", '
                                              'labels: {tier: "gold\\u001b]0;pwned\\u0007"}}\n')
    refused = fleet.run("validate", "--env", "t5", "--label", "tier=none")
    assert_one_clean_error(refused, "labels in use: region=eu, tier=gold\\u001b]0;pwned\\u0007)")
    assert "\x1b" not in refused.stderr and "\x07" not in refused.stderr
    # A folder where a plan file goes is named before anything is planned (not the temporary file beside it).
    (tmp_path / "plans" / "t1.json").mkdir(parents=True)
    assert_one_clean_error(fleet.run("plan", "--env", "t1", "--out-dir", str(tmp_path / "plans")),
                           f"--out-dir {tmp_path / 'plans'}: {tmp_path / 'plans' / 't1.json'} is a folder, where "
                           "the plan file of 't1' goes")


def test_report_holds_the_shards_to_the_selection_they_split(fleet: ProjectDir, tmp_path: Path) -> None:
    """A manifest is a file anyone can edit: the shards' environments must be the selection their manifests name
    (count and digest), each in the slice its name hashes to, and the selection the one the project makes now."""
    folders = shard_folders(fleet, tmp_path, 2)
    holder = next(f for f in folders if len(list(f.glob("*.json"))) > 1)
    victim = sorted(holder.glob("*.json"))[0]

    def manifest(folder: Path) -> dict:
        return json.loads((folder / "_run.manifest").read_text(encoding="utf-8"))

    original = manifest(holder)
    edited = {**original, "environments": [n for n in original["environments"] if n != victim.stem]}
    (holder / "_run.manifest").write_text(json.dumps(edited), encoding="utf-8")
    victim.unlink()
    assert_one_clean_error(fleet.run("report", *map(str, folders)), "the shards given set out to plan 5 "
                           "environments, not the 6 of the selection they split")
    other = next(f for f in folders if f != holder)
    moved = {**manifest(other), "environments": sorted([*manifest(other)["environments"], victim.stem])}
    (other / "_run.manifest").write_text(json.dumps(moved), encoding="utf-8")
    assert_one_clean_error(fleet.run("report", *map(str, folders)), f"'{victim.stem}' is not in shard")
    (other / "_run.manifest").write_text(json.dumps({**moved, "shard": [1, 10**12]}), encoding="utf-8")
    assert_one_clean_error(fleet.run("report", *map(str, folders)), "shard must be [I, N] with 1 <= I <= N <= 9999")


def test_report_refuses_what_apply_refuses_of_a_plans_server_and_author(fleet: ProjectDir, tmp_path: Path) -> None:
    plans = tmp_path / "plans"
    assert fleet.run("plan", "--label", "tier=gold", "--out-dir", str(plans)).exit_code == 0
    # t2 now points at another server: its plan was made against the old one, as apply says.
    fleet.write("inventory.yaml", INVENTORY.replace('{name: t2, server: "emulator:t2"', '{name: t2, server: '
                                                    '"emulator:t4"'))
    moved = json.loads(fleet.run("report", str(plans), "--format", "json").stdout)
    assert moved["failed"] == [{"environment": "t2", "server": "emulator:t2", "error": "its plan file is refused: "
                                "planned against emulator:t2 (API v8), but environment 't2' is now emulator:t4 (API v8)",
                                "refused": True}]
    # approvals.signed_commits: a plan that records no commit is one apply refuses for its author.
    fleet.write("approvers/fleet.allowed_signers", "ann namespaces=\"vboplan-plan\" "
                + " ".join(Path(f"{fleet.keys['ann']}.pub").read_text().split()[:2]) + "\n")
    fleet.write("inventory.yaml", INVENTORY.replace("  labels: {region: eu}\n", "  labels: {region: eu}\n  approvals: "
                                                    "{allowed_signers: approvers/fleet.allowed_signers, "
                                                    "signed_commits: true}\n"))
    report = fleet.run("report", str(plans))
    assert report.exit_code == 1
    assert "Authors: 3 not proven (t1, t2, t3): the plan records no commits (it was not planned in a git checkout) " \
           "but approvals.signed_commits is set" in report.stdout


def test_a_failure_record_cannot_drive_the_terminal_in_any_format(fleet: ProjectDir, tmp_path: Path) -> None:
    plans = tmp_path / "plans"
    assert fleet.run("plan", "--env", "t1", "--out-dir", str(plans)).exit_code == 0
    (plans / "t1.json").unlink()
    (plans / "failed").mkdir()
    (plans / "failed" / "t1.json").write_text(json.dumps({"environment": "t1", "server": "emulator:\x1b]0;PWNED\x07",
                                                         "api_version": "v8", "error": "boom \x1b[2J\x9b"}))
    for fmt in ("table", "markdown", "html", "json"):
        shown = fleet.run("report", str(plans), "--format", fmt)
        assert shown.exit_code == 1 and "PWNED" in shown.stdout, fmt
        assert not any(c in shown.stdout for c in "\x1b\x07\x9b"), (fmt, shown.stdout)


def test_report_refuses_plans_apply_refuses_for_their_age_or_their_verdicts(fleet: ProjectDir, tmp_path: Path) -> None:
    """Whoever approves them, apply refuses an expired plan and one whose recorded verdicts are not what the
    project's rules give now (rules added since, or verdicts removed by its author): so does report."""
    plans = tmp_path / "plans"
    assert fleet.run("plan", "--label", "tier=gold", "--out-dir", str(plans)).exit_code == 0

    def old(document: dict) -> None:
        document["created_at"], document["author_key"], document["author_signature"] = "2026-01-01T00:00:00Z", None, None

    resealed(plans / "t2.json", old)
    config = (fleet.root / "vboplan.yaml").read_text(encoding="utf-8")
    fleet.write("vboplan.yaml", config.replace("inventory: inventory.yaml\n",
                                               "inventory: inventory.yaml\npolicies: [policies/*.yaml]\n", 1))
    fleet.write("policies/fleet.yaml", POLICY)  # gold-mail-relay now warns on t1 (t3's warning is waived)
    failed = {f["environment"]: f["error"] for f in
              json.loads(fleet.run("report", str(plans), "--format", "json").stdout)["failed"]}
    assert sorted(failed) == ["t1", "t2", "t3"]
    assert failed["t2"].startswith("its plan file is refused: the plan was made at 2026-01-01T00:00:00Z and expired")
    assert failed["t1"].startswith("its plan file is refused: the plan records other policy verdicts than its rules "
                                   "give now:\n  - rule gold-mail-relay: not in the plan, but it gives a warn verdict")
    assert fleet.run("plan", "--label", "tier=gold", "--out-dir", str(plans)).exit_code == 0  # planned again: fine
    again = json.loads(fleet.run("report", str(plans), "--format", "json").stdout)
    assert again["failed"] == [] and again["policy"]["totals"]["warn"] == 3


def test_a_run_killed_half_way_leaves_no_old_plan_file_beside_its_manifest(fleet: ProjectDir, tmp_path: Path) -> None:
    """A second run into the same folder removes its environments' old plan files before planning, so a run
    killed before it wrote t1's plan leaves t1 without one, which report names, not last run's plan of t1."""
    import socket
    import subprocess
    import sys
    import time

    plans = tmp_path / "plans"
    assert fleet.run("plan", "--env", "t1", "--out-dir", str(plans)).exit_code == 0
    silent = socket.socket()  # accepts connections (the kernel's backlog) and never answers: the plan waits
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    fleet.write("inventory.yaml", INVENTORY.replace('{name: t1, server: "emulator:t1"', '{name: t1, server: '
                                                    f'"https://127.0.0.1:{silent.getsockname()[1]}", timeout: 120'))
    run = subprocess.Popen([sys.executable, "-m", "vboplan", "-C", str(fleet.root), "-q", "plan", "--env", "t1",
                            "--out-dir", str(plans)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while (plans / "t1.json").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not (plans / "t1.json").exists() and run.poll() is None
    finally:
        run.kill()
        run.wait(timeout=30)
        silent.close()
    assert_one_clean_error(fleet.run("report", str(plans)),
                           f"{plans}: its run set out to plan t1 but holds no plan file or failure record")


def test_the_shards_of_one_report_are_planned_from_one_commit(fleet: ProjectDir, tmp_path: Path) -> None:
    import subprocess

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(fleet.root), "-c", "user.name=ann", "-c", "user.email=ann@corp", *args],
                       check=True, capture_output=True)

    git("init", "-q")
    git("add", "-A")
    git("commit", "-q", "-m", "fleet")
    first = shard_folders(fleet, tmp_path / "a", 2)
    fleet.write("environments/tier-gold.yaml", "domain: gold.example\nsmtp:\n  host: smtp2.gold.example\n")
    git("commit", "-q", "-am", "gold relay")
    second = shard_folders(fleet, tmp_path / "b", 2)
    assert fleet.run("report", *map(str, second)).exit_code == 0
    assert_one_clean_error(fleet.run("report", str(first[0]), str(second[1])),
                           "the shards of one report are planned from one commit")


def test_nothing_vboplan_prints_drives_the_terminal(fleet: ProjectDir, tmp_path: Path) -> None:
    """Whatever field of a plan file holds a control character (here created_by, which nothing checks), every
    format shows its escape: printing is the last guard."""
    plans = tmp_path / "plans"
    assert fleet.run("plan", "--env", "t1", "--out-dir", str(plans)).exit_code == 0

    def named(document: dict) -> None:
        document["created_by"], document["author_key"], document["author_signature"] = "bob\x1b]0;BY\x07", None, None

    resealed(plans / "t1.json", named)
    for fmt in ("table", "markdown", "html", "json"):
        shown = fleet.run("show", str(plans / "t1.json"), "--format", fmt)
        assert shown.exit_code == 0 and "bob" in shown.stdout, (fmt, shown.output)
        assert "\x1b" not in shown.stdout and "\x07" not in shown.stdout, (fmt, shown.stdout)
    assert json.loads(fleet.run("show", str(plans / "t1.json"), "--format", "json").stdout)["plans"][0][
        "created_by"] == "bob\x1b]0;BY\x07"  # in JSON the escape is the character itself


def markdown_tables(text: str) -> list[list[str]]:
    """The Markdown tables in ``text``, each as its lines."""
    tables: list[list[str]] = []
    previous = ""
    for line in text.splitlines():
        if line.startswith("|"):
            if not previous.startswith("|"):
                tables.append([])
            tables[-1].append(line)
        previous = line
    return tables


def cells(row: str) -> int:
    return len(row.replace("\\|", "").strip().strip("|").split("|"))


def test_every_markdown_table_row_has_its_headers_cells(fleet: ProjectDir, tmp_path: Path) -> None:
    """A row with more cells than its header loses the last on GitHub: the overview's delete column showed the
    replace count. Over plans, a failure, and a refused plan file."""
    plans = tmp_path / "plans"
    assert fleet.run("plan", "--all", "--out-dir", str(plans)).exit_code == 0
    resealed(plans / "t1.json", lambda d: d.update(changes=[], summary={k: 0 for k in d["summary"]}))
    (plans / "t2.json").unlink()
    (plans / "failed").mkdir()
    (plans / "failed" / "t2.json").write_text(json.dumps({"environment": "t2", "server": "emulator:t2",
                                                         "api_version": "v8", "error": "unreachable"}))
    from vboplan.output.html import FailedEnvironment
    from vboplan.output.markdown import render_markdown
    from vboplan.planning.plan import Plan

    texts = [fleet.run("report", str(plans), "--format", "markdown").stdout,
             render_markdown([Plan.load(plans / "t3.json"), FailedEnvironment("t2", "emulator:t2", "v8", "down")])]
    table = fleet.run("report", str(plans)).stdout
    assert "Failed to plan (1):\n  t2 (emulator:t2): unreachable" in table
    assert "Refused (1):\n  t1 (emulator:t1): its plan file is refused: the author signature" in table
    assert "0 failed" not in table and "1 failed, 1 refused)" in table
    assert "| 1: `t1` | refused | | | |" in texts[0] and "| 1: `t2` | failed to plan | | | |" in texts[0]
    for text in texts:
        found = markdown_tables(text)
        assert found
        for rows in found:
            assert {cells(row) for row in rows} == {cells(rows[0])}, rows
    assert "| environments | create | update | replace | delete |" in texts[0]
    assert "| environment | server | create | update | replace | delete |" in texts[1]


def test_approving_an_out_dir_passes_over_the_environments_with_no_changes(fleet: ProjectDir, tmp_path: Path) -> None:
    """plan --out-dir saves converged environments too; approving the folder approves the others and exits 0."""
    assert fleet.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
    plans = tmp_path / "plans"
    assert fleet.run("plan", "--env", "dev", "--env", "prod", "--out-dir", str(plans)).exit_code == 0
    approved = fleet.run("approve", str(plans), "--key", str(fleet.keys["alice"]))
    assert approved.exit_code == 0, approved.output
    assert "Summary: 2 of 2 plan files approved." in approved.stdout
    assert f"ok     {plans / 'dev.json'}: dev: no changes, nothing to approve" in approved.stdout
    assert json.loads((plans / "prod.json").read_text(encoding="utf-8"))["approvals"]
    # A shard's folder may hold one converged plan: the folder is approved as a folder all the same.
    alone = tmp_path / "alone"
    assert fleet.run("plan", "--env", "dev", "--out-dir", str(alone)).exit_code == 0
    single = fleet.run("approve", str(alone), "--key", str(fleet.keys["alice"]))
    assert single.exit_code == 0 and "dev: no changes, nothing to approve" in single.stdout, single.output


def test_the_memory_reading_windows_takes_is_this_process_resident_set() -> None:
    """Windows has no /proc and no getrusage: there a worker's window reads psutil's working set (rss) and its peak
    (peak_wset). Here, psutil's rss must agree with /proc's reading of the same process."""
    pytest.importorskip("psutil")
    from vboplan.planning.parallel import process_mib, resident_mib

    held = b"x" * (64 * 1024 * 1024)  # written, so resident
    ours, theirs = resident_mib(), process_mib("rss")
    assert ours is not None and theirs is not None and ours > 64
    assert abs(ours - theirs) < 8, (ours, theirs)
    assert process_mib("no_such_field") is None
    del held


def test_report_refuses_verdicts_of_rules_since_removed(fleet: ProjectDir, tmp_path: Path) -> None:
    """With no policies left in the project, a plan recording verdicts is one apply refuses: so does report."""
    config = (fleet.root / "vboplan.yaml").read_text(encoding="utf-8")
    fleet.write("vboplan.yaml", config.replace("inventory: inventory.yaml\n",
                                               "inventory: inventory.yaml\npolicies: [policies/*.yaml]\n", 1))
    fleet.write("policies/fleet.yaml", POLICY)
    plans = tmp_path / "plans"
    assert fleet.run("plan", "--label", "tier=gold", "--out-dir", str(plans)).exit_code == 0
    fleet.write("vboplan.yaml", config)
    failed = {f["environment"]: f["error"] for f in
              json.loads(fleet.run("report", str(plans), "--format", "json").stdout)["failed"]}
    assert sorted(failed) == ["t1", "t2", "t3"]  # t3's verdict is waived, but recorded too
    assert "rule gold-mail-relay: the plan records a verdict it no longer gives" in failed["t1"]


def test_what_may_reach_the_terminal_is_text_line_ends_and_vboplans_own_colours() -> None:
    from vboplan.output.wording import terminal_safe

    assert terminal_safe("\x1b[32m+ create\x1b[0m \x1b[1mcritical\x1b[0m") == \
        "\x1b[32m+ create\x1b[0m \x1b[1mcritical\x1b[0m"
    assert terminal_safe("line\r\nnext\n") == "line\r\nnext\n"  # a file with Windows line ends, in fmt --diff
    assert terminal_safe("\x1b[8mhidden\x1b[0m") == "\\u001b[8mhidden\x1b[0m"
    assert terminal_safe("a\rb \x1b]0;t\x07 \x9b") == "a\\u000db \\u001b]0;t\\u0007 \\u009b"
