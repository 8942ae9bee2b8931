"""``vboplan import``: adopt running servers as vboplan's own inputs (templates and variable files).

Each resource kind exports its live values as a template would render them (names, not ids; no response-only or
write-only field; see ``export`` of each kind). This module turns those into files:

- one template per kind that has none yet, shared by every environment: it renders the kind from the variable
  files, so a template never holds a value that differs between servers;
- the variable files the environments name in ``vboplan.yaml``: each environment's own file gets its values;
  environments imported together put the values equal on all of them into a variable file only they share.

Existing files are never changed (they are listed as skipped), and the files of one run are written together or not
at all (:mod:`vboplan.project.newfiles`). The caller then plans each environment: no changes is what success means.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from vboplan import progress
from vboplan.connection import connect
from vboplan.errors import ProjectError, VboplanError
from vboplan.kinds.base import Export, WriteOnly
from vboplan.kinds.registry import KINDS
from vboplan.project.config import Environment, Project
from vboplan.project.newfiles import NewFiles
from vboplan.project.yamlfile import MAX_BYTES, parse_json, parse_yaml, plain
from vboplan.schema import nearest
from vboplan.sensitive import is_digest, recorded_secrets
from vboplan.shapes import NotRegularFile, read_regular
from vboplan.state import StateStore

log = logging.getLogger("vboplan")

#: The first line of every template import writes: ``{#- vboplan import: KIND``. A template with it renders KIND
#: from the variable files, so a later import adds values for another environment to them instead.
MARKER = "vboplan import:"
_MARKER = re.compile(r"\{#-?\s*vboplan import:\s*([A-Za-z0-9_]+)")
# A resource key at the start of a line of a template written by hand ("audit_email_settings:").
_TOP_KEY = re.compile(r"""^["']?([A-Za-z_][A-Za-z0-9_]*)["']?[ \t]*:""", re.MULTILINE)
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

Leaf = tuple[str, ...]


@dataclass
class PlannedFile:
    """A file import writes, or leaves alone because it exists."""

    path: Path
    shown: str
    purpose: str
    text: str
    exists: bool = False


@dataclass
class EnvironmentImport:
    """What was read from one environment's server and where its values go."""

    env: Environment
    exports: dict[str, Export] = field(default_factory=dict)
    own_file: Path | None = None
    notes: list[str] = field(default_factory=list)
    unwritten: dict[str, list[str]] = field(default_factory=dict)   # kind -> values left out (file existed)
    # kind -> {address: (field, secret() variable or "")}: fields secret when last applied, never written
    held_back: dict[str, dict[str, tuple[str, str]]] = field(default_factory=dict)
    # variable -> address: secrets of named objects the variable files read from secret() (SECRET marks them)
    placeholders: dict[str, str] = field(default_factory=dict)
    requests: int = 0                                                 # HTTP requests the reading took

    @property
    def values(self) -> dict[str, Any]:
        return {name: e.values for name, e in self.exports.items() if e.values}


@dataclass
class ImportResult:
    """Everything ``vboplan import`` did or, with ``dry_run``, would do."""

    environments: list[EnvironmentImport]
    files: list[PlannedFile]
    foreign: dict[str, str]          # kind -> the hand-written template that already manages it
    dry_run: bool
    outcomes: list[Any] = field(default_factory=list)   # core.Outcome of the plan after the import
    reasons: dict[tuple[str, str], str] = field(default_factory=dict)  # (env, change id) -> why it is not clean

    @property
    def written(self) -> list[PlannedFile]:
        return [f for f in self.files if not f.exists]

    @property
    def skipped(self) -> list[PlannedFile]:
        return [f for f in self.files if f.exists]

    @property
    def clean(self) -> bool:
        return all(o.error is None and o.plan is not None and not o.plan.changes for o in self.outcomes)

    def warnings(self) -> list[str]:
        """Each warning once (a shared organization name concerns every kind kept per organization)."""
        found = [f"environment '{e.env.name}': {w}" for e in self.environments for x in e.exports.values()
                 for w in x.warnings]
        return list(dict.fromkeys(found))


# -- the run ---------------------------------------------------------------------------------------------------------


def adopt(project: Project, envs: list[Environment], resources: tuple[str, ...] = (),
          dry_run: bool = False) -> ImportResult:
    """Read every chosen kind from each environment's server and write the templates and variable files that
    reproduce it (or, with ``dry_run``, only say what they would be). Raises :class:`VboplanError` before anything
    is written when a server, a kind or a file is in the way."""
    kinds = _chosen_kinds(resources)
    templates = existing_templates(project)
    imports = [EnvironmentImport(env, own_file=_own_var_file(project, env)) for env in envs]
    shared = _shared_var_file(project, envs)
    for path in [*(i.own_file for i in imports), *([shared] if shared else [])]:
        _inside(project, path)  # type: ignore[arg-type]
    for name in kinds:
        if name not in templates:
            _inside(project, template_path(project, name))
    _read_all(project, imports, kinds, explicit=bool(resources))

    foreign = {name: shown for name, (shown, ours) in templates.items() if not ours and name in kinds}
    for item in imports:
        for name in foreign:
            item.exports.pop(name, None)
    files: list[PlannedFile] = []
    for name in kinds:
        exported = [i.exports[name] for i in imports if i.exports.get(name) and i.exports[name].values]
        if name in templates:
            shown = templates[name][0]
            files.append(PlannedFile(project.root / shown, shown, f"template of {name}", "", exists=True))
            continue
        if not exported:
            continue
        path = template_path(project, name)
        if path.exists() or path.is_symlink():
            files.append(PlannedFile(path, project.display(path), f"template of {name}", "", exists=True))
            continue
        placeholders = {f: v for i in imports for f, v in i.held_back.get(name, {}).values() if v}
        files.append(PlannedFile(path, project.display(path), f"template of {name}",
                                 template_text(name, exported[0], [w for e in exported for w in e.write_only],
                                               placeholders)))
    files += _variable_files(project, imports, shared)
    # Files listed by an environment that exist nowhere yet: written (a comment only) so that plan can read them.
    planned = {f.path for f in files}
    for item in imports:
        for path in item.env.var_files:
            if path not in planned and not path.exists():
                _inside(project, path)
                planned.add(path)
                files.append(PlannedFile(path, project.display(path), f"variables listed for {item.env.name}",
                                         _var_text(path, [f"Listed in var_files of environment '{item.env.name}'; "
                                                          "vboplan import found no value for it."], {})))
    result = ImportResult(imports, files, foreign, dry_run)
    if not dry_run:
        batch = NewFiles()
        for planned_file in result.written:
            batch.add(planned_file.path, planned_file.text)
        batch.commit({f.path: f.shown for f in files})
    return result


def _chosen_kinds(resources: tuple[str, ...]) -> list[str]:
    known = list(KINDS)
    for name in resources:
        if name not in KINDS:
            hint = nearest(name, known)
            raise ProjectError(f"--resource {name}: no such resource kind"
                               + (f"; did you mean '{hint}'?" if hint else f" (kinds: {', '.join(known)})"))
    return [name for name in known if not resources or name in resources]


def _read_all(project: Project, imports: list[EnvironmentImport], kinds: list[str], explicit: bool) -> None:
    from vboplan.applying.journal import recorded_resources

    def read(item: EnvironmentImport) -> None:
        env = item.env
        try:
            with connect(project, env) as client:
                # What was secret when last applied stays so; what an interrupted apply left is folded in, and the
                # old objects of replaces cut short are named deposed (import leaves them to the next plan).
                recorded = recorded_resources(StateStore(project, env), client)
                for name in kinds:
                    progress.phase(f"reading {name}", env.name)
                    exported = KINDS[name].export(client)
                    _hold_back(item, name, exported, recorded.get(name))
                    _read_from_secret(item, name, exported, recorded.get(name))
                    if exported.unavailable:
                        if explicit:
                            raise ProjectError(f"environment '{env.name}': {exported.unavailable}")
                        item.notes.append(exported.unavailable)
                        continue
                    item.exports[name] = exported
                item.requests = client.request_count
        except VboplanError as exc:
            if f"'{env.name}'" not in str(exc):
                raise type(exc)(f"environment '{env.name}': {exc}") from None
            raise

    if len(imports) == 1:
        read(imports[0])
        return
    with ThreadPoolExecutor(max_workers=min(len(imports), 8)) as pool:
        for future in [pool.submit(read, item) for item in imports]:
            future.result()


def _hold_back(item: EnvironmentImport, kind: str, exported: Export, recorded: Any) -> None:
    """Never write what was secret: a field the snapshot keeps as a hash was filled from ``secret()`` when last
    applied, so the value the server holds is that secret. A server-wide object's field is read by the template
    from a ``secret()`` placeholder instead (:func:`template_text`); a field kept per organization is left out.
    :func:`report_lines` says which."""
    secret = recorded_secrets(recorded)
    if not secret or not isinstance(exported.values, dict):
        return
    held = item.held_back.setdefault(kind, {})
    for org, fields in secret.items():
        values = exported.values if org is None else exported.values.get(org)
        if not isinstance(values, dict):
            continue
        for name in sorted(fields & set(values)):
            del values[name]
            address = f"{kind}.{name}" if org is None else f"{kind}[{json.dumps(org)}].{name}"
            held[address] = (name, secret_variable(kind, name) if org is None else "")


#: The variable files' value of a named object's field read from ``secret()``: ``{secret: VARIABLE}``; the template
#: import writes turns it into ``{{ secret("VARIABLE") }}``.
SECRET = "secret"


def _read_from_secret(item: EnvironmentImport, kind: str, exported: Export, recorded: Any) -> None:
    """Named objects (a collection's, keyed by name) get a ``secret()`` placeholder, one variable per object and
    field, for each write-only field (a cloud account's secret key, an encryption key's password) and each field
    the snapshot keeps as a hash (filled from ``secret()`` when last applied): the values never reach a file."""
    if not exported.keyed_by or len(exported.keyed_by) != 1 or not isinstance(exported.values, dict):
        return
    from vboplan.kinds.collection import secret_variable

    wanted: list[tuple[str, str, str]] = []
    for w in exported.write_only:
        key = _object_key(w.address)
        if w.secret and key in exported.values:
            wanted.append((key, w.field, w.secret))
    objects = (recorded or {}).get("objects") if isinstance(recorded, dict) else None
    for key, obj in (objects or {}).items() if isinstance(objects, dict) else []:
        values = exported.values.get(key)
        for name, value in ((obj or {}).get("values") or {}).items():
            if isinstance(values, dict) and name in values and _holds_hash(value):
                wanted.append((key, name, secret_variable(kind, key, name)))
    for key, name, variable in wanted:
        exported.values[key][name] = {SECRET: variable}
        item.placeholders[variable] = f"{kind}[{json.dumps(key)}].{name}"
    if wanted:
        exported.write_only = [w for w in exported.write_only if _object_key(w.address) not in exported.values]


def _object_key(address: str) -> str:
    from vboplan.planning.changes import Address

    try:
        parts = Address.parse(address).parts
    except VboplanError:
        return ""
    return parts[0][1] if parts and parts[0][0] == "[" else ""


def _holds_hash(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_holds_hash(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_hash(v) for v in value)
    return is_digest(value)


def secret_variable(kind: str, name: str) -> str:
    """The variable import names for ``secret()`` of a field: ``AUDIT_EMAIL_SETTINGS_SMTP_SERVER``."""
    return f"{kind}_{re.sub(r'(?<=[a-z0-9])(?=[A-Z])', '_', name)}".upper()


# -- where files go ----------------------------------------------------------------------------------------------------


def existing_templates(project: Project) -> dict[str, tuple[str, bool]]:
    """Kinds the project's templates already define: kind -> (template shown, written by import)."""
    try:
        paths = project.template_files()
    except ProjectError:
        return {}  # no template yet
    found: dict[str, tuple[str, bool]] = {}
    for path in paths:
        try:
            text = read_regular(path, MAX_BYTES).decode("utf-8", errors="replace")
        except NotRegularFile as exc:
            raise ProjectError(f"{project.display(path)}: {exc.strerror}") from None
        except OSError as exc:
            raise ProjectError(f"{project.display(path)}: cannot read ({exc.strerror or exc})") from None
        marker = _MARKER.search(text[:500])
        if marker and marker.group(1) in KINDS:
            found.setdefault(marker.group(1), (project.display(path), True))
            continue
        for match in _TOP_KEY.finditer(text):
            if match.group(1) in KINDS:
                found.setdefault(match.group(1), (project.display(path), False))
    return found


def template_path(project: Project, kind: str) -> Path:
    """Where the template of ``kind`` goes: the first ``templates`` glob of vboplan.yaml whose file name part has
    one ``*`` (``templates/*.yaml.j2`` gives ``templates/<kind>.yaml.j2``)."""
    for pattern in project.templates:
        parts = [p for p in PurePosixPath(pattern.replace("\\", "/")).parts if p != "**"]
        if not parts or parts[-1].count("*") != 1 or any(c in "".join(parts) for c in "?[") \
                or any("*" in p for p in parts[:-1]):
            continue
        candidate = "/".join([*parts[:-1], parts[-1].replace("*", kind)])
        if fnmatch.fnmatchcase(candidate, pattern.replace("\\", "/")):
            return project.root / candidate
    raise ProjectError(f"vboplan.yaml: no 'templates' glob tells where a new template goes "
                       f"({', '.join(project.templates)}); add one like templates/*.yaml.j2")


def _inside(project: Project, path: Path) -> Path:
    root = project.root.resolve()
    if not path.resolve().is_relative_to(root):
        raise ProjectError(f"refusing to write {path}: it is outside the project {root}")
    return path


def _own_var_file(project: Project, env: Environment) -> Path:
    """The last variable file only ``env`` lists: where its own values go."""
    others = {p for e in project.environments.values() if e.name != env.name for p in e.var_files}
    own = [p for p in env.var_files if p not in others]
    if not own:
        listed = ", ".join(project.display(p) for p in env.var_files) or "none"
        raise ProjectError(f"{env.where}: environment '{env.name}' has no variable file of its own (var_files: "
                           f"{listed}); add one, e.g. environments/{env.name}.yaml, for the values of its server")
    return own[-1]


def _shared_var_file(project: Project, envs: list[Environment]) -> Path | None:
    """For environments imported together: the first variable file all of them list and no other environment does
    (values written there reach exactly these environments)."""
    if len(envs) < 2:
        return None
    names = {e.name for e in envs}
    others = {p for e in project.environments.values() if e.name not in names for p in e.var_files}
    for path in envs[0].var_files:
        if all(path in e.var_files for e in envs) and path not in others:
            return path
    log.warning("the environments %s share no variable file of their own (only they list it); every value goes "
                "to each environment's own file", ", ".join(sorted(names)))
    return None


# -- variable files ----------------------------------------------------------------------------------------------------


def _variable_files(project: Project, imports: list[EnvironmentImport], shared: Path | None) -> list[PlannedFile]:
    files: list[PlannedFile] = []
    trees = {i.env.name: _leaves(i.values) for i in imports}
    common: dict[Leaf, Any] = {}
    if shared is not None and not shared.exists():
        first, *rest = trees.values()
        common = {leaf: value for leaf, value in first.items() if all(t.get(leaf, _ABSENT) == value for t in rest)}
        envs = ", ".join(i.env.name for i in imports)
        files.append(PlannedFile(shared, project.display(shared), f"values equal on {envs}",
                                 _var_text(shared, [f"Values equal on the servers of {envs}, read by vboplan import."],
                                           _tree(common))))
    for item in imports:
        assert item.own_file is not None
        provided = _leaves(_existing_variables(project, item.env))
        wanted = {leaf: value for leaf, value in trees[item.env.name].items()
                  if leaf not in common and provided.get(leaf, _ABSENT) != value}
        path = item.own_file
        if path.exists():
            for leaf in wanted:
                item.unwritten.setdefault(leaf[0], []).append(".".join(leaf))
            files.append(PlannedFile(path, project.display(path), f"variables of {item.env.name}", "", exists=True))
            continue
        header = [f"Values of environment '{item.env.name}' ({item.env.server}, API {item.env.api_version}), "
                  "read by vboplan import.",
                  "Each top-level key feeds the template of that name; a field left out is not managed."]
        files.append(PlannedFile(path, project.display(path), f"variables of {item.env.name}",
                                 _var_text(path, header, _tree(wanted))))
    # Templates that exist are reported as skipped too, so a second import says what it left alone.
    return files


_ABSENT = object()


def _existing_variables(project: Project, env: Environment) -> dict[str, Any]:
    from vboplan.project.render import load_variables

    present = [p for p in env.var_files if p.exists()]
    if not present:
        return {}
    from dataclasses import replace

    return load_variables(project, replace(env, var_files=tuple(present)))


def _leaves(tree: Any, prefix: Leaf = ()) -> dict[Leaf, Any]:
    """Every value of nested mappings by its path; lists and empty mappings are values."""
    out: dict[Leaf, Any] = {}
    if isinstance(tree, dict) and (tree or not prefix):
        for key, value in tree.items():
            out.update(_leaves(value, (*prefix, str(key))))
    else:
        out[prefix] = tree
    return out


def _tree(leaves: dict[Leaf, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path, value in leaves.items():
        node = out
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return out


def _var_text(path: Path, header: list[str], tree: dict[str, Any]) -> str:
    """A variable file holding ``tree``; its text is read back and compared, so a value YAML (or JSON) would read
    differently is an error here, not a surprise in the next plan."""
    if path.suffix.lower() == ".json":
        text = json.dumps(tree, indent=2, ensure_ascii=False) + "\n"
        back = parse_json(text, str(path))
    else:
        body = yaml.dump(tree, Dumper=_DUMPER, sort_keys=False, allow_unicode=True, default_flow_style=False,
                         width=100) if tree else ""
        text = "".join(f"# {line}\n" for line in header) + body
        back = parse_yaml(text, str(path)) or {}
    if plain(back) != tree:
        raise ProjectError(f"{path}: a value read from the server cannot be written as it is (YAML would read it "
                           "back differently); nothing was written")
    return text



# -- templates ---------------------------------------------------------------------------------------------------------


def template_text(kind: str, exported: Export, write_only: list[WriteOnly],
                  placeholders: dict[str, str] | None = None) -> str:
    """The template of ``kind``: renders the kind from the variable of the same name, so the values stay in the
    variable files; nothing is rendered for an environment whose variables lack it. ``placeholders`` (field ->
    variable) are fields that were secret: where the variables lack one, it comes from ``secret()``."""
    levels = list(exported.keyed_by)
    about = f" ({exported.summary})" if exported.summary else ""
    lines = [f"{{#- {MARKER} {kind}{about}",
             f"    Written by vboplan import. The values are in the variable files, under the key {kind};",
             "    a field left out there is not managed.",
             "-#}",
             f"{{%- if {kind} is defined and {kind} %}}",
             f"{kind}:"]
    source, indent = kind, "  "
    for level in levels:
        lines += [f"{{%- for {level}, {level}_fields in {source}.items() %}}",
                  f"{indent}{{{{ {level} | tojson }}}}:"]
        source, indent = f"{level}_fields", indent + "  "
    secret_fields = sorted({name for values in (exported.values or {}).values() if isinstance(values, dict)
                            for name, value in values.items() if _is_placeholder(value)}) if levels else []
    if secret_fields:  # {secret: VARIABLE} in the variable files: the value comes from the environment
        lines += [f"{{%- for field, value in {source}.items() %}}",
                  f"{{%- if field in {json.dumps(secret_fields)} and value is mapping and value.{SECRET} is defined %}}",
                  f"{indent}{{{{ field | tojson }}}}: {{{{ secret(value.{SECRET}) }}}}",
                  "{%- else %}",
                  f"{indent}{{{{ field | tojson }}}}: {{{{ value | tojson }}}}",
                  "{%- endif %}",
                  "{%- endfor %}"]
    else:
        lines += [f"{{%- for field, value in {source}.items() %}}",
                  f"{indent}{{{{ field | tojson }}}}: {{{{ value | tojson }}}}",
                  "{%- endfor %}"]
    for name, variable in sorted((placeholders or {}).items()) if not levels else []:
        lines += [f"{{%- if {json.dumps(name)} not in {source} %}}",
                  f'{indent}{json.dumps(name)}: {{{{ secret("{variable}") }}}}',
                  "{%- endif %}"]
    hints = {w.field: w for w in write_only if w.secret}
    if hints:
        lines.append("{#- Write-only (the server never returns them), so not imported. To manage one, add its line:")
        lines += [f'{indent}"{w.field}": {{{{ secret("{w.secret}") }}}}' for w in hints.values()]
        lines.append("#}")
    lines += ["{%- endfor %}" for _ in levels]
    lines.append("{%- endif %}")
    return "\n".join(lines) + "\n"


def _is_placeholder(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {SECRET} and isinstance(value[SECRET], str)


# -- what the plan after an import means ------------------------------------------------------------------------------


def explain(result: ImportResult) -> None:
    """Say, for each change the plan after the import still shows, why it is there."""
    by_env = {i.env.name: i for i in result.environments}
    for outcome in result.outcomes:
        item = by_env[outcome.env.name]
        for change in outcome.plan.changes if outcome.plan else []:
            if change.kind in result.foreign:
                reason = f"{result.foreign[change.kind]} (a template import did not write) manages it"
            elif change.detail.get("write_only"):
                reason = "write-only: the server never returns it, so import could not read it"
            elif change.kind in item.unwritten:
                shown = item.own_file.name if item.own_file else "its variable file"
                reason = f"{shown} existed and was left alone; it does not give the live value"
            else:
                reason = ("the templates render another value than the server holds (changed during the import, "
                          "or set by an existing variable file)")
            result.reasons[(outcome.env.name, change.id)] = reason


def report_lines(result: ImportResult) -> list[str]:
    """What ``vboplan import`` prints on stdout (the plan tables come after)."""
    lines: list[str] = []
    for item in result.environments:
        env = item.env
        counted = sum(len(_leaves(v)) for v in item.values.values())
        lines.append(f"Environment {env.name}: {env.server} (API {env.api_version}): read "
                     f"{len(item.values)} resource{'s' if len(item.values) != 1 else ''}, {counted} value"
                     f"{'s' if counted != 1 else ''}")
        for note in item.notes:
            lines.append(f"  not imported: {note}")
        for kind, shown in sorted(result.foreign.items()):
            lines.append(f"  not imported: {kind}: {shown} already manages it (a template not written by import)")
    verb = "Would write" if result.dry_run else "Wrote"
    for planned in result.written:
        lines.append(f"{verb} {planned.shown} ({planned.purpose})")
    for planned in result.skipped:
        lines.append(f"Skipped {planned.shown}: it exists and is left alone")
    for item in result.environments:
        for leaves in item.unwritten.values():
            lines.append(f"  {item.env.name}: {', '.join(leaves[:5])}{' ...' if len(leaves) > 5 else ''} not written "
                         f"({item.own_file.name if item.own_file else 'its variable file'} exists)")
    write_only, oauth = _write_only(result)
    if write_only:
        lines.append("Write-only fields (the server never returns them) were left out, so vboplan does not manage "
                     "them. To manage one, add its line to the template:")
        for address, (hint, template) in write_only.items():
            lines.append(f"  {address}: in {template}, add  {hint}")
    if oauth:
        lines.append(f"Not managed either: {', '.join(oauth)} (write-only, used only while signing in with OAuth)")
    lines += _held_back_lines(result)
    for item in result.environments:
        if item.placeholders:
            lines.append(f"Secrets of {item.env.name} are read from the environment (the server never returns them; "
                         "the variable files name the variable): set these before the next plan:")
            lines += [f"  {variable}  ({address})" for variable, address in sorted(item.placeholders.items())]
    if result.dry_run:
        for planned in result.written:
            lines.append(f"--- {planned.shown}")
            lines.append(planned.text.rstrip("\n"))
    return lines


def _held_back_lines(result: ImportResult) -> list[str]:
    lines = []
    for item in result.environments:
        for held in item.held_back.values():
            for address, (_, variable) in held.items():
                said = f"  {item.env.name}: {address} was filled from secret() when last applied, so its value is not"
                lines.append(f'{said} written: the template reads it from secret("{variable}"); set {variable}'
                             if variable else f"{said} written and it is left out (fill it from secret() to manage "
                             "it)")
    return lines


def _write_only(result: ImportResult) -> tuple[dict[str, tuple[str, str]], list[str]]:
    """Write-only fields of the kinds import wrote values for: {address: (line to add, template)}, and the others
    (no password: OAuth's requestId)."""
    found: dict[str, tuple[str, str]] = {}
    other: list[str] = []
    templates = {f.purpose.removeprefix("template of "): f.shown for f in result.files
                 if f.purpose.startswith("template of ")}
    for item in result.environments:
        for kind, exported in item.exports.items():
            if not exported.values:
                continue
            for w in exported.write_only:
                if not w.secret:
                    if w.address not in other:
                        other.append(w.address)
                    continue
                hint = f'"{w.field}": {{{{ secret("{w.secret}") }}}}'
                found.setdefault(w.address, (hint, templates.get(kind, f"the template of {kind}")))
    return found, other


def describe_outcomes(result: ImportResult) -> list[str]:
    """The plan after the import: "No changes" per environment, or a table of what remains and why."""
    from tabulate import tabulate

    from vboplan.output import cells

    lines: list[str] = []
    for outcome in result.outcomes:
        env = outcome.env
        if outcome.error is not None:
            lines.append(f"Plan of {env.name} after import failed: {outcome.error}")
            continue
        plan = outcome.plan
        if not plan.changes:
            lines.append(f"Plan of {env.name} after import: No changes. The server matches the templates.")
            continue
        lines.append(f"Plan of {env.name} after import: {len(plan.changes)} change"
                     f"{'s' if len(plan.changes) != 1 else ''} remain:")
        rows = [[c.id, c.action, str(c.address), *cells(c), result.reasons.get((env.name, c.id), "")]
                for c in plan.changes]
        lines.append(tabulate(rows, headers=["id", "action", "address", "live", "desired", "reason"],
                              tablefmt="simple", disable_numparse=True))
    return lines

