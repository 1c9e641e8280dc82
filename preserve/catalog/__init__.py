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

One text of SQL for both databases: the tables are declared in tables.py (SQLAlchemy
Core; a new catalog is made from them), changes to them are Alembic migrations
(migrations/), and the statements here are written in the SQL both speak (upserts
as ON CONFLICT, no rowid, sums cast to 64 bits). Statements are written with `?`
placeholders, bound by position, and run on the driver's own connection (sqlite3, or
psycopg with `%s` placeholders): SQLAlchemy and Alembic are imported only to create or
migrate a catalog, since importing them costs every command 0.25 s and 18 MiB (issue 11).
The connection is in autocommit mode; `transaction()` opens real transactions itself, so
that on SQLite a writer takes the write lock at once (BEGIN IMMEDIATE: two processes never
deadlock upgrading a read lock) and readers never hold one.
"""

from __future__ import annotations

from preserve.catalog.aips import Aips
from preserve.catalog.audits import Audits
from preserve.catalog.database import Database
from preserve.catalog.events import Events
from preserve.catalog.files import Files
from preserve.catalog.jobs import Jobs
from preserve.catalog.log import EventLog
from preserve.catalog.replicas import Replicas
from preserve.catalog.rights import Rights
from preserve.catalog.search import Search
from preserve.catalog.stats import Stats
from preserve.catalog.validations import Validations


class Catalog(Aips, Files, Replicas, Audits, Events, EventLog, Jobs, Stats, Validations,
              Search, Rights, Database):
    """The catalog at `where`: an SQLite file, or a postgresql:// URL. One class of parts
    by concern (AIPs and versions, files, replicas, audits, events, the event log, jobs), each in its own
    module, on one connection (database.py)."""
