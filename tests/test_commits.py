"""Plans made from a git repository record the commits their inputs came from since the last apply; whoever signed
such a commit (git's SSH signatures, checked against allowed_signers) is an author and never counts as an approver.
Real repositories, real commits signed by ssh-keygen keys, through the CLI against the emulator."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ProjectDir, assert_one_clean_error, reseal, signer_line

PROD = "domain: contoso.com\nsmtp:\n  host: smtp.office365.com\n"  # prod's variables, notify_success left out
pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def git(root: Path, *args: str, key: Path | None = None, who: str = "Someone") -> str:
    signing = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={key}"] if key else []
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    done = subprocess.run(["git", "-c", f"user.name={who}", "-c", f"user.email={who.lower()}@contoso.com",
                           *signing, *args], cwd=root, env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def commit(project: ProjectDir, message: str, key: str | None, who: str, **files: str) -> str:
    for name, text in files.items():
        project.write(name, text)
    git(project.root, "add", "-A")
    git(project.root, "commit", "-q", *(["-S"] if key else []), "-m", message,
        key=project.keys[key] if key else None, who=who)
    return git(project.root, "rev-parse", "HEAD")


@pytest.fixture
def repo(project: ProjectDir) -> ProjectDir:
    """The project as a git repository whose first commit ann signed; plans are kept out of it (.gitignore)."""
    project.write(".gitignore", ".vboplan/\nplans/\n")
    git(project.root, "init", "-q", "-b", "main")
    commit(project, "Initial settings", "ann", "Ann")
    return project


def _plan(project: ProjectDir, name: str = "prod") -> Path:
    path = project.root / "plans" / f"{name}.json"
    result = project.run("plan", "--env", "prod", "--out", str(path))
    assert result.exit_code == 0, result.output
    return path


def _show(project: ProjectDir, path: Path) -> list[str]:
    result = project.run("show", str(path))
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


def _approve(project: ProjectDir, path: Path, *who: str) -> None:
    for name in who:
        result = project.run("approve", str(path), "--key", str(project.keys[name]))
        assert result.exit_code == 0, result.output


def _signed_commits(project: ProjectDir) -> None:
    config = (project.root / "vboplan.yaml").read_text().replace("max_age: 72h", "max_age: 72h, signed_commits: true")
    project.write("vboplan.yaml", config)


def test_the_signer_of_a_commit_cannot_approve_it(repo: ProjectDir) -> None:
    change = commit(repo, "Use port 587 on prod", "bob", "Bob",
                    **{"environments/prod.yaml": "domain: contoso.com\nsmtp:\n  host: smtp.office365.com\n"
                                                 "notify_success: false\n"})
    path = _plan(repo)
    recorded = json.loads(path.read_text())["commits"]
    assert recorded["head"] == change and recorded["since"] is None
    assert [c["id"] for c in recorded["commits"]] == [change, git(repo.root, "rev-parse", "HEAD~1")]
    shown = _show(repo, path)
    assert "author: ann (verified)" in shown
    assert f"  commit {change[:10]} 'Use port 587 on prod' by bob (verified)" in shown
    assert_one_clean_error(repo.run("approve", str(path), "--key", str(repo.keys["bob"])),
                           "bob", "wrote this plan", f"signed commit {change[:10]}")
    _approve(repo, path, "alice", "carol")
    assert repo.run("apply", str(path)).exit_code == 0
    assert repo.server("prod")["audit_email_settings"]["port"] == 587
    state = json.loads((repo.root / ".vboplan/state/prod.json").read_text())
    assert state["last_apply"]["commit"] == change

    # The next change: only the commits since that apply are recorded; bob may approve carol's change now.
    later = commit(repo, "Audit mail from the new domain", "carol", "Carol",
                   **{"environments/prod.yaml": "domain: corp.contoso.com\nsmtp:\n  host: smtp.office365.com\n"
                                                "notify_success: false\n"})
    commit(repo, "Readme only", "alice", "Alice", **{"README.txt": "not an input\n"})
    path = _plan(repo, "next")
    recorded = json.loads(path.read_text())["commits"]
    assert recorded["since"] == change and [c["id"] for c in recorded["commits"]] == [later]
    assert_one_clean_error(repo.run("approve", str(path), "--key", str(repo.keys["carol"])),
                           "carol", f"signed commit {later[:10]}")
    _approve(repo, path, "bob", "alice")
    assert repo.run("apply", str(path)).exit_code == 0


def test_an_unsigned_commit_is_shown_unverified_and_its_email_excluded(repo: ProjectDir) -> None:
    trust = repo.root / "approvers/prod.allowed_signers"
    trust.write_text(trust.read_text() + signer_line(repo.keys, "dave", principal="dave@contoso.com") + "\n")
    commit(repo, "Unsigned change", None, "Dave", **{"environments/prod.yaml": "domain: contoso.com\n"
                                                     "smtp:\n  host: smtp.office365.com\n"})
    path = _plan(repo)
    shown = _show(repo, path)
    assert any("'Unsigned change' by Dave <dave@contoso.com> (unverified: it is not signed)" in x for x in shown)
    assert_one_clean_error(repo.run("approve", str(path), "--key", str(repo.keys["dave"])),
                           "named in commit")


@pytest.mark.parametrize("signer, fragment", [(None, "it is not signed"),
                                              ("mallory", "is not in approvers/prod.allowed_signers")])
def test_signed_commits_refuses_unsigned_or_unlisted(repo: ProjectDir, signer: str | None, fragment: str) -> None:
    _signed_commits(repo)
    commit(repo, "Require signed commits", "ann", "Ann")
    path = _plan(repo)
    _approve(repo, path, "alice")  # every commit is signed by a listed key so far
    commit(repo, "Sneaky change", signer, "Mallory", **{"environments/prod.yaml": "domain: contoso.com\n"
                                                        "smtp:\n  host: smtp.office365.com\n"})
    path = _plan(repo, "second")
    assert_one_clean_error(repo.run("approve", str(path), "--key", str(repo.keys["alice"])),
                           "'Sneaky change'", fragment, "signed_commits")
    assert_one_clean_error(repo.run("apply", str(path)), fragment)
    assert repo.server("prod")["audit_email_settings"]["port"] == 25


def test_signed_commits_refuses_uncommitted_inputs_and_plans_outside_git(repo: ProjectDir) -> None:
    _signed_commits(repo)
    commit(repo, "Require signed commits", "ann", "Ann")
    repo.write("environments/prod.yaml", "domain: contoso.com\nsmtp:\n  host: smtp.uncommitted.example\n")
    path = _plan(repo)
    assert_one_clean_error(repo.run("approve", str(path), "--key", str(repo.keys["alice"])),
                           "uncommitted changes (environments/prod.yaml)")
    shutil.rmtree(repo.root / ".git")
    path = _plan(repo, "nogit")
    assert_one_clean_error(repo.run("approve", str(path), "--key", str(repo.keys["alice"])),
                           "records no commits")


def test_a_commit_object_edited_in_the_plan_is_not_believed(repo: ProjectDir) -> None:
    """An author who rewrites a recorded commit (to name someone else as its signer) breaks its id."""
    import base64

    _signed_commits(repo)
    commit(repo, "Change", "bob", "Bob", **{"environments/prod.yaml": PROD})
    path = _plan(repo)
    document = json.loads(path.read_text())
    raw = base64.b64decode(document["commits"]["commits"][0]["object"])
    document["commits"]["commits"][0]["object"] = base64.b64encode(raw.replace(b"Change", b"Chang3")).decode()
    reseal(path, document, repo.keys["ann"])
    assert_one_clean_error(repo.run("approve", str(path), "--key", str(repo.keys["alice"])),
                           "its object is not the commit its id names")


def test_a_git_signature_is_not_an_approval(repo: ProjectDir) -> None:
    """Namespaces keep apart what a key signed: bob's commit signature cannot be replayed as his approval."""
    change = commit(repo, "Change", "bob", "Bob", **{"environments/prod.yaml": PROD})
    raw = subprocess.run(["git", "cat-file", "commit", change], cwd=repo.root, capture_output=True,
                         check=True).stdout.decode()
    lines = raw.split("\n")
    start = next(i for i, x in enumerate(lines) if x.startswith("gpgsig "))
    end = next(i for i in range(start, len(lines)) if "END SSH SIGNATURE" in lines[i])
    armored = "\n".join([lines[start][len("gpgsig "):]] + [x[1:] for x in lines[start + 1:end + 1]])
    path = _plan(repo)
    document = json.loads(path.read_text())
    document["approvals"].append({"statement": {"type": "vboplan-approval"}, "signature": armored})
    path.write_text(json.dumps(document))
    line = next(x for x in _show(repo, path) if x.startswith("Approval 1:"))
    assert "signed for namespace 'git', not 'vboplan-approve'" in line


