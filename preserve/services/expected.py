"""What every file of a stored AIP version must hash to, from sources we trust.

Payload digests come from the catalog (recorded at ingest). Tag-file digests
come from the bag's tag manifest, which is itself checked first against the
package digest the catalog kept: a bag rewritten wholesale, with manifests
that agree with its new bytes, still fails here. Export, replication and
audits all start from this one answer.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from preserve.domain import bag as bagfmt
from preserve.errors import FixityMismatch
from preserve.infrastructure.catalog import Catalog


@dataclass
class Expected:
    tagmanifest: str
    tagmanifest_bytes: bytes
    files: dict[str, dict[str, str]]  # bag path -> {algorithm: hex digest}

    def sha256(self, rel: str) -> str | None:
        return self.files.get(rel, {}).get("sha256")


def expected_digests(catalog: Catalog, aip_id: str, version: int, storage, key: str,
                     payload: bool = True) -> Expected:
    """What every file of the bag must hash to; with `payload` False, the tag files only
    (an audit streams payload digests from the catalog instead of holding them all)."""
    info = catalog.version_info(aip_id, version)
    tagmanifest = info["tagmanifest"]
    try:
        with storage.open(key + tagmanifest) as f:
            tm_bytes = f.read()
    except FileNotFoundError:
        raise FixityMismatch(f"{tagmanifest} of AIP {aip_id} is missing from location "
                             f"'{storage.name}'",
                             hint="restore the AIP from another replica") from None
    if hashlib.sha256(tm_bytes).hexdigest() != info["tagmanifest_sha256"]:
        raise FixityMismatch(f"{tagmanifest} of AIP {aip_id} at '{storage.name}' does not match "
                             "the package digest recorded at ingest: the stored bag was altered "
                             "or replaced", hint="restore the AIP from another replica")
    algorithm = bagfmt.MANIFEST_RE.match(tagmanifest).group(2)
    files: dict[str, dict[str, str]] = {
        e.path: {algorithm: e.digest}
        for e in bagfmt.parse_manifest(tm_bytes.decode("utf-8")).entries}
    files[tagmanifest] = {"sha256": hashlib.sha256(tm_bytes).hexdigest()}
    if payload:
        for record in catalog.files(aip_id, version):
            files[record.path] = dict(record.digests)
    # tag files listed with another algorithm only: add sha256 from the sha256 tag manifest,
    # which the first tag manifest protects
    if algorithm != "sha256":
        other = "tagmanifest-sha256.txt"
        if other in files:
            try:
                with storage.open(key + other) as f:
                    data = f.read()
            except FileNotFoundError:
                data = b""
            if hashlib.new(algorithm, data).hexdigest() == files[other].get(algorithm):
                files[other]["sha256"] = hashlib.sha256(data).hexdigest()
                for e in bagfmt.parse_manifest(data.decode("utf-8")).entries:
                    files.setdefault(e.path, {})["sha256"] = e.digest
    return Expected(tagmanifest, tm_bytes, files)
