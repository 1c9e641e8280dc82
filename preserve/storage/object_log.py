"""The object's log: events that make no version (an audit, a repair, a rejected
migration, a new identification, a drill), kept as PREMIS documents in the OCFL object's
logs/. OCFL leaves logs/ outside the inventory; the repository's event log
(storage/history.py) names each document and its digest, so an edit is found.

The catalog learns of an event, with the digest of its document, before the document is
written: a document is never in storage without its event in the catalog (which
`log verify` and the audit would call inserted, when another run is between the two)."""

from __future__ import annotations

import hashlib
import io
import json
from contextlib import suppress
from dataclasses import dataclass

from preserve.domain import ocfl
from preserve.domain.model import EventRecord
from preserve.domain.premis import Agent, Event, PremisWriter
from preserve.errors import PreserveError


def event_record(aip_id: str, event: Event, version: int | None,
                 record: str | None = None) -> EventRecord:
    """The catalog's row of a PREMIS event (its first agent named; `record`: where its
    logs/ document is, LogDocument.record)."""
    return EventRecord(event.identifier, aip_id, event.type, event.datetime, event.outcome,
                       event.detail, event.outcome_detail,
                       event.agents[0][0] if event.agents else None, version, record)


@dataclass
class LogDocument:
    """An event's PREMIS document for an object's logs/, made before it is written."""
    storage: object
    key: str
    data: bytes
    record: str  # events.record: the location, the file in the object, its SHA-256


def log_document(storage, object_root: str, aip_id: str, event: Event, label: str,
                 agents: list[Agent] | None = None) -> LogDocument:
    """The document `<time>-<label>-<event id>.xml` and the record naming it."""
    buffer = io.StringIO()
    PremisWriter(buffer, aip_id).finish([event], agents or [])
    data = buffer.getvalue().encode("utf-8")
    stamp = event.datetime.replace(":", "").replace("-", "")
    name = f"{ocfl.LOGS}/{stamp}-{label}-{event.identifier}.xml"
    return LogDocument(storage, object_root + name, data,
                       log_record(storage.name, name, hashlib.sha256(data).hexdigest()))


def write_document(catalog, event_id: str, document: LogDocument) -> bool:
    """Write the document whose event the catalog holds; when the store cannot be written
    to (logs/ a file or a link: audit names it), the catalog's event keeps no record."""
    try:
        document.storage.put_bytes(document.key, document.data)
        return True
    except (PreserveError, OSError):
        with suppress(PreserveError, OSError):
            catalog.clear_event_record(event_id)
        return False


def record_event(repo, storage, object_root: str, aip_id: str, event: Event, label: str,
                 agents: list[Agent] | None = None, version: int | None = None) -> None:
    """An event that changes no version: in the catalog, then in the object's logs/ at
    `storage` (a store that cannot be written to loses only that copy)."""
    document = log_document(storage, object_root, aip_id, event, label, agents)
    repo.catalog.add_events([event_record(aip_id, event, version, document.record)])
    write_document(repo.catalog, event.identifier, document)


def log_record(location: str, name: str, sha256: str) -> str:
    """events.record's text: canonical JSON, as it goes into the event log."""
    return json.dumps({"file": name, "location": location, "sha256": sha256},
                      sort_keys=True, separators=(",", ":"))
