"""The catalog: an index of AIPs, versions, files, replicas and events, in SQLite (one
machine, the default) or PostgreSQL (shared by many workers; issue 13).

It is an index, not the record: everything in it can be rebuilt from the OCFL objects in
storage. An AIP row is inserted in state "staging" before its object is published and turned
"stored" after, and so is each later version; recovery (Catalog.pending, pending_versions)
resolves rows left behind by a crash against what storage really holds. Paths are stored
exactly as named (text, no normalisation) and compared exactly.

`files` holds one row per content file of an object: the version whose content/
folder holds it, its bag path there (payload under data/ and tag files alike), its
size, digests and (payload) identification. The logical state of version k is, for
each path, its row of the highest version up to k: payload is never removed or
rewritten (DESIGN principle 4), so this is every file of the version's bag, and
each OCFL inventory is written from these rows (ocfl.write_inventory).

One text of SQL for both databases: the tables are declared in catalog_tables (SQLAlchemy
Core; a new catalog is made from them), changes to them are Alembic migrations
(catalog_migrations), and the statements here are written in the SQL both speak (upserts
as ON CONFLICT, no rowid, sums cast to 64 bits). Statements are written with `?`
placeholders, bound by position, and run on the driver's own connection (sqlite3, or
psycopg with `%s` placeholders): SQLAlchemy and Alembic are imported only to create or
migrate a catalog, since importing them costs every command 0.25 s and 18 MiB (issue 11).
The connection is in autocommit mode; `transaction()` opens real transactions itself, so
that on SQLite a writer takes the write lock at once (BEGIN IMMEDIATE: two processes never
deadlock upgrading a read lock) and readers never hold one.
"""

from __future__ import annotations

import functools
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from preserve.domain.model import AipSummary, EventRecord, FileRecord, ReplicaAuditState
from preserve.domain.ocfl import VersionRecord, content_path
from preserve.errors import ConfigError, NotFound

# The newest Alembic revision (catalog_migrations/versions): what a new catalog is
# stamped with.
HEAD = "0003_jobs_digests"
# Every revision, oldest first: a catalog stamped with one of them can be brought to HEAD.
# The tables of a catalog at HEAD (catalog_tables.py makes them; a test keeps the two equal).
TABLES = frozenset({"meta", "aips", "versions", "files", "replicas", "events", "derivations",
                    "audit_runs", "file_checks", "composite_checksums", "audit_problems",
                    "job_results", "alembic_version"})
REVISIONS = ("0001_schema4", "0002_event_order", HEAD)
# What the `meta` table says of the schema, for the preserve releases before Alembic (which
# read only that): they refuse a catalog past the schema they know.
SCHEMA_VERSION = 5  # 5 is every Alembic revision: they read alembic_version
# Schemas of the storage layout before OCFL (a full bag per version): never released, so
# never converted; a repository made with them is named as such.
BEFORE_OCFL = (1, 2)
# Schemas written before Alembic that its migrations bring to HEAD.
BEFORE_ALEMBIC = (3, 4)
# file_checks.checked (and replicas.last_audit) value of a file or replica whose last audit
# found damage: it sorts before every date, so it is audited again at every run until repaired.
RECHECK = ""
DIGEST_COLUMNS = ("sha256", "sha512", "xxh3_128")
FILE_COLUMNS = ("path", "size", *DIGEST_COLUMNS, "puid", "format",
                "format_version", "mime", "basis", "warning", "confidence", "magic_mime",
                "magic_description")
# Rows a streamed query fetches at a time from PostgreSQL (a server-side cursor).
STREAM_ROWS = 5_000
SERVER_SCHEMES = ("postgresql://", "postgresql+psycopg://", "postgres://")


def is_server_url(where: str | os.PathLike) -> bool:
    """Whether a catalog address names a PostgreSQL server (else it is an SQLite file)."""
    return str(where).startswith(SERVER_SCHEMES)


def libpq_url(url: str) -> str:
    """A catalog address as libpq takes it (postgresql://; SQLAlchemy's
    postgresql+psycopg:// and the short postgres:// are accepted too)."""
    for scheme in SERVER_SCHEMES[1:]:
        if url.startswith(scheme):
            return "postgresql://" + url[len(scheme):]
    return url


# libpq's connection parameters that carry a secret (a URI may give any parameter in its
# query string: https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-PARAMKEYWORDS)
SECRET_PARAMETERS = frozenset({"password", "sslpassword"})


def safe_url(url: str) -> str:
    """A PostgreSQL URL fit to write in a file or a message: never a password (libpq reads
    it from PGPASSWORD or ~/.pgpass), refused rather than dropped so the user knows."""
    parts = urlsplit(libpq_url(url))
    query = {key.strip().lower() for key, _ in parse_qsl(parts.query, keep_blank_values=True)}
    if parts.password or query & SECRET_PARAMETERS:  # case 51: '?password=' was kept
        raise ConfigError("the catalog address has a password in it, and preserve writes "
                          "that address into the repository's configuration",
                          hint="give it without the password and set PGPASSWORD or a "
                               "~/.pgpass file (https://www.postgresql.org/docs/current/"
                               "libpq-pgpass.html)")
    return urlunsplit(parts)


@functools.lru_cache(maxsize=512)
def _server_sql(sql: str) -> str:
    """A statement written with `?` placeholders as psycopg takes it (`%s`; a literal `%`
    doubled). No statement of the catalog has a `?` inside a literal."""
    return sql.replace("%", "%%").replace("?", "%s")


