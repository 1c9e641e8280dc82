"""The catalog's database: where it is (an SQLite file or a PostgreSQL URL, the password
never shown), connecting, the schema check and Alembic migrations, transactions, and the
fragments of SQL (in the dialect both databases speak) that its parts share. The Catalog
(preserve.catalog) is this and its parts by concern."""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from preserve.domain.model import EventRecord
from preserve.errors import ConfigError

# The newest Alembic revision (catalog_migrations/versions): what a new catalog is
# stamped with.
HEAD = "0009_log_copies"
# Every revision, oldest first: a catalog stamped with one of them can be brought to HEAD.
# The tables of a catalog at HEAD (catalog_tables.py makes them; a test keeps the two equal).
TABLES = frozenset({"meta", "aips", "versions", "files", "replicas", "events", "derivations",
                    "audit_runs", "file_checks", "composite_checksums", "audit_problems",
                    "job_results", "log_entries", "log_pending", "log_checkpoints",
                    "file_validations", "search_pages", "rights_statements", "stored_etags",
                    "log_copies", "alembic_version"})
REVISIONS = ("0001_schema4", "0002_event_order", "0003_jobs_digests", "0004_event_log",
             "0005_file_validations", "0006_search", "0007_rights", "0008_stored_etags", HEAD)
# What the `meta` table says of the schema, for the preserve releases before Alembic (which
# read only that): they refuse a catalog past the schema they know.
SCHEMA_VERSION = 5  # 5 is every Alembic revision: they read alembic_version
# Schemas of the storage layout before OCFL (a full bag per version): never released, so
# never converted; a repository made with them is named as such.
BEFORE_OCFL = (1, 2)
# Schemas written before Alembic that its migrations bring to HEAD.
BEFORE_ALEMBIC = (3, 4)
# The meta key present while a catalog is being rebuilt from storage (data/rebuild.py).
REBUILDING = "rebuild"
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


