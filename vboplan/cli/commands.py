"""The ``vboplan`` commands: click parses, :mod:`vboplan.core` works, a :class:`VboplanError` becomes one line.

The group they belong to is :mod:`vboplan.cli.main`, which loads this module only to run (or show the help of) one
of them.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from vboplan.cli import helptext
from vboplan.cli.completion import SHELLS, complete_environment
from vboplan.cli.formats import FORMATS
from vboplan.cli.main import Context, _Group, echo, main
from vboplan.cli.options import lock_timeout_option
from vboplan.errors import VboplanError

if TYPE_CHECKING:
    from vboplan.project.config import Project

__all__ = ["Context", "_Group", "echo", "main", "pass_context", "reports_errors"]

# Everything that talks to a server, renders or prints a plan (httpx, jinja2, yaml, deepdiff, tabulate) is imported
# inside the command that uses it: `vboplan plan --help` loads none of it.


def render_plan(plan: Any, fmt: str, color: bool, requests: bool = False) -> str:
    from vboplan.output import render_plan as render

    return render(plan, fmt, color, requests)


def load_plan(path: Path) -> Any:
    from vboplan.planning.plan import Plan

    return Plan.load(path)


def reports_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a VboplanError into one message on stderr and exit code 1 (the traceback only with -vv)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except VboplanError as exc:
            ctx = click.get_current_context()
            if ctx.find_object(Context) and ctx.find_object(Context).verbose > 1:  # type: ignore[union-attr]
                import logging

                logging.getLogger("vboplan").exception("traceback:")
            echo(f"Error: {exc}", err=True)
            ctx.exit(1)

    return wrapper


env_option = click.option("--env", "env_names", multiple=True, metavar="NAME", help="Environment (repeatable).",
                          shell_complete=complete_environment)
all_option = click.option("--all", "all_envs", is_flag=True,
                          help="Every environment (of vboplan.yaml and its inventory).")
label_option = click.option("--label", "labels", multiple=True, metavar="K=V",
                            help="Only environments labelled K=V (repeatable: all must match).")
shard_option = click.option("--shard", "shard", metavar="I/N",
                            help="Only the I-th of N stable slices of the environments selected (for CI matrices).")
format_option = click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
                             help="Output format.")
var_option = click.option("--var", "variables", multiple=True, metavar="KEY=VALUE",
                          help="Set a variable over every variable file (repeatable; dotted keys like smtp.host; the "
                               "value is read as YAML: 25, true, text).")
pass_context = click.make_pass_decorator(Context)


def with_vars(envs: list[Any], variables: tuple[str, ...]) -> list[Any]:
    """``envs`` with the ``--var`` values set over their variable files."""
    if not variables:
        return envs
    from vboplan.project.overrides import parse_vars

    parsed = parse_vars(variables)
    return [env.with_variables(parsed) for env in envs]


@main.command()
@env_option
@all_option
@var_option
@label_option
@shard_option
@pass_context
@reports_errors
def validate(obj: Context, env_names: tuple[str, ...], all_envs: bool, variables: tuple[str, ...],
             labels: tuple[str, ...], shard: str | None) -> None:
    """Render and check every template, without contacting any server."""
    project = obj.project()
    envs = with_vars(project.select(env_names, all_envs or not env_names, labels, shard), variables)
    from vboplan.core import validate as render_offline

    failed = 0
    for env in envs:  # each on its own: one environment's mistake does not hide the others' results
        try:
            result = render_offline(project, [env])[env.name]
        except VboplanError as exc:
            failed += 1
            echo(f"Error: {exc}", err=True)
            continue
        echo(f"{env.name}: ok ({', '.join(result.resources) or 'no resources'})")
    if failed:
        sys.exit(1)


def _refuse_to_overwrite(out: Path | None, envs: list[Any], force: bool) -> None:
    """Before planning: a plan file holding approvals is refused (unless ``--force``)."""
    if out and not force:
        for env in envs:
            _refuse_to_drop_approvals(Path(str(out).replace("{env}", env.name)))


@main.command()
@env_option
@all_option
@label_option
@shard_option
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path),
              help="Save the plan file here (with several environments, FILE must contain {env}).")
@click.option("--out-dir", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Save one plan file per environment in DIR (DIR/ENV.json), converged ones included.")
@format_option
@click.option("--detailed-exitcode", is_flag=True,
              help="Exit 2 when there are changes (with --refresh-only: values changed outside vboplan), 0 when none.")
@click.option("--target", "targets", multiple=True, metavar="ADDRESS", help="Only changes at or under ADDRESS.")
@click.option("--exclude", "excluded", multiple=True, metavar="ADDRESS",
              help="Leave out the changes at or under ADDRESS (repeatable; the inverse of --target).")
@click.option("--refresh-only", is_flag=True,
              help="Plan no change: its apply records what changed on the server outside vboplan in the state, "
                   "and writes nothing to the server.")
@var_option
@click.option("--sign-key", "sign_key", metavar="KEY", envvar="VBOPLAN_AUTHOR_KEY",
              help="With --out: sign the plan as its author with this SSH key (namespace vboplan-plan; default: "
                   "VBOPLAN_AUTHOR_KEY). Required where approvals.required is above 0.")
@click.option("--allow-mass-delete", is_flag=True,
              help="Record in the plan that deleting more than 10 and more than a third of an organization's audit "
                   "items is intended (apply refuses such a plan otherwise).")
@click.option("--force", is_flag=True, help="With --out: overwrite a plan file even if it holds approvals.")
@pass_context
@reports_errors
def plan(obj: Context, env_names: tuple[str, ...], all_envs: bool, labels: tuple[str, ...], shard: str | None,
         out: Path | None, out_dir: Path | None, fmt: str, detailed_exitcode: bool, targets: tuple[str, ...],
         excluded: tuple[str, ...], refresh_only: bool, variables: tuple[str, ...], sign_key: str | None,
         allow_mass_delete: bool, force: bool) -> None:
    """Show what differs between the templates and the live servers."""
    project = obj.project()
    envs = with_vars(project.select(env_names, all_envs, labels, shard), variables)
    if out and out_dir:
        raise VboplanError("give either --out FILE or --out-dir DIR, not both")
    if out_dir:
        out = out_dir / "{env}.json"
    if out and len(envs) > 1 and "{env}" not in str(out):
        raise VboplanError("with several environments, --out must contain {env} (e.g. plans/{env}.json)")
    given = click.get_current_context().get_parameter_source("sign_key")
    if sign_key and not out and given is not click.core.ParameterSource.ENVIRONMENT:
        raise VboplanError("--sign-key signs a saved plan: give --out FILE too")
    if refresh_only and (targets or excluded or allow_mass_delete):
        raise VboplanError("--refresh-only records every value the templates manage and changes nothing: it takes "
                           "no --target, --exclude or --allow-mass-delete")

    _refuse_to_overwrite(out, envs, force)
    selection = project.select(env_names, all_envs or not env_names, labels) if shard is not None else envs
    if out_dir:
        from vboplan.planning.fleet import refuse_stale, write_manifest
        from vboplan.project.inventory import parse_shard

        refuse_stale(out_dir, {env.name for env in envs})
        # Before planning, and by an empty shard too: report tells a missing or half-written shard from it.
        write_manifest(out_dir, parse_shard(shard), [env.name for env in selection], [env.name for env in envs],
                       {"environments": list(env_names), "all": all_envs, "labels": list(labels)}, project.root)
    if not envs:
        echo(f"No environment in shard {shard} of the {len(selection)} selected; nothing to plan"
             + (f" (recorded in {out_dir})." if out_dir else "."), err=True)
        return

    from vboplan.core import plan_many, plan_report

    def settle(outcome: Any) -> Any:
        """Each environment as its plan arrives: warnings, the plan file saved; what is kept of it for the output
        is its changes and verdicts (not the live values it was computed against), unless JSON prints it all."""
        if outcome.error is not None:
            echo(f"Error: {outcome.error}", err=True)
            return outcome
        _warn_mass_delete(outcome.plan, project.guard)
        for note in outcome.plan.notes:
            echo(f"Note: environment '{outcome.env.name}': {note}", err=True)
        if out:
            path = Path(str(out).replace("{env}", outcome.env.name))
            _seal(project, outcome.env, outcome.plan, sign_key)
            outcome.plan.save(path)
            if not out_dir:  # a folder's run says what it saved in one line, whatever its size
                _next_steps(outcome.env, outcome.plan, path)
        if fmt != "json" and len(envs) > 1:
            from dataclasses import replace

            outcome.plan = replace(outcome.plan, live={}, scope={}, _encoded={})  # the parent's memory stays small
        return outcome

    with obj.progress("planning"):
        outcomes = plan_many(project, envs, targets, allow_mass_delete, excluded=excluded, refresh_only=refresh_only,
                             on_outcome=settle)
    documents = []
    pages: list[Any] = []
    for outcome in outcomes:
        if outcome.error is not None:
            from vboplan.output.html import FailedEnvironment

            # A failed environment still has its place in every format, with its error.
            pages.append(FailedEnvironment(outcome.env.name, outcome.env.server, outcome.env.api_version,
                                           str(outcome.error)))
            documents.append({"environment": outcome.env.name, "server": outcome.env.server,
                              "api_version": outcome.env.api_version, "error": str(outcome.error)})
            continue
        if fmt == "json":
            documents.append(outcome.plan.to_dict())
        pages.append(outcome.plan)
    if out_dir:
        from vboplan.planning.fleet import record_failures

        echo(record_failures(out_dir, outcomes), err=True)
    _print_results(pages, documents, fmt, obj.color, out)
    report = plan_report(outcomes, detailed_exitcode)
    if report.return_code:
        sys.exit(report.return_code)


def _seal(project: Project, env: Any, planned: Any, sign_key: str | None) -> None:
    """Before a plan is saved: record the commits it was rendered from (where its environment checks
    signatures) and sign it as its author; warn when approve and apply would refuse the result. The signing
    machinery (cryptography, sshsig: a tenth of a second to import) loads only when the plan is signed or checked."""
    if env.approvals.allowed_signers is not None:
        from vboplan.state import StateStore
        from vboplan.trust import commits

        planned.commits = commits.record(project, env, commits.last_commit(StateStore(project, env).read()))
        planned.checksum = planned.compute_checksum()
    if not sign_key and not (env.approvals.required and planned.changes):
        return
    from vboplan.trust import approvals

    if sign_key:
        approvals.sign_plan(planned, sign_key)
    if env.approvals.required and planned.changes:
        author = approvals.author_of(planned, env.approvals.trust_list())
        if author.problem:
            echo(f"Warning: {author.problem}; approve and apply will refuse this plan: "
                 f"{approvals.how_to_sign(planned, env.approvals)}", err=True)


def _print_results(pages: list[Any], documents: list[dict[str, Any]], fmt: str, color: bool,
                   out: Path | None) -> None:
    """What ``plan`` prints on stdout: one environment's plan, or over several environments the fleet (identical
    plans grouped into one block, with the fleet's alignment)."""
    from vboplan.output import fleet

    saved = f"`vboplan show {out}`" if out else "`vboplan plan --format json`"
    if len(pages) == 1:
        from vboplan.output.html import FailedEnvironment

        if fmt == "json":
            from vboplan.output import json_document

            echo(json_document(documents), nl=False)
        elif fmt == "markdown":
            from vboplan.output.markdown import render_markdown

            echo(render_markdown(pages, full_plan_hint=f"See the full plan with {saved}."), nl=False)
        elif fmt == "html":
            from vboplan.output.html import render_html

            echo(render_html(pages), nl=False)
        elif not isinstance(pages[0], FailedEnvironment):
            echo(render_plan(pages[0], fmt, color))
        return
    if fmt == "json":
        from vboplan.output import json_document

        echo(json_document(documents, fleet=fleet.summary_document(fleet.group(pages))), nl=False)
        return
    echo(fleet.render(pages, fmt, color, hint=f"See the full plan with {saved}."), nl=False)