def _connect(where: str | Path, *, autocommit: bool = True):
    """A driver connection to the catalog: psycopg for a server, sqlite3 for a file."""
    if is_server_url(where):
        import psycopg

        return psycopg.connect(libpq_url(str(where)), autocommit=autocommit,
                               application_name="preserve", connect_timeout=10)
    # isolation_level None: autocommit; transaction() begins and commits itself. Any thread
    # may use it (audits record from a pool's result thread), one at a time.
    conn = sqlite3.connect(where, timeout=30, isolation_level=None, check_same_thread=False)
    _sqlite_settings(conn)
    return conn


def _sqlite_settings(conn: sqlite3.Connection) -> None:
    """What every connection to an SQLite catalog sets: keys enforced, WAL, a sync at
    every commit."""
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")


def _driver_errors(server: bool) -> tuple[tuple[type, ...], tuple[type, ...]]:
    """(cannot connect, cannot read) error classes of the catalog's driver."""
    if not server:
        return (sqlite3.OperationalError,), (sqlite3.DatabaseError,)
    import psycopg

    return (psycopg.OperationalError,), (psycopg.DatabaseError,)


def database_errors() -> tuple[type, ...]:
    """Every error class the catalog's drivers raise: sqlite3's, and psycopg's and
    SQLAlchemy's if they were loaded (they are, before any of their errors can arise)."""
    import sys

    errors: tuple[type, ...] = (sqlite3.Error,)
    if "psycopg" in sys.modules:
        errors += (sys.modules["psycopg"].Error,)
    if "sqlalchemy" in sys.modules:
        errors += (sys.modules["sqlalchemy"].exc.SQLAlchemyError,)
    return errors


def sqlalchemy_engine(where: str | Path):
    """An SQLAlchemy engine on the catalog, for what needs it: creating the tables from
    catalog_tables, Alembic's migrations, and tests that compare schemas."""
    import sqlalchemy as sa

    if is_server_url(where):
        url = sa.engine.make_url(libpq_url(str(where))).set(drivername="postgresql+psycopg")
        return sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool,
                                connect_args={"application_name": "preserve",
                                              "connect_timeout": 10})
    engine = sa.create_engine(f"sqlite:///{where}", isolation_level="AUTOCOMMIT",
                              poolclass=sa.NullPool, connect_args={"timeout": 30})

    sa.event.listen(engine, "connect", lambda conn, _record: _sqlite_settings(conn))
    return engine


class Rows:
    """What a statement returned: iterate it, or take its rows, first row or first value."""

    __slots__ = ("cursor",)

    def __init__(self, cursor):
        self.cursor = cursor

    def __iter__(self) -> Iterator[tuple]:
        return iter(self.cursor)

    def fetchone(self) -> tuple | None:
        return self.cursor.fetchone()

    def fetchall(self) -> list[tuple]:
        return self.cursor.fetchall()

    def scalar(self):
        row = self.cursor.fetchone()
        return None if row is None else row[0]

    @property
    def rowcount(self) -> int:
        return self.cursor.rowcount


