"""A collection's lists of principals, each kept through the object's own sub-endpoints (add: ``POST`` of an array;
remove: ``DELETE ?ids=``), never by rewriting the object: a backup job's ``selectedItems`` and ``excludedItems``
(:mod:`vboplan.kinds.job_items`), a restore-operator role's ``operators``, ``selectedItems`` and ``excludedItems``
(:mod:`vboplan.kinds.restore_operator_roles`). Both kinds describe their lists with a :class:`Lists`; what is
written here once is what they share: parsing a template's list, taking the lists out of an object's fields, the
addresses of entries, the principals live objects already hold, resolving the declared names the directory
must answer, and the add and remove requests.

An entry is addressed by its principal's name as the directory holds it (a user's e-mail, a group's name, a site's
URL): ``backup_jobs["Mail"].selectedItems.user["ceo@contoso.com"]``, so a principal has the same address in every
object of the kind. Objects belong to an organization; where two organizations hold the same object name, the key
is ``ORGANIZATION/NAME``.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

from vboplan.api.client import VboClient
from vboplan.errors import PlanError, RenderError
from vboplan.kinds import principals, refs
from vboplan.kinds.base import Basis, Request
from vboplan.kinds.collection import Declared, object_address
from vboplan.planning.changes import Address, Change
from vboplan.project.yamlfile import Located, located_like, where_of
from vboplan.sensitive import reveal

Where = Callable[[Any], str]


def _no_fields(version: str, kind: str) -> tuple[str, ...]:
    return ()


@dataclass(frozen=True)
class Lists:
    """The principal lists of one kind.

    ``names``: the lists, as templates and addresses write them; ``held``: where a live object keeps their entries
    (``{list: [{"id", "type", "principal", ...}]}``); ``words``: the template word of each principal type;
    ``entry_id``: the detail key a removal carries the live entry's id under; ``types(version, list)``: the types a
    list holds; ``fields(version, type)``: the fields an entry may carry beside its name (a job item's workload
    flags), bound by ``bind(version, type, field, value, where)``; ``by_organization``: types that name no
    principal but the object's organization (a job's ``personalSites``), written ``{word: true}``; ``noun``: what an
    entry is called in messages."""

    kind: str
    names: tuple[str, ...]
    held: str
    words: Mapping[str, str]
    entry_id: str
    types: Callable[[str, str], tuple[str, ...]]
    fields: Callable[[str, str], tuple[str, ...]] = _no_fields
    bind: Callable[[str, str, str, Any, str], Any] | None = None
    by_organization: tuple[str, ...] = ()
    noun: str = "entry"

    @functools.cached_property
    def by_word(self) -> dict[str, str]:
        """Principal types by lower-cased template word (asked for each entry of every list: built once)."""
        return {word.lower(): kind for kind, word in self.words.items()}

    # -- templates ---------------------------------------------------------------------------------------------

    def parse(self, version: str, which: str, raw: Any, label: str, where: Where) -> list[dict[str, Any]]:
        """A template's list as ``[{"type", "name", "flags", "where"}]``; a bad entry is refused with its line. An
        entry of a ``by_organization`` type gets its name (the organization) from :meth:`take`."""
        if raw is None:
            return []
        kinds = self.types(version, which)
        words = " or ".join(self.words[k] for k in kinds)
        example = f"{{{self.words[kinds[0]]}: NAME}}"
        if not isinstance(raw, list):
            raise RenderError(f"{where(None)}: {label}.{which} must be a list such as [{example}]")
        entries: list[dict[str, Any]] = []
        seen: set[tuple[str, str]] = set()
        for index, entry in enumerate(raw):
            here = f"{entry.where() if isinstance(entry, Located) else where(None)}: {label}.{which}[{index}]"
            if not isinstance(entry, dict):
                raise RenderError(f"{here} must be a mapping such as {example}")
            named = [k for k in entry if str(k).lower() in self.by_word]
            if len(named) != 1:
                raise RenderError(f"{here} must name exactly one {words}, such as {example}")
            kind = self.by_word[str(named[0]).lower()]
            if kind not in kinds:
                raise RenderError(f"{here}: '{named[0]}' cannot be in {which} in API {version} (it holds {words})")
            name = self._name(kind, entry[named[0]], here)
            if (kind, label_of(kind, name)) in seen:
                raise RenderError(f"{here}: {self.words[kind]} '{name}' is listed twice")
            seen.add((kind, label_of(kind, name)))
            flags = self._fields(version, kind, {k: v for k, v in entry.items() if k != named[0]}, here)
            entries.append({"type": kind, "name": name, "flags": flags, "where": here})
        return entries

    def _name(self, kind: str, value: Any, here: str) -> str:
        if kind in self.by_organization:
            if reveal(value) is not True:
                raise RenderError(f"{here}: write {self.words[kind]}: true (the organization's own {self.noun}, no "
                                  "name)")
            return ""
        name = str(reveal(value) or "").strip()
        if not name:
            raise RenderError(f"{here}: {self.words[kind]} needs a name")
        return name

    def _fields(self, version: str, kind: str, given: dict[Any, Any], here: str) -> dict[str, Any]:
        allowed = {n.lower(): n for n in self.fields(version, kind)}
        flags: dict[str, Any] = {}
        for key, value in given.items():
            flag = allowed.get(str(key).lower())
            if flag is None or self.bind is None:
                from vboplan import schema

                hint = schema.nearest(str(key), sorted(allowed.values()))
                shown = ", ".join(sorted(allowed.values())) or "none"
                raise RenderError(f"{here}: '{key}' is not a flag of a {self.words[kind]} {self.noun} in API {version} "
                                  f"(flags: {shown})" + (f"; did you mean '{hint}'?" if hint else ""))
            flags[flag] = self.bind(version, kind, flag, value, f"{here}.{flag}")
        return flags

    def take(self, version: str, fields: dict[Any, Any], label: str, line: Where,
             organization: str = "") -> tuple[dict[Any, Any], dict[str, list[dict[str, Any]]]]:
        """An object's template fields without its lists (with the lines they were read with), and the lists
        parsed; entries of the organization's own are named ``organization``."""
        lists: dict[str, list[dict[str, Any]]] = {}
        kept: dict[Any, Any] = {}
        by_lower = {n.lower(): n for n in self.names}
        for name, value in fields.items():
            which = by_lower.get(str(name).lower())
            if which is None:
                kept[name] = value
                continue
            lists[which] = self.parse(version, which, value, label, lambda _n, _k=name: line(_k))
            for entry in lists[which]:
                if entry["type"] in self.by_organization:
                    entry["name"] = organization
        return located_like(kept, fields), lists

    def scope_names(self, desired: Declared) -> dict[str, dict[str, dict[str, str]]]:
        """The principal names ``desired`` declares, per organization and type, with where each is declared (for
        the error naming an unknown one)."""
        names: dict[str, dict[str, dict[str, str]]] = {}
        for fields in desired.values():
            org = names.setdefault(org_name(fields.get("organization")), {})
            for which in self.names:
                for entry in fields.get(which, []):
                    if entry["type"] not in self.by_organization:  # no directory name to look up
                        org.setdefault(entry["type"], {}).setdefault(entry["name"], entry["where"])
        return names

    def scope_problem(self, planned: Any, templates: Any, keys: str) -> str:
        """What a plan file's scope (``planned``: its author's text) declares that the templates' scope, rendered
        again, does not, or leaves out what they declare: an object of its ``keys`` list (``jobs``, ``roles``, what
        ``--target`` selects from), or a principal name of ``names`` (what apply resolves in the directory and
        derives the entries' rows from). Empty when they agree (in any case, with whatever lines they are
        declared at)."""
        said, meant = _scope_objects(planned, keys), _scope_objects(templates, keys)
        for found, other, text in ((said, meant, "the plan's scope declares {}, which no template declares"),
                                   (meant, said, "the templates declare {}, which the plan's scope leaves out")):
            extra = sorted(set(found) - set(other))
            if extra:
                return text.format(object_address(self.kind, found[extra[0]]))
        said, meant = self._scope_names(planned), self._scope_names(templates)
        for found, other, text in ((said, meant, "the plan's scope names {} {} of {}, which no template declares"),
                                   (meant, said, "the templates name {} {} of {}, which the plan's scope leaves out")):
            extra = sorted(set(found) - set(other))
            if extra:
                org, kind, name = found[extra[0]]
                return text.format(self.words.get(kind, kind), f"'{name}'", org)
        return ""

    def _scope_names(self, scope: Any) -> dict[tuple[str, str, str], tuple[str, str, str]]:
        names = scope.get("names") if isinstance(scope, dict) else None
        found: dict[tuple[str, str, str], tuple[str, str, str]] = {}
        for org, by_type in (names.items() if isinstance(names, dict) else []):
            for kind, declared in (by_type.items() if isinstance(by_type, dict) else []):
                for name in (declared if isinstance(declared, dict | list) else []):
                    found[(str(org).lower(), str(kind), label_of(str(kind), str(name)))] = (str(org), str(kind),
                                                                                             str(name))
        return found

    # -- addresses ---------------------------------------------------------------------------------------------

    def address(self, owner: Address, which: str, kind: str, key: str) -> Address:
        return owner.field(which).field(self.words[kind]).entry(key)

    def parts_of(self, address: Address) -> tuple[str, str, str, str] | None:
        """(object key, list, principal type, principal name) of an entry's address, else None."""
        parts = address.parts
        if len(parts) == 4 and parts[0][0] == "[" and parts[1][0] == "." and parts[1][1] in self.names \
                and parts[2][0] == "." and parts[2][1] in self.words.values() and parts[3][0] == "[":
            return parts[0][1], parts[1][1], self.by_word[parts[2][1].lower()], parts[3][1]
        return None

    def listed(self, address: Address) -> str | None:
        """The list a row at ``address`` (an object's, or one of its fields) would rewrite as a field, if any."""
        return next((n for n in self.names if len(address.parts) == 2 and address.parts[1][1].lower() == n.lower()),
                    None)

    # -- live --------------------------------------------------------------------------------------------------

    def entries_by_key(self, obj: dict[str, Any] | None, which: str) -> dict[tuple[str, str], dict[str, Any]]:
        """A live object's entries of one list by (type, lower-cased principal key)."""
        if obj is None:
            return {}
        return _memo(f"{self.kind}.entries", obj, which, lambda: {
            (e["type"], principals.key(e["principal"]).lower()): e for e in obj.get(self.held, {}).get(which, [])})

    def held_principals(self, objects: dict[str, Any], org: str) -> dict[str, dict[str, dict[str, Any]]]:
        """The principals the entries of ``org``'s live objects carry, by type and every lower-cased name they go
        by."""
        if not objects:  # no live object (a first plan): nothing to build or keep
            return {}

        def build() -> dict[str, dict[str, dict[str, Any]]]:
            held: dict[str, dict[str, dict[str, Any]]] = {}
            for obj in objects.values():
                if org_name(obj["values"].get("organization")).lower() != org.lower():
                    continue
                for which in self.names:
                    for entry in obj.get(self.held, {}).get(which, []):
                        for name in principals.labels(entry["type"], entry["principal"]):
                            held.setdefault(entry["type"], {})[name] = entry["principal"]
            return held

        return _memo(f"{self.kind}.held", objects, org.lower(), build)

    def known(self, live: dict[str, Any], org: str, kind: str, name: str) -> dict[str, Any] | None:
        """The principal ``name`` names in ``org``, from the recorded live values: a live object's entry, or the
        directory's answer (the organization itself, for its own entries)."""
        org = org_name(org)
        if kind in self.by_organization:
            orgs = (live.get("refs") or {}).get("organizations", {})
            found = next((n for n in orgs if n.lower() == org.lower()), None)
            if found is None or name.lower() != org.lower():
                return None
            return {"id": str(orgs[found]), "name": found, "displayName": ""}
        label = label_of(kind, name)
        held = self.held_principals(live.get("objects") or {}, org).get(kind, {}).get(label)
        if held is not None:
            return held
        resolved = ((live.get("principals") or {}).get(org.lower()) or {}).get(kind) or {}
        if label in resolved:
            return dict(resolved[label])
        by_label = _memo(f"{self.kind}.resolved", resolved, kind, lambda: {
            n: p for p in resolved.values() for n in principals.labels(kind, p)})
        return dict(by_label[label]) if label in by_label else None

    def resolve(self, client: VboClient, scope: Any, objects: dict[str, Any]) -> dict[str, Any]:
        """The principals of the declared names (``scope["names"]``) no live object's entries carry, by
        organization (lower case), type and lower-cased declared name."""
        wanted = (scope or {}).get("names", {}) if isinstance(scope, dict) else {}
        found: dict[str, dict[str, dict[str, Any]]] = {}
        for org_text, by_type in sorted(wanted.items()):
            org = refs.resolver(client).organization(org_text, self.kind)
            held = self.held_principals(objects, str(org["name"]))
            mine = found.setdefault(str(org["name"]).lower(), {})
            for kind, names in sorted(by_type.items()):
                missing = {n: names[n] for n in names if label_of(kind, n) not in held.get(kind, {})}
                resolved = principals.resolve(client, org, kind, list(missing), where=missing)
                if resolved:
                    mine[kind] = {label_of(kind, n): p for n, p in resolved.items()}
        return found

    # -- requests ----------------------------------------------------------------------------------------------

    def adds(self, path: Callable[[str], str], changes: list[Change],
             body: Callable[[Change], dict[str, Any]]) -> list[Request]:
        """One POST per list of the entries ``changes`` create (an array of ``body(change)``)."""
        requests = []
        for which in self.names:
            bodies = [body(c) for c in changes if c.action == "create" and c.address.parts[1][1] == which]
            if bodies:
                requests.append(Request("POST", path(which), bodies, (204,)))
        return requests

    def removes(self, path: Callable[[str], str], changes: list[Change]) -> list[Request]:
        """One ``DELETE ?ids=`` per list of the entries ``changes`` remove."""
        requests = []
        for which in self.names:
            ids = [str(c.detail[self.entry_id]) for c in changes
                   if c.action == "delete" and c.address.parts[1][1] == which]
            if ids:
                requests.append(Request("DELETE", f"{path(which)}?ids={quote(','.join(ids), safe=',')}", None, (204,)))
        return requests