@main.command()
@env_option
@all_option
@click.option("--label", "labels", multiple=True, metavar="K=V",
              help="Environments carrying this label (repeatable: all must match).")
@click.option("--offline", is_flag=True, help="The rendered templates only: no server, no credentials.")
@click.option("--format", "fmt", type=click.Choice(["table", "markdown", "html", "json"]), default="table",
              show_default=True, help="Output format.")
@pass_context
@reports_errors
def check(obj: Context, env_names: tuple[str, ...], all_envs: bool, labels: tuple[str, ...], offline: bool,
          fmt: str) -> None:
    """Evaluate the policy rules over the desired state (and the live servers unless --offline); exit 1 on a
    block violation."""
    from vboplan.policy.check import check as run_check
    from vboplan.policy.check import exit_code, render_check

    project = obj.project()
    envs = project.select(env_names, all_envs, labels)
    if not envs:
        raise VboplanError(f"no environment carries the labels {', '.join(labels)}")
    with obj.progress("checking"):
        results = run_check(project, envs, offline)
    for result in results:
        if result.error:
            echo(f"Error: {result.error}", err=True)
    echo(render_check(results, fmt), nl=fmt not in ("json", "html"))
    if exit_code(results):
        sys.exit(1)


def _refuse_to_drop_approvals(path: Path) -> None:
    """A plan file that holds approvals is someone's signed work: never overwrite it silently."""
    import json
    import re

    from vboplan.shapes import MAX_FILE_BYTES, NotRegularFile, read_regular

    try:
        text = read_regular(path, MAX_FILE_BYTES).decode("utf-8")
        # Decoding a large plan file only to find it has no approvals costs seconds: an "approvals" key followed by
        # anything but an empty list is what can hold one (in a JSON string those quotes would be escaped).
        if not re.search(r'"approvals"\s*:(?!\s*\[\s*\])', text):
            return
        held = json.loads(text).get("approvals") or []
    except NotRegularFile as exc:
        raise VboplanError(f"{path}: {exc.strerror}; --out names the plan file to write") from None
    except (OSError, ValueError, AttributeError):
        return  # no file, or not a plan file: nothing to lose
    if held:
        count = len(held)
        raise VboplanError(f"{path} holds {count} approval{'s' if count != 1 else ''}; planning over it would "
                                "discard them. Use another --out file, or --force to overwrite it")