class Catalog:
    """The catalog at `where`: an SQLite file, or a postgresql:// URL."""

    def __init__(self, where: str | Path):
        self.server = is_server_url(where)
        if self.server:
            safe_url(str(where))  # a password in the address is refused before any use
        self.where = str(where) if self.server else Path(where)
        self.path = None if self.server else self.where  # the SQLite file
        if not self.server and not self.path.exists():
            raise ConfigError(f"no catalog at {self.path}",
                              hint="run 'preserve init' to create the repository")
        self._begin = "BEGIN" if self.server else "BEGIN IMMEDIATE"
        self._readers: list = []  # idle PostgreSQL connections for streamed reads
        unreachable, unreadable = _driver_errors(self.server)
        self.conn = None
        try:
            self.conn = _connect(self.where)
            self._check_schema()
        except unreachable as e:
            self.close()
            raise ConfigError(f"cannot reach the catalog {self.describe()}: "
                              f"{_first_line(e)}",
                              hint="check that the database server is running and that "
                                   "PGUSER/PGPASSWORD or ~/.pgpass let you in" if self.server
                              else "restore it from backup or rebuild it from storage") from e
        except unreadable as e:
            self.close()
            raise ConfigError(f"the catalog {self.describe()} cannot be read: {_first_line(e)}",
                              hint="restore it from backup or rebuild it from storage") from e

    def describe(self) -> str:
        return safe_url(self.where) if self.server else str(self.path)

    def table_names(self) -> set[str]:
        if self.server:
            sql = "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        else:
            sql = "SELECT name FROM sqlite_master WHERE type = 'table'"
        return {r[0] for r in self.execute(sql)}

    def _check_schema(self) -> None:
        tables = self.table_names()
        if "meta" not in tables:
            raise ConfigError(f"{self.describe()} holds no preserve catalog",
                              hint="create one with 'preserve init'")
        row = self.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        found = int(row[0]) if row is not None else None
        if found in BEFORE_OCFL:
            raise ConfigError(f"the repository of {self.describe()} was made by an earlier "
                              "preserve, which kept one full bag per AIP version; this one "
                              "keeps AIPs as OCFL 1.1 objects and does not read that layout",
                              hint="nothing was released in that layout: create a new "
                                   "repository with 'preserve init' and ingest again (export "
                                   "the old AIPs with the preserve that made them first)")
        revision = None
        if "alembic_version" in tables:
            revision = self.execute("SELECT version_num FROM alembic_version").scalar()
        if revision == HEAD:
            missing = sorted(TABLES - tables)
            if missing:  # case 54: a dropped table was found only half-way through a command
                raise ConfigError(f"the catalog {self.describe()} is damaged: it lacks the "
                                  f"table(s) {', '.join(missing)}; nothing was changed",
                                  hint="restore it from backup or rebuild it from storage")
            return
        if revision in REVISIONS or (revision is None and found in BEFORE_ALEMBIC):
            self._migrate()
            return
        raise ConfigError(f"the catalog {self.describe()} is at schema "
                          f"{revision or found}, which this preserve does not know (it "
                          f"reads {', '.join(map(str, BEFORE_ALEMBIC))} and "
                          f"{', '.join(REVISIONS)})",
                          hint="use the preserve release that wrote it, or rebuild the "
                               "catalog from storage")

    @contextmanager
    def sqlalchemy(self):
        """An SQLAlchemy connection to this catalog (autocommit, like the catalog's own),
        for Alembic and schema comparison."""
        engine = sqlalchemy_engine(self.where)
        try:
            with engine.connect() as conn:
                yield conn
        finally:
            engine.dispose()

    def _migrate(self) -> None:
        """Bring an older catalog to HEAD with Alembic, in one transaction of its own
        connection (the catalog's is in autocommit and holds no lock meanwhile)."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location",
                               str(Path(__file__).with_name("migrations")))
        with self.sqlalchemy() as conn:
            config.attributes["connection"] = conn
            conn.exec_driver_sql(self._begin)
            try:
                command.upgrade(config, HEAD)
                conn.exec_driver_sql(f"UPDATE meta SET value = '{SCHEMA_VERSION}' "
                                     "WHERE key = 'schema'")
            except BaseException:
                conn.exec_driver_sql("ROLLBACK")
                raise
            conn.exec_driver_sql("COMMIT")

    @staticmethod
    def create_if_missing(where: str | Path) -> bool:
        """Make a new catalog from catalog_tables, stamped with HEAD, unless the database
        already holds one (left as it is); whether it made one. A PostgreSQL database must
        exist (its owner makes it: deployment.md); an SQLite file is made here."""
        import sqlalchemy as sa

        from preserve.catalog import tables as catalog_tables

        engine = sqlalchemy_engine(where)
        try:
            with engine.connect() as conn:
                if "meta" in sa.inspect(conn).get_table_names():
                    return False
                conn.exec_driver_sql("BEGIN")
                catalog_tables.metadata.create_all(conn)
                conn.execute(sa.text("CREATE TABLE alembic_version (version_num VARCHAR(32) "
                                     "NOT NULL PRIMARY KEY)"))
                conn.execute(sa.text("INSERT INTO alembic_version VALUES (:v)"), {"v": HEAD})
                conn.execute(sa.text("INSERT INTO meta VALUES ('schema', :v)"),
                             {"v": str(SCHEMA_VERSION)})
                conn.exec_driver_sql("COMMIT")
                return True
        finally:
            engine.dispose()

    def close(self) -> None:
        for conn in [self.conn, *self._readers]:
            if conn is not None:
                conn.close()
        self._readers = []

    @contextmanager
    def transaction(self) -> Iterator[Catalog]:
        self.conn.execute(self._begin)
        try:
            yield self
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def execute(self, sql: str, args: Iterable = ()) -> Rows:
        """One statement with `?` placeholders (inside a transaction() or on its own)."""
        if self.server:
            return Rows(self.conn.execute(_server_sql(sql), tuple(args)))
        return Rows(self.conn.execute(sql, tuple(args)))

    def executemany(self, sql: str, rows: Iterable[Iterable]) -> None:
        """One statement for many rows, a bounded batch at a time."""
        it = iter(rows)
        while batch := list(islice(it, 5000)):
            if self.server:
                with self.conn.cursor() as cursor:
                    cursor.executemany(_server_sql(sql), batch)
            else:
                self.conn.executemany(sql, batch)

    def _stream(self, sql: str, args: Iterable = ()) -> Iterator[tuple]:
        """The rows of a long query without holding them all: SQLite's cursor reads as it
        goes; on PostgreSQL, a server-side cursor on a connection of its own, in a
        read-only snapshot (the catalog's connection stays free for writes meanwhile)."""
        if not self.server:
            yield from self.conn.execute(sql, tuple(args))
            return
        conn = self._readers.pop() if self._readers else _connect(self.where,
                                                                  autocommit=False)
        try:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            with conn.cursor(name="preserve_stream") as cursor:
                cursor.itersize = STREAM_ROWS
                cursor.execute(_server_sql(sql), tuple(args))
                yield from cursor
            conn.rollback()  # a read-only snapshot: nothing to keep
        except BaseException:
            conn.close()
            raise
        self._readers.append(conn)

    # --- ingest protocol: staging rows, then stored ---------------------------------------

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
                      derivations: Iterable[tuple[str, str, str, str]] = ()) -> None:
        """Record a finished version before it is published; it stays invisible until
        mark_stored. `title`: the bag's Title, as of this version; `derivations`: (source,
        derivative, rule, event id) of each file a migration added."""
        with self.transaction() as db:
            db.execute("INSERT INTO versions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                       "'staging')",
                       (aip_id, version, record.created, files, nbytes, oxum, tagmanifest,
                        tagmanifest_sha256, inventory_sha512, record.message,
                        record.user_name, record.user_address, title))
            _insert_events(db, events)
            db.executemany("INSERT INTO derivations VALUES (?, ?, ?, ?, ?, ?)",
                           [(aip_id, version, *d) for d in derivations])

    def mark_stored(self, aip_id: str, version: int, location: str, key: str, when: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO replicas VALUES (?, ?, ?, ?, 'verified', ?, NULL)",
                       (aip_id, version, location, key, when))
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
            for table in ("files", "events", "replicas", "file_checks", "composite_checksums",
                          "derivations"):
                db.execute(f"DELETE FROM {table} WHERE aip_id = ? AND version = ?",
                           (aip_id, version))
            db.execute("DELETE FROM versions WHERE aip_id = ? AND version = ?",
                       (aip_id, version))

    # --- OCFL inventories, written from the rows (see the module's docstring) -------------

    def version_records(self, aip_id: str, head: int) -> list[VersionRecord]:
        return [VersionRecord(*r) for r in self.execute(
            "SELECT version, created, message, user_name, user_address FROM versions "
            "WHERE aip_id = ? AND version <= ? ORDER BY version", (aip_id, head))]

    def manifest_rows(self, aip_id: str, head: int,
                      algorithm: str = "sha512") -> Iterator[tuple[str, str]]:
        """(digest, content path) of every content file up to `head`, by digest."""
        column = {"sha512": "sha512", "sha256": "sha256"}[algorithm]
        for digest, version, path in self._stream(
                f"SELECT {column}, version, path FROM files WHERE aip_id = ? AND version <= ? "
                f"ORDER BY {column}, version, path", (aip_id, head)):
            yield digest, content_path(version, path)

    def state_rows(self, aip_id: str, version: int) -> Iterator[tuple[str, str]]:
        """(sha512, bag path) of every file of the bag of `version`, by digest."""
        yield from self._stream(f"SELECT f.sha512, f.path FROM files f WHERE {_IN_STATE} "
                                   "ORDER BY f.sha512, f.path", (aip_id, version))

    def holds(self, aip_id: str, version: int, path: str) -> bool:
        """Whether the bag of `version` has a file at `path` (nothing is ever removed)."""
        return self.execute("SELECT 1 FROM files WHERE aip_id = ? AND path = ? AND "
                               "version <= ? LIMIT 1", (aip_id, path, version)).fetchone() \
            is not None

    def discard_orphan_rows(self) -> int:
        """Content rows of a stored AIP's version that was never staged (a run killed
        between recording a version's files and the version itself)."""
        with self.transaction() as db:
            return db.execute(
                "DELETE FROM files WHERE aip_id IN (SELECT id FROM aips WHERE state = "
                "'stored') AND NOT EXISTS (SELECT 1 FROM versions v WHERE v.aip_id = "
                "files.aip_id AND v.version = files.version)").rowcount

    def state_files(self, aip_id: str, version: int, *,
                    tags_only: bool = False) -> Iterator[tuple[str, int, int, dict]]:
        """(bag path, version holding its content, size, digests) of every file of the bag
        of `version` (or of its tag files only), by path: what export writes out."""
        tags = f" AND NOT {_PAYLOAD}" if tags_only else ""
        for path, held_in, size, *digests in self._stream(
                f"SELECT f.path, f.version, f.size, {', '.join('f.' + c for c in DIGEST_COLUMNS)} "
                f"FROM files f WHERE {_IN_STATE}{tags} ORDER BY f.path", (aip_id, version)):
            yield path, held_in, size, _digests(digests)

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

    def head_at(self, aip_id: str, location: str) -> int:
        """The highest version of the AIP recorded at `location` (0: none)."""
        return self.execute("SELECT COALESCE(MAX(version), 0) FROM replicas WHERE "
                               "aip_id = ? AND location = ?", (aip_id, location)).fetchone()[0]

    def add_replica(self, aip_id: str, version: int, location: str, key: str, when: str,
                    composites: dict[str, str] | None = None) -> None:
        """Record a copy that has been written and verified (never before), with the
        store's composite checksums of the files it took in parts."""
        with self.transaction() as db:
            db.execute("INSERT INTO replicas VALUES (?, ?, ?, ?, 'verified', ?, NULL) ON CONFLICT "
                       "(aip_id, version, location) DO UPDATE SET key = excluded.key, state = "
                       "excluded.state, stored = excluded.stored, last_audit = NULL",
                       (aip_id, version, location, key, when))
            db.execute("DELETE FROM composite_checksums WHERE aip_id = ? AND version = ? AND "
                       "location = ?", (aip_id, version, location))
            db.executemany("INSERT INTO composite_checksums VALUES (?, ?, ?, ?, ?)",
                           ((aip_id, version, location, path, checksum)
                            for path, checksum in (composites or {}).items()))

    def set_composite_checksum(self, aip_id: str, version: int, location: str, path: str,
                               checksum: str | None) -> None:
        """After a file was written again (repair): its composite checksum, or none."""
        with self.transaction() as db:
            db.execute("DELETE FROM composite_checksums WHERE aip_id = ? AND version = ? AND "
                       "location = ? AND path = ?", (aip_id, version, location, path))
            if checksum:
                db.execute("INSERT INTO composite_checksums VALUES (?, ?, ?, ?, ?)",
                           (aip_id, version, location, path, checksum))

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

    def count_versions(self) -> int:
        return self.execute("SELECT COUNT(*) FROM versions v JOIN aips a ON a.id = v.aip_id "
                               "WHERE a.state = 'stored' AND v.state = 'stored'").fetchone()[0]

    def replica_summary(self) -> dict[str, tuple[int, int]]:
        """Per location: (AIP versions held, bytes held)."""
        rows = self.execute(
            "SELECT r.location, COUNT(*), CAST(COALESCE(SUM(v.bytes), 0) AS BIGINT) FROM replicas r JOIN "
            "versions v ON v.aip_id = r.aip_id AND v.version = r.version GROUP BY r.location")
        return {r[0]: (r[1], r[2]) for r in rows}

    # --- audits -------------------------------------------------------------------------

    def start_audit(self, run_id: str, started: str, kind: str, scope: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO audit_runs VALUES (?, ?, NULL, ?, 'running', 0, 0, 0, ?)",
                       (run_id, started, kind, scope))

    def unfinished_audit(self, scope: str) -> tuple[str, str] | None:
        """(run id, start) of the latest audit with this scope that never finished (Ctrl-C,
        a kill, a crash, a budget spent), if nothing with the same scope finished since."""
        row = self.execute(
            "SELECT id, started, status FROM audit_runs WHERE scope = ? "
            "ORDER BY started DESC, id DESC LIMIT 1", (scope,)).fetchone()
        return (row[0], row[1]) if row and row[2] in ("running", "interrupted") else None

    def record_checks(self, run_id: str, replica: tuple[str, int, str], when: str,
                      verified: list[str], failed: list[str], problems: list[tuple]) -> None:
        """Files just checked at one replica, with the problems found: committed together
        and often, so that an interrupted audit resumes after the last file it recorded."""
        with self.transaction() as db:
            _insert_problems(db, run_id, problems)
            _set_checked(db, replica, [(path, when) for path in verified] +
                         [(path, RECHECK) for path in failed])

    def finish_replica_audit(self, replica: tuple[str, int, str], since: str,
                             damaged_structure: bool, events: list[EventRecord]) -> None:
        """Close one replica's audit. When every file has been verified since `since` (the
        run's start), the per-file rows fold into the replica's last audit; damage outside
        the payload (an unexpected file, a tag file) makes the whole replica due again."""
        with self.transaction() as db:
            _insert_events(db, events)
            oldest = db.execute(
                f"SELECT MIN({_VERIFIED}) FROM replicas r JOIN files f ON f.aip_id = r.aip_id "
                "AND f.version = r.version LEFT JOIN file_checks c ON c.aip_id = r.aip_id AND "
                "c.version = r.version AND c.location = r.location AND c.path = f.path WHERE "
                "r.aip_id = ? AND r.version = ? AND r.location = ? AND "
                "(c.checked IS NULL OR c.checked != '')", replica).fetchone()[0]
            if oldest is None or oldest >= since:
                db.execute("UPDATE replicas SET last_audit = ? WHERE aip_id = ? AND version = ? "
                           "AND location = ?", (oldest or since, *replica))
                db.execute("DELETE FROM file_checks WHERE aip_id = ? AND version = ? AND "
                           "location = ? AND checked != ''", replica)
            if damaged_structure:
                db.execute("UPDATE replicas SET last_audit = ? WHERE aip_id = ? AND version = ? "
                           "AND location = ?", (RECHECK, *replica))

    def record_audit_problems(self, run_id: str, problems: list[tuple]) -> None:
        with self.transaction() as db:
            _insert_problems(db, run_id, problems)

    def mark_verified(self, replica: tuple[str, int, str], paths: list[str], when: str) -> None:
        """Files re-read and found good outside an audit (after a repair)."""
        with self.transaction() as db:
            _set_checked(db, replica, [(path, when) for path in paths])

    def add_events(self, events: list[EventRecord]) -> None:
        with self.transaction() as db:
            _insert_events(db, events)

    def finish_audit(self, run_id: str, finished: str, status: str, replicas: int, files: int,
                     nbytes: int) -> None:
        """`status` "interrupted" leaves the run open for the next one with the same scope."""
        with self.transaction() as db:
            db.execute("UPDATE audit_runs SET finished = ?, status = ?, replicas = replicas + ?, "
                       "files = files + ?, bytes = bytes + ? WHERE id = ?",
                       (finished, status, replicas, files, nbytes, run_id))

    def audit_problems(self, run_id: str) -> list[tuple]:
        """Every problem a run recorded (a resumed run included), each once; a payload file
        found damaged counts only while it still awaits a good check (RECHECK): one repaired
        or verified good since is not reported again."""
        return [tuple(r) for r in self.execute(
            "SELECT p.aip_id, p.version, p.location, p.path, p.kind, MIN(p.detail) "
            "FROM audit_problems p WHERE p.run_id = ? AND (p.path IS NULL OR NOT EXISTS "
            "(SELECT 1 FROM files f WHERE f.aip_id = p.aip_id AND f.version = p.version AND "
            "f.path = p.path) OR EXISTS (SELECT 1 FROM file_checks c WHERE c.aip_id = p.aip_id "
            "AND c.version = p.version AND c.location = p.location AND c.path = p.path AND "
            "c.checked = '')) GROUP BY p.aip_id, p.version, p.location, p.path, p.kind "
            "ORDER BY p.aip_id, p.version, p.location, p.path, p.kind", (run_id,))]

    def replica_audit_states(self, since: str = "~", *, aips: list[str] | None = None,
                             location: str | None = None) -> list[ReplicaAuditState]:
        """Every verified replica of a stored AIP (of `aips`, at `location`, when given): its
        files, bytes, when its least recently verified file was last verified, and how many
        files were verified since `since`. An audit of one AIP copy (a job) reads only its
        rows, not the whole catalog's."""
        where, args = _and_where({"r.aip_id": aips, "r.location": location})
        args = [since, *args]
        rows = self.execute(
            "SELECT r.aip_id, r.version, r.location, r.key, a.collection, r.stored, "
            f"r.last_audit, COUNT(f.path), CAST(COALESCE(SUM(f.size), 0) AS BIGINT), "
            f"MIN({_LAST_CHECK}), CAST(COALESCE(SUM(CASE WHEN {_VERIFIED} >= ? THEN 1 ELSE 0 "
            "END), 0) AS BIGINT) FROM replicas r JOIN aips a ON "
            "a.id = r.aip_id LEFT JOIN files f ON f.aip_id = r.aip_id AND f.version = r.version "
            "LEFT JOIN file_checks c ON c.aip_id = r.aip_id AND c.version = r.version AND "
            f"c.location = r.location AND c.path = f.path WHERE a.state = 'stored'{where} "
            "GROUP BY r.aip_id, r.version, r.location, r.key, a.collection, r.stored, r.last_audit "
            "ORDER BY 10, r.aip_id, r.location", args)
        return [ReplicaAuditState(*r) for r in rows]

    def replica_file_checks(self, replica: tuple[str, int, str],
                            before: str) -> Iterator[tuple[str, int, str]]:
        """(path, size, last verified) of a replica's files not verified since `before`,
        least recently verified first."""
        yield from self._stream(
            f"SELECT f.path, f.size, {_LAST_CHECK} AS last FROM replicas r JOIN files f ON "
            "f.aip_id = r.aip_id AND f.version = r.version LEFT JOIN file_checks c ON "
            "c.aip_id = r.aip_id AND c.version = r.version AND c.location = r.location AND "
            "c.path = f.path WHERE r.aip_id = ? AND r.version = ? AND r.location = ? AND "
            f"{_VERIFIED} < ? ORDER BY last, f.path", (*replica, before))

    def all_file_checks(self, before: str) -> Iterator[tuple[str, int, str, str, int, str]]:
        """(aip, version, location, path, size, last verified) of every replica file not
        verified since `before`, least recently verified first: the order sampling takes."""
        yield from self._stream(
            f"SELECT r.aip_id, r.version, r.location, f.path, f.size, {_LAST_CHECK} AS last "
            "FROM replicas r JOIN aips a ON a.id = r.aip_id JOIN files f ON "
            "f.aip_id = r.aip_id AND f.version = r.version LEFT JOIN file_checks c ON "
            "c.aip_id = r.aip_id AND c.version = r.version AND c.location = r.location AND "
            f"c.path = f.path WHERE a.state = 'stored' AND {_VERIFIED} < ? "
            "ORDER BY last, r.aip_id, r.version, r.location, f.path", (before,))

    # --- one replica's listing, compared in SQL (temporary tables: on disk past a few MB) --

    def load_listing(self, objects: Iterable[tuple[str, int]]) -> None:
        """Keep a replica's listing (path in the bag, size) for the comparisons below, so
        that auditing an AIP of millions of files holds none of them in memory."""
        self.execute("CREATE TEMP TABLE IF NOT EXISTS listing (path TEXT PRIMARY KEY, "
                      "size BIGINT NOT NULL)")
        self.execute("DELETE FROM listing")
        it = iter(objects)
        while chunk := list(islice(it, 1000)):  # a constant few hundred KB
            self.executemany("INSERT INTO listing VALUES (?, ?) ON CONFLICT (path) DO UPDATE "
                              "SET size = excluded.size", chunk)

    def listed_size(self, path: str) -> int | None:
        row = self.execute("SELECT size FROM listing WHERE path = ?", (path,)).fetchone()
        return row[0] if row else None

    def listed_not_catalogued(self, aip_id: str, version: int) -> list[tuple[str, int]]:
        """Listed files that are not payload of record: the tag files, and anything
        unexpected (few, unless that is the damage)."""
        return [tuple(r) for r in self.execute(
            "SELECT l.path, l.size FROM listing l WHERE NOT EXISTS (SELECT 1 FROM files f "
            "WHERE f.aip_id = ? AND f.version = ? AND f.path = l.path) ORDER BY l.path",
            (aip_id, version))]

    def payload_not_listed_as_recorded(self, aip_id: str,
                                       version: int) -> list[tuple[str, int, int | None]]:
        """(path, recorded size, listed size or None) of payload files missing or of
        another size at the replica."""
        return [tuple(r) for r in self.execute(
            "SELECT f.path, f.size, l.size FROM files f LEFT JOIN listing l ON "
            "l.path = f.path WHERE f.aip_id = ? AND f.version = ? AND "
            "(l.size IS NULL OR l.size != f.size) ORDER BY f.path", (aip_id, version))]

    def stage_payload_checks(self, aip_id: str, version: int) -> tuple[int, int]:
        """Queue the payload files listed with their recorded size, biggest first (so both
        cores finish together); returns (files, bytes)."""
        self.execute("CREATE TEMP TABLE IF NOT EXISTS tocheck (seq BIGINT PRIMARY KEY, "
                      "path TEXT NOT NULL, size BIGINT NOT NULL, sha256 TEXT, sha512 TEXT, "
                      "xxh3_128 TEXT)")
        self.execute("DELETE FROM tocheck")
        self.execute(
            "INSERT INTO tocheck (seq, path, size, sha256, sha512, xxh3_128) SELECT "
            "ROW_NUMBER() OVER (ORDER BY f.size DESC, f.path), f.path, "
            "f.size, f.sha256, f.sha512, f.xxh3_128 FROM files f JOIN listing l ON "
            "l.path = f.path AND l.size = f.size WHERE f.aip_id = ? AND f.version = ? "
            "ORDER BY f.size DESC, f.path", (aip_id, version))
        return tuple(self.execute("SELECT COUNT(*), CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM tocheck")
                     .fetchone())

    def staged_payload_checks(self, chunk: int = 5_000) -> Iterator[tuple[str, int, dict]]:
        """(path, size, recorded digests) of the queued files, a chunk at a time (no
        statement stays open while results are committed)."""
        last = 0
        while True:
            rows = self.execute(f"SELECT seq, path, size, {', '.join(DIGEST_COLUMNS)} FROM "
                                   "tocheck WHERE seq > ? ORDER BY seq LIMIT ?",
                                   (last, chunk)).fetchall()
            if not rows:
                return
            for _seq, path, size, *digests in rows:
                yield path, size, _digests(digests)
            last = rows[-1][0]

    def discard_aip(self, aip_id: str) -> None:
        with self.transaction() as db:
            row = db.execute("SELECT state FROM aips WHERE id = ?", (aip_id,)).fetchone()
            if row is None or row[0] != "staging":
                return
            for table in ("files", "versions", "events", "replicas", "file_checks",
                          "composite_checksums"):
                db.execute(f"DELETE FROM {table} WHERE aip_id = ?", (aip_id,))
            db.execute("DELETE FROM aips WHERE id = ?", (aip_id,))

    def pending(self) -> list[str]:
        """AIPs whose ingest did not finish (crash, kill): to be resolved against storage."""
        return [r[0] for r in self.execute("SELECT id FROM aips WHERE state = 'staging'")]

    @contextmanager
    def advisory_lock(self, name: str, *, wait: bool = True) -> Iterator[bool]:
        """PostgreSQL's session lock `name`, shared by every machine of the catalog (the
        server releases it if this process dies); yields whether it is held (with
        wait=False, False when another session holds it). SQLite: always held (its
        writers are on one machine, and the file locks serialise them)."""
        if not self.server:
            yield True
            return
        if wait:
            self.execute("SELECT pg_advisory_lock(hashtextextended(?, 0))", (name,))
            held = True
        else:
            held = self.execute("SELECT pg_try_advisory_lock(hashtextextended(?, 0))",
                                 (name,)).scalar()
        try:
            yield held
        finally:
            if held and not self.conn.closed:  # a closed session's locks are released
                self.execute("SELECT pg_advisory_unlock(hashtextextended(?, 0))", (name,))

    # --- jobs of the queue (a PostgreSQL catalog's) --------------------------------------

    def job_result(self, job_id: int) -> tuple[str, str | None] | None:
        """(status, result JSON) a job recorded when it finished, or None."""
        row = self.execute("SELECT status, result FROM job_results WHERE job_id = ?",
                            (job_id,)).fetchone()
        return None if row is None else (row[0], row[1])

    def record_job(self, job_id: int, task: str, aip_id: str | None, status: str,
                   result: str | None, error: str | None, finished: str, worker: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO job_results VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT "
                       "(job_id) DO UPDATE SET status = excluded.status, result = "
                       "excluded.result, error = excluded.error, finished = excluded.finished, "
                       "worker = excluded.worker",
                       (job_id, task, aip_id, status, result, error, finished, worker))

    # --- reading ------------------------------------------------------------------------

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
                               "ESCAPE '\\'", (_like_prefix(ref),)).fetchall()
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

    def files(self, aip_id: str, version: int) -> Iterator[FileRecord]:
        """The payload files of the bag of `version` (whichever version holds each)."""
        cur = self._stream(f"SELECT {', '.join('f.' + c for c in FILE_COLUMNS)} FROM files f "
                              f"WHERE {_IN_STATE} AND {_PAYLOAD} ORDER BY f.path",
                              (aip_id, version))
        for row in cur:
            d = dict(zip(FILE_COLUMNS, row, strict=True))
            yield FileRecord(digests=_digests([d.pop(k) for k in DIGEST_COLUMNS]), **d)

    def file_digests(self, aip_id: str, version: int, path: str) -> dict[str, str] | None:
        """The digests recorded for one content file of `version` (bag path), or None."""
        row = self.execute(f"SELECT {', '.join(DIGEST_COLUMNS)} FROM files WHERE aip_id = ? "
                              "AND version = ? AND path = ?", (aip_id, version, path)).fetchone()
        return None if row is None else _digests(row)

    def holders(self, sha256: str) -> list[tuple[str, int, str]]:
        """(AIP, version, bag path) of every stored file with this sha256: whether a file
        offered for ingest is held already, and where."""
        return [tuple(r) for r in self.execute(
            "SELECT f.aip_id, f.version, f.path FROM files f JOIN aips a ON a.id = f.aip_id "
            "WHERE f.sha256 = ? AND a.state = 'stored' ORDER BY f.aip_id, f.version, f.path",
            (sha256.lower(),))]

    def format_counts(self, aip_id: str | None = None) -> list[tuple[str | None, str | None, int, int]]:
        sql = ("SELECT f.puid, f.format, COUNT(*), CAST(SUM(f.size) AS BIGINT) FROM files f JOIN aips a "
               f"ON a.id = f.aip_id WHERE a.state = 'stored' AND {_PAYLOAD}")
        args: tuple = ()
        if aip_id:
            sql += " AND f.aip_id = ?"
            args = (aip_id,)
        sql += " GROUP BY f.puid, f.format ORDER BY COUNT(*) DESC, f.puid"
        return [tuple(r) for r in self.execute(sql, args)]

    def payload_for_policy(self, aip_ids: list[str] | None = None,
                           collection: str | None = None) -> Iterator[tuple]:
        """(AIP, collection, path, version holding it, size, sha512, puid, mime, format, the
        derivative made from it or None) of every stored payload file, by AIP and path."""
        sql = ("SELECT f.aip_id, a.collection, f.path, f.version, f.size, f.sha512, f.puid, "
               "f.mime, f.format, (SELECT d.derivative FROM derivations d JOIN versions w ON "
               "w.aip_id = d.aip_id AND w.version = d.version AND w.state = 'stored' "
               "WHERE d.aip_id = f.aip_id AND d.source = f.path ORDER BY d.version LIMIT 1) "
               "FROM files f JOIN aips a ON a.id = f.aip_id JOIN versions v ON "
               "v.aip_id = f.aip_id AND v.version = f.version AND v.state = 'stored' "
               f"WHERE a.state = 'stored' AND {_PAYLOAD}")
        where, args = _and_where({"f.aip_id": aip_ids, "a.collection": collection})
        yield from self.execute(sql + where + " ORDER BY f.aip_id, f.path", args)

    def derivations(self, aip_id: str) -> list[tuple[int, str, str, str]]:
        """(version, source, derivative, rule) of each migration of a stored version."""
        return [tuple(r) for r in self.execute(
            "SELECT d.version, d.source, d.derivative, d.rule FROM derivations d JOIN versions v "
            "ON v.aip_id = d.aip_id AND v.version = d.version AND v.state = 'stored' "
            "WHERE d.aip_id = ? ORDER BY d.version, d.source", (aip_id,))]

    def set_identification(self, aip_id: str, version: int, path: str, puid, format_name,
                           format_version, mime, basis, warning, confidence) -> None:
        """A payload file identified again (reidentify): its row takes the new answer."""
        with self.transaction() as db:
            db.execute("UPDATE files SET puid = ?, format = ?, format_version = ?, mime = ?, "
                       "basis = ?, warning = ?, confidence = ? WHERE aip_id = ? AND version = ? "
                       "AND path = ?", (puid, format_name, format_version, mime, basis, warning,
                                        confidence, aip_id, version, path))

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

    def version_info(self, aip_id: str, version: int) -> dict:
        row = self.execute("SELECT files, bytes, payload_oxum, tagmanifest, tagmanifest_sha256, "
                              "inventory_sha512, state FROM versions WHERE aip_id = ? AND "
                              "version = ?", (aip_id, version)).fetchone()
        if row is None:
            raise NotFound(f"AIP {aip_id} has no version {version}")
        return dict(zip(("files", "bytes", "payload_oxum", "tagmanifest",
                         "tagmanifest_sha256", "inventory_sha512", "state"), row, strict=True))


