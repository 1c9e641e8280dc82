"""Zip and tar sources. Archives are never extracted with the library's extract
functions: their members are streamed into paths that preserve builds and checks itself,
and every member is checked first (names, overlaps, encryption, how far it expands).
"""

from __future__ import annotations

import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from preserve.domain.names import display
from preserve.errors import SourceRefused
from preserve.ingest.scan import Scan, Source, ancestors, check_name
from preserve.pipeline.entries import ARCHIVE_ERRORS, archive_error

if TYPE_CHECKING:  # the copy workers import this module: they need neither (issue 11)

    from preserve.domain.policy import IngestPolicy


# Archive safety limit: far above any real collection, far below a bomb. What archives may
# expand to is the policy's (IngestPolicy.archive_max_ratio).
MAX_MEMBERS = 5_000_000


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
    if not check_name(rel, scan, where):
        return False
    if not scan.first_time(rel):
        scan.problems.append(f"{where} appears more than once")
        return False
    return True


def _add_empty_dirs(scan: Scan, dirs: set[str]) -> None:
    """Directory members of an archive that contain neither files nor other directories."""
    holding = set(scan.holding_folders())
    for d in dirs:
        holding.update(ancestors(d))
    for d in sorted(dirs - holding):
        scan.add_empty_dir(d)



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


def _members(tf: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """The members in archive order, without the list of every member that iterating a
    TarFile keeps (millions of members must not mean memory in proportion)."""
    while (member := tf.next()) is not None:
        tf.members.clear()
        yield member
