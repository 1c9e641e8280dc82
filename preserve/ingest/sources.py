"""What an archivist hands in (the SIP): a folder, a BagIt bag, a zip or a tar file.

Each source is scanned first, without writing anything: every file and empty
directory becomes an Entry with its exact relative name, and every problem
(a link, a device, an unsafe or undecodable name, an encrypted or bomb-like
archive member) is listed so the archivist sees them all at once. Archives
are never extracted with the library's extract functions: their members are
streamed into paths that preserve builds and checks itself.
"""

from __future__ import annotations

import lzma
import os
import stat
import tarfile
import zipfile
import zlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from preserve.domain.fixity import open_regular
from preserve.domain.names import (
    UnsafePath,
    check_relative,
    display,
    find_collisions,
    fold,
    nfc,
    special_kind,
)
from preserve.errors import BagInvalid, SourceRefused

if TYPE_CHECKING:  # the copy workers import this module: they need neither (issue 11)
    import sqlite3

    from preserve.domain.policy import IngestPolicy

# Archive safety limit: far above any real collection, far below a bomb. What archives may
# expand to is the policy's (IngestPolicy.archive_max_ratio).
MAX_MEMBERS = 5_000_000
FINDINGS_KEPT = 1000  # a source bag's validation findings kept to report and record

# What reading a damaged or unreadable archive raises: each is a fault of the source,
# never a bug in preserve.
ARCHIVE_ERRORS = (
    OSError,              # gzip's CRC and length checks, bzip2's bad streams, read errors
    EOFError,             # a compressed stream that ends early (truncated)
    zipfile.BadZipFile,   # a bad CRC, a header name that differs from the directory's
    tarfile.TarError,     # a damaged tar header
    zlib.error,           # corrupt deflate data inside a zip member
    lzma.LZMAError,       # corrupt xz data
    NotImplementedError,  # zipfile: a member compressed with a method it cannot read
    RuntimeError,         # zipfile: an encrypted member (refused at scan; a changed zip)
)


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
            yield from _ancestors(parent + "/x")

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


def _bag_facts(path: Path, scan: Scan, *, strip_data: bool,
               strict: bool, shown: Path | None = None) -> BagFacts:
    """Validate the bag's structure (no payload hashing: ingest hashes each byte once, as it
    copies) and take its resolved manifest lines as the digests the copies must have.
    `shown`: how messages name the bag (the archive a packed bag came in)."""
    from preserve.ingest.validation import validate_bag

    report = validate_bag(path, check_fixity=False,
                          on_lines=lambda lines: scan.take_manifest_lines(
                              lines, strip_data=strip_data))
    findings = report.findings
    count = findings.count

    def described(severity: str) -> list[str]:
        kept = [f"{f.code} {f.location()}: {f.message}"
                for f in findings.first(severity, FINDINGS_KEPT)]
        if count[severity] > FINDINGS_KEPT:
            kept.append(f"and {count[severity] - FINDINGS_KEPT} more {severity}(s)")
        return kept

    path = shown or path
    try:
        if strip_data and not report.valid:
            raise BagInvalid(f"the bag {path} is not valid ({count['error']} error(s)); "
                             "nothing was ingested", findings.first("error", FINDINGS_KEPT),
                             hint=f"'preserve validate {path}' shows every finding; "
                                  "--as-folder ingests it as a plain folder, its manifests "
                                  "kept and its digests checked and reported")
        if strip_data and strict and count["warning"]:
            raise BagInvalid(f"the bag {path} is valid but has {count['warning']} warning(s), "
                             "and --strict refuses those; nothing was ingested",
                             findings.first("warning", FINDINGS_KEPT),
                             hint="ingest without --strict to accept it, each warning "
                                  "recorded")
        return BagFacts(report.version, report.encoding or "utf-8", described("warning"),
                        described("error"), report.tag_files)
    finally:
        findings.close()


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


ON_DISK = ("folder", "bag", "bag-as-folder")  # source kinds whose entries are files


def file_stamp(st: os.stat_result) -> tuple:
    """What changes when a file's content may have: size, modification and change times
    (ns), and which file it is."""
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev


def open_entry(spec: tuple, ref: object) -> BinaryIO:
    """Open one entry's bytes in whichever process runs the copy."""
    kind, path = spec
    if kind in ON_DISK:
        return open_regular(ref, follow=True)
    if kind == "zip":  # by index: two members may carry one name
        handle = _zip_handle(path)
        return handle.open(handle.infolist()[int(ref)])
    raise ValueError(f"entries of a {kind} source are opened by its own reader")


_ZIPS: dict[str, zipfile.ZipFile] = {}


def _zip_handle(path: str) -> zipfile.ZipFile:
    if path not in _ZIPS:
        _ZIPS[path] = zipfile.ZipFile(path)
    return _ZIPS[path]


