"""The object's log: events that make no version (an audit, a repair, a rejected
migration, a new identification, a drill), kept as PREMIS documents in the OCFL object's
logs/. OCFL leaves logs/ outside the inventory; the repository's event log
(storage/history.py) names each document and its digest, so an edit is found.

The catalog learns of an event, with the digest of its document, before the document is
written: a document is never in storage without its event in the catalog (which
`log verify` and the audit would call inserted, when another run is between the two).
The document itself is first kept in the repository's staging folder (an intent, synced),
so that a run killed between the catalog and the store leaves what the next run writes
(complete_documents), never an event whose document is missing for good."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import uuid
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

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
    intent: Path | None = None  # the document kept in staging until it is written


# "logdoc-<pid>-<hex>.json" in the repository's staging folder: a document to write
INTENT = "logdoc-"
_INTENT_NAME = re.compile(re.escape(INTENT) + r"([0-9]+)-[0-9a-f]+\.json")


def log_document(storage, object_root: str, aip_id: str, event: Event, label: str,
                 agents: list[Agent] | None = None, *, staging: Path | None = None,
                 more_events: str = "") -> LogDocument:
    """The document `<time>-<label>-<event id>.xml` and the record naming it; with
    `staging` (the repository's), kept there first (see the module). `more_events`:
    events already rendered (premis.event_xml) that the document carries after `event`
    (validate-files: one per file checked)."""
    buffer = io.StringIO()
    PremisWriter(buffer, aip_id).finish([event], agents or [],
                                        more_events=io.StringIO(more_events))
    data = buffer.getvalue().encode("utf-8")
    stamp = event.datetime.replace(":", "").replace("-", "")
    name = f"{ocfl.LOGS}/{stamp}-{label}-{event.identifier}.xml"
    document = LogDocument(storage, object_root + name, data,
                           log_record(storage.name, name, hashlib.sha256(data).hexdigest()))
    if staging is not None:
        document.intent = _keep(staging, event.identifier, document)
    return document


def _keep(staging: Path, event_id: str, document: LogDocument) -> Path:
    staging.mkdir(parents=True, exist_ok=True)
    path = staging / f"{INTENT}{os.getpid()}-{uuid.uuid4().hex[:16]}.json"
    with open(path, "x", encoding="utf-8") as f:
        json.dump({"event": event_id, "location": document.storage.name, "key": document.key,
                   "record": document.record,
                   "data": base64.b64encode(document.data).decode("ascii")}, f)
        f.flush()
        os.fsync(f.fileno())
    return path


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
    finally:
        if document.intent is not None:
            document.intent.unlink(missing_ok=True)


def owner_gone_intent(name: str) -> bool:
    """Whether the run that kept this intent has ended."""
    from preserve.system.locks import pid_alive

    match = _INTENT_NAME.fullmatch(name)
    return match is not None and not pid_alive(int(match.group(1)))


def complete_documents(repo) -> list[str]:
    """Write the documents of events that runs since ended recorded in the catalog but
    never wrote (a kill between the two); forget those whose event never was recorded.
    A line for each written."""
    done = []
    try:
        names = sorted(os.listdir(repo.staging))
    except OSError:
        return done
    for name in names:
        if not owner_gone_intent(name):
            continue
        path = repo.staging / name
        try:
            intent = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # killed while it was being written: no event yet
            path.unlink(missing_ok=True)
            continue
        storage = repo.locations.get(intent["location"])
        if storage is not None and repo.catalog.event_record_of(intent["event"]) == \
                intent["record"]:
            document = LogDocument(storage, intent["key"], base64.b64decode(intent["data"]),
                                   intent["record"], path)
            if write_document(repo.catalog, intent["event"], document):
                done.append(f"wrote {intent['key']} at '{storage.name}', the record of an "
                            "event an interrupted run had recorded")
        path.unlink(missing_ok=True)
    return done


def record_event(repo, storage, object_root: str, aip_id: str, event: Event, label: str,
                 agents: list[Agent] | None = None, version: int | None = None, *,
                 more_events: str = "", documents: DocumentWriter | None = None) -> None:
    """An event that changes no version: in the catalog, then in the object's logs/ at
    `storage` (a store that cannot be written to loses only that copy); by `documents`,
    where given, while the caller goes on."""
    document = log_document(storage, object_root, aip_id, event, label, agents,
                            staging=repo.staging, more_events=more_events)
    try:
        repo.catalog.add_events([event_record(aip_id, event, version, document.record)])
    except BaseException:
        document.intent.unlink(missing_ok=True)
        raise
    if documents is None:
        write_document(repo.catalog, event.identifier, document)
    else:
        documents.write(event.identifier, document)


class DocumentWriter:
    """Event documents written several at once, each a round trip to an object store,
    while the thread that owns the catalog records the next events (repair: two per file
    restored). Safe as write_document is: the event is in the catalog and the document
    kept in staging before it is written; a document the store refused has its event's
    record cleared here, in the catalog's thread; a kill leaves what complete_documents
    writes."""

    def __init__(self, catalog, threads: int):
        self.catalog = catalog
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="logdoc")
        self._pending: deque[tuple[str, LogDocument, Future]] = deque()
        self._most = threads * 4

    def write(self, event_id: str, document: LogDocument) -> None:
        self._pending.append((event_id, document, self._pool.submit(_stored, document)))
        self.settle(wait=len(self._pending) > self._most)

    def settle(self, wait: bool = False) -> None:
        """The writes ended (with `wait`, the oldest waited for)."""
        while self._pending and (wait or self._pending[0][2].done()):
            event_id, document, future = self._pending.popleft()
            wait = False
            if not future.result():
                with suppress(PreserveError, OSError):
                    self.catalog.clear_event_record(event_id)
                if document.intent is not None:
                    document.intent.unlink(missing_ok=True)

    def close(self) -> None:
        """Every write ended (on the way out of a failure too)."""
        self._pool.shutdown(wait=True)
        while self._pending:
            self.settle(wait=True)


def _stored(document: LogDocument) -> bool:
    """Write the document (DocumentWriter's threads); its intent goes once it is written."""
    try:
        document.storage.put_bytes(document.key, document.data)
    except (PreserveError, OSError):
        return False
    if document.intent is not None:
        document.intent.unlink(missing_ok=True)
    return True


def log_record(location: str, name: str, sha256: str) -> str:
    """events.record's text: canonical JSON, as it goes into the event log."""
    return json.dumps({"file": name, "location": location, "sha256": sha256},
                      sort_keys=True, separators=(",", ":"))
