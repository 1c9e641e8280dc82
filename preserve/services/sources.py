"""What an archivist hands in (the SIP): a folder, a BagIt bag, a zip or a tar file.

Each source is scanned first, without writing anything: every file and empty
directory becomes an Entry with its exact relative name, and every problem
(a link, a device, an unsafe or undecodable name, an encrypted or bomb-like
archive member) is listed so the archivist sees them all at once. Archives
are never extracted with the library's extract functions: their members are
streamed into paths that preserve builds and checks itself.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import tarfile
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from preserve.domain import bag as bagfmt
from preserve.domain.names import (
    UnsafePath,
    check_relative,
    display,
    find_collisions,
    fold,
    nfc,
    special_kind,
)
from preserve.domain.policy import IngestPolicy
from preserve.errors import BagInvalid, SourceRefused
from preserve.infrastructure.scratch import scratch_database

# Archive safety limits: far above any real collection member, far below a bomb.
MAX_MEMBERS = 5_000_000
MAX_RATIO = 1000  # uncompressed / compressed size of one zip member


@dataclass
class Entry:
    path: str                  # payload path relative to data/, exactly as named
    size: int
    ref: str | None = None     # how the source opens it (a file path, a member name, ...)


_SCAN_SCHEMA = """
CREATE TABLE entries(path TEXT NOT NULL, parent TEXT NOT NULL, size INTEGER NOT NULL,
                     ref TEXT, is_dir INTEGER NOT NULL);
CREATE TABLE expected(path TEXT NOT NULL, algorithm TEXT NOT NULL, digest TEXT NOT NULL);
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
        self.bag_info: list[tuple[str, str]] = []
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

    def expected(self, path: str) -> dict[str, str]:
        """The digests a source bag's manifests give for this payload path."""
        return dict(self._done().execute("SELECT algorithm, digest FROM expected "
                                         "WHERE path = ?", (path,)))

    def expected_algorithms(self) -> list[str]:
        return [a for (a,) in self._done().execute(
            "SELECT DISTINCT algorithm FROM expected ORDER BY 1")]

    def holding_folders(self) -> Iterator[str]:
        """Every folder something is in, each of its ancestors too (repeats possible)."""
        for (parent,) in self._done().execute("SELECT DISTINCT parent FROM entries "
                                              "WHERE parent != ''"):
            yield from _ancestors(parent + "/x")

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

    def scan(self, policy: IngestPolicy) -> Scan:
        """Every entry and every problem, without writing anything. The caller closes it."""
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

    def spec(self) -> tuple:
        """A picklable description that a worker process turns back into an opener."""
        return (self.kind, str(self.path))


def open_entry(spec: tuple, ref: object) -> BinaryIO:
    """Open one entry's bytes in whichever process runs the copy."""
    kind, path = spec
    if kind in ("folder", "bag"):
        return open(ref, "rb", buffering=0)
    if kind == "zip":
        return _zip_handle(path).open(ref)
    raise ValueError(f"entries of a {kind} source are opened by its own reader")


_ZIPS: dict[str, zipfile.ZipFile] = {}


def _zip_handle(path: str) -> zipfile.ZipFile:
    if path not in _ZIPS:
        _ZIPS[path] = zipfile.ZipFile(path)
    return _ZIPS[path]


def detect(path: Path) -> Source:
    """Pick the source kind from what is at `path` (not from its name alone)."""
    if not path.exists() and not path.is_symlink():
        raise SourceRefused(f"{path} does not exist")
    if path.is_symlink():
        raise SourceRefused(f"{path} is a symbolic link; give the real folder or file")
    try:
        mode = path.stat().st_mode
    except OSError as e:
        raise SourceRefused(f"{path} cannot be read: {e.strerror}") from e
    if stat.S_ISDIR(mode):
        if (path / "bagit.txt").is_file():
            return BagSource(path)
        return FolderSource(path)
    if not stat.S_ISREG(mode):  # checked before opening: a FIFO or a device never ends
        raise SourceRefused(f"{path} is a {special_kind(mode)}, not a folder or a file; "
                            "nothing was read", hint="ingest a folder, a BagIt bag, a .zip or "
                            "a .tar/.tar.gz")
    if zipfile.is_zipfile(path):
        return ZipSource(path)
    try:
        if tarfile.is_tarfile(path):
            return TarSource(path)
    except OSError:
        pass
    raise SourceRefused(f"{path} is neither a folder, a bag, a zip nor a tar file",
                        hint="ingest a folder, a BagIt bag, a .zip or a .tar/.tar.gz")


