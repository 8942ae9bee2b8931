"""The CI example's script (examples/ci/vboplan_ci.py), end to end as the pipelines run it: plan every environment
on a pull request, post the plan as one comment kept up to date, keep the plan files, apply them on merge, with the
state in S3 (moto's server) and two emulated VBO servers."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import SEED, ProjectDir, signer_line
from state_servers import S3Server

from vboplan.cli.commands import main
from vboplan.emulator import start

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "examples" / "ci" / "vboplan_ci.py"


class FakeGitHub(BaseHTTPRequestHandler):
    """The three calls of GitHub's issue-comments API the script makes, kept in memory."""

    comments: list[dict[str, Any]] = []

    def _reply(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        assert self.headers["Authorization"] == "Bearer gh-token"
        return json.loads(self.rfile.read(int(self.headers["Content-Length"])))

    def do_GET(self) -> None:  # noqa: N802
        assert self.path.startswith("/repos/corp/vbo-settings/issues/7/comments")
        self._reply(200, [{"id": 1000, "body": "Looks good"}, *self.comments])

    def do_POST(self) -> None:  # noqa: N802
        assert self.path == "/repos/corp/vbo-settings/issues/7/comments"
        self.comments.append({"id": 1001 + len(self.comments), "body": self._body()["body"]})
        self._reply(201, self.comments[-1])

    def do_PATCH(self) -> None:  # noqa: N802
        number = int(self.path.rsplit("/", 1)[1])
        comment = next(c for c in self.comments if c["id"] == number)
        comment["body"] = self._body()["body"]
        self._reply(200, comment)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def github() -> Iterator[str]:
    FakeGitHub.comments = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeGitHub)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def ci(project: Path, *args: str, **environ: str) -> subprocess.CompletedProcess[str]:
    """The script as a pipeline step runs it: its own process, which runs ``python -m vboplan`` for each command."""
    env = {**os.environ, "PYTHONPATH": str(REPO), **environ}
    return subprocess.run([sys.executable, str(SCRIPT), "-C", str(project), *args], env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def _script() -> Any:
    spec = importlib.util.spec_from_file_location("vboplan_ci", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _vboplan_here(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """What the script's ``vboplan()`` returns, from the same command line run in this process."""
    result = CliRunner().invoke(main, ["-C", str(project), "--no-color", *args], catch_exceptions=False)
    return subprocess.CompletedProcess(["vboplan", *args], result.exit_code, result.stdout, result.stderr)


def ci_here(project: Path, *args: str, **environ: str) -> subprocess.CompletedProcess[str]:
    """The script's steps run in this process, each of its ``vboplan`` commands through the CLI here too: the
    same commands, files and exit codes as :func:`ci` without a Python start-up per command (the pull-request
    test below runs the script in real processes)."""
    script = _script()
    script.vboplan = _vboplan_here
    saved = {name: os.environ.get(name) for name in environ}
    out, err = io.StringIO(), io.StringIO()
    try:
        os.environ.update(environ)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = script.main(["-C", str(project), *args])
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else 1
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return subprocess.CompletedProcess(["vboplan_ci.py", *args], code, out.getvalue(), err.getvalue())


def test_pull_request_then_merge(project: ProjectDir, s3_server: S3Server, github: str,
                                 tmp_path: Path) -> None:
    bucket = s3_server.new_bucket()
    with start(SEED) as dev, start(SEED) as test:
        config = f"""\
templates: ["templates/*.yaml.j2"]
environments:
  dev: {{server: "{dev.url}", username: admin, password_env: VBO_TEST_PASSWORD,
        var_files: [environments/common.yaml, environments/dev.yaml]}}
  test: {{server: "{test.url}", username: admin, password_env: VBO_TEST_PASSWORD,
         var_files: [environments/common.yaml, environments/prod.yaml]}}
  broken: {{server: "http://127.0.0.1:9", username: admin, password_env: VBO_TEST_PASSWORD,
           var_files: [environments/common.yaml, environments/dev.yaml]}}
state: {{backend: s3, bucket: {bucket}, prefix: vbo/, endpoint_url: "{s3_server.endpoint}", region: us-east-1}}
"""
        project.write("vboplan.yaml", config)
        out = tmp_path / "artifact"
        github_env = {"GITHUB_API_URL": github, "GITHUB_TOKEN": "gh-token", "GITHUB_REPOSITORY": "corp/vbo-settings",
                      "PR_NUMBER": "7"}

        # The pull request: plan every environment; the unreachable one fails the job but is in the comment.
        planned = ci_here(project.root, "plan", "--out-dir", str(out))
        assert planned.returncode == 1, planned.stderr
        markdown = (out / "plan.md").read_text()
        assert "dev" in markdown and "test" in markdown and "audit_email_settings.port" in markdown
        assert "broken: could not be planned" in markdown and "127.0.0.1:9" in markdown
        plans = json.loads((out / "plans.json").read_text())["plans"]
        assert [p["environment"] for p in plans] == ["broken", "dev", "test"] or \
            sorted(p["environment"] for p in plans) == ["broken", "dev", "test"]
        assert next(p for p in plans if p["environment"] == "broken")["error"]
        assert {p.name for p in out.glob("*.json")} == {"dev.json", "test.json", "plans.json"}
        posted = ci_here(project.root, "comment", "--provider", "github", "--file", str(out / "plan.md"), **github_env)
        assert posted.returncode == 0, posted.stderr
        assert len(FakeGitHub.comments) == 1 and "audit_email_settings.port" in FakeGitHub.comments[0]["body"]

        # A second push changes a value: the same comment is updated, no second one.
        project.write("environments/dev.yaml", "domain: dev.contoso.com\nsmtp:\n  host: smtp2.dev.local\n")
        assert ci_here(project.root, "plan", "--out-dir", str(out)).returncode == 1
        assert ci_here(project.root, "comment", "--provider", "github", "--file", str(out / "plan.md"),
                  **github_env).returncode == 0
        assert len(FakeGitHub.comments) == 1 and "smtp2.dev.local" in FakeGitHub.comments[0]["body"]

        # The merge: the plan files committed under plans/ are applied, state and lock in S3.
        plans_dir = project.root / "plans"
        plans_dir.mkdir()
        for name in ("dev.json", "test.json"):
            shutil.copy(out / name, plans_dir / name)
        applied = ci_here(project.root, "apply", "plans/")
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert "Applied 2 of 2 plan files" in applied.stdout

        # Another runner, another checkout: no .vboplan/, state from S3, nothing left to do.
        fresh = ProjectDir(tmp_path / "fresh")
        shutil.copytree(project.root, fresh.root, ignore=shutil.ignore_patterns(".vboplan", "plans"))
        for env in ("dev", "test"):
            again = fresh.run("plan", "--env", env, "--detailed-exitcode")
            assert again.exit_code == 0, again.output
        import boto3

        keys = {o["Key"] for o in boto3.client("s3", endpoint_url=s3_server.endpoint, region_name="us-east-1")
                .list_objects_v2(Bucket=bucket)["Contents"]}
        assert {"vbo/dev.json", "vbo/test.json"} <= keys and not any(k.endswith(".lock") for k in keys)
        # Applying the same plan files again is refused (already applied), and says so.
        replay = ci_here(project.root, "apply", "plans/")
        assert replay.returncode == 1 and "Applied 0 of 2 plan files" in replay.stdout


def test_pull_request_author_cannot_approve_their_own_change(project: ProjectDir, tmp_path: Path) -> None:
    """The runner signs the plan as its author; bob, who wrote and signed the pull request's commit, is an author
    too: his approval is refused, two others approve, the merge applies."""
    from test_commits import commit, git

    with start(SEED) as prod:
        project.write("vboplan.yaml", f"""\
templates: ["templates/*.yaml.j2"]
environments:
  prod: {{server: "{prod.url}", username: admin, password_env: VBO_TEST_PASSWORD,
         var_files: [environments/common.yaml, environments/prod.yaml],
         approvals: {{required: 2, allowed_signers: approvers/prod.allowed_signers, signed_commits: true}}}}
""")
        project.write("approvers/prod.allowed_signers", "".join(
            signer_line(project.keys, name, principal=f"{name}@contoso.com") + "\n"
            for name in ("alice", "bob", "carol", "ann")) + signer_line(
            project.keys, "dave", principal="ci-runner@contoso.com", options='namespaces="vboplan-plan"') + "\n")
        project.write(".gitignore", ".vboplan/\n")
        git(project.root, "init", "-q", "-b", "main")
        commit(project, "Settings as they are", "ann", "Ann")
        git(project.root, "checkout", "-q", "-b", "bob/audit-mail")
        change = commit(project, "Audit mail through Office 365 on port 587", "bob", "Bob", **{
            "environments/prod.yaml": "domain: contoso.com\nsmtp:\n  host: smtp.office365.com\n"})

        # The pull request's pipeline: the runner's key signs; the author is proven, the commit's signer named.
        out = tmp_path / "artifact"
        planned = ci(project.root, "plan", "--out-dir", str(out), VBOPLAN_AUTHOR_KEY=str(project.keys["dave"]),
                     VBOPLAN_USER="bob")
        assert planned.returncode == 0, planned.stderr
        markdown = (out / "plan.md").read_text()
        assert "author: ci-runner@contoso.com (verified)" in markdown
        assert f"commit {change[:10]} 'Audit mail through Office 365 on port 587' by bob@contoso.com (verified)" \
            in markdown
        planfile = out / "prod.json"
        refused = project.run("approve", str(planfile), "--key", str(project.keys["bob"]))
        assert refused.exit_code == 1 and f"signed commit {change[:10]}" in refused.stderr and \
            "never counts" in refused.stderr
        runner = project.run("approve", str(planfile), "--key", str(project.keys["dave"]))
        assert runner.exit_code == 1 and "may not sign 'vboplan-approve'" in runner.stderr
        for name in ("alice", "carol"):
            assert project.run("approve", str(planfile), "--key", str(project.keys[name])).exit_code == 0

        # The approved plan file is committed under plans/ (not an input: its committer is no author) and merged.
        (project.root / "plans").mkdir()
        shutil.copy(planfile, project.root / "plans" / "prod.json")
        commit(project, "Approved plan", "alice", "Alice")
        git(project.root, "checkout", "-q", "main")
        git(project.root, "merge", "-q", "--no-ff", "-S", "-m", "Merge bob/audit-mail", "bob/audit-mail",
            key=project.keys["carol"], who="Carol")
        applied = ci(project.root, "apply", "plans/")
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert "Applied 1 of 1 plan files" in applied.stdout
        state = json.loads((project.root / ".vboplan/state/prod.json").read_text())
        assert state["last_apply"]["commit"] == change
        assert [a["principal"] for a in state["last_apply"]["approvals"]] == ["alice@contoso.com",
                                                                              "carol@contoso.com"]


FLEET_INVENTORY = """\
defaults: {{username: admin, password_env: VBO_TEST_PASSWORD,
           var_files: [environments/common.yaml, "environments/{{labels.tier}}.yaml"]}}
environments:
  - {{name: eu-1, server: "{servers[0]}", labels: {{tier: dev}}}}
  - {{name: eu-2, server: "{servers[1]}", labels: {{tier: dev}}}}
  - {{name: us-1, server: "{servers[2]}", labels: {{tier: dev}}}}
  - {{name: us-2, server: "{servers[3]}", labels: {{tier: prod}}}}
"""


def shards_and_report(project: Path, out: Path) -> dict[str, Any]:
    """What the matrix jobs and the report job run: both shards' plan files, then one report over them."""
    for shard in ("1/2", "2/2"):
        planned = ci_here(project, "plan-shard", "--shard", shard, "--out-dir", str(out / shard.replace("/", "-of-")))
        assert planned.returncode == 0, planned.stderr
    shard_dirs = [str(p) for p in sorted(out.glob("*-of-2"))]
    reported = ci_here(project, "report", *shard_dirs, "--out", str(out / "report.md"), "--json", str(out / "report.json"))
    assert reported.returncode == 0, reported.stderr
    return json.loads((out / "report.json").read_text())


def test_fleet_shards_report_once_and_two_merges_apply_only_new_plans(project: ProjectDir,
                                                                      s3_server: S3Server,
                                                                      tmp_path: Path) -> None:
    bucket = s3_server.new_bucket()
    servers = [start(SEED) for _ in range(4)]
    try:
        project.write("inventory.yaml", FLEET_INVENTORY.format(servers=[server.url for server in servers]))
        project.write("vboplan.yaml", f"""\
templates: ["templates/*.yaml.j2"]
inventory: inventory.yaml
state: {{backend: s3, bucket: {bucket}, prefix: fleet/, endpoint_url: "{s3_server.endpoint}", region: us-east-1}}
""")
        whole = json.loads(project.run("plan", "--all", "--format", "json").stdout)["fleet"]

        # Pull request 1: two shard jobs, one report; its totals are those of the unsharded plan.
        report = shards_and_report(project.root, tmp_path / "pr1")
        assert report["totals"] == whole["totals"] and report["environments"] == ["eu-1", "eu-2", "us-1", "us-2"]
        assert report["alignment"] == "0/4"
        markdown = (tmp_path / "pr1" / "report.md").read_text()
        assert markdown.startswith("<!-- vboplan-plan -->") and "aligned: 0/4" in markdown
        assert "| 3: `eu-1`, `eu-2`, `us-1` |" in markdown        # the three dev tenants are one block
        # A shard job that died before uploading: the report job fails, and the pull request is told why.
        partial = ci_here(project.root, "report", str(tmp_path / "pr1" / "1-of-2"), "--out", str(tmp_path / "p.md"))
        assert partial.returncode == 1
        assert "shard 2/2 of the 4 environments is missing" in (tmp_path / "p.md").read_text()

        # Merge 1: the plan files committed under plans/ are applied, then archived.
        plans = project.root / "plans"
        plans.mkdir()
        for planfile in (tmp_path / "pr1").glob("*-of-2/*.json"):
            shutil.copy(planfile, plans / planfile.name)
        applied = ci_here(project.root, "apply", "plans/", "--archive", "plans/applied")
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert "Applied 4 of 4 plan files" in applied.stdout
        assert not list(plans.glob("*.json")) and len(list((plans / "applied").glob("*.json"))) == 4

        # Pull request 2 changes the prod tier only: us-2 has a change, the rest are aligned.
        project.write("environments/prod.yaml", "domain: contoso.com\nsmtp:\n  host: smtp2.office365.com\n"
                                                "notify_success: true\n")
        report = shards_and_report(project.root, tmp_path / "pr2")
        assert report["alignment"] == "3/4" and report["totals"]["update"] >= 1
        assert [g["environments"] for g in report["groups"]] == [["us-2"], ["eu-1", "eu-2", "us-1"]]

        # Merge 2: only the new plan files are applied (the archived ones are not tried again), then archived.
        for planfile in (tmp_path / "pr2").glob("*-of-2/*.json"):
            shutil.copy(planfile, plans / planfile.name)
        applied = ci_here(project.root, "apply", "plans/", "--archive", "plans/applied")
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert "Applied 4 of 4 plan files" in applied.stdout
        assert not list(plans.glob("*.json")) and len(list((plans / "applied").glob("*.json"))) == 8
        after = json.loads(project.run("plan", "--all", "--format", "json").stdout)["fleet"]
        assert after["alignment"] == "4/4"
    finally:
        for server in servers:
            server.stop()


def test_ci_examples_install_vboplan_from_a_pinned_repository() -> None:
    """A fresh runner installs vboplan from its git repository at a commit, never by a bare package name."""
    import re

    for workflow in sorted((REPO / "examples" / "ci").glob("*.yml")):
        text = workflow.read_text(encoding="utf-8")
        installs = re.findall(r"pip install (.+)", text)
        assert installs, workflow.name
        for line in installs:
            assert re.fullmatch(r'"vboplan\[(s3|azure)\] @ (\$\{VBOPLAN_SOURCE\}|\$\(VBOPLAN_SOURCE\))"', line.strip()), \
                (workflow.name, line)
        source = re.search(r"VBOPLAN_SOURCE:?\s*\n?\s*(?:value: )?(git\+https://\S+)", text)
        assert source and re.fullmatch(r"git\+https://github\.com/OWNER/vboplan@COMMIT_SHA", source.group(1)), \
            workflow.name
        assert "--archive plans/applied" in text, workflow.name
