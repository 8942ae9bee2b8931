"""The user's config repository: ``vboplan.yaml``, its environments and their variable files."""

from __future__ import annotations

import getpass
import glob
import math
import os
import re
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vboplan.api.session import ConnectionSettings
from vboplan.errors import ProjectError
from vboplan.planning.guard import Thresholds
from vboplan.project.yamlfile import Located, load_yaml
from vboplan.schema import VERSIONS, nearest
from vboplan.shapes import check_regular
from vboplan.state.config import StateConfig, parse_state_config

CONFIG_NAME = "vboplan.yaml"
EMULATOR_SCHEME = "emulator:"

_ENV_KEYS = {"server", "api_version", "username", "username_env", "password_env", "verify", "var_files",
             "approvals", "timeout", "max_in_flight", "labels"}
_TOP_KEYS = {"templates", "environments", "state", "guard", "inventory", "policies"}

#: Environment and emulator names become file names (``.vboplan/state/<env>.json``), so only these are allowed.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# Names Windows reserves for devices, whatever the extension (``nul.json`` is the null device there).
_WINDOWS_DEVICES = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}
MAX_TIMEOUT = 3600.0


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name an environment or emulator (it becomes part of file names), or None if it can."""
    if not NAME_PATTERN.fullmatch(name):
        return ("use 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit "
                "(it becomes a file name under .vboplan/)")
    if ".." in name or name.endswith("."):
        return "it may not contain '..' or end with '.'"
    if name.split(".")[0].lower() in _WINDOWS_DEVICES:
        return "it is a device name on Windows"
    return None


DEFAULT_MAX_AGE = 7 * 24 * 3600  # seconds: a saved plan older than a week is refused


@dataclass(frozen=True)
class ApprovalPolicy:
    """How many distinct people must approve each change, whose SSH keys count (an ``allowed_signers`` file), and
    how old a saved plan may be when it is applied."""

    required: int = 0
    allowed_signers: Path | None = None
    max_age: int = DEFAULT_MAX_AGE
    signed_commits: bool = False  # every commit a plan was rendered from must carry a listed key's git signature
    display: str = ""           # allowed_signers as the user wrote it, for messages
    where: str = ""             # vboplan.yaml:LINE of the approvals setting

    def trust_list(self):  # type: ignore[no-untyped-def]
        """The parsed ``allowed_signers`` file (errors name its file and line)."""
        from vboplan.trust.signing import TrustList

        if self.allowed_signers is None:
            raise ProjectError(f"{self.where}: approvals need an allowed_signers file naming who may approve")
        return TrustList.load(self.allowed_signers, self.display)


@dataclass(frozen=True)
class Environment:
    """One VBO server and the variables that shape its desired settings."""

    name: str
    server: str
    api_version: str = "v8"
    username: str | None = None
    username_env: str | None = None
    password_env: str | None = None
    verify: bool | str = True
    var_files: tuple[Path, ...] = ()
    approvals: ApprovalPolicy = field(default_factory=ApprovalPolicy)
    timeout: float = 30.0
    where: str = ""
    var_files_where: str = ""  # FILE:LINE of the var_files setting (vboplan.yaml, or the inventory's)
    max_in_flight: int = 8   # requests sent to this environment's server at once
    unusable: str = ""       # why this environment cannot be used (its CA bundle is missing), else empty
    # ``--var KEY=VALUE`` pairs (dotted key -> value), set over every variable file; see project.overrides.
    variables: tuple[tuple[str, Any], ...] = ()

    labels: tuple[tuple[str, str], ...] = ()   # labels: {K: V}, sorted pairs (what --label K=V selects on)

    def check_usable(self) -> None:
        """Refuse to use this environment when its settings cannot work (a CA bundle that is missing)."""
        if self.unusable:
            raise ProjectError(f"environment '{self.name}': {self.unusable}")

    def with_variables(self, variables: dict[str, Any]) -> Environment:
        """This environment with ``--var`` values set over its variable files."""
        from dataclasses import replace

        return replace(self, variables=tuple(variables.items()))
    labels: tuple[tuple[str, str], ...] = ()   # labels: {K: V}, sorted pairs (what --label K=V selects on)

    @property
    def connection(self) -> ConnectionSettings:
        """What the API layer needs to reach this environment's server."""
        return ConnectionSettings(name=self.name, server=self.server, api_version=self.api_version,
                                  verify=self.verify, timeout=self.timeout, password_env=self.password_env)

    @property
    def emulator_name(self) -> str | None:
        """The name of the embedded emulator this environment talks to, if any."""
        return self.server[len(EMULATOR_SCHEME):] if self.server.startswith(EMULATOR_SCHEME) else None

    def resolve_username(self) -> str:
        if self.username_env:
            value = os.environ.get(self.username_env)
            if value:
                return value
            if not self.username:
                raise ProjectError(f"environment '{self.name}': the username variable {self.username_env} is not set")
        if not self.username:
            raise ProjectError(f"environment '{self.name}': no username (set 'username' or 'username_env')")
        return self.username

    def resolve_password(self) -> str:
        if not self.password_env:
            raise ProjectError(f"environment '{self.name}': no 'password_env' names the variable holding the API password")
        value = os.environ.get(self.password_env)
        if not value:
            raise ProjectError(
                f"environment '{self.name}': the API password variable {self.password_env} is not set "
                f"(export {self.password_env}=... before running vboplan)")
        from vboplan.sensitive import remember

        remember(value, f"environment '{self.name}': the API password in {self.password_env}")
        return value


