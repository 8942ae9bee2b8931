"""``copy_jobs``: backup copy jobs (Veeam Backup for Microsoft 365 REST API reference,
helpcenter.veeam.com/docs/vbo365/rest/, "Backup Copy Jobs"; OpenAPI documents v6, v7, v8: ``/CopyJobs``), keyed by
the name of the backup job each copies: a backup job has at most one (``GET /Jobs/{jobId}/CopyJob`` answers one
object), and the server names it. A copy job names its target ``repository`` by name (the documents: an object
storage repository of an archive tier), its ``schedulePolicy`` and ``isEnabled`` (through
``/CopyJobs/{id}/enable`` and ``/disable``; vboplan never starts one). v8 creates with ``RESTCreateCopyJob``, which
requires the organization: it is the backup job's, written ``organization`` only where the backup job is created by
the same plan (so the server cannot say it yet).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vboplan.api.client import VboClient
from vboplan.api.rest import Operation
from vboplan.errors import PlanError, RenderError
from vboplan.kinds import refs
from vboplan.kinds.backup_jobs import RUN_STATUS, STATUS_WORDS
from vboplan.kinds.base import Basis, Export, Request, Write
from vboplan.kinds.collection import CollectionKind, Declared, object_address
from vboplan.kinds.spec import Api, CollectionSpec, Reference
from vboplan.planning.changes import Address, Change, make
from vboplan.sensitive import reveal


def _api(version: str) -> Api:
    item = "CopyJobs/{id}"
    v8 = version == "v8"
    return Api(list=Operation("GET", "CopyJobs", (200,), v8), request="RESTCreateCopyJob" if v8 else "RESTCopyJob",
               response="RESTCopyJob", get=Operation("GET", item),
               create=Operation("POST", "CopyJobs", (201,) if v8 else (200,)),
               update=Operation("PUT", item, (204,)), delete=Operation("DELETE", item, (204,)))


class CopyJobHooks:
    def kind(self, spec: CollectionSpec) -> Any:
        return CopyJobsKind(spec)


SPEC = CollectionSpec(
    key="copy_jobs", key_field="name",
    versions={version: _api(version) for version in ("v6", "v7", "v8")},
    references=(Reference("backupJobId", "backup_jobs", name="backupJob"),
                Reference("repositoryId", "backup_repositories"), Reference("organizationId", "organizations")),
    fixed=("backupJob", "organization"),
    extra_paths=("CopyJobs/{id}/enable", "CopyJobs/{id}/disable", "CopyJobs/{id}/BackupJob"),
    hooks=CopyJobHooks(),
    summary="backup copy jobs, by the name of the backup job each copies: target repository, schedule")


@dataclass(frozen=True)
class CopyJobsKind(CollectionKind):
    """The generic collection, keyed by the backup job instead of the server-made name."""

    def normalise(self, version: str, raw: Any, where: Callable[[Any], str]) -> Declared:
        if isinstance(raw, dict):
            for key, fields in raw.items():
                named = next((k for k in (fields or {}) if str(k).lower() in ("backupjob", "name")), None) \
                    if isinstance(fields, dict) else None
                if named is not None:
                    raise RenderError(f"{where(key)}: {object_address(self.name, str(key))}: a copy job is keyed by "
                                      f"the backup job it copies and named by the server; leave {named} out")
                status = next((k for k in (fields or {}) if str(k).lower() in STATUS_WORDS), None) \
                    if isinstance(fields, dict) else None
                if status is not None:
                    raise RenderError(f"{where(key)}: {object_address(self.name, str(key))}: "
                                      f"{STATUS_WORDS[str(status).lower()]}")
        desired = super().normalise(version, raw, where)
        for key, fields in desired.items():
            fields["backupJob"] = key
            if "repository" not in fields:
                raise RenderError(f"{desired.where[key]}: {object_address(self.name, key)} needs repository: NAME")
        return desired

    def read(self, client: VboClient, scope: Any) -> dict[str, Any]:
        live = super().read(client, scope)
        live["objects"] = {str(obj["values"].get("backupJob") or name): obj for name, obj in live["objects"].items()}
        for obj in live["objects"].values():
            for name in RUN_STATUS:
                obj["values"].pop(name, None)
        if client.version == "v8":  # the organization a copy job of each live backup job is created in
            resolver = refs.resolver(client)
            orgs = {str(o.get("id")).lower(): str(o.get("name")) for o in resolver.objects("organizations").items}
            live["job_organizations"] = {str(j.get("name")): orgs.get(str(j.get("organizationId")).lower())
                                         for j in resolver.objects("backup_jobs").items}
        return live

    def diff(self, version: str, live: dict[str, Any], desired: Declared, recorded: Any | None) -> list[Change]:
        return super().diff(version, live, self._filled(version, live, desired), recorded)

    def _filled(self, version: str, live: dict[str, Any], desired: Declared,
                moved: dict[str, str] | None = None) -> Declared:
        """``desired`` with each copy job's backup job and (v8) organization: its backup job's, ``moved`` (by
        lower-cased key) where the plan replaces that job in another organization."""
        filled = Declared()
        filled.where = desired.where
        job_orgs = {k.lower(): v for k, v in (live.get("job_organizations") or {}).items()}
        job_orgs.update(moved or {})
        for key, fields in desired.items():
            mine = {k: v for k, v in fields.items() if k != "backupJob"}
            if version == "v8" and ("organization" not in mine or key.lower() in (moved or {})):
                org = job_orgs.get(key.lower())
                if org is None:
                    raise PlanError(f"{desired.where.get(key, self.name)}: {object_address(self.name, key)}: its backup "
                                    "job is created by this plan, so the server cannot name its organization yet; "
                                    "write organization: NAME (API v8 creates a copy job in its organization)")
                mine["organization"] = org
            filled[key] = {"backupJob": key, **mine}
        return filled

    def follow(self, version: str, live: dict[str, Any], desired: Declared, found: list[Change],
               earlier: list[Change]) -> list[Change]:
        """``found`` with the copy job of each backup job ``earlier`` replaces replaced too: the server refuses to
        delete a job a copy job copies, and the new job has a new id. Its DELETE goes before the job's, its POST
        after the job's, naming the new id."""
        jobs = {c.address.parts[0][1].lower(): c for c in earlier
                if c.kind == "backup_jobs" and c.action == "replace" and len(c.address.parts) == 1}
        objects = live.get("objects") or {}
        follows = {k: jobs[k.lower()] for k in objects if k.lower() in jobs and _find(desired, k) is not None}
        if not follows:
            return found
        moved = {k.lower(): Address.parse(str(job.after.get("organization"))).parts[0][1]
                 for k, job in follows.items() if isinstance(job.after, dict) and job.after.get("organization")}
        filled = self._filled(version, live, desired, moved)
        kept = [c for c in found if c.address.parts[0][1].lower() not in {k.lower() for k in follows}]
        for key, job in sorted(follows.items(), key=lambda i: i[0].lower()):
            obj = objects[key]
            shown = self._shown_object(_find(filled, key), live)
            kept.append(make("replace", self.name, object_address(self.name, key),
                             self._shown_object(obj["values"], live), shown, False,
                             {"key": key, "id": obj["id"], "reason": self._replace_reason(
                                 version, obj["values"], shown, live, secret_changed=False) or _follows(job.address)}))
        return kept

    def derive(self, basis: Basis, address: Address, action: str, after: Any) -> Change:
        named = [address.parts[1][1]] if len(address.parts) == 2 else list(after) if isinstance(after, dict) else []
        status = next((n for n in named if str(n).lower() in STATUS_WORDS), None)
        if status is not None:  # what templates may not set, no row of a plan file may either
            raise PlanError(f"{address}: {STATUS_WORDS[str(status).lower()]}")
        # A plan file's row: the copy job at a backup job's key copies that job, whatever the row's value names.
        if action == "create" and len(address.parts) == 1 and isinstance(after, dict):
            own = str(object_address("backup_jobs", address.parts[0][1]))
            if str(after.get("backupJob") or "").lower() != own.lower():
                raise PlanError(f"{address}: the copy job of this key copies {own}, not {after.get('backupJob')}")
        return super().derive(basis, address, action, after)

    def _derive_replace(self, version: str, api: Api, address: Address, key: str, obj: Any, after: Any,
                        live: dict[str, Any]) -> Change:
        """A copy job is replaced where a fixed field changes, or with its backup job (see :meth:`follow`; its
        writes refuse it unless that job's replace is carried out with it)."""
        if obj is None or not isinstance(after, dict):
            raise PlanError(f"{address}: the plan cannot replace this object (not on the server)")
        self._check_shown(version, address, after, live)
        reason = self._replace_reason(version, obj["values"], after, live, secret_changed=False) or \
            _follows(object_address("backup_jobs", key))
        return make("replace", self.name, address, self._shown_object(obj["values"], live), after, False,
                    {"key": key, "id": obj["id"], "reason": reason})

    def writes(self, basis: Basis, changes: list[Change]) -> list[Write]:
        live = basis.live if isinstance(basis.live, dict) else {}
        for change in (c for c in changes if c.action == "replace"):
            key = change.address.parts[0][1]
            job = str(object_address("backup_jobs", key))
            obj = next((v for k, v in (live.get("objects") or {}).items() if k.lower() == key.lower()), None)
            fixed = obj is not None and self._replace_reason(basis.version, obj["values"], change.after, live, False)
            if not fixed and job not in basis.replaced:
                raise PlanError(f"{change.address}: a copy job is replaced with its backup job only, and the same "
                                f"apply does not replace {job}")
        return super().writes(basis, changes)

    def object_write(self, basis: Basis, api: Api, key: str, mine: list[Change], live: dict[str, Any]) -> Write:
        requests = self._requests(basis, api, key, mine, live)
        return Write(f"{requests[0].method} /{basis.version}/{requests[0].path}", mine, requests=requests)

    def _requests(self, basis: Basis, api: Api, key: str, mine: list[Change], live: dict[str, Any]) -> list[Request]:
        if any(c.action == "delete" for c in mine):
            return super().object_write(basis, api, key, mine, live).requests
        created = next((c for c in mine if c.action == "create"), None)
        if created is not None:
            assert api.create is not None
            body = self._api_body(created.after, live, basis.replaced)
            if basis.version != "v8":
                body.pop("organizationId", None)
            return [Request("POST", api.create.url(), body, api.create.status,
                            assigns=str(object_address(self.name, key)))]
        obj = next((v for k, v in (live.get("objects") or {}).items() if k.lower() == key.lower()), None)
        if obj is None or api.update is None:
            raise PlanError(f"{object_address(self.name, key)}: not on the server")
        requests: list[Request] = []
        fields = [c for c in mine if c.address.parts[1][1] != "isEnabled"]
        if fields:
            body: dict[str, Any] = {name: obj["values"][name] for name in ("schedulePolicy",)
                                    if obj["values"].get(name) is not None}
            body["repositoryId"] = self._live_api_value("repositoryId", obj, live)
            body.update(self._api_body({change.address.parts[1][1]: change.after for change in fields}, live))
            requests.append(Request("PUT", api.update.url(id=str(obj["id"])), body, api.update.status))
        for change in (c for c in mine if c.address.parts[1][1] == "isEnabled"):
            action = "enable" if reveal(change.after) is True else "disable"
            requests.append(Request("POST", f"CopyJobs/{obj['id']}/{action}", None, (204,)))
        return requests

    def export(self, client: VboClient) -> Export:
        """The generic export, keyed by the backup job (which the key names, so no field repeats it)."""
        exported = super().export(client)
        for values in (exported.values or {}).values():
            values.pop("backupJob", None)
        return exported


def _follows(job: Address) -> str:
    return (f"its backup job {job} is replaced: the copy job is deleted before it and created after it, copying the "
            "new job")


def _find(mapping: dict[str, Any], key: str) -> Any:
    return next((v for k, v in mapping.items() if k.lower() == key.lower()), None)
