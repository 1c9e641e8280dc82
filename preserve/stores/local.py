"""Local disk storage: pathlib, fsync, rename into place.

Every key is checked before use: it must be a safe relative path and must
resolve inside the location's root, so no name in a manifest or catalog can
reach outside it.
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from preserve.domain.fixity import hash_stream, write_all
from preserve.errors import ConfigError, FixityMismatch, StorageUnreachable
from preserve.stores.base import (
    DigestOf,
    ObjectInfo,
    Stored,
    Written,
    checked_key,
    layout_versions,
    open_stored,
)
from preserve.system import fstree
from preserve.system.locks import owner_gone
from preserve.system.writeback import syncfs

# Where copies into a location are assembled before their rename into place: inside the
# storage root (one filesystem), in a folder of extensions/, which OCFL leaves to local
# extensions, so the storage root stays valid while a copy is under way.
STAGING = "extensions/preserve-staging"


# Stored files are read-only (r--r--r--), a second guard against accidents: an editor, a
# script or a mistaken `cp` over a stored file is refused (issue 22). Folders stay writable
# by their owner, so that preserve can still replace a damaged file whole (a rename) and
# remove what it staged; root, which ignores modes, is guarded by the audits alone.
READ_ONLY = 0o444


def read_only(tree: Path) -> None:
    """Every file under `tree` made read-only, before the tree is published."""
    for dirpath, _dirs, files in fstree.walk(str(tree)):
        for name in files:
            os.chmod(os.path.join(dirpath, name), READ_ONLY)  # preserve made each: no links


def sync_filesystem(path: Path) -> None:
    """Flush everything written on the filesystem holding `path` (one syncfs instead of
    an fsync per file: the bag is durable before it becomes visible)."""
    syncfs(path)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _entries(path: str) -> tuple[list[str], list[str]]:
    """(folders, everything else) directly in `path`, sorted; links are not followed."""
    try:
        with os.scandir(path) as entries:
            folders, files = [], []
            for e in entries:
                (folders if e.is_dir(follow_symlinks=False) else files).append(e.name)
            return sorted(folders), sorted(files)
    except (FileNotFoundError, NotADirectoryError):
        return [], []


class LocalStorage:
    kind = "local"

    def __init__(self, name: str, root: Path):
        self.name = name
        self.root = Path(root)

    def describe(self) -> str:
        return str(self.root)

    def place(self) -> tuple[str, str]:
        """(store, path prefix) of this location's files (see S3Storage.place): the real
        path, links resolved, so that two spellings of one folder are one place."""
        return "local", os.path.realpath(self.root).rstrip("/") + "/"

    def bag_path(self, prefix: str) -> Path:
        """Where a stored bag is on disk (a local copy to replicate from)."""
        return self._path(prefix)

    def check_reachable(self, answered_within: float = 0.0) -> None:
        if not self.root.is_dir():
            raise StorageUnreachable(
                f"storage location '{self.name}' is not reachable: {self.root} is not a directory",
                hint="mount the disk, or fix the path in its location file")

    def begin_writes(self) -> None:
        """Nothing to begin on a disk."""

    def _path(self, key: str) -> Path:
        return Path(self._file(key))

    def _file(self, key: str) -> str:
        """Where `key` is, checked to stay inside the location; a string, for the calls
        made once per file (pathlib interns every name it parses: millions of files would
        grow the interpreter's table of interned strings by as many)."""
        if not key.strip("/"):
            return str(self.root)  # the location's root itself (listing it whole)
        path = os.path.join(self.root, checked_key(key))
        root = os.path.realpath(self.root)
        if os.path.commonpath([root, os.path.realpath(path)]) != root:
            raise ConfigError(f"refusing storage key {key!r}: it resolves outside {self.root}")
        return path

    def staging_dir(self) -> Path:
        return self.root / STAGING

    def remove_empty_folders(self, prefix: str) -> None:
        """The folders of `prefix` (an AIP version's, then the AIP's and its fan-out
        folder) where they are empty: never anything that holds a file."""
        path = self._file(prefix.rstrip("/"))
        while os.path.realpath(path) != os.path.realpath(self.root):
            try:
                os.rmdir(path)
            except OSError:  # not empty, or gone
                if os.path.exists(path):
                    return
            path = os.path.dirname(path)

    def stored_versions(self, strays: list[tuple[str, str]] | None = None
                        ) -> Iterator[tuple[str, str, int | None]]:
        """Every version folder of every object here, and what OCFL does not allow here
        appended to `strays` (see base.layout_versions)."""
        return layout_versions(self.entries, strays)

    def entries(self, prefix: str) -> tuple[list[str], list[str]]:
        """(folders, other entries) directly under `prefix`, sorted, links not followed."""
        return _entries(self._file(prefix))

    def abort_uploads(self, prefix: str) -> None:
        """Nothing to do: a disk has no multipart uploads (see S3Storage.abort_uploads)."""

    def leftovers(self) -> list[Path]:
        """Copies into .staging/ whose process has ended (a kill, a full disk: case 59)."""
        staging = self.staging_dir()
        return [staging / entry for entry in sorted(os.listdir(staging) if staging.is_dir()
                                                    else []) if owner_gone(entry)]

    def remove_leftovers(self) -> list[str]:
        removed = []
        for path in self.leftovers():
            fstree.rmtree(path, ignore_errors=True)
            removed.append(f"removed {path}, left by an interrupted copy to '{self.name}'")
        return removed

    def publish_bag(self, source: Path, prefix: str, digests: DigestOf | None = None,
                    *, move: bool = False, written: Written | None = None,
                    stop: threading.Event | None = None) -> None:
        """Store the finished bag `source` under `prefix`, all at once.

        With move=True (a staging folder on this filesystem) the folder is renamed into
        place. Otherwise it is copied into this location's .staging area, every byte
        hashed on the way and compared with `digests` (sha256 by bag path) where given,
        then renamed: a reader never sees a partial bag.
        """
        self.check_reachable()
        target = self._path(prefix)
        if target.exists():
            raise ConfigError(f"refusing to overwrite {target}: an AIP is already stored there")
        target.parent.mkdir(parents=True, exist_ok=True)
        if not (move and os.stat(source).st_dev == os.stat(target.parent).st_dev):
            copied = self._copy_verified(source, target.name, digests or (lambda _: None))
            if move:
                fstree.rmtree(source)
            source = copied
        read_only(source)
        sync_filesystem(source)
        os.rename(source, target)
        fsync_dir(target.parent)  # `written`: a disk answers nothing worth keeping

    def _copy_verified(self, source: Path, name: str, digests: DigestOf) -> Path:
        """Copy the bag folder into this location's staging area, hashing on the way.
        Names are handled as strings, never pathlib objects: pathlib interns every name it
        parses, so a bag of millions of files would grow the interpreter's table of
        interned strings by as many."""
        dest = self.staging_dir() / f"{name}.{os.getpid()}"
        fstree.rmtree(dest, ignore_errors=True)
        try:
            self._copy_into(source, dest, digests)
        except BaseException:  # a full disk, a mismatch, Ctrl-C: nothing stays behind
            fstree.rmtree(dest, ignore_errors=True)
            raise
        return dest

    def _copy_into(self, source: Path, dest: Path, digests: DigestOf) -> None:
        top, out = str(source), str(dest)
        for dirpath, dirnames, filenames in fstree.walk(top):
            rel_dir = os.path.relpath(dirpath, top)
            rel_dir = "" if rel_dir == "." else rel_dir + "/"
            fstree.makedirs(os.path.join(out, rel_dir))
            for d in dirnames:
                os.makedirs(os.path.join(out, rel_dir, d), exist_ok=True)
            for fn in filenames:
                rel = rel_dir + fn
                with open_stored(os.path.join(dirpath, fn), f"{rel} of {source}") as fi, \
                        open(os.path.join(out, rel), "xb") as fo:
                    _, written, _ = hash_stream(fi, ["sha256"], sink=write_all(fo.write))
                want = digests(rel)
                if want and written["sha256"] != want:
                    raise FixityMismatch(f"{rel} read from {source} does not match its recorded "
                                         f"digest; it was not copied to '{self.name}'",
                                         hint="audit the source copy; replicate from a good one")

    def local_path(self, key: str) -> Path:
        return self._path(key)

    def local_files(self, prefix: str) -> Callable[[str], str]:
        """Paths of many files under one checked prefix, without a realpath per file: for
        names taken from list(prefix), which never enters linked folders. Reading them
        with O_NOFOLLOW (fixity.hash_file) refuses a linked file."""
        base = str(self._path(prefix))
        return lambda rel: os.path.join(base, checked_key(rel))

    def put_bytes(self, key: str, data: bytes) -> Stored:
        """A small object (an event record, an inventory's sidecar): written in the staging
        area, synced, renamed into place (replacing what was there, whole or not at all)."""
        tmp = self._aside()
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        self._into_place(tmp, key)
        return Stored()

    def replace_file(self, key: str, good: Path) -> Stored:
        """Put the verified file `good` at `key`, atomically (copied into the staging area,
        synced, renamed): a damaged file is replaced whole or not at all."""
        tmp = self._aside()
        shutil.copyfile(good, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        self._into_place(tmp, key)
        return Stored()  # a disk answers nothing worth keeping

    def _aside(self) -> Path:
        """A new file's name in the staging area, by this process (a kill leaves it to
        remove_leftovers, never a stray file inside an OCFL object)."""
        self.staging_dir().mkdir(parents=True, exist_ok=True)
        return self.staging_dir() / f"file-{uuid.uuid4().hex}.{os.getpid()}"

    def _into_place(self, tmp: Path, key: str) -> None:
        os.chmod(tmp, READ_ONLY)
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, path)
        fsync_dir(path.parent)

    def round_trip(self) -> list[tuple[str, bool, str]]:
        """Write, read back and delete a small file: what works, step by step."""
        steps: list[tuple[str, bool, str]] = []
        probe = self.staging_dir() / f"check-{uuid.uuid4()}"
        data = os.urandom(4096)
        try:
            probe.parent.mkdir(parents=True, exist_ok=True)
            with open(probe, "xb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            steps.append(("write", True, f"{len(data)} bytes written and synced"))
            steps.append(("read", probe.read_bytes() == data, "bytes read back are identical"))
        except OSError as e:
            steps.append(("write", False, e.strerror or str(e)))
        finally:
            try:
                probe.unlink(missing_ok=True)
                steps.append(("delete", True, "probe removed"))
            except OSError as e:
                steps.append(("delete", False, e.strerror or str(e)))
        return steps

    def open(self, key: str, size: int | None = None) -> BinaryIO:
        """The stored file's bytes, if it is a regular file (of `size` bytes, when given):
        see base.open_stored."""
        return open_stored(self._file(key), f"{key} at '{self.name}'", size)

    def stat(self, key: str) -> ObjectInfo | None:
        try:
            st = os.lstat(self._file(key))
        except FileNotFoundError:
            return None
        return ObjectInfo(key, st.st_size)

    def list(self, prefix: str, after: str | None = None) -> Iterator[ObjectInfo]:
        """Every file under `prefix` (links included, as what they are: never followed);
        with `after`, those whose key sorts after it."""
        if after is not None:
            return (info for info in self._files(prefix) if info.key > after)
        return self._files(prefix)

    def _files(self, prefix: str) -> Iterator[ObjectInfo]:
        base = self._path(prefix)
        start = prefix.rstrip("/") + "/" if prefix.strip("/") else ""
        stack = [(str(base), start)]
        while stack:
            directory, key_prefix = stack.pop()
            try:
                entries = list(os.scandir(directory))
            except FileNotFoundError:
                continue
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append((entry.path, key_prefix + entry.name + "/"))
                else:
                    yield ObjectInfo(key_prefix + entry.name,
                                     entry.stat(follow_symlinks=False).st_size)

    def empty_dirs(self, prefix: str) -> list[str]:
        base = self._path(prefix)
        out = []
        for dirpath, dirnames, filenames in fstree.walk(base):
            if not dirnames and not filenames:
                out.append(Path(dirpath).relative_to(self.root).as_posix())
        return out

    def delete_prefix(self, prefix: str) -> None:
        path = self._path(prefix)
        if path.exists():
            fstree.rmtree(path)