@dataclass(frozen=True)
class Project:
    """A loaded ``vboplan.yaml``: where templates are and which environments exist."""

    root: Path
    templates: tuple[str, ...]
    environments: dict[str, Environment]
    state: StateConfig = field(default_factory=StateConfig)
    guard: Thresholds = field(default_factory=Thresholds)   # mass-delete thresholds (vboplan.planning.guard)
    policies: tuple[str, ...] = ()   # rule files: globs relative to the project, or builtin:NAME
    inventory: str | None = None     # the inventory file as vboplan.yaml names it (relative to the project)

    @property
    def work_dir(self) -> Path:
        return self.root / ".vboplan"

    def work_path(self, *parts: str) -> Path:
        """A path under ``.vboplan/`` for a file vboplan writes; refused if it would land outside the project
        (a name with a separator or '..', or a symbolic link pointing elsewhere)."""
        path = self.work_dir.joinpath(*parts)
        root = self.root.resolve()
        resolved = path.resolve()
        if any(p in ("", ".", "..") or "/" in p or "\\" in p for p in parts) or not resolved.is_relative_to(root):
            raise ProjectError(f"refusing to write {path}: it is outside the project {root}")
        return path

    def environment(self, name: str) -> Environment:
        try:
            return self.environments[name]
        except KeyError:
            known = ", ".join(sorted(self.environments)) or "none"
            hint = nearest(name, list(self.environments))
            more = f"; did you mean '{hint}'?" if hint else ""
            raise ProjectError(f"unknown environment '{name}' (known: {known}){more}") from None

    def select(self, names: tuple[str, ...] | list[str], all_envs: bool, labels: tuple[str, ...] = (),
               shard: str | None = None) -> list[Environment]:
        """The environments named on the command line (or all of them), in the order given; ``labels``
        (``K=V``, all must match) narrow them, selecting from all environments when none is named, and ``shard``
        (``I/N``) keeps one stable slice of those (possibly none)."""
        if all_envs and names:
            raise ProjectError(f"--all means every environment; give either --all or --env {names[0]}, not both")
        if labels or shard is not None:  # an empty --shard (a CI variable that expanded to nothing) is refused
            from vboplan.project import inventory

            filters = inventory.parse_label_filters(labels)
            slice_ = inventory.parse_shard(shard)
            chosen = self.select(names, not names)
            return inventory.in_shard(inventory.matching(chosen, filters), slice_)
        if all_envs:
            return [self.environments[n] for n in self.environments]
        if not names:
            raise ProjectError("name an environment with --env NAME (or use --all)")
        seen: dict[str, Environment] = {}
        for name in names:
            seen.setdefault(name, self.environment(name))
        return list(seen.values())

    def template_files(self) -> list[Path]:
        files: dict[Path, None] = {}
        for pattern in self.templates:
            matches = sorted(glob.glob(pattern, root_dir=self.root, recursive=True))
            for match in matches:
                files.setdefault(self.root / match, None)
        if not files:
            raise ProjectError(f"{CONFIG_NAME}: no template matches {', '.join(self.templates)}")
        return list(files)

    def display(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)


