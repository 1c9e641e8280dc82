"""Scratch databases: per-file working sets kept on disk, so memory does not grow with them.

A collection can hold millions of files. Whatever must be known about all of
them at once (the names scanned from a source, the lines of a bag's
manifests) goes into a private temporary SQLite database instead of Python
lists and dicts. SQLite keeps such a database in a page cache of bounded
size and spills to an unlinked temporary file only when it outgrows the
cache: a small bag costs about what dicts would, a huge one costs disk, not
memory. Nothing is left behind: the file is gone when the connection closes,
whatever way the process ends.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

# The page cache: all the memory a scratch database may use. What spills goes to the OS
# page cache, so a small cache costs little: validating 200,000 files took 6.85 s with
# 4 MiB and 7.02 s with 16, and the ingest main process peaked at 38 MiB instead of 77.
CACHE_MIB = 4


@contextmanager
def scratch_database(schema: str = "") -> Iterator[sqlite3.Connection]:
    """A private temporary database with `schema` applied, closed (and gone) on exit.

    Durability is switched off: a scratch database never outlives its process. Fill it
    with `executemany` over a generator: sqlite3 consumes the rows as they come.
    """
    db = sqlite3.connect("", isolation_level=None, check_same_thread=False)
    try:
        db.execute(f"PRAGMA cache_size=-{CACHE_MIB * 1024}")
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        db.execute("PRAGMA temp_store=FILE")
        db.executescript(schema)
        db.execute("BEGIN")
        yield db
    finally:
        db.close()

