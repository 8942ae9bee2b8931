"""The HTML plan report for a change ticket, opened in a real headless Chromium as a manager would open it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import API_SECRET, SMTP_SECRET, ProjectDir

AUDIT_ITEMS = """\
audit_items:
  contoso.onmicrosoft.com:
    users: [ceo@contoso.com, cfo@contoso.com]
    groups: [HR Department]
"""


def chromium() -> str:
    """Debian's Chromium; CI installs it (.ci/run), so there a missing browser is a failure, not a skip."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("chromium is not installed (apt-get install chromium)")
    pytest.skip("chromium is not installed (apt-get install chromium)")


def open_in_browser(page: Path, tmp_path: Path, *extra: str) -> tuple[str, str]:
    """Load ``page`` in headless Chromium: (the DOM it built, its console log)."""
    profile = tmp_path / "chromium-profile"
    run = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
         "--enable-logging=stderr", "--v=0", *extra, page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout, run.stderr


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def visible(dom: str) -> tuple[str, list[str]]:
    parser = _Text()
    parser.feed(dom)
    return "".join(parser.parts), parser.tags


def test_html_report_opens_in_chromium_with_every_change_and_no_secret(project: ProjectDir, tmp_path: Path) -> None:
    project.write("templates/items.yaml.j2", AUDIT_ITEMS)
    # A value that would be markup if it were not escaped.
    project.write("environments/prod.yaml", "domain: contoso.com\nsmtp:\n  host: '<b>bold</b><script>x()</script>'\n"
                                            "notify_success: true\n")
    result = project.run("plan", "--env", "dev", "--env", "prod", "--format", "html")
    assert result.exit_code == 0, result.output
    page = tmp_path / "plan.html"
    page.write_text(result.stdout, encoding="utf-8")
    plans = json.loads(project.run("plan", "--env", "dev", "--env", "prod", "--format", "json").stdout)
    plans = plans["plans"]

    dom, console = open_in_browser(page, tmp_path, "--dump-dom")
    text, tags = visible(dom)
    # Nothing was refused by the page's security policy and nothing logged to the console: no fetch, no script.
    assert ":CONSOLE" not in console, [line for line in console.splitlines() if "CONSOLE" in line]
    assert "script" not in tags and "img" not in tags and "b" not in tags
    assert "<b>bold</b><script>x()</script>" in text  # shown as text, not run or rendered
    addresses = [c["address"] for plan in plans for c in plan["changes"]]
    assert len(addresses) > 10
    for address in addresses:
        assert address in text, address
    assert 'audit_items["contoso.onmicrosoft.com"]' in text  # the resource heading of the grouped items
    for env in ("Environment dev", "Environment prod", "emulator:prod", "v7"):
        assert env in text
    assert "(sensitive) will be set" in text
    assert SMTP_SECRET not in dom and API_SECRET not in dom

    # Printed to PDF, as a ticket attachment.
    pdf = tmp_path / "plan.pdf"
    open_in_browser(page, tmp_path, f"--print-to-pdf={pdf}", "--no-pdf-header-footer")
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 5000


def test_show_html_lists_approvals_with_their_status(project: ProjectDir, tmp_path: Path) -> None:
    planfile = tmp_path / "prod.plan.json"
    assert project.run("plan", "--env", "prod", "--out", str(planfile)).exit_code == 0
    approved = project.run("approve", str(planfile), "--key", str(project.keys["bob"]), "--ticket", "CHG-42",
                           "--comment", "ok <i>x</i>")
    assert approved.exit_code == 0, approved.output
    shown = project.run("show", str(planfile), "--format", "html")
    assert shown.exit_code == 0, shown.output
    page = tmp_path / "show.html"
    page.write_text(shown.stdout, encoding="utf-8")
    dom, console = open_in_browser(page, tmp_path, "--dump-dom")
    text, tags = visible(dom)
    assert ":CONSOLE" not in console
    assert "bob" in text and "CHG-42" in text and "ok <i>x</i>" in text and "i" not in tags
    assert "verified" in text
    assert shown.stdout.rstrip().endswith("</html>")  # nothing printed after the page


def test_an_environment_that_failed_to_plan_is_in_the_report_with_its_error(project: ProjectDir,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    project.write("vboplan.yaml", project.root.joinpath("vboplan.yaml").read_text(encoding="utf-8").replace(
        "password_env: VBO_TEST_PASSWORD\n    var_files: [environments/common.yaml, environments/prod.yaml]",
        "password_env: VBO_PROD_PASSWORD\n    var_files: [environments/common.yaml, environments/prod.yaml]"))
    monkeypatch.delenv("VBO_PROD_PASSWORD", raising=False)
    result = project.run("plan", "--env", "dev", "--env", "prod", "--format", "html")
    assert result.exit_code == 1
    text, _ = visible(result.stdout)
    assert "Environment dev" in text and "Environment prod" in text
    assert "could not be planned" in text and "VBO_PROD_PASSWORD" in text


GOLDEN = Path(__file__).parent / "data" / "html_small_plan.html"


def test_html_of_a_small_plan_matches_the_golden_file(project: ProjectDir) -> None:
    import re

    project.write("templates/audit.yaml.j2", 'audit_email_settings:\n  enableNotification: true\n'
                                             '  subject: "*%JobName%* <b>done</b> `x`"\n  to: "a | b"\n'
                                             '  userPassword: {{ secret("SMTP_PASSWORD") }}\n')
    result = project.run("plan", "--env", "dev", "--format", "html")
    assert result.exit_code == 0, result.output
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "TIME", result.stdout)
    text = re.sub(r"[0-9a-f]{64}", "CHECKSUM", text)
    if os.environ.get("VBOPLAN_UPDATE_GOLDEN"):
        GOLDEN.write_text(text, encoding="utf-8")
    assert text == GOLDEN.read_text(encoding="utf-8")