def _next_steps(env: Any, saved: Any, path: Path) -> None:
    """After "Saved the plan", what to run next (on stderr, beside the other messages)."""
    echo(f"Saved the plan for {env.name} to {path}", err=True)
    if not saved.changes and not saved.refresh_only:
        echo("Nothing to apply.", err=True)
        return
    standing = [v for v in saved.verdicts if not v.get("exception")]
    blocking = [str(v.get("rule")) for v in standing if v.get("level") == "block"]
    if blocking:
        echo(f"A block verdict stands ({', '.join(blocking)}): apply refuses this plan. Change the templates, or "
             "record an exception for the rule, and plan again.", err=True)
        return
    for verdict in (v for v in standing if v.get("level") == "approve" and v.get("changes")):
        approvers = verdict.get("approvers") or {}
        echo(f"Rule {verdict.get('rule')}: {len(verdict['changes'])} change(s) also need "
             f"{approvers.get('required')} approval(s) by keys in {approvers.get('allowed_signers')}.", err=True)
    required = env.approvals.required
    if required:
        people = f"{required} approver{'s' if required != 1 else ''}"
        echo(f"Next: {people} each run 'vboplan approve {path} --key KEY', then 'vboplan apply {path}'.", err=True)
    else:
        echo(f"Next: 'vboplan show {path}' to review it, then 'vboplan apply {path}'.", err=True)


