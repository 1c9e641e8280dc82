"""OCFL 1.1 (https://ocfl.io/1.1/spec/): how an AIP's versions are kept at rest.

Every storage location is an OCFL storage root; every AIP is an OCFL object whose id
is the AIP id, placed by the 0003-hash-and-id-n-tuple storage layout (sha256 of the id
in three tuples of three, then the id itself: the folder of an AIP can be found by
its id, by a person, without preserve). The logical state
of every version is a complete BagIt bag; a version's content/ folder holds only the
files new or changed in it. What a version adds is never rewritten:

    <object>/0=ocfl_object_1.1
    <object>/inventory.json, inventory.json.sha512   (the head's inventory, written last)
    <object>/v1/inventory.json, inventory.json.sha512
    <object>/v1/content/bagit.txt, bag-info.txt, manifest-*.txt, data/..., metadata/...
    <object>/v2/content/bag-info.txt, tagmanifest-*.txt, metadata/premis.xml
    <object>/logs/        audit event records (never a new version)

Pure functions: the layout, the names inside an object, and the inventory written as a
stream from rows already sorted (a catalog query), so that an AIP of a million files
never has its inventory in memory.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TextIO

SPEC_VERSION = "1.1"
ROOT_DECLARATION = "0=ocfl_1.1"
OBJECT_DECLARATION = "0=ocfl_object_1.1"
INVENTORY = "inventory.json"
SIDECAR = "inventory.json.sha512"
DIGEST_ALGORITHM = "sha512"
FIXITY_ALGORITHM = "sha256"
CONTENT = "content"
LOGS = "logs"
INVENTORY_TYPE = "https://ocfl.io/1.1/spec/#inventory"
LAYOUT = "0003-hash-and-id-n-tuple-storage-layout"
LAYOUT_CONFIG = {"extensionName": LAYOUT, "digestAlgorithm": "sha256", "tupleSize": 3,
                 "numberOfTuples": 3}
# The names inside a version folder that are not content (what a listing maps back).
VERSION_FILES = (INVENTORY, SIDECAR)
# Object-root files are named with a leading "/" among a version's files (see key_of).
ROOT_FILES = ("/" + OBJECT_DECLARATION, "/" + INVENTORY, "/" + SIDECAR)
# A file in a version folder that is neither content nor an inventory: named apart.
STRAY = "./"


def declaration(name: str) -> bytes:
    """The NAMASTE declaration's text: what follows "0=", and a newline."""
    return name.split("=", 1)[1].encode("utf-8") + b"\n"


def root_files() -> dict[str, bytes]:
    """The files that make a folder or bucket prefix an OCFL storage root."""
    layout = {"extension": LAYOUT,
              "description": "hashed (sha256) n-tuple directories of 3x3 characters, then "
                             "the object id percent-encoded: see extensions/" + LAYOUT}
    return {
        ROOT_DECLARATION: declaration(ROOT_DECLARATION),
        "ocfl_layout.json": (json.dumps(layout, indent=2) + "\n").encode("utf-8"),
        f"extensions/{LAYOUT}/config.json":
            (json.dumps(LAYOUT_CONFIG, indent=2) + "\n").encode("utf-8"),
    }


def _encapsulation(object_id: str, digest: str) -> str:
    """0003's directory for the id: [A-Za-z0-9_-] kept, every other UTF-8 byte %xx
    (lower case), over 100 characters cut to 100 and the digest appended."""
    out = "".join(c if re.fullmatch(r"[A-Za-z0-9_-]", c) else
                  "".join(f"%{b:02x}" for b in c.encode("utf-8")) for c in object_id)
    return f"{out[:100]}-{digest}" if len(out) > 100 else out


def object_id(aip_id: str) -> str:
    """The OCFL id of an AIP: the AIP id itself. OCFL would rather have a URI (W005, a
    SHOULD); "urn:uuid:<id>" was tried and dropped: its ':' becomes "%3a" in the layout's
    folder name, and object stores spell "%" as "%25" in keys (names.encode_object_key,
    so that every name round-trips), which would make the folder differ between a disk
    and a bucket. A bare UUID is the same everywhere and found by a person at a glance."""
    return aip_id


def object_root(aip_id: str) -> str:
    """The AIP's object's key prefix in a storage root (trailing "/")."""
    oid = object_id(aip_id)
    digest = hashlib.sha256(oid.encode("utf-8")).hexdigest()
    size, count = LAYOUT_CONFIG["tupleSize"], LAYOUT_CONFIG["numberOfTuples"]
    tuples = [digest[i * size:(i + 1) * size] for i in range(count)]
    return "/".join([*tuples, _encapsulation(oid, digest)]) + "/"


