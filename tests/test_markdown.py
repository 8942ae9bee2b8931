"""Markdown for a pull-request comment: rendered by GitHub's own renderer (cmark-gfm), golden file, size cap."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import cmarkgfm
import pytest
from cmarkgfm.cmark import Options
from conftest import SEED, ProjectDir, assert_no_secret

from vboplan.output.markdown import LIMIT, code

GOLDEN = Path(__file__).parent / "data" / "markdown_small_plan.md"

TRICKY = """\
audit_email_settings:
  enableNotification: true
  smtpServer: "smtp|relay.local"
  subject: "*%JobName%* <b>done</b> `x` ``y`` _z_"
  from: "`vbo`@contoso.com"
  to: "a | b <i>c</i>"
"""


def github_html(markdown: str) -> str:
    """What GitHub renders a comment to (raw HTML kept, so <details> shows)."""
    return cmarkgfm.github_flavored_markdown_to_html(markdown, options=Options.CMARK_OPT_UNSAFE)


def stable(text: str) -> str:
    """The plan's Markdown with what changes at every run (time, checksum) replaced."""
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "TIME", text)
    return re.sub(r"[0-9a-f]{64}", "CHECKSUM", text)


@pytest.mark.parametrize("value", ["plain", "a|b", "`", "a`b", "``x``", "`start", "end`", "*x* <b>y</b> _z_",
                                   " spaced ", "two\nlines"])
def test_a_code_span_renders_the_value_exactly(value: str) -> None:
    html = github_html(f"| v |\n|---|\n| {code(value)} |\n")
    cell = re.search(r"<td><code>(.*?)</code></td>", html, re.S)
    assert cell, html
    expected = value.replace("\n", "\\n").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    assert cell.group(1) == expected.replace('"', "&quot;"), html


def test_markdown_of_a_small_plan_matches_the_golden_file(project: ProjectDir) -> None:
    project.write("templates/audit.yaml.j2", TRICKY)
    result = project.run("plan", "--env", "dev", "--format", "markdown")
    assert result.exit_code == 0, result.output
    text = stable(result.stdout)
    if os.environ.get("VBOPLAN_UPDATE_GOLDEN"):
        GOLDEN.write_text(text, encoding="utf-8")
    assert text == GOLDEN.read_text(encoding="utf-8")

    html = github_html(result.stdout)
    # Nothing in a value became formatting: no bold, italics or HTML from the template's values.
    for tag in ("<b>", "<i>", "<em>", "<strong>done"):
        assert tag not in html, tag
    rows = re.findall(r"<tr>(.*?)</tr>", html, re.S)
    assert len(rows) == 1 + 5  # header + one row per changed field
    assert all(row.count("<td>") in (0, 6) for row in rows)
    assert "<code>*%JobName%* &lt;b&gt;done&lt;/b&gt; `x` ``y`` _z_</code>" in html
    assert "<code>smtp|relay.local</code>" in html
    assert "<code>`vbo`@contoso.com</code>" in html
    # No alignment padding: no run of spaces in a table row.
    assert not [line for line in result.stdout.splitlines() if line.startswith("|") and "  " in line]


def test_a_2000_change_plan_fits_a_github_comment(project: ProjectDir) -> None:
    users = [{"displayName": f"User {i:04d} *bold* <b>x</b>", "name": f"user{i:04d}@contoso.com"}
             for i in range(2000)]
    seed = {**SEED, "organizations": [{**SEED["organizations"][0], "users": users}]}
    project.seed("dev", seed)
    names = "\n".join(f"      - user{i:04d}@contoso.com" for i in range(2000))
    project.write("templates/items.yaml.j2", f"audit_items:\n  contoso.onmicrosoft.com:\n    users:\n{names}\n")
    result = project.run("plan", "--env", "dev", "--format", "markdown", "--out", str(project.root / "dev.plan"))
    assert result.exit_code == 0, result.output
    text = result.stdout
    total = len(json.loads((project.root / "dev.plan").read_text(encoding="utf-8"))["changes"])
    assert total > 2000
    assert len(text) <= LIMIT
    assert "### Environment dev: `emulator:dev` (API v8): 2000 to create, 9 to update, 0 to replace, 0 to delete" in text
    shown = [line for line in text.splitlines() if line.startswith("| c")]
    assert 200 < len(shown) < total
    assert f"showing the first {len(shown)} of {total} changes" in text
    assert f"vboplan show {project.root / 'dev.plan'}" in text
    html = github_html(text)
    assert "<details>" in html and "<b>x</b>" not in html
    assert_no_secret(text)


def test_an_environment_that_failed_to_plan_shows_in_markdown_and_json(project: ProjectDir,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    config = (project.root / "vboplan.yaml").read_text(encoding="utf-8")
    project.write("vboplan.yaml", config.replace("server: emulator:prod", "server: https://127.0.0.1:1"))
    markdown = project.run("plan", "--env", "dev", "--env", "prod", "--format", "markdown")
    assert markdown.exit_code == 1
    assert "### Environment prod: `https://127.0.0.1:1` (API v7): failed to plan" in markdown.stdout
    assert "**Error:** `environment 'prod'" in markdown.stdout
    assert "| 1: `prod` | failed to plan | | |" in markdown.stdout  # the fleet overview lists it apart
    assert "### Environment dev: `emulator:dev`" in markdown.stdout
    as_json = project.run("plan", "--env", "dev", "--env", "prod", "--format", "json")
    assert as_json.exit_code == 1
    document = json.loads(as_json.stdout)
    assert document["format_version"] == 2
    plans = document["plans"]
    failed = [p for p in plans if p["environment"] == "prod"]
    assert failed and "error" in failed[0] and "127.0.0.1:1" in failed[0]["error"]
    assert any(p["environment"] == "dev" and p["changes"] for p in plans)


def test_a_targeted_plan_says_partial_plan_in_every_format(project: ProjectDir, tmp_path: Path) -> None:
    planfile = tmp_path / "dev.json"
    target = ["--target", "audit_email_settings.port"]
    table = project.run("plan", "--env", "dev", *target, "--out", str(planfile))
    assert "Partial plan: only changes at or under audit_email_settings.port." in table.stdout
    markdown = project.run("plan", "--env", "dev", *target, "--format", "markdown").stdout
    assert "**Partial plan**: only changes at or under `audit_email_settings.port`." in markdown
    html = project.run("plan", "--env", "dev", *target, "--format", "html").stdout
    assert "Partial plan: only changes at or under <code>audit_email_settings.port</code>" in html
    saved = json.loads(planfile.read_text(encoding="utf-8"))
    assert saved["partial"] is True and saved["targets"] == ["audit_email_settings.port"]
    shown = project.run("show", str(planfile), "--format", "json").stdout
    assert '"partial": true' in shown
    assert "Partial plan" in project.run("show", str(planfile)).stdout
    full = project.run("plan", "--env", "dev", "--format", "json").stdout
    assert '"partial": false' in full
