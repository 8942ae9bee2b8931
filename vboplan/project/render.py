"""Templates to desired resources: sandboxed Jinja (StrictUndefined), ``secret()``, YAML with line numbers, and
each resource checked against the environment's API version."""

from __future__ import annotations

import json
import logging
import os
import re
import secrets as _random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from vboplan.errors import ProjectError, RenderError
from vboplan.kinds.registry import KINDS
from vboplan.project.config import Environment, Project
from vboplan.project.datafiles import resolve_data_files
from vboplan.project.sandbox import BoundedSandbox, render_bounded
from vboplan.project.yamlfile import Located, load_yaml, parse_yaml, plain
from vboplan.schema import nearest
from vboplan.sensitive import Sensitive, remember
from vboplan.shapes import NotRegularFile, check_regular

log = logging.getLogger("vboplan")


class _CompiledTemplates(jinja2.BytecodeCache):
    """Templates compiled once per process, whatever the number of environments rendered from them (a fleet of
    hundreds): keyed by Jinja on the template's name and a checksum of its source, so an edited file compiles anew.
    Every sandbox is configured alike, so the code compiled for one serves them all."""

    def __init__(self) -> None:
        self._code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        code = self._code.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        self._code[bucket.key] = bucket.bytecode_to_string()


_compiled = _CompiledTemplates()


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


class _Secret:
    """What ``secret()`` returns in a template: an opaque stand-in. It may be written out or joined into a longer
    string (``~``, adjacent text), which turns it into a placeholder that is replaced by the real value after
    rendering. Every other use (a filter, method, comparison, test, truth value, key, loop, arithmetic,
    formatting) raises, so a template can neither transform a secret nor branch on it."""

    __slots__ = ("token",)

    def __init__(self, token: str) -> None:
        self.token = token

    def __str__(self) -> str:
        return self.token

    __repr__ = __format__ = __bool__ = __len__ = __iter__ = __contains__ = __getitem__ = __hash__ = _refuse  # type: ignore
    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = _refuse  # type: ignore[assignment]
    __add__ = __radd__ = __mul__ = __rmul__ = __mod__ = __rmod__ = __sub__ = __rsub__ = _refuse
    __truediv__ = __floordiv__ = __pow__ = __neg__ = __pos__ = __abs__ = __int__ = __float__ = __index__ = _refuse
    __call__ = __reversed__ = __round__ = _refuse


class _Sandbox(BoundedSandbox):
    """The template sandbox, also guarding every filter, test, call, attribute, item and operator against a
    secret (or a string holding a secret's placeholder)."""

    intercepted_binops = frozenset(["+", "-", "*", "/", "//", "%", "**"])
    intercepted_unops = frozenset(["+", "-"])

    def __init__(self, marker: str, **options: Any) -> None:
        super().__init__(**options)
        self.marker = marker
        self.filters = {name: self._guarded(f) for name, f in self.filters.items()}
        self.tests = {name: self._guarded(f) for name, f in self.tests.items()}

    def tainted(self, value: Any, depth: int = 0) -> bool:
        if isinstance(value, _Secret):
            return True
        if isinstance(value, str):
            return self.marker in value
        if depth > 20:
            return False
        if isinstance(value, (list, tuple, set, frozenset)):
            if type(value) is list and value:
                try:
                    joined = "\n".join(value)  # a long list of names: one look at them all (str only, or TypeError)
                except TypeError:
                    pass
                else:
                    return self.marker in joined
            return any(self.tainted(v, depth + 1) for v in value)
        if isinstance(value, dict):
            return any(self.tainted(k, depth + 1) or self.tainted(v, depth + 1) for k, v in value.items())
        return False

    def _guarded(self, func: Any) -> Any:
        # Jinja reads only a filter's jinja_pass_arg (pass_context and the like); copying every attribute with
        # functools.wraps for ~90 filters and tests was a millisecond of every environment's rendering.
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if any(self.tainted(a) for a in args) or any(self.tainted(v) for v in kwargs.values()):
                raise _SecretTransformed()
            return func(*args, **kwargs)

        passes = getattr(func, "jinja_pass_arg", None)
        if passes is not None:
            guarded.jinja_pass_arg = passes  # type: ignore[attr-defined]
        return guarded

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if self.tainted(left) or self.tainted(right):
            raise _SecretTransformed()
        return super().call_binop(context, operator, left, right)

    def call_unop(self, context: Any, operator: str, arg: Any) -> Any:
        if self.tainted(arg):
            raise _SecretTransformed()
        return super().call_unop(context, operator, arg)

    def getattr(self, obj: Any, attribute: str) -> Any:
        if self.tainted(obj):
            raise _SecretTransformed()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if self.tainted(obj) or self.tainted(argument):
            raise _SecretTransformed()
        return super().getitem(obj, argument)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        if __self.tainted(__obj) or any(__self.tainted(a) for a in args) \
                or any(__self.tainted(v) for v in kwargs.values()):
            raise _SecretTransformed()
        return super().call(__context, __obj, *args, **kwargs)