def current_user() -> str:
    """Who is running vboplan: ``VBOPLAN_USER`` when set, else the login name."""
    name = os.environ.get("VBOPLAN_USER")
    if name:
        return name
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def load_project(root: Path) -> Project:
    """Read ``vboplan.yaml`` in ``root``. Every error names the file and line."""
    root = root.resolve()
    path = root / CONFIG_NAME
    if not path.exists():
        raise ProjectError(f"no {CONFIG_NAME} in {root} (run vboplan in a project directory or pass -C DIR)")
    config = load_yaml(path, CONFIG_NAME)
    if not isinstance(config, Located):
        raise ProjectError(f"{CONFIG_NAME}: expected a mapping with 'templates' and 'environments'")
    _reject_unknown(config, _TOP_KEYS)
    templates = config.get("templates", ["templates/*.yaml.j2"])
    if isinstance(templates, str):
        templates = [templates]
    if not isinstance(templates, list) or not all(isinstance(t, str) for t in templates):
        raise ProjectError(f"{config.where('templates')}: 'templates' must be a list of globs")
    envs = config.get("environments", Located() if "inventory" in config else None)
    if not isinstance(envs, Located) or not (envs or "inventory" in config):
        raise ProjectError(f"{config.where('environments')}: 'environments' must map names to settings")
    for name in envs:
        problem = name_problem(name) if isinstance(name, str) else "it must be a text name"
        if problem:
            raise ProjectError(f"{envs.where(name)}: environment name '{name}' is not allowed: {problem}")
    environments = {str(name): _environment(root, str(name), spec, envs.where(name)) for name, spec in envs.items()}
    from vboplan.project.inventory import refuse_case_twin

    folded: dict[str, Environment] = {}
    for name, env in environments.items():
        refuse_case_twin(name, env.where, folded)
        folded[name.casefold()] = env
    if "inventory" in config:
        environments = _with_inventory(root, environments, config)
    state = parse_state_config(config.get("state"), config.where("state"),
                               config["state"].where if isinstance(config.get("state"), Located) else None)
    guard = _guard(config.get("guard"), config.where("guard"))
    policies = config.get("policies", [])
    if isinstance(policies, str):
        policies = [policies]
    if not isinstance(policies, list) or not all(isinstance(p, str) and p for p in policies):
        raise ProjectError(f"{config.where('policies')}: 'policies' must be a list of globs of rule files "
                           "(or builtin:recommended)")
    inventory = config.get("inventory")
    return Project(root=root, templates=tuple(templates), environments=environments, state=state, guard=guard,
                   policies=tuple(policies), inventory=inventory if isinstance(inventory, str) else None)


def _share_and_minimum(raw: Any, where: str, default: tuple[float, int]) -> tuple[float, int]:
    if not isinstance(raw, dict) or set(raw) - {"share", "minimum"}:
        raise ProjectError(f"{where}: a guard threshold is a mapping of share (0 to 1) and minimum (objects)")
    share, minimum = raw.get("share", default[0]), raw.get("minimum", default[1])
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
        raise ProjectError(f"{where}: guard share must be a number from 0 to 1")
    if isinstance(minimum, bool) or not isinstance(minimum, int) or minimum < 1:
        raise ProjectError(f"{where}: guard minimum must be a whole number of at least 1")
    return float(share), minimum


def _guard(raw: Any, where: str) -> Thresholds:
    """``guard:``: the mass-delete thresholds, for every collection and per collection."""
    if raw is None:
        return Thresholds()
    if not isinstance(raw, dict):
        raise ProjectError(f"{where}: 'guard' must be a mapping (share, minimum, or a collection's name)")
    overall = {k: v for k, v in raw.items() if k in ("share", "minimum")}
    share, minimum = _share_and_minimum(overall, where, (Thresholds().share, Thresholds().minimum))
    per_kind = {str(k): _share_and_minimum(v, where, (share, minimum)) for k, v in raw.items()
                if k not in ("share", "minimum")}
    return Thresholds(share, minimum, per_kind)


def _with_inventory(root: Path, environments: dict[str, Environment], config: Located) -> dict[str, Environment]:
    """The environments of vboplan.yaml followed by those of its inventory file; a name in both is refused."""
    from vboplan.project.inventory import load_inventory, refuse_case_twin

    listed = load_inventory(root, config["inventory"], config.where("inventory"),
                            lambda name, spec, where: _environment(root, name, spec, where))
    folded = {name.casefold(): env for name, env in environments.items()}
    for name, env in listed.items():
        if name in environments:
            raise ProjectError(f"{env.where}: environment '{name}' is also defined in {environments[name].where}")
        refuse_case_twin(name, env.where, folded)
    if not environments and not listed:
        raise ProjectError(f"{config.where('inventory')}: the inventory lists no environment")
    return {**environments, **listed}


def _reject_unknown(mapping: Located, known: set[str]) -> None:
    for key in mapping:
        if key not in known:
            hint = nearest(str(key), sorted(known))
            raise ProjectError(f"{mapping.where(key)}: unknown setting '{key}'"
                               + (f"; did you mean '{hint}'?" if hint else ""))


