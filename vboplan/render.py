"""Templates to desired resources: sandboxed Jinja (StrictUndefined), ``secret()``, YAML with line numbers, and
each resource checked against the environment's API version."""

from __future__ import annotations

import logging
import os
import secrets as _random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .errors import ProjectError, RenderError
from .project import Environment, Project
from .resources import KINDS
from .schema import nearest
from .sensitive import Sensitive
from .yamlfile import Located, load_yaml, parse_yaml

log = logging.getLogger("vboplan")


@dataclass
class Rendered:
    """The desired resources of one environment, canonical, with sensitive values wrapped."""

    environment: Environment
    resources: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)


class _SecretMissing(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class _SecretTransformed(Exception):
    pass


def _refuse(*args: Any, **kwargs: Any) -> Any:
    raise _SecretTransformed()


class _SecretToken(str):
    """What ``secret()`` returns: a placeholder that may be written out or joined into a string as it is, but not
    transformed (upper, slice, replace...), because the real value is only put back after rendering."""

    def __str__(self) -> str:
        return self

    __getitem__ = upper = lower = title = capitalize = swapcase = casefold = strip = lstrip = rstrip = _refuse
    replace = split = rsplit = splitlines = partition = rpartition = center = ljust = rjust = zfill = _refuse
    format = format_map = encode = expandtabs = translate = removeprefix = removesuffix = __mod__ = _refuse


def load_variables(project: Project, env: Environment) -> dict[str, Any]:
    """The environment's variable files merged in order (later files win, mappings merge deeply)."""
    merged: dict[str, Any] = {}
    for path in env.var_files:
        data = load_yaml(path, project.display(path))
        if data is None:
            continue
        if not isinstance(data, dict):
            raise ProjectError(f"{project.display(path)}:1: a variable file must be a mapping of names to values")
        merged = _merge(merged, data)
    return merged


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(out.get(key), dict) and isinstance(value, dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def render(project: Project, env: Environment, offline: bool = False) -> Rendered:
    """Render every template for ``env`` and check the result. Errors name the file and line.
    ``offline`` (validate) lets an unset ``secret()`` render as a stand-in value instead of failing."""
    variables = _plain(load_variables(project, env))
    variables.setdefault("environment", {"name": env.name, "api_version": env.api_version})
    jinja = ImmutableSandboxedEnvironment(
        loader=jinja2.FileSystemLoader(str(project.root)), undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True, autoescape=False)
    marker = f"__vboplan_secret_{_random.token_hex(6)}_"
    secret_values: dict[str, str] = {}

    def secret(name: str) -> str:
        value = os.environ.get(str(name))
        if value is None:
            if not offline:
                raise _SecretMissing(str(name))
            log.info("secret('%s') is not set; validating with a stand-in value", name)
            value = "unset-secret"
        token = _SecretToken(f"{marker}{len(secret_values)}__")
        secret_values[token] = value
        return token

    jinja.globals["secret"] = secret
    rendered = Rendered(env)
    for path in project.template_files():
        name = project.display(path)
        text = _render_one(jinja, name, path, variables, env)
        document = parse_yaml(text, name, f" (as rendered for {env.name})")
        if document is None:
            log.warning("%s renders to nothing for environment '%s': it manages no resource", name, env.name)
            continue
        if not isinstance(document, Located):
            raise RenderError(f"{name}: must render to a mapping of resources "
                              f"({', '.join(KINDS)})")
        for key, raw in document.items():
            kind = KINDS.get(str(key))
            where = f"{name}:{document.line_of(key)}"
            if kind is None:
                hint = nearest(str(key), list(KINDS))
                raise RenderError(f"{where}: unknown resource '{key}'"
                                  + (f"; did you mean '{hint}'?" if hint else f" (known: {', '.join(KINDS)})"))
            if kind.name in rendered.resources:
                raise RenderError(f"{where}: {kind.name} is already defined in {rendered.sources[kind.name]}")
            raw = _unmask(raw, secret_values, marker)
            located = raw if isinstance(raw, Located) else None

            def where_of(k: Any, _located: Located | None = located, _where: str = where, _name: str = name) -> str:
                if _located is None or k is None:
                    return _where
                return f"{_name}:{_located.line_of(k)}"

            rendered.resources[kind.name] = kind.normalise(env.api_version, raw, where_of)
            rendered.sources[kind.name] = where
    return rendered


def _render_one(jinja: ImmutableSandboxedEnvironment, name: str, path: Path, variables: dict[str, Any],
                env: Environment) -> str:
    try:
        template = jinja.get_template(Path(name).as_posix())
        return template.render(variables)
    except jinja2.TemplateSyntaxError as exc:
        raise RenderError(f"{name}:{exc.lineno}: template syntax error: {exc.message}") from None
    except _SecretTransformed:
        raise RenderError(f"{name}:{_template_line(path)}: a secret() value is passed through a filter or method; "
                          "use it as it is (it may be joined into a longer string)") from None
    except _SecretMissing as exc:
        raise RenderError(f"{name}:{_template_line(path)}: secret('{exc.name}') is not set in the environment "
                          f"(environment '{env.name}')") from None
    except jinja2.UndefinedError as exc:
        raise RenderError(f"{name}:{_template_line(path)}: {exc.message} (environment '{env.name}'; "
                          f"variables come from {', '.join(str(p.name) for p in env.var_files) or 'no var_files'})"
                          ) from None
    except jinja2.TemplateError as exc:
        raise RenderError(f"{name}:{_template_line(path)}: {exc}") from None
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise RenderError(f"{name}:{_template_line(path)}: {exc}") from None


def _template_line(path: Path) -> int | str:
    """The template line being rendered when the current exception was raised (Jinja maps frames to it)."""
    tb = sys.exc_info()[2]
    line: int | str = "?"
    target = str(path.resolve())
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename == target or filename == str(path):
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _plain(value: Any) -> Any:
    """Variables as plain dicts and lists (so Jinja's messages speak of 'dict object', not our types)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _unmask(value: Any, secret_values: dict[str, str], marker: str) -> Any:
    """Put secret values back where ``secret()`` left placeholders, wrapped as :class:`Sensitive`."""
    if isinstance(value, str) and marker[:16].lower() in value.lower():
        for token, secret in secret_values.items():
            value = value.replace(token, secret)
        if marker[:16].lower() in value.lower():
            raise RenderError("a secret() value was altered by the template; use it as it is")
        return Sensitive(value)
    if isinstance(value, Located):
        out = Located((k, _unmask(v, secret_values, marker)) for k, v in value.items())
        out.source, out.line, out.lines = value.source, value.line, value.lines
        return out
    if isinstance(value, dict):
        return {k: _unmask(v, secret_values, marker) for k, v in value.items()}
    if isinstance(value, list):
        return [_unmask(v, secret_values, marker) for v in value]
    return value
