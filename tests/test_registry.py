"""The resource model's promises: a settings object is one catalog entry (client and emulator follow it), writes
run in dependency order, ids the server assigns during an apply reach later writes, and both sides read the same
per-version table."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import ProjectDir

from vboplan.api import versions
from vboplan.api.client import VboClient
from vboplan.emulator import versions as emulator_versions
from vboplan.kinds import catalog
from vboplan.kinds.base import AfterApply, Basis, Request
from vboplan.kinds.catalog import Endpoint, SettingsSpec
from vboplan.kinds.registry import KINDS, Write, apply_order, registered
from vboplan.planning.changes import Address, Change, Drift, make

ORG = "contoso.onmicrosoft.com"


def only_dev_templates(project: ProjectDir) -> None:
    """The project of conftest (dev: API v8) without its templates."""
    for path in (project.root / "templates").glob("*"):
        path.unlink()


def test_a_settings_kind_is_one_catalog_entry(project: ProjectDir) -> None:
    """A throwaway settings object built from an existing schema: registered once, it renders, plans, applies
    against the emulator (which serves it from the same entry) and converges; no other module knows it."""
    only_dev_templates(project)
    spec = SettingsSpec("throwaway_settings", {"v8": Endpoint("ThrowawaySettings", "RESTHistorySettings",
                                                              "RESTHistorySettings")},
                        fresh={"keepAllsessions": True, "keeponlyLast": 53})
    with catalog.registered(spec):
        project.write("templates/throwaway.yaml.j2", "throwaway_settings: {keepAllsessions: false, keeponlyLast: 7}\n")
        planned = project.run("plan", "--env", "dev", "--format", "json")
        assert planned.exit_code == 0, planned.output
        changes = {c["address"]: (c["before"], c["after"]) for c in json.loads(planned.stdout)["plans"][0]["changes"]}
        assert changes == {"throwaway_settings.keepAllsessions": (True, False),
                           "throwaway_settings.keeponlyLast": (53, 7)}
        assert project.run("apply", "--env", "dev", "--auto-approve").exit_code == 0
        assert project.api("dev").get("/v8/ThrowawaySettings").json()["keeponlyLast"] == 7
        again = project.run("plan", "--env", "dev", "--detailed-exitcode")
        assert again.exit_code == 0, again.output
        shown = project.run("state", "show", "--env", "dev").stdout
        assert "throwaway_settings.keeponlyLast" in shown
        assert project.run("plan", "--env", "dev", "--target", "throwaway_settings.keeponlyLast").exit_code == 0
        project.write("vboplan.yaml", (project.root / "vboplan.yaml").read_text().replace("api_version: v8",
                                                                                          "api_version: v6", 1))
        wrong = project.run("validate", "--env", "dev")
        assert wrong.exit_code == 1 and "throwaway_settings is not in API v6; it exists in v8" in wrong.stderr
    assert "throwaway_settings" not in KINDS


@dataclass(frozen=True)
class AuditNotes:
    """A test kind that needs audit items created first: each note names a user whose new audit item's id (known
    only once the server assigned it) it writes into the Exchange explorer's ``username`` on the server."""

    name: str = "audit_notes"
    requires: tuple[str, ...] = ("audit_items",)

    def normalise(self, version: str, raw: Any, where: Any) -> list[str]:
        return list(raw)

    def scope(self, desired: list[str]) -> list[str]:
        return sorted(desired)

    def addresses(self, scope: list[str]) -> set[Address]:
        return {Address(self.name)} | {Address(self.name).entry(user) for user in scope}

    def read(self, client: VboClient, scope: list[str]) -> dict[str, Any]:
        return {"username": client.get_settings("VexEmailSettings").get("username")}

    def diff(self, version: str, live: Any, desired: list[str], recorded: Any) -> list[Change]:
        return [make("create", self.name, Address(self.name).entry(user), None, user) for user in desired
                if live["username"] is None]

    def derive(self, basis: Basis, address: Address, action: str, after: Any) -> Change:
        user = address.parts[0][1]
        assert basis.live["username"] is None and user in basis.scope and after == user
        return make("create", self.name, address, None, user)

    def desired_value(self, desired: Any, change: Change) -> Any:
        return None

    def writes(self, basis: Basis, changes: list[Change]) -> list[Write]:
        # The id of the audit item is the server's to assign, during this very apply: a placeholder until then.
        return [Write(f"note {c.after}", [c], requests=[Request("PUT", "VexEmailSettings", {"username": AfterApply(str(
            Address("audit_items").entry(ORG).field("user").entry(c.after)))}, expect=(200, 204))])
                for c in changes]

    def verify(self, change: Change, live: Any) -> bool:
        return bool(live["username"])

    def snapshot(self, live: Any, applied: list[Change], recorded: Any) -> Any:
        return live

    def state_rows(self, recorded: Any) -> list[tuple[str, Any]]:
        return [(self.name, recorded.get("username"))]

    def drift(self, recorded: Any, live: Any) -> list[Drift]:
        return []


