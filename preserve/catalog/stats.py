"""The repository's figures for its health report (admin/report.py), each one query that
aggregates in the database: a report of 100,000 AIPs and a million files reads no row
into Python that it does not show."""

from __future__ import annotations

# The newest version of each stored AIP: what `list` shows, so the report's totals are its.
# (No newer stored version: a third of the time of a correlated MAX() on PostgreSQL.)
_NEWEST = ("SELECT a.id, a.collection, a.created, v.files, v.bytes, v.title FROM aips a JOIN "
           "versions v ON v.aip_id = a.id AND v.state = 'stored' AND NOT EXISTS (SELECT 1 FROM "
           "versions w WHERE w.aip_id = v.aip_id AND w.state = 'stored' AND w.version > "
           "v.version) WHERE a.state = 'stored'")


class Stats:
    """Report figures: one part of the Catalog (preserve.catalog), on its connection."""

    def as_of(self) -> str | None:
        """The time of the newest thing the catalog records: the report's date, so that
        the same catalog gives the same report."""
        return self.execute(
            "SELECT MAX(t) FROM (SELECT MAX(datetime) AS t FROM events UNION ALL SELECT "
            "MAX(finished) FROM audit_runs UNION ALL SELECT MAX(stored) FROM replicas UNION ALL "
            "SELECT MAX(created) FROM aips WHERE state = 'stored') s").fetchone()[0]

    def collections(self) -> list[tuple[str, int, int, int]]:
        """(collection, AIPs, files, bytes) of the newest versions, by collection."""
        return [tuple(r) for r in self.execute(
            f"SELECT n.collection, COUNT(*), CAST(SUM(n.files) AS BIGINT), "
            f"CAST(SUM(n.bytes) AS BIGINT) FROM ({_NEWEST}) n GROUP BY n.collection "
            "ORDER BY n.collection")]

    def growth(self) -> list[tuple[str, int, int]]:
        """(month, AIPs ingested, their bytes now) by month of ingest."""
        return [tuple(r) for r in self.execute(
            f"SELECT substr(n.created, 1, 7) AS month, COUNT(*), CAST(SUM(n.bytes) AS BIGINT) "
            f"FROM ({_NEWEST}) n GROUP BY month ORDER BY month")]

    def stored_versions(self) -> int:
        return self.execute("SELECT COUNT(*) FROM versions WHERE state = 'stored'").fetchone()[0]

    def copies_per_version(self) -> dict[int, int]:
        """How many stored AIP versions have n recorded copies, for each n (0 included)."""
        rows = self.execute(
            "SELECT COALESCE(c.n, 0) AS copies, COUNT(*) FROM versions v LEFT JOIN (SELECT "
            "aip_id, version, COUNT(*) AS n FROM replicas GROUP BY aip_id, version) c ON "
            "c.aip_id = v.aip_id AND c.version = v.version WHERE v.state = 'stored' "
            "GROUP BY copies ORDER BY copies")
        return {r[0]: r[1] for r in rows}

    def places_per_version(self, place_of: dict[str, str]) -> dict[int, int]:
        """How many stored AIP versions have copies in n distinct places (`place_of`: a
        location's place; a location not in it counts as a place of its own), counted in
        the database."""
        places = " UNION ALL ".join("SELECT ? AS location, ? AS place" for _ in place_of)
        joined = (f"LEFT JOIN ({places}) p ON p.location = r.location" if place_of else "")
        place = "COALESCE(p.place, r.location)" if place_of else "r.location"
        rows = self.execute(
            f"SELECT n, COUNT(*) FROM (SELECT r.aip_id, r.version, COUNT(DISTINCT {place}) "
            f"AS n FROM replicas r {joined} GROUP BY r.aip_id, r.version) c GROUP BY n "
            "ORDER BY n", [x for item in sorted(place_of.items()) for x in item])
        return {r[0]: r[1] for r in rows}

    def file_coverage(self, cutoff: str) -> tuple[int, int]:
        """(replica files, those verified at or after `cutoff`): a file without its own
        check row was verified with its whole replica (replicas.last_audit) or never."""
        row = self.execute(
            "SELECT CAST(COALESCE(SUM(f.n), 0) AS BIGINT), CAST(COALESCE(SUM(CASE WHEN "
            "r.last_audit >= ? THEN f.n - COALESCE(c.old, 0) ELSE COALESCE(c.new, 0) END), 0) "
            "AS BIGINT) FROM replicas r JOIN (SELECT aip_id, version, COUNT(*) AS n FROM files "
            "GROUP BY aip_id, version) f ON f.aip_id = r.aip_id AND f.version = r.version "
            "LEFT JOIN (SELECT aip_id, version, location, SUM(CASE WHEN checked < ? THEN 1 "
            "ELSE 0 END) AS old, SUM(CASE WHEN checked >= ? THEN 1 ELSE 0 END) AS new FROM "
            "file_checks GROUP BY aip_id, version, location) c ON c.aip_id = r.aip_id AND "
            "c.version = r.version AND c.location = r.location", (cutoff, cutoff, cutoff)
        ).fetchone()
        return row[0], min(row[1], row[0])

    def last_audits(self, limit: int = 10) -> list[tuple]:
        """(run, kind, started, finished, status, replicas, files, bytes, problems) of the
        newest finished audit runs, newest first."""
        return [tuple(r) for r in self.execute(
            "SELECT a.id, a.kind, a.started, a.finished, a.status, a.replicas, a.files, "
            "a.bytes, (SELECT COUNT(*) FROM audit_problems p WHERE p.run_id = a.id) FROM "
            "audit_runs a WHERE a.finished IS NOT NULL ORDER BY a.finished DESC, a.id "
            "LIMIT ?", (limit,))]

    def event_counts(self) -> list[tuple[str, str, int]]:
        """(type, outcome, events) of every kind of event recorded."""
        return [tuple(r) for r in self.execute(
            "SELECT type, outcome, COUNT(*) FROM events GROUP BY type, outcome "
            "ORDER BY type, outcome")]

    def events_like(self, kind: str, detail_prefix: str, limit: int = 10) -> list[tuple]:
        """(AIP, datetime, outcome, detail, outcome detail) of the newest events of `kind`
        whose detail starts so (a repair, a restore drill), newest first."""
        return [tuple(r) for r in self.execute(
            "SELECT aip_id, datetime, outcome, detail, outcome_detail FROM events WHERE "
            "type = ? AND detail LIKE ? ORDER BY datetime DESC, seq DESC LIMIT ?",
            (kind, detail_prefix + "%", limit))]

    def count_events_like(self, kind: str, detail_prefix: str) -> tuple[int, int]:
        """(events, failures) of `kind` whose detail starts so."""
        row = self.execute(
            "SELECT COUNT(*), CAST(COALESCE(SUM(CASE WHEN outcome = 'success' THEN 0 ELSE 1 "
            "END), 0) AS BIGINT) FROM events WHERE type = ? AND detail LIKE ?",
            (kind, detail_prefix + "%")).fetchone()
        return row[0], row[1]

    def aips_without_event(self, kind: str) -> int:
        """Stored AIPs with no event of `kind` (e.g. format identification)."""
        return self.execute(
            "SELECT COUNT(*) FROM aips a WHERE a.state = 'stored' AND NOT EXISTS (SELECT 1 "
            "FROM events e WHERE e.aip_id = a.id AND e.type = ?)", (kind,)).fetchone()[0]

    def events_without_agent(self) -> int:
        return self.execute("SELECT COUNT(*) FROM events WHERE agent IS NULL OR agent = ''"
                            ).fetchone()[0]

    def untitled_aips(self) -> int:
        return self.execute(f"SELECT COUNT(*) FROM ({_NEWEST}) n WHERE n.title IS NULL OR "
                            "n.title = ''").fetchone()[0]

    def derivations_count(self) -> int:
        return self.execute("SELECT COUNT(*) FROM derivations").fetchone()[0]

    def log_size(self) -> int:
        """Entries in the event log (signed or about to be)."""
        return self.execute("SELECT COUNT(*) FROM log_entries").fetchone()[0]
