"""A source's scan: every entry and every problem, before anything is written.

Each source (ingest/sources.py: folders and bags; ingest/archives.py: zip and tar) fills
a Scan: every file and empty directory becomes an Entry with its exact relative name, and
every problem (a link, a device, an unsafe or undecodable name, an encrypted or bomb-like
archive member) is listed so the archivist sees them all at once. The names go to a
private scratch database, so memory does not grow with the number of files.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from preserve.domain.names import UnsafePath, check_relative, display, find_collisions, fold, nfc
from preserve.pipeline.entries import file_stamp

if TYPE_CHECKING:  # the copy workers import this module: they need neither (issue 11)
    import sqlite3

    from preserve.domain.policy import IngestPolicy


@dataclass
class Entry:
    path: str                  # payload path relative to data/, exactly as named
    size: int
    ref: str | None = None     # how the source opens it (a file path, a member name, ...)


_SCAN_SCHEMA = """
CREATE TABLE entries(path TEXT NOT NULL, parent TEXT NOT NULL, size INTEGER NOT NULL,
                     ref TEXT, is_dir INTEGER NOT NULL);
CREATE TABLE expected(path TEXT NOT NULL, algorithm TEXT NOT NULL, digest TEXT NOT NULL,
                      tag INTEGER NOT NULL);
CREATE TABLE names(name TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE members(name TEXT PRIMARY KEY) WITHOUT ROWID;
"""


class Scan:
    """What a scan found: every file and empty directory of the source, and a source bag's
    digests, kept in a scratch database (a collection may hold millions of files, and
    memory must not grow with them); the problems, skipped items and bag-info, which the
    archivist reads, in memory. Use it as a context manager: closing drops the database."""

    FLUSH = 5000

    def __init__(self) -> None:
        self.problems: list[str] = []   # refusals: nothing will be written
        self.skipped: list[str] = []    # left out by policy, recorded
        self.notes: list[str] = []      # what the archivist should know, recorded in PREMIS
        self.bag: BagFacts | None = None  # what validation found, for a source bag
        from preserve.system.scratch import scratch_database

        self._database = scratch_database(_SCAN_SCHEMA)
        self.db = self._database.__enter__()
        self._pending: list[tuple] = []
        self._indexed = False

    def __enter__(self) -> Scan:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._database.__exit__(None, None, None)

    # -- filled by the sources -------------------------------------------------------------

    def add_file(self, path: str, size: int, ref: str) -> None:
        self._add((path, os.path.dirname(path), size, ref, 0))

    def add_empty_dir(self, path: str) -> None:
        self._add((path, os.path.dirname(path), 0, None, 1))

    def first_time(self, member: str) -> bool:
        """True the first time an archive member's name comes by (remembered on disk: an
        archive may hold millions of members)."""
        return self.db.execute("INSERT OR IGNORE INTO members VALUES (?)",
                               (member,)).rowcount == 1

    def _add(self, row: tuple) -> None:
        self._pending.append(row)
        if len(self._pending) >= self.FLUSH:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self.db.executemany("INSERT INTO entries VALUES (?, ?, ?, ?, ?)", self._pending)
            self._pending = []

    def _done(self) -> sqlite3.Connection:
        """The database, every entry in it and indexed (once) for the questions below."""
        self._flush()
        if not self._indexed:
            self.db.execute("CREATE INDEX entries_by_ref ON entries(ref)")
            self.db.execute("CREATE INDEX expected_by_path ON expected(path)")
            self._indexed = True
        return self.db

    # -- asked by ingest ---------------------------------------------------------------

    def totals(self) -> tuple[int, int, int]:
        """(files, bytes, empty directories)."""
        files, nbytes, dirs = self._done().execute(
            "SELECT count(*) - sum(is_dir), coalesce(sum(size), 0), coalesce(sum(is_dir), 0) "
            "FROM entries").fetchone()
        return files or 0, nbytes, dirs

    def files_biggest_first(self) -> Iterator[Entry]:
        for path, size, ref in self._done().execute(
                "SELECT path, size, ref FROM entries WHERE is_dir = 0 ORDER BY size DESC, path"):
            yield Entry(path, size, ref)

    def file_by_ref(self, ref: str) -> Entry | None:
        row = self._done().execute("SELECT path, size FROM entries WHERE ref = ? AND "
                                   "is_dir = 0", (ref,)).fetchone()
        return Entry(row[0], row[1], ref) if row else None

    def empty_dirs(self) -> Iterator[str]:
        for (path,) in self._done().execute("SELECT path FROM entries WHERE is_dir = 1 "
                                            "ORDER BY path"):
            yield path

    def folders(self) -> Iterator[str]:
        """Every folder that holds a file, parents before children."""
        for (parent,) in self._done().execute("SELECT DISTINCT parent FROM entries "
                                              "WHERE is_dir = 0 AND parent != '' ORDER BY 1"):
            yield parent

    def expected(self, path: str, *, tag: bool = False) -> dict[str, str]:
        """The digests a source bag's manifests give for this payload path (relative to the
        AIP's data/), or its tag manifests for this tag file."""
        return dict(self._done().execute("SELECT algorithm, digest FROM expected "
                                         "WHERE path = ? AND tag = ?", (path, int(tag))))

    def expected_algorithms(self) -> list[str]:
        """The payload manifests' algorithms (each one is verified on every copy)."""
        return [a for (a,) in self._done().execute(
            "SELECT DISTINCT algorithm FROM expected WHERE tag = 0 ORDER BY 1")]

    def take_manifest_lines(self, lines, *, strip_data: bool) -> None:
        """validate_bag's resolved manifest lines (path as on disk, algorithm, digest, kind)
        become expected digests: payload ones keyed as the AIP will name them (without
        'data/' when the bag's payload becomes the AIP's payload), tag ones as they are."""
        from preserve.ingest.validation import PAYLOAD

        def rows():
            for path, algorithm, digest, kind in lines:
                if kind == PAYLOAD:
                    yield (path[5:] if strip_data else path), algorithm, digest, 0
                else:
                    yield path, algorithm, digest, int(strip_data)

        self.db.executemany("INSERT INTO expected VALUES (?, ?, ?, ?)", rows())

    def holding_folders(self) -> Iterator[str]:
        """Every folder something is in, each of its ancestors too (repeats possible)."""
        for (parent,) in self._done().execute("SELECT DISTINCT parent FROM entries "
                                              "WHERE parent != ''"):
            yield from ancestors(parent + "/x")

    def files_that_are_folders(self) -> list[str]:
        """Files whose name is also a folder on the way to another entry ('a' and 'a/b' in
        one archive): no filesystem can hold both (red-team cases 30, 31)."""
        db = self._done()
        db.execute("CREATE TEMP TABLE IF NOT EXISTS folders(name TEXT PRIMARY KEY) "
                   "WITHOUT ROWID")
        db.execute("DELETE FROM folders")
        db.executemany("INSERT OR IGNORE INTO folders VALUES (?)",
                       ((folder,) for folder in self.holding_folders()))
        return [path for (path,) in db.execute(
            "SELECT path FROM entries WHERE is_dir = 0 AND path IN (SELECT name FROM folders) "
            "ORDER BY path")]

    def collisions(self) -> tuple[list[list[str]], list[list[str]]]:
        """names.find_collisions over every name (files, empty folders, every folder on the
        way), asked only about the few names whose normalised or folded form is shared."""
        db = self._done()
        db.create_function("nfc", 1, nfc, deterministic=True)
        db.create_function("fold", 1, fold, deterministic=True)
        db.execute("DELETE FROM names")
        db.executemany("INSERT OR IGNORE INTO names VALUES (?)",
                       ((folder,) for folder in self.holding_folders()))
        db.execute("INSERT OR IGNORE INTO names SELECT path FROM entries")
        shared = [name for (name,) in db.execute(
            "SELECT name FROM names WHERE nfc(name) IN (SELECT nfc(name) FROM names "
            "GROUP BY 1 HAVING count(*) > 1) OR fold(name) IN (SELECT fold(name) FROM names "
            "GROUP BY 1 HAVING count(*) > 1)")]
        return find_collisions(shared)


