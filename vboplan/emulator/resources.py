"""The emulated resources: settings objects, organizations and their directory, audit items, service instance.

Each handler takes a :class:`Call` and returns a :class:`~vboplan.emulator.wire.Response` or raises
:class:`~vboplan.emulator.wire.ApiError`. Where the versions differ the handler reads ``call.profile``; response
objects are built with every known field and cut to the version's schema by :func:`~vboplan.emulator.versions.shape`.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import repeat
from operator import itemgetter
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from vboplan.emulator.store import HASH_SUFFIX, Organization, Store, derived_uuid
from vboplan.emulator.templates import UserTemplate
from vboplan.emulator.versions import Profile, fields, qualified_ids, shape
from vboplan.emulator.wire import ApiError, Response, compact_json, is_json_content_type, parse_json
from vboplan.kinds import catalog
from vboplan.kinds.catalog import Endpoint, SettingsSpec
from vboplan.schema import SchemaError, bind, component, operation

if TYPE_CHECKING:
    from vboplan.emulator.app import Emulator

PAGE_LIMIT_DEFAULT = 30
PAGE_LIMIT_MAX = 10_000  # "The maximum supported number of items per page is 10,000" (OpenAPI v7/v8)
_PAGE_COMPONENTS = {"users": "PageOfRESTUser", "groups": "PageOfRESTGroup", "sites": "PageOfRESTSite",
                    "teams": "PageOfRESTTeam"}
_ITEM_COMPONENTS = {"users": "RESTUser", "groups": "RESTGroup", "sites": "RESTSite", "teams": "RESTTeam"}
_LOCATION_FILTER = {"Cloud": {"Cloud"}, "OnPremises": {"OnPremises"}, "Hybrid": {"Hybrid"},
                    "CloudOrHybrid": {"Cloud", "Hybrid"}, "OnPremisesOrHybrid": {"OnPremises", "Hybrid"}}


@dataclass
class Call:
    """One request as the handlers see it: version, route, validated query, raw body and the server's state."""

    emulator: Emulator
    store: Store
    profile: Profile
    method: str
    template: str  # the route template after /vN, as Veeam's document spells it
    params: dict[str, str]  # path parameters
    query: dict[str, Any]  # documented query parameters, validated, by their documented names
    raw_query: dict[str, list[str]]  # every query parameter, by lower-cased name
    body: bytes
    content_type: str
    base_url: str  # scheme://host[:port] the client used (v5 writes absolute links)
    client: str  # the caller's address
    access_token: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def version(self) -> str:
        """``v5`` ... ``v8``."""
        return self.profile.name

    def href(self, path: str) -> str:
        """A link to ``path`` (after the version) as this version writes links."""
        relative = f"/{self.version}{path}"
        return self.base_url + relative if self.profile.absolute_links else relative

    def json(self, *, required: bool = True) -> Any:
        """The body parsed as JSON; ``None`` when empty and not ``required``."""
        if not self.body.strip():
            if required:
                raise ApiError(400, "The request body is empty.")
            return None
        if self.content_type and not is_json_content_type(self.content_type):
            # ASP.NET Web API has no formatter for other media types and answers 415.
            media = self.content_type.split(";", 1)[0].strip()
            raise ApiError(415, f"The request entity's media type '{media}' is not supported for this resource.",
                           plain=True)
        return parse_json(self.body)

    def bound(self, schema: dict[str, Any] | None = None, *, where: str = "") -> Any:
        """The JSON body read against ``schema`` (default: the operation's documented request schema)."""
        if schema is None:
            schema = request_schema(self.version, self.method, self.template)
        value = self.json()
        try:
            return bind(self.version, schema, value, where)
        except SchemaError as exc:
            raise ApiError(400, f"The request is invalid: {exc}") from None

    def organization(self) -> Organization:
        """The organization named by the ``organizationId`` path parameter (404 when unknown)."""
        org_id = self.params["organizationId"]
        org = self.store.organization(org_id)
        if org is None:
            raise ApiError(404, f"Organization with ID '{org_id}' was not found.")
        return org


def request_schema(version: str, method: str, template: str) -> dict[str, Any]:
    """The documented JSON request schema of an operation (``{}`` when it documents none)."""
    op = operation(version, method, f"/{version}{template}") or {}
    content = (op.get("requestBody") or {}).get("content", {})
    media: dict[str, Any] = content.get("application/json") or next(iter(content.values()), {})
    return media.get("schema", {})


# -- service instance --------------------------------------------------------------------------------------------

