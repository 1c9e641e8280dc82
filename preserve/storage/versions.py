"""AIP versions as OCFL versions: their inventories, who made them, and where they are.

An inventory is written from the catalog's rows (Catalog.manifest_rows, state_rows), as
a stream: what a version adds is recorded there first, so the inventory of any
version can be written again, byte for byte, from the catalog alone (and a later
`catalog rebuild` reverses this: the catalog from the inventories). Ingest (v1),
describe and migration (later versions) and replication all come through here.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import re
import socket
from pathlib import Path, PurePosixPath

from preserve.catalog import Catalog
from preserve.domain import bag as bagfmt
from preserve.domain import ocfl
from preserve.domain.fixity import FAST_ALGORITHM, hash_file
from preserve.domain.model import FileRecord
from preserve.domain.names import display
from preserve.domain.ocfl import VersionRecord
from preserve.errors import FixityMismatch

# What an inventory and the bag of every version need whatever the policy's manifests:
# sha512 is OCFL's digest of record here, sha256 its fixity block (and S3's checksum).
INVENTORY_ALGORITHMS = ("sha512", "sha256")


def version_user() -> tuple[str, str | None]:
    """Who makes a version, for its inventory's `user`: PRESERVE_USER (a person's name)
    or the login name at this host; PRESERVE_USER_ADDRESS (a mailto: or ORCID URI) when
    set. Never guessed: an address nobody gave would mislead a reader in fifty years."""
    name = os.environ.get("PRESERVE_USER") or f"{_login()}@{socket.gethostname()}"
    return name, os.environ.get("PRESERVE_USER_ADDRESS") or None


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid-{os.getuid()}"


def new_record(number: int, created: str, message: str) -> VersionRecord:
    name, address = version_user()
    return VersionRecord(number, created, message, name, address)


def write_inventory(catalog: Catalog, aip_id: str, records: list[VersionRecord],
                    folder: Path) -> str:
    """Write `folder`/inventory.json (head: the last of `records`, every earlier version
    with it) and its sidecar; return the inventory's sha512."""
    head = records[-1].number
    path = folder / ocfl.INVENTORY
    with open(path, "x", encoding="utf-8", newline="\n") as out:
        ocfl.write_inventory(
            out, ocfl.object_id(aip_id), catalog.manifest_rows(aip_id, head),
            catalog.manifest_rows(aip_id, head, ocfl.FIXITY_ALGORITHM),
            ((record, catalog.state_rows(aip_id, record.number)) for record in records))
    digest = hash_file(path, [ocfl.DIGEST_ALGORITHM])[1][ocfl.DIGEST_ALGORITHM]
    (folder / ocfl.SIDECAR).write_bytes(ocfl.sidecar(digest))
    return digest


def expected_root_files(catalog: Catalog, aip_id: str, head: int) -> dict[str, dict[str, str]]:
    """What the object root must hold where `head` is the highest version: the
    declaration, and the inventory of `head` with its sidecar (by "/name", sha512)."""
    digest = catalog.version_info(aip_id, head)["inventory_sha512"]
    return {"/" + ocfl.OBJECT_DECLARATION:
            {"sha512": _sha512(ocfl.declaration(ocfl.OBJECT_DECLARATION))},
            "/" + ocfl.INVENTORY: {"sha512": digest},
            "/" + ocfl.SIDECAR: {"sha512": _sha512(ocfl.sidecar(digest))}}


def expected_version_files(catalog: Catalog, aip_id: str,
                           version: int) -> dict[str, dict[str, str]]:
    """The inventory of `version` and its sidecar, in the version folder (sha512)."""
    digest = catalog.version_info(aip_id, version)["inventory_sha512"]
    return {ocfl.INVENTORY: {"sha512": digest},
            ocfl.SIDECAR: {"sha512": _sha512(ocfl.sidecar(digest))}}


def verified_local(path: Path, sha512: str, what: str, hint: str) -> Path:
    """`path` (a file on a local disk), once its bytes, read as a stream, are found to
    have the recorded sha512; else FixityMismatch naming `what`. Nothing is built on, or
    copied from, bytes that changed since they were recorded."""
    try:
        digest = hash_file(path, [ocfl.DIGEST_ALGORITHM])[1][ocfl.DIGEST_ALGORITHM]
    except FileNotFoundError:
        digest = None
    except OSError as e:  # a FIFO, a device, a link where the file was: never read
        raise FixityMismatch(f"{what} is damaged: {e.strerror or e}", hint=hint) from None
    if digest != sha512:
        raise FixityMismatch(f"{what} is missing or does not match its recorded digest",
                             hint=hint)
    return path


