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

import errno
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from preserve.domain import ocfl
from preserve.domain.fixity import open_regular
from preserve.domain.names import UnsafePath, check_relative
from preserve.errors import ConfigError, FixityMismatch, StorageUnreachable
from preserve.system import fstree


@dataclass
class ObjectInfo:
    key: str
    size: int
    etag: str | None = None  # an object store's listing gives it; a disk has none


@dataclass(frozen=True)
class Stored:
    """What a store answered when it took an object: its ETag, and for an upload in parts
    the composite checksum it computed (a disk: neither)."""
    etag: str | None = None
    composite: str | None = None


Written = Callable[[str, int, Stored], None]  # bag path, bytes, the store's answer: as each lands


DigestOf = Callable[[str], "str | None"]  # bag path -> recorded sha256, asked file by file


def open_stored(path: str, what: str, size: int | None = None) -> BinaryIO:
    """Every read of stored bytes on a disk starts here: a regular file only (a FIFO put
    in place of a stored file would block the reader for ever, a device or a link is
    never followed), and, where the recorded size is given, of that size (a sparse
    4 GiB file in place of a 3 KB one is damage, found before a byte is copied). Damage
    is FixityMismatch (exit 1); a disk that refuses the read is unreachable (exit 3);
    a missing file stays FileNotFoundError, for the caller to name as missing."""
    try:
        stream = open_regular(path)
    except FileNotFoundError:
        raise
    except OSError as e:
        if e.errno in (errno.EINVAL, errno.ELOOP, errno.EISDIR, errno.ENOTDIR):
            kind = "a symbolic link" if e.errno == errno.ELOOP else "not a regular file"
            raise FixityMismatch(f"{what} is damaged: {kind} where a stored file was (it "
                                 "is never read)",
                                 hint="run 'preserve audit', then 'preserve repair'") from None
        raise StorageUnreachable(f"cannot read {what}: {e.strerror or e}") from None
    if size is not None:
        held = os.fstat(stream.fileno()).st_size
        if held != size:
            stream.close()
            raise FixityMismatch(f"{what} is damaged: {held:,} bytes where {size:,} were "
                                 "recorded (nothing was read from it)",
                                 hint="run 'preserve audit', then 'preserve repair'")
    return stream


def bag_files(source: Path) -> Iterator[Path]:
    """Every file of a bag folder, streamed (never a list of a million paths)."""
    for dirpath, dirnames, filenames in fstree.walk(source):
        dirnames.sort()
        for name in sorted(filenames):
            yield Path(dirpath) / name


class Storage(Protocol):
    name: str

    def publish_bag(self, source: Path, prefix: str, digests: DigestOf | None = None,
                    *, move: bool = False, written: Written | None = None,
                    stop: threading.Event | None = None) -> None:
        """Store the finished bag folder `source` under `prefix`, verified against
        `digests` (the sha256 each bag path must have); visible only once complete. An
        object store tells `written` what it answered for each file (in the caller's
        thread); `stop`, once set, ends its uploads (another thread's Ctrl-C)."""

    def check_reachable(self, answered_within: float = 0.0) -> None:
        """Raise StorageUnreachable unless the location answers. An object store that
        answered a request less than `answered_within` seconds ago in this process is not
        asked again (a round trip across a WAN); a disk is always looked at (unplugged
        since?)."""

    def begin_writes(self) -> None:
        """What a location needs before it is written (ensure_ocfl_root calls it), begun
        without waiting: an object store's checksum probe."""

    def describe(self) -> str:
        """Where the location is, for people (never a secret)."""

    def open(self, key: str) -> BinaryIO:
        """A binary stream of the object's bytes."""

    def stat(self, key: str) -> ObjectInfo | None:
        """Size of the object, or None if it does not exist."""

    def list(self, prefix: str, after: str | None = None) -> Iterator[ObjectInfo]:
        """Every object under `prefix`, recursively (with `after`, those whose key sorts
        after it: an object store starts its listing there)."""

    def empty_dirs(self, prefix: str) -> list[str]:
        """Directories without files under `prefix` (local disks only keep them)."""

    def delete_prefix(self, prefix: str) -> None:
        """Remove everything under `prefix` (staging and clean-up only; never a stored AIP)."""


# Seconds within which an object store that answered a request (in this process) is taken
# as reachable without asking again: the end of a command that has just used it.
ANSWERED_LATELY = 60.0