def service_instance(call: Call) -> Response:
    """GET /ServiceInstance."""
    return Response(200, shape(call.version, "RESTServiceInstance",
                               {"installationId": call.store.installation_id,
                                "version": call.emulator.server.build}))


# -- settings objects (vboplan.kinds.catalog) -----------------------------------------------------------------------

def _spec(key: str) -> SettingsSpec:
    spec = catalog.find(key)
    if spec is None:  # unregistered while a request was routed: as if the route did not exist
        raise ApiError(404, "No HTTP resource was found that matches the request URI.", plain=True)
    return spec


def _settings_target(call: Call, spec: SettingsSpec) -> tuple[Endpoint, Organization | None, str]:
    """The version's endpoint, the organization it is about (per-organization objects) and its path."""
    endpoint = spec.endpoints[call.version]
    org = call.organization() if spec.per_organization else None
    path = "/" + endpoint.path.replace(catalog.ORGANIZATION_ID, org.id if org else "")
    return endpoint, org, path


# Per-organization settings objects that report a server-wide one until the organization has its own (README:
# "Per-organization settings").
_SERVER_WIDE = {"organization_retention_exclusions": "retention_exclusion_settings"}


def _effective(call: Call, spec: SettingsSpec, org: Organization | None) -> dict[str, Any]:
    """The values a GET reports: what was set, over what a fresh server has. An organization without its own
    retention exclusions reports the server-wide ones as a whole; its first write makes them its own (see
    :func:`put_settings`), after which the server-wide ones no longer show through."""
    own = call.store.settings_of(spec.key, org)
    if org is not None and not own and spec.key in _SERVER_WIDE:
        return _effective(call, _spec(_SERVER_WIDE[spec.key]), None)
    values: dict[str, Any] = copy.deepcopy(dict(spec.fresh))
    for key, value in own.items():
        if key.endswith(HASH_SUFFIX):
            continue
        if isinstance(value, dict) and isinstance(values.get(key), dict):
            values[key] = {**values[key], **value}
        else:
            values[key] = value
    return values


def settings_view(call: Call, key: str) -> dict[str, Any]:
    """A settings object as this version's response schema has it; a write-only value never appears."""
    spec = _spec(key)
    endpoint, org, path = _settings_target(call, spec)
    values: dict[str, Any] = {prop: None for prop, _ in fields(call.version, endpoint.response)}
    values.update(_effective(call, spec, org))
    if values.get("authenticationType") is None:
        values["authenticationType"] = "CustomSmtp"  # a C# enum's default: what a fresh server reports
    values["_links"] = {"self": {"href": call.href(path)}}
    if endpoint.test_mail:
        action = "sendTestEmail" if endpoint.test_mail.lower() == "sendtestemail" else "sendTest"
        values["_actions"] = {action: {"uri": call.href(f"{path}/{endpoint.test_mail}"), "method": "POST"}}
    return shape(call.version, endpoint.response, values)


def get_settings(call: Call, key: str) -> Response:
    """GET of a settings object (/AuditEmailSettings, /HistorySettings, .../RetentionExclusion...)."""
    return Response(200, settings_view(call, key))


def put_settings(call: Call, key: str) -> Response:
    """PUT of a settings object: a partial update (the first one of a per-organization object starts from a copy
    of what the organization reported).

    As on the real server (an ASP.NET model where an omitted property and ``null`` are the same), a property that is
    omitted or null keeps its value; properties the version does not declare, response-only ones included, are
    ignored; a password is kept as a hash only. A property the document marks required must be there.
    """
    spec = _spec(key)
    endpoint, org, _ = _settings_target(call, spec)
    body = call.bound(component(call.version, endpoint.request))
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    for name in spec.required(call.version):
        if body.get(name) is None:
            raise ApiError(400, f"The request is invalid: {name} is required.")
    changes = {k: v for k, v in body.items() if v is not None and not k.startswith("_")}
    request_id = changes.pop("requestId", None)
    if request_id is not None:
        changes.update(call.emulator.complete_oauth_settings(key, str(request_id)))
    if org is not None and not call.store.settings_of(key, org):
        # An organization's first write creates its own object: a copy of every value it reported until now (the
        # server-wide ones, or a fresh server's), with the change on top; later server-wide changes leave it alone.
        changes = {**_effective(call, spec, org), **changes}
    call.store.update_settings(key, changes, org)
    if call.profile.settings_put_echoes:
        return Response(call.profile.settings_put_status, settings_view(call, key))
    return Response(call.profile.settings_put_status)


def delete_settings(call: Call, key: str) -> Response:
    """DELETE .../RetentionExclusion: the organization falls back to the server-wide values."""
    spec = _spec(key)
    _, org, _ = _settings_target(call, spec)
    assert org is not None
    call.store.reset_settings(key, org)
    return Response(204)


