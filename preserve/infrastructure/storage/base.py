"""The storage interface, in the spirit of restic's backends.

Every location is an OCFL 1.1 storage root (domain/ocfl.py); an AIP is an OCFL
object stored unpacked, one stored object per file, under the key prefix the
layout gives its id. A version counts as present only once the object's root
inventory names it, and that inventory is written last: publish_bag puts a
version folder's inventory after its content (or, on a local disk, renames the
whole finished folder into place), so a reader never mistakes a partial upload
for a version.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from preserve.domain import ocfl
from preserve.domain.names import UnsafePath, check_relative
from preserve.errors import ConfigError
from preserve.infrastructure import fstree


@dataclass
class ObjectInfo:
    key: str
    size: int


DigestOf = Callable[[str], "str | None"]  # bag path -> recorded sha256, asked file by file


def bag_files(source: Path) -> Iterator[Path]:
    """Every file of a bag folder, streamed (never a list of a million paths)."""
    for dirpath, dirnames, filenames in fstree.walk(source):
        dirnames.sort()
        for name in sorted(filenames):
            yield Path(dirpath) / name


class Storage(Protocol):
    name: str

    def publish_bag(self, source: Path, prefix: str, digests: DigestOf | None = None,
                    *, move: bool = False) -> dict[str, str]:
        """Store the finished bag folder `source` under `prefix`, verified against
        `digests` (the sha256 each bag path must have); visible only once complete. Returns
        the store's composite checksums of files uploaded in parts, by bag path."""

    def check_reachable(self) -> None:
        """Raise StorageUnreachable unless the location answers."""

    def describe(self) -> str:
        """Where the location is, for people (never a secret)."""

    def open(self, key: str) -> BinaryIO:
        """A binary stream of the object's bytes."""

    def stat(self, key: str) -> ObjectInfo | None:
        """Size of the object, or None if it does not exist."""

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object under `prefix`, recursively."""

    def empty_dirs(self, prefix: str) -> list[str]:
        """Directories without files under `prefix` (local disks only keep them)."""

    def delete_prefix(self, prefix: str) -> None:
        """Remove everything under `prefix` (staging and clean-up only; never a stored AIP)."""


def checked_key(key: str) -> str:
    """`key` (without a trailing "/") if it is a safe relative path; else ConfigError.
    Every backend runs every key through this before touching storage."""
    rel = key.rstrip("/")
    try:
        check_relative(rel)
    except UnsafePath as e:
        raise ConfigError(f"refusing unsafe storage key {key!r}: {e}") from None
    return rel


def ensure_ocfl_root(storage) -> None:
    """Make the location an OCFL storage root if it is not one yet (its declaration, the
    layout file and the layout's configuration); refuse a location that already holds
    something else, such as AIPs in the layout of preserve before OCFL. Asked once per
    location per process (a request per copy to an object store otherwise)."""
    if getattr(storage, "ocfl_root_known", False):
        return
    if storage.stat(ocfl.ROOT_DECLARATION) is not None:
        storage.ocfl_root_known = True
        return
    if any(True for _ in storage.list("")):
        raise ConfigError(f"location '{storage.name}' ({storage.describe()}) holds files but is "
                          f"not an OCFL storage root (no {ocfl.ROOT_DECLARATION}): it was "
                          "written by an earlier preserve or another tool",
                          hint="point the location at an empty folder or bucket prefix; "
                               "nothing was written")
    for key, data in ocfl.root_files().items():
        if key != ocfl.ROOT_DECLARATION:
            storage.put_bytes(key, data)
    storage.put_bytes(ocfl.ROOT_DECLARATION, ocfl.declaration(ocfl.ROOT_DECLARATION))
    storage.ocfl_root_known = True


def layout_versions(folders: Callable[[str], Iterable[str]]) -> Iterator[tuple[str, str, int | None]]:
    """(version folder key, AIP id, version) of every version folder of every object of a
    storage root, and (object key, id, None) for an object folder holding no version
    (debris), read from the layout alone. `folders(prefix)` names the folders directly
    under a key prefix ("" for the root): a disk's subfolders, a bucket's common prefixes,
    asked one level at a time."""
    levels = [""]
    for _ in range(ocfl.LAYOUT_CONFIG["numberOfTuples"] + 1):
        levels = [f"{parent}{name}/" for parent in levels for name in folders(parent)
                  if parent or name != "extensions"]
    for rel in levels:
        aip_id = ocfl.id_of_root(rel)
        if aip_id is None:
            continue
        versions = sorted(ocfl.version_numbers(folders(rel)))
        if not versions:
            yield rel, aip_id, None
        for version in versions:
            yield ocfl.version_key(rel, version), aip_id, version