def _warn_mass_delete(planned: Any, thresholds: Any = None) -> None:
    from vboplan.planning.guard import mass_deletions

    found = mass_deletions(planned.changes, planned.live, thresholds)
    if found and not planned.allow_mass_delete:
        echo(f"Warning: this plan for '{planned.environment}' would delete {'; '.join(found)}; apply will "
                   "refuse it unless it is planned with --allow-mass-delete", err=True)


@main.command()
@click.argument("planfile", type=click.Path(dir_okay=False, path_type=Path))
@format_option
@click.option("--requests", "requests", is_flag=True,
              help="Also list the exact requests apply would send, per change id (secrets as (sensitive)).")
@pass_context
@reports_errors
def show(obj: Context, planfile: Path, fmt: str, requests: bool) -> None:
    """Show a saved plan file and each approval: who, which key, what, and whether it counts."""
    from dataclasses import replace

    from vboplan.output import provenance
    from vboplan.trust.approvals import review

    saved = load_plan(planfile)
    try:
        checked: Any = review(saved, obj.project().environment(saved.environment).approvals)
        reason = ""
    except VboplanError as exc:
        checked = None
        reason = str(exc)
    author = checked.author if checked is not None else None
    lines = provenance.provenance_lines(saved, author, reason)  # every format carries who wrote it, as verified
    if fmt == "json":
        import json

        from vboplan.output import json_document

        entries = json.loads(render_plan(saved, fmt, obj.color, requests))["plans"]
        entries[0]["provenance"] = provenance.provenance_json(saved, author, reason)
        echo(json_document(entries), nl=False)
        return
    if fmt == "html":
        # The page shows what the verifier found, never what a record claims about itself.
        shown = [{"principal": ",".join(v.principals) or "unknown signer", "ticket": v.ticket, "comment": v.comment,
                  "at": v.at, "changes": v.changes,
                  "status": "verified" if v.ok else f"does not count: {v.problem}"} for v in
                 (checked.verdicts if checked else [])]
        if checked is None:
            shown = [{"principal": "?", "status": f"cannot be checked here: {reason}"} for _ in saved.approvals]
        echo(provenance.provenance_html(render_plan(replace(saved, approvals=shown), fmt, obj.color, requests), lines),
             nl=False)
        return
    lines += _approval_lines(saved, checked, reason)
    if fmt == "markdown":
        echo(render_plan(saved, fmt, obj.color, requests) + provenance.provenance_markdown(lines), nl=False)
        return
    echo(render_plan(saved, fmt, obj.color, requests), nl=False)
    # Under the changes: who wrote them and when, then each approval.
    for line in lines:
        echo(line)