class Source(ABC):
    kind = "?"
    parallel = True  # may several worker processes read it at once?

    def __init__(self, path: Path):
        self.path = path
        self.origin = path  # what the archivist gave: an archive a bag was unpacked from
        self.stamp: tuple | None = None

    def scan(self, policy: IngestPolicy) -> Scan:
        """Every entry and every problem, without writing anything. The caller closes it."""
        self.stamp = file_stamp(self.path.stat()) if self.path.is_file() else None
        scan = Scan()
        try:
            self._scan(scan, policy)
        except BaseException:
            scan.close()
            raise
        return scan

    @abstractmethod
    def _scan(self, scan: Scan, policy: IngestPolicy) -> None:
        """Fill `scan`."""

    def changed(self) -> bool:
        """An archive changed since its scan (a rewrite in place while it was read)."""
        return self.stamp is not None and file_stamp(self.path.stat()) != self.stamp

    def spec(self) -> tuple:
        """A picklable description that a worker process turns back into an opener."""
        return (self.kind, str(self.path))


def check_name(rel: str, scan: Scan, where: str) -> bool:
    try:
        check_relative(rel)
        return True
    except UnsafePath as e:
        scan.problems.append(f"{where}: {display(rel)!r}: {e}")
        return False


@dataclass
class BagFacts:
    """What validating a source bag found, and its tag files (bagit.txt, bag-info.txt,
    manifests, and any others such as metadata/mods.xml or aptrust-info.txt), which ingest
    keeps in the AIP, never drops."""

    version: str | None
    encoding: str
    warnings: list[str]
    errors: list[str]                  # only when ingested as a folder
    tag_files: list[tuple[str, int]]   # (path in the bag, size)


def ancestors(path: str) -> Iterator[str]:
    """"a/b/c" -> "a", "a/b"."""
    parts = path.split("/")
    for i in range(1, len(parts)):
        yield "/".join(parts[:i])
