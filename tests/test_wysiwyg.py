"""What approvers see is what apply sends. Each test makes a real plan file against the emulator, edits it as a
hostile author would (the checksum recomputed, the author signature and two approvals made again with real
ssh-keygen keys), and shows that apply either refuses it, naming the change, or sends exactly the requests
`vboplan show --requests` lists. A property test compares, for generated plans, the requests the emulator received
with those `show --requests` listed."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import API_SECRET, SEED, SMTP_SECRET, ProjectDir

from vboplan.core import plan_requests
from vboplan.planning.plan import Plan, change_id, plan_digest
from vboplan.sensitive import MASK, digest, matches
from vboplan.state import now
from vboplan.trust import approvals, signing

ORG = "contoso.onmicrosoft.com"
JANE = f'audit_items["{ORG}"].user["jane@contoso.com"]'
CEO = f'audit_items["{ORG}"].user["ceo@contoso.com"]'


@pytest.fixture
def prod(project: ProjectDir) -> ProjectDir:
    """conftest's project, whose prod (API v7) needs two approvals, with a job mail sender and audit items."""
    project.write("templates/jobs.yaml.j2", "job_email_settings:\n  enableNotification: true\n"
                                            "  notifyOnFailure: true\n  from: vbo.jobs@contoso.com\n")
    project.write("templates/audit_items.yaml.j2", f"audit_items:\n  {ORG}:\n    users: {{{{ audited }}}}\n")
    project.write("environments/prod.yaml", "domain: contoso.com\nsmtp:\n  host: smtp.office365.com\n"
                                            "notify_success: true\naudited: [ceo@contoso.com, cfo@contoso.com]\n")
    seed = json.loads(json.dumps(SEED))
    seed["organizations"][0]["audit_items"] = [{"user": "jane@contoso.com"}, {"user": "ceo@contoso.com"},
                                               {"user": "cfo@contoso.com"}]
    project.seed("prod", seed)
    return project


def _plan(project: ProjectDir) -> Path:
    """A fresh plan of prod (an earlier one, approvals and all, is replaced)."""
    path = project.root / "plans" / "prod.json"
    path.unlink(missing_ok=True)
    result = project.run("plan", "--env", "prod", "--out", str(path))
    assert result.exit_code == 0, result.output
    return path


def _sign(project: ProjectDir, statement: dict[str, Any], who: str, namespace: str) -> str:
    message = project.root / f"statement-{who}.json"
    message.write_bytes(signing.canonical(statement))
    Path(f"{message}.sig").unlink(missing_ok=True)
    subprocess.run(["ssh-keygen", "-Y", "sign", "-n", namespace, "-f", str(project.keys[who]), str(message)],
                   check=True, capture_output=True)
    return Path(f"{message}.sig").read_text()


def _sign_as_author(project: ProjectDir, document: dict[str, Any]) -> None:
    """Recompute the digest of an edited plan document and sign it again as its author (ann), as she could."""
    key = project.keys["ann"]
    document["author_key"] = " ".join(signing.public_key_of(key).split()[:2])
    document["checksum"] = plan_digest(document)
    plan = Plan(environment=document["environment"], server=document["server"],
                api_version=document["api_version"], changes=[], live=document["live"], scope=document["scope"],
                created_by=document["created_by"], created_at=document["created_at"], checksum=document["checksum"],
                author_key=document["author_key"])
    statement = approvals.author_statement(plan, now())
    document["author_signature"] = {"statement": statement,
                                    "signature": _sign(project, statement, "ann", signing.PLAN_NAMESPACE)}


def _reseal(project: ProjectDir, path: Path, document: dict[str, Any]) -> None:
    """Write ``document`` back as its author would after editing it: signed again by the author (ann) and approved
    again by alice and bob, every signature by a real key, over the new digest. `vboplan approve` itself refuses
    the edited file (it loads the plan), so the approvals are made as anyone with a key could make them."""
    document["approvals"] = []
    _sign_as_author(project, document)
    for who in ("alice", "bob"):
        approval = {"type": "vboplan-approval", "version": 1, "plan": document["checksum"],
                    "environment": document["environment"], "server": document["server"],
                    "changes": [c["id"] for c in document["changes"]], "ticket": "CHG-7", "comment": None,
                    "at": now()}
        document["approvals"].append({"statement": approval,
                                      "signature": _sign(project, approval, who, "vboplan-approve")})
    path.write_text(json.dumps(document, indent=2))