def _approval_lines(saved: Any, checked: Any, reason: str) -> list[str]:
    if checked is None:
        return [f"Approval {i}: cannot be checked here: {reason}" for i, _ in enumerate(saved.approvals, 1)]
    lines = []
    for verdict in checked.verdicts:
        status = "verified" if verdict.ok else f"does not count: {verdict.problem}"
        ticket = f", ticket {verdict.ticket}" if verdict.ticket else ""
        comment = f", comment {verdict.comment!r}" if verdict.comment else ""
        lines.append(f"Approval {verdict.index}: {','.join(verdict.principals) or 'unknown signer'} key "
                     f"{verdict.fingerprint or '-'}{ticket}{comment} at {verdict.at or '-'}: "
                     f"{', '.join(verdict.changes) or 'no changes'}: {status}")
    return lines


@main.command()
@click.argument("planfiles", nargs=-1, required=True, metavar="PLANFILE...", type=click.Path(path_type=Path))
@click.option("--key", "key", envvar="VBOPLAN_SIGNING_KEY", metavar="KEY",
              help="SSH private key file, or a public key held by ssh-agent (default: VBOPLAN_SIGNING_KEY).")
@click.option("--ticket", default=None, metavar="ID", help="Change ticket this approval belongs to (signed).")
@click.option("--change", "change_ids", multiple=True, metavar="ID", help="Approve only this change (repeatable).")
@click.option("--comment", default=None, metavar="TEXT", help="A note kept with the approval (signed).")
@click.option("--merge", "copies", multiple=True, type=click.Path(dir_okay=False, path_type=Path), metavar="COPY",
              help="Instead of signing, add the approvals of COPY, a copy of the same plan (repeatable).")
@pass_context
@reports_errors
def approve(obj: Context, planfiles: tuple[Path, ...], key: str | None, ticket: str | None,
            change_ids: tuple[str, ...], comment: str | None, copies: tuple[Path, ...]) -> None:
    """Approve plans by signing them with your SSH key (ssh-keygen -Y sign, namespace vboplan-approve).

    Several plan files (or a directory of them) are each approved on their own."""
    from vboplan.trust import approvals
    project = obj.project()
    files = _plan_files(planfiles)
    if len(files) > 1 or any(path.is_dir() for path in planfiles):
        if copies:
            raise VboplanError("--merge gathers the approvals of copies into one plan file: give one PLANFILE")
        def one(path: Path) -> str:
            saved = load_plan(path)
            if not saved.changes and not saved.refresh_only:  # plan --out-dir saves converged environments too
                echo(f"{saved.environment}: no changes, nothing to approve")
                return f"{saved.environment}: no changes, nothing to approve"
            return _approve_one(project, path, key, ticket, change_ids, comment)

        _for_each(files, "approved", one)
        return
    planfile = files[0]
    if copies:
        if key or ticket or change_ids or comment:
            raise VboplanError("--merge adds approvals others signed; it takes no --key, --ticket, --change "
                                    "or --comment")
        merged = approvals.merge(project, planfile, list(copies))
        for line in merged.dropped:
            echo(f"Dropped {line}", err=True)
        echo(f"Added {merged.added} approval{'s' if merged.added != 1 else ''} to {planfile}"
             + (f"; dropped {len(merged.dropped)} that do not count" if merged.dropped else ""))
        return
    _approve_one(project, planfile, key, ticket, change_ids, comment)