def _environment(root: Path, name: str, spec: Any, where: str) -> Environment:
    if not isinstance(spec, Located):
        raise ProjectError(f"{where}: environment '{name}' must be a mapping")
    _reject_unknown(spec, _ENV_KEYS)
    server = spec.get("server")
    if not isinstance(server, str) or not server:
        raise ProjectError(f"{spec.where()}: environment '{name}' needs a 'server' (https://host:4443 or emulator:NAME)")
    _check_server(server, spec.where("server"))
    version = str(spec.get("api_version", "v8")).lower()
    if version not in VERSIONS:
        raise ProjectError(f"{spec.where('api_version')}: api_version '{version}' is not one of {', '.join(VERSIONS)}")
    verify = spec.get("verify", True)
    if not isinstance(verify, (bool, str)) or verify == "":
        raise ProjectError(f"{spec.where('verify')}: verify must be true, false or the path of a CA bundle")
    unusable = ""
    if isinstance(verify, str):
        from vboplan.api.certs import check_ca_file

        bundle = (root / verify).resolve()
        # A missing or unreadable bundle stops this environment only, when it is planned or validated: the
        # others still work (a CA file not yet checked out must not block a plan of dev).
        if not bundle.exists():  # any other problem (a folder, a FIFO) is check_ca_file's to name
            unusable = f"{spec.where('verify')}: CA bundle '{verify}' not found"
        else:
            try:
                check_ca_file(bundle, f"{spec.where('verify')}: verify '{verify}'")
            except ProjectError as exc:
                unusable = str(exc)
        verify = str(bundle)
    var_files = spec.get("var_files", [])
    if isinstance(var_files, str):
        var_files = [var_files]
    if not isinstance(var_files, list) or not all(isinstance(v, str) for v in var_files):
        raise ProjectError(f"{spec.where('var_files')}: var_files must be a list of paths")
    from vboplan.project.inventory import expand_path, parse_labels

    labels = parse_labels(spec.get("labels"), spec.where("labels"))
    var_files = [expand_path(v, name, dict(labels), spec.where("var_files"), spec.where("labels")) for v in var_files]
    approvals = _approvals(root, spec.get("approvals", {}), spec.where("approvals"))
    timeout = spec.get("timeout", 30)
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not math.isfinite(timeout) \
            or not 0 < timeout <= MAX_TIMEOUT:
        raise ProjectError(f"{spec.where('timeout')}: timeout must be a number of seconds above 0 and at most "
                           f"{MAX_TIMEOUT:g}")
    max_in_flight = spec.get("max_in_flight", 8)
    if not isinstance(max_in_flight, int) or isinstance(max_in_flight, bool) or not 1 <= max_in_flight <= 64:
        raise ProjectError(f"{spec.where('max_in_flight')}: max_in_flight must be a whole number from 1 to 64 "
                           "(requests sent to the server at once)")
    for key in ("username", "username_env", "password_env"):
        if key in spec and (not isinstance(spec[key], str) or not spec[key] or "\x00" in spec[key]):
            raise ProjectError(f"{spec.where(key)}: {key} must be a non-empty string")
    for key in ("username_env", "password_env"):
        if key in spec and ("=" in spec[key] or len(spec[key]) > 256):
            raise ProjectError(f"{spec.where(key)}: {key} must name an environment variable")
    return Environment(
        name=name, server=server.rstrip("/"), api_version=version, username=spec.get("username"),
        username_env=spec.get("username_env"), password_env=spec.get("password_env"), verify=verify,
        var_files=tuple(root / v for v in var_files), approvals=approvals, timeout=float(timeout), where=where,
        var_files_where=spec.where("var_files"), max_in_flight=max_in_flight, unusable=unusable, labels=labels)


