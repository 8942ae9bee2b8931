"""Change ids come from the change's address: the same change keeps its id across re-plans."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import ProjectDir

from vboplan.planning.changes import Address
from vboplan.planning.plan import change_id, change_ids


def _ids(project: ProjectDir, *extra: str) -> dict[str, str]:
    result = project.run("plan", "--env", "prod", "--format", "json", *extra)
    document = json.loads(result.stdout)
    return {c["address"]: c["id"] for c in document["plans"][0]["changes"]}


def test_ids_are_stable_across_plans_after_an_unrelated_change(project: ProjectDir, tmp_path: Path) -> None:
    project.write("templates/items.yaml.j2", "audit_items:\n  contoso.onmicrosoft.com:\n"
                                             "    users: [ceo@contoso.com]\n    groups: [HR Department]\n")
    first = _ids(project)
    # An unrelated change: the server's SMTP host is fixed by hand, so that change leaves the plan, and the
    # templates gain a setting, which adds one. Positions shift; ids must not.
    http = project.api("prod")
    settings = http.get("/v8/AuditEmailSettings").json()
    http.put("/v8/AuditEmailSettings", json={**settings, "smtpServer": "smtp.office365.com"}).raise_for_status()
    project.write("templates/jobs.yaml.j2", "job_email_settings:\n  enableNotification: true\n"
                                            "  notifyOnFailure: true\n  notifyOnSuccess: true\n"
                                            "  notifyOnWarning: true\n")
    second = _ids(project)
    assert "audit_email_settings.smtpServer" in first and "audit_email_settings.smtpServer" not in second
    assert "job_email_settings.notifyOnWarning" in second and "job_email_settings.notifyOnWarning" not in first
    common = set(first) & set(second)
    assert len(common) >= 10
    assert {a: first[a] for a in common} == {a: second[a] for a in common}
    # Short and readable: c and five letters or digits that cannot be confused.
    assert all(len(i) == 6 and i.startswith("c") and not set(i[1:]) & set("01ilo") for i in second.values())
    assert len(set(second.values())) == len(second)

    # So an approval of one change by id still names that change in a new plan of the same templates.
    planfile = tmp_path / "prod.json"
    assert project.run("plan", "--env", "prod", "--out", str(planfile)).exit_code == 0
    port = second["audit_email_settings.port"]
    approved = project.run("approve", str(planfile), "--key", str(project.keys["alice"]), "--change", port)
    assert approved.exit_code == 0, approved.output
    assert port in approved.stdout


def test_colliding_ids_are_lengthened() -> None:
    addresses = [Address("history_settings").field(f"f{i}") for i in range(40_000)]
    ids = change_ids(addresses)
    assert len(set(ids.values())) == len(addresses)
    short = [i for i in ids.values() if len(i) == 6]
    assert len(short) < len(addresses)  # 40,000 addresses in 31**5 ids: some collide and were lengthened
    for address in addresses:
        assert ids[str(address)] in (change_id(address), change_id(address, 7), change_id(address, 9))
