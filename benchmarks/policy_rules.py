"""Benchmark: what 200 policy rules add to the CPU time of a converged plan of 100,000 declared audit entries
(benchmarks/converged.py's setup, plus three settings objects), printed beside the same plan without rules; bound
10 %. The emulator runs in its own process at latency 0; each variant runs ``--runs`` times, the least CPU counts.

    .venv/bin/python benchmarks/policy_rules.py [--entries 100000] [--runs 5]

Measured on the shared 2-core machine, --entries 100000 --runs 3, 03:06-03:09 UTC 2026-12-02, load 16 -> 10:
2.130 s CPU without rules, 2.156 s with the 200 (+1.2 %, within the +10 % bound), 2.527 s with the extra rule over
the 100,000 names (+18.6 %, no bound). Before a kind whose rules judge only changes stopped building its objects
when none is planned (same day, load 12-18): +19 to +22 %, OVER. (Earlier, at 50,000 entries: the client's old
64 MiB answer bound stopped the 100,000 plan.)

The 200 rules: 160 over the settings objects (desired and live, four levels, all holding but a few advisories),
40 over the audit items that judge planned changes (none in a converged plan). A third line measures one more rule
over the organization's declared names themselves (``size(desired.users)``), which CEL must be handed in
full: it is printed for what it costs, without a bound.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from tempfile import TemporaryDirectory

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, Run, emulator_process, run_vboplan, verdict, write_project, write_seed  # noqa: E402

sys.path.insert(0, str(ROOT))
from vboplan.emulator.synth import generate_tenant  # noqa: E402

ORG = "org1.onmicrosoft.com"
SETTINGS = {
    "audit_email_settings": {"enableNotification": True, "smtpServer": "smtp.corp.local", "port": 587,
                             "useSSL": True, "from": "vbo@corp.local", "to": "security@corp.local"},
    "job_email_settings": {"enableNotification": True, "notifyOnFailure": True, "notifyOnWarning": True},
    "history_settings": {"keepAllsessions": False, "keeponlyLast": 53},
}
TEMPLATES = {
    "items.yaml.j2": "audit_items:\n  " + ORG + ":\n    users: {{ users | tojson }}\n",
    "settings.yaml.j2": "".join(f"{key}: {{{{ {key} | tojson }}}}\n" for key in SETTINGS),
}
_EXPRESSIONS = {
    "audit_email_settings": ["desired.enableNotification == true", "desired.port >= {n}",
                             "live == null || live.useSSL == desired.useSSL", "desired.to.endsWith('corp.local')",
                             "!has(desired.subject) || size(desired.subject) > {n}"],
    "job_email_settings": ["desired.notifyOnFailure == true", "live == null || live.notifyOnWarning == true",
                           "desired.enableNotification || desired.notifyOnFailure"],
    "history_settings": ["desired.keeponlyLast >= {n}", "desired.keepAllsessions == false || live != null"],
}
_LEVELS = ("advisory", "warn", "block", "warn")


def rule_file(extra: str = "") -> str:
    lines = ["rules:"]
    kinds = list(_EXPRESSIONS)
    for i in range(160):
        kind = kinds[i % len(kinds)]
        expr = _EXPRESSIONS[kind][i % len(_EXPRESSIONS[kind])].format(n=i % 50)
        lines += [f"  - id: settings-{i}", f"    level: {_LEVELS[i % 4]}", f"    resource: {kind}",
                  f"    expr: \"{expr}\"", f"    message: rule {i}"]
    for i in range(40):
        expr = ["change.action != 'delete'", "change.severity != 'critical'",
                "!change.address.contains('ceo@')", "change.severity == 'info' || change.action == 'create'"][i % 4]
        lines += [f"  - id: audit-{i}", f"    level: {('warn', 'block')[i % 2]}", "    resource: audit_items",
                  f"    expr: \"{expr}\"", f"    message: audit rule {i}"]
    return "\n".join(lines) + "\n" + extra


def measure(project: Path, work: Path, runs: int) -> Run:
    found = []
    for _ in range(runs):
        run = run_vboplan("-C", str(project), "-q", "plan", "--env", "bench", "--out", str(work / "plan.json"))
        if run.returncode != 0 or "No changes" not in run.stdout:
            raise SystemExit(f"plan failed or found changes:\n{run.stdout[-2000:]}\n{run.stderr}")
        found.append(run)
    return min(found, key=lambda r: r.cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with TemporaryDirectory() as tmp:
        work = Path(tmp)
        tenant = generate_tenant(1, args.entries, 100)
        names = [user["name"] for user in tenant["organizations"][0]["users"]]
        tenant["organizations"][0]["audit_items"] = [{"user": name} for name in names]
        seed = write_seed(work / "seed.json", {**tenant, **SETTINGS})
        del tenant
        with emulator_process("--seed", str(seed)) as (url,):
            project = write_project(work / "project", {"bench": url}, TEMPLATES, {"bench": {"users": names,
                                                                                           **SETTINGS}})
            config = project / "vboplan.yaml"
            # A 100,000-item answer can take longer than the 30 s default deadline on a loaded machine.
            plain = config.read_text(encoding="utf-8").replace("password_env: BENCH_PASSWORD\n",
                                                               "password_env: BENCH_PASSWORD\n    timeout: 600\n")
            config.write_text(plain, encoding="utf-8")
            bare = measure(project, work, args.runs)
            (project / "policies").mkdir()
            (project / "policies" / "bench.yaml").write_text(rule_file(), encoding="utf-8")
            config.write_text("policies: [policies/*.yaml]\n" + plain, encoding="utf-8")
            ruled = measure(project, work, args.runs)
            verdicts = (work / "plan.json").read_text(encoding="utf-8").count('"rule":')
            big = rule_file("  - {id: audited-names, level: warn, resource: audit_items, "
                            "expr: 'size(desired.users) > 0', message: names}\n")
            (project / "policies" / "bench.yaml").write_text(big, encoding="utf-8")
            names_rule = measure(project, work, args.runs)
    added = ruled.cpu / bare.cpu - 1
    print(f"{args.entries} declared audit entries and 3 settings objects, all converged; {args.runs} runs each "
          "(the least CPU counts)")
    print(f"plan without rules          {bare.cpu:6.3f} s CPU")
    print(f"plan with 200 rules         {ruled.cpu:6.3f} s CPU  (+{added * 100:4.1f} %, {verdicts} verdicts)   "
          f"bound +10 %   {verdict(added <= 0.10)}")
    print(f"  + 1 rule over the {args.entries:,} names  {names_rule.cpu:6.3f} s CPU  "
          f"(+{(names_rule.cpu / bare.cpu - 1) * 100:4.1f} % over no rules; no bound)")


if __name__ == "__main__":
    main()