def checked_key(key: str) -> str:
    """`key` (without a trailing "/") if it is a safe relative path; else ConfigError.
    Every backend runs every key through this before touching storage."""
    rel = key.rstrip("/")
    try:
        check_relative(rel)
    except UnsafePath as e:
        raise ConfigError(f"refusing unsafe storage key {key!r}: {e}") from None
    return rel


def together(*calls):
    """Independent storage calls run at once (each a round trip across a WAN; an object
    store bounds its requests in flight): their results in order, the first failure
    raised once all have ended."""
    if len(calls) <= 1:
        return [call() for call in calls]
    with ThreadPoolExecutor(min(len(calls), 16)) as pool:
        futures = [pool.submit(call) for call in calls]
        wait(futures)
    return [future.result() for future in futures]


def put_all(storage, objects: list[tuple[str, bytes]]) -> None:
    """Small objects put at once (see together)."""
    together(*(lambda key=key, data=data: storage.put_bytes(key, data)
               for key, data in objects))


def holds_anything(storage) -> bool:
    """Whether the location holds anything outside the storage root's extensions/ folder,
    where tools keep their own files (OCFL 1.1, 4.1): an object store's checksum probe
    is there, under way beside the first writes or kept by Object Lock."""
    return any(not o.key.startswith("extensions/") for o in storage.list(""))


def ensure_ocfl_root(storage) -> None:
    """Make the location an OCFL storage root if it is not one yet (its declaration, the
    layout file and the layout's configuration); refuse a location that already holds
    something else, such as AIPs in the layout of preserve before OCFL. Asked once per
    location per process (a request per copy to an object store otherwise), and not at
    all where the location's reachability check has just read the declaration, or found
    none (its first copy: a round trip less across a WAN)."""
    storage.begin_writes()
    known = getattr(storage, "ocfl_root_known", None)  # an object store's reachability
    if known:                                          # check reads the declaration
        return
    if known is None and storage.stat(ocfl.ROOT_DECLARATION) is not None:
        storage.ocfl_root_known = True
        return
    if holds_anything(storage):
        if storage.stat(ocfl.ROOT_DECLARATION) is not None:  # another process's, just made
            storage.ocfl_root_known = True
            return
        raise ConfigError(f"location '{storage.name}' ({storage.describe()}) holds files but is "
                          f"not an OCFL storage root (no {ocfl.ROOT_DECLARATION}): it was "
                          "written by an earlier preserve or another tool",
                          hint="point the location at an empty folder or bucket prefix; "
                               "nothing was written")
    put_all(storage, [(key, data) for key, data in ocfl.root_files().items()
                      if key != ocfl.ROOT_DECLARATION])  # the declaration after them
    storage.put_bytes(ocfl.ROOT_DECLARATION, ocfl.declaration(ocfl.ROOT_DECLARATION))
    storage.ocfl_root_known = True


Entries = Callable[[str], "tuple[list[str], list[str]]"]  # prefix -> (folders, files)

# What OCFL 1.1 allows directly in a storage root besides the layout's folders (section
# 4.1: the declaration, the specification's text, the layout description, extensions/).
ROOT_ALLOWED_FILES = {ocfl.ROOT_DECLARATION, "ocfl_layout.json", "ocfl_1.1.md",
                      "ocfl_1.1.html", "ocfl_1.1.txt"}
# And in an object root (section 3.1): the declaration, the inventory and its sidecar,
# version folders, logs/ and extensions/.
OBJECT_ALLOWED_FILES = {ocfl.OBJECT_DECLARATION, ocfl.INVENTORY, ocfl.SIDECAR}
OBJECT_ALLOWED_FOLDERS = {ocfl.LOGS, "extensions"}


def root_file_problems(storage) -> list[tuple[str, str, bool]]:
    """(key, why, missing) for each of the storage root's own files (its declaration, the
    layout description and the layout's configuration) that is not there as preserve
    writes it, where the location holds anything at all (an empty one is made a storage
    root by its first copy). A missing file can be written again (write_root_files); one
    whose text differs is for a person: another tool may have chosen another layout. The
    files are read and the location asked whether it holds anything all at once (each a
    round trip across a WAN, at the end of every audit)."""
    def held(key: str, size: int) -> bytes | None:
        try:
            with storage.open(key) as f:
                return f.read(size + 1)
        except FileNotFoundError:
            return None

    files = ocfl.root_files()
    anything, *found = together(lambda: holds_anything(storage), *(
        lambda key=key, data=data: held(key, len(data)) for key, data in files.items()))
    if not anything:
        return []
    problems = []
    for (key, data), got in zip(files.items(), found, strict=True):
        if got is None:
            problems.append((key, "missing: the location is no longer a valid OCFL storage "
                             "root, and copies to it are refused", True))
        elif got != data:
            problems.append((key, "not the text preserve writes there (the storage root's "
                             "declaration or layout was changed)", False))
    return problems