# The rows of the bag of version k of an AIP (parameters: AIP id, k): for each path, its
# row of the highest version up to k (payload is never removed; see the module docstring).
_IN_STATE = ("f.aip_id = ? AND f.version = (SELECT MAX(g.version) FROM files g WHERE "
             "g.aip_id = f.aip_id AND g.path = f.path AND g.version <= ?)")
# A payload row (LIKE would fold case: 'DATA/x' is a tag file).
_PAYLOAD = "substr(f.path, 1, 5) = 'data/'"
# When a replica file was last verified: its own row, else its replica's last whole audit,
# else never (the replica's storing, which verified it; written to the second, so padded to
# the microsecond form audits use, which it must sort before within the same second).
_LAST_CHECK = "COALESCE(c.checked, r.last_audit, substr(r.stored, 1, 19) || '.000000Z')"
# When it was last verified by an audit ('' if never): what "verified since" compares.
_VERIFIED = "COALESCE(c.checked, r.last_audit, '')"


def _insert_problems(db: Catalog, run_id: str, problems: list[tuple]) -> None:
    db.executemany("INSERT INTO audit_problems VALUES (?, ?, ?, ?, ?, ?, ?)",
                   [(run_id, *p) for p in problems])


def _set_checked(db: Catalog, replica: tuple[str, int, str],
                 checks: list[tuple[str, str]]) -> None:
    """(path, when verified, or RECHECK) rows of one replica's files."""
    db.executemany("INSERT INTO file_checks VALUES (?, ?, ?, ?, ?) ON CONFLICT (aip_id, "
                   "version, location, path) DO UPDATE SET checked = excluded.checked",
                   [(*replica, path, when) for path, when in checks])