def id_of_root(path: str) -> str | None:
    """The AIP id a layout path names (the inverse of object_root), or None where the
    path is not one this layout makes."""
    parts = path.strip("/").split("/")
    if len(parts) != 4 or any(not re.fullmatch(r"[0-9a-f]{3}", p) for p in parts[:3]):
        return None
    encoded = parts[3]
    if re.search(r"-[0-9a-f]{64}$", encoded) and len(encoded) > 100:
        return None  # a truncated id: only its inventory says what it is
    try:
        oid = re.sub(r"(%[0-9a-f]{2})+",
                           lambda m: bytes.fromhex(m.group(0).replace("%", "")).decode("utf-8"),
                           encoded)
    except UnicodeDecodeError:
        return None
    return oid if object_root(oid) == path.strip("/") + "/" else None


def version_key(root: str, version: int) -> str:
    return f"{root}v{version}/"


def object_of(vkey: str) -> str:
    """The object root of a version folder's key."""
    return vkey[:vkey.rstrip("/").rfind("/") + 1]


def version_of(vkey: str) -> int:
    return int(vkey.rstrip("/").rsplit("/", 1)[1][1:])


def key_of(vkey: str, rel: str) -> str:
    """Where a file of a version is kept: a bag path in the version's content/, an
    inventory name in the version folder, a "/name" at the object root."""
    if rel.startswith("/"):
        return object_of(vkey) + rel[1:]
    if rel in VERSION_FILES:
        return vkey + rel
    if rel.startswith(STRAY):
        return vkey + rel[len(STRAY):]
    return f"{vkey}{CONTENT}/{rel}"


def rel_in_version(rel: str) -> str:
    """The inverse of key_of for a name listed in a version folder."""
    if rel.startswith(CONTENT + "/"):
        return rel[len(CONTENT) + 1:]
    return rel if rel in VERSION_FILES else STRAY + rel


def content_path(version: int, bag_path: str) -> str:
    return f"v{version}/{CONTENT}/{bag_path}"


def is_inventory(rel: str) -> bool:
    return rel.lstrip("/") in VERSION_FILES


def sidecar(inventory_digest: str) -> bytes:
    """The sidecar's text: `sha512sum -c inventory.json.sha512` checks the inventory."""
    return f"{inventory_digest}  {INVENTORY}\n".encode()


@dataclass
class VersionRecord:
    """What OCFL keeps of a version besides its state: when, who, why."""
    number: int
    created: str
    message: str
    user_name: str
    user_address: str | None


def write_inventory(out: TextIO, object_id: str, manifest: Iterable[tuple[str, str]],
                    fixity: Iterable[tuple[str, str]],
                    versions: Iterable[tuple[VersionRecord, Iterable[tuple[str, str]]]]) -> None:
    """Write an inventory from sorted (digest, path) rows: `manifest` (sha512, content
    path) and `fixity` (sha256, content path) grouped by digest; each version's state
    (sha512, logical path) likewise. The head is the last version given."""
    versions = list(versions)
    head = versions[-1][0].number
    dump = json.dumps
    out.write(f'{{\n  "id": {dump(object_id)},\n  "type": "{INVENTORY_TYPE}",\n'
              f'  "digestAlgorithm": "{DIGEST_ALGORITHM}",\n  "head": "v{head}",\n'
              f'  "contentDirectory": "{CONTENT}",\n'
              f'  "fixity": {{\n    "{FIXITY_ALGORITHM}": ')
    _digest_map(out, fixity, "    ")
    out.write('\n  },\n  "manifest": ')
    _digest_map(out, manifest, "  ")
    out.write(',\n  "versions": {')
    for i, (record, state) in enumerate(versions):
        user = {"name": record.user_name}
        if record.user_address:
            user["address"] = record.user_address
        out.write(f'{"," if i else ""}\n    "v{record.number}": {{\n'
                  f'      "created": {dump(record.created)},\n'
                  f'      "message": {dump(record.message, ensure_ascii=False)},\n'
                  f'      "user": {dump(user, ensure_ascii=False)},\n      "state": ')
        _digest_map(out, state, "      ")
        out.write("\n    }")
    out.write("\n  }\n}\n")


def _digest_map(out: TextIO, rows: Iterable[tuple[str, str]], indent: str) -> None:
    """{"digest": ["path", ...], ...} from rows sorted by digest."""
    out.write("{")
    first, current = True, None
    for digest, path in rows:
        if digest != current:
            if current is not None:
                out.write("]")
            out.write(f'{"" if first else ","}\n{indent}  "{digest}": [')
            first, current = False, digest
        else:
            out.write(", ")
        out.write(json.dumps(path, ensure_ascii=False))
    if current is not None:
        out.write("]")
    out.write(f"\n{indent}}}" if not first else "}")


def version_numbers(names: Iterable[str]) -> Iterator[int]:
    """The version numbers among folder names ("v1", "v2"; never zero-padded here)."""
    for name in names:
        m = re.fullmatch(r"v([1-9][0-9]*)", name)
        if m:
            yield int(m.group(1))