def _scope_objects(scope: Any, keys: str) -> dict[str, str]:
    listed = scope.get(keys) if isinstance(scope, dict) else None
    return {str(k).lower(): str(k) for k in (listed if isinstance(listed, list) else [])}


def label_of(kind: str, name: str) -> str:
    """A declared name as :func:`vboplan.kinds.principals.labels` lower-cases a principal's names."""
    return name.strip().rstrip("/").lower() if kind == "Site" else name.strip().lower()


def org_name(value: Any) -> str:
    """An organization reference as the plan holds it (``organizations["NAME"]`` or the bare name): the name."""
    text = str(value or "")
    try:
        return Address.parse(text).parts[0][1] if text.startswith("organizations[") else text
    except (ValueError, PlanError):
        return text


def bare_name(key: str, org: str) -> str:
    """The object's name on the server: its key without the ``ORGANIZATION/`` that keys a name two organizations'
    objects share."""
    return key[len(org) + 1:] if org and key.lower().startswith(org.lower() + "/") else key


def find(mapping: dict[str, Any], key: str) -> Any:
    """``mapping``'s value at ``key``, compared case-insensitively (None where a plan file's text holds no mapping
    there)."""
    if not isinstance(mapping, dict):
        return None
    if key in mapping:
        return mapping[key]
    return next((v for k, v in mapping.items() if k.lower() == key.lower()), None)


