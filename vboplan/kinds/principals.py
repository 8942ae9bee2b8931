"""An organization's directory: users, groups, sites and teams, from the names templates give them to the ids the API
wants, and back.

Templates name principals (a user by e-mail or display name, a group by group name or display name, a site by URL,
a team by display name); audit items, backup jobs and restore-operator roles send the principal's object with its
opaque id (from v7 on qualified by the organization). The API: ``GET /Organizations/{id}/Users|Groups|Sites|Teams``,
pages with the filters ``userName``, ``groupName``, ``displayName`` (wildcards ``*`` ``?``) and, from v7, the sites'
``filter`` keyword; ``GET .../Users/{userId}`` and the like by id (Veeam Backup for Microsoft 365 REST API reference,
helpcenter.veeam.com/docs/vbo365/rest/, "Organization Users", "Organization Groups", "Organization Sites",
"Organization Teams").

The API of this module, for any kind that names principals:

- :func:`resolve` ``(client, org, kind, names, where="")``: each declared name to one principal (a compact dict:
  ``id``, its names and the fields item bodies carry), or one :class:`~vboplan.errors.ProjectError` naming
  ``where`` (the template file), the organization and the name, with the similar principals the directory holds
  (did you mean) or the several it matches.
- :func:`by_ids` ``(client, org_id, kind, ids)``: principals by id (one a directory lacks is left out).
- :func:`key` and :func:`describe`: the name an address uses for a principal, and how messages show it.
- ``kind`` is the API's item type: ``User``, ``Group``, ``Site`` or ``Team`` (:data:`KINDS`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache
from operator import attrgetter, itemgetter
from typing import Any
from urllib.parse import quote

from vboplan.api.client import VboClient
from vboplan.errors import ApiError, ProjectError
from vboplan.threads import ThreadPoolExecutor

#: The API's item types, by the template key that names one (``user: ceo@contoso.com``).
KINDS = {"user": "User", "group": "Group", "site": "Site", "team": "Team"}
SINGULAR = {kind: word for word, kind in KINDS.items()}
COLLECTION = {"User": "Users", "Group": "Groups", "Site": "Sites", "Team": "Teams"}

# Above this many unresolved names in one organization, reading the whole directory (pages of 10,000, fetched
# together) is quicker than one filtered lookup per name (8 at a time). Measured by `benchmarks/names.py --crossover`
# on a 100,000-user organization at 20 ms a request against the emulator in its own process, on an idle 2-core
# machine: crossovers at 264 and 301 names (a cold walk 0.86-0.99 s, 400 lookups 1.30 s). It was 613-722 names
# when a cold walk cost about 2 s, before the emulator wrote its pages from a template and the walk searched a page
# at once.
PAGE_THRESHOLD = 300
LOOKUP_WORKERS = 8

# The fields of a directory entry a compact principal keeps beside its id: its names, and what item bodies carry
# (RESTRbacSite wants url, title, isCloud, isPersonal; RESTTeam and RESTRbacTeam displayName, mail, description).
_KEEP = {"User": ("type", "locationType"), "Group": ("type", "locationType"),
         "Site": ("url", "title", "parentUrl", "isCloud", "isPersonal"), "Team": ("mail", "description")}


def key(principal: dict[str, Any]) -> str:
    """The name that identifies a principal in addresses: a site's URL; else its user or group name, else its
    display name."""
    if principal.get("url"):
        return str(principal["url"])
    return str(principal.get("name") or principal.get("displayName") or principal.get("id"))


def describe(principal: dict[str, Any]) -> str:
    """A principal as messages show it: ``Display Name <name>``, or its one name."""
    if principal.get("url"):
        return str(principal["url"])
    name, display = principal.get("name"), principal.get("displayName")
    if name and display and name.lower() != display.lower():
        return f"{display} <{name}>"
    return str(name or display or principal.get("id"))


def compact(kind: str, raw: dict[str, Any]) -> dict[str, Any]:
    """The directory entry ``raw`` as vboplan keeps it: ``id``, ``name``, ``displayName`` and the fields of
    :data:`_KEEP` that the entry has."""
    keep = {"id": str(raw.get("id")), "name": raw.get("name") or "", "displayName": raw.get("displayName") or ""}
    if kind == "Site" and not keep["displayName"]:
        keep["displayName"] = raw.get("title") or ""
    for extra in _KEEP[kind]:
        if raw.get(extra) is not None:
            keep[extra] = raw[extra]
    return keep


def labels(kind: str, principal: dict[str, Any]) -> set[str]:
    """The lower-cased names a template may name ``principal`` by (a site: its URL, with or without a final
    ``/``)."""
    if kind == "Site":
        return {_site_url(str(principal.get("url") or ""))} - {""}
    return {str(principal.get("name") or "").lower(), str(principal.get("displayName") or "").lower()} - {""}


def _site_url(url: str) -> str:
    return url.strip().rstrip("/").lower()


def _label(kind: str, name: str) -> str:
    return _site_url(name) if kind == "Site" else name.lower()


def path(org_id: str, kind: str) -> str:
    """The directory path of ``kind`` in the organization."""
    return f"Organizations/{org_id}/{COLLECTION[kind]}"


# -- names -> principals ---------------------------------------------------------------------------------------------

Where = str | Mapping[str, str]  # the file and line an error names: one for all names, or per name


def resolve(client: VboClient, org: dict[str, Any], kind: str, names: list[str],
            where: Where = "") -> dict[str, dict[str, Any]]:
    """Each of ``names`` (distinct) to the one principal of ``kind`` it names in ``org`` (the organization as the
    server lists it): filtered lookups for a few names, one directory walk for many (and for sites on versions
    without the ``filter`` keyword). ``where`` prefixes the error (the template file and line; a mapping: per
    name)."""
    if not names:
        return {}
    walk = len(names) > PAGE_THRESHOLD or (kind == "Site" and client.version in ("v5", "v6"))
    return walk_directory(client, org, kind, names, where) if walk else look_up_each(client, org, kind, names, where)


def walk_directory(client: VboClient, org: dict[str, Any], kind: str, names: list[str],
                   where: Where = "") -> dict[str, dict[str, Any]]:
    """Resolve ``names`` by reading the whole directory of ``kind``, pages fetched concurrently, decoded by
    :func:`_page_decoder` (the few fields a principal keeps, at C speed) and searched a page at a time."""
    # Keep only the principals a declared name points at: memory stays at a few pages, not the directory.
    wanted = {_label(kind, name) for name in names}
    index: dict[str, list[dict[str, Any]]] = {}
    for results in client.each_page(path(str(org["id"]), kind), decode=_page_decoder()):
        for entry, label in _matching(kind, results, wanted):
            index.setdefault(label, []).append(compact(kind, _entry_fields(entry)))
    found: dict[str, dict[str, Any]] = {}
    for name in names:
        matches = index.get(_label(kind, name), [])
        similar = _similar(client, org, kind, name) if not matches else []
        found[name] = choose(org, kind, name, matches, similar, where)
    return found


def _matching(kind: str, results: list[Any], wanted: set[str]) -> list[tuple[Any, str]]:
    """Each entry of a decoded page with each of its labels (:func:`labels`) that ``wanted`` holds. A page of
    10,000 users is searched column by column in loops that run in C (names lower-cased joined, then looked up),
    not entry by entry: 100,000 entries a cold walk, of which a few thousand are wanted."""
    if kind == "Site":
        return [(entry, label) for entry in results if entry.url
                for label in ({_site_url(entry.url)} & wanted)]
    hits: dict[tuple[int, str], Any] = {}
    for field in ("name", "displayName"):
        lowered = _lowered(list(map(attrgetter(field), results)))
        for position in [at for at, label in enumerate(lowered) if label in wanted]:
            hits[position, lowered[position]] = results[position]
    return [(entry, label) for (_, label), entry in sorted(hits.items(), key=itemgetter(0))]


def _lowered(texts: list[str | None]) -> list[str]:
    """``texts`` lower-cased (None as ""), all at once: joined by a line break when none holds one (lower-casing
    depends on a character's neighbours only within a word, and a line break ends one)."""
    plain = [text or "" for text in texts] if None in texts else texts
    joined = "\n".join(plain)  # type: ignore[arg-type]
    if joined.count("\n") == len(plain) - 1:
        return joined.lower().split("\n") if plain else []
    return [text.lower() for text in plain]  # type: ignore[union-attr]


@cache
def _page_decoder() -> Callable[[Any], dict[str, Any]]:
    """A page of directory entries from its JSON bytes (or a buffer holding them), keeping of each entry only what
    :func:`compact` reads.

    A directory page of 10,000 users is 8 MB of JSON, mostly links; decoding it all (``json.loads``) took 1.65 s of
    CPU for the ten pages of a 100,000-user organization where this typed decoder (msgspec, jcrist.github.io/msgspec)
    takes 0.18 s (benchmarks/names.py's machine). A field of the wrong type is no page (ValueError)."""
    import msgspec

    text, flag = str | None, bool | None
    # Entries hold only strings, numbers and flags (no cycles): the collector need not track the 100,000 of a walk.
    entry = msgspec.defstruct("Entry", [("id", str | int), *((name, text, None) for name in _TEXT_FIELDS),
                                        ("isCloud", flag, None), ("isPersonal", flag, None)], gc=False)
    page_type = msgspec.defstruct("Page", [("results", list[entry]), ("setId", text, None),  # type: ignore[valid-type]
                                           ("totalCount", int | None, None),
                                           ("links", dict[str, Any] | None, msgspec.field(default=None, name="_links"))])
    decoder = msgspec.json.Decoder(page_type)

    def decode(data: Any) -> dict[str, Any]:
        page = decoder.decode(data)  # msgspec's errors are ValueErrors
        return {"results": page.results, "setId": page.setId, "totalCount": page.totalCount,
                "_links": page.links or {}}

    return decode


_TEXT_FIELDS = ("name", "displayName", "type", "locationType", "url", "title", "parentUrl", "mail", "description")


def _entry_fields(entry: Any) -> dict[str, Any]:
    """A decoded entry (:func:`_page_decoder`) as the mapping :func:`compact` takes."""
    return {field: getattr(entry, field) for field in entry.__struct_fields__}


def look_up_each(client: VboClient, org: dict[str, Any], kind: str, names: list[str],
                 where: Where = "") -> dict[str, dict[str, Any]]:
    """Resolve ``names`` with one filtered lookup each, several at once."""
    def one(name: str) -> dict[str, Any]:
        return _lookup_one(client, org, kind, name, where)

    with ThreadPoolExecutor(max_workers=min(len(names), LOOKUP_WORKERS)) as pool:
        return dict(zip(names, pool.map(one, names), strict=True))


def _filters(kind: str, name: str) -> list[dict[str, str]]:
    """The queries that find ``name``, exact ones first (userName for an e-mail, groupName for a group), display
    name after; a site by the keyword filter (its URL)."""
    if kind == "User":
        return [{"userName": name}, {"displayName": name}] if "@" in name else [{"displayName": name}]
    if kind == "Group":
        return [{"displayName": name}, {"groupName": name}]
    if kind == "Site":
        return [{"filter": name.strip().rstrip("/")}]
    return [{"displayName": name}]


def _lookup_one(client: VboClient, org: dict[str, Any], kind: str, name: str, where: Where) -> dict[str, Any]:
    here = path(str(org["id"]), kind)
    label = _label(kind, name)
    for query in _filters(kind, name):
        results = [compact(kind, raw) for raw in client.first_page(here, query)]
        matches = [p for p in results if label in labels(kind, p)]
        if matches:
            return choose(org, kind, name, matches, [], where)
    return choose(org, kind, name, [], _similar(client, org, kind, name), where)


def _similar(client: VboClient, org: dict[str, Any], kind: str, name: str) -> list[dict[str, Any]]:
    """A few principals whose display name (a site: title or URL) starts like ``name``: the did-you-mean of an
    unknown name."""
    if kind == "Site":
        if client.version in ("v5", "v6"):
            return []
        tail = name.strip().rstrip("/").rsplit("/", 1)[-1]
        query = {"filter": tail[:3]}
    else:
        prefix = name.split("@")[0].split()[0] if name.split() else name
        query = {"displayName": f"{prefix[:3]}*"}
    return [compact(kind, raw) for raw in client.first_page(path(str(org["id"]), kind), query, limit=5)]


def choose(org: dict[str, Any], kind: str, name: str, matches: list[dict[str, Any]],
           similar: list[dict[str, Any]], where: Where = "") -> dict[str, Any]:
    """The one principal of ``matches``; else an error saying there is none (with ``similar`` as did-you-mean) or
    which several ``name`` matches."""
    unique = list({p["id"]: p for p in matches}.values())
    if len(unique) == 1:
        return unique[0]
    word = SINGULAR[kind]
    here = where.get(name, "") if isinstance(where, Mapping) else where
    prefix = f"{here}: " if here else ""
    if not unique:
        hint = f"; did you mean {' or '.join(repr(describe(p)) for p in similar)}?" if similar else ""
        raise ProjectError(f"{prefix}organization '{org.get('name')}': no {word} named '{name}'{hint}")
    how = {"User": "its e-mail", "Group": "its group name", "Site": "its URL", "Team": "its e-mail"}[kind]
    raise ProjectError(f"{prefix}organization '{org.get('name')}': '{name}' matches {len(unique)} {word}s: "
                       f"{', '.join(describe(p) for p in unique)}; name one by {how}")


# -- ids -> principals ---------------------------------------------------------------------------------------------

def by_ids(client: VboClient, org_id: str, kind: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The principals of ``kind`` with ``ids`` in the organization's directory (an id it lacks is left out): one GET
    each, several at once, or one walk for more than :data:`PAGE_THRESHOLD`."""
    if not ids:
        return {}
    here = path(org_id, kind)
    if len(ids) > PAGE_THRESHOLD:
        wanted = set(ids)
        found: dict[str, dict[str, Any]] = {}
        for results in client.each_page(here, decode=_page_decoder()):
            page_ids = list(map(str, map(attrgetter("id"), results)))
            for position in [at for at, principal_id in enumerate(page_ids) if principal_id in wanted]:
                principal = compact(kind, _entry_fields(results[position]))
                found[principal["id"]] = principal
        return found

    def one(principal_id: str) -> dict[str, Any] | None:
        try:
            raw = client.get(f"{here}/{quote(principal_id, safe='')}")
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return compact(kind, raw) if isinstance(raw, dict) else None

    with ThreadPoolExecutor(max_workers=min(len(ids), LOOKUP_WORKERS)) as pool:
        return {p["id"]: p for p in pool.map(one, ids) if p is not None}


def count_named(client: VboClient, org: dict[str, Any], kind: str, name: str) -> int:
    """How many principals of ``kind`` in ``org``'s directory carry display name ``name`` (two are enough)."""
    results = client.first_page(path(str(org["id"]), kind), {"displayName": name}, limit=5)
    return sum(1 for r in results if str(r.get("displayName") or "").lower() == name.lower())

