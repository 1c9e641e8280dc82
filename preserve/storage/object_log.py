"""The object's log: events that make no version (an audit, a rejected migration, a new
identification), kept as PREMIS documents in the OCFL object's logs/."""

from __future__ import annotations

import io
from contextlib import suppress

from preserve.domain import ocfl
from preserve.domain.premis import Agent, Event, PremisWriter
from preserve.errors import PreserveError


def store_log_event(storage, object_root: str, aip_id: str, event: Event, label: str,
                    agents: list[Agent] | None = None) -> None:
    """Keep an event that changes no version (an audit, a rejected migration, a new
    identification) as a PREMIS document in the object's logs/, where OCFL puts what is
    not content: `<time>-<label>-<event id>.xml`. A store that cannot be written to
    loses only this copy: the catalog keeps the event whatever happens here."""
    buffer = io.StringIO()
    PremisWriter(buffer, aip_id).finish([event], agents or [])
    stamp = event.datetime.replace(":", "").replace("-", "")
    key = f"{object_root}{ocfl.LOGS}/{stamp}-{label}-{event.identifier}.xml"
    with suppress(PreserveError, OSError):  # logs/ a file or a link: audit names it
        storage.put_bytes(key, buffer.getvalue().encode("utf-8"))