def fetch_stored(location, aip_id: str, version: int, path: str, size: int, sha512: str,
                 dest: Path, refused: str) -> Path:
    """A stored payload file copied to `dest` (a private working copy: no tool runs inside
    storage), its sha512 checked on the way; FixityMismatch saying `refused` (what was
    not done) when its bytes are not the recorded ones."""
    from preserve.pipeline.copying import copy_one

    key = ocfl.key_of(ocfl.version_key(ocfl.object_root(aip_id), version), path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with location.open(key, size) as stream:  # a regular file of its size, or damage
        _, digests, _ = copy_one(stream, str(dest), ["sha512"])
    if digests["sha512"] != sha512:
        raise FixityMismatch(f"the stored {display(path)} of AIP {aip_id} does not match its "
                             f"recorded sha512: {refused}",
                             hint="run 'preserve audit' and 'preserve repair' first")
    return dest


def read_verified(location, aip_id: str, version: int, path: str, size: int, sha512: str,
                  refused: str, then: str) -> bytes:
    """A small stored file's bytes (a kept text, say), from any kind of store, once they are
    found to be the recorded ones; else FixityMismatch saying `refused` (what was not
    done) and what to do `then`."""
    key = ocfl.key_of(ocfl.version_key(ocfl.object_root(aip_id), version), path)
    with location.open(key, size) as stream:
        data = stream.read()
    if _sha512(data) != sha512:
        raise FixityMismatch(f"{path} of AIP {aip_id} at '{location.name}' does not match "
                             f"its recorded digest: {refused}",
                             hint=f"run 'preserve audit' and 'preserve repair', then {then}")
    return data


def plain_suffix(path: str) -> str:
    """A file's extension where it is a plain one (tools choke on odd names), else ''."""
    suffix = PurePosixPath(path).suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,10}", suffix) else ""


def _sha512(data: bytes) -> str:
    return hashlib.sha512(data).hexdigest()


def tag_files(bag: Path) -> list[str]:
    """The tag files of a bag folder (everything outside data/), sorted. Not bag.rglob:
    it would walk the payload too, and remember every path it saw."""
    return sorted(p.relative_to(bag).as_posix()
                  for top in bag.iterdir() if top.name != "data"
                  for p in ([top] if top.is_file() else top.rglob("*")) if p.is_file())


def write_tag_manifests(bag: Path, algorithms: list[str],
                        unchanged: dict[str, dict[str, str]] | None = None) -> tuple[str, str]:
    """Write the tag manifests of a bag folder whose other files are final; return the
    first one's name and sha256 (the package digest). `unchanged`: the digests of tag
    files of the bag that are not in the folder (a later version keeps them as they were).

    Tag manifests come last: a bag without them is not finished. The first algorithm's
    is written very last and lists the others too, so that its digest vouches for every
    file of the bag."""
    for old in bag.glob("tagmanifest-*.txt"):
        old.unlink()
    digests = {t: hash_file(bag / t, algorithms)[1] for t in tag_files(bag)}
    digests |= {t: d for t, d in (unchanged or {}).items()
                if t not in digests and not t.startswith("tagmanifest-")}
    names = sorted(digests)
    for algorithm in algorithms[1:]:
        name = f"tagmanifest-{algorithm}.txt"
        text = bagfmt.format_manifest([(t, digests[t][algorithm]) for t in names])
        (bag / name).write_text(text, encoding="utf-8", newline="\n")
        names.append(name)
        digests[name] = hash_file(bag / name, algorithms)[1]
    first = f"tagmanifest-{algorithms[0]}.txt"
    (bag / first).write_text(
        bagfmt.format_manifest([(t, digests[t][algorithms[0]]) for t in sorted(names)]),
        encoding="utf-8", newline="\n")
    return first, hash_file(bag / first, ["sha256"])[1]["sha256"]


def tag_records(bag: Path, only: list[str] | None = None) -> list[FileRecord]:
    """Catalog rows of a bag folder's tag files (or of `only` among them): size and the
    digests an inventory and a fast audit need."""
    out = []
    for rel in only if only is not None else tag_files(bag):
        size, digests = hash_file(bag / rel, [*INVENTORY_ALGORITHMS, FAST_ALGORITHM])
        out.append(FileRecord(rel, size, digests))
    return out