def _held(project: ProjectDir) -> dict[str, Any]:
    """What prod's server holds: both mail settings and the names it audits."""
    http = project.api("prod")
    org = next(o for o in http.get("/v8/Organizations").json()["results"] if o["name"] == ORG)
    items = http.get(f"/v8/Organizations/{org['id']}/AuditItems").json()
    return {**project.server("prod"), "audited": sorted(i["user"]["name"] for i in items if i["type"] == "User")}


def _refused(project: ProjectDir, path: Path, change_id: str, *fragments: str) -> str:
    """Apply (and show) refuse the plan with one message naming ``change_id``; the server is untouched."""
    before = _held(project)
    for command in (["apply", str(path)], ["show", str(path)]):
        result = project.run(*command)
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert change_id in result.stderr, result.stderr
        for fragment in fragments:
            assert fragment in result.stderr, result.stderr
    assert _held(project) == before
    return result.stderr


def _row(document: dict[str, Any], address: str) -> dict[str, Any]:
    return next(c for c in document["changes"] if c["address"] == address)


def _planned(project: ProjectDir, address: str) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """A fresh plan of prod: its file, its document, and the row of ``address`` in it (to edit)."""
    path = _plan(project)
    document = json.loads(path.read_text())
    return path, document, _row(document, address)


def test_a_job_mail_row_cannot_write_the_audit_mail(prod: ProjectDir) -> None:
    path, document, row = _planned(prod, "job_email_settings.from")
    row["kind"], row["detail"] = "audit_email_settings", {"field": "to"}
    _reseal(prod, path, document)
    _refused(prod, path, row["id"], "resource kind 'job_email_settings'", "'audit_email_settings'")
    # The same with the kind left alone: the detail alone names another field.
    document = json.loads(path.read_text())
    _row(document, "job_email_settings.from").update(kind="job_email_settings", detail={"field": "to"})
    _reseal(prod, path, document)
    _refused(prod, path, row["id"], "detail")


def test_stop_auditing_jane_cannot_delete_the_ceo(prod: ProjectDir) -> None:
    # The templates keep auditing the CEO and the CFO, no longer Jane: the honest plan deletes Jane's item only.
    path = _plan(prod)
    document = json.loads(path.read_text())
    items = document["live"]["audit_items"]["organizations"][ORG]["items"]
    ceo = next(i for i in items if i["name"] == "ceo@contoso.com")
    row = _row(document, JANE)
    assert row["action"] == "delete" and [c["action"] for c in document["changes"]].count("delete") == 1
    row["detail"].update(itemId=ceo["id"], principalId=ceo["principalId"])
    _reseal(prod, path, document)
    _refused(prod, path, row["id"], "detail")


def test_stop_auditing_jane_cannot_delete_the_ceo_through_the_recorded_items(prod: ProjectDir) -> None:
    """The other way to point Jane's row at the CEO's item: swap the items' ids in the recorded audit items. The
    row then derives from the file, but the server's items are not the recorded ones: the plan is stale."""
    path = _plan(prod)
    document = json.loads(path.read_text())
    items = document["live"]["audit_items"]["organizations"][ORG]["items"]
    jane = next(i for i in items if i["name"] == "jane@contoso.com")
    ceo = next(i for i in items if i["name"] == "ceo@contoso.com")
    jane["id"], ceo["id"] = ceo["id"], jane["id"]
    _row(document, JANE)["detail"]["itemId"] = jane["id"]
    _reseal(prod, path, document)
    assert prod.run("show", str(path)).exit_code == 0
    before = _held(prod)
    result = prod.run("apply", str(path))
    assert result.exit_code == 1 and "is stale" in result.stderr, result.output
    assert _held(prod) == before


def test_audit_jane_cannot_audit_someone_else(prod: ProjectDir) -> None:
    prod.write("environments/prod.yaml", "domain: contoso.com\nsmtp:\n  host: smtp.office365.com\n"
                                         "notify_success: true\naudited: [jane@contoso.com, Chief Executive]\n")
    seed = json.loads(json.dumps(SEED))
    prod.seed("prod", seed)  # nobody audited yet
    path = _plan(prod)
    document = json.loads(path.read_text())
    jane, ceo = _row(document, JANE), _row(document, CEO)
    assert jane["action"] == ceo["action"] == "create"
    # Jane's row, shown as "Jane Doe <jane@contoso.com>", made to post the CEO's principal.
    resolved = document["live"]["audit_items"]["organizations"][ORG]["resolved"]["users"]
    jane["detail"]["principal"] = resolved["chief executive"]
    _reseal(prod, path, document)
    _refused(prod, path, jane["id"], "detail")
    # Or the CEO's row shown as Jane: the desired value is not the principal its address names.
    path = _plan(prod)
    document = json.loads(path.read_text())
    _row(document, CEO)["after"] = "Jane Doe <jane@contoso.com>"
    _reseal(prod, path, document)
    _refused(prod, path, ceo["id"], "desired value")