def send_test_email(call: Call, key: str) -> Response:
    """POST .../SendTest (v6, v7), .../SendTestEmail (v8), .../action {"sendTest": null} (v5); the explorers'
    actions take ``{"email": ...}``, the address to send to."""
    spec = _spec(key)
    endpoint, org, _ = _settings_target(call, spec)
    recipient = None
    if endpoint.test_mail == "action":
        body = call.json()
        if not isinstance(body, dict) or "sendtest" not in {str(k).lower() for k in body}:
            raise ApiError(400, "The action is not supported. Expected {\"sendTest\": null}.")
    elif call.body.strip():
        body = call.bound()
        recipient = body.get("email") if isinstance(body, dict) else None
    settings = _effective(call, spec, org)
    if not settings.get("enableNotification"):
        raise ApiError(400, "Email notifications are disabled. Enable them before sending a test email.")
    method = settings.get("authenticationType") or "CustomSmtp"
    if method == "CustomSmtp" and not (settings.get("smtpServer") or settings.get("server")):
        raise ApiError(400, "Cannot send a test email: SMTP server is not specified.")
    if method != "CustomSmtp" and not settings.get("isAuthenticated"):
        raise ApiError(400, f"Cannot send a test email: sign in to {method} first.")
    if not (recipient or settings.get("to")):
        raise ApiError(400, "Cannot send a test email: recipient address is not specified.")
    call.store.record_test_email(key)
    return Response(call.profile.send_test_status)


def prepare_oauth(call: Call, key: str) -> Response:
    """POST .../PrepareOAuthSignIn (v7+): start an OAuth sign-in for sending mail through Microsoft 365 or Gmail."""
    body = call.bound()
    if not isinstance(body, dict) or not body.get("authenticationServiceKind"):
        raise ApiError(400, "authenticationServiceKind is required.")
    request_id = call.emulator.prepare_oauth(key, body)
    service = body["authenticationServiceKind"]
    authority = ("https://accounts.google.com/o/oauth2/v2/auth" if service == "GoogleGmail" else
                 f"https://login.microsoftonline.com/{body.get('tenantId') or 'common'}/oauth2/v2.0/authorize")
    query = urlencode({"client_id": body.get("clientId") or "veeam-backup-for-microsoft-365",
                       "redirect_uri": body.get("redirectUrl") or "", "response_type": "code", "state": request_id})
    return Response(200, shape(call.version, "RESTPrepareOAuthSignInResponse",
                               {"requestId": request_id, "signInUrl": f"{authority}?{query}"}))


def complete_oauth(call: Call, key: str) -> Response:
    """POST .../CompleteOAuthSignIn (v7+): the redirect's ``code`` and ``state`` finish the sign-in."""
    body = call.bound()
    if not isinstance(body, dict) or not body.get("code") or not body.get("state"):
        raise ApiError(400, "code and state are required.")
    user_id = call.emulator.finish_oauth(key, str(body["state"]))
    return Response(200, shape(call.version, "RESTCompleteOAuthSignInResponse",
                               {"requestId": str(body["state"]), "userId": user_id}))


# -- organizations -----------------------------------------------------------------------------------------------

_BACKUP_FIELDS = ("isBackedup", "firstBackuptime", "lastBackuptime")


def _connection_settings(org: Organization, sharepoint: bool) -> dict[str, Any]:
    """``exchangeOnlineSettings`` / ``sharePointOnlineSettings`` of a modern app-only organization, as a real v7
    server lists them (the_auditor's model of ``GET /v7/Organizations``); secrets are never answered."""
    settings: dict[str, Any] = {"useApplicationOnlyAuth": True}
    if sharepoint:
        settings["officeOrganizationName"] = org.name.split(".", 1)[0]
        settings["sharePointSaveAllWebParts"] = False
    settings.update({"account": f"veeam-backup@{org.name}", "grantAdminAccess": False, "useMfa": True,
                     "applicationId": derived_uuid("organization-application", org.id),
                     "applicationCertificateThumbprint": derived_uuid("organization-certificate", org.id)
                     .replace("-", "").upper()[:40]})
    return settings


