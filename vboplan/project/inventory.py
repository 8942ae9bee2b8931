"""Fleets: environments from an inventory file, their labels, and the slices of a fleet a command works on.

An inventory (``inventory: inventory.yaml`` in vboplan.yaml) lists many environments over shared defaults::

    defaults: {api_version: v8, username: svc-vboplan, password_env: VBO_PASSWORD,
               var_files: [environments/common.yaml, "environments/tier-{labels.tier}.yaml"]}
    environments:
      - {name: tenant-001, server: "https://vbo-001.msp.example:4443", labels: {tier: gold}}

Each entry holds the keys of an environment block of vboplan.yaml over ``defaults`` (``labels`` merge, key by key);
``var_files`` may name ``{name}`` and ``{labels.K}``. ``--label K=V`` selects environments by their labels and
``--shard I/N`` takes the I-th of N stable slices (by a hash of the name), so CI matrix jobs split a fleet.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vboplan.errors import ProjectError
from vboplan.project.yamlfile import Located, load_yaml

if TYPE_CHECKING:
    from vboplan.project.config import Environment

_LABEL_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_./-]{0,62}")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_ENTRY_KEYS = {"name"}


def parse_labels(spec: Any, where: str) -> tuple[tuple[str, str], ...]:
    """An environment's ``labels: {K: V}`` as sorted pairs of text (numbers and booleans become their YAML text)."""
    if spec is None:
        return ()
    if not isinstance(spec, dict):
        raise ProjectError(f"{where}: labels must be a mapping like {{tier: gold, region: eu}}")
    pairs = []
    texts = getattr(spec, "texts", {})
    for key, value in spec.items():
        at = spec.where(key) if isinstance(spec, Located) else where
        if isinstance(value, (bool, int, float)) and key in texts:
            value = texts[key]  # `country: no` is the text no, not false
        if not isinstance(key, str) or not _LABEL_KEY.fullmatch(key):
            raise ProjectError(f"{at}: label name '{key}' is not allowed (letters, digits, '_', '.', '/', '-')")
        if isinstance(value, bool):
            value = "true" if value else "false"
        if not isinstance(value, (str, int, float)) or isinstance(value, str) and ("\n" in value or not value):
            raise ProjectError(f"{at}: label '{key}' must have a one-line text value")
        pairs.append((key, str(value)))
    return tuple(sorted(pairs))


def expand_path(text: str, name: str, labels: dict[str, str], where: str, labels_where: str | None = None) -> str:
    """A ``var_files`` entry (at ``where``) with ``{name}`` and ``{labels.K}`` filled in for one environment (its
    labels at ``labels_where``): each label's value must be one file name."""
    def fill(match: re.Match[str]) -> str:
        field = match.group(1)
        if field == "name":
            return name
        if field.startswith("labels.") and field[len("labels."):] in labels:
            value = labels[field[len("labels."):]]
            if value in (".", "..") or "/" in value or "\\" in value:  # a label may come from another system
                raise ProjectError(f"{labels_where or where}: label '{field[7:]}' of environment '{name}' is "
                                   f"'{value}', which is not one file name, so var_files '{text}' cannot use it "
                                   "('/', '\\', '.' and '..' cannot be filled into a path)")
            return value
        if field.startswith("labels."):
            known = ", ".join(sorted(labels)) or "none"
            raise ProjectError(f"{where}: var_files '{text}' names label '{field[7:]}', which environment '{name}' "
                               f"does not have (its labels: {known})")
        raise ProjectError(f"{where}: var_files '{text}': '{{{field}}}' is not a placeholder (use {{name}} or "
                           "{labels.K})")

    return _PLACEHOLDER.sub(fill, text)


def refuse_case_twin(name: str, where: str, folded: dict[str, Environment]) -> None:
    """Refuse ``name`` when ``folded`` (environments by their name's casefold) holds another environment with the
    same name but for case: on Windows and macOS their plan files (``--out-dir``) and state files would be one."""
    twin = folded.get(name.casefold())
    if twin is not None and twin.name != name:
        raise ProjectError(f"{where}: environment '{name}' differs only in case from '{twin.name}' (at "
                           f"{twin.where}): on Windows and macOS their plan and state files would be one file; "
                           "give it another name")


def _merged(defaults: Located, entry: Located) -> Located:
    """``entry`` over ``defaults``: an entry's key replaces the default's, except ``labels``, which merge."""
    merged = Located()
    merged.source, merged.line = entry.source, entry.line
    merged.lines = {}
    for source in (defaults, entry):
        for key, value in source.items():
            if key == "labels" and value is None and "labels" in merged:
                continue  # `labels:` with nothing after it adds none, as `labels: {}` does
            if key == "labels" and isinstance(value, dict) and isinstance(merged.get("labels"), dict):
                labels = Located({**merged["labels"], **value})
                labels.source, labels.line = value.source if isinstance(value, Located) else entry.source, \
                    source.line_of(key)
                labels.lines = {**getattr(merged["labels"], "lines", {}), **getattr(value, "lines", {})}
                labels.texts = {**getattr(merged["labels"], "texts", {}), **getattr(value, "texts", {})}
                value = labels
            merged[key] = value
            merged.lines[key] = source.line_of(key)
    return merged