def as_live_keys(desired: Declared, objects: dict[str, Any]) -> Declared:
    """``desired`` with each object keyed as the live values key the object of the same organization and name
    (``Mail`` and ``contoso.onmicrosoft.com/Mail`` name the same job wherever only one organization has a Mail)."""
    live = {}
    for key, obj in objects.items():
        org = org_name(obj["values"].get("organization"))
        live[(org.lower(), bare_name(key, org).lower())] = key
    out = Declared()
    for key, fields in desired.items():
        org = org_name(fields.get("organization"))
        found = live.get((org.lower(), bare_name(key, org).lower()), key)
        out[found] = fields
        out.where[found] = desired.where.get(key, "")
    return out


def as_live_key(change: Change, live: dict[str, Any]) -> Change:
    """``change`` at the key the server's answer keys its object by: an object created as ``ORGANIZATION/NAME``
    (the template's key) is keyed by its name alone where no other organization's object has it."""
    objects = live.get("objects") or {}
    key = change.address.parts[0][1]
    if "/" not in key or any(k.lower() == key.lower() for k in objects):
        return change
    org, name = key.split("/", 1)
    found = next((k for k, obj in objects.items() if k.lower() == name.lower()
                  and str(obj["values"].get("organization") or "").lower() == org.lower()), None)
    if found is None:
        return change
    return replace(change, address=Address(change.address.kind, (("[", found), *change.address.parts[1:])))