def organization_view(call: Call, org: Organization, extended: bool = False) -> dict[str, Any]:
    """An organization as ``RestOrganizationComposed`` of this version. ``extended`` (``extendedView=true``) adds
    the backup state the controller asks the proxy for; without it those fields are left out."""
    base = f"/Organizations/{org.id}"
    values: dict[str, Any] = {
        "isTeamsOnline": True, "isTeamsChatsOnline": False,
        "exchangeOnlineSettings": _connection_settings(org, sharepoint=False),
        "sharePointOnlineSettings": _connection_settings(org, sharepoint=True),
        "isExchangeOnline": True, "isSharePointOnline": True, "type": "Office365", "region": "Worldwide",
        "id": org.id, "name": org.name, "officeName": org.name,
        "isBackedup": False, "firstBackuptime": None, "lastBackuptime": None,
        "msid": derived_uuid("organization-msid", org.id), "backedUpOrganizationId": None,
    }
    values.update(org.extra)
    if not extended:
        for name in _BACKUP_FIELDS:
            values.pop(name, None)
    # v8 dropped /Organizations/{id}/Jobs: its jobs are filtered by organization instead.
    jobs = f"/Jobs?organizationId={org.id}" if call.profile.organizations_paged else f"{base}/Jobs"
    values["_links"] = {"self": {"href": call.href(base)}, "jobs": {"href": call.href(jobs)},
                        **{name: {"href": call.href(f"{base}/{suffix}")} for name, suffix in (
                            ("groups", "Groups"), ("users", "Users"), ("sites", "Sites"), ("teams", "Teams"),
                            ("usedRepositories", "usedRepositories"), ("rbacRoles", "RbacRoles"))}}
    values["_actions"] = {}
    return shape(call.version, "RestOrganizationComposed", values)


def _extended(call: Call) -> bool:
    """``extendedView``: given, or the version's documented default (v6 true, v7/v8 false)."""
    given = call.query.get("extendedView")
    return call.profile.name in ("v5", "v6") if given is None else bool(given)


def list_organizations(call: Call) -> Response:
    """GET /Organizations: an array before v8, a page in v8 (filter ``msid``)."""
    orgs = call.store.organizations
    extended = _extended(call)
    if not call.profile.organizations_paged:
        return Response(200, [organization_view(call, org, extended) for org in orgs])
    msid = call.query.get("msid")
    if msid is not None:
        orgs = [o for o in orgs if organization_view(call, o).get("msid") == msid]
    offset, limit = _paging(call)
    keep = {k: _query_text(v) for k, v in call.query.items() if k not in ("offset", "limit")}
    set_id = derived_uuid("set", "organizations", repr(sorted(keep.items())))
    body = {"offset": offset, "limit": limit, "setId": set_id,
            "results": [organization_view(call, org, extended) for org in orgs[offset:offset + limit]],
            "_links": _page_links(call, "/Organizations", keep, offset, limit, len(orgs))}
    return Response(200, shape(call.version, "PageOfRestOrganizationComposed", body))


def get_organization(call: Call) -> Response:
    """GET /Organizations/{organizationId}."""
    return Response(200, organization_view(call, call.organization(), _extended(call)))


# -- users, groups, sites, teams ---------------------------------------------------------------------------------

_PRINCIPAL_DEFAULTS: dict[str, dict[str, Any]] = {
    "users": {"type": "User", "locationType": "Cloud", "onPremisesSid": None, "office": None, "eTag": None,
              "assignedLicenses": [], "dataLocation": None},
    "groups": {"type": "Office365", "locationType": "Cloud", "onPremisesSid": None, "eTag": None,
               "dataLocation": None},
    "sites": {"isCloud": True, "isPersonal": False, "isAvailable": True, "eTag": None, "dataLocation": None},
    "teams": {"eTag": None, "dataLocation": None},
}


_GUID_HEAD = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_NOUNS = {"users": "User", "groups": "Group", "sites": "Site", "teams": "Team"}


def wire_id(call: Call, org: Organization, kind: str, stored: str) -> str:
    """A user's or group's id as this version writes it. Through v6 the stored form itself (the object's GUID and
    its on-premises GUID run together, NOTES' two-GUID form); from v7 on qualified by the organization and split on
    ``:``, as ``<organization id>:<User|Group>:<on-premises part>:<object GUID>`` (README: "Ids")."""
    if kind not in ("users", "groups") or not qualified_ids(call.version):
        return stored
    head = _GUID_HEAD.match(stored)
    if head is None or ":" in stored:
        object_id, rest = stored, ""
    else:
        object_id, rest = head.group(0), stored[head.end():]
    return f"{org.id}:{_NOUNS[kind]}:{rest}:{object_id}"


# A GUID's characters with every hex digit as "x": what a stored id's first 36 characters are, in :func:`_wire_ids`.
_HEX_AS_X = bytes.maketrans(b"0123456789abcdefABCDEF", b"x" * 22)
_GUID_SHAPE = b"xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"