def _approve_one(project: Project, planfile: Path, key: str | None, ticket: str | None,
                 change_ids: tuple[str, ...], comment: str | None) -> str:
    from vboplan.trust import approvals
    if not key:
        raise VboplanError("name your SSH key with --key KEY (or VBOPLAN_SIGNING_KEY): a private key file, or "
                                "a public key whose private half is in ssh-agent")
    verdict = approvals.approve(project, planfile, key, ticket, change_ids, comment)
    saved = load_plan(planfile)
    echo(f"Approved by {','.join(verdict.principals)} (key {verdict.fingerprint}): "
         f"{', '.join(verdict.changes) or 'the refresh-only plan'} "
         f"of {saved.environment} (plan {saved.checksum[:12]}){' ticket ' + ticket if ticket else ''}")
    count = len(verdict.changes)
    return f"{saved.environment}: {count} change{'s' if count != 1 else ''} approved"


def _plan_files(given: tuple[Path, ...]) -> list[Path]:
    """The plan files named, a directory standing for the *.json files in it."""
    files: list[Path] = []
    for path in given:
        if path.is_dir():
            found = sorted(p for p in path.glob("*.json") if p.is_file())
            if not found:
                raise VboplanError(f"{path}: no plan files (*.json) in this directory")
            files += found
        else:
            files.append(path)
    return list(dict.fromkeys(files))


def _for_each(files: list[Path], verb: str, run: Callable[[Path], str]) -> None:
    """Run ``run`` on each plan file on its own, whatever happened to the others; one summary; exit 1 if any
    failed."""
    results: list[tuple[Path, str, bool]] = []
    for path in files:
        echo(f"== {path}")
        try:
            results.append((path, run(path), True))
        except VboplanError as exc:
            echo(f"Error: {path}: {exc}", err=True)
            results.append((path, f"refused or failed: {exc}", False))
        echo("")
    good = sum(ok for _, _, ok in results)
    echo(f"Summary: {good} of {len(results)} plan file{'s' if len(results) != 1 else ''} {verb}.")
    for path, text, ok in results:
        echo(f"  {'ok    ' if ok else 'FAILED'} {path}: {text}")
    if good < len(results):
        sys.exit(1)


def _echo_report(report: Any) -> None:
    # One write for all the lines (an apply of thousands of changes would otherwise flush once a line).
    lines = [f"  {change.id:<6}  {change.action:<6}  {change.address}: {label}"
             for label, changes in (("applied", report.applied), ("skipped (not approved)", report.skipped),
                                    ("FAILED", report.failed), ("not attempted", report.not_run))
             for change in changes]
    echo("\n".join([*lines, report.summary()]))
    echo(f"State snapshot: {report.state_path}" + (f" (serial {report.serial})" if report.serial else ""))


@main.command()
@click.argument("planfiles", nargs=-1, metavar="[PLANFILE...]", type=click.Path(path_type=Path))
@click.option("--env", "env_name", metavar="NAME", help="Plan and apply this environment interactively.",
              shell_complete=complete_environment)
@click.option("--auto-approve", is_flag=True, help="With --env: do not ask (for scripts).")
@click.option("--allow-mass-delete", is_flag=True,
              help="With --env: allow deleting more than 10 and more than a third of an organization's audit items.")