def _check_server(server: str, where: str) -> None:
    """``https://host[:port][/prefix]``, ``http://...`` or ``emulator:NAME``; anything else is refused here rather
    than failing deep inside the HTTP library."""
    if server.startswith(EMULATOR_SCHEME):
        name = server[len(EMULATOR_SCHEME):]
        problem = name_problem(name)
        if problem:
            raise ProjectError(f"{where}: emulator name '{name}' is not allowed: {problem}")
        return
    # Shown without what precedes the host: a user name and password there may be the API password itself.
    shown = _without_userinfo(server).encode("unicode_escape").decode("ascii")
    if not server.startswith(("https://", "http://")):
        raise ProjectError(f"{where}: server '{shown}' must start with https:// or emulator:")
    if any(ord(ch) < 33 or ord(ch) == 127 for ch in server):
        raise ProjectError(f"{where}: server '{shown}' contains a space or control character")
    try:
        parts = urllib.parse.urlsplit(server)
        port = parts.port
        host = parts.hostname
    except ValueError as exc:
        raise ProjectError(f"{where}: server '{shown}' is not a valid URL ({exc})") from None
    if not host:
        raise ProjectError(f"{where}: server '{shown}' names no host (https://host:4443)")
    if parts.username is not None or parts.password is not None:
        raise ProjectError(f"{where}: server '{shown}' must not carry a user name or password before the host; use "
                           "username and password_env")
    if parts.query or parts.fragment or server.endswith(("?", "#")):
        raise ProjectError(f"{where}: server '{shown}' must not have a query or fragment")
    if parts.netloc.endswith(":") or (port is not None and not 0 < port < 65536):
        raise ProjectError(f"{where}: server '{shown}' has no valid port")
    try:
        host.encode("idna")  # how the connection resolves and sends it (socket, http.client)
    except UnicodeError as exc:
        raise ProjectError(f"{where}: server '{shown}' is not a valid URL ({exc})") from None


def _without_userinfo(server: str) -> str:
    """``server`` without a ``user:password@`` before its host (where urlsplit finds it: the last ``@`` before the
    path)."""
    scheme, sep, rest = server.partition("://")
    end = min([i for i in (rest.find(c) for c in "/?#") if i >= 0] or [len(rest)])
    if not sep or "@" not in rest[:end]:
        return server
    return f"{scheme}://{rest[:end].rpartition('@')[2]}{rest[end:]}"


def _approvals(root: Path, spec: Any, where: str) -> ApprovalPolicy:
    example = "{required: 2, allowed_signers: approvers/prod.allowed_signers, max_age: 72h}"
    if not isinstance(spec, dict):
        raise ProjectError(f"{where}: approvals must be a mapping like {example}")
    located = spec if isinstance(spec, Located) else None

    def at(key: str) -> str:
        return located.where(key) if located is not None and key in located else where

    if "approvers" in spec:
        raise ProjectError(f"{at('approvers')}: approvals.approvers is no longer supported: a name is not an "
                           "approval. List each approver's SSH public key in an allowed_signers file and set "
                           "approvals.allowed_signers (see README, 'Approvals')")
    unknown = set(spec) - {"required", "allowed_signers", "max_age", "signed_commits"}
    if unknown:
        key = sorted(unknown)[0]
        raise ProjectError(f"{at(key)}: unknown approvals setting '{key}' (use required, allowed_signers, max_age, "
                           "signed_commits)")
    required = spec.get("required", 0)
    if not isinstance(required, int) or isinstance(required, bool) or required < 0:
        raise ProjectError(f"{at('required')}: approvals.required must be a whole number >= 0")
    signers = spec.get("allowed_signers")
    path: Path | None = None
    if signers is not None:
        if not isinstance(signers, str) or not signers:
            raise ProjectError(f"{at('allowed_signers')}: approvals.allowed_signers must be the path of an "
                               "allowed_signers file")
        path = (root / signers).resolve()
        if not path.exists():
            raise ProjectError(f"{at('allowed_signers')}: allowed_signers file '{signers}' not found")
        try:
            check_regular(path)
        except OSError as exc:
            raise ProjectError(f"{at('allowed_signers')}: allowed_signers file '{signers}' {exc.strerror}") from None
    elif required > 0:
        raise ProjectError(f"{at('required')}: approvals.required is {required} but no allowed_signers file says "
                           f"whose SSH keys may approve; add allowed_signers: FILE (like {example})")
    max_age = parse_duration(spec.get("max_age", DEFAULT_MAX_AGE), at("max_age"))
    signed_commits = spec.get("signed_commits", False)
    if not isinstance(signed_commits, bool):
        raise ProjectError(f"{at('signed_commits')}: approvals.signed_commits must be true or false")
    if signed_commits and path is None:
        raise ProjectError(f"{at('signed_commits')}: approvals.signed_commits needs an allowed_signers file naming "
                           "whose git signing keys count")
    return ApprovalPolicy(required=required, allowed_signers=path, max_age=max_age, signed_commits=signed_commits,
                          display=signers if isinstance(signers, str) else "", where=where)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(value: Any, where: str) -> int:
    """Seconds from ``72h``, ``7d``, ``30m``, ``90s``, ``2w`` or a whole number of seconds."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    text = str(value).strip().lower()
    if len(text) > 1 and text[:-1].isdigit() and text[-1] in _UNITS and int(text[:-1]) > 0:
        return int(text[:-1]) * _UNITS[text[-1]]
    raise ProjectError(f"{where}: max_age '{value}' is not a duration like 72h, 7d, 30m or 90s")