def _check_name(rel: str, scan: Scan, where: str) -> bool:
    try:
        check_relative(rel)
        return True
    except UnsafePath as e:
        scan.problems.append(f"{where}: {display(rel)!r}: {e}")
        return False


class FolderSource(Source):
    kind = "folder"

    def _scan(self, scan: Scan, policy: IngestPolicy) -> None:
        self._walk(self.path, "", scan, policy)

    def _walk(self, directory: Path, prefix: str, scan: Scan, policy: IngestPolicy) -> bool:
        """Scan one directory; return True if it holds anything (so empty ones are recorded)."""
        try:
            with os.scandir(directory) as it:
                children = sorted(it, key=lambda e: e.name)
        except OSError as e:
            scan.problems.append(f"cannot read folder {directory}: {e.strerror}")
            return True
        for child in children:
            rel = prefix + os.fsdecode(child.name)
            where = str(Path(child.path))
            if not _check_name(rel, scan, "unusable name"):
                continue
            try:
                st = child.stat(follow_symlinks=False)
            except OSError as e:
                scan.problems.append(f"cannot read {where}: {e.strerror}")
                continue
            if stat.S_ISLNK(st.st_mode):
                self._link(child, rel, scan, policy)
            elif stat.S_ISDIR(st.st_mode):
                if not self._walk(Path(child.path), rel + "/", scan, policy):
                    scan.add_empty_dir(rel)
            elif stat.S_ISREG(st.st_mode):
                scan.add_file(rel, st.st_size, child.path)
            else:
                what = special_kind(st.st_mode)
                if policy.special_files == "skip":
                    scan.skipped.append(f"{what} {display(rel)}")
                else:
                    scan.problems.append(f"{what}: {where}")
        return bool(children)

    def _link(self, child: os.DirEntry, rel: str, scan: Scan, policy: IngestPolicy) -> None:
        target = os.readlink(child.path)
        note = f"symbolic link {display(rel)} -> {display(target)}"
        if policy.links == "skip":
            scan.skipped.append(note)
            return
        if policy.links == "follow-inside":
            real = os.path.realpath(child.path)
            root = os.path.realpath(self.path)
            inside = os.path.commonpath([root, real]) == root
            if inside and os.path.isfile(real) and not os.path.islink(real):
                scan.add_file(rel, os.stat(real).st_size, real)
                return
            reason = "points outside the source" if not inside else "is not a link to a file"
            scan.problems.append(f"{note} ({reason}; only links to files inside the source "
                                 "are followed)")
            return
        scan.problems.append(f"{note} (links are refused: choose --links skip or follow-inside)")


class BagSource(Source):
    """An existing bag: its structure is validated first; its digests are checked during copy."""

    kind = "bag"

    def _scan(self, scan: Scan, policy: IngestPolicy) -> None:
        from preserve.domain.validate import validate_bag

        report = validate_bag(self.path, check_fixity=False)
        if not report.valid:
            raise BagInvalid(f"the bag {self.path} is not valid; nothing was ingested",
                             report.errors,
                             hint=f"'preserve validate {self.path}' shows every finding")
        payload = self.path / "data"
        FolderSource(payload)._walk(payload, "", scan, policy)
        for name in sorted(os.listdir(self.path)):
            m = bagfmt.MANIFEST_RE.match(name)
            if m and not m.group(1):
                scan.db.executemany("INSERT INTO expected VALUES (?, ?, ?)",
                                    self._digests(name, m.group(2).lower()))
        info = self.path / "bag-info.txt"
        if info.is_file():
            items, _ = bagfmt.parse_bag_info(info.read_text(encoding="utf-8-sig"))
            scan.bag_info = [(i.label, i.value) for i in items]

    def _digests(self, manifest: str, algorithm: str) -> Iterator[tuple[str, str, str]]:
        """(payload path, algorithm, digest) of a manifest, read line by line (the bag was
        validated: every line is well formed)."""
        with open(self.path / manifest, encoding="utf-8-sig", newline=None) as lines:
            for line in lines:
                entry = bagfmt.parse_manifest_line(line.rstrip("\n"))
                if not isinstance(entry, str):
                    digest, path = entry
                    yield path[len("data/"):], algorithm, digest