def test_audit_jane_cannot_audit_someone_else_through_the_recorded_directory(prod: ProjectDir) -> None:
    """The recorded directory answer edited: Jane's name resolved to the CEO's id. Every row derives from the file
    and shows "Jane Doe <jane@contoso.com>"; apply asks the server whom the id names before anything is sent."""
    prod.write("environments/prod.yaml", "domain: contoso.com\nsmtp:\n  host: smtp.office365.com\n"
                                         "notify_success: true\naudited: [jane@contoso.com]\n")
    prod.seed("prod", json.loads(json.dumps(SEED)))
    path = _plan(prod)
    document = json.loads(path.read_text())
    resolved = document["live"]["audit_items"]["organizations"][ORG]["resolved"]["users"]
    org = next(o for o in prod.api("prod").get("/v8/Organizations").json()["results"] if o["name"] == ORG)
    users = prod.api("prod").get(f"/v8/Organizations/{org['id']}/Users", params={"userName": "ceo@contoso.com"})
    resolved["jane@contoso.com"]["id"] = users.json()["results"][0]["id"]
    row = _row(document, JANE)
    row["detail"]["principal"]["id"] = resolved["jane@contoso.com"]["id"]
    _reseal(prod, path, document)
    shown = prod.run("show", str(path))
    assert shown.exit_code == 0 and "Jane Doe <jane@contoso.com>" in shown.stdout
    before = _held(prod)
    result = prod.run("apply", str(path))
    assert result.exit_code == 1, result.output
    assert row["id"] in result.stderr and "Chief Executive <ceo@contoso.com>" in result.stderr, result.stderr
    assert _held(prod) == before


def test_two_rows_with_one_change_id_are_refused(prod: ProjectDir) -> None:
    path = _plan(prod)
    document = json.loads(path.read_text())
    port = _row(document, "audit_email_settings.port")
    twin = dict(_row(document, "audit_email_settings.to"), id=port["id"])
    document["changes"] = [c for c in document["changes"] if c["address"] != "audit_email_settings.to"] + [twin]
    _reseal(prod, path, document)
    _refused(prod, path, port["id"], "id")
    # The same row twice (one approval of its id would have applied both).
    path = _plan(prod)
    document = json.loads(path.read_text())
    document["changes"].append(dict(_row(document, "audit_email_settings.port")))
    _reseal(prod, path, document)
    _refused(prod, path, port["id"], "twice")


def test_a_readable_field_cannot_be_hidden_as_sensitive(prod: ProjectDir) -> None:
    path, document, row = _planned(prod, "job_email_settings.from")
    row.update(sensitive=True, before=None, after=None, after_digest=digest("vbo.jobs@contoso.com"),
               detail={"field": "from", "write_only": True, "recorded": False})
    _reseal(prod, path, document)
    _refused(prod, path, row["id"], "marked sensitive", "not secret")


def test_a_readable_field_cannot_be_hidden_by_listing_it_as_filled_from_secret(prod: ProjectDir) -> None:
    """The subtler form: the plan claims the template fills ``from`` from secret(), so the field is derived as
    secret and every view masks it. Apply renders the templates and finds no secret() there."""
    path = _plan(prod)
    document = json.loads(path.read_text())
    document["secret_fields"]["job_email_settings"] = ["from"]
    document["live"]["job_email_settings"]["from"] = digest(None)
    row = _row(document, "job_email_settings.from")
    row.update(sensitive=True, before=None, after=None, after_digest=digest("vbo.jobs@contoso.com"))
    _reseal(prod, path, document)
    shown = prod.run("show", str(path))
    # Either show refuses it already (the change's recorded severity no longer fits), or it masks the value as the
    # attacker wanted; apply refuses it whichever.
    assert (shown.exit_code == 1 and row["id"] in shown.stderr) or \
        (shown.exit_code == 0 and "vbo.jobs@contoso.com" not in shown.stdout), shown.output
    before = _held(prod)
    result = prod.run("apply", str(path))
    assert result.exit_code == 1 and row["id"] in result.stderr, result.output
    assert _held(prod) == before