def _wire_ids(version: str, org_id: str, kind: str, stored: list[str]) -> list[str] | None:
    """:func:`wire_id` of many ids at once, in loops that run in C; None where not every id is a GUID followed by
    an on-premises part without ``:`` (the form :func:`wire_id` splits; it writes the others)."""
    if kind not in ("users", "groups") or not qualified_ids(version):
        return stored
    heads = list(map(itemgetter(slice(0, 36)), stored))
    if ":" in "".join(stored) or "".join(heads).encode("utf-8", "replace").translate(_HEX_AS_X) != _GUID_SHAPE * len(heads):
        return None
    rests = map(itemgetter(slice(36, None)), stored)
    return list(map("".join, zip(repeat(f"{org_id}:{_NOUNS[kind]}:"), rests, repeat(":"), heads)))


def find_principal(call: Call, org: Organization, kind: str, given: str) -> dict[str, Any] | None:
    """The directory entry a client names by ``given``, an id in this version's form (:func:`wire_id`); an id
    of another version's form, or of another organization, names nothing."""
    directory = org.directory(kind)
    if kind not in ("users", "groups") or not qualified_ids(call.version):
        return directory.get(given)
    parts = given.split(":", 3)
    if len(parts) != 4 or parts[0].lower() != org.id or parts[1].lower() != _NOUNS[kind].lower():
        return None
    return directory.get(parts[3] + parts[2])


def principal_view(call: Call, org: Organization, kind: str, item: dict[str, Any]) -> dict[str, Any]:
    """A user, group, site or team as this version's item schema has it."""
    return _viewer(call, org, kind)(item)


_ROUTES = {"users": "Users", "groups": "Groups", "sites": "Sites", "teams": "Teams"}


def _viewer(call: Call, org: Organization, kind: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """:func:`principal_view` for many entries of one directory: what every entry's view shares (defaults, the
    version's declared properties, the link prefixes) worked out once, as a cold page of 10,000 builds them all."""
    defaults = _PRINCIPAL_DEFAULTS[kind]
    declared = {prop for prop, _ in fields(call.version, _ITEM_COMPONENTS[kind])}
    organization = call.href(f"/Organizations/{org.id}")
    prefix = call.href(f"/Organizations/{org.id}/{_ROUTES[kind]}/")

    def view(item: dict[str, Any]) -> dict[str, Any]:
        values = {**defaults, **item}
        values["id"] = wire_id(call, org, kind, item["id"])
        if kind == "sites":
            values.setdefault("title", values.get("name") or values.get("url"))
        elif kind == "teams":
            values.setdefault("mail", re.sub(r"\W", "", str(values.get("displayName", "team"))) + "@" + org.name)
        elif kind == "groups":
            _group_defaults(org, values)
        self_href = prefix + values["id"]
        values["_links"] = {"self": {"href": self_href}, "organization": {"href": organization}}
        if kind == "users":  # a real v7 server links each user's OneDrives (the_auditor's model of Users pages)
            values["_links"]["onedrives"] = {"href": f"{self_href}/onedrives"}
        # shape(): only what the version declares, unset values left out
        return {prop: value for prop, value in values.items() if prop in declared and value is not None}

    return view


def _group_defaults(org: Organization, values: dict[str, Any]) -> None:
    """A group's owner (``managedBy``) and, for a Microsoft 365 group, its team site (``site``), unless seeded."""
    if values.get("managedBy") is None and org.users.items:
        owner = org.users.items[0]
        values["managedBy"] = owner.get("displayName") or owner.get("name")
    if values.get("site") is None and values.get("type", "Office365") == "Office365":
        alias = re.sub(r"[^A-Za-z0-9]", "", str(values.get("name") or values.get("displayName") or "").split("@")[0])
        values["site"] = f"https://{org.name.split('.', 1)[0]}.sharepoint.com/sites/{alias}"


def _wildcard(pattern: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern),
                      re.IGNORECASE | re.DOTALL)