def organization_of(kind: str, live: dict[str, Any], obj: dict[str, Any] | None, basis: Basis, key: str) -> str:
    """The organization (name) of object ``key``: the live object's, else the one the plan's scope declares it in
    (an object the plan creates; its create row names the same)."""
    if obj is not None:
        return org_name(obj["values"].get("organization"))
    declared = (basis.scope or {}).get("organizations", {}) if isinstance(basis.scope, dict) else {}
    found = find(declared, key)
    if found is None:
        raise PlanError(f"{object_address(kind, key)}: an entry of an object the plan neither creates nor holds")
    return str(found)


def moving(basis: Basis, key: str, live_org: str) -> bool:
    """Whether the plan's scope declares live object ``key`` (a job, a role) in another organization than
    ``live_org``, the server's: the plan replaces it (its replace row says so), and its entries are the new one's."""
    declared = (basis.scope or {}).get("organizations", {}) if isinstance(basis.scope, dict) else {}
    found = find(declared, key)
    return found is not None and str(found).lower() != live_org.lower()


_MEMO_LOCK = threading.Lock()
_MEMO: dict[tuple[str, int, str], tuple[Any, Any]] = {}


def _memo(name: str, objects: Any, arg: str, build: Callable[[], Any]) -> Any:
    """``build()`` once per live objects (by identity) and ``arg``: a plan of an object of thousands of entries asks
    the same question of the same live values for every entry."""
    token = (name, id(objects), arg)
    with _MEMO_LOCK:
        found = _MEMO.get(token)
        if found is not None and found[0] is objects:
            return found[1]
    value = build()
    with _MEMO_LOCK:
        if len(_MEMO) > 16:
            _MEMO.clear()
        _MEMO[token] = (objects, value)
    return value