def test_a_secret_cannot_be_unmasked(prod: ProjectDir) -> None:
    path, document, row = _planned(prod, "audit_email_settings.userPassword")
    row.update(sensitive=False, after="attacker-known", detail={"field": "userPassword"})
    row.pop("after_digest")
    _reseal(prod, path, document)
    _refused(prod, path, row["id"], "secret field")


def test_a_false_before_cannot_make_a_change_look_like_none(prod: ProjectDir) -> None:
    path, document, row = _planned(prod, "audit_email_settings.smtpServer")
    row["before"] = row["after"]
    _reseal(prod, path, document)
    _refused(prod, path, row["id"], "old.smtp.local")
    # Both the row and the recorded live value: then the row is no change at all.
    document = json.loads(path.read_text())
    document["live"]["audit_email_settings"]["smtpServer"] = row["after"]
    _reseal(prod, path, document)
    _refused(prod, path, row["id"], "no change")
    # The recorded live value alone (the row then derives, and shows the false value): the server says otherwise.
    path = _plan(prod)
    document = json.loads(path.read_text())
    document["live"]["audit_email_settings"]["smtpServer"] = "smtp.elsewhere.example"
    _row(document, "audit_email_settings.smtpServer")["before"] = "smtp.elsewhere.example"
    _reseal(prod, path, document)
    before = _held(prod)
    result = prod.run("apply", str(path))
    assert result.exit_code == 1 and "is stale" in result.stderr and "smtpServer" in result.stderr, result.output
    assert _held(prod) == before


@pytest.mark.parametrize("edit, fragment", [
    (lambda d, r: r.update(id="caaaaa"), "the id of this address"),
    (lambda d, r: r.update(action="create"), "only ever updated"),
    (lambda d, r: d["scope"]["audit_email_settings"].remove("port"), "not in the plan's scope"),
    (lambda d, r: r.update(address="audit_email_settings.Port", id=change_id("audit_email_settings.Port")),
     "no field 'Port'"),
])
def test_other_edits_of_a_row_are_refused(prod: ProjectDir, edit: Any, fragment: str) -> None:
    path, document, row = _planned(prod, "audit_email_settings.port")
    original = row["id"]
    edit(document, row)
    _reseal(prod, path, document)
    message = _refused(prod, path, row["id"], fragment)
    assert original in message or row["id"] in message


def _requests_shown(project: ProjectDir, path: Path) -> list[dict[str, Any]]:
    shown = project.run("show", str(path), "--requests", "--format", "json")
    assert shown.exit_code == 0, shown.output
    return list(json.loads(shown.stdout)["plans"][0]["requests"])


def _writes_received(project: ProjectDir, env: str, received: list[tuple[str, str, bytes]]) -> list[dict[str, Any]]:
    """The writes the emulator received, as `show --requests` prints them (the secrets vboplan knows masked)."""
    def masked(value: Any) -> Any:
        if value in (SMTP_SECRET, API_SECRET):
            return MASK
        if isinstance(value, dict):
            return {k: masked(v) for k, v in value.items()}
        if isinstance(value, list):
            return [masked(v) for v in value]
        return value

    return [{"method": method, "path": where, **({"body": masked(json.loads(body))} if body else {})}
            for method, where, body in received if method != "GET" and not where.endswith(("/token", "/logout"))]


def test_an_edited_desired_value_is_applied_exactly_as_shown(prod: ProjectDir) -> None:
    """The author may change a desired value after planning: approvers see the new value, and only it is sent."""
    path = _plan(prod)
    document = json.loads(path.read_text())
    _row(document, "audit_email_settings.port")["after"] = 2525
    _reseal(prod, path, document)
    shown = prod.run("show", str(path))
    assert shown.exit_code == 0 and "2525" in shown.stdout, shown.output
    listed = _requests_shown(prod, path)
    assert plan_requests(path) == listed  # the library entry point gives the same list
    emulator = prod.emulator("prod")
    emulator.received = []
    try:
        result = prod.run("apply", str(path))
        assert result.exit_code == 0, result.output
        sent = _writes_received(prod, "prod", emulator.received)
    finally:
        emulator.received = None
    assert sent == [{k: v for k, v in r.items() if k != "changes"} for r in listed]
    assert prod.server("prod")["audit_email_settings"]["port"] == 2525


