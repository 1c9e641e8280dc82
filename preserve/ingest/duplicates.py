"""Content already held: the same folder ingested twice silently made two AIPs, and
untitled AIPs could not be told apart (issue 22).

Two ingests of the same payload (the same names and the same bytes) write the same
payload manifest, byte for byte; its sha256 is in the catalog with every version's
tag files, so one indexed lookup finds every AIP that holds that content already.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

MANIFEST = "manifest-sha256.txt"


def same_content(catalog, bag: Path, aip_id: str) -> list[str]:
    """The AIPs (other than `aip_id`) one of whose versions has exactly the payload of the
    bag folder `bag`; none where the bag has no sha256 manifest (a policy without it)."""
    manifest = bag / MANIFEST
    if not manifest.is_file():
        return []
    with open(manifest, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    return sorted({held for held, _version, path in catalog.holders(digest)
                   if path == MANIFEST and held != aip_id})