def detect(path: Path, *, strict: bool = False, as_folder: bool = False) -> Source:
    """Pick the source kind from what is at `path` (not from its name alone). `strict`
    refuses a bag with validation warnings; `as_folder` takes a folder as a plain folder
    even when it is a bag."""
    if not path.exists() and not path.is_symlink():
        raise SourceRefused(f"{path} does not exist")
    if path.is_symlink():
        raise SourceRefused(f"{path} is a symbolic link; give the real folder or file")
    try:
        mode = path.stat().st_mode
    except OSError as e:
        raise SourceRefused(f"{path} cannot be read: {e.strerror}") from e
    if stat.S_ISDIR(mode):
        if as_folder:
            return BagAsFolderSource(path)
        if (path / "bagit.txt").is_file():
            return BagSource(path, strict)
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
    except ARCHIVE_ERRORS as e:  # a gzip, bzip2 or xz stream cut short in its first block
        raise SourceRefused(f"{path} is a compressed file that cannot be read: "
                            f"{archive_error(e)}; nothing was written",
                            hint="the archive is damaged or truncated: get a good copy from "
                                 "its producer") from None
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

    def _walk(self, directory: Path, prefix: str, scan: Scan, policy: IngestPolicy) -> None:
        """Scan a folder tree; a folder with nothing in it is recorded as an empty folder.
        Its own stack, not recursion: no depth of nesting exhausts the interpreter's
        (red-team case 92)."""
        stack = [(directory, prefix)]
        while stack:
            folder, rel_folder = stack.pop()
            try:
                with os.scandir(folder) as it:
                    children = sorted(it, key=lambda e: e.name)
            except OSError as e:
                scan.problems.append(f"cannot read folder {folder}: {e.strerror}")
                continue
            if not children and rel_folder != prefix:
                scan.add_empty_dir(rel_folder[:-1])
            for child in children:
                rel = rel_folder + os.fsdecode(child.name)
                where = child.path  # for messages (no Path: pathlib interns every name)
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
                    stack.append((child.path, rel + "/"))
                elif stat.S_ISREG(st.st_mode):
                    scan.add_file(rel, st.st_size, child.path)
                else:
                    what = special_kind(st.st_mode)
                    if policy.special_files == "skip":
                        scan.skipped.append(f"{what} {display(rel)}")
                    else:
                        scan.problems.append(f"{what}: {where}")

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
    """An existing bag: its structure is validated first; its digests are checked during copy,
    its tag files against its tag manifests, and all of them kept in the AIP."""

    kind = "bag"

    def __init__(self, path: Path, strict: bool = False):
        super().__init__(path)
        self.strict = strict

    def _scan(self, scan: Scan, policy: IngestPolicy) -> None:
        scan.bag = _bag_facts(self.path, scan, strip_data=True, strict=self.strict,
                              shown=self.origin)
        payload = self.path / "data"
        FolderSource(payload)._walk(payload, "", scan, policy)


class BagAsFolderSource(FolderSource):
    """A bag ingested as a plain folder at the archivist's request (--as-folder), typically
    because it is invalid: everything in it becomes payload, its manifests included; its
    digests are still checked against the bytes read, and what differs is reported and
    recorded, not refused."""

    kind = "bag-as-folder"

    def _scan(self, scan: Scan, policy: IngestPolicy) -> None:
        if (self.path / "bagit.txt").is_file():
            scan.bag = _bag_facts(self.path, scan, strip_data=False, strict=False)
        super()._scan(scan, policy)


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
            _refuse_overlaps(infos, self.path)
            dirs: set[str] = set()
            declared = 0
            for index, info in enumerate(infos):
                name, note = zip_member_name(info)
                if note:
                    scan.notes.append(note)
                is_dir = info.is_dir()
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
                ratio = policy.archive_max_ratio
                if info.file_size > max(info.compress_size, 1) * ratio:
                    scan.problems.append(f"{where} expands {info.file_size} bytes from "
                                         f"{info.compress_size}, more than {ratio} times: "
                                         "refused as a possible zip bomb")
                    continue
                declared += info.file_size
                scan.add_file(rel, info.file_size, str(index))
            _refuse_expansion(self.path, declared, policy)
            _add_empty_dirs(scan, dirs)


def zip_member_name(info: zipfile.ZipInfo) -> tuple[str, str | None]:
    """A zip member's name as its producer meant it, and a note when that took a guess.

    Flag bit 11 says the name is UTF-8. Without it, Info-ZIP puts the UTF-8 name in a
    Unicode Path extra field (0x7075) beside the raw name and the raw name's CRC-32; the
    field is used when its CRC matches (red-team case 43: 'café.txt' was stored as
    'caf├⌐.txt'). Otherwise the raw bytes are UTF-8 where they decode as such (what most
    tools write today, flag or not), else IBM code page 437, the zip format's default;
    either way the note records the raw bytes."""
    if info.flag_bits & 0x800:
        return info.filename, None
    raw = info.orig_filename.encode("cp437")  # zipfile decoded the raw bytes as cp437
    unicode_path = _extra_field(info.extra, 0x7075)
    if unicode_path is not None and len(unicode_path) >= 5 and unicode_path[0] == 1:
        crc = int.from_bytes(unicode_path[1:5], "little")
        if crc == zlib.crc32(raw):
            try:
                return unicode_path[5:].decode("utf-8"), None
            except UnicodeDecodeError:
                pass
    if raw.isascii():
        return info.filename, None
    try:
        name = raw.decode("utf-8")
        how = "read as UTF-8 (the bytes are valid UTF-8)"
    except UnicodeDecodeError:
        name = info.filename
        how = "read as IBM code page 437, the zip format's default"
    return name, (f"zip member name bytes {raw!r} declare no encoding; {how}: "
                  f"{display(name)!r}")


