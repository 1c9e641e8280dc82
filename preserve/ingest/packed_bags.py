"""Bags that travel serialised: a zip or tar whose root, or whose one top-level folder,
is a BagIt bag (RFC 8493 section 4.2: "a serialization ... MUST contain only one bag
and ... the top-level directory ... SHOULD have the same name as the bag").

Such an archive was stored as a plain archive, its bag's own files under data/,
never validated, its bag-info dropped: a damaged zipped bag went in with exit 0
(issue 22). It is now unpacked, member by member through the archive source's own
checks (links, special files, bombs, names), into a working folder of the
repository's staging/ (`unpack-<pid>-<hex>`, removed at the end, or by the next run
if this one is killed), and ingested exactly as an unpacked bag is: validated by its
declared version, every digest compared as the bytes are copied, its tag files kept.
`--as-folder` keeps the archive a plain archive.
"""

from __future__ import annotations

import os
import tarfile
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from preserve.domain.policy import IngestPolicy
from preserve.errors import SourceRefused
from preserve.ingest.archives import TarSource, ZipSource
from preserve.pipeline.entries import ARCHIVE_ERRORS, archive_error, open_entry
from preserve.storage.recovery import UNPACK_STAGING
from preserve.system import fstree


def bag_root_in(path: Path) -> str | None:
    """Where the bag is in the archive at `path`: "" for its root, "NAME" for its one
    top-level folder; None when the archive is not a serialised bag (or not an archive)."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        elif tarfile.is_tarfile(path):
            with tarfile.open(path, mode="r:*") as tf:
                names = tf.getnames()  # the archive read once more: names only
        else:
            return None
    except ARCHIVE_ERRORS:
        return None  # damaged: the archive's own scan names it
    parts = [PurePosixPath(n[2:] if n.startswith("./") else n).parts for n in names]
    parts = [p for p in parts if p]
    if any(p == ("bagit.txt",) for p in parts):
        return ""
    tops = {p[0] for p in parts}
    if len(tops) == 1:
        top = next(iter(tops))
        if any(p == (top, "bagit.txt") for p in parts):
            return top
    return None


@contextmanager
def unpacked_bag(path: Path, staging: Path, policy: IngestPolicy) -> Iterator[Path | None]:
    """The bag folder of a serialised bag at `path`, unpacked into staging for the time
    of the block; None (and nothing unpacked) when `path` is no serialised bag."""
    root = bag_root_in(path) if path.is_file() and not path.is_symlink() else None
    if root is None:
        yield None
        return
    source = ZipSource(path) if zipfile.is_zipfile(path) else TarSource(path)
    work = staging / f"{UNPACK_STAGING}{os.getpid()}-{uuid.uuid4().hex[:12]}"
    try:
        with source.scan(policy) as scan:
            if scan.problems:
                raise SourceRefused(f"{path} cannot be ingested as it is: "
                                    f"{len(scan.problems)} problem(s); nothing was written",
                                    scan.problems, hint="fix these in the bag, or choose a "
                                    "--links / --special option")
            fstree.makedirs(work)
            for folder in scan.folders():
                fstree.makedirs(work / folder)
            try:
                _unpack(source, scan, work)
            except ARCHIVE_ERRORS as e:
                raise SourceRefused(f"{path} is damaged: {archive_error(e)}; nothing was "
                                    "written", hint="get a good copy from its producer") from e
        yield work / root if root else work
    finally:
        fstree.rmtree(work, ignore_errors=True)


def _unpack(source, scan, work: Path) -> None:
    """Every regular member, written under its checked name (the scan refused unsafe
    ones); a tar is read in order, once, to its end (its compressed stream's checksum)."""
    if isinstance(source, TarSource):
        wanted = {entry.ref: entry.path for entry in scan.files_biggest_first()}
        for name, stream in source.members():
            rel = wanted.get(name)
            if rel is not None:
                _write(work / rel, stream)
        return
    for entry in scan.files_biggest_first():
        with open_entry(source.spec(), entry.ref) as stream:
            _write(work / entry.path, stream)


def _write(target: Path, stream) -> None:
    fstree.makedirs(target.parent)
    with open(target, "xb") as out:
        while chunk := stream.read(1 << 20):
            out.write(chunk)
