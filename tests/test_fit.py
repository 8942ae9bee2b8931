"""Terminal tables fit the terminal (80 and 120 columns); the full values stay in JSON and the plan file."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import ProjectDir

from vboplan.cli.commands import main

ITEMS = """\
audit_items:
  contoso.onmicrosoft.com:
    users: [ceo@contoso.com, cfo@contoso.com, Jane Doe]
    groups: [HR Department]
"""


def columns_of(table: str) -> list[dict[str, str]]:
    """Read a plan table back: one dict per change, each cell's wrapped lines joined again."""
    lines = table.splitlines()
    rule = next(i for i, line in enumerate(lines) if line.startswith("----"))
    spans, start = [], 0
    for dashes in lines[rule].split("  "):
        spans.append((start, start + len(dashes)))
        start += len(dashes) + 2
    names = [lines[rule - 1][a:b].strip() for a, b in spans]
    rows: list[dict[str, list[str]]] = []
    for line in lines[rule + 1:]:
        if line.startswith(("Plan:", "Severity:")) or not line.strip():
            break  # the table ends where the severity reasons, verdicts or summary begin
        cells = [line[a:b if i < len(spans) - 1 else None].strip() for i, (a, b) in enumerate(spans)]
        if cells[0]:
            rows.append({name: [] for name in names})
        for name, cell in zip(names, cells, strict=True):
            if cell:
                rows[-1][name].append(cell)
    return [{name: "".join(parts) for name, parts in row.items()} for row in rows]


@pytest.mark.parametrize("width", [80, 120])
def test_plan_table_fits_the_terminal_and_reads_back_whole(project: ProjectDir, width: int) -> None:
    project.write("templates/items.yaml.j2", ITEMS)
    project.write("environments/prod.yaml", "domain: a-rather-long-subsidiary-name.contoso.com\nsmtp:\n"
                                            "  host: smtp.office365.com\nnotify_success: true\n")
    result = CliRunner().invoke(main, ["-C", str(project.root), "--no-color", "-q", "plan", "--env", "prod"],
                                env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.output
    widest = max(len(line) for line in result.stdout.splitlines())
    assert widest < width, f"{widest} columns on a {width}-column terminal:\n{result.stdout}"
    as_json = json.loads(CliRunner().invoke(main, ["-C", str(project.root), "plan", "--env", "prod", "--format",
                                                   "json"]).stdout)
    rank = {"critical": 0, "warning": 1, "info": 2}
    changes = sorted(as_json["plans"][0]["changes"], key=lambda c: rank[c["severity"]])  # the table: critical first
    table = columns_of(result.stdout)
    assert [row["id"] for row in table] == [c["id"] for c in changes]
    for row, change in zip(table, changes, strict=True):
        # Wrapping only breaks lines: the address reads back exactly; so does a value, but for the wrapped spaces.
        assert row["address"] == change["address"]
        if isinstance(change["after"], str):
            assert row["desired"].replace(" ", "") == change["after"].replace(" ", "")
    assert "vbo.audit@a-rather-long-subsidiary-name.contoso.com" in json.dumps(as_json)  # full values in JSON


def test_a_pipe_without_columns_gets_the_table_unfolded(project: ProjectDir) -> None:
    project.write("templates/items.yaml.j2", ITEMS)
    result = CliRunner().invoke(main, ["-C", str(project.root), "-q", "plan", "--env", "prod"], env={"COLUMNS": ""})
    line = next(line for line in result.stdout.splitlines() if 'user["ceo@contoso.com"]' in line)
    assert 'audit_items["contoso.onmicrosoft.com"].user["ceo@contoso.com"]' in line
    assert max(len(line) for line in result.stdout.splitlines()) > 120