def test_a_commit_signer_is_an_author_even_where_their_key_may_not_sign_commits(repo: ProjectDir) -> None:
    """bob's key is listed for vboplan only (namespaces), and his commit names another email: still his."""
    trust = repo.root / "approvers/prod.allowed_signers"
    lines = [x for x in trust.read_text().splitlines() if not x.startswith("bob ")]
    trust.write_text("\n".join(lines + [signer_line(repo.keys, "bob", options='namespaces="vboplan-approve"')]) + "\n")
    change = commit(repo, "Change", "bob", "Robert", **{"environments/prod.yaml": PROD})
    path = _plan(repo)
    assert any(f"commit {change[:10]} 'Change' by Robert <robert@contoso.com> (unverified: key SHA256:" in x
               and "may not sign 'git'" in x for x in _show(repo, path))
    assert_one_clean_error(repo.run("approve", str(path), "--key", str(repo.keys["bob"])),
                           f"signed commit {change[:10]}")


def test_a_key_added_to_the_trust_file_since_the_last_apply_does_not_approve(repo: ProjectDir) -> None:
    """bob's pull request lists a second key of his under another name: it cannot approve that very change."""
    path = _plan(repo)
    _approve(repo, path, "alice", "carol")
    assert repo.run("apply", str(path)).exit_code == 0
    trust = repo.root / "approvers/prod.allowed_signers"
    commit(repo, "Add robert; smtp on the new domain", "bob", "Bob", **{
        "approvers/prod.allowed_signers": trust.read_text() + signer_line(repo.keys, "mallory", "robert") + "\n",
        "environments/prod.yaml": "domain: corp.contoso.com\nsmtp:\n  host: smtp.office365.com\n"})
    path = _plan(repo, "second")
    assert_one_clean_error(repo.run("approve", str(path), "--key", str(repo.keys["mallory"])),
                           "was added to approvers/prod.allowed_signers after the last apply",
                           "by a commit this plan was rendered from")
    _approve(repo, path, "alice", "carol")
    assert repo.run("apply", str(path)).exit_code == 0
    # Once that change is applied, robert's key approves the next plan like any other.
    commit(repo, "Back to the old domain", "alice", "Alice", **{"environments/prod.yaml": PROD})
    path = _plan(repo, "third")
    _approve(repo, path, "mallory", "carol")
    assert repo.run("apply", str(path)).exit_code == 0


