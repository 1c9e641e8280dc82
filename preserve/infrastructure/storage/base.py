"""The storage interface, in the spirit of restic's backends.

An AIP is stored unpacked, one object per file, under a key prefix
"<aa>/<aip-id>/v<n>/". A bag counts as present only once its last file,
the tag manifest, is there: publish_bag writes it last (or, on a local
disk, renames the whole finished directory into place), so a reader never
mistakes a partial upload for an AIP.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

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


def aip_prefix(aip_id: str, version: int) -> str:
    return f"{aip_id[:2]}/{aip_id}/v{version}/"


_VERSION = re.compile(r"v([1-9][0-9]*)")


def parse_aip_prefix(fanout: str, aip_id: str, version: str) -> tuple[str, int] | None:
    """(AIP id, version) of a stored layout's three levels, or None where they are not
    what aip_prefix writes (something else lives there)."""
    m = _VERSION.fullmatch(version)
    if not m or fanout != aip_id[:2] or len(aip_id) < 4:
        return None
    return aip_id, int(m.group(1))