def write_root_files(storage, keys: Iterable[str]) -> None:
    """Write those of the storage root's own files named by `keys` again, the declaration
    last (as ensure_ocfl_root does)."""
    files = ocfl.root_files()
    for key in sorted(keys, key=lambda k: k == ocfl.ROOT_DECLARATION):
        storage.put_bytes(key, files[key])


def object_root_strays(folders: Iterable[str], files: Iterable[str]
                       ) -> Iterator[tuple[str, str]]:
    """(name, why) of what OCFL 1.1 does not allow in an object root (E001), among the
    folders and files found directly in it; a folder's name ends with "/"."""
    for name in files:
        if name in OBJECT_ALLOWED_FOLDERS:  # logs/ a file or a link (case 12)
            yield name, (f"{name}/ is not a folder (a file or a link): the object's event "
                         "records cannot be kept there; look at it")
        elif name not in OBJECT_ALLOWED_FILES:
            yield name, "a file OCFL does not allow in an object root"
    for name in folders:
        if name not in OBJECT_ALLOWED_FOLDERS and not re.fullmatch(r"v[1-9][0-9]*", name):
            yield name + "/", ("a folder OCFL does not allow in an object root"
                               + (" (zero-padded version folders are OCFL's, but not "
                                  "preserve's)" if re.fullmatch(r"v0[0-9]+", name) else ""))


def layout_versions(entries: Entries, strays: list[tuple[str, str]] | None = None,
                    concurrency: int = 1) -> Iterator[tuple[str, str, int | None]]:
    """(version folder key, AIP id, version) of every version folder of every object of a
    storage root, and (object key, id, None) for an object folder holding no version
    preserve writes ("v1", "v2": never zero-padded), read from the layout alone.
    `entries(prefix)` names the folders and the files directly under a key prefix ("" for
    the root): a disk's entries, a bucket's common prefixes and keys, asked one level at a
    time. Anything OCFL 1.1 and the 0003 layout do not allow where it is found (a foreign
    file or folder in the storage root or an object root, a missing root declaration) is
    appended to `strays` as (key, why): a finding for a person, never debris. (The storage
    root's own files are checked by root_file_problems.) The folders of a level are
    asked `concurrency` at once (an object store's: each a round trip across a WAN, and a
    thousand AIPs are four thousand folders), in order."""
    from preserve.parallel import in_order

    note = strays.append if strays is not None else (lambda _: None)

    def listed(prefixes: list[str]):
        return zip(prefixes, in_order(entries, prefixes, lambda: False, concurrency),
                   strict=True)

    folders, files = entries("")
    for name in files:
        if name not in ROOT_ALLOWED_FILES:
            note((name, "a file OCFL does not allow in a storage root"))
    levels = [f"{name}/" for name in folders if name != "extensions"]
    for _ in range(ocfl.LAYOUT_CONFIG["numberOfTuples"]):
        layout = []
        for parent in levels:
            if re.fullmatch(r"[0-9a-f]{3}", parent.rstrip("/").rsplit("/", 1)[-1]):
                layout.append(parent)
            else:
                note((parent, "a folder the storage layout (0003, hashed 3x3) never makes"))
        deeper = []
        for parent, (folders, files) in listed(layout):
            for name in files:
                note((parent + name, "a file between the layout's folders"))
            deeper += [f"{parent}{name}/" for name in folders]
        levels = deeper
    roots = []
    for rel in levels:
        if ocfl.id_of_root(rel) is None:
            note((rel, "a folder that is not where the storage layout puts any object"))
        else:
            roots.append(rel)
    for rel, (folders, files) in listed(roots):
        aip_id = ocfl.id_of_root(rel)
        for name, why in object_root_strays(folders, files):
            note((rel + name, why))
        versions = sorted(ocfl.version_numbers(folders))
        if not versions:
            yield rel, aip_id, None
        for version in versions:
            yield ocfl.version_key(rel, version), aip_id, version