def test_refresh_only_and_excluded_applies_keep_the_authors_of_what_is_pending(repo: ProjectDir) -> None:
    path = _plan(repo)
    _approve(repo, path, "alice", "carol")
    assert repo.run("apply", str(path)).exit_code == 0
    state = repo.root / ".vboplan/state/prod.json"
    base = json.loads(state.read_text())["last_apply"]["commit"]
    change = commit(repo, "New domain", "bob", "Bob", **{
        "environments/prod.yaml": "domain: corp.contoso.com\nsmtp:\n  host: smtp.office365.com\n"})
    refresh = repo.root / "plans" / "refresh.json"
    assert repo.run("plan", "--env", "prod", "--refresh-only", "--out", str(refresh)).exit_code == 0
    _approve(repo, refresh, "alice", "carol")
    assert repo.run("apply", str(refresh)).exit_code == 0
    assert json.loads(state.read_text())["last_apply"]["commit"] == base
    partial = repo.root / "plans" / "partial.json"
    assert repo.run("plan", "--env", "prod", "--exclude", "audit_email_settings.to", "--out",
                    str(partial)).exit_code == 0
    _approve(repo, partial, "alice", "carol")
    assert repo.run("apply", str(partial)).exit_code == 0
    assert json.loads(state.read_text())["last_apply"]["commit"] == base
    path = _plan(repo, "rest")  # bob's commit is still recorded: he cannot approve the rest of his change
    assert_one_clean_error(repo.run("approve", str(path), "--key", str(repo.keys["bob"])),
                           f"signed commit {change[:10]}")


def test_signed_commits_refuses_values_given_with_var(repo: ProjectDir) -> None:
    _signed_commits(repo)
    commit(repo, "Require signed commits", "ann", "Ann")
    path = repo.root / "plans" / "var.json"
    assert repo.run("plan", "--env", "prod", "--var", "smtp.host=smtp.elsewhere.example", "--out",
                    str(path)).exit_code == 0
    assert_one_clean_error(repo.run("approve", str(path), "--key", str(repo.keys["alice"])),
                           "rendered with --var smtp.host", "signed_commits")


