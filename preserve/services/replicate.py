"""Replication: bring every AIP up to the copies policy asks for, each one verified.

A replica is made from a local copy whose bytes match the catalog (the
store's own checksum of what it received is compared with the digests
recorded at ingest), and enters the catalog only once verified. An
interrupted upload leaves no tag manifest, so nothing there looks like an
AIP; the next run clears the leftovers (where no Object Lock forbids it)
and uploads again. Unreachable locations are reported as unreachable and
leave every other location's work done.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from preserve.errors import PreserveError, StorageUnreachable
from preserve.infrastructure.repository import Repository
from preserve.infrastructure.storage import LocalStorage
from preserve.infrastructure.storage.base import aip_prefix
from preserve.services.common import Progress, Silent, now_utc
from preserve.services.expected import expected_digests


@dataclass
class ReplicationResult:
    copied: list[tuple[str, int, str]] = field(default_factory=list)  # (aip, version, location)
    failed: list[tuple[str, int, str, str]] = field(default_factory=list)  # ... + reason
    unreachable: list[str] = field(default_factory=list)
    already: int = 0

    @property
    def complete(self) -> bool:
        return not self.failed and not self.unreachable

    def to_dict(self) -> dict:
        return {
            "status": "ok" if self.complete else "incomplete",
            "copied": [{"aip": a, "version": v, "location": loc} for a, v, loc in self.copied],
            "failed": [{"aip": a, "version": v, "location": loc, "reason": r}
                       for a, v, loc, r in self.failed],
            "unreachable": self.unreachable, "already_replicated": self.already,
        }


def copy_version(repo: Repository, aip_id: str, version: int, target) -> None:
    """Write one AIP version to `target` from a verified local replica, then record it."""
    source = _local_source(repo, aip_id, version)
    key = aip_prefix(aip_id, version)
    expected = expected_digests(repo.catalog, aip_id, version, source, key)
    if not isinstance(target, LocalStorage) or target.stat(key + expected.tagmanifest) is None:
        target.delete_prefix(key)  # leftovers of an interrupted upload: never a replica
    target.publish_bag(source.bag_path(key), key, expected.sha256)
    repo.catalog.add_replica(aip_id, version, target.name, key, now_utc())


def _local_source(repo: Repository, aip_id: str, version: int) -> LocalStorage:
    for name in repo.catalog.replica_locations(aip_id, version):
        location = repo.locations.get(name)
        if isinstance(location, LocalStorage):
            return location
    raise StorageUnreachable(f"AIP {aip_id} v{version} has no local copy to replicate from")


def replicate(repo: Repository, *, to: str | None = None,
              progress: Progress | None = None) -> ReplicationResult:
    """Copy every AIP version that lacks a replica at a policy location (or at `to`)."""
    progress = progress or Silent()
    result = ReplicationResult()
    targets = [repo.locations[to]] if to else repo.replica_locations()
    work: list[tuple[str, int, object]] = []
    for target in targets:
        try:
            target.check_reachable()
        except StorageUnreachable:
            result.unreachable.append(target.name)
            continue
        missing = repo.catalog.versions_without_replica(target.name)
        result.already += repo.catalog.count_versions() - len(missing)
        work.extend((aip_id, version, target) for aip_id, version in missing)
    total = {(a, v): repo.catalog.version_info(a, v)["bytes"] for a, v, _ in work}
    progress.start("replicate", len(work), sum(total[(a, v)] for a, v, _ in work))
    for aip_id, version, target in work:
        if target.name in result.unreachable:
            continue
        try:
            copy_version(repo, aip_id, version, target)
            result.copied.append((aip_id, version, target.name))
        except StorageUnreachable:
            result.unreachable.append(target.name)
        except PreserveError as e:
            result.failed.append((aip_id, version, target.name, e.message))
        progress.advance(1, total[(aip_id, version)])
    return result