def yaml_safe_json(value: Any, **options: Any) -> str:
    """``tojson`` for templates that render YAML: JSON is YAML, except that YAML (libyaml) refuses the surrogate
    pairs JSON spells characters beyond U+FFFF with; those become YAML's own ``\\UXXXXXXXX`` escapes."""
    return _SURROGATES.sub(_yaml_escape, json.dumps(value, **options))


# An escaped backslash (kept as it is, so the text after it is not taken for an escape) or a \uD8xx\uDCxx pair.
_SURROGATES = re.compile(r"\\\\|\\u(d[89ab][0-9a-f]{2})\\u(d[c-f][0-9a-f]{2})", re.IGNORECASE)


def _yaml_escape(match: re.Match[str]) -> str:
    if match[1] is None:
        return match[0]
    return "\\U%08X" % (0x10000 + ((int(match[1], 16) - 0xD800) << 10) + int(match[2], 16) - 0xDC00)


def load_variables(project: Project, env: Environment) -> dict[str, Any]:
    """The environment's variable files merged in order (later files win, mappings merge deeply), then the
    ``--var`` values set over them."""
    merged: dict[str, Any] = {}
    for path in env.var_files:
        if not path.exists() and not path.is_symlink():
            raise ProjectError(f"{project.display(path)}: variable file of environment '{env.name}' not found "
                               f"({env.var_files_where or 'vboplan.yaml'} lists it in var_files; "
                               f"'vboplan import --env {env.name}' writes it from the live server)")
        data = load_yaml(path, project.display(path))
        if data is None:
            continue
        if not isinstance(data, dict):
            raise ProjectError(f"{project.display(path)}:1: a variable file must be a mapping of names to values")
        data = resolve_data_files(data, project.root, project.display)
        merged = _merge(merged, data)
    if env.variables:
        from vboplan.project.overrides import apply_vars

        merged = apply_vars(merged, dict(env.variables))
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
    # Plain dicts and lists, so Jinja's messages speak of 'dict object', not vboplan's types.
    variables = plain(load_variables(project, env))
    variables.setdefault("environment", {"name": env.name, "api_version": env.api_version})
    marker = f"__vboplan_secret_{_random.token_hex(8)}_"
    jinja = _Sandbox(marker, loader=_RegularFileLoader(str(project.root)), undefined=jinja2.StrictUndefined,
                     keep_trailing_newline=True, autoescape=False, bytecode_cache=_compiled)
    jinja.policies["json.dumps_function"] = yaml_safe_json
    secret_values: dict[str, str] = {}

    def secret(name: str) -> _Secret:
        value = os.environ.get(str(name))
        if value is None:
            if not offline:
                raise _SecretMissing(str(name))
            log.info("secret('%s') is not set; validating with a stand-in value", name)
            value = "unset-secret"
        else:
            remember(value, f"the value of secret('{name}')")
        token = f"{marker}{len(secret_values)}__"
        secret_values[token] = value
        return _Secret(token)

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
            raw = _unmask(raw, secret_values, marker, where)
            located = raw if isinstance(raw, Located) else None

            def where_of(k: Any, _located: Located | None = located, _where: str = where, _name: str = name) -> str:
                if _located is None or k is None:
                    return _where
                return f"{_name}:{_located.line_of(k)}"

            rendered.resources[kind.name] = kind.normalise(env.api_version, raw, where_of)
            rendered.sources[kind.name] = where
    return rendered



