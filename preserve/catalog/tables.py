"""The catalog's tables, once, for SQLite and PostgreSQL (SQLAlchemy Core).

This is the schema at the newest migration (catalog_migrations/versions): a new catalog is
made from it and stamped with catalog.HEAD; an older one is brought here by those migrations.

Dates are ISO 8601 text in UTC (clock.now_utc), compared as text in both databases. Sizes
and byte counts are 64-bit. Paths are text, stored exactly as named and compared exactly
(PostgreSQL's "C" collation where an order is asked, so both databases sort them by code
point). Content tables have no rowid in SQLite (their primary key is the row)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.dialects.postgresql import TSVECTOR

metadata = MetaData()
NO_ROWID = {"sqlite_with_rowid": False}
# Paths (and the names compared with them) sort by code point in both databases.
PATH = Text().with_variant(Text(collation="C"), "postgresql")


def _aip_ref() -> Column:
    return Column("aip_id", Text, ForeignKey("aips.id", ondelete="CASCADE"), nullable=False)


meta = Table("meta", metadata, Column("key", Text, primary_key=True),
             Column("value", Text, nullable=False))

aips = Table(
    "aips", metadata,
    Column("id", Text, primary_key=True),
    Column("collection", Text, nullable=False),
    Column("title", Text),
    Column("state", Text, CheckConstraint("state IN ('staging', 'stored')"), nullable=False),
    Column("created", Text, nullable=False),
    Column("source", PATH),
    Column("source_kind", Text),
    Index("aips_collection", "collection"),
)

versions = Table(
    "versions", metadata,
    _aip_ref(),
    Column("version", Integer, nullable=False),
    Column("created", Text, nullable=False),
    Column("files", BigInteger, nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("payload_oxum", Text, nullable=False),
    Column("tagmanifest", Text, nullable=False),
    Column("tagmanifest_sha256", Text, nullable=False),
    Column("inventory_sha512", Text, nullable=False),
    Column("message", Text, nullable=False),
    Column("user_name", Text, nullable=False),
    Column("user_address", Text),
    Column("title", Text),
    Column("state", Text, CheckConstraint("state IN ('staging', 'stored')"), nullable=False),
    PrimaryKeyConstraint("aip_id", "version"),
)

files = Table(
    "files", metadata,
    Column("aip_id", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("path", PATH, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", Text),
    Column("sha512", Text),
    Column("xxh3_128", Text),
    Column("puid", Text),
    Column("format", Text),
    Column("format_version", Text),
    Column("mime", Text),
    Column("basis", Text),
    Column("warning", Text),
    Column("confidence", Text),
    Column("magic_mime", Text),
    Column("magic_description", Text),
    PrimaryKeyConstraint("aip_id", "version", "path"),
    ForeignKeyConstraint(["aip_id"], ["aips.id"], ondelete="CASCADE"),
    Index("files_puid", "puid"),
    Index("files_by_path", "aip_id", "path", "version"),
    Index("files_sha256", "sha256"),  # "do we hold this file already, and where?"
    **NO_ROWID,
)

# What a check of each file's content found (issue 26): a format validation, a virus
# scan. One row a file and check, the newest verdict (the PREMIS events keep them all).
file_validations = Table(
    "file_validations", metadata,
    Column("aip_id", Text, nullable=False),
    Column("version", Integer, nullable=False),  # the version of the file's row in `files`
    Column("path", PATH, nullable=False),
    Column("check_type", Text, nullable=False),  # "validation" or "virus check"
    Column("status", Text, nullable=False),  # valid, invalid, encrypted, not checked;
    Column("detail", Text),                   # infected, not scanned
    Column("tools", Text),
    Column("checked", Text, nullable=False),
    Column("event", Text),  # the PREMIS event's identifier
    PrimaryKeyConstraint("aip_id", "version", "path", "check_type"),
    ForeignKeyConstraint(["aip_id"], ["aips.id"], ondelete="CASCADE"),
    Index("file_validations_status", "check_type", "status"),
    **NO_ROWID,
)

# The full-text search index (issue 27): a row per AIP (its descriptive metadata), per
# payload file (its name and format) and per page of a file's extracted text (kept in the
# AIP under metadata/text/). `keys` are the words' search keys (domain/words.py), which the
# engine indexes: FTS5 in SQLite (search_fts, kept by triggers), a GIN index of the keys
# as lexemes in PostgreSQL. `id` is only the row's number for FTS5 (never compared).
search_pages = Table(
    "search_pages", metadata,
    Column("id", Integer().with_variant(BigInteger, "postgresql"), primary_key=True,
           autoincrement=True, info={"surrogate": True}),
    Column("aip_id", Text, nullable=False),
    Column("version", Integer, nullable=False),  # the AIP's version indexed
    Column("collection", Text, nullable=False),
    Column("path", PATH, nullable=False),  # '' for the AIP's own row
    Column("page", Integer, nullable=False),  # 0: the file's name and format; 1...: pages
    Column("kind", Text, nullable=False),  # aip, file, text, ocr
    Column("puid", Text),
    Column("text", Text, nullable=False),
    Column("keys", Text, nullable=False),
    # PostgreSQL: the keys as lexemes, taken literally (array_to_tsvector: no parser, no
    # dictionary), stored, so that ranking never makes them again; NULL in SQLite (FTS5).
    Column("tsv", Text().with_variant(TSVECTOR(), "postgresql"), info={"surrogate": True}),
    ForeignKeyConstraint(["aip_id"], ["aips.id"], ondelete="CASCADE"),
    UniqueConstraint("aip_id", "path", "page"),
    info={"derived": True},  # made from the AIPs' text whenever stale (data/search_index.py)
)
# What each database indexes the keys with, made with the table (here and by Alembic).
SEARCH_DDL = {
    "sqlite": [
        "CREATE VIRTUAL TABLE search_fts USING fts5(keys, content='search_pages', "
        "content_rowid='id', tokenize='unicode61 remove_diacritics 0')",
        "CREATE TRIGGER search_pages_added AFTER INSERT ON search_pages BEGIN "
        "INSERT INTO search_fts(rowid, keys) VALUES (new.id, new.keys); END",
        "CREATE TRIGGER search_pages_removed AFTER DELETE ON search_pages BEGIN "
        "INSERT INTO search_fts(search_fts, rowid, keys) VALUES ('delete', old.id, old.keys); "
        "END",
    ],
}
# PostgreSQL's: a GIN index of the stored lexemes.
Index("search_pages_tsv", search_pages.c.tsv, postgresql_using="gin").ddl_if(
    dialect="postgresql")


def _search_ddl(target, connection, **_kw) -> None:
    for statement in SEARCH_DDL.get(connection.dialect.name, []):
        connection.exec_driver_sql(statement)


event.listen(search_pages, "after_create", _search_ddl)

# Rights statements (issue 28): each as the version that recorded it holds it in its PREMIS
# (domain/premis.rights_xml); the newest stored one governs (domain/rights.decide).
rights_statements = Table(
    "rights_statements", metadata,
    _aip_ref(),
    Column("version", Integer, nullable=False),
    Column("statement_id", Text, nullable=False),
    Column("recorded", Text, nullable=False),
    Column("body", Text, nullable=False),  # the statement as JSON (RightsStatement)
    PrimaryKeyConstraint("aip_id", "statement_id"),
    Index("rights_statements_version", "aip_id", "version"),
)

replicas = Table(
    "replicas", metadata,
    _aip_ref(),
    Column("version", Integer, nullable=False),
    Column("location", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("stored", Text, nullable=False),
    Column("last_audit", Text),
    PrimaryKeyConstraint("aip_id", "version", "location"),
)

events = Table(
    "events", metadata,
    Column("id", Text, primary_key=True),
    _aip_ref(),
    Column("type", Text, nullable=False),
    Column("datetime", Text, nullable=False),
    Column("outcome", Text, nullable=False),
    Column("detail", Text, nullable=False),
    Column("outcome_detail", Text),
    Column("agent", Text),
    Column("version", Integer),
    # The order events were recorded in (several share a second).
    Column("seq", BigInteger),
    # Where its PREMIS record is kept when not in a version: JSON {"location", "file",
    # "sha256"} of the object's logs/ document (the event log names it: history.py).
    Column("record", Text),
    Index("events_aip", "aip_id"),
    Index("events_seq", "seq"),
)

# Which payload file a migration derived from which (PREMIS: the derivative's derivation
# relationship and the migration event in the version's premis-v<n>.xml say the same).
derivations = Table(
    "derivations", metadata,
    _aip_ref(),
    Column("version", Integer, nullable=False),
    Column("source", PATH, nullable=False),
    Column("derivative", PATH, nullable=False),
    Column("rule", Text, nullable=False),
    Column("event_id", Text, nullable=False),
    PrimaryKeyConstraint("aip_id", "derivative"),
    Index("derivations_source", "aip_id", "source"),
    **NO_ROWID,
)

audit_runs = Table(
    "audit_runs", metadata,
    Column("id", Text, primary_key=True),
    Column("started", Text, nullable=False),
    Column("finished", Text),
    Column("kind", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("replicas", BigInteger, nullable=False, server_default="0"),
    Column("files", BigInteger, nullable=False, server_default="0"),
    Column("bytes", BigInteger, nullable=False, server_default="0"),
    Column("scope", Text),
)

# When each replica file was last verified, for files audited apart from the rest of their
# replica (sampling, an interrupted run, damage). A file without a row was last verified
# with its whole replica (replicas.last_audit), or never (replicas.stored).
file_checks = Table(
    "file_checks", metadata,
    _aip_ref(),
    Column("version", Integer, nullable=False),
    Column("location", Text, nullable=False),
    Column("path", PATH, nullable=False),
    Column("checked", Text, nullable=False),
    PrimaryKeyConstraint("aip_id", "version", "location", "path"),
    **NO_ROWID,
)

# The store's composite checksum of each file uploaded in parts (a few large files per AIP),
# as it reported it at upload: quick S3 audits compare it, so a replaced object is caught
# without reading it.
composite_checksums = Table(
    "composite_checksums", metadata,
    _aip_ref(),
    Column("version", Integer, nullable=False),
    Column("location", Text, nullable=False),
    Column("path", PATH, nullable=False),
    Column("checksum", Text, nullable=False),
    PrimaryKeyConstraint("aip_id", "version", "location", "path"),
    **NO_ROWID,
)

# The ETag each object of a replica had when preserve wrote it and verified it (or when an
# audit last verified it by the store's checksum or by reading it): a quick audit of an
# object store compares its listing with these, one request per thousand objects instead
# of one per object (issue 29). What the stores answered, not a record of the AIPs: never
# in the event log (a row per file), so a catalog rebuilt from storage starts without
# them and the next quick audit of each location asks each object once and learns them.
stored_etags = Table(
    "stored_etags", metadata,
    _aip_ref(),
    Column("version", Integer, nullable=False),
    Column("location", Text, nullable=False),
    Column("path", PATH, nullable=False),
    Column("etag", Text, nullable=False),
    PrimaryKeyConstraint("aip_id", "version", "location", "path"),
    info={"store_answers": True},
    **NO_ROWID,
)

audit_problems = Table(
    "audit_problems", metadata,
    Column("run_id", Text, ForeignKey("audit_runs.id", ondelete="CASCADE"), nullable=False),
    Column("aip_id", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("location", Text, nullable=False),
    Column("path", PATH),
    Column("kind", Text, nullable=False),
    Column("detail", Text, nullable=False),
    Index("audit_problems_run", "run_id"),
)

# What each job of the queue (a PostgreSQL catalog's) did: its result as JSON (an audit's
# as `audit --json` gives it) or its error. A job delivered again after it finished finds
# its result here and does nothing twice (queue delivery is at least once).
job_results = Table(
    "job_results", metadata,
    Column("job_id", BigInteger, primary_key=True, autoincrement=False),
    Column("task", Text, nullable=False),
    Column("aip_id", Text),
    Column("status", Text, nullable=False),
    Column("result", Text),
    Column("error", Text),
    Column("finished", Text, nullable=False),
    Column("worker", Text),
)

# The tamper-evident event log (storage/history.py): every event as one canonical JSON
# entry, numbered in the order it joined the log; the entries are the leaves of an RFC 9162
# Merkle tree. Copies of both tables are in every storage location (extensions/preserve-log).
log_entries = Table(
    "log_entries", metadata,
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("entry_id", Text, nullable=False, unique=True),
    Column("aip_id", Text),  # what an audit of one AIP reads (no foreign key: the log
    Column("entry", Text, nullable=False),  # outlives what it names)
    Index("log_entries_aip", "aip_id"),
)

# What the catalog changed that is no event but that a rebuilt catalog must know again
# (a copy stored, files verified, an audit run and its problems): JSON bodies waiting to
# join the log (in `seq` order), removed once they have.
log_pending = Table(
    "log_pending", metadata,
    Column("entry_id", Text, primary_key=True),
    Column("aip_id", Text),
    Column("body", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
)

# The signed checkpoint made each time entries joined the log: the tree's size and root,
# the subtree roots from which the next root is computed without reading the log again
# (the "frontier"), and the signed note (domain/checkpoint.py).
log_checkpoints = Table(
    "log_checkpoints", metadata,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("root", Text, nullable=False),
    Column("frontier", Text, nullable=False),
    Column("note", Text, nullable=False),
)

# How far each location was found holding the event log (issue 29): a command copies what
# was signed since, listing from there, not years of segments first. What the locations
# showed, not a record: a rebuilt catalog lists each location in full once.
log_copies = Table(
    "log_copies", metadata,
    Column("location", Text, primary_key=True),
    Column("size", BigInteger, nullable=False),
    info={"store_answers": True},
)