class ZipSource(Source):
    kind = "zip"

    def _scan(self, scan: Scan, policy: IngestPolicy) -> None:
        try:
            zf = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, OSError) as e:
            raise SourceRefused(f"{self.path} cannot be read as a zip file: {e}") from e
        with zf:
            infos = zf.infolist()
            if len(infos) > MAX_MEMBERS:
                raise SourceRefused(f"{self.path} has {len(infos)} members, more than "
                                    f"{MAX_MEMBERS}: refused as a possible zip bomb")
            dirs: set[str] = set()
            for info in infos:
                name = info.filename
                is_dir = name.endswith("/")
                rel = name.rstrip("/")
                where = f"zip member {display(name)!r}"
                if not _new_member(rel, where, scan):
                    continue
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode):
                    if policy.links == "skip":
                        scan.skipped.append(f"symbolic link {display(rel)} (zip member)")
                    else:
                        scan.problems.append(f"{where} is a symbolic link (refused; choose "
                                             "--links skip to leave it out)")
                    continue
                if info.flag_bits & 0x1:
                    scan.problems.append(f"{where} is encrypted; preserve cannot read it")
                    continue
                if is_dir:
                    dirs.add(rel)
                    continue
                if info.compress_size and info.file_size / info.compress_size > MAX_RATIO:
                    scan.problems.append(f"{where} expands {info.file_size} bytes from "
                                         f"{info.compress_size}: refused as a possible zip bomb")
                    continue
                scan.add_file(rel, info.file_size, info.filename)
            _add_empty_dirs(scan, dirs)


def _new_member(rel: str, where: str, scan: Scan) -> bool:
    """An archive member's name is safe and not a repeat of an earlier member's."""
    if not _check_name(rel, scan, where):
        return False
    if not scan.first_time(rel):
        scan.problems.append(f"{where} appears more than once")
        return False
    return True


def _add_empty_dirs(scan: Scan, dirs: set[str]) -> None:
    """Directory members of an archive that contain neither files nor other directories."""
    holding = set(scan.holding_folders())
    for d in dirs:
        holding.update(_ancestors(d))
    for d in sorted(dirs - holding):
        scan.add_empty_dir(d)


def _ancestors(path: str) -> Iterator[str]:
    """"a/b/c" -> "a", "a/b"."""
    parts = path.split("/")
    for i in range(1, len(parts)):
        yield "/".join(parts[:i])


class TarSource(Source):
    """A tar file, optionally compressed. Read in order, in this process (a compressed tar
    cannot be read from several places at once)."""

    kind = "tar"
    parallel = False

    def _scan(self, scan: Scan, policy: IngestPolicy) -> None:
        dirs: set[str] = set()
        try:
            with tarfile.open(self.path, mode="r:*") as tf:
                for count, member in enumerate(_members(tf), start=1):
                    if count > MAX_MEMBERS:
                        raise SourceRefused(f"{self.path} has more than {MAX_MEMBERS} members")
                    rel = member.name.rstrip("/")
                    if rel.startswith("./"):
                        rel = rel[2:]
                    if rel in ("", "."):
                        continue
                    where = f"tar member {display(member.name)!r}"
                    if not _new_member(rel, where, scan):
                        continue
                    if member.issym() or member.islnk():
                        kind = "symbolic link" if member.issym() else "hard link"
                        note = f"{kind} {display(rel)} -> {display(member.linkname)} (tar member)"
                        if policy.links == "skip":
                            scan.skipped.append(note)
                        else:
                            scan.problems.append(f"{note}: refused (choose --links skip to "
                                                 "leave links out)")
                        continue
                    if member.isdir():
                        dirs.add(rel)
                        continue
                    if not member.isfile():
                        note = f"device or FIFO {display(rel)} (tar member)"
                        if policy.special_files == "skip":
                            scan.skipped.append(note)
                        else:
                            scan.problems.append(f"{note}: refused")
                        continue
                    scan.add_file(rel, member.size, member.name)
        except (tarfile.TarError, OSError, EOFError) as e:
            raise SourceRefused(f"{self.path} cannot be read as a tar file: {e}") from e
        _add_empty_dirs(scan, dirs)

    def members(self):
        """Yield (member name, stream) for regular files, in archive order."""
        with tarfile.open(self.path, mode="r:*") as tf:
            for member in _members(tf):
                if member.isfile():
                    yield member.name, tf.extractfile(member)


def _members(tf: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """The members in archive order, without the list of every member that iterating a
    TarFile keeps (millions of members must not mean memory in proportion)."""
    while (member := tf.next()) is not None:
        tf.members.clear()
        yield member
