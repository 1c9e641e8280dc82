"""The event log's tables (log_entries, log_checkpoints, log_copies): what joined the log
and in which order, each signed checkpoint, and how far each location was found holding
them. storage/history.py makes the entries and checks the
copies kept in storage against these."""

from __future__ import annotations

from collections.abc import Callable, Iterator

LOGGED = "logged_events"  # the meta row counting the events in the log (log_behind)


def count_logged(db, added: int) -> None:
    db.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = "
               "CAST(CAST(meta.value AS BIGINT) + ? AS TEXT)", (LOGGED, str(added), added))


class EventLog:
    """The event log: one part of the Catalog (preserve.catalog), on its connection."""

    def append_to_log(self, build: Callable[[list[tuple], list[tuple], tuple | None],
                                            tuple[list, tuple]]) -> tuple | None:
        """Add every event not yet in the log, and every change queued for it (log_pending),
        in one transaction. `build(events, changes, last)` gets the pending events (id,
        aip, type, datetime, outcome, detail, outcome_detail, agent, version, record, the
        version's inventory digest, seq) in the order they were recorded (an event of a version
        still being written waits for it to be stored), the queued changes (entry id, AIP,
        JSON body) in their order, and the last checkpoint row (size, root, frontier, note)
        or None; it returns the entries [(position, entry id, AIP, entry text)] and the new
        checkpoint row (size, root, frontier, note). Returns that row, or None when nothing
        was pending. On PostgreSQL, writers of the log take turns (an advisory lock)."""
        with self.advisory_lock("preserve-event-log"), self.transaction() as db:
            pending = db.execute(
                "SELECT e.id, e.aip_id, e.type, e.datetime, e.outcome, e.detail, "
                "e.outcome_detail, e.agent, e.version, e.record, v.inventory_sha512, e.seq "
                "FROM events e LEFT JOIN versions v ON v.aip_id = e.aip_id AND "
                "v.version = e.version WHERE NOT EXISTS (SELECT 1 FROM log_entries l "
                "WHERE l.entry_id = e.id) AND (e.version IS NULL OR v.state = 'stored') "
                "ORDER BY e.seq, e.id").fetchall()
            changes = db.execute("SELECT entry_id, aip_id, body FROM log_pending "
                                 "ORDER BY seq").fetchall()
            if not pending and not changes:
                return None
            last = db.execute("SELECT size, root, frontier, note FROM log_checkpoints "
                              "ORDER BY size DESC LIMIT 1").fetchone()
            entries, checkpoint = build(pending, changes, last)
            db.executemany("INSERT INTO log_entries VALUES (?, ?, ?, ?)", entries)
            db.executemany("DELETE FROM log_pending WHERE entry_id = ?",
                           [(c[0],) for c in changes])
            count_logged(db, len(pending))
            db.execute("INSERT INTO log_checkpoints VALUES (?, ?, ?, ?)", checkpoint)
            return checkpoint

    def log_checkpoints(self, after: int = 0) -> list[tuple[int, str, str]]:
        """(size, root hex, signed note) of every checkpoint (of a size over `after`),
        oldest first."""
        return [tuple(r) for r in self.execute(
            "SELECT size, root, note FROM log_checkpoints WHERE size > ? ORDER BY size",
            (after,))]

    def log_size(self) -> int:
        """The size of the newest checkpoint (0 before the first)."""
        return self.execute("SELECT COALESCE(MAX(size), 0) FROM log_checkpoints").scalar()

    def log_size_before(self, size: int) -> int:
        """The size of the checkpoint before the one of `size` (0 for the first): where
        that one's segment of entries starts."""
        return self.execute("SELECT COALESCE(MAX(size), 0) FROM log_checkpoints WHERE "
                            "size < ?", (size,)).scalar()

    # How far each location was found holding the log (storage/history.py's _copy_log):
    # only ever raised, forgotten where `log verify` finds the copy damaged, and proven by
    # the location before it is trusted.

    def log_copied(self, location: str) -> int | None:
        """The size up to which `location` was found holding every segment and checkpoint,
        or None (never copied by this catalog, or found damaged since)."""
        return self.execute("SELECT size FROM log_copies WHERE location = ?",
                            (location,)).scalar()

    def set_log_copied(self, location: str, size: int) -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO log_copies VALUES (?, ?) ON CONFLICT (location) DO "
                       "UPDATE SET size = CASE WHEN log_copies.size < ? THEN ? ELSE "
                       "log_copies.size END", (location, size, size, size))

    def forget_log_copied(self, location: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM log_copies WHERE location = ?", (location,))

    def log_entries(self, after: int = 0, upto: int | None = None) -> Iterator[tuple[int, str]]:
        """(position, entry text) in order, streamed."""
        if upto is None:
            yield from self.stream("SELECT position, entry FROM log_entries WHERE position > ? "
                                   "ORDER BY position", (after,))
        else:
            yield from self.stream("SELECT position, entry FROM log_entries WHERE position > ? "
                                   "AND position <= ? ORDER BY position", (after, upto))

    def log_entries_of(self, aip_id: str) -> list[str]:
        """The entries of one AIP's events (not its copies' changes), in order: what an
        audit of it checks."""
        return [r[0] for r in self.execute(
            "SELECT l.entry FROM log_entries l JOIN events e ON e.id = l.entry_id WHERE "
            "l.aip_id = ? ORDER BY l.position", (aip_id,))]

    def log_behind(self) -> bool:
        """Whether some event may not be in the log yet (counts compared: cheap enough to
        ask after every command)."""
        return self.execute("SELECT (SELECT COUNT(*) FROM events) > (SELECT COALESCE(MAX("
                            "CAST(value AS BIGINT)), 0) FROM meta WHERE key = ?) OR EXISTS "
                            "(SELECT 1 FROM log_pending)", (LOGGED,)).scalar() in (1, True)

    def unlogged_events(self) -> int:
        """How many events are not yet in the log (a run ended before it signed them)."""
        return self.execute("SELECT COUNT(*) FROM events e WHERE NOT EXISTS (SELECT 1 FROM "
                            "log_entries l WHERE l.entry_id = e.id)").scalar()