def test_a_commit_to_the_policy_rules_is_recorded(repo: ProjectDir) -> None:
    config = (repo.root / "vboplan.yaml").read_text().replace(
        'templates: ["templates/*.yaml.j2"]', 'templates: ["templates/*.yaml.j2"]\npolicies: ["policies/*.yaml"]')
    commit(repo, "Policies", "ann", "Ann", **{"vboplan.yaml": config, "policies/mail.yaml": """\
rules:
  - id: audit-mail-on
    level: warn
    resource: audit_email_settings
    expr: desired.enableNotification == true
    message: Audit notifications stay on
"""})
    change = commit(repo, "Relax the mail rule", "bob", "Bob", **{"policies/mail.yaml": """\
rules:
  - id: audit-mail-on
    level: advisory
    resource: audit_email_settings
    expr: desired.enableNotification == true
    message: Audit notifications stay on
"""})
    path = _plan(repo)
    assert change in [c["id"] for c in json.loads(path.read_text())["commits"]["commits"]]
    assert_one_clean_error(repo.run("approve", str(path), "--key", str(repo.keys["bob"])),
                           f"signed commit {change[:10]}")


def test_the_inventory_is_an_input_of_the_environments_it_lists(repo: ProjectDir) -> None:
    """prod moved into an inventory: bob's commit to the inventory makes him an author of prod's plan (not of
    dev's, defined in vboplan.yaml), and an uncommitted inventory edit is refused where commits must be signed."""
    config = (repo.root / "vboplan.yaml").read_text()
    head, prod = config.split("  prod:\n")
    entry = "".join(f"{line.strip()}, " for line in prod.splitlines()).rstrip(", ")
    inventory = f"environments:\n  - {{name: prod, {entry}}}\n"
    commit(repo, "Prod from the inventory", "ann", "Ann",
           **{"vboplan.yaml": head + "inventory: inventory.yaml\n", "inventory.yaml": inventory})
    assert repo.run("validate", "--env", "prod").exit_code == 0
    change = commit(repo, "Label prod", "bob", "Bob",
                    **{"inventory.yaml": inventory.replace("{name: prod,", "{name: prod, labels: {tier: gold},")})
    path = _plan(repo)
    assert change in [c["id"] for c in json.loads(path.read_text())["commits"]["commits"]]
    assert_one_clean_error(repo.run("approve", str(path), "--key", str(repo.keys["bob"])),
                           f"signed commit {change[:10]}")
    dev = repo.root / "plans" / "dev.json"
    assert repo.run("plan", "--env", "dev", "--out", str(dev)).exit_code == 0
    assert change not in [c["id"] for c in (json.loads(dev.read_text()).get("commits") or {}).get("commits", [])]
    inventory = inventory.replace("max_age: 72h", "max_age: 72h, signed_commits: true")
    commit(repo, "Require signed commits", "ann", "Ann", **{"inventory.yaml": inventory})
    repo.write("inventory.yaml", inventory.replace("{name: prod,", "{name: prod, labels: {tier: bronze},"))
    path = _plan(repo, "dirty")
    assert_one_clean_error(repo.run("approve", str(path), "--key", str(repo.keys["alice"])),
                           "uncommitted changes (inventory.yaml)")


def test_show_in_every_format_carries_the_author_and_commit_lines(repo: ProjectDir) -> None:
    """What the table prints under the changes (created, author, commits) is in Markdown, HTML and JSON too, with
    a commit subject (the author's text) escaped for each."""
    import html

    subject = "Port `587` <script>x</script> | pipe"
    change = commit(repo, subject, "bob", "Bob",
                    **{"environments/prod.yaml": PROD + "notify_success: false\n"})
    path = _plan(repo)
    table = _show(repo, path)
    author_line = "author: ann (verified)"
    commit_line = f"commit {change[:10]} {subject!r} by bob (verified)"
    assert author_line in table and f"  {commit_line}" in table
    provenance = [line.strip() for line in table if line.startswith(("created:", "author", "commits:", "  commit "))]
    assert len(provenance) == 6, table   # created, author, author signed, commits, bob's and ann's commits

    markdown = repo.run("show", str(path), "--format", "markdown")
    assert markdown.exit_code == 0, markdown.output
    assert "**Provenance and approvals**" in markdown.stdout
    for line in provenance:   # each a literal code span (GitHub renders no HTML inside one)
        assert f"- {markdown_code(line)}" in markdown.stdout, line

    page = repo.run("show", str(path), "--format", "html")
    assert page.exit_code == 0, page.output
    assert "<script>" not in page.stdout
    items = [html.unescape(item.split("</code>")[0]) for item in page.stdout.split("<li><code>")[1:]]
    assert items == provenance

    document = json.loads(repo.run("show", str(path), "--format", "json").stdout)
    shown = document["plans"][0]["provenance"]
    assert [line.strip() for line in shown["lines"]] == provenance
    assert shown["author"]["verified"] is True and shown["author"]["principals"] == ["ann"]
    assert [c["id"] for c in shown["commits"]][0] == change and shown["commits"][0]["principals"] == ["bob"]


def markdown_code(text: str) -> str:
    from vboplan.output.markdown import code

    return code(text)