def load_inventory(root: Path, setting: Any, where: str,
                   build: Callable[[str, Located, str], Environment]) -> dict[str, Environment]:
    """The environments of the inventory file ``setting`` names (relative to ``root``), each made by ``build``
    from its entry over the defaults; every error names the inventory file and line."""
    from vboplan.project.config import name_problem

    if not isinstance(setting, str) or not setting:
        raise ProjectError(f"{where}: inventory must be the path of an inventory file (inventory: inventory.yaml)")
    path = root / setting
    if not path.is_file():
        raise ProjectError(f"{where}: inventory file '{setting}' not found")
    document = load_yaml(path, setting)
    if not isinstance(document, Located) or not isinstance(document.get("environments"), list):
        raise ProjectError(f"{setting}:{getattr(document, 'line', 1)}: an inventory is a mapping with "
                           "'environments' (a list of {name: ..., server: ...}) and optional 'defaults'")
    unknown = set(document) - {"defaults", "environments"}
    if unknown:
        key = sorted(map(str, unknown))[0]
        raise ProjectError(f"{document.where(key)}: unknown inventory setting '{key}' (use defaults, environments)")
    defaults = document.get("defaults") or Located()
    if not isinstance(defaults, Located):
        raise ProjectError(f"{document.where('defaults')}: defaults must be a mapping of environment settings")
    if "name" in defaults:
        raise ProjectError(f"{defaults.where('name')}: defaults cannot hold a name; each environment has its own")
    environments: dict[str, Environment] = {}
    folded: dict[str, Environment] = {}
    for index, entry in enumerate(document["environments"], 1):
        if not isinstance(entry, Located):
            raise ProjectError(f"{setting}: environment {index} of the inventory must be a mapping with a name")
        name = entry.get("name")
        if name is None:
            raise ProjectError(f"{entry.where()}: environment {index} of the inventory has no name (give it name: NAME)")
        problem = name_problem(name) if isinstance(name, str) else "it must be a text name"
        if problem:
            raise ProjectError(f"{entry.where('name')}: environment name '{name}' is not allowed: {problem}")
        if name in environments:
            raise ProjectError(f"{entry.where('name')}: environment '{name}' is listed twice in the inventory "
                               f"(first at {environments[name].where})")
        refuse_case_twin(name, entry.where("name"), folded)
        spec = _merged(defaults, entry)
        del spec["name"]
        environments[name] = folded[name.casefold()] = build(name, spec, entry.where("name"))
    return environments


# -- selecting part of a fleet --------------------------------------------------------------------------------------

def parse_label_filters(given: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """``--label K=V`` options as pairs; a malformed one is refused with an example."""
    pairs = []
    for text in given:
        key, sep, value = text.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ProjectError(f"--label {text}: write it as KEY=VALUE (e.g. --label tier=gold)")
        pairs.append((key.strip(), value.strip()))
    return tuple(pairs)


def matching(envs: list[Environment], filters: tuple[tuple[str, str], ...]) -> list[Environment]:
    """The environments whose labels hold every ``K=V`` of ``filters``; none is an error that lists the labels in
    use, so a typo is seen."""
    if not filters:
        return envs
    chosen = [env for env in envs if all(dict(env.labels).get(k) == v for k, v in filters)]
    if not chosen:
        used = sorted({f"{k}={v}" for env in envs for k, v in env.labels})
        wanted = " ".join(f"--label {k}={v}" for k, v in filters)
        raise ProjectError(f"no environment matches {wanted} (labels in use: {', '.join(used) or 'none'})")
    return chosen


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``--shard I/N`` as ``(I, N)``, 1 <= I <= N."""
    if text is None:
        return None
    found = re.fullmatch(r"\s*(\d{1,4})\s*/\s*(\d{1,4})\s*", text)
    if not found or not 1 <= int(found.group(1)) <= int(found.group(2)):
        raise ProjectError(f"--shard {text}: write it as I/N with 1 <= I <= N (e.g. --shard 2/8)")
    return int(found.group(1)), int(found.group(2))


def shard_of(name: str, count: int) -> int:
    """The shard (1..count) environment ``name`` belongs to: from a hash of the name alone, so it is the same on
    every runner and does not move when other environments are added or removed."""
    number = int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big")
    return number % count + 1


def in_shard(envs: list[Environment], shard: tuple[int, int] | None) -> list[Environment]:
    """The environments of ``envs`` in shard ``I/N`` (all of them without a shard); may be none."""
    if shard is None:
        return envs
    index, count = shard
    return [env for env in envs if shard_of(env.name, count) == index]