def _extra_field(extra: bytes, wanted: int) -> bytes | None:
    """The data of one field of a zip extra block (id, length, data records)."""
    at = 0
    while at + 4 <= len(extra):
        field_id = int.from_bytes(extra[at:at + 2], "little")
        length = int.from_bytes(extra[at + 2:at + 4], "little")
        if field_id == wanted:
            return extra[at + 4:at + 4 + length]
        at += 4 + length
    return None


def _refuse_overlaps(infos: list[zipfile.ZipInfo], path: Path) -> None:
    """Members whose compressed data overlap another member's (a bomb that makes one small
    kernel expand again for each of hundreds of members: red-team case 33)."""
    ordered = sorted(infos, key=lambda i: i.header_offset)
    for this, following in zip(ordered, ordered[1:], strict=False):
        # local header: 30 bytes, then the name (its extra field may follow, unknown here)
        end = this.header_offset + 30 + len(this.orig_filename.encode(
            "utf-8" if this.flag_bits & 0x800 else "cp437")) + this.compress_size
        if end > following.header_offset:
            raise SourceRefused(f"{path}: zip members {display(this.filename)!r} and "
                                f"{display(following.filename)!r} overlap in the archive: "
                                "refused as a zip bomb (or a damaged zip); nothing was written")


def _refuse_expansion(path: Path, declared: int, policy: IngestPolicy) -> None:
    """What the members declare together against what the archive weighs."""
    size = max(path.stat().st_size, 1)
    if declared > size * policy.archive_max_ratio:
        raise SourceRefused(
            f"{path} would expand to {declared} bytes from {size}, more than "
            f"{policy.archive_max_ratio} times its size: refused as a possible archive bomb; "
            "nothing was written",
            hint="if it is a real, extremely compressible archive, raise "
                 "ingest.archive_max_ratio in the policy")


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
        declared = 0
        try:
            with tarfile.open(self.path, mode="r:*") as tf:
                for count, member in enumerate(_members(tf), start=1):
                    if count > MAX_MEMBERS:
                        raise SourceRefused(f"{self.path} has more than {MAX_MEMBERS} members")
                    rel = member.name.rstrip("/")
                    if rel.startswith("./"):
                        rel = rel[2:]
                    where = f"tar member {display(member.name)!r}"
                    if rel in ("", "."):
                        if not member.isdir():  # '.' is the archive's root; a file, never
                            scan.problems.append(f"{where} is not a folder, and no file can "
                                                 "have that name")
                        continue
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
                    declared += member.size
                    scan.add_file(rel, member.size, member.name)
                _read_to_the_end(tf)
        except SourceRefused:
            raise
        except ARCHIVE_ERRORS as e:
            raise SourceRefused(f"{self.path} cannot be read as a tar file: "
                                f"{archive_error(e)}; nothing was written",
                                hint="the archive is damaged or truncated: get a good copy "
                                     "from its producer") from e
        _refuse_expansion(self.path, declared, policy)
        _add_empty_dirs(scan, dirs)

    def members(self):
        """Yield (member name, stream) for regular files, in archive order; then read the
        archive to its very end, so that a compressed stream's checksum is verified."""
        with tarfile.open(self.path, mode="r:*") as tf:
            for member in _members(tf):
                if member.isfile():
                    yield member.name, tf.extractfile(member)
            _read_to_the_end(tf)


def _read_to_the_end(tf: tarfile.TarFile) -> None:
    """tarfile stops at the end-of-archive blocks, before a gzip, bzip2 or xz stream ends,
    so their checksums were never checked: a .tar.gz with corrupt deflate data was
    ingested with one file wrong (red-team case 40). Reading the rest makes the
    decompressor verify them (gzip's CRC-32 and length, xz's check, bzip2's CRCs); a
    failure raises one of ARCHIVE_ERRORS."""
    while tf.fileobj.read(1 << 20):
        pass


def archive_error(e: BaseException) -> str:
    if isinstance(e, EOFError):
        return "it ends before its compressed data does (truncated)"
    return str(e) or type(e).__name__


def _members(tf: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """The members in archive order, without the list of every member that iterating a
    TarFile keeps (millions of members must not mean memory in proportion)."""
    while (member := tf.next()) is not None:
        tf.members.clear()
        yield member