__all__ = ["Lists", "Where", "as_live_key", "as_live_keys", "bare_name", "find", "label_of", "moving", "org_name",
           "organization_of", "where_of"]


def declared_objects(kind: str, raw: Any, where: Callable[[Any], str],
                     plain: dict[Any, Any]) -> Iterator[tuple[Any, str, dict[Any, Any], str, Callable[[Any], str]]]:
    """The objects a template declares for ``kind`` (its mapping ``raw``) whose fields are a mapping, each as
    ``(key, text, fields, label, line)``: the key as written and stripped, its address, and where each field is
    declared (``line(None)``: the object). The others go to ``plain`` as they are, for the generic collection's
    normalise to refuse."""
    for key, fields in raw.items() if isinstance(raw, dict) else []:
        if not isinstance(fields, dict):
            plain[key] = fields
            continue
        text = str(reveal(key)).strip()
        yield key, text, fields, str(object_address(kind, text)), where_of(fields, lambda _k, _key=key: where(_key))


class ListedScope:
    """The scope of a collection whose objects carry principal lists (backup jobs, restore operator roles): the
    objects declared under ``SCOPE`` (``jobs``, ``roles``), the principal names they declare per organization and
    type (with where each is declared, for the error naming an unknown one), and each object's organization. Mixed
    in before :class:`~vboplan.kinds.collection.CollectionKind`."""

    LISTS: Lists
    SCOPE: str

    def scope(self, desired: Declared) -> dict[str, Any]:
        return {self.SCOPE: sorted(desired, key=str.lower), "names": self.LISTS.scope_names(desired),
                "organizations": {key: org_name(fields.get("organization")) for key, fields in desired.items()}}

    def scope_problem(self, planned: Any, templates: Any) -> str:
        """What a plan file's scope of objects and principal names says that the templates' does not (see
        :meth:`Lists.scope_problem`)."""
        return self.LISTS.scope_problem(planned, templates, self.SCOPE)

    def addresses(self, scope: Any) -> set[Address]:
        keys = scope.get(self.SCOPE, []) if isinstance(scope, dict) else list(scope or [])
        return super().addresses(keys)  # type: ignore[misc]

    def with_lists(self, client: VboClient, exported: Any, lists: tuple[str, ...], drop: tuple[str, ...] = ()) -> Any:
        """``exported`` (the generic collection's :class:`~vboplan.kinds.base.Export`) with each object's
        principal ``lists`` as templates write them (by name), and the fields ``drop`` left out."""
        live = self.read(client, [])["objects"]  # type: ignore[attr-defined]
        for key, values in (exported.values or {}).items():
            for name in drop:
                values.pop(name, None)
            for which in lists:
                held = live.get(key, {}).get("values", {}).get(which)
                if held:
                    values[which] = held
                else:
                    values.pop(which, None)
        return exported