def _select(org: Organization, kind: str, query: dict[str, Any]) -> list[dict[str, Any]]:
    """The directory entries matching the documented filters, in server order.

    Exact filters use the directory's lower-case indexes (O(1) on a 100,000-user tenant); ``displayName`` with
    ``*``/``?`` wildcards scans.
    """
    directory = org.directory(kind)
    candidates: list[dict[str, Any]] | None = None
    checks = []
    name_filter = query.get("userName") if kind == "users" else query.get("groupName") if kind == "groups" else None
    if name_filter is not None:
        candidates = directory.by_name.get(name_filter.lower(), [])
    display = query.get("displayName") if kind in ("users", "groups", "teams") else None
    if display is not None:
        if "*" in display or "?" in display:
            pattern = _wildcard(display)
            checks.append(lambda item: pattern.fullmatch(str(item.get("displayName", ""))) is not None)
        elif candidates is None:
            candidates = directory.by_display_name.get(display.lower(), [])
        else:
            wanted = display.lower()
            checks.append(lambda item: str(item.get("displayName", "")).lower() == wanted)
    location = query.get("locationFilter")
    if location is not None and location != "Any" and kind in ("users", "groups"):
        allowed = _LOCATION_FILTER[location]
        checks.append(lambda item: item.get("locationType", "Cloud") in allowed)
    if kind == "sites":
        if not query.get("includePersonalSites", True):
            checks.append(lambda item: not item.get("isPersonal", False))
        keyword = query.get("filter")
        if keyword:
            needle = keyword.lower()
            checks.append(lambda item: needle in str(item.get("title", "")).lower()
                          or needle in str(item.get("url", "")).lower())
    items = directory.items if candidates is None else candidates
    if not checks:
        return items
    return [item for item in items if all(check(item) for check in checks)]


def _paging(call: Call) -> tuple[int, int]:
    offset = call.query.get("offset")
    limit = call.query.get("limit")
    offset = 0 if offset is None else offset
    limit = PAGE_LIMIT_DEFAULT if limit is None else limit
    if offset < 0:
        raise ApiError(400, "The offset parameter must not be negative.")
    if not 1 <= limit <= PAGE_LIMIT_MAX:
        raise ApiError(400, f"The limit parameter must be between 1 and {PAGE_LIMIT_MAX:,}: "
                            f"the maximum supported number of items per page is {PAGE_LIMIT_MAX:,}.")
    return offset, limit


def _page_links(call: Call, path: str, keep: dict[str, Any], offset: int, limit: int, total: int
                ) -> dict[str, dict[str, str]]:
    """``self``, and ``first``/``prev``/``next`` only where one can navigate (pagination.html)."""
    def link(at: int) -> dict[str, str]:
        return {"href": call.href(f"{path}?{urlencode({**keep, 'offset': at, 'limit': limit})}")}

    links = {"self": link(offset)}
    if offset > 0:
        links["first"] = link(0)
        links["prev"] = link(max(0, offset - limit))
    if offset + limit < total:
        links["next"] = link(offset + limit)
    return links


def list_directory(call: Call, kind: str) -> Response:
    """GET .../Users, .../Groups, .../Sites, .../Teams: a page (``totalCount`` only where the version has it)."""
    org = call.organization()
    offset, limit = _paging(call)
    matches = _select(org, kind, call.query)
    filters = {k: _query_text(v) for k, v in call.query.items() if k not in ("offset", "limit", "setId")}
    # The same query gets the same set id; a client that passes one back gets it echoed.
    set_id = call.query.get("setId") or derived_uuid("set", org.id, kind, repr(sorted(filters.items())))
    route = {"users": "Users", "groups": "Groups", "sites": "Sites", "teams": "Teams"}[kind]
    keep = {**filters, "setId": set_id}
    body = {"offset": offset, "limit": limit, "setId": set_id, "results": [],
            "_links": _page_links(call, f"/Organizations/{org.id}/{route}", keep, offset, limit, len(matches))}
    if call.profile.page_total_count:
        body["totalCount"] = len(matches)
    page = matches[offset:offset + limit]
    body = shape(call.version, _PAGE_COMPONENTS[kind], body)
    # A page of users is written whole from the template, joined and encoded once, no entry kept (a cold walk of
    # 100,000 users would keep 80 MB of them: fresh memory, which the process pays for); other pages join the
    # entries' kept views.
    pieces = _user_template(call, org, call.base_url if call.profile.absolute_links else "").array_pieces(page) \
        if kind == "users" and "results" in body else None
    if pieces is not None:
        return Response(200, raw=_written_page(body, pieces))
    return Response(200, body, encoded={"results": _encoded_views(call, org, kind, page)})


def _written_page(body: dict[str, Any], results: list[str]) -> bytes:
    """``body`` as :func:`~vboplan.emulator.wire.compact_json` writes it, its ``results`` the text that the pieces
    ``results`` join to (the pieces are changed: the other members are put around them)."""
    before: list[str] = []
    after: list[str] = []
    members = before
    for key, value in body.items():
        if key == "results":
            members = after
        else:
            members.append(f"{_text(key)}:{_text(value)}")
    results[0] = "{" + "".join(f"{member}," for member in before) + '"results":' + results[0]
    results[-1] += "".join(f",{member}" for member in after) + "}"
    return "".join(results).encode()


