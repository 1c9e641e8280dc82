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
import stat
import tarfile
import zipfile
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from preserve.domain import bag as bagfmt
from preserve.domain.names import UnsafePath, check_relative, display
from preserve.domain.policy import IngestPolicy
from preserve.errors import BagInvalid, SourceRefused

# Archive safety limits: far above any real collection member, far below a bomb.
MAX_MEMBERS = 5_000_000
MAX_RATIO = 1000  # uncompressed / compressed size of one zip member


@dataclass
class Entry:
    path: str                  # payload path relative to data/, exactly as named
    size: int
    ref: object = None         # how the source opens it (a file path, a member name, ...)
    is_dir: bool = False       # an empty directory, kept as such


@dataclass
class Scan:
    entries: list[Entry] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)   # refusals: nothing will be written
    skipped: list[str] = field(default_factory=list)    # left out by policy, recorded
    bag_info: list[tuple[str, str]] = field(default_factory=list)
    expected: dict[str, dict[str, str]] = field(default_factory=dict)  # source bag digests


class Source(ABC):
    kind = "?"
    parallel = True  # may several worker processes read it at once?

    def __init__(self, path: Path):
        self.path = path

    @abstractmethod
    def scan(self, policy: IngestPolicy) -> Scan:
        """Every entry and every problem, without writing anything."""

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
    if path.is_dir():
        if (path / "bagit.txt").is_file():
            return BagSource(path)
        return FolderSource(path)
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

    def scan(self, policy: IngestPolicy) -> Scan:
        scan = Scan()
        self._walk(self.path, "", scan, policy)
        return scan

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
                    scan.entries.append(Entry(rel, 0, None, is_dir=True))
            elif stat.S_ISREG(st.st_mode):
                scan.entries.append(Entry(rel, st.st_size, child.path))
            else:
                what = _special_kind(st.st_mode)
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
                scan.entries.append(Entry(rel, os.stat(real).st_size, real))
                return
            reason = "points outside the source" if not inside else "is not a link to a file"
            scan.problems.append(f"{note} ({reason}; only links to files inside the source "
                                 "are followed)")
            return
        scan.problems.append(f"{note} (links are refused: choose --links skip or follow-inside)")


def _special_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "special file"


class BagSource(Source):
    """An existing bag: its structure is validated first; its digests are checked during copy."""

    kind = "bag"

    def scan(self, policy: IngestPolicy) -> Scan:
        from preserve.domain.validate import validate_bag

        report = validate_bag(self.path, check_fixity=False)
        if not report.valid:
            raise BagInvalid(f"the bag {self.path} is not valid; nothing was ingested",
                             report.errors,
                             hint=f"'preserve validate {self.path}' shows every finding")
        scan = Scan()
        payload = self.path / "data"
        FolderSource(payload)._walk(payload, "", scan, policy)
        for name in sorted(os.listdir(self.path)):
            m = bagfmt.MANIFEST_RE.match(name)
            if not m or m.group(1):
                continue
            algorithm = m.group(2).lower()
            text = (self.path / name).read_text(encoding="utf-8-sig")
            for entry in bagfmt.parse_manifest(text).entries:
                rel = entry.path[len("data/"):]
                scan.expected.setdefault(rel, {})[algorithm] = entry.digest
        info = self.path / "bag-info.txt"
        if info.is_file():
            items, _ = bagfmt.parse_bag_info(info.read_text(encoding="utf-8-sig"))
            scan.bag_info = [(i.label, i.value) for i in items]
        return scan


class ZipSource(Source):
    kind = "zip"

    def scan(self, policy: IngestPolicy) -> Scan:
        scan = Scan()
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
            parents: set[str] = set()
            seen: set[str] = set()
            for info in infos:
                name = info.filename
                is_dir = name.endswith("/")
                rel = name.rstrip("/")
                where = f"zip member {display(name)!r}"
                if not _new_member(rel, where, seen, scan):
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
                parts = rel.split("/")
                parents.update("/".join(parts[:i]) for i in range(1, len(parts)))
                scan.entries.append(Entry(rel, info.file_size, info.filename))
            scan.entries.extend(_empty_dirs(dirs, parents))
        return scan


def _new_member(rel: str, where: str, seen: set[str], scan: Scan) -> bool:
    """An archive member's name is safe and not a repeat of an earlier member's."""
    if not _check_name(rel, scan, where):
        return False
    if rel in seen:
        scan.problems.append(f"{where} appears more than once")
        return False
    seen.add(rel)
    return True


def _empty_dirs(dirs: set[str], parents: set[str]) -> list[Entry]:
    """Directory members of an archive that contain neither files nor other directories."""
    for d in dirs:
        parts = d.split("/")
        parents.update("/".join(parts[:i]) for i in range(1, len(parts)))
    return [Entry(d, 0, None, is_dir=True) for d in sorted(dirs - parents)]


class TarSource(Source):
    """A tar file, optionally compressed. Read in order, in this process (a compressed tar
    cannot be read from several places at once)."""

    kind = "tar"
    parallel = False

    def scan(self, policy: IngestPolicy) -> Scan:
        scan = Scan()
        dirs: set[str] = set()
        parents: set[str] = set()
        seen: set[str] = set()
        try:
            with tarfile.open(self.path, mode="r:*") as tf:
                for count, member in enumerate(tf, start=1):
                    if count > MAX_MEMBERS:
                        raise SourceRefused(f"{self.path} has more than {MAX_MEMBERS} members")
                    rel = member.name.rstrip("/")
                    if rel.startswith("./"):
                        rel = rel[2:]
                    if rel in ("", "."):
                        continue
                    where = f"tar member {display(member.name)!r}"
                    if not _new_member(rel, where, seen, scan):
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
                    parts = rel.split("/")
                    parents.update("/".join(parts[:i]) for i in range(1, len(parts)))
                    scan.entries.append(Entry(rel, member.size, member.name))
        except (tarfile.TarError, OSError, EOFError) as e:
            raise SourceRefused(f"{self.path} cannot be read as a tar file: {e}") from e
        scan.entries.extend(_empty_dirs(dirs, parents))
        return scan

    def members(self):
        """Yield (member name, stream) for regular files, in archive order."""
        with tarfile.open(self.path, mode="r:*") as tf:
            for member in tf:
                if member.isfile():
                    yield member.name, tf.extractfile(member)