@var_option
@lock_timeout_option
@pass_context
@reports_errors
def apply(obj: Context, planfiles: tuple[Path, ...], env_name: str | None, auto_approve: bool,
          allow_mass_delete: bool, variables: tuple[str, ...]) -> None:
    """Apply exactly the approved changes of saved plans (or plan, ask and apply one environment).

    Several plan files (or a directory of them) are each verified and applied on their own, in the order given."""
    from vboplan.applying import apply as applying
    from vboplan.progress import suspended

    project = obj.project()
    files = _plan_files(planfiles) if planfiles else []
    planfile = files[0] if files else None
    if planfile and env_name:
        raise VboplanError("give either a PLANFILE or --env NAME, not both")
    if planfile and allow_mass_delete:
        raise VboplanError("--allow-mass-delete belongs to 'vboplan plan': it is recorded in the plan file, "
                                "so the approvers see it; plan again with it")
    if planfile and variables:
        raise VboplanError("--var belongs to 'vboplan plan' (or 'apply --env'): a saved plan records the values it "
                           "was made with, and apply uses those")
    def announce(saved: Any, approved: list[Any], skipped: list[Any], notes: list[str]) -> None:
        with suspended():
            echo(render_plan(saved, "table", obj.color))
            for note in notes:
                echo(f"Note: {note}", err=True)
            # The changes skipped as not approved are listed once, in the report after the apply.

    def apply_one(path: Path) -> str:
        with obj.progress("applying"):
            done = applying.apply_plan_file(project, path, announce)
        _echo_report(done)
        if not done.ok:
            raise done.error  # type: ignore[misc]
        return done.summary()

    if len(files) > 1:
        _for_each(files, "applied", apply_one)
        return
    if planfile:
        apply_one(planfile)
        return
    if env_name:
        env = with_vars([project.environment(env_name)], variables)[0]

        def show_plan(fresh: Any) -> None:
            with suspended():
                echo(render_plan(fresh, "table", obj.color))

        def confirm(fresh: Any) -> bool:
            if auto_approve:
                return True
            count = len(fresh.changes)
            with suspended():
                answer = click.prompt(f"Apply {count} change{'s' if count != 1 else ''} to environment "
                                      f"'{env.name}' ({env.server})? Only 'yes' is accepted", default="",
                                      show_default=False, err=True)
            if answer.strip() != "yes":
                raise VboplanError(f"apply to '{env.name}' cancelled; nothing was changed")
            return True

        with obj.progress("applying"):
            report = applying.apply_env(project, env, confirm, show_plan, allow_mass_delete)
        if report is None:
            return
        _echo_report(report)
        if not report.ok:
            raise report.error  # type: ignore[misc]
        return
    raise VboplanError("give a PLANFILE to apply, or --env NAME")


@main.command("import")
@click.option("--env", "env_names", multiple=True, metavar="NAME", shell_complete=complete_environment,
              help="Environment to import (repeatable: values equal on all go to a variable file they share).")
@click.option("--resource", "resources", multiple=True, metavar="KIND",
              help="Import only this resource kind (repeatable; default: every kind the server's API has).")
@click.option("--dry-run", is_flag=True, help="Print the files import would write; write nothing.")
@pass_context
@reports_errors
def import_(obj: Context, env_names: tuple[str, ...], resources: tuple[str, ...], dry_run: bool) -> None:
    """Adopt live servers: write templates and variable files that reproduce their settings, then plan.

    Reads every resource kind (or each --resource KIND) from the servers of the environments named, writes a
    template for each kind that has none and the variable files vboplan.yaml lists, and plans. Names, not ids;
    no response-only field, no secret (write-only fields are listed with the secret() line to add). A file that
    exists is never changed; the files of a run are written together or not at all.

    \b
    Examples:
      vboplan import --env dev --dry-run          # print the files it would write
      vboplan import --env dev --env prod         # values equal on both go to the file only they share
      vboplan import --env dev --resource audit_items

    \b
    Exit codes: 0 the plan after the import shows no changes; 1 an error, or changes remain (printed with the
    reason for each)."""
    from vboplan.project.importing import describe_outcomes, report_lines

    project = obj.project()
    if not env_names:
        raise VboplanError("name the environment to import with --env NAME")
    envs = project.select(env_names, False)
    from vboplan.core import import_environments

    with obj.progress("importing"):
        result = import_environments(project, envs, resources, dry_run)
    for warning in result.warnings():
        echo(f"Warning: {warning}", err=True)
    for line in report_lines(result):
        echo(line)
    if dry_run:
        echo("Dry run: nothing was written.")
        return
    for line in describe_outcomes(result):
        echo(line)
    if not result.clean:
        failed = [o.env.name for o in result.outcomes if o.error is not None or (o.plan and o.plan.changes)]
        raise VboplanError(f"the import of {', '.join(failed)} does not plan clean yet (see the reasons "
                                "above)")


@main.group()
def state() -> None:
    """Inspect state snapshots, break a lock, move state to a shared backend."""


@state.command("show")
@click.option("--env", "env_name", required=True, metavar="NAME", shell_complete=complete_environment,
              help="Environment.")
