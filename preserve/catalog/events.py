"""PREMIS events as the catalog indexes them (each is also in its AIP's PREMIS record or
its object's logs/)."""

from __future__ import annotations

from preserve.catalog.database import insert_events
from preserve.domain.model import EventRecord


class Events:
    """Events: one part of the Catalog (preserve.catalog), on its connection."""

    def add_events(self, events: list[EventRecord]) -> None:
        with self.transaction() as db:
            insert_events(db, events)

    def clear_event_record(self, event_id: str) -> None:
        """The event's logs/ document could not be written: it has none."""
        with self.transaction() as db:
            db.execute("UPDATE events SET record = NULL WHERE id = ?", (event_id,))

    def event_record_of(self, event_id: str) -> str | None:
        """Where the event's logs/ document is (events.record), None if no such event."""
        row = self.execute("SELECT record FROM events WHERE id = ?", (event_id,)).fetchone()
        return row[0] if row else None

    def has_event(self, event_id: str) -> bool:
        return self.execute("SELECT 1 FROM events WHERE id = ?", (event_id,)).fetchone() \
            is not None

    def events(self, aip_id: str) -> list[EventRecord]:
        rows = self.execute("SELECT id, aip_id, type, datetime, outcome, detail, "
                               "outcome_detail, agent, version FROM events WHERE aip_id = ? "
                               "ORDER BY datetime, seq", (aip_id,))
        return [EventRecord(*r) for r in rows]

    def migration_attempts(self) -> dict[str, list[tuple[str, str]]]:
        """(detail, outcome) of every migration event not a success, per AIP, oldest
        first: what `formats` reports of files still to migrate."""
        out: dict[str, list[tuple[str, str]]] = {}
        for aip_id, detail, outcome in self.execute(
                "SELECT aip_id, detail, outcome FROM events WHERE type = 'migration' AND "
                "outcome <> 'success' ORDER BY seq"):
            out.setdefault(aip_id, []).append((detail, outcome))
        return out
