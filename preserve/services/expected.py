"""What every file of a stored AIP version must hash to, from sources we trust.

Payload digests come from the catalog (recorded at ingest). Tag-file digests
come from the bag's tag manifest, which is itself checked first against the
package digest the catalog kept: a bag rewritten wholesale, with manifests
that agree with its new bytes, still fails here. Export, replication and
audits all start from this one answer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from preserve.domain import bag as bagfmt
from preserve.domain.names import display, is_utf8
from preserve.errors import FixityMismatch
from preserve.infrastructure.catalog import Catalog


@dataclass
class Expected:
    """Tag-file digests in memory (a handful of files); payload digests asked of the
    catalog one file at a time, so that no caller holds a digest per file of a bag."""

    tagmanifest: str
    tagmanifest_bytes: bytes
    tags: dict[str, dict[str, str]]  # tag file path -> {algorithm: hex digest}
    catalog: Catalog
    aip_id: str
    version: int

    def digests(self, rel: str) -> dict[str, str] | None:
        """What the bag file `rel` must hash to, or None if no manifest lists it."""
        if rel.startswith("data/"):
            return self.catalog.file_digests(self.aip_id, self.version, rel)
        return self.tags.get(rel)

    def sha256(self, rel: str) -> str | None:
        return (self.digests(rel) or {}).get("sha256")

    def paths(self) -> Iterator[str]:
        """Every file the bag must hold: tag files, then payload in order, streamed."""
        yield from self.tags
        yield from self.catalog.file_paths(self.aip_id, self.version)


def expected_digests(catalog: Catalog, aip_id: str, version: int, storage, key: str) -> Expected:
    """What every file of the bag must hash to (see Expected)."""
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
    tags: dict[str, dict[str, str]] = {
        e.path: {algorithm: e.digest}
        for e in bagfmt.parse_manifest(tm_bytes.decode("utf-8")).entries}
    tags[tagmanifest] = {"sha256": info["tagmanifest_sha256"]}  # just checked equal
    # tag files listed with another algorithm only: add sha256 from the sha256 tag manifest,
    # which the first tag manifest protects
    if algorithm != "sha256":
        other = "tagmanifest-sha256.txt"
        if other in tags:
            try:
                with storage.open(key + other) as f:
                    data = f.read()
            except FileNotFoundError:
                data = b""
            if hashlib.new(algorithm, data).hexdigest() == tags[other].get(algorithm):
                tags[other]["sha256"] = hashlib.sha256(data).hexdigest()
                for e in bagfmt.parse_manifest(data.decode("utf-8")).entries:
                    tags.setdefault(e.path, {})["sha256"] = e.digest
    return Expected(tagmanifest, tm_bytes, tags, catalog, aip_id, version)


def listing(storage, key: str,
            unreadable: Callable[[str], None] = lambda rel: None) -> Iterator[tuple[str, int]]:
    """(path in the bag, size) of every object of the replica at `key`, for
    Catalog.load_listing. A name that is not UTF-8 (a stray file, a foreign key escaping
    such bytes) can be in no manifest and no catalog: it goes to `unreadable` instead,
    never into the catalog, where it would stop the whole run (red-team cases 81, 82)."""
    for o in storage.list(key):
        rel = o.key[len(key):]
        if is_utf8(rel):
            yield rel, o.size
        else:
            unreadable(rel)


def replica_gaps(catalog: Catalog, aip_id: str, version: int, storage, key: str,
                 tags: dict[str, dict[str, str]]) -> list[str]:
    """What the replica at `storage` lacks, from one listing, no byte read: payload files
    missing or of another size than recorded, tag files missing. The listing is compared
    in the catalog's temporary tables, so memory does not grow with the number of files."""
    catalog.load_listing(listing(storage, key))
    gaps = [f"{display(rel)}: " + ("missing" if listed is None else
                                   f"{listed} bytes, {recorded} recorded")
            for rel, recorded, listed in catalog.payload_not_listed_as_recorded(aip_id, version)]
    return gaps + [f"{display(rel)}: missing" for rel in tags
                   if catalog.listed_size(rel) is None]