def _connect(where: str | Path, *, autocommit: bool = True, read_only: bool = False):
    """A driver connection to the catalog: psycopg for a server, sqlite3 for a file.
    `read_only`: one that cannot write (the reading room's): SQLite opened with mode=ro,
    PostgreSQL with every transaction read-only."""
    if is_server_url(where):
        import psycopg

        conn = psycopg.connect(libpq_url(str(where)), autocommit=autocommit,
                               application_name="preserve", connect_timeout=10)
        if read_only:
            conn.execute("SET default_transaction_read_only = on")
        return conn
    if read_only:
        conn = sqlite3.connect(f"{Path(where).resolve().as_uri()}?mode=ro", uri=True,
                               timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA query_only = ON")
        return conn
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


class Database:
    """The connection to the catalog at `where` (an SQLite file, or a postgresql:// URL), its
    schema and transactions: what every part of the Catalog (preserve.catalog) stands on."""

    def __init__(self, where: str | Path, *, rebuilding: bool = False,
                 read_only: bool = False):
        """`rebuilding`: open a catalog a rebuild has left under way (only the rebuild
        does: every other command would find half of the repository missing). `read_only`:
        a connection that cannot write (the reading room)."""
        self.server = is_server_url(where)
        if self.server:
            safe_url(str(where))  # a password in the address is refused before any use
        self.where = str(where) if self.server else Path(where)
        self.path = None if self.server else self.where  # the SQLite file
        if not self.server and not self.path.exists():
            raise ConfigError(f"no catalog at {self.path}",
                              hint="run 'preserve init' to create the repository, or "
                                   "'preserve catalog rebuild' to re-create a lost catalog "
                                   "from storage")
        self._begin = "BEGIN" if self.server else "BEGIN IMMEDIATE"
        self._readers: list = []  # idle PostgreSQL connections for streamed reads
        unreachable, unreadable = _driver_errors(self.server)
        self.conn = None
        try:
            self.conn = _connect(self.where, read_only=read_only)
            self._check_schema()
            if not rebuilding and self.execute("SELECT 1 FROM meta WHERE key = ?",
                                               (REBUILDING,)).fetchone():
                raise ConfigError(f"the catalog {self.describe()} is being rebuilt from "
                                  "storage (or its rebuild was interrupted): it is not whole",
                                  hint="run 'preserve catalog rebuild' again: it goes on where "
                                       "it stopped")
        except ConfigError:
            self.close()
            raise
        except unreachable as e:
            self.close()
            raise ConfigError(f"cannot reach the catalog {self.describe()}: "
                              f"{first_line(e)}",
                              hint="check that the database server is running and that "
                                   "PGUSER/PGPASSWORD or ~/.pgpass let you in" if self.server
                              else "restore it from backup or rebuild it from storage") from e
        except unreadable as e:
            self.close()
            raise ConfigError(f"the catalog {self.describe()} cannot be read: {first_line(e)}",
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
    def transaction(self) -> Iterator[Database]:
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

    def stream(self, sql: str, args: Iterable = ()) -> Iterator[tuple]:
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


# The rows of the bag of version k of an AIP (parameters: AIP id, k): for each path, its
# row of the highest version up to k (payload is never removed; see the module docstring).
IN_STATE = ("f.aip_id = ? AND f.version = (SELECT MAX(g.version) FROM files g WHERE "
             "g.aip_id = f.aip_id AND g.path = f.path AND g.version <= ?)")
# A payload row (LIKE would fold case: 'DATA/x' is a tag file).
PAYLOAD = "substr(f.path, 1, 5) = 'data/'"
# When a replica file was last verified: its own row, else its replica's last whole audit,
# else never (the replica's storing, which verified it; written to the second, so padded to
# the microsecond form audits use, which it must sort before within the same second).
LAST_CHECK = "COALESCE(c.checked, r.last_audit, substr(r.stored, 1, 19) || '.000000Z')"
# When it was last verified by an audit ('' if never): what "verified since" compares.
VERIFIED = "COALESCE(c.checked, r.last_audit, '')"


def insert_problems(db: Database, run_id: str, problems: list[tuple]) -> None:
    db.executemany("INSERT INTO audit_problems VALUES (?, ?, ?, ?, ?, ?, ?)",
                   [(run_id, *p) for p in problems])


def set_checked(db: Database, replica: tuple[str, int, str],
                 checks: list[tuple[str, str]], *, log: bool = True) -> None:
    """(path, when verified, or RECHECK) rows of one replica's files."""
    db.executemany("INSERT INTO file_checks VALUES (?, ?, ?, ?, ?) ON CONFLICT (aip_id, "
                   "version, location, path) DO UPDATE SET checked = excluded.checked",
                   [(*replica, path, when) for path, when in checks])
    if checks and log:  # an audit logs the replica's rows once, when it closes the replica
        log_replica(db, replica, "checked", checks=[list(c) for c in checks])


def insert_events(db: Database, events: list[EventRecord]) -> None:
    """Numbered after the last event recorded (SQLite has one writer at a time; two
    PostgreSQL writers may number two events alike, of two AIPs: each AIP has one writer)."""
    last = db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").scalar()
    db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   [(e.id, e.aip_id, e.type, e.datetime, e.outcome, e.detail, e.outcome_detail,
                     e.agent, e.version, last + n, e.record)
                    for n, e in enumerate(events, 1)])


def queue_log_entry(db: Database, aip_id: str | None, body: dict) -> None:
    """A change the event log must carry for a rebuild (storage/history.py signs it with
    the events): in the transaction of the change itself."""
    last = db.execute("SELECT COALESCE(MAX(seq), 0) FROM log_pending").scalar()
    db.execute("INSERT INTO log_pending VALUES (?, ?, ?, ?)",
               (str(uuid.uuid4()), aip_id, json.dumps(body, sort_keys=True,
                                                      separators=(",", ":"),
                                                      ensure_ascii=False), last + 1))


def log_replica(db: Database, replica: tuple[str, int, str], op: str, **fields) -> None:
    """One change of a replica's rows (replicas, file_checks, composite_checksums)."""
    aip, version, location = replica
    queue_log_entry(db, aip, {"kind": "replica", "op": op, "aip": aip, "version": version,
                              "location": location, **fields})


def and_where(conditions: dict[str, object]) -> tuple[str, list]:
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


def like_prefix(ref: str) -> str:
    return ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def row_digests(values) -> dict[str, str]:
    """The recorded digests of a file row, DIGEST_COLUMNS in order; an algorithm not
    recorded (NULL or empty) is left out."""
    return {a: d for a, d in zip(DIGEST_COLUMNS, values, strict=True) if d}


def first_line(error: Exception) -> str:
    """A database error's own message, its first line."""
    message = str(error).strip()
    return message.splitlines()[0] if message else type(error).__name__
