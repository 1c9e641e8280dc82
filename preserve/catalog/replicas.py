"""Replicas: which location holds which version, verified, and one location's listing
compared with the catalog in SQL (temporary tables: on disk past a few MB)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice

from preserve.catalog.database import DIGEST_COLUMNS, insert_events, log_replica, row_digests
from preserve.errors import NotFound


class Replicas:
    """Replicas and listings: one part of the Catalog (preserve.catalog), on its connection."""

    def head_at(self, aip_id: str, location: str) -> int:
        """The highest version of the AIP recorded at `location` (0: none)."""
        return self.execute("SELECT COALESCE(MAX(version), 0) FROM replicas WHERE "
                               "aip_id = ? AND location = ?", (aip_id, location)).fetchone()[0]

    def add_replica(self, aip_id: str, version: int, location: str, key: str, when: str,
                    composites: dict[str, str] | None = None, *,
                    etags_uploaded: bool = False) -> None:
        """Record a copy that has been written and verified (never before), with the
        store's composite checksums of the files it took in parts and, with
        `etags_uploaded`, the ETag each upload was answered with (begin_uploads)."""
        replica = (aip_id, version, location)
        with self.transaction() as db:
            db.execute("INSERT INTO replicas VALUES (?, ?, ?, ?, 'verified', ?, NULL) ON CONFLICT "
                       "(aip_id, version, location) DO UPDATE SET key = excluded.key, state = "
                       "excluded.state, stored = excluded.stored, last_audit = NULL",
                       (*replica, key, when))
            db.execute("DELETE FROM composite_checksums WHERE aip_id = ? AND version = ? AND "
                       "location = ?", replica)
            db.executemany("INSERT INTO composite_checksums VALUES (?, ?, ?, ?, ?)",
                           ((*replica, path, checksum)
                            for path, checksum in (composites or {}).items()))
            db.execute("DELETE FROM stored_etags WHERE aip_id = ? AND version = ? AND "
                       "location = ?", replica)
            if etags_uploaded:
                db.execute("INSERT INTO stored_etags SELECT ?, ?, ?, path, etag FROM uploaded",
                           replica)
            log_replica(db, replica, "stored", key=key, stored=when,
                        composites=sorted([p, c] for p, c in (composites or {}).items()))

    # -- what an object store answered (stored_etags) -------------------------------------

    def begin_uploads(self) -> None:
        """A scratch table for the ETag each upload of one copy is answered with: compared
        with the listing after the copy, kept by add_replica (bounded memory: on disk)."""
        self.execute("CREATE TEMP TABLE IF NOT EXISTS uploaded (path TEXT PRIMARY KEY, "
                     "etag TEXT NOT NULL)")
        self.execute("DELETE FROM uploaded")

    def note_uploads(self, rows: list[tuple[str, str]]) -> None:
        """(path in the version, ETag) of objects just uploaded and verified."""
        self.executemany("INSERT INTO uploaded VALUES (?, ?) ON CONFLICT (path) DO UPDATE SET "
                         "etag = excluded.etag", rows)

    def uploads_changed(self) -> list[tuple[str, str, str]]:
        """(path, ETag at upload, ETag listed) of objects the listing shows with another
        ETag than their upload was answered with: written again by someone since."""
        return [tuple(r) for r in self.execute(
            "SELECT u.path, u.etag, l.etag FROM uploaded u JOIN listing l ON l.path = u.path "
            "WHERE l.etag IS NOT NULL AND l.etag != u.etag ORDER BY u.path")]

    def learn_etags(self, aip_id: str, version: int, location: str,
                    rows: list[tuple[str, str | None]]) -> None:
        """(path, ETag) of objects just verified at `location` (an audit, a repair); an
        ETag of None forgets the path's (it was written and not yet verified)."""
        with self.transaction() as db:
            for path, etag in rows:
                db.execute("DELETE FROM stored_etags WHERE aip_id = ? AND version = ? AND "
                           "location = ? AND path = ?", (aip_id, version, location, path))
                if etag:
                    db.execute("INSERT INTO stored_etags VALUES (?, ?, ?, ?, ?)",
                               (aip_id, version, location, path, etag))

    def stored_etag(self, aip_id: str, version: int, location: str, path: str) -> str | None:
        """The ETag recorded for `path` of the replica; an object root's file ("/...") was
        last written with the newest version up to `version`."""
        if path.startswith("/"):
            row = self.execute("SELECT etag FROM stored_etags WHERE aip_id = ? AND version <= ? "
                               "AND location = ? AND path = ? ORDER BY version DESC LIMIT 1",
                               (aip_id, version, location, path)).fetchone()
        else:
            row = self.execute("SELECT etag FROM stored_etags WHERE aip_id = ? AND version = ? "
                               "AND location = ? AND path = ?",
                               (aip_id, version, location, path)).fetchone()
        return row[0] if row else None

    def remove_replicas(self, aip_id: str, location: str, event) -> list[int]:
        """Forget every copy of the AIP at `location` (its files were removed and found
        gone: `storage migrate --retire`), with the event that says so, in one transaction;
        the versions it held."""
        with self.transaction() as db:
            versions = [r[0] for r in db.execute(
                "SELECT version FROM replicas WHERE aip_id = ? AND location = ? ORDER BY "
                "version", (aip_id, location))]
            for table in ("file_checks", "composite_checksums", "stored_etags", "replicas"):
                db.execute(f"DELETE FROM {table} WHERE aip_id = ? AND location = ?",
                           (aip_id, location))
            for version in versions:
                log_replica(db, (aip_id, version, location), "removed")
            insert_events(db, [event])
        return versions

    def versions_at(self, aip_id: str, location: str) -> list[int]:
        return [r[0] for r in self.execute(
            "SELECT version FROM replicas WHERE aip_id = ? AND location = ? ORDER BY version",
            (aip_id, location))]

    def held_at(self, location: str) -> list[tuple[str, int, int]]:
        """(AIP, version, bytes) of every copy recorded at `location`."""
        return [tuple(r) for r in self.execute(
            "SELECT r.aip_id, r.version, v.bytes FROM replicas r JOIN versions v ON "
            "v.aip_id = r.aip_id AND v.version = r.version WHERE r.location = ? "
            "ORDER BY r.aip_id, r.version", (location,))]

    def replica_count(self, location: str) -> int:
        return self.execute("SELECT COUNT(*) FROM replicas WHERE location = ?",
                            (location,)).fetchone()[0]

    def set_composite_checksum(self, aip_id: str, version: int, location: str, path: str,
                               checksum: str | None) -> None:
        """After a file was written again (repair): its composite checksum, or none."""
        with self.transaction() as db:
            db.execute("DELETE FROM composite_checksums WHERE aip_id = ? AND version = ? AND "
                       "location = ? AND path = ?", (aip_id, version, location, path))
            if checksum:
                db.execute("INSERT INTO composite_checksums VALUES (?, ?, ?, ?, ?)",
                           (aip_id, version, location, path, checksum))
            log_replica(db, (aip_id, version, location), "composite", path=path,
                        checksum=checksum)

    def composite_checksum(self, aip_id: str, version: int, location: str,
                           path: str) -> str | None:
        row = self.execute("SELECT checksum FROM composite_checksums WHERE aip_id = ? AND "
                              "version = ? AND location = ? AND path = ?",
                              (aip_id, version, location, path)).fetchone()
        return row[0] if row else None

    def versions_without_replica(self, location: str) -> list[tuple[str, int]]:
        """Stored AIP versions that have no verified copy at `location`, oldest first (an
        AIP's versions in order: each is written on the one before)."""
        rows = self.execute(
            "SELECT v.aip_id, v.version FROM versions v JOIN aips a ON a.id = v.aip_id "
            "WHERE a.state = 'stored' AND v.state = 'stored' AND NOT EXISTS (SELECT 1 FROM replicas r WHERE "
            "r.aip_id = v.aip_id AND r.version = v.version AND r.location = ? "
            "AND r.state = 'verified') ORDER BY a.created, v.aip_id, v.version", (location,))
        return [(r[0], r[1]) for r in rows]

    def replica_summary(self) -> dict[str, tuple[int, int]]:
        """Per location: (AIP versions held, bytes held)."""
        rows = self.execute(
            "SELECT r.location, COUNT(*), CAST(COALESCE(SUM(v.bytes), 0) AS BIGINT) FROM replicas r JOIN "
            "versions v ON v.aip_id = r.aip_id AND v.version = r.version GROUP BY r.location")
        return {r[0]: (r[1], r[2]) for r in rows}

    def exposure(self, copies: int) -> dict[str, tuple[int, int, str | None]]:
        """Per location: AIP versions whose only verified copy is there, those held there
        with fewer verified copies than `copies`, and when its least recently verified
        copy was last verified whole (or stored)."""
        rows = self.execute(
            "SELECT r.location, CAST(SUM(CASE WHEN c.n = 1 THEN 1 ELSE 0 END) AS BIGINT), "
            "CAST(SUM(CASE WHEN c.n < ? THEN 1 ELSE 0 END) AS BIGINT), "
            "MIN(COALESCE(r.last_audit, r.stored)) FROM replicas r JOIN (SELECT aip_id, "
            "version, COUNT(*) AS n FROM replicas WHERE state = 'verified' GROUP BY aip_id, "
            "version) c ON c.aip_id = r.aip_id AND c.version = r.version "
            "WHERE r.state = 'verified' GROUP BY r.location", (copies,))
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    def replicas(self) -> list[tuple[str, int, str, str]]:
        """(AIP, version, location, key) of every recorded replica (one row per copy)."""
        return [tuple(r) for r in self.execute(
            "SELECT aip_id, version, location, key FROM replicas ORDER BY location, aip_id, "
            "version")]

    def replica_locations(self, aip_id: str, version: int) -> list[str]:
        return [r[0] for r in self.execute(
            "SELECT location FROM replicas WHERE aip_id = ? AND version = ? ORDER BY location",
            (aip_id, version))]

    def replica_key(self, aip_id: str, version: int, location: str) -> str:
        row = self.execute("SELECT key FROM replicas WHERE aip_id = ? AND version = ? AND "
                              "location = ?", (aip_id, version, location)).fetchone()
        if row is None:
            raise NotFound(f"AIP {aip_id} v{version} has no replica at {location}")
        return row[0]

    def replica_stored(self, aip_id: str, version: int, location: str) -> str | None:
        """When the replica was written and verified (ISO 8601, UTC)."""
        row = self.execute("SELECT stored FROM replicas WHERE aip_id = ? AND version = ? AND "
                           "location = ?", (aip_id, version, location)).fetchone()
        return row[0] if row else None

    def load_listing(self, objects: Iterable[tuple[str, int, str | None]]) -> None:
        """Keep a replica's listing (path in the bag, size, the store's ETag or None) for
        the comparisons below, so that auditing an AIP of millions of files holds none of
        them in memory."""
        self.execute("CREATE TEMP TABLE IF NOT EXISTS listing (path TEXT PRIMARY KEY, "
                      "size BIGINT NOT NULL, etag TEXT)")
        self.execute("DELETE FROM listing")
        it = iter(objects)
        while chunk := list(islice(it, 1000)):  # a constant few hundred KB
            self.executemany("INSERT INTO listing VALUES (?, ?, ?) ON CONFLICT (path) DO "
                              "UPDATE SET size = excluded.size, etag = excluded.etag", chunk)

    def listed_size(self, path: str) -> int | None:
        row = self.execute("SELECT size FROM listing WHERE path = ?", (path,)).fetchone()
        return row[0] if row else None

    def listed_etag(self, path: str) -> str | None:
        row = self.execute("SELECT etag FROM listing WHERE path = ?", (path,)).fetchone()
        return row[0] if row else None

    def listed_not_catalogued(self, aip_id: str, version: int) -> list[tuple[str, int]]:
        """Listed files that are not payload of record: the tag files, and anything
        unexpected (few, unless that is the damage)."""
        return [tuple(r) for r in self.execute(
            "SELECT l.path, l.size FROM listing l WHERE NOT EXISTS (SELECT 1 FROM files f "
            "WHERE f.aip_id = ? AND f.version = ? AND f.path = l.path) ORDER BY l.path",
            (aip_id, version))]

    def every_nth_path(self, aip_id: str, version: int, n: int) -> list[str]:
        """Every `n`-th path of the files a version added (none for a version of fewer):
        where a listing of its copy in an object store is cut into ranges."""
        return [r[0] for r in self.execute(
            "SELECT path FROM (SELECT path, ROW_NUMBER() OVER (ORDER BY path) AS n FROM files "
            "WHERE aip_id = ? AND version = ?) numbered WHERE n % ? = 0 ORDER BY n",
            (aip_id, version, n))]

    def payload_not_listed_as_recorded(self, aip_id: str,
                                       version: int) -> list[tuple[str, int, int | None]]:
        """(path, recorded size, listed size or None) of payload files missing or of
        another size at the replica."""
        return [tuple(r) for r in self.execute(
            "SELECT f.path, f.size, l.size FROM files f LEFT JOIN listing l ON "
            "l.path = f.path WHERE f.aip_id = ? AND f.version = ? AND "
            "(l.size IS NULL OR l.size != f.size) ORDER BY f.path", (aip_id, version))]

    def stage_payload_checks(self, aip_id: str, version: int,
                             location: str | None = None) -> tuple[int, int]:
        """Queue the payload files listed with their recorded size, biggest first (so both
        cores finish together); with `location`, each marked when the listing gives the
        ETag recorded for it there. Returns (files, bytes)."""
        self.execute("CREATE TEMP TABLE IF NOT EXISTS tocheck (seq BIGINT PRIMARY KEY, "
                      "path TEXT NOT NULL, size BIGINT NOT NULL, sha256 TEXT, sha512 TEXT, "
                      "xxh3_128 TEXT, same_etag INTEGER NOT NULL DEFAULT 0)")
        self.execute("DELETE FROM tocheck")
        self.execute(
            "INSERT INTO tocheck (seq, path, size, sha256, sha512, xxh3_128, same_etag) SELECT "
            "ROW_NUMBER() OVER (ORDER BY f.size DESC, f.path), f.path, "
            "f.size, f.sha256, f.sha512, f.xxh3_128, CASE WHEN s.etag IS NOT NULL AND "
            "s.etag = l.etag THEN 1 ELSE 0 END FROM files f JOIN listing l ON "
            "l.path = f.path AND l.size = f.size LEFT JOIN stored_etags s ON "
            "s.aip_id = f.aip_id AND s.version = f.version AND s.location = ? AND "
            "s.path = f.path WHERE f.aip_id = ? AND f.version = ? "
            "ORDER BY f.size DESC, f.path", (location or "", aip_id, version))
        return tuple(self.execute("SELECT COUNT(*), CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM tocheck")
                     .fetchone())

    def staged_payload_checks(self, chunk: int = 5_000
                              ) -> Iterator[tuple[str, int, dict, bool]]:
        """(path, size, recorded digests, listed with its recorded ETag) of the queued
        files, a chunk at a time (no statement stays open while results are committed)."""
        last = 0
        while True:
            rows = self.execute(f"SELECT seq, path, size, same_etag, {', '.join(DIGEST_COLUMNS)} "
                                   "FROM tocheck WHERE seq > ? ORDER BY seq LIMIT ?",
                                   (last, chunk)).fetchall()
            if not rows:
                return
            for _seq, path, size, same_etag, *digests in rows:
                yield path, size, row_digests(digests), bool(same_etag)
            last = rows[-1][0]
