"""New files are created all together or not at all, and never replace a file that exists."""

from __future__ import annotations

from pathlib import Path

import pytest

from vboplan.project.newfiles import NewFiles, WriteError


def test_all_files_are_created(tmp_path: Path) -> None:
    batch = NewFiles()
    batch.add(tmp_path / "templates" / "a.yaml.j2", "a: 1\n")
    batch.add(tmp_path / "environments" / "dev.yaml", "x: é\n")
    batch.commit()
    assert (tmp_path / "templates" / "a.yaml.j2").read_text() == "a: 1\n"
    assert (tmp_path / "environments" / "dev.yaml").read_text(encoding="utf-8") == "x: é\n"
    assert sorted(p.name for p in tmp_path.rglob("*") if p.name.startswith(".")) == []


def test_a_failure_leaves_nothing_behind(tmp_path: Path) -> None:
    (tmp_path / "blocked").write_text("a file where a folder should be\n")
    batch = NewFiles()
    batch.add(tmp_path / "templates" / "a.yaml.j2", "a: 1\n")
    batch.add(tmp_path / "blocked" / "dev.yaml", "x: 1\n")
    with pytest.raises(WriteError, match="nothing was written"):
        batch.commit()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocked"]


def test_an_existing_file_is_never_replaced(tmp_path: Path) -> None:
    (tmp_path / "dev.yaml").write_text("mine\n")
    batch = NewFiles()
    batch.add(tmp_path / "new.yaml", "new\n")
    batch.add(tmp_path / "dev.yaml", "theirs\n")
    with pytest.raises(WriteError, match="dev.yaml"):
        batch.commit()
    assert (tmp_path / "dev.yaml").read_text() == "mine\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dev.yaml"]
