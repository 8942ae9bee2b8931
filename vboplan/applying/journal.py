"""The write journal: what an apply sent to the server, recorded before each write and after its answer.

An apply can be stopped anywhere (SIGKILL, SIGTERM, Ctrl-C, a full disk, a crash). The journal, an append-only
record beside the snapshot in the same backend (one JSON line per event, see ``state.parse_journal``), is then the
true record of what may have reached the server:

* ``sent``: recorded before the request; the answer was not seen, so it may or may not have landed;
* ``applied``: the server answered success;
* ``failed``: the server answered an error.

The next command folds it into what it takes as recorded: a write the server confirmed counts as applied; one whose
answer was not seen counts as applied when the live values now equal what was sent, and as unknown otherwise (a
write-only secret can never be read back, so it is known only through its answer or a readable field sent in the same
request). A secret appears in the journal only as the salted hash the plan already holds.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vboplan.errors import StateError
from vboplan.planning.changes import Address, Change, make, object_key
from vboplan.sensitive import MASK, Sensitive, digest_of, is_digest
from vboplan.state.files import now

if TYPE_CHECKING:
    from vboplan.api.client import VboClient
    from vboplan.state import StateStore

FORMAT = 2  # see state.parse_journal


def _record(change: Change, digests: dict[str, Any]) -> dict[str, Any]:
    record: dict[str, Any] = {"id": change.id, "kind": change.kind, "address": str(change.address),
                              "action": change.action, "detail": change.detail, "sensitive": change.sensitive}
    if change.sensitive:
        record["after_digest"] = digests.get(change.id) or digest_of(change.after)
    else:
        record["after"] = change.after
    return record


def _plain(value: Any) -> Any:
    if isinstance(value, Sensitive):
        return MASK  # never reached for a secret (see _record); a safety net for an unexpected detail
    return str(value)  # an address or another value object: its text is what the next run reads back


def _encode(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=_plain)


# The journal of the apply this process ran last. However an interrupted apply unwinds (a second Ctrl-C while it
# logs out or releases its lock replaces the error that said what was sent), the CLI can still say what reached the
# server from here (see :func:`interrupted_report`).
_last: WriteJournal | None = None


def interrupted_report() -> str | None:
    """For a run stopped by Ctrl-C or SIGTERM: what the apply it ran sent, or None when it sent nothing."""
    journal = _last
    if journal is None or not journal.writes:
        return None
    return journal.interrupted_message()


def reset() -> None:
    """A new run of the CLI starts (several may run in one process): no apply of this run yet."""
    global _last
    _last = None


class WriteJournal:
    """The journal of one apply: an append-only record, one JSON line per event (see ``state.parse_journal``).

    The apply's own record starts it; each request adds a "sent" line before it goes (:meth:`sending`), and its
    answer an "answered" line. An answer is recorded in memory at once (:meth:`answered`) and reaches the backend
    with the next request's "sent" line, in one append (one fsync, the folder untouched) per request; the last one
    with :meth:`settle`. A run stopped in between leaves that write "sent" (may or may not have landed), which stays
    true: the next command checks it against the live values; nothing is ever sent that the journal does not hold.
    Lines once written are never rewritten, so a run killed mid-write can cost at most the line it was writing."""

    def __init__(self, store: StateStore, *, checksum: str, planned_by: str, approvals: list[dict[str, Any]],
                 scope: dict[str, Any], digests: dict[str, Any], by: str) -> None:
        self.store = store
        self.digests = digests
        self.document: dict[str, Any] = {
            "format_version": FORMAT, "id": str(uuid.uuid4()), "environment": store.env.name,
            "server": store.env.server, "started_at": now(), "by": by, "checksum": checksum,
            "planned_by": planned_by, "approvals": approvals, "scope": scope, "writes": [],
        }
        self.written = False
        self.finished = False  # the snapshot holds everything; the journal is removed
        self._unsaved: list[str] = []  # answer lines recorded in memory, not yet in the backend
        self._text = ""  # every line in the backend (an object store's append writes it whole)
        self._whole = True  # False after an append failed: the next save writes the file again whole

    @property
    def id(self) -> str:
        return str(self.document["id"])

    @property
    def writes(self) -> list[dict[str, Any]]:
        return self.document["writes"]  # type: ignore[no-any-return]

    def _save(self, lines: list[str]) -> None:
        """Add ``lines`` (each a JSON object and its newline) with the answers recorded since the last save: the
        first save writes the file whole (atomically: the apply's record and the first request), every later one
        appends."""
        added = "".join(self._unsaved + lines)
        if not self.written:
            head = _encode({"format_version": FORMAT, "event": "start",
                            **{k: v for k, v in self.document.items() if k not in ("format_version", "writes")}})
            text = head + "\n" + added
            self.store.write_journal(text)
        elif not self._whole:
            text = self._text + added
            self.store.write_journal(text)  # over a line a failed append may have left cut short
        else:
            text = self._text + added
            try:
                self.store.append_journal(added, text)
            except BaseException:
                self._whole = False
                raise
        self._text, self._whole, self.written, self._unsaved = text, True, True, []

    def sending(self, description: str, changes: list[Change]) -> dict[str, Any]:
        """Record a write about to be sent, with the answers recorded since the last save. Raises StateError when
        it cannot be recorded: then it must not be sent."""
        global _last
        _last = self
        entry = {"n": len(self.writes) + 1, "description": description, "state": "sent", "sent_at": now(),
                 "changes": [_record(c, self.digests) for c in changes]}
        self._save([_encode({"event": "sent", **{k: v for k, v in entry.items() if k != "state"}}) + "\n"])
        self.writes.append(entry)
        return entry

    def answered(self, entry: dict[str, Any], ok: bool, error: str | None = None,
                 assigned: dict[str, str] | None = None) -> None:
        """Record the server's answer to a write, in memory: the next :meth:`sending` or :meth:`settle` saves it
        (an interrupted run still reports it, see :func:`interrupted_report`); ``assigned``: the ids the server gave
        the objects the write created, by address."""
        entry["state"] = "applied" if ok else "failed"
        entry["answered_at"] = now()
        if error:
            entry["error"] = error
        if assigned:
            entry["assigned"] = dict(assigned)
        answer = {"event": "answered", "n": entry["n"], "state": entry["state"], "answered_at": entry["answered_at"],
                  **({"error": error} if error else {}), **({"assigned": dict(assigned)} if assigned else {})}
        self._unsaved.append(_encode(answer) + "\n")

    def settle(self) -> None:
        """Save the answers recorded since the last save (after the last write, before the snapshot). Raises
        StateError when the backend cannot take it: the journal then says "sent" for those writes."""
        if self._unsaved:
            self._save([])

    def finish(self) -> None:
        """The snapshot now holds everything: the journal is no longer needed."""
        if self.written:
            self.store.delete_journal()
        self.finished = True

    def interrupted_message(self) -> str:
        """What reached the server, for the one line an interrupted apply prints."""
        applied = [c["id"] for w in self.writes if w["state"] == "applied" for c in w["changes"]]
        unknown = [c["id"] for w in self.writes if w["state"] == "sent" for c in w["changes"]]
        failed = [c["id"] for w in self.writes if w["state"] == "failed" for c in w["changes"]]
        name = self.store.env.name
        if not self.writes:
            return f"apply to '{name}' interrupted before anything was sent; nothing was changed"
        parts = [f"applied {', '.join(applied)}" if applied else "applied nothing"]
        if failed:
            parts.append(f"{', '.join(failed)} failed")
        if unknown:
            parts.append(f"{', '.join(unknown)} unknown (sent, no answer seen)")
        where = (f"the state snapshot {self.store.display} records it" if self.finished else
                 f"the write journal {self.store.journal_display} records it")
        return (f"apply to '{name}' interrupted: {'; '.join(parts)}; nothing else was sent. {where[0].upper()}"
                f"{where[1:]}; 'vboplan plan --env {name}' shows what is left")


@dataclass
class Recovery:
    """What an interrupted apply's journal says reached the server, once checked against live values."""

    journal: dict[str, Any]
    applied: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    not_applied: list[str] = field(default_factory=list)
    deposed: list[str] = field(default_factory=list)  # addresses whose old object the server holds beside the new
    # The half of a replace (create or delete) each id of applied and not_applied stands for, where it is one.
    halves: dict[tuple[str, bool], str] = field(default_factory=dict)

    def note(self, change: Change, landed: bool) -> None:
        """Count ``change`` (of a write of the journal) as landed or not, with the half of a replace it is."""
        (self.applied if landed else self.not_applied).append(change.id)
        half = change.action if change.action in ("create", "delete") else \
            ("delete" if change.detail.get("create_before_destroy") else "create") if change.action == "replace" else ""
        if half:
            self.halves[(change.id, landed)] = half

    def describe(self) -> str:
        # A create or a delete is named with its action: of a replace cut short, only one half may have landed.
        def named(ids: list[str], landed: bool) -> str:
            return ", ".join(f"{i} ({self.halves[(i, landed)]})" if (i, landed) in self.halves else i for i in ids)

        parts = [f"{named(self.applied, True) or 'nothing'} reached the server"]
        if self.unknown:
            parts.append(f"{', '.join(self.unknown)} unknown (planned again)")
        if self.not_applied:
            parts.append(f"{named(self.not_applied, False)} did not")
        if self.deposed:
            parts.append(f"the old object of {', '.join(self.deposed)} is still on the server beside the new one "
                         "(deposed): the next plan moves what uses it onto the new one and deletes it")
        return (f"the apply by {self.journal.get('by')} at {self.journal.get('started_at')} was interrupted; its "
                f"write journal says: {'; '.join(parts)}")

    def applied_plan(self) -> dict[str, Any] | None:
        """The snapshot's ``applied_plans`` entry for the plan the interrupted apply carried out, once a write of it
        is known to have landed: that plan file must not apply again (None: nothing landed, or the journal names no
        plan; a plan made afresh with the same content may then apply, as nothing of it reached the server)."""
        digest = self.journal.get("checksum")
        return {"digest": digest, "applied_at": self.journal.get("started_at"), "interrupted": True} \
            if self.applied and isinstance(digest, str) and digest else None

    def last_apply(self) -> dict[str, Any]:
        """The snapshot's ``last_apply`` record for the interrupted apply."""
        journal = self.journal
        entries: dict[str, dict[str, Any]] = {c["id"]: {"id": c["id"], "address": c["address"],
                                                         "action": c["action"]}
                                              for w in journal["writes"] for c in w["changes"]}
        return {"at": journal.get("started_at"), "by": journal.get("by"), "checksum": journal.get("checksum"),
                "planned_by": journal.get("planned_by"), "approvals": journal.get("approvals") or [],
                "applied": [entries[i] for i in self.applied], "unknown": [entries[i] for i in self.unknown],
                "failed": [entries[i] for i in self.not_applied], "skipped": [], "not_attempted": [],
                "interrupted": True, "recovered_at": now(), "journal": journal.get("id"),
                "error": "interrupted; recovered from its write journal"}


def _change(record: dict[str, Any]) -> Change:
    sensitive = bool(record.get("sensitive"))
    # A secret is known by the salted hash the journal holds: what a snapshot keeps of it once it landed.
    secret = Sensitive(None, record["after_digest"]) if sensitive and is_digest(record.get("after_digest")) else None
    return make(record["action"], record["kind"], Address.parse(record["address"]), None,
                secret if sensitive else record.get("after"), sensitive, dict(record.get("detail") or {}),
                record["id"])


def _replaced_ahead(journal: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """By kind, the old objects of the ``create_before_destroy`` replaces whose new object ``journal``'s apply
    created (or sent the create of: a create the server refused made nothing), each as a ``refs.Deposed``: deposed
    where the server still holds them beside the new one (see :func:`vboplan.kinds.refs.depose`)."""
    from vboplan.kinds.refs import Deposed

    found: dict[str, dict[str, Any]] = {}
    for entry in journal.get("writes") or []:
        if not isinstance(entry, dict) or entry.get("state") == "failed":
            continue
        assigned = entry.get("assigned") if isinstance(entry.get("assigned"), dict) else {}
        for record in entry.get("changes") or []:
            old = (record.get("detail") or {}).get("replaces") if isinstance(record, dict) else None
            if record.get("action") == "create" and old:
                address = str(record.get("address"))
                holder, named = assigned.get(address), object_key(address)
                found.setdefault(str(record.get("kind")), {})[str(old)] = Deposed(
                    str(journal.get("id") or ""), str(holder) if holder else None, named[1] if named else None)
    return found


def _is_field_settings(changes: list[Change], recorded: Any) -> bool:
    """A server settings singleton: changes name a field, the snapshot keeps ``values`` and ``secrets``."""
    return all("field" in c.detail and "org" not in c.detail for c in changes) and \
        (recorded is None or (isinstance(recorded, dict) and "values" in recorded))


def fold(journal: dict[str, Any], recorded: dict[str, Any], client: VboClient,
         where: str = "the state snapshot") -> tuple[dict[str, Any], Recovery]:
    """``recorded`` (the snapshot's resources, read from ``where``) with what ``journal`` proves reached the
    server."""
    from vboplan.kinds import refs
    from vboplan.kinds.registry import KINDS

    recovery = Recovery(journal)
    scope = journal.get("scope") or {}
    live: dict[str, Any] = {}
    try:
        refs.depose(client, recorded, _replaced_ahead(journal), where)
    except (AttributeError, TypeError) as exc:
        raise StateError(f"the write journal of '{journal.get('environment')}' is incomplete ({exc!r}); check the "
                         "server, then remove it") from None

    def live_of(kind: str) -> Any:
        if kind not in live:
            live[kind] = KINDS[kind].read(client, scope.get(kind))
        return live[kind]

    confirmed: dict[str, list[Change]] = {}
    try:
        for entry in journal["writes"]:
            changes = [_change(record) for record in entry["changes"] if record.get("kind") in KINDS]
            if not changes:
                continue
            kind = changes[0].kind
            if entry.get("state") == "applied":
                landed = changes
            else:
                checkable = [c for c in changes if not c.sensitive]
                verified = [c for c in checkable if KINDS[kind].verify(c, live_of(kind))]
                landed = changes if checkable and len(verified) == len(checkable) else verified
                recovery.unknown += [c.id for c in changes if c.sensitive and c not in landed]
                for change in (c for c in checkable if c not in verified):
                    recovery.note(change, landed=False)
            for change in landed:
                recovery.note(change, landed=True)
            confirmed.setdefault(kind, []).extend(landed)
    except (KeyError, TypeError, AttributeError) as exc:
        raise StateError(f"the write journal of '{journal.get('environment')}' is incomplete ({exc!r}); check the "
                         "server, then remove it") from None

    resources = dict(recorded)
    for kind, changes in confirmed.items():
        before = resources.get(kind)
        if _is_field_settings(changes, before):
            values = dict((before or {}).get("values", {}))
            secrets = dict((before or {}).get("secrets", {}))
            for change in changes:
                name = change.detail["field"]
                if change.sensitive:
                    record = next(r for w in journal["writes"] for r in w["changes"] if r["id"] == change.id)
                    secrets[name] = record.get("after_digest")
                else:
                    values[name] = change.after
            resources[kind] = {**(before or {}), "values": values, "secrets": secrets}
        else:
            # A secret as the journal's hash of it (a create's password: the new object has it).
            resources[kind] = KINDS[kind].snapshot(live_of(kind), [c for c in changes if not c.sensitive
                                                                   or isinstance(c.after, Sensitive)], before)
    recovery.deposed = [f'{kind}["{key}"]' for kind, record in sorted(resources.items()) if isinstance(record, dict)
                        for key, entries in sorted((record.get("deposed") or {}).items())
                        if any(e.get("journal") == journal.get("id") for e in entries)]
    return resources, recovery


def recorded_resources(store: StateStore, client: VboClient) -> dict[str, Any]:
    """The snapshot's resources, plus what the journal of an interrupted apply proves reached the server (read-only:
    the next apply records it in the snapshot)."""
    import logging

    from vboplan.kinds import refs

    snapshot = store.read()
    resources: dict[str, Any] = snapshot.get("resources", {}) if snapshot else {}
    journal = store.read_journal()
    if journal is not None and not (snapshot and (snapshot.get("last_apply") or {}).get("journal")
                                    == journal.get("id")):
        resources, recovery = fold(journal, resources, client, store.display)
        logging.getLogger("vboplan").warning("environment '%s': %s", store.env.name, recovery.describe())
    refs.depose(client, resources, where=store.display)  # what the reads of this run name deposed
    return resources
