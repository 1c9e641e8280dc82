"""AIPs and their versions: the ingest protocol (staging rows, then stored), the rows every
OCFL inventory is written from, and reading AIPs back by id or collection."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from preserve.catalog.database import (
    DIGEST_COLUMNS,
    IN_STATE,
    PAYLOAD,
    insert_events,
    like_prefix,
    log_replica,
    row_digests,
)
from preserve.domain.model import AipSummary, EventRecord, FileRecord
from preserve.domain.ocfl import VersionRecord, content_path
from preserve.errors import NotFound


class Aips:
    """AIPs and versions: one part of the Catalog (preserve.catalog), on its connection."""

    def begin_aip(self, aip_id: str, collection: str, title: str | None, created: str,
                  source: str, source_kind: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO aips VALUES (?, ?, ?, 'staging', ?, ?, ?)",
                       (aip_id, collection, title, created, source, source_kind))

    def add_files(self, aip_id: str, version: int, files: Iterable[FileRecord]) -> None:
        rows = ((aip_id, version, f.path, f.size, f.digests.get("sha256"),
                 f.digests.get("sha512"), f.digests.get("xxh3_128"), f.puid, f.format,
                 f.format_version, f.mime, f.basis, f.warning, f.confidence, f.magic_mime,
                 f.magic_description) for f in files)
        with self.transaction() as db:
            if self.server:  # COPY: PostgreSQL's bulk path, twice executemany's rate
                with self.conn.cursor() as cursor, cursor.copy("COPY files FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                db.executemany(f"INSERT INTO files VALUES ({', '.join('?' * 16)})", rows)

    def stage_version(self, aip_id: str, version: int, record: VersionRecord, files: int,
                      nbytes: int, oxum: str, tagmanifest: str, tagmanifest_sha256: str,
                      inventory_sha512: str, events: list[EventRecord], *,
                      title: str | None = None,
                      derivations: Iterable[tuple[str, str, str, str]] = (),
                      rights: Iterable[tuple[str, str, str]] = ()) -> None:
        """Record a finished version before it is published; it stays invisible until
        mark_stored. `title`: the bag's Title, as of this version; `derivations`: (source,
        derivative, rule, event id) of each file a migration added; `rights`: (statement
        id, recorded, JSON) of each rights statement it records."""
        with self.transaction() as db:
            db.execute("INSERT INTO versions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                       "'staging')",
                       (aip_id, version, record.created, files, nbytes, oxum, tagmanifest,
                        tagmanifest_sha256, inventory_sha512, record.message,
                        record.user_name, record.user_address, title))
            if version == 1:  # the AIP was made when its first version was: as stored
                db.execute("UPDATE aips SET created = ? WHERE id = ?", (record.created, aip_id))
            insert_events(db, events)
            db.executemany("INSERT INTO derivations VALUES (?, ?, ?, ?, ?, ?)",
                           [(aip_id, version, *d) for d in derivations])
            db.executemany("INSERT INTO rights_statements VALUES (?, ?, ?, ?, ?)",
                           [(aip_id, version, *r) for r in rights])

    def mark_stored(self, aip_id: str, version: int, location: str, key: str, when: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO replicas VALUES (?, ?, ?, ?, 'verified', ?, NULL)",
                       (aip_id, version, location, key, when))
            log_replica(db, (aip_id, version, location), "stored", key=key, stored=when,
                        composites=[])
            db.execute("UPDATE versions SET state = 'stored' WHERE aip_id = ? AND version = ?",
                       (aip_id, version))
            db.execute("UPDATE aips SET state = 'stored' WHERE id = ?", (aip_id,))

    def pending_versions(self) -> list[tuple[str, int]]:
        """Versions after the first whose writing did not finish (crash, kill)."""
        return [tuple(r) for r in self.execute(
            "SELECT v.aip_id, v.version FROM versions v JOIN aips a ON a.id = v.aip_id "
            "WHERE a.state = 'stored' AND v.state = 'staging' ORDER BY v.aip_id, v.version")]

    def discard_version(self, aip_id: str, version: int) -> None:
        """Forget a version that never reached storage whole (its rows only)."""
        with self.transaction() as db:
            row = db.execute("SELECT state FROM versions WHERE aip_id = ? AND version = ?",
                             (aip_id, version)).fetchone()
            if row is None or row[0] != "staging":
                return
            for table in ("files", "file_validations", "events", "replicas", "file_checks",
                          "composite_checksums", "stored_etags", "derivations",
                          "rights_statements"):
                db.execute(f"DELETE FROM {table} WHERE aip_id = ? AND version = ?",
                           (aip_id, version))
            db.execute("DELETE FROM versions WHERE aip_id = ? AND version = ?",
                       (aip_id, version))

    def version_records(self, aip_id: str, head: int) -> list[VersionRecord]:
        return [VersionRecord(*r) for r in self.execute(
            "SELECT version, created, message, user_name, user_address FROM versions "
            "WHERE aip_id = ? AND version <= ? ORDER BY version", (aip_id, head))]

    def manifest_rows(self, aip_id: str, head: int,
                      algorithm: str = "sha512") -> Iterator[tuple[str, str]]:
        """(digest, content path) of every content file up to `head`, by digest."""
        column = {"sha512": "sha512", "sha256": "sha256"}[algorithm]
        for digest, version, path in self.stream(
                f"SELECT {column}, version, path FROM files WHERE aip_id = ? AND version <= ? "
                f"ORDER BY {column}, version, path", (aip_id, head)):
            yield digest, content_path(version, path)

    def state_rows(self, aip_id: str, version: int) -> Iterator[tuple[str, str]]:
        """(sha512, bag path) of every file of the bag of `version`, by digest."""
        yield from self.stream(f"SELECT f.sha512, f.path FROM files f WHERE {IN_STATE} "
                                   "ORDER BY f.sha512, f.path", (aip_id, version))

    def holds(self, aip_id: str, version: int, path: str) -> bool:
        """Whether the bag of `version` has a file at `path` (nothing is ever removed)."""
        return self.execute("SELECT 1 FROM files WHERE aip_id = ? AND path = ? AND "
                               "version <= ? LIMIT 1", (aip_id, path, version)).fetchone() \
            is not None

    def orphan_versions(self) -> list[tuple[str, int]]:
        """(AIP, version) of a stored AIP's content rows whose version was never staged: a
        run killed between recording a version's files and the version itself, or one
        still writing (its staging lock says which)."""
        return [tuple(r) for r in self.execute(
            "SELECT DISTINCT aip_id, version FROM files WHERE aip_id IN (SELECT id FROM aips "
            "WHERE state = 'stored') AND NOT EXISTS (SELECT 1 FROM versions v WHERE "
            "v.aip_id = files.aip_id AND v.version = files.version) ORDER BY 1, 2")]

    def discard_orphan_rows(self, aip_id: str, version: int) -> int:
        """The content rows of one orphan version (orphan_versions), unless it was staged
        meanwhile."""
        with self.transaction() as db:
            return db.execute(
                "DELETE FROM files WHERE aip_id = ? AND version = ? AND NOT EXISTS (SELECT 1 "
                "FROM versions v WHERE v.aip_id = files.aip_id AND v.version = "
                "files.version)", (aip_id, version)).rowcount

    def state_files(self, aip_id: str, version: int, *,
                    tags_only: bool = False) -> Iterator[tuple[str, int, int, dict]]:
        """(bag path, version holding its content, size, digests) of every file of the bag
        of `version` (or of its tag files only), by path: what export writes out."""
        tags = f" AND NOT {PAYLOAD}" if tags_only else ""
        for path, held_in, size, *digests in self.stream(
                f"SELECT f.path, f.version, f.size, {', '.join('f.' + c for c in DIGEST_COLUMNS)} "
                f"FROM files f WHERE {IN_STATE}{tags} ORDER BY f.path", (aip_id, version)):
            yield path, held_in, size, row_digests(digests)

    def versions_of(self, aip_id: str) -> list[dict]:
        """Every stored version: number, date, agent, message, and what it added."""
        rows = self.execute(
            "SELECT v.version, v.created, v.user_name, v.user_address, v.message, v.files, "
            "v.bytes, (SELECT COUNT(*) FROM files f WHERE f.aip_id = v.aip_id AND "
            "f.version = v.version), (SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM files f WHERE "
            "f.aip_id = v.aip_id AND f.version = v.version), v.inventory_sha512 FROM versions v "
            "WHERE v.aip_id = ? AND v.state = 'stored' ORDER BY v.version", (aip_id,))
        keys = ("version", "created", "user", "address", "message", "files", "bytes",
                "files_added", "bytes_added", "inventory_sha512")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def discard_aip(self, aip_id: str) -> None:
        with self.transaction() as db:
            row = db.execute("SELECT state FROM aips WHERE id = ?", (aip_id,)).fetchone()
            if row is None or row[0] != "staging":
                return
            for table in ("files", "file_validations", "versions", "events", "replicas",
                          "file_checks", "composite_checksums", "stored_etags"):
                db.execute(f"DELETE FROM {table} WHERE aip_id = ?", (aip_id,))
            db.execute("DELETE FROM aips WHERE id = ?", (aip_id,))

    def pending(self) -> list[str]:
        """AIPs whose ingest did not finish (crash, kill): to be resolved against storage."""
        return [r[0] for r in self.execute("SELECT id FROM aips WHERE state = 'staging'")]

    def list_aips(self, collection: str | None = None,
                  aip_id: str | None = None) -> list[AipSummary]:
        sql = ("SELECT a.id, a.collection, v.title, a.created, v.version, v.files, v.bytes, "
               "a.source, v.tagmanifest_sha256 FROM aips a JOIN versions v ON v.aip_id = a.id "
               "AND v.version = (SELECT MAX(version) FROM versions WHERE aip_id = a.id AND "
               "state = 'stored') "
               "WHERE a.state = 'stored'")
        args: tuple = ()
        if collection:
            sql += " AND a.collection = ?"
            args += (collection,)
        if aip_id:
            sql += " AND a.id = ?"
            args += (aip_id,)
        sql += " ORDER BY a.created, a.id"
        out = [AipSummary(*row[:8], package_digest=row[8])
               for row in self.execute(sql, args).fetchall()]
        if len(out) == 1:
            out[0].locations = self.replica_locations(out[0].id, out[0].version)
        elif out:  # one query for all, not one per AIP
            held: dict[tuple[str, int], list[str]] = {}
            for aip, version, location in self.execute(
                    "SELECT aip_id, version, location FROM replicas ORDER BY location"):
                held.setdefault((aip, version), []).append(location)
            for summary in out:
                summary.locations = held.get((summary.id, summary.version), [])
        return out

    def resolve(self, ref: str) -> str:
        """An AIP id from a full id or a unique prefix of at least 4 characters."""
        if len(ref) < 4:
            raise NotFound(f"AIP reference {ref!r} is too short", hint="give at least 4 characters")
        rows = self.execute("SELECT id FROM aips WHERE state = 'stored' AND lower(id) LIKE lower(?) "
                               "ESCAPE '\\'", (like_prefix(ref),)).fetchall()
        if not rows:
            raise NotFound(f"no AIP {ref!r} in this repository", hint="'preserve list' shows them")
        if len(rows) > 1:
            raise NotFound(f"{ref!r} matches {len(rows)} AIPs", hint="give more characters")
        return rows[0][0]

    def get_aip(self, aip_id: str) -> AipSummary:
        found = self.list_aips(aip_id=aip_id)
        if not found:
            raise NotFound(f"no AIP {aip_id}")
        return found[0]

    def version_info(self, aip_id: str, version: int) -> dict:
        row = self.execute("SELECT files, bytes, payload_oxum, tagmanifest, tagmanifest_sha256, "
                              "inventory_sha512, state FROM versions WHERE aip_id = ? AND "
                              "version = ?", (aip_id, version)).fetchone()
        if row is None:
            raise NotFound(f"AIP {aip_id} has no version {version}")
        return dict(zip(("files", "bytes", "payload_oxum", "tagmanifest",
                         "tagmanifest_sha256", "inventory_sha512", "state"), row, strict=True))

    def count_versions(self) -> int:
        return self.execute("SELECT COUNT(*) FROM versions v JOIN aips a ON a.id = v.aip_id "
                               "WHERE a.state = 'stored' AND v.state = 'stored'").fetchone()[0]