class _RegularFileLoader(jinja2.FileSystemLoader):
    """Jinja's file loader, except that a template path naming a FIFO, a device or a socket is refused by name
    (Jinja itself would call it not found; opening it could wait for ever)."""

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str | None, Any]:
        for folder in self.searchpath:
            candidate = os.path.join(folder, *jinja2.loaders.split_template_path(template))
            try:
                check_regular(candidate)
            except NotRegularFile as exc:
                raise RenderError(f"{template}: {exc.strerror}") from None
            except OSError:
                continue  # missing (or a folder): Jinja says so in its own words
        return super().get_source(environment, template)

def _render_one(jinja: ImmutableSandboxedEnvironment, name: str, path: Path, variables: dict[str, Any],
                env: Environment) -> str:
    try:
        template = jinja.get_template(Path(name).as_posix())
        return render_bounded(template.generate(variables))
    except jinja2.TemplateSyntaxError as exc:
        raise RenderError(f"{name}:{exc.lineno}: template syntax error: {exc.message}") from None
    except _SecretTransformed:
        raise RenderError(f"{name}:{_template_line(path)}: {_ONLY_AS_IS}") from None
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
    except RecursionError:
        raise RenderError(f"{name}: the template nests too deeply or recurses without end (a macro calling itself?)"
                          f" (environment '{env.name}')") from None
    except MemoryError:
        raise RenderError(f"{name}:{_template_line(path)}: rendering needs more memory than there is "
                          f"(environment '{env.name}')") from None


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



_ONLY_AS_IS = ("a secret() value may only be written out as it is or joined into a longer string (~ or adjacent "
               "text); a filter, method, slice, test, comparison, condition, loop, key or arithmetic on it is not "
               "allowed")


def _altered(text: str, marker: str) -> bool:
    """Whether ``text`` holds a remnant of a secret's placeholder (its random part or its name)."""
    lowered = text.lower()
    return "vboplan_secret" in lowered or marker.rsplit("_", 2)[-2] in lowered


def _unmask(value: Any, secret_values: dict[str, str], marker: str, where: str, in_list: bool = False) -> Any:
    """Put secret values back where ``secret()`` left placeholders, wrapped as :class:`Sensitive`. A secret may be
    the value of a field only: not a key, not an item of a list (names there are shown in every plan)."""
    if isinstance(value, str) and marker in value:
        if in_list:
            raise RenderError(f"{where}: a secret() value cannot be an item of a list (such names are shown in "
                              "plans); use it as the value of a settings field")
        for token, secret in secret_values.items():
            value = value.replace(token, secret)
        if _altered(value, marker):
            raise RenderError(f"{where}: {_ONLY_AS_IS}")
        return Sensitive(value)
    if isinstance(value, str) and _altered(value, marker):
        # What is left of a placeholder the template cut (a slice of a joined string cannot be intercepted).
        raise RenderError(f"{where}: {_ONLY_AS_IS}")
    if isinstance(value, dict):
        located = value if isinstance(value, Located) else None
        for key in value:
            if isinstance(key, str) and (marker in key or _altered(key, marker)):
                at = f"{located.source}:{located.line_of(key)}" if located is not None else where
                raise RenderError(f"{at}: a secret() value cannot be a key (keys are shown in plans)")
        items = [(k, _unmask(v, secret_values, marker,
                             f"{located.source}:{located.line_of(k)}" if located is not None else where, in_list))
                 for k, v in value.items()]
        if located is None:
            return dict(items)
        out = Located(items)
        out.source, out.line, out.lines = located.source, located.line, located.lines
        return out
    if isinstance(value, list):
        if value and set(map(type, value)) == {str}:
            # A long list of names: one look at them joined (a placeholder or a piece of one shows there too).
            joined = "\n".join(value)
            if marker not in joined and not _altered(joined, marker):
                return list(value)
        return [_unmask(v, secret_values, marker, where, True) for v in value]
    return value
