"""Two writers of one snapshot: the second write, made from a stale read, is refused by the store itself
(S3 If-Match on the ETag, Azure's ETag condition, a content check for local files), never silently lost."""

from __future__ import annotations

import pytest
from conftest import ProjectDir
from test_state_backends import Shared, shared  # noqa: F401 (fixture)

from vboplan.errors import StateConflictError
from vboplan.project.config import load_project
from vboplan.state import StateStore


def _store(project: ProjectDir) -> StateStore:
    loaded = load_project(project.root)
    return StateStore(loaded, loaded.environment("dev"))


def test_a_stale_writer_is_refused(project: ProjectDir, shared: Shared) -> None:  # noqa: F811
    project.write("vboplan.yaml", (project.root / "vboplan.yaml").read_text() + shared.state_yaml)
    first, second = _store(project), _store(project)
    _store(project).write({"audit_email_settings": {"values": {"port": 25}, "secrets": {}}}, {"by": "setup"})
    assert first.read()["serial"] == 1 and second.read()["serial"] == 1
    first.write({"audit_email_settings": {"values": {"port": 587}, "secrets": {}}}, {"by": "first"})
    with pytest.raises(StateConflictError, match="changed by another writer"):
        second.write({"audit_email_settings": {"values": {"port": 2525}, "secrets": {}}}, {"by": "second"})
    current = _store(project).read()
    assert current["serial"] == 2 and current["last_apply"]["by"] == "first"
    assert current["resources"]["audit_email_settings"]["values"]["port"] == 587
    backup = _store(project).backend.get("dev.json.bak")
    assert backup is not None and '"serial": 1' in backup.text
    # Before the first snapshot, two creators: only one succeeds.
    project.write("vboplan.yaml", (project.root / "vboplan.yaml").read_text().replace("prefix: corp/", "prefix: new/"))
    one, two = _store(project), _store(project)
    assert one.read() is None and two.read() is None
    one.write({}, {"by": "one"})
    with pytest.raises(StateConflictError):
        two.write({}, {"by": "two"})


def test_a_stale_local_writer_is_refused(project: ProjectDir) -> None:
    first, second = _store(project), _store(project)
    assert first.read() is None and second.read() is None
    first.write({}, {"by": "first"})
    with pytest.raises(StateConflictError, match="changed by someone else"):
        second.write({}, {"by": "second"})
    assert _store(project).read()["last_apply"]["by"] == "first"