def test_creates_follow_their_dependencies_and_see_server_ids(project: ProjectDir) -> None:
    only_dev_templates(project)
    project.write("templates/audit.yaml.j2", f"audit_items:\n  {ORG}:\n    users: [ceo@contoso.com]\n")
    project.write("templates/notes.yaml.j2", "audit_notes: [ceo@contoso.com]\n")
    with registered(AuditNotes()):
        assert list(KINDS).index("audit_items") < list(KINDS).index("audit_notes")
        result = project.run("apply", "--env", "dev", "--auto-approve")
        assert result.exit_code == 0, result.output
        http = project.api("dev")
        orgs = http.get("/v8/Organizations").json()["results"]
        org_id = next(o["id"] for o in orgs if o["name"] == ORG)
        items = http.get(f"/v8/Organizations/{org_id}/AuditItems").json()
        assert http.get("/v8/VexEmailSettings").json()["username"] == items[0]["id"]


def test_a_kind_that_does_not_derive_its_changes_is_refused() -> None:
    """Rows of a plan file are never taken as written: a kind without derive (or with the old writes(client, ...)
    and no derive) cannot be registered, and the message says what it lacks."""

    @dataclass(frozen=True)
    class Undeclared:
        name: str = "undeclared"
        requires: tuple[str, ...] = ()

        def writes(self, client: Any, changes: list[Change]) -> list[Write]:
            return []

    with pytest.raises(TypeError, match="'undeclared' has no derive: every kind derives each change"):
        with registered(Undeclared()):  # type: ignore[arg-type]
            pass
    assert "undeclared" not in KINDS
    assert all(callable(getattr(KINDS[name], "derive", None)) for name in KINDS)  # every shipped kind, too


def test_apply_order_puts_required_kinds_first_and_refuses_cycles() -> None:
    @dataclass(frozen=True)
    class Stub:
        name: str
        requires: tuple[str, ...] = ()

    kinds: Any = {"jobs": Stub("jobs", ("repositories",)), "roles": Stub("roles"), "repositories": Stub("repositories")}
    assert apply_order(kinds) == ["repositories", "jobs", "roles"]
    kinds["repositories"] = Stub("repositories", ("jobs",))
    try:
        apply_order(kinds)
    except ValueError as exc:
        assert "cycle" in str(exc)
    else:
        raise AssertionError("a cycle must be refused")


def test_client_and_emulator_read_one_version_table() -> None:
    assert emulator_versions.PROFILES is versions.TRAITS
    assert tuple(versions.TRAITS) == versions.VERSIONS


def test_addresses_parse_back_and_cover_what_is_under_them() -> None:
    text = 'organization_retention_exclusions["contoso.onmicrosoft.com"].calendar'
    address = Address.parse(text)
    assert str(address) == text and address == Address("organization_retention_exclusions").entry(
        "contoso.onmicrosoft.com").field("calendar")
    assert Address.parse('organization_retention_exclusions["contoso.onmicrosoft.com"]').covers(address)
    assert not Address.parse("organization_retention_exclusions.calendar").covers(address)
    odd = Address("audit_items").entry('a "quoted" ]name').field("user").entry("x")
    assert Address.parse(str(odd)) == odd


def test_the_api_layer_never_builds_a_server() -> None:
    """api/ talks through the transport it is given; `emulator:<name>` is wired above it (vboplan.connection)."""
    import re
    from pathlib import Path

    import vboplan.api

    for source in Path(vboplan.api.__file__).parent.glob("*.py"):
        text = source.read_text(encoding="utf-8")
        assert not re.search(r"^\s*(from|import)\s+\S*emulator", text, re.MULTILINE), source.name
        assert "WSGITransport" not in text and "emulator_name" not in text, source.name
