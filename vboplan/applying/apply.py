"""Apply: push exactly the cleared changes in a fixed order, read back to verify, record a state snapshot.

Whatever happens after the first write, a snapshot is written recording what was applied, so a failed apply never
loses track of what the server now holds; the next plan shows only the remainder.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from vboplan import progress
from vboplan.api.client import VboClient
from vboplan.applying.journal import WriteJournal, fold
from vboplan.connection import connect
from vboplan.errors import ApplyError, ApplyInterrupted, PlanError, StateError, VboplanError
from vboplan.kinds import refs
from vboplan.kinds.base import AfterApply, ConfirmsWithServer
from vboplan.kinds.hooks import ChecksScope, ConcealsLive, Repoints
from vboplan.kinds.lifecycle import marked, rule_of
from vboplan.kinds.registry import KINDS, Write, WriteContext
from vboplan.output.wording import differences, plural
from vboplan.planning import guard
from vboplan.planning.changes import Change
from vboplan.planning.plan import (
    Plan,
    agree,
    basis,
    condensed,
    ordered_writes,
    read_live,
    reread,
    split_replace,
)
from vboplan.project.config import Environment, Project, current_user
from vboplan.project.render import render
from vboplan.sensitive import Sensitive, conceal_fields, hashed_fields, matches, remember, same_live
from vboplan.state import StateStore, now
from vboplan.trust.approvals import Clearance, applied_entry, check_fresh, clear, last_apply_commit

log = logging.getLogger("vboplan")


@dataclass
class ApplyReport:
    """What an apply did, change by change."""

    environment: str
    applied: list[Change] = field(default_factory=list)
    skipped: list[Change] = field(default_factory=list)
    failed: list[Change] = field(default_factory=list)
    not_run: list[Change] = field(default_factory=list)
    error: VboplanError | None = None
    state_path: str = ""
    serial: int | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def summary(self) -> str:
        return (f"Apply {'complete' if self.ok else 'FAILED'} for {self.environment}: {len(self.applied)} applied, "
                f"{len(self.skipped)} skipped, {len(self.failed)} failed"
                + (f", {len(self.not_run)} not attempted" if self.not_run else "") + ".")


def clear_plan_file(project: Project, path: Path) -> tuple[Plan, Environment, Clearance]:
    """Read a plan file and decide what of it may be applied: intact, fresh, never applied, approved."""
    plan = Plan.load(path)
    # Rendered again (for its secrets) with the --var values the plan was made with, never with other ones.
    env = project.environment(plan.environment).with_variables(plan.variables)
    if env.server != plan.server or env.api_version != plan.api_version:
        raise PlanError(f"{path}: planned against {plan.server} (API {plan.api_version}) but environment "
                        f"'{env.name}' is now {env.server} (API {env.api_version}); run 'vboplan plan' again")
    check_fresh(plan, env.approvals, StateStore(project, env).read())
    guard.check(plan, project.guard)
    check_lifecycle(project, env, plan)
    check_organizations(project, env, plan)
    from vboplan.policy.enforce import enforce, extra_trusts

    clearance = clear(plan, env.approvals, also_trusted=extra_trusts(project, plan))
    enforce(project, env, plan)
    return plan, env, clearance


def check_lifecycle(project: Project, env: Environment, plan: Plan) -> None:
    """Refuse a delete or replace that the templates' own ``lifecycle`` rules forbid. The plan file carries the rules
    it was planned with, but its author writes that file: the rules that count are the ones in the project apply runs
    from, rendered again (they are not secret, so without the secrets)."""
    if not any(change.action in ("delete", "replace") for change in plan.changes):
        return
    from vboplan.kinds.lifecycle import refusals

    rules = KINDS["lifecycle"].scope(render(project, env, offline=True).resources.get("lifecycle") or {})
    refused = refusals(plan.changes, rules)
    # The order of a replace's writes (and the dependants it moves) follows create_before_destroy: the templates'.
    refused += [f"{c.id} ({c.address}) is planned to {'' if c.detail.get('create_before_destroy') else 'not '}"
                "create the new object before deleting the old, which the templates' lifecycle does not say"
                for c in plan.changes if c.action == "replace" and bool(c.detail.get("create_before_destroy"))
                != bool(rule_of(rules, c.address).get("create_before_destroy"))]
    if refused:
        raise PlanError(f"the plan for '{plan.environment}' is refused by the lifecycle rules of the templates: "
                        f"{'; '.join(refused)}")


def check_organizations(project: Project, env: Environment, plan: Plan) -> None:
    """Refuse a plan whose scope declares a job or role in another organization than the templates do. The scope
    says which organization an object's entries are derived and resolved in, and whether the object is replaced
    (moved to another organization): the plan file's scope is its author's text, the templates' (rendered again,
    without the secrets) are the ones that count. The same holds for the rest of such a scope a kind checks (see
    :class:`~vboplan.kinds.hooks.ChecksScope`: the objects and the principal names it declares)."""
    # A kind that checks its scope is checked whatever shape the file gives it: a scope without its organizations
    # (or not a mapping at all) must not pass by the comparison.
    kinds = sorted({c.kind for c in plan.changes if isinstance(KINDS[c.kind], ChecksScope)
                    or (isinstance(plan.scope.get(c.kind), dict)
                        and isinstance(plan.scope[c.kind].get("organizations"), dict))})
    if not kinds:
        return
    resources = render(project, env, offline=True).resources
    for name in kinds:
        scope = plan.scope.get(name)
        if not isinstance(scope, dict) or not isinstance(scope.get("organizations"), dict):
            raise PlanError(f"the plan for '{plan.environment}' ({name}): its scope does not say which organization "
                            "each object is in, as every plan does; the file was edited; run 'vboplan plan' again")
        declared = {str(k).lower(): (str(k), str(v)) for k, v in plan.scope[name]["organizations"].items()}
        own = KINDS[name].scope(resources[name]).get("organizations") or {} if name in resources else {}
        templates = {str(k).lower(): (str(k), str(v)) for k, v in own.items()}
        for key in sorted(set(declared) | set(templates)):
            said, meant = declared.get(key), templates.get(key)
            if said is not None and meant is not None and said[1].lower() == meant[1].lower():
                continue
            shown = (said or meant or (key, ""))[0]
            rows = [c for c in plan.changes if c.kind == name and c.address.parts[0][1].lower()
                    in (key, key.rsplit("/", 1)[-1])] or [c for c in plan.changes if c.kind == name]
            raise PlanError(f"{', '.join(c.id for c in rows)} ({name}[\"{shown}\"]): the plan declares it in "
                            f"{said[1] if said else 'no organization'}, but the templates declare it in "
                            f"{meant[1] if meant else 'none'}; the file was edited or the templates changed; run "
                            "'vboplan plan' again")
        kind = KINDS[name]
        problem = kind.scope_problem(plan.scope[name], KINDS[name].scope(resources[name]) if name in resources
                                     else {}) if isinstance(kind, ChecksScope) else ""
        if problem:
            raise PlanError(f"the plan for '{plan.environment}' ({name}): {problem}; the file was edited or the "
                            "templates changed; run 'vboplan plan' again")


def resolve_secrets(project: Project, env: Environment, plan: Plan, changes: list[Change]) -> list[Change]:
    """Put the current values of sensitive changes back (plan files hold only hashes) and refuse if any value now
    differs from the one planned."""
    if not any(change.sensitive for change in changes):
        return changes
    rendered = render(project, env)
    recorded = StateStore(project, env).resources()
    resolved = []
    for change in changes:
        if change.sensitive:
            value = KINDS[change.kind].desired_value(rendered.resources.get(change.kind, {}), change)
            plain = value.reveal() if isinstance(value, Sensitive) else value
            remember(plain)
            if not change.write_only and not isinstance(value, Sensitive):
                # Secret because the plan lists it among the fields filled from secret(): the templates must.
                raise PlanError(f"{change.id} ({change.address}): the plan hides this value as secret, but the "
                                "templates do not fill it from secret(); the plan file was edited; run 'vboplan "
                                "plan' again")
            if value is None or not matches(plain, plan.digests.get(change.id)):
                raise PlanError(f"{change.id} ({change.address}): the secret now resolves to a different value than "
                                "the one planned; run 'vboplan plan' again and have it approved")
            if change.write_only and matches(plain, _last_set(recorded, change)):
                # What the diff leaves out (the value vboplan last set): a row saying it changes was not planned.
                raise PlanError(f"{change.id} ({change.address}): the secret is the one vboplan last set (the state "
                                "keeps its hash), so it does not change; the plan file was edited; run 'vboplan "
                                "plan' again")
            change = replace(change, after=Sensitive(plain, plan.digests[change.id]))
        resolved.append(change)
    return resolved


def _last_set(recorded: dict[str, Any], change: Change) -> Any:
    """The hash the state keeps of the write-only value ``change`` sets (a collection object's secret field), or
    None."""
    parts = change.address.parts
    if len(parts) < 2 or parts[0][0] != "[" or not isinstance(recorded.get(change.kind), dict):
        return None
    secrets = recorded[change.kind].get("secrets")
    key = str(change.detail.get("key") or parts[0][1])
    held = next((v for k, v in secrets.items() if k.lower() == key.lower()), None) \
        if isinstance(secrets, dict) else None
    return held.get(".".join(str(p[1]) for p in parts[1:])) if isinstance(held, dict) else None


def check_not_stale(client: VboClient, plan: Plan) -> dict[str, Any]:
    """Refuse when the live values differ from those the plan was computed against; the live values read."""
    moved = []
    fresh = read_live(client, plan.scope, lambda name: reread(client, name, plan.scope[name], plan.live.get(name)),
                      "checking the server has not changed since planning:")
    for name, live in fresh.items():
        # Both sides as a plan file keeps them (a plan written before condensing kept every audit item).
        planned, live = condensed(name, plan.live.get(name)), condensed(name, live)
        if not same_live(planned, live):
            # Hidden as the plan hides it: what secret() fills, and what the snapshot kept hashed (plan.live's hashes).
            hidden = sorted(set(plan.secret_fields.get(name, [])) | set(hashed_fields(planned)))
            moved.extend(_moved(name, planned, _concealed(name, live, hidden)))
    if moved:
        raise PlanError(f"the plan for '{plan.environment}' is stale: the server changed since planning:\n"
                        + "".join(f"  - {line}\n" for line in moved) + "run 'vboplan plan' again")
    return fresh


def derive_again(plan: Plan, fresh: dict[str, Any], changes: list[Change]) -> list[Change]:
    """``changes`` derived once more, from the live values apply has just read: each must come out as the plan
    file's row did (the same target, ids, field, sensitivity and values), or nothing is sent."""
    again = []
    # Fields the plan keeps as hashes: those filled from secret() and those the snapshot kept as secret before.
    concealed = {name: _concealed(name, live, sorted({*plan.secret_fields.get(name, []),
                                                      *hashed_fields(plan.live.get(name))}))
                 for name, live in fresh.items()}
    for change in changes:
        name = change.kind
        try:
            if change.detail.get("moves_to"):  # a move onto a replaced object's new one (see plan.move_rows)
                kind = KINDS[name]
                if not isinstance(kind, Repoints):
                    raise PlanError(f"{name} objects cannot be moved onto a new object")
                derived = kind.move_row(basis(plan, name, concealed), change.address.parts[0][1],
                                        change.address.parts[-1][1], str(change.detail["moves_to"]))
            else:
                derived = marked(KINDS[name].derive(basis(plan, name, concealed), change.address, change.action,
                                                    change.after), plan.scope.get("lifecycle"))
        except PlanError as exc:
            raise PlanError(f"{change.id} ({change.address}): the live values no longer give this change "
                            f"({exc}); run 'vboplan plan' again") from None
        if derived.write_only:
            derived = replace(derived, detail={**derived.detail, "recorded": change.recorded})
        if not agree(derived, change):
            raise PlanError(f"{change.id} ({change.address}): the live values give another change than the plan "
                            "file's; run 'vboplan plan' again")
        again.append(replace(change, detail=derived.detail))
    return again


def _concealed(name: str, live: Any, fields: list[str]) -> Any:
    """``live`` of kind ``name`` with the fields the plan recorded as secret kept as salted hashes."""
    kind = KINDS.get(name)
    return kind.conceal_fields(live, fields) if isinstance(kind, ConcealsLive) else conceal_fields(live, fields)


def _moved(name: str, before: Any, after: Any) -> list[str]:
    if isinstance(before, dict) and isinstance(after, dict) and set(before) == {"organizations"} == set(after):
        before, after = before["organizations"], after["organizations"]  # audit items: by organization
    return differences(name, before, after) or [f"{name} changed"]


def confirm_with_server(client: VboClient, changes: list[Change]) -> None:
    """Let each kind check with the server what its changes take from recorded answers (see ConfirmsWithServer)."""
    for name in KINDS:
        kind = KINDS[name]
        mine = [c for c in changes if c.kind == name]
        if mine and isinstance(kind, ConfirmsWithServer):
            kind.confirm(client, mine)


@contextmanager
def interrupts_as_ctrl_c() -> Iterator[None]:
    """Let SIGTERM stop an apply as Ctrl-C does, so the lock is released and the report is honest. Only the main
    thread can handle signals; elsewhere (a library caller's worker thread) nothing changes."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGTERM"):
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def recover(store: StateStore, client: VboClient) -> dict[str, Any] | None:
    """Fold the write journal an interrupted apply left into the snapshot, then drop it; the snapshot as it is then
    (None before the first apply). Runs under the lock."""
    journal = store.read_journal()
    snapshot = store.read()
    if journal is not None and snapshot and (snapshot.get("last_apply") or {}).get("journal") == journal.get("id"):
        store.delete_journal()  # its snapshot was written; only removing the journal was cut short
    elif journal is not None:
        resources, recovery = fold(journal, snapshot.get("resources", {}) if snapshot else {}, client, store.display)
        log.warning("environment '%s': %s; recorded in the snapshot", store.env.name, recovery.describe())
        # The plan it applied counts as applied once a write of it is known to have landed (a plan applies once).
        snapshot = store.write(resources, recovery.last_apply(), applied_plan=recovery.applied_plan())
        store.delete_journal()
    # The objects the snapshot records as deposed are named so in every read of this apply (see refs.depose).
    refs.depose(client, (snapshot or {}).get("resources") or {}, where=store.display)
    return snapshot


def execute(project: Project, env: Environment, client: VboClient, plan: Plan, approved: list[Change],
            skipped: list[Change], approvals: list[dict[str, Any]], store: StateStore | None = None) -> ApplyReport:
    """Carry out ``approved`` in the registry's order, verify by reading back, and write the state snapshot.

    Each write is recorded in the write journal before it is sent and after its answer; a write that cannot be
    recorded is not sent. Ctrl-C (or SIGTERM under :func:`interrupts_as_ctrl_c`) stops it with an ApplyInterrupted
    that says exactly what reached the server."""
    store = store or StateStore(project, env)
    report = ApplyReport(env.name, skipped=list(skipped), state_path=store.display)
    recorded = store.resources()
    journal = WriteJournal(store, checksum=plan.checksum, planned_by=plan.created_by, approvals=approvals,
                           scope=plan.scope, digests=plan.digests, by=current_user())
    try:
        _send(env, client, plan, approved, report, journal)
        _record(env, client, plan, approvals, report, journal, store, recorded)
    except KeyboardInterrupt:
        try:
            journal.settle()  # the answers seen before the interruption, if the backend still takes them
        except (StateError, KeyboardInterrupt):
            pass  # those writes stay "sent" in the journal: the next run checks them against the live values
        raise ApplyInterrupted(journal.interrupted_message()) from None
    return report


def _send(env: Environment, client: VboClient, plan: Plan, approved: list[Change], report: ApplyReport,
          journal: WriteJournal) -> None:
    writes = ordered_writes(plan, approved)
    context = WriteContext()
    total, sent = len(approved), 0
    for write in writes:
        ids = ", ".join(c.id for c in write.changes)
        try:
            entry = journal.sending(write.description, write.changes)
        except StateError as exc:
            report.error = StateError(f"{ids} not sent: the write journal could not record it ({exc}); nothing "
                                      "more was sent")
            break
        log.info("%s", write.description)
        sent += len(write.changes)
        progress.phase(f"writing change {sent} of {total}" if len(write.changes) == 1 else
                       f"writing changes {sent - len(write.changes) + 1}-{sent} of {total}", env.name)
        known = dict(context.ids)
        try:
            send(client, write, context)
        except VboplanError as exc:
            report.failed.extend(write.changes)
            why = _why_refused(write, exc)
            report.error = ApplyError(f"{ids} failed ({write.description}): {str(exc).rstrip('. ') if why else exc}{why}")
            journal.answered(entry, ok=False, error=str(exc))
            break
        _applied(report, write)
        # With the ids the server gave what it created (the new object of a replace beside the old one's, which its
        # create half records), so a run cut short later leaves a journal saying which object is which.
        journal.answered(entry, ok=True, assigned={a: i for a, i in context.ids.items() if known.get(a) != i})
        for change in (c for c in write.changes if c.action == "create" and c.detail.get("replaces")):
            # The old object is deposed until its DELETE: the reads of this apply (its read back) name it so.
            new = refs.Deposed(journal.id, context.ids.get(str(change.address)))
            refs.resolver(client).depose(change.kind, {str(change.detail["replaces"]): new}, add=True)
    try:
        journal.settle()
    except StateError as exc:
        # The journal still says "sent" for the last writes: the next run checks them against the live values.
        if report.error is None:
            report.error = StateError(f"{ids} applied, but the write journal could not record the answer ({exc}); "
                                      "nothing more was sent")
    done = {c.id for c in report.applied} | {c.id for c in report.failed}
    report.not_run = [c for c in approved if c.id not in done]


def _why_refused(write: Write, exc: VboplanError) -> str:
    """What a refusal the plan could not foresee means: a delete answered 409 (the server removes no object another
    one uses) found a user that the plan did not see, made or changed since, or of a kind no template declares."""
    if getattr(exc, "status", None) != 409 or not any(c.action in ("delete", "replace") for c in write.changes):
        return ""
    return ("; the server refuses to remove an object that another one uses, and the plan saw no such use: something "
            "came to use it since the plan was made; 'vboplan plan' again shows what uses it")


def _applied(report: ApplyReport, write: Write) -> None:
    """Count ``write``'s changes as applied; the POST of a replace stands for its DELETE (the write before it, which
    counted the delete half alone, so that a replace cut between the two is reported as a delete)."""
    if any(c.action == "replace" for c in write.changes):
        done = {c.id for c in write.changes}
        report.applied = [c for c in report.applied if c.id not in done]
    report.applied.extend(write.changes)


def send(client: VboClient, write: Write, context: WriteContext) -> None:
    """Send ``write``'s requests exactly as declared, secrets revealed and ids assigned earlier in the apply filled
    in; then note how to learn the ids its creates got, for a later request that needs one."""
    for request in write.requests:
        path = request.path
        for name, value in request.ids.items():
            path = path.replace("{" + name + "}", _assigned(value, context))
        response = client.request(request.method, path, json=_filled(request.body, context), expect=request.expect)
        if request.assigns:
            answer = response.json() if response.content else None
            new_id = answer.get(request.id_field) if isinstance(answer, dict) else None
            if new_id is None:
                raise ApplyError(f"{request.method} /{client.version}/{path} answered without the new object's "
                                 f"{request.id_field}")
            context.record(request.assigns, str(new_id))
    if write.learn is not None:
        context.record_later(write.learns, partial(write.learn, client))


def _assigned(value: AfterApply, context: WriteContext) -> str:
    found = context.id_of(value.address)
    if found is None:
        raise ApplyError(f"the id the server gave {value.address} is not known (it was not created by this apply)")
    return found


def _filled(value: Any, context: WriteContext) -> Any:
    """A request body as it is sent: secrets in clear, ids assigned during this apply filled in."""
    if isinstance(value, Sensitive):
        return value.reveal()
    if isinstance(value, AfterApply):
        return _assigned(value, context)
    if isinstance(value, dict):
        return {key: _filled(item, context) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_filled(item, context) for item in value]
    return value


def _record(env: Environment, client: VboClient, plan: Plan, approvals: list[dict[str, Any]], report: ApplyReport,
            journal: WriteJournal, store: StateStore, recorded: dict[str, Any]) -> None:
    resources = dict(recorded)
    unverified = []
    unread = False

    def read_back(name: str) -> Any:
        try:
            return reread(client, name, plan.scope[name], plan.live.get(name))
        except VboplanError as exc:
            return exc

    for name, live in read_live(client, plan.scope, read_back, "reading back to verify:").items():
        kind = KINDS[name]
        applied_here = [c for c in report.applied if c.kind == name]
        if isinstance(live, VboplanError):
            if report.error is None:
                report.error = ApplyError(f"the changes were sent but reading {name} back failed: {live}")
            if applied_here:
                unread = True  # the journal stays: the next command checks these against the live values
        else:
            unverified += [c for c in applied_here if not kind.verify(c, live)]
            # Fields filled from secret() are kept as salted hashes, never in clear.
            resources[name] = kind.snapshot(_concealed(name, live, plan.secret_fields.get(name, [])), applied_here,
                                            recorded.get(name))
    if unverified and report.error is None:
        report.error = ApplyError("the server does not hold "
                                  + ", ".join(f"{c.id} ({c.address})" for c in unverified)
                                  + " after the write; check the server and plan again")
    last_apply = {
        "at": now(), "by": current_user(), "checksum": plan.checksum, "planned_by": plan.created_by,
        "approvals": approvals,
        "applied": [_entry(c) for c in report.applied], "skipped": [_entry(c) for c in report.skipped],
        "failed": [_entry(c) for c in report.failed], "not_attempted": [_entry(c) for c in report.not_run],
        "error": str(report.error) if report.error else None, "journal": journal.id,
        # The commit the next plan lists commits since (vboplan.trust.commits).
        "commit": last_apply_commit(plan, not (report.skipped or report.failed or report.not_run or report.error)),
    }
    if unread or not journal.written:
        last_apply.pop("journal")
    try:
        snapshot = store.write(resources, last_apply, applied_plan=applied_entry(plan))
    except StateError as exc:
        sent = ", ".join(c.id for c in report.applied) or "nothing"
        kept = f"the write journal {store.journal_display} records what was sent" if journal.written else \
            "nothing was sent"
        report.error = StateError(f"applied {sent}, but the state snapshot could not be written ({exc}); {kept}. "
                                  f"Once that is fixed, 'vboplan plan --env {env.name}' takes it into account")
        return
    report.serial = snapshot["serial"]
    if unread:
        return
    try:
        journal.finish()
    except StateError as exc:
        log.warning("environment '%s': the snapshot is written but the write journal could not be removed (%s); "
                    "the next run removes it", env.name, exc)


def _entry(change: Change) -> dict[str, Any]:
    return {"id": change.id, "address": str(change.address), "action": change.action}


def apply_plan_file(project: Project, path: Path, announce: Any = None) -> ApplyReport:
    """``vboplan apply PLANFILE``: refuse unless the plan is intact, approved, current and its secrets unchanged."""
    plan, env, clearance = clear_plan_file(project, path)
    if announce:
        announce(plan, clearance.approved, clearance.skipped, clearance.notes)
    if plan.refresh_only:  # records the live values; sends nothing (see applying/refresh.py)
        from vboplan.applying.refresh import apply_refresh

        return apply_refresh(project, env, plan, clearance, path)
    split = split_replace(plan.changes, clearance.approved)
    if split:
        raise PlanError(f"{path}: {split[0]} is replaced (deleted, then created again) together with "
                        f"{', '.join(f'{c.id} ({c.address})' for c in split[1])}, which the approvals leave out; "
                        "approve every change of the object, or none")
    approved = resolve_secrets(project, env, plan, clearance.approved)
    store = StateStore(project, env)
    progress.phase("taking the apply lock and connecting", env.name)
    with interrupts_as_ctrl_c(), store.lock(f"apply {path.name}"):
        store.read()  # before anything is sent: a backend that cannot be read stops here
        with connect(project, env) as client:
            # Checked again under the lock, against the snapshot as the recovery of an interrupted apply leaves it:
            # another run may have applied this plan (or a newer one) meanwhile, even one that was cut short.
            check_fresh(plan, env.approvals, recover(store, client))
            fresh = check_not_stale(client, plan)
            approved = derive_again(plan, fresh, approved)
            confirm_with_server(client, approved)
            return execute(project, env, client, plan, approved, clearance.skipped, clearance.records(), store)


def apply_env(project: Project, env: Environment, confirm: Any, announce: Any,
              allow_mass_delete: bool = False) -> ApplyReport | None:
    """``vboplan apply --env NAME``: plan, show, ask, apply. Only where no recorded approvals are required."""
    if env.approvals.required:
        raise VboplanError(f"environment '{env.name}' needs {plural(env.approvals.required, 'approval')}: run "
                           f"'vboplan plan --env {env.name} --out plan.json', have it approved, then "
                           "'vboplan apply plan.json'")
    from vboplan.core import build_plan

    store = StateStore(project, env)
    with interrupts_as_ctrl_c(), store.lock(f"apply --env {env.name}"):
        store.read()
        with connect(project, env) as client:
            recover(store, client)
            plan = build_plan(project, env, client, allow_mass_delete=allow_mass_delete)
            announce(plan)
            guard.check(plan, project.guard, interactive=True)
            from vboplan.policy.enforce import enforce

            enforce(project, env, plan)
            if not plan.changes or not confirm(plan):
                return None
            return execute(project, env, client, plan, list(plan.changes), [], [], store)
