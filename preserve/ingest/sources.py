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
from pathlib import Path
from typing import TYPE_CHECKING

from preserve.domain.names import display, special_kind
from preserve.errors import BagInvalid, SourceRefused
from preserve.ingest.archives import TarSource, ZipSource
from preserve.ingest.scan import BagFacts, Scan, Source, check_name
from preserve.pipeline.entries import ARCHIVE_ERRORS, archive_error

if TYPE_CHECKING:  # the copy workers import this module: they need neither (issue 11)

    from preserve.domain.policy import IngestPolicy

FINDINGS_KEPT = 1000  # a source bag's validation findings kept to report and record


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
                if not check_name(rel, scan, "unusable name"):
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