def _text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _encoded_view(call: Call, org: Organization, kind: str, item: dict[str, Any]) -> bytes:
    """:func:`principal_view` encoded, kept per entry, version and link base (see :func:`_encoded_views`)."""
    views = org.directory(kind).views.get((call.version, call.base_url if call.profile.absolute_links else ""))
    found = views.get(item["id"]) if views is not None else None
    return found if found is not None else _encoded_views(call, org, kind, [item])[0]


def _encoded_views(call: Call, org: Organization, kind: str, items: list[dict[str, Any]]) -> list[bytes]:
    """The entries' views encoded, each kept per entry, version and link base: a directory never changes after it
    is loaded, so a page of 10,000 entries (or as many audit items) joins these instead of building them again.
    Users are written from a template (:mod:`vboplan.emulator.templates`: the same bytes, a tenth of the time of
    building each view); other entries, and users the template cannot write, are encoded by msgspec (the same bytes
    as :func:`~vboplan.emulator.wire.compact_json`, a sixth of its time)."""
    from msgspec.json import encode

    link_base = call.base_url if call.profile.absolute_links else ""
    views = org.directory(kind).views.setdefault((call.version, link_base), {})
    ids = list(map(itemgetter("id"), items))
    encoded: list[bytes | None] = list(map(views.get, ids))
    missing = [index for index, found in enumerate(encoded) if found is None]
    if not missing:
        return encoded  # type: ignore[return-value]
    todo = items if len(missing) == len(items) else [items[index] for index in missing]
    built = _user_template(call, org, link_base).encode(todo) if kind == "users" else [None] * len(todo)
    if None in built:
        view = _viewer(call, org, kind)
        built = [found if found is not None else encode(view(item)) for found, item in zip(built, todo, strict=True)]
    views.update(zip(map(ids.__getitem__, missing), built, strict=True))
    if len(missing) == len(items):
        return built  # type: ignore[return-value]
    for index, found in zip(missing, built, strict=True):
        encoded[index] = found
    return encoded  # type: ignore[return-value]


def _user_template(call: Call, org: Organization, link_base: str) -> UserTemplate:
    """The template of :func:`_viewer`'s user views for this call's version and link base, made once."""
    writers = org.users.writers
    found = writers.get((call.version, link_base))
    if found is None:
        version, org_id = call.version, org.id
        found = writers[version, link_base] = UserTemplate(
            _PRINCIPAL_DEFAULTS["users"], {prop for prop, _ in fields(version, "RESTUser")},
            lambda stored: _wire_ids(version, org_id, "users", stored),
            call.href(f"/Organizations/{org_id}/Users/"), call.href(f"/Organizations/{org_id}"))
    return found  # type: ignore[no-any-return]


def get_principal(call: Call, kind: str) -> Response:
    """GET .../Users/{userId}, .../Groups/{groupId}, .../Sites/{siteId}, .../Teams/{teamId}."""
    org = call.organization()
    key = {"users": "userId", "groups": "groupId", "sites": "siteId", "teams": "teamId"}[kind]
    item = find_principal(call, org, kind, str(call.params[key]))
    if item is None:
        noun = {"users": "User", "groups": "Group", "sites": "Site", "teams": "Team"}[kind]
        raise ApiError(404, f"{noun} with ID '{call.params[key]}' was not found in organization '{org.name}'.")
    return Response(200, principal_view(call, org, kind, item))


def _query_text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


# -- audit items -------------------------------------------------------------------------------------------------

def _audit_item_json(call: Call, org: Organization, item: dict[str, Any]) -> bytes:
    """An audit item (``RESTAuditUserOrGroup``) encoded. Its user or group is the whole ``RESTUser``/``RESTGroup``
    of the version, as ``GET .../Users/{userId}`` answers it (``type``, ``locationType``, ``_links``...): the
    document's schema, what a real v5 server sends, and what the_auditor requires of a v7 one (README: "Audit
    items")."""
    kind = "users" if item["type"] == "User" else "groups"
    found = org.directory(kind).get(item["principalId"])
    principal = _encoded_view(call, org, kind, found) if found is not None else \
        compact_json({"id": wire_id(call, org, kind, item["principalId"])})
    principal_id = wire_id(call, org, kind, item["principalId"])
    route, member = ("Users", "user") if kind == "users" else ("Groups", "group")
    links = {"organization": {"href": call.href(f"/Organizations/{org.id}")},
             member: {"href": call.href(f"/Organizations/{org.id}/{route}/{principal_id}")}}
    return (b'{"id":' + compact_json(item["id"]) + b',"type":' + compact_json(item["type"]) + b',"'
            + member.encode() + b'":' + principal + b',"_links":' + compact_json(links) + b"}")