SETTINGS = {
    "audit_email_settings": {"port": [25, 465, 587], "from": ["a@contoso.com", "b@contoso.com"],
                             "useSSL": [True, False], "userPassword": ["{{ secret('SMTP_PASSWORD') }}"]},
    "job_email_settings": {"notifyOnSuccess": [True, False], "subject": ["[x] %JobName%", "[y] %JobResult%"]},
    "history_settings": {"keeponlyLast": [7, 30, 53], "keepAllsessions": [False]},
    "retention_exclusion_settings": {"calendar": [True, False], "contacts": [True, False]},
    "organization_retention_exclusions": {"calendar": [True, False], "contacts": [True, False]},
    "update_settings": {"updateSettings": [{"sendEmailOnAvailableUpdates": True}]},
}
PEOPLE = ["jane@contoso.com", "ceo@contoso.com", "cfo@contoso.com", "Alex Twin", "HR Department", "Finance"]


def _random_templates(project: ProjectDir, rng: random.Random) -> None:
    for path in (project.root / "templates").glob("*"):
        path.unlink()
    for key in rng.sample(sorted(SETTINGS), rng.randint(2, len(SETTINGS))):
        fields = {name: rng.choice(values) for name, values in SETTINGS[key].items() if rng.random() < 0.7}
        if not fields:
            continue
        text = "\n".join(f"  {name}: {json.dumps(value) if not str(value).startswith('{{') else value}"
                         for name, value in fields.items())
        if key.startswith("organization_"):
            text = "\n".join(f"  {line}" for line in text.splitlines())
            text = f"  {ORG}:\n{text}"
        project.write(f"templates/{key}.yaml.j2", f"{key}:\n{text}\n")
    users = [p for p in rng.sample(PEOPLE[:3], rng.randint(0, 3))]
    groups = [p for p in rng.sample(PEOPLE[4:], rng.randint(0, 2))]
    project.write("templates/audit_items.yaml.j2",
                  f"audit_items:\n  {ORG}:\n    users: {json.dumps(users)}\n    groups: {json.dumps(groups)}\n")


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_apply_sends_exactly_the_requests_show_lists(project: ProjectDir, seed: int) -> None:
    """For generated templates over settings and audit items (dev: API v8, no approvals), twice in a row (the
    second plan starts from what the first applied), the writes the server received are those `show --requests`
    listed, in order; and the templates converge."""
    rng = random.Random(seed)
    state = json.loads(json.dumps(SEED))
    state["organizations"][0]["audit_items"] = [{"user": "jane@contoso.com"}, {"group": "Finance"}]
    project.seed("dev", state)
    emulator = project.emulator("dev")
    for _ in range(2):
        _random_templates(project, rng)
        path = project.root / "plans" / "dev.json"
        planned = project.run("plan", "--env", "dev", "--out", str(path))
        assert planned.exit_code == 0, planned.output
        listed = _requests_shown(project, path)
        emulator.received = []
        try:
            applied = project.run("apply", str(path))
            assert applied.exit_code == 0, applied.output
            sent = _writes_received(project, "dev", emulator.received)
        finally:
            emulator.received = None
        assert sent == [{k: v for k, v in r.items() if k != "changes"} for r in listed]
        assert {i for r in listed for i in r["changes"]} == {c["id"] for c in json.loads(path.read_text())["changes"]}
        again = project.run("plan", "--env", "dev", "--detailed-exitcode")
        assert again.exit_code == 0, again.output


