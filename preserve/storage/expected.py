"""What every file of a stored AIP version must hash to, from what we trust: the catalog.

A version of an AIP at a location is the folder vN/ of its OCFL object there: the
content the version added (payload and tag files, each a catalog row with its
digests), the version's inventory and its sidecar (their sha512 recorded when the
version was made), and, where vN is the highest version at that location, the
object root's declaration, inventory and sidecar. An object rewritten wholesale,
its inventory agreeing with its new bytes, still fails here: nothing is taken from
storage on trust. Export, replication, audits and repair all start from this answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from preserve.catalog import Catalog
from preserve.domain import ocfl
from preserve.domain.names import display, is_utf8
from preserve.storage.versions import expected_root_files, expected_version_files


@dataclass
class Expected:
    """The inventories' digests in memory (a handful of files); the content's asked of the
    catalog one file at a time, so that no caller holds a digest per file of a bag."""

    tags: dict[str, dict[str, str]]  # inventories and root files -> {algorithm: hex digest}
    catalog: Catalog
    aip_id: str
    version: int

    def digests(self, rel: str) -> dict[str, str] | None:
        """What the file `rel` of the version must hash to, or None if it has no record."""
        if rel in self.tags:
            return self.tags[rel]
        return self.catalog.file_digests(self.aip_id, self.version, rel)

    def sha256(self, rel: str) -> str | None:
        return (self.digests(rel) or {}).get("sha256")


def expected_digests(catalog: Catalog, aip_id: str, version: int, *,
                     root: bool = False) -> Expected:
    """What every file of version `version` must hash to; with `root`, the object root's
    files too (the version is the highest at the location in question)."""
    tags = expected_version_files(catalog, aip_id, version)
    if root:
        tags |= expected_root_files(catalog, aip_id, version)
    return Expected(tags, catalog, aip_id, version)


def is_head(catalog: Catalog, aip_id: str, version: int, location: str) -> bool:
    """Whether `version` is the highest version recorded at `location` (its object root
    then holds that version's inventory)."""
    return catalog.head_at(aip_id, location) == version


PAGE = 1000  # keys an object store lists in one page: where a big version's listing is cut


def listing(storage, key: str, unreadable: Callable[[str], None] = lambda rel: None, *,
            root: bool = False, catalog: Catalog | None = None, aip_id: str = "",
            version: int = 0) -> Iterator[tuple[str, int, str | None]]:
    """(name in the version, size, the store's ETag or None) of every stored object of the
    version folder at `key` (see ocfl.key_of), and of the object root's files with `root`,
    for Catalog.load_listing. A name that is not UTF-8 (a stray file, a foreign key
    escaping such bytes) can be in no manifest and no catalog: it goes to `unreadable`
    instead, never into the catalog, where it would stop the whole run (red-team cases 81,
    82). Given the `catalog` and the version, an object store lists a version of more than
    a page of files a page-sized range at a time, several at once (S3Storage.list_split),
    cut at every PAGE-th file the catalog records."""
    here = None
    if root and hasattr(storage, "list_here"):  # an object store: one listing, not 3 HEADs,
        storage.client  # made here: two threads must not make it at once  # noqa: B018
        pool = ThreadPoolExecutor(1)           # asked while the version's pages are
        here = pool.submit(lambda: {o.key: o for o in storage.list_here(ocfl.object_of(key))})
        pool.shutdown(wait=False)
    bounds = []
    if catalog is not None and hasattr(storage, "list_split"):
        bounds = [ocfl.key_of(key, rel) for rel in catalog.every_nth_path(aip_id, version,
                                                                           PAGE)]
    for o in storage.list_split(key, bounds) if bounds else storage.list(key):
        rel = o.key[len(key):]
        if is_utf8(rel):
            yield ocfl.rel_in_version(rel), o.size, o.etag
        else:
            unreadable(ocfl.rel_in_version(rel))
    if here is not None:
        here = here.result()
        for name in ocfl.ROOT_FILES:
            found = here.get(ocfl.key_of(key, name))
            if found is not None:
                yield name, found.size, found.etag
    elif root:
        for name in ocfl.ROOT_FILES:
            found = storage.stat(ocfl.key_of(key, name))
            if found is not None:
                yield name, found.size, found.etag


def replica_gaps(catalog: Catalog, aip_id: str, version: int, storage, key: str,
                 tags: dict[str, dict[str, str]]) -> list[str]:
    """What the version at `storage` lacks, from one listing, no byte read: content files
    missing or of another size than recorded, inventories missing. The listing is
    compared in the catalog's temporary tables, so memory does not grow with the number
    of files."""
    root = any(rel.startswith("/") for rel in tags)
    catalog.load_listing(listing(storage, key, root=root, catalog=catalog, aip_id=aip_id,
                                 version=version))
    gaps = [f"{display(rel)}: " + ("missing" if listed is None else
                                   f"{listed} bytes, {recorded} recorded")
            for rel, recorded, listed in catalog.payload_not_listed_as_recorded(aip_id, version)]
    return gaps + [f"{display(rel)}: missing" for rel in tags
                   if catalog.listed_size(rel) is None]
