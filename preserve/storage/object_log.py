"""The object's log: events that make no version (an audit, a repair, a rejected
migration, a new identification, a drill), kept as PREMIS documents in the OCFL object's
logs/. OCFL leaves logs/ outside the inventory; the repository's event log
(storage/history.py) names each document and its digest, so an edit is found."""

from __future__ import annotations

import hashlib
import io
import json

from preserve.domain import ocfl
from preserve.domain.premis import Agent, Event, PremisWriter
from preserve.errors import PreserveError


def store_log_event(storage, object_root: str, aip_id: str, event: Event, label: str,
                    agents: list[Agent] | None = None) -> str | None:
    """Keep an event that changes no version as a PREMIS document in the object's logs/,
    where OCFL puts what is not content: `<time>-<label>-<event id>.xml`. Returns the
    record the catalog and the event log keep of it (events.record: the location, the
    file in the object, its SHA-256), or None when the store could not be written to: the
    catalog keeps the event whatever happens here, and the log says it has no record."""
    buffer = io.StringIO()
    PremisWriter(buffer, aip_id).finish([event], agents or [])
    data = buffer.getvalue().encode("utf-8")
    stamp = event.datetime.replace(":", "").replace("-", "")
    name = f"{ocfl.LOGS}/{stamp}-{label}-{event.identifier}.xml"
    try:
        storage.put_bytes(object_root + name, data)
    except (PreserveError, OSError):  # logs/ a file or a link: audit names it
        return None
    return log_record(storage.name, name, hashlib.sha256(data).hexdigest())


def log_record(location: str, name: str, sha256: str) -> str:
    """events.record's text: canonical JSON, as it goes into the event log."""
    return json.dumps({"file": name, "location": location, "sha256": sha256},
                      sort_keys=True, separators=(",", ":"))