def list_audit_items(call: Call) -> Response:
    """GET .../AuditItems: a plain array (not paged, in every version)."""
    org = call.organization()
    for kind, principal_type in (("users", "User"), ("groups", "Group")):  # their views encoded together, once
        directory = org.directory(kind)
        _encoded_views(call, org, kind, [found for item in org.audit_items if item["type"] == principal_type
                                         and (found := directory.get(item["principalId"])) is not None])
    return Response(200, raw=b"[" + b",".join(_audit_item_json(call, org, item) for item in org.audit_items)
                    + b"]")


def add_audit_items(call: Call) -> Response:
    """POST .../AuditItems with an array of ``{type, user|group: {id, ...}}``.

    Principals are found by ``id`` in the organization's directory (unknown: 404 naming it, nothing added); one
    already audited is left as it is; Site and Team are refused with 400. A missing ``type`` is ``User``, the
    default of the server's enum.
    """
    org = call.organization()
    raw = call.json()
    if not isinstance(raw, list):
        raise ApiError(400, "The request body must be a JSON array of audit items.")
    for index, entry in enumerate(raw):
        kind = entry.get("type") if isinstance(entry, dict) else None
        if isinstance(kind, str) and kind.lower() in ("site", "team", "teams", "sites"):
            raise ApiError(400, f"[{index}].type: only users and groups can be audited; teams cannot be added to "
                                "audit items (add the team's group instead).")
    items = call.bound(where="")
    principals: list[tuple[str, str]] = []
    for index, item in enumerate(items):
        if item is None:
            raise ApiError(400, f"[{index}]: an audit item must be an object.")
        kind = item.get("type") or "User"
        principal = item.get(kind.lower())
        if not isinstance(principal, dict) or not principal.get("id"):
            raise ApiError(400, f"[{index}].{kind.lower()}.id is required.")
        found = find_principal(call, org, "users" if kind == "User" else "groups", str(principal["id"]))
        if found is None:
            raise ApiError(404, f"{kind} with ID '{principal['id']}' was not found in organization '{org.name}'.")
        principals.append((kind, found["id"]))
    call.store.add_audit_items(org, principals)
    return Response(call.profile.audit_add_status)


def _remove(call: Call, org: Organization, item_ids: list[str] | None) -> None:
    if item_ids is None:
        raise ApiError(400, "itemIds is required.")
    known = {item["id"] for item in org.audit_items}
    unknown = [i for i in item_ids if i not in known]
    if unknown:
        raise ApiError(404, f"Audit item with ID '{unknown[0]}' was not found in organization '{org.name}'."
                       + (f" ({len(unknown)} unknown IDs)" if len(unknown) > 1 else ""))
    call.store.remove_audit_items(org, set(item_ids))


def remove_audit_items(call: Call) -> Response:
    """POST .../AuditItems/remove {"itemIds": [...]} (v6+); unknown ids: 404 and nothing removed."""
    org = call.organization()
    body = call.bound()
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object with itemIds.")
    _remove(call, org, body.get("itemIds"))
    return Response(call.profile.audit_remove_status)


def audit_items_action(call: Call) -> Response:
    """v5: POST .../AuditItems/action {"remove": {"itemIds": [...]}}."""
    org = call.organization()
    body = call.json()
    actions = {str(k).lower(): v for k, v in body.items()} if isinstance(body, dict) else {}
    if "remove" not in actions:
        raise ApiError(400, "The action is not supported. Expected {\"remove\": {\"itemIds\": [...]}}.")
    try:
        options = bind(call.version, component(call.version, "RESTRemoveAuditItemsOptions"), actions["remove"],
                       "remove")
    except SchemaError as exc:
        raise ApiError(400, f"The request is invalid: {exc}") from None
    _remove(call, org, (options or {}).get("itemIds"))
    return Response(call.profile.audit_remove_status)


def delete_audit_items(call: Call) -> Response:
    """v5: DELETE .../AuditItems?itemIds=a&itemIds=b (commas also split) -> 204."""
    org = call.organization()
    ids = [part for value in call.raw_query.get("itemids", []) for part in value.split(",") if part]
    if not ids:
        raise ApiError(400, "itemIds is required.")
    _remove(call, org, ids)
    return Response(204)


def new_request_id() -> str:
    """A fresh opaque id (OAuth sign-in requests)."""
    return str(uuid.uuid4())