def test_removals_from_a_long_list_of_audit_items_are_derived_from_the_items_they_keep(project: ProjectDir) -> None:
    """Above 1,000 audit items a plan file keeps their count and digest, and the items its removals name (so each
    removal derives from the file); apply derives them again from every item it re-reads. An edited kept item (a
    removal pointed at someone the templates keep) derives from the file but not from the server."""
    from vboplan.emulator import generate_tenant
    from vboplan.kinds.audit_items import KEEP_ITEMS_UP_TO

    data = generate_tenant(1, KEEP_ITEMS_UP_TO + 100, 0)
    data["credentials"] = [{"username": "admin", "password": API_SECRET}]
    org = data["organizations"][0]["name"]
    audited = [user["name"] for user in data["organizations"][0]["users"][:KEEP_ITEMS_UP_TO + 50]]
    data["organizations"][0]["audit_items"] = [{"user": name} for name in audited]
    project.write("emulator/dev.json", json.dumps(data))
    (project.root / "emulator" / "dev.yaml").unlink()
    for template in ("audit", "jobs"):
        (project.root / "templates" / f"{template}.yaml.j2").unlink()
    project.write("templates/items.yaml.j2", f"audit_items:\n  {org}:\n    users: {{{{ users | tojson }}}}\n")
    project.write("environments/dev.yaml", f"users: {json.dumps(audited[2:])}\n")
    path = project.root / "plan.json"
    assert project.run("plan", "--env", "dev", "--out", str(path)).exit_code == 0
    document = json.loads(path.read_text())
    kept = document["live"]["audit_items"]["organizations"][org]
    assert "items" not in kept and sorted(i["name"] for i in kept["items_kept"]) == sorted(audited[:2])
    removal = next(r for r in _requests_shown(project, path) if r["path"].endswith("/AuditItems/remove"))
    assert sorted(removal["body"]["itemIds"]) == sorted(i["id"] for i in kept["items_kept"])

    # The author points the first removal at the item of someone the templates keep, in the row and the kept item.
    http = project.api("dev")
    org_id = kept["id"]
    other = next(i for i in http.get(f"/v8/Organizations/{org_id}/AuditItems").json()
                 if i["user"]["name"] == audited[10])
    row = next(c for c in document["changes"] if c["address"].endswith(f'["{kept["items_kept"][0]["name"]}"]'))
    kept["items_kept"][0]["id"] = row["detail"]["itemId"] = other["id"]
    _sign_as_author(project, document)
    path.write_text(json.dumps(document))
    assert project.run("show", str(path)).exit_code == 0  # the file agrees with itself
    result = project.run("apply", str(path))
    assert result.exit_code == 1 and row["id"] in result.stderr and "another change" in result.stderr, result.output
    assert len(http.get(f"/v8/Organizations/{org_id}/AuditItems").json()) == len(audited)

    # The honest plan applies, and removes exactly the two items it named.
    assert project.run("plan", "--env", "dev", "--out", str(path), "--force").exit_code == 0
    assert project.run("apply", str(path)).exit_code == 0
    names = {i["user"]["name"] for i in http.get(f"/v8/Organizations/{org_id}/AuditItems").json()}
    assert names == set(audited[2:])


def test_a_key_named_twice_in_a_plan_file_is_refused(prod: ProjectDir) -> None:
    """A JSON reader an approver uses may show the first of two values, vboplan would use the last."""
    path, document, row = _planned(prod, "audit_email_settings.port")
    _reseal(prod, path, document)
    text = path.read_text()
    marker = f'"id": "{row["id"]}",'
    path.write_text(text.replace(marker, f'{marker} "after": 2525,', 1))
    for command in (["show", str(path)], ["apply", str(path)]):
        result = prod.run(*command)
        assert result.exit_code == 1 and '"after" appears twice' in result.stderr, result.output


def test_a_secrets_hash_that_asks_for_endless_work_is_refused_at_once(prod: ProjectDir) -> None:
    """A digest names its own iteration count; an author who writes ten thousand million of them (hours of PBKDF2)
    gets the one message of a secret that no longer matches, and nothing is sent."""
    path, document, row = _planned(prod, "audit_email_settings.userPassword")
    row["after_digest"]["iterations"] = 10_000_000_000
    _reseal(prod, path, document)
    before = _held(prod)
    result = prod.run("apply", str(path))
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert row["id"] in result.stderr and "resolves to a different value" in result.stderr, result.stderr
    assert _held(prod) == before


def test_the_snapshot_keeps_the_hash_approvers_were_shown(prod: ProjectDir) -> None:
    """Apply checks the password against the plan's salted hash and stores that same hash in the snapshot (one slow
    hash for both, not a second with a new salt); the next plan finds the password unchanged."""
    path, document, row = _planned(prod, "audit_email_settings.userPassword")
    _reseal(prod, path, document)
    result = prod.run("apply", str(path))
    assert result.exit_code == 0, result.output
    snapshot = json.loads((prod.root / ".vboplan/state/prod.json").read_text())
    kept = snapshot["resources"]["audit_email_settings"]["secrets"]["userPassword"]
    assert kept == row["after_digest"] and matches(SMTP_SECRET, kept)
    again = prod.run("plan", "--env", "prod", "--detailed-exitcode")
    assert again.exit_code == 0, again.output
