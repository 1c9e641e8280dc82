"""Local disk storage: pathlib, fsync, rename into place.

Every key is checked before use: it must be a safe relative path and must
resolve inside the location's root, so no name in a manifest or catalog can
reach outside it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from preserve.domain.fixity import hash_stream, write_all
from preserve.domain.names import UnsafePath, check_relative
from preserve.errors import ConfigError, FixityMismatch, StorageUnreachable
from preserve.infrastructure.storage.base import ObjectInfo


def sync_filesystem(path: Path) -> None:
    """Flush everything written on the filesystem holding `path` (one syncfs instead of
    an fsync per file: the bag is durable before it becomes visible)."""
    libc_name = ctypes.util.find_library("c")
    fd = os.open(path, os.O_RDONLY)
    try:
        libc = ctypes.CDLL(libc_name, use_errno=True) if libc_name else None
        if libc is None or not hasattr(libc, "syncfs") or libc.syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalStorage:
    kind = "local"

    def __init__(self, name: str, root: Path):
        self.name = name
        self.root = Path(root)

    def check_reachable(self) -> None:
        if not self.root.is_dir():
            raise StorageUnreachable(
                f"storage location '{self.name}' is not reachable: {self.root} is not a directory",
                hint="mount the disk, or fix the path in its location file")

    def _path(self, key: str) -> Path:
        rel = key.rstrip("/")
        try:
            check_relative(rel)
        except UnsafePath as e:
            raise ConfigError(f"refusing unsafe storage key {key!r}: {e}") from None
        path = self.root / rel
        root = os.path.realpath(self.root)
        if os.path.commonpath([root, os.path.realpath(path)]) != root:
            raise ConfigError(f"refusing storage key {key!r}: it resolves outside {self.root}")
        return path

    def staging_dir(self) -> Path:
        return self.root / ".staging"

    def publish_bag(self, staged: Path, prefix: str) -> None:
        self.check_reachable()
        target = self._path(prefix)
        if target.exists():
            raise ConfigError(f"refusing to overwrite {target}: an AIP is already stored there")
        target.parent.mkdir(parents=True, exist_ok=True)
        if os.stat(staged).st_dev != os.stat(target.parent).st_dev:
            staged = self._copy_verified(staged, target.name)
        sync_filesystem(staged)
        os.rename(staged, target)
        fsync_dir(target.parent)

    def _copy_verified(self, staged: Path, name: str) -> Path:
        """Copy a bag onto this filesystem's staging area, checking every byte on the way."""
        dest = self.staging_dir() / f"{name}.{os.getpid()}"
        for dirpath, _dirnames, filenames in os.walk(staged):
            rel = Path(dirpath).relative_to(staged)
            (dest / rel).mkdir(parents=True, exist_ok=True)
            for fn in filenames:
                src = Path(dirpath) / fn
                with open(src, "rb") as fi, open(dest / rel / fn, "wb") as fo:
                    _, written, _ = hash_stream(fi, ["sha256"], sink=write_all(fo.write))
                with open(dest / rel / fn, "rb") as check:
                    _, reread, _ = hash_stream(check, ["sha256"])
                if written != reread:
                    raise FixityMismatch(f"copy of {src} to {self.root} did not verify")
        shutil.rmtree(staged)
        return dest

    def open(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except FileNotFoundError:
            raise
        except OSError as e:
            raise StorageUnreachable(f"cannot read {key} at '{self.name}': {e.strerror}") from e

    def stat(self, key: str) -> ObjectInfo | None:
        try:
            st = os.lstat(self._path(key))
        except FileNotFoundError:
            return None
        return ObjectInfo(key, st.st_size)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        base = self._path(prefix)
        for dirpath, _dirnames, filenames in os.walk(base):
            for fn in filenames:
                path = Path(dirpath) / fn
                key = path.relative_to(self.root).as_posix()
                yield ObjectInfo(key, path.lstat().st_size)

    def empty_dirs(self, prefix: str) -> list[str]:
        base = self._path(prefix)
        out = []
        for dirpath, dirnames, filenames in os.walk(base):
            if not dirnames and not filenames:
                out.append(Path(dirpath).relative_to(self.root).as_posix())
        return out

    def delete_prefix(self, prefix: str) -> None:
        path = self._path(prefix)
        if path.exists():
            shutil.rmtree(path)
