"""The plan table's columns come out exactly as tabulate's "simple" format lays them out, for every kind of cell."""

from __future__ import annotations

import random

import click
from tabulate import tabulate

from vboplan.output.columns import simple_table

WORDS = ["c1a2b3", "+ create", "- delete", "~ update", 'audit_items["contoso.onmicrosoft.com"].user["ann@x"]',
         "", "-", "True", "False", "25", "1e5", "日本語の名前", "Zoë", "  padded  ", "two\nlines", "a\nb\nc",
         "trailing ", "(sensitive)", "e\u0301", "x" * 90]


def _cell(rng: random.Random) -> str:
    text = rng.choice(WORDS)
    if rng.random() < 0.2:
        text = click.style(text, fg=rng.choice(["red", "green", "yellow"]), bold=rng.random() < 0.5)
    return text


def test_simple_table_is_tabulate_simple() -> None:
    rng = random.Random(27)
    headers = ["id", "action", "severity", "address", "live", "desired"]
    for _ in range(300):
        rows = [[_cell(rng) for _ in headers] for _ in range(rng.randint(1, 6))]
        assert simple_table(rows, headers) == tabulate(rows, headers=headers, tablefmt="simple",
                                                       disable_numparse=True), rows


def test_cells_it_does_not_measure_go_to_tabulate() -> None:
    headers = ["a", "b"]
    for odd in ("bell\x07", "carriage\rreturn", "\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", "form\x0cfeed"):
        rows = [[odd, "x"], ["y", "z"]]
        assert simple_table(rows, headers) == tabulate(rows, headers=headers, tablefmt="simple",
                                                       disable_numparse=True)