@format_option
@pass_context
@reports_errors
def state_show(obj: Context, env_name: str, fmt: str) -> None:
    """Show what the last apply recorded for an environment."""
    from vboplan.core import state_rows as recorded_rows
    from vboplan.output import format_value
    from vboplan.output.snapshot import render_snapshot
    from vboplan.sensitive import MASK

    snapshot, state_rows = recorded_rows(obj.project(), env_name)
    rows = [(str(address), format_value(value)) for address, value in state_rows]
    echo(render_snapshot(env_name, snapshot, rows, fmt), nl=False)
    if fmt in ("table", "markdown") and any(value == MASK for _, value in rows):
        echo("(sensitive) values are kept as salted hashes. A write-only value (a password) is never returned by "
             "the API: a change made to it on the server cannot be detected, only a change of the template's value.")
    if fmt in ("table", "markdown"):
        _state_notes(obj.project(), env_name)


def _state_notes(project: Project, env_name: str) -> None:
    """What else a user should know about this environment's state: a lock held, an interrupted apply's journal."""
    from vboplan.errors import StateLockedError
    from vboplan.state import StateStore, describe_holder

    store = StateStore(project, project.environment(env_name))
    try:
        holder = store.holder()
        if holder:
            echo(f"Locked by {describe_holder(holder)}")
    except StateLockedError as exc:
        echo(str(exc))
    journal = store.read_journal()
    if journal:
        echo(f"An apply by {journal.get('by')} at {journal.get('started_at')} was interrupted; its write journal "
             f"{store.journal_display} is taken into account by the next plan and recorded by the next apply")


@state.command("unlock")
@click.option("--env", "env_name", required=True, metavar="NAME", shell_complete=complete_environment,
              help="Environment.")
@click.argument("lock_id")
@pass_context
@reports_errors
def state_unlock(obj: Context, env_name: str, lock_id: str) -> None:
    """Break an environment's apply lock, only with its LOCK_ID (shown when the lock is in the way)."""
    from vboplan.state import StateStore, describe_holder

    project = obj.project()
    holder = StateStore(project, project.environment(env_name)).unlock(lock_id)
    echo(f"Broke the lock of environment '{env_name}' held by {describe_holder(holder)}")


@state.command("migrate")
@click.option("--env", "env_names", multiple=True, metavar="NAME", help="Environment (repeatable).",
              shell_complete=complete_environment)
@click.option("--all", "all_envs", is_flag=True, help="Every environment that has a local snapshot.")
@click.option("--to-configured-backend", "confirmed", is_flag=True, required=True,
              help="Copy to the backend vboplan.yaml's 'state:' names (required, to say so).")
@lock_timeout_option
@pass_context
@reports_errors
def state_migrate(obj: Context, env_names: tuple[str, ...], all_envs: bool, confirmed: bool) -> None:
    """Copy local snapshots (.vboplan/state/) to the configured shared backend, once."""
    from vboplan.state import migrate_to_configured

    project = obj.project()
    envs = project.select(env_names, all_envs)
    if all_envs:
        envs = [e for e in envs if (project.work_dir / "state" / f"{e.name}.json").exists()]
    if not confirmed or not envs:
        raise VboplanError("no local snapshot to migrate" if confirmed else "add --to-configured-backend")
    for env in envs:
        snapshot, where = migrate_to_configured(project, env)
        echo(f"Copied the snapshot of '{env.name}' (serial {snapshot['serial']}, lineage {snapshot['lineage']}) to "
             f"{where}; the local copy in .vboplan/state/ is no longer used")


@main.command()
@click.option("--env", "env_name", required=True, metavar="NAME", shell_complete=complete_environment,
              help="Environment whose templates and variables to render.")
@click.option("--format", "fmt", type=click.Choice(("yaml", "json")), default="yaml", show_default=True,
              help="Output format.")
@var_option
@pass_context
@reports_errors
def render(obj: Context, env_name: str, fmt: str, variables: tuple[str, ...]) -> None:
    """Print the desired settings as rendered for one environment, secrets masked; no server is contacted."""
    project = obj.project()
    from vboplan.core import render_desired

    env = with_vars([project.environment(env_name)], variables)[0]
    echo(render_desired(project, env, fmt), nl=False)


@main.command()
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL (commands, options, environment names, plan files)."""
    from vboplan.cli.completion import source

    click.echo(source(main, shell))


# Commands kept in modules of their own (each registers itself on the group it belongs to).
from vboplan.cli import project_commands, state_commands  # noqa: E402,F401

helptext.attach(main)

if __name__ == "__main__":
    main()