def _insert_events(db: Catalog, events: list[EventRecord]) -> None:
    """Numbered after the last event recorded (SQLite has one writer at a time; two
    PostgreSQL writers may number two events alike, of two AIPs: each AIP has one writer)."""
    last = db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").scalar()
    db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   [(e.id, e.aip_id, e.type, e.datetime, e.outcome, e.detail, e.outcome_detail,
                     e.agent, e.version, last + n) for n, e in enumerate(events, 1)])


def _and_where(conditions: dict[str, object]) -> tuple[str, list]:
    """" AND column = ?" (or "IN (...)" for a list) for each condition given (None: no
    condition), and their arguments."""
    sql, args = "", []
    for column, value in conditions.items():
        if isinstance(value, list):
            sql += f" AND {column} IN ({', '.join('?' * len(value))})"
            args += value
        elif value is not None:
            sql += f" AND {column} = ?"
            args.append(value)
    return sql, args


def _like_prefix(ref: str) -> str:
    return ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _digests(values) -> dict[str, str]:
    """The recorded digests of a file row, DIGEST_COLUMNS in order; an algorithm not
    recorded (NULL or empty) is left out."""
    return {a: d for a, d in zip(DIGEST_COLUMNS, values, strict=True) if d}


def _first_line(error: Exception) -> str:
    """A database error's own message, its first line."""
    message = str(error).strip()
    return message.splitlines()[0] if message else type(error).__name__
